//! The top of the crate: parse the command line, build the parts (`wiring`) and dispatch the command.
//! Imported by `main.rs` alone.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, EventsCommand};
use crate::commands;
use crate::commands::tasks::TaskCommand;
use crate::config::Settings;
use crate::wiring::Parts;

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
    // The task commands answer a person: only warnings and errors on stderr unless a level is asked for.
    let quiet = cli.command.as_ref().is_some_and(Command::is_task_command)
        && matches!(matches.value_source("log_level"), None | Some(ValueSource::DefaultValue));
    crate::telemetry::init(if quiet { "warn" } else { &cli.global.log_level });

    // A stdio session serves one agent, call by call: one thread runs it all (no hand-offs between
    // workers on every message, no worker threads to start). Blocking work still goes to the blocking
    // pool. Everything else (`serve` above all) gets a worker per core.
    let stdio = matches!(cli.command, None | Some(Command::Stdio(_)));
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
    let command = cli.command.unwrap_or_else(|| Command::Stdio(cli.stdio.clone()));
    let default_pool = match command {
        Command::Serve(_) => 16,
        _ => 4,
    };
    let settings = Settings::from_args(&cli.global, default_pool)?;
    tracing::debug!(?settings, "starting");
    match command {
        Command::Stdio(args) => {
            // `task-mcp stdio --repository X` or `task-mcp --repository X` (what clients are given).
            let repository = args.repository.or(cli.stdio.repository);
            crate::mcp::stdio::run(Parts::build_for_stdio(settings), repository).await?
        }
        Command::Serve(args) => crate::http::serve(Parts::build(settings)?, args).await?,
        Command::Migrate => commands::migrate::run(Parts::build(settings)?.store.as_ref()).await?,
        Command::Token(args) => commands::token::run(&Parts::build(settings)?.settings, &args).await?,
        Command::ApiKey(sub) => commands::api_key::run(&Parts::build(settings)?, sub).await?,
        Command::Events(EventsCommand::Tail { repository, after }) => {
            let assignee = if user_given_on_command_line { settings.user.clone() } else { None };
            commands::events_tail::run(Parts::build(settings)?, assignee, repository, after).await?;
        }
        Command::Doctor => {
            // Like stdio: a setting that cannot be right is reported in the report, with the rest.
            let parts = Parts::build_for_stdio(settings);
            let checked = commands::doctor::Checked {
                store: parts.store.as_ref(),
                publisher: parts.publisher.as_deref(),
                settings: &parts.settings,
                default_repository: cli.stdio.repository.clone(),
            };
            let healthy = commands::doctor::run(checked).await;
            return Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Command::Export(args) => {
            commands::transfer::export(Parts::build(settings)?.store, args.to.as_deref()).await?;
        }
        Command::Import(args) => {
            commands::transfer::import(Parts::build(settings)?.store, args.from.as_deref(), args.force).await?;
        }
        Command::Copy(args) => {
            let from = commands::transfer::open_source(&args.from, settings.pool_size)?;
            let to = crate::store::open(&args.to, settings.pool_size).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            commands::transfer::copy(from, to, args.force).await?;
        }
        Command::Health(args) => return Ok(commands::health::run(&args).await),
        Command::List(args) => return Ok(task_command(settings, TaskCommand::List(args)).await),
        Command::Show(args) => return Ok(task_command(settings, TaskCommand::Show(args)).await),
        Command::Add(args) => return Ok(task_command(settings, TaskCommand::Add(args)).await),
        Command::Start(args) => return Ok(task_command(settings, TaskCommand::Start(args)).await),
        Command::Done(args) => return Ok(task_command(settings, TaskCommand::Done(args)).await),
        Command::Comment(args) => return Ok(task_command(settings, TaskCommand::Comment(args)).await),
    }
    Ok(ExitCode::SUCCESS)
}

/// A terminal task command: a setting that cannot be right (a bad `DATABASE_URL`) is bad usage (2).
async fn task_command(settings: Settings, command: TaskCommand) -> ExitCode {
    match Parts::build(settings) {
        Ok(parts) => commands::tasks::run(parts, command).await,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(commands::tasks::exit_code(&err))
        }
    }
}
