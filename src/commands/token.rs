//! `task-mcp token [--user EMAIL] [--ttl 30d]`: prints a token signed with `JWT_SECRET` (or the
//! generated secret in the data directory).

use crate::cli::TokenArgs;
use crate::config::Settings;
use crate::http::auth::{JwtKeys, SECRET_FILE, load_or_create_secret, parse_ttl};

/// A token for the acting user, valid for `--ttl`.
pub async fn issue(settings: &Settings, args: &TokenArgs) -> anyhow::Result<String> {
    let ttl = parse_ttl(&args.ttl)?;
    let secret = match args.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
        Some(secret) => secret.as_bytes().to_vec(),
        None => load_or_create_secret(&settings.data_dir.join(SECRET_FILE))?,
    };
    let keys = JwtKeys::new(&secret)?;
    let actor = super::acting_user(settings).await?;
    tracing::info!("token for {} valid for {}", actor.email, args.ttl);
    keys.issue(&actor.email, ttl)
}

/// Prints the token, alone on its line (so `$(task-mcp token)` works).
pub async fn run(settings: &Settings, args: &TokenArgs) -> anyhow::Result<()> {
    let token = issue(settings, args).await?;
    println!("{token}");
    Ok(())
}
