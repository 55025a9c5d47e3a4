//! The process: parse the command line, build the parts (store, service, bus) and run a command.

use std::process::ExitCode;
use std::sync::Arc;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{ApiKeyCommand, Cli, Command, EventsCommand};
use crate::config::Settings;
use crate::events::publisher::RedisPublisher;
use crate::service::TaskService;
use crate::store::{self, Store};

/// The parts every command is built from.
#[derive(Clone)]
pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub service: TaskService,
    /// Present when `REDIS_URL` is set.
    pub publisher: Option<Arc<RedisPublisher>>,
}

impl App {
    /// For a stdio session, which must keep answering whatever is wrong: a store URL that cannot be
    /// opened becomes a store whose every call says why, and a malformed `REDIS_URL` is reported and
    /// left out (events wait in the outbox for a process that can publish them).
    pub fn build_for_stdio(settings: Settings) -> Self {
        let store = store::open_or_report(&settings.database_url, settings.pool_size);
        let service = TaskService::new(store.clone());
        let publisher = settings.redis_url.as_deref().and_then(|url| {
            RedisPublisher::new(url, &settings.stream_prefix, settings.stream_maxlen)
                .map_err(|err| tracing::error!("events will not be published from this process: {err}"))
                .ok()
                .map(Arc::new)
        });
        Self { settings, store, service, publisher }
    }

    /// Builds the parts without touching the network: pools connect on first use.
    pub fn build(settings: Settings) -> crate::error::Result<Self> {
        // No I/O here: the SQLite store creates its directory (owner-only) on first use.
        let store = store::open(&settings.database_url, settings.pool_size)?;
        let service = TaskService::new(store.clone());
        let publisher = match &settings.redis_url {
            Some(url) => Some(Arc::new(RedisPublisher::new(url, &settings.stream_prefix, settings.stream_maxlen)?)),
            None => None,
        };
        Ok(Self { settings, store, service, publisher })
    }
}

pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let user_given_on_command_line = matches
        .subcommand()
        .map(|(_, sub)| sub.value_source("user") == Some(ValueSource::CommandLine))
        .unwrap_or(false)
        || matches.value_source("user") == Some(ValueSource::CommandLine);
    crate::telemetry::init(&cli.global.log_level);

    // A stdio session serves one agent, call by call: one thread runs it all (no hand-offs between
    // workers on every message, no worker threads to start). Blocking work still goes to the blocking
    // pool. Everything else (`serve` above all) gets a worker per core.
    let stdio = matches!(cli.command, None | Some(Command::Stdio));
    let mut builder =
        if stdio { tokio::runtime::Builder::new_current_thread() } else { tokio::runtime::Builder::new_multi_thread() };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, user_given_on_command_line)) {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, user_given_on_command_line: bool) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Stdio);
    let default_pool = match command {
        Command::Serve(_) => 16,
        _ => 4,
    };
    let settings = Settings::from_args(&cli.global, default_pool)?;
    tracing::debug!(?settings, "starting");
    match command {
        Command::Stdio => {
            let app = App::build_for_stdio(settings);
            crate::mcp::stdio::run(app).await?;
        }
        Command::Serve(args) => {
            let app = App::build(settings)?;
            crate::http::serve(app, args).await?;
        }
        Command::Migrate => {
            let app = App::build(settings)?;
            let version = app.store.migrate().await?;
            tracing::info!(store = %app.store.info().location, version, "migrations applied");
        }
        Command::Token(args) => {
            let app = App::build(settings)?;
            let token = crate::http::auth::issue_token_command(&app, &args).await?;
            println!("{token}");
        }
        Command::ApiKey(sub) => {
            let app = App::build(settings)?;
            match sub {
                ApiKeyCommand::Create { name } => {
                    let key = crate::http::auth::create_api_key_command(&app, &name).await?;
                    println!("{key}");
                }
                ApiKeyCommand::List => {
                    for line in crate::http::auth::list_api_keys_command(&app).await? {
                        println!("{line}");
                    }
                }
                ApiKeyCommand::Revoke { key } => {
                    if !app.store.revoke_api_key(&key).await? {
                        anyhow::bail!("no API key has the id or name {key:?}");
                    }
                    tracing::info!("API key {key} revoked");
                }
            }
        }
        Command::Events(EventsCommand::Tail { repository, after }) => {
            let assignee = if user_given_on_command_line { settings.user.clone() } else { None };
            let app = App::build(settings)?;
            crate::events::tail::run(app, assignee, repository, after).await?;
        }
        Command::Doctor => {
            // Like stdio: a setting that cannot be right is reported in the report, with the rest.
            let app = App::build_for_stdio(settings);
            let healthy = crate::doctor::run(&app).await;
            return Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
    }
    Ok(ExitCode::SUCCESS)
}
