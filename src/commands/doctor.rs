//! `task-mcp doctor`: which store (and read replica) and bus are in use, whether each answers, the schema version, and
//! the client configuration snippets for this binary, which reproduce the settings it ran with (so a
//! client opens the same store as the same identity). Its output is for a person, on stdout; a
//! setting that cannot be right is reported in its place, and the rest of the report still printed.

use std::time::Duration;

use crate::config::{self, Settings};
use crate::error::Error;
use crate::events::publisher::RedisPublisher;
use crate::mcp::default_repo::DefaultRepository;
use crate::store::{PASSWORD_PLACEHOLDER, ReplicaState, Store};
use crate::wiring::publisher_for;

/// What the diagnosis checks: the store, the bus (when configured) and the settings.
pub struct Checked<'a> {
    pub store: &'a dyn Store,
    pub publisher: Option<&'a RedisPublisher>,
    pub settings: &'a Settings,
    /// `--repository` / `TASK_MCP_REPOSITORY`, as given.
    pub default_repository: Option<String>,
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
        Ok(Err(err @ Error::Config(_))) => {
            healthy = false;
            println!("            CANNOT BE USED: {err}");
        }
        Ok(Err(err)) => {
            healthy = false;
            println!("            DOES NOT ANSWER: {err}");
        }
        Err(_) => {
            healthy = false;
            println!("            DOES NOT ANSWER: no reply within 10 s");
        }
    }
    match tokio::time::timeout(Duration::from_secs(5), app.store.replica_status()).await {
        Ok(None) => {}
        Ok(Some(replica)) => {
            println!("replica:    postgres at {} (reads of tasks, comments, history, links)", replica.location);
            let why = replica.detail.unwrap_or_default();
            match replica.state {
                ReplicaState::InUse => {
                    let lag = replica.lag.unwrap_or_default();
                    println!("            answers; reads go to it ({:.1} s behind the primary)", lag.as_secs_f64());
                }
                ReplicaState::Lagging => {
                    healthy = false;
                    println!("            LAGGING: {why} (reads go to the primary)");
                }
                ReplicaState::Down | ReplicaState::NotStandby => {
                    healthy = false;
                    println!("            CANNOT BE USED: {why} (reads go to the primary)");
                }
            }
        }
        Err(_) => {
            healthy = false;
            println!("replica:    DOES NOT ANSWER: no reply within 5 s (reads go to the primary)");
        }
    }
    match &app.publisher {
        Some(publisher) => {
            println!("bus:        Redis Streams at {} (prefix {:?})", publisher.location(), publisher.prefix());
            match tokio::time::timeout(Duration::from_secs(5), publisher.ping()).await {
                Ok(Ok(())) if publisher.is_cluster() => match publisher.cluster_report().await {
                    Some(report) => {
                        healthy &= report.healthy();
                        let verdict = if report.healthy() { "answers" } else { "DEGRADED" };
                        println!(
                            "            {verdict}: {} of {} nodes reachable, cluster_state:{}",
                            report.reachable, report.nodes, report.state
                        );
                    }
                    None => println!("            answers"),
                },
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
        None => match publisher_for(app.settings) {
            // Left out at start (see `Parts::build_for_stdio`): say why.
            Some(outcome) => {
                healthy = false;
                let name = if app.settings.redis_cluster_urls.is_empty() { "REDIS_URL" } else { "REDIS_CLUSTER_URLS" };
                let reason = outcome.err().map_or_else(|| "it was left out".to_owned(), |err| err.to_string());
                println!("bus:        {name} CANNOT BE USED: {reason}");
            }
            None => println!("bus:        none (REDIS_URL unset): `serve` follows the store's event log"),
        },
    }
    let identity = match tokio::task::spawn_blocking({
        let user = app.settings.user.clone();
        move || config::resolve_actor_with_notice(user.as_deref())
    })
    .await
    {
        Ok(Ok((actor, notice))) => {
            println!("identity:   {} (\"me\")", actor.email);
            if let Some(notice) = notice {
                println!("            NOTE: {notice}");
            }
            Some(actor.email.to_string())
        }
        Ok(Err(err)) => {
            healthy = false;
            println!("identity:   INVALID: {err}");
            None
        }
        Err(err) => {
            println!("identity:   unknown: {err}");
            None
        }
    };

    let default = DefaultRepository::for_process(app.default_repository.clone());
    match default.now() {
        Ok(Some(resolved)) => {
            println!("repository: {} (from {})", resolved.name, resolved.from);
            println!("            stdio sessions started here file into it and list it when a call names none");
        }
        Ok(None) => println!("repository: none ({}): calls name their repository", default.why_none()),
        Err(err) => {
            healthy = false;
            println!("repository: INVALID: {err}");
        }
    }
    if app.default_repository.is_none() {
        println!("            (a client that announces exactly one root folder decides instead)");
    }

    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "task-mcp".to_owned());
    let vars = app.settings.client_env(identity.as_deref());
    let env: serde_json::Map<String, serde_json::Value> =
        vars.iter().map(|(name, value)| ((*name).to_owned(), value.as_str().into())).collect();
    let server = serde_json::json!({ "command": exe, "args": [], "env": env });
    let desktop = serde_json::json!({ "mcpServers": { "task-mcp": server } });
    println!();
    println!("To hook up a client with these settings (the same store, as the same identity):");
    if vars.iter().any(|(_, value)| value.contains(PASSWORD_PLACEHOLDER)) {
        println!("(replace {PASSWORD_PLACEHOLDER} with the password: it is never printed)");
    }
    println!();
    println!("Claude Desktop (claude_desktop_config.json) and Cursor (.cursor/mcp.json):");
    println!("{}", serde_json::to_string_pretty(&desktop).unwrap_or_default());
    println!();
    println!("Claude Code:");
    let flags: String =
        vars.iter().map(|(name, value)| format!(" --env {}", shell_word(&format!("{name}={value}")))).collect();
    println!("  claude mcp add task-mcp{flags} -- {}", shell_word(&exe));
    healthy
}

/// A word as a POSIX shell reads it back unchanged: as it is when it holds no special character,
/// else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
