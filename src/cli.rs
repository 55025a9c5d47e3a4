//! The command line: every flag also readable from the environment. Parsing only; `run` acts.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The default caps of `serve` (`--max-connections`, `--max-streams`, `--max-streams-per-user`,
/// `--auth-failures`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
pub const DEFAULT_MAX_STREAMS: usize = 15_000;
pub const DEFAULT_MAX_STREAMS_PER_USER: usize = 100;
pub const DEFAULT_AUTH_FAILURES: u32 = 20;

/// Defaults of the flags whose value `doctor` reproduces only when it differs.
pub const DEFAULT_STREAM_PREFIX: &str = "tasks";
pub const DEFAULT_STREAM_MAXLEN: usize = 10_000;
pub const DEFAULT_EVENT_RETENTION_DAYS: u32 = 7;

#[derive(Debug, Parser)]
#[command(
    name = "task-mcp",
    version,
    about = "A task list shared by AI agents and people: MCP over stdio (default) or HTTP, REST, live SSE, a dashboard.",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub stdio: StdioArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The flags of a stdio session (given before any command, or after `stdio`).
#[derive(Debug, Clone, Default, Args)]
pub struct StdioArgs {
    /// The repository tasks are filed into and listed from when a call names none [default: the git
    /// repository of the client's root or the working directory]
    #[arg(long, env = "TASK_MCP_REPOSITORY", hide_env_values = true)]
    pub repository: Option<String>,
}

/// Every flag read from the environment has `hide_env_values`: `--help` shows `[env: NAME]` whatever
/// the environment that runs it, never a value (some are secrets) nor `NAME=` for one set but empty.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// postgres://user:pass@host/db or sqlite:///path/tasks.db [default: tasks.db in the data directory]
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// postgres://user:pass@replica/db — a streaming replica of DATABASE_URL (PostgreSQL) that reads go to (optional)
    #[arg(long, env = "DATABASE_READ_URL", global = true, hide_env_values = true)]
    pub database_read_url: Option<String>,

    /// redis://host:6379 — publish every change to Redis Streams (optional)
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,

    /// redis://h1:6379,redis://h2:6379 — seed nodes of a Redis Cluster to publish to, instead of REDIS_URL
    #[arg(long, env = "REDIS_CLUSTER_URLS", value_delimiter = ',', global = true, hide_env_values = true)]
    pub redis_cluster_urls: Vec<String>,

    /// Key prefix of the Redis streams ({prefix}:user:{id}, {prefix}:repo:{name}, {prefix}:notifications)
    #[arg(long, env = "TASK_MCP_STREAM_PREFIX", default_value = DEFAULT_STREAM_PREFIX, global = true, hide_env_values = true)]
    pub stream_prefix: String,

    /// Approximate maximum length of each Redis stream
    #[arg(long, env = "TASK_MCP_STREAM_MAXLEN", default_value_t = DEFAULT_STREAM_MAXLEN, global = true, hide_env_values = true)]
    pub stream_maxlen: usize,

    /// How long published events stay in the store's event log (SSE clients resume from it)
    #[arg(long, env = "TASK_MCP_EVENT_RETENTION_DAYS", default_value_t = DEFAULT_EVENT_RETENTION_DAYS, global = true, hide_env_values = true)]
    pub event_retention_days: u32,

    /// The identity this process acts as (an email) [default: git user.email, else $USER@localhost]
    #[arg(long, env = "TASK_MCP_USER", global = true, hide_env_values = true)]
    pub user: Option<String>,

    /// Where the embedded database and generated secrets live [default: the platform's data directory]
    #[arg(long, env = "TASK_MCP_DATA_DIR", global = true, hide_env_values = true)]
    pub data_dir: Option<PathBuf>,

    /// Maximum database connections of this process
    #[arg(long, env = "TASK_MCP_POOL_SIZE", global = true, hide_env_values = true)]
    pub pool_size: Option<usize>,

    /// Log filter, e.g. info, debug, task_mcp=trace (logs go to stderr)
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true, hide_env_values = true)]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdin/stdout (the default)
    Stdio(StdioArgs),
    /// Serve the REST API, SSE, MCP over HTTP and the dashboard
    Serve(ServeArgs),
    /// Apply database migrations and exit
    Migrate,
    /// Print a JWT for the REST API and SSE (only the token, on stdout)
    Token(TokenArgs),
    /// Manage the API keys of MCP over HTTP
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Watch the event feed
    #[command(subcommand)]
    Events(EventsCommand),
    /// Say which store and bus are in use, whether they answer, and how to hook up clients
    Doctor,
    /// Ask a running `serve` whether it is healthy (exit 0) or not (exit 1): a container's health check
    Health(HealthArgs),
    /// List tasks: a table, or JSON with --json
    List(ListArgs),
    /// Show a task with its comments and history
    Show(TaskArgs),
    /// Add a task
    Add(AddArgs),
    /// Take a task: assign it to you (--user) and set it in progress
    Start(TaskArgs),
    /// Complete a task
    Done(TaskArgs),
    /// Comment on a task
    Comment(CommentArgs),
    /// Write the whole store (DATABASE_URL) as JSON lines: a backup, or the first half of a move
    Export(ExportArgs),
    /// Load an export into the store (DATABASE_URL), in one transaction; the store must be empty
    Import(ImportArgs),
    /// Copy one store into another, e.g. the embedded SQLite file into PostgreSQL
    Copy(CopyArgs),
}

