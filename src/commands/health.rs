//! `task-mcp health`: asks a running `serve` for `GET /health` and says in its exit code whether it is
//! healthy, so a container's `HEALTHCHECK` needs no shell tools (no curl, no wget) in the image.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::HealthArgs;

/// Longer than the server's own checks (2 s each), shorter than a health check's usual timeout.
const PATIENCE: Duration = Duration::from_secs(5);

/// Prints the server's `status` (`ok` or `degraded`) and exits 0 when it answers 200; otherwise says
/// why on stderr and exits 1.
pub async fn run(args: &HealthArgs) -> ExitCode {
    let base = args.url.clone().unwrap_or_else(|| format!("http://127.0.0.1:{}", args.port));
    let url = format!("{}/health", base.trim_end_matches('/'));
    match check(&url).await {
        Ok(status) => {
            println!("{status}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("unhealthy: {url}: {why}");
            ExitCode::FAILURE
        }
    }
}

async fn check(url: &str) -> Result<String, String> {
    let client = reqwest::Client::builder().timeout(PATIENCE).build().map_err(|err| err.to_string())?;
    let response = client.get(url).send().await.map_err(|err| format!("no answer ({err})"))?;
    let code = response.status();
    let body: serde_json::Value =
        response.json().await.map_err(|err| format!("{code}, not the health JSON ({err})"))?;
    let status = body.get("status").and_then(|s| s.as_str()).unwrap_or("unknown").to_owned();
    if code.is_success() { Ok(status) } else { Err(format!("{code}, status {status}")) }
}
