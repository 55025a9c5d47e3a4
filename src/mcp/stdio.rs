//! MCP over stdin/stdout: one process per agent session. Answers `initialize` at once (no store
//! opened and no child process before that answer; nothing connects before the first tool call),
//! keeps serving while the database is down, and exits 0 once stdin closes and the calls in flight
//! have answered. stdout carries protocol frames only; a line that is not a message gets a JSON-RPC
//! error there ([`LineTransport`]), never silence.

use std::io::IsTerminal;
use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::service::ServerInitializeError;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::events::relay::RelayMode;
use crate::mcp::default_repo::DefaultRepository;
use crate::mcp::drain::DrainOnEof;
use crate::mcp::transport::LineTransport;
use crate::mcp::{ActorSource, TaskServer};
use crate::wiring::Parts;

/// Serves one session; `repository` is `--repository` / `TASK_MCP_REPOSITORY` (the default repository).
pub async fn run(app: Parts, repository: Option<String>) -> anyhow::Result<()> {
    if std::io::stdin().is_terminal() {
        // Someone ran it by hand: without this it looks hung. Plain lines for a person, not a log
        // record; never when a client drives it (stdin is a pipe then).
        eprintln!("{TERMINAL_NOTICE}");
    }
    let shutdown = CancellationToken::new();
    // Publishes each commit's events to Redis (when REDIS_URL is set); stops with `shutdown`.
    let relay = app.spawn_relay(RelayMode::AfterCommits, shutdown.clone());

    // `initialize` is answered first; the store and the working directory are read after it.
    let default_repository = DefaultRepository::for_process(repository);
    let (answered, first_answer) = oneshot::channel();
    warm_up(&app, default_repository.clone(), first_answer);
    let server = TaskServer::new(app.service.clone(), ActorSource::process(app.settings.user.clone()))
        .with_default_repository(default_repository);
    let (stdin, stdout) = rmcp::transport::io::stdio_pipes();
    // Every line is answered (bad ones with a JSON-RPC error), and at end of input the calls in flight
    // are answered before the end is reported (rmcp alone gives them 5 s).
    let transport = DrainOnEof::new(LineTransport::new(stdin, stdout).after_first_answer(answered));
    match server.serve_with_ct(transport, shutdown.child_token()).await {
        Ok(running) => {
            // Returns when stdin closes, after the answers of the calls in flight are sent.
            let reason = running.waiting().await?;
            tracing::debug!(?reason, "stdio session ended");
        }
        // The client went away before initializing: nothing to do.
        Err(ServerInitializeError::ConnectionClosed(_)) => tracing::debug!("stdin closed before initialize"),
        Err(err) => return Err(err.into()),
    }

    shutdown.cancel();
    if let Some(relay) = relay {
        // Bounded: the relay makes one last short attempt to publish what is pending.
        let _ = relay.await;
    }
    Ok(())
}

/// What a person who started the server in a terminal reads on stderr.
pub const TERMINAL_NOTICE: &str = "task-mcp is an MCP server: it talks JSON-RPC on stdin/stdout, and an MCP client \
(Claude, Cursor, VS Code) normally starts it. It is waiting for a client now (Ctrl-D ends it).\n\
To try it by hand: `task-mcp doctor` (what it uses, how to hook up a client) or `task-mcp serve` (REST API and dashboard).";

/// Once the first answer (to `initialize`) is written: reads the working directory's repository,
/// connects the pool and applies migrations in the background, so the first tool call finds them
/// ready; if the database is down, says so once in the log (tool calls then report it themselves).
/// Nothing of it runs before that answer: a tool call that comes first does what it needs itself.
fn warm_up(app: &Parts, default_repository: Arc<DefaultRepository>, first_answer: oneshot::Receiver<()>) {
    let store = app.store.clone();
    tokio::spawn(async move {
        if first_answer.await.is_err() {
            return;
        }
        // The tool and prompt schemas, which the client's next message (tools/list) needs anyway.
        TaskServer::tools();
        TaskServer::prompts();
        default_repository.warm_up();
        match store.migrate().await {
            Ok(version) => tracing::debug!(version, "store ready"),
            Err(err) => tracing::warn!("the store is not ready yet; tool calls will say why until it is: {err}"),
        }
    });
}
