//! `task-mcp serve` as a child process: started on a free port of 127.0.0.1 (read from its log line),
//! a token for the bench's user, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc::Target;

/// A secret of the bench's own (≥ 32 bytes), so tokens can be issued with `task-mcp token`.
const SECRET: &str = "bench-secret-0123456789-0123456789-abcdefgh";

pub struct Serve {
    child: Child,
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub token: String,
}

impl Serve {
    pub fn start(target: &Target, pool_size: usize) -> Result<Serve> {
        let target = target.with("JWT_SECRET", SECRET).with("TASK_MCP_POOL_SIZE", &pool_size.to_string());
        let token = target.run(&["token", "--user", "bench@example.com"])?;
        // Info level: the "serving on" line says where it listens.
        let mut child = target
            .with("RUST_LOG", "info")
            .command()
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            // One token opens every stream of the fan-out and idle measurements.
            .args(["--max-streams-per-user", "100000", "--max-streams", "100000", "--max-connections", "100000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn task-mcp serve")?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, rx) = mpsc::channel();
        // Reads the log to the end (a full pipe would block the server); sends the address once.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                } else if line.contains("ERROR") || line.contains("WARN") {
                    eprintln!("serve: {line}");
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                bail!("task-mcp serve did not say where it listens within 20 s");
            }
        };
        let addr: std::net::SocketAddr = addr.parse().with_context(|| format!("address {addr:?}"))?;
        Ok(Serve { child, base: format!("http://{addr}"), addr, token })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/health` answers 200 (the database connected and migrated).
    pub async fn ready(&self, client: &reqwest::Client) -> Result<()> {
        for _ in 0..200 {
            if let Ok(response) = client.get(format!("{}/health", self.base)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("serve's /health did not answer 200 within 10 s")
    }

    /// SIGTERM (a graceful stop), then waits for the exit.
    pub fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..300 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("serve did not stop within 15 s of SIGTERM")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
