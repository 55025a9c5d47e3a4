//! `task-mcp doctor`: which store and bus are in use, whether each answers, the schema version, and
//! the client configuration snippets for this binary. Its output is for a person, on stdout.

use std::time::Duration;

use crate::config::{self, Settings};
use crate::events::publisher::RedisPublisher;
use crate::store::Store;

/// What the diagnosis checks: the store, the bus (when configured) and the settings.
pub struct Checked<'a> {
    pub store: &'a dyn Store,
    pub publisher: Option<&'a RedisPublisher>,
    pub settings: &'a Settings,
}

/// Prints the report; returns whether everything in use answered.
pub async fn run(app: Checked<'_>) -> bool {
    let mut healthy = true;
    let info = app.store.info();
    println!("task-mcp {}", env!("CARGO_PKG_VERSION"));
    println!();
    println!("store:      {} at {}", info.kind, info.location);
    println!("data dir:   {}", app.settings.data_dir.display());
    match tokio::time::timeout(Duration::from_secs(10), app.store.migrate()).await {
        Ok(Ok(version)) => println!("            answers; schema version {version}"),
        Ok(Err(err)) => {
            healthy = false;
            println!("            DOES NOT ANSWER: {err}");
        }
        Err(_) => {
            healthy = false;
            println!("            DOES NOT ANSWER: no reply within 10 s");
        }
    }
    match &app.publisher {
        Some(publisher) => {
            println!("bus:        Redis Streams at {} (prefix {:?})", publisher.location(), publisher.prefix());
            match tokio::time::timeout(Duration::from_secs(5), publisher.ping()).await {
                Ok(Ok(())) => println!("            answers"),
                Ok(Err(err)) => {
                    healthy = false;
                    println!("            DOES NOT ANSWER: {err} (changes still succeed; events wait in the outbox)");
                }
                Err(_) => {
                    healthy = false;
                    println!("            DOES NOT ANSWER: no reply within 5 s");
                }
            }
        }
        None => println!("bus:        none (REDIS_URL unset): `serve` follows the store's event log"),
    }
    match tokio::task::spawn_blocking({
        let user = app.settings.user.clone();
        move || config::resolve_actor(user.as_deref())
    })
    .await
    {
        Ok(Ok(actor)) => println!("identity:   {} (\"me\")", actor.email),
        Ok(Err(err)) => {
            healthy = false;
            println!("identity:   INVALID: {err}");
        }
        Err(err) => println!("identity:   unknown: {err}"),
    }

    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "task-mcp".to_owned());
    let mut env = serde_json::Map::new();
    if !app.settings.is_sqlite() {
        env.insert("DATABASE_URL".into(), "postgres://USER:PASSWORD@HOST/DB".into());
    }
    if app.publisher.is_some() {
        env.insert("REDIS_URL".into(), "redis://HOST:6379".into());
    }
    let server = serde_json::json!({ "command": exe, "args": [], "env": env });
    let desktop = serde_json::json!({ "mcpServers": { "task-mcp": server } });
    println!();
    println!("Claude Desktop (claude_desktop_config.json) and Cursor (.cursor/mcp.json):");
    println!("{}", serde_json::to_string_pretty(&desktop).unwrap_or_default());
    println!();
    println!("Claude Code:");
    println!("  claude mcp add task-mcp -- {exe}");
    healthy
}