impl Command {
    /// The commands a person types at a terminal to work with tasks (quiet logs, exit codes 0/1/2).
    pub fn is_task_command(&self) -> bool {
        matches!(
            self,
            Command::List(_)
                | Command::Show(_)
                | Command::Add(_)
                | Command::Start(_)
                | Command::Done(_)
                | Command::Comment(_)
        )
    }
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only tasks assigned to you (--user)
    #[arg(long)]
    pub mine: bool,
    /// Only tasks of this repository
    #[arg(long)]
    pub repository: Option<String>,
    /// Only tasks in this status (not_started, in_progress, blocked, completed, cancelled)
    #[arg(long)]
    pub status: Option<String>,
    /// Only tasks of this priority (low, medium, high, urgent)
    #[arg(long)]
    pub priority: Option<String>,
    /// Only tasks whose title or description contains this text
    #[arg(long)]
    pub search: Option<String>,
    /// How many tasks at most (1-200)
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only tasks you could start now: not started, waiting on nothing, yours or nobody's.
    #[arg(long)]
    pub ready: bool,
    /// Print JSON (the REST API's task page) instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TaskArgs {
    /// The task's id
    pub task: String,
    /// Print the task as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AddArgs {
    /// The title (one line, 1-500 characters)
    pub title: String,
    /// A longer description
    #[arg(long)]
    pub description: Option<String>,
    /// The repository the task belongs to
    #[arg(long)]
    pub repository: Option<String>,
    /// low, medium, high or urgent [default: medium]
    #[arg(long)]
    pub priority: Option<String>,
    /// low, medium or high [default: medium]
    #[arg(long)]
    pub complexity: Option<String>,
    /// Who does it: an email, or "me" (--user)
    /// A task this one waits on (repeat for several).
    #[arg(long = "blocked-by", value_name = "TASK")]
    pub blocked_by: Vec<String>,
    /// The task this one is a step of.
    #[arg(long, value_name = "TASK")]
    pub parent: Option<String>,
    #[arg(long)]
    pub assignee: Option<String>,
    /// Print the created task as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CommentArgs {
    /// The task's id
    pub task: String,
    /// The comment
    pub text: String,
    /// Print the added comment as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to bind
    #[arg(long, env = "HOST", default_value = "127.0.0.1", hide_env_values = true)]
    pub host: IpAddr,

    /// Port to bind (0 picks a free one)
    #[arg(long, env = "PORT", default_value_t = 8000, hide_env_values = true)]
    pub port: u16,

