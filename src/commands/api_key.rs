//! `task-mcp api-key create|list|revoke`: the API keys of MCP over HTTP, through the service. A new
//! key is printed once; listings never show a secret.

use crate::cli::ApiKeyCommand;
use crate::domain::{Access, KeyName};
use crate::wire::timestamp;
use crate::wiring::Parts;

/// `api-key create --name NAME`: a key for the acting user; returns the key (shown once).
pub async fn create(parts: &Parts, name: &str) -> anyhow::Result<String> {
    create_with(parts, name, Access::ReadWrite).await
}

/// `api-key create --name NAME [--read-only]`: a key that may do what `access` allows.
pub async fn create_with(parts: &Parts, name: &str, access: Access) -> anyhow::Result<String> {
    let name = KeyName::parse("--name", name)?;
    let owner = super::acting_user(&parts.settings).await?;
    let created = parts.service.create_api_key(&owner, name, access).await?;
    tracing::info!(
        "API key {} ({}) created for {}, {}",
        created.key.name,
        created.key.id,
        created.key.user_email,
        scope_name(created.key.access)
    );
    Ok(created.secret)
}

/// How a listing names what a key may do.
fn scope_name(access: Access) -> &'static str {
    match access {
        Access::ReadWrite => "read-write",
        Access::ReadOnly | Access::ReadScope => "read-only",
    }
}

/// `api-key list`: a header line, then one line per key, never the secret.
pub async fn list(parts: &Parts) -> anyhow::Result<Vec<String>> {
    let keys = parts.service.list_api_keys().await?;
    let mut lines = vec!["id\tname\tuser\tscope\tcreated\tlast used\tstate".to_owned()];
    for key in keys {
        let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(timestamp).unwrap_or_else(|| "-".into());
        let state = match key.revoked_at {
            Some(t) => format!("revoked {}", timestamp(t)),
            None => "active".to_owned(),
        };
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            key.id,
            key.name,
            key.user_email,
            scope_name(key.access),
            timestamp(key.created_at),
            when(key.last_used_at),
            state
        ));
    }
    Ok(lines)
}

/// `api-key revoke ID_OR_NAME`.
pub async fn revoke(parts: &Parts, key: &str) -> anyhow::Result<()> {
    if !parts.service.revoke_api_key(key).await? {
        anyhow::bail!("no API key has the id or name {key:?}");
    }
    tracing::info!("API key {key} revoked");
    Ok(())
}

/// Runs a subcommand, printing its result.
pub async fn run(parts: &Parts, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create { name, read_only } => {
            let access = if read_only { Access::ReadOnly } else { Access::ReadWrite };
            let key = create_with(parts, &name, access).await?;
            println!("{key}");
        }
        ApiKeyCommand::List => {
            for line in list(parts).await? {
                println!("{line}");
            }
        }
        ApiKeyCommand::Revoke { key } => revoke(parts, &key).await?,
    }
    Ok(())
}