    /// HS256 secret for JWTs, at least 32 bytes [default on loopback: generated in the data directory]
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Comma-separated origins allowed by CORS and on /mcp (e.g. https://tasks.example.com)
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', hide_env_values = true)]
    pub cors_origins: Vec<String>,

    /// Comma-separated Host header values accepted on /mcp, besides the bind address and localhost
    #[arg(long, env = "ALLOWED_HOSTS", value_delimiter = ',', hide_env_values = true)]
    pub allowed_hosts: Vec<String>,

    /// Public base URL printed in the dashboard link [default: http://HOST:PORT]
    #[arg(long, env = "PUBLIC_URL", hide_env_values = true)]
    pub public_url: Option<String>,

    /// Open connections at most; beyond, a new one is answered 503 with Retry-After
    #[arg(long, env = "TASK_MCP_MAX_CONNECTIONS", hide_env_values = true, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Open event streams (SSE) at most, in all; beyond, 503 with Retry-After
    #[arg(long, env = "TASK_MCP_MAX_STREAMS", hide_env_values = true, default_value_t = DEFAULT_MAX_STREAMS)]
    pub max_streams: usize,

    /// Open event streams (SSE) at most per user (per credential's identity); beyond, 503 with Retry-After
    #[arg(long, env = "TASK_MCP_MAX_STREAMS_PER_USER", hide_env_values = true, default_value_t = DEFAULT_MAX_STREAMS_PER_USER)]
    pub max_streams_per_user: usize,

    /// Failed authentications a client address may make per minute; past them it is answered 429
    /// until the minute ends (a valid credential is still served)
    #[arg(long, env = "TASK_MCP_AUTH_FAILURES", hide_env_values = true, default_value_t = DEFAULT_AUTH_FAILURES, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures: u32,

    /// Issuer URL of an OAuth authorization server whose access tokens (JWT, RS256 or ES256) sign in to
    /// /mcp, beside API keys, e.g. https://example.eu.auth0.com/ [default: OAuth off]
    #[arg(long, env = "OAUTH_ISSUER", hide_env_values = true)]
    pub oauth_issuer: Option<String>,

    /// The audience (`aud`) access tokens must name [default: PUBLIC_URL + /mcp]
    #[arg(long, env = "OAUTH_AUDIENCE", hide_env_values = true)]
    pub oauth_audience: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The file to write (owner-only; written whole or not at all) [default: stdout]
    #[arg(long, value_name = "FILE")]
    pub to: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The export to read [default: stdin]
    #[arg(long, value_name = "FILE")]
    pub from: Option<std::path::PathBuf>,
    /// Load into a store that already holds tasks, events, users or API keys (a clash of ids or unique
    /// names then fails the whole import, which changes nothing)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The store to copy from (only read), e.g. sqlite:///home/me/.local/share/task-mcp/tasks.db
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The store to copy into, e.g. postgres://localhost/tasks
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Copy into a store that is not empty (see `import --force`)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// The server's base URL [default: http://127.0.0.1:PORT]
    #[arg(long)]
    pub url: Option<String>,
    /// The port of the server on this host, when --url is not given
    #[arg(long, env = "PORT", default_value_t = 8000, hide_env_values = true)]
    pub port: u16,
}

/// `token --user EMAIL`: the global `--user` names whom the token speaks for.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Lifetime, e.g. 30d, 12h, 45m
    #[arg(long, default_value = "30d")]
    pub ttl: String,

    /// HS256 secret [default: JWT_SECRET, else the generated one in the data directory]
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for --user and print it (only the key, once)
    Create {
        /// A name to recognise the key by
        #[arg(long)]
        name: String,
        /// A key that may list and read tasks but not change anything
        #[arg(long)]
        read_only: bool,
    },
    /// List keys (never the secrets)
    List,
    /// Revoke a key by id or name
    Revoke {
        /// The key's id or name
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the live feed as JSON lines (`--user` given on the command line narrows it to that assignee)
    Tail {
        /// Only events of tasks in this repository
        #[arg(long)]
        repository: Option<String>,
        /// Start after this seq (default: only new events)
        #[arg(long)]
        after: Option<i64>,
    },
}
