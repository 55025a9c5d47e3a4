//! Settings resolved from the command line and environment: the store URL (default: embedded SQLite
//! in the data directory) and its read replica, the acting identity, the bus. `Debug` never shows a password.

use std::path::PathBuf;

use crate::cli::{DEFAULT_EVENT_RETENTION_DAYS, DEFAULT_STREAM_MAXLEN, DEFAULT_STREAM_PREFIX, GlobalArgs};
use crate::domain::{Actor, Email};
use crate::error::{Error, Result};
use crate::store::{redact_url, url_with_password_placeholder};

/// The file name of the embedded database inside the data directory.
pub const SQLITE_FILE: &str = "tasks.db";

#[derive(Clone)]
pub struct Settings {
    pub database_url: String,
    /// A streaming replica of the PostgreSQL `database_url` that reads may go to (`DATABASE_READ_URL`).
    pub database_read_url: Option<String>,
    pub redis_url: Option<String>,
    /// The seed nodes of a Redis Cluster (`REDIS_CLUSTER_URLS`); empty when not set. Never with `redis_url`.
    pub redis_cluster_urls: Vec<String>,
    pub stream_prefix: String,
    pub stream_maxlen: usize,
    pub event_retention_days: u32,
    pub data_dir: PathBuf,
    pub pool_size: usize,
    /// As given; resolved lazily by [`resolve_actor`] (it may read git's configuration).
    pub user: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_read_url", &self.database_read_url.as_deref().map(redact_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_cluster_urls", &self.redis_cluster_urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
            .field("stream_prefix", &self.stream_prefix)
            .field("stream_maxlen", &self.stream_maxlen)
            .field("event_retention_days", &self.event_retention_days)
            .field("data_dir", &self.data_dir)
            .field("pool_size", &self.pool_size)
            .field("user", &self.user)
            .finish()
    }
}

impl Settings {
    pub fn from_args(args: &GlobalArgs, default_pool_size: usize) -> Result<Self> {
        // An empty TASK_MCP_DATA_DIR means "not set", not "the current directory".
        let data_dir = match args.data_dir.as_ref().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir.clone(),
            None => default_data_dir()?,
        };
        let database_url = match args.database_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => url.to_owned(),
            None => format!("sqlite://{}", data_dir.join(SQLITE_FILE).display()),
        };
        let database_read_url = args.database_read_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        if let Some(read_url) = database_read_url {
            crate::store::check_read_url(&database_url, read_url)?;
        }
        let database_read_url = database_read_url.map(str::to_owned);
        if args.stream_prefix.is_empty() || args.stream_prefix.contains(char::is_whitespace) {
            return Err(Error::invalid("TASK_MCP_STREAM_PREFIX", "must be non-empty and without spaces"));
        }
        let redis_url = args.redis_url.clone().filter(|u| !u.trim().is_empty());
        let redis_cluster_urls: Vec<String> =
            args.redis_cluster_urls.iter().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
        if redis_url.is_some() && !redis_cluster_urls.is_empty() {
            return Err(Error::Config(crate::domain::ValidationError::new(
                "REDIS_CLUSTER_URLS",
                "cannot be used together with REDIS_URL: set REDIS_URL for one Redis server, or \
                 REDIS_CLUSTER_URLS for the seed nodes of a Redis Cluster, not both",
            )));
        }
        Ok(Self {
            database_url,
            database_read_url,
            redis_url,
            redis_cluster_urls,
            stream_prefix: args.stream_prefix.clone(),
            stream_maxlen: args.stream_maxlen.max(1),
            event_retention_days: args.event_retention_days,
            data_dir,
            pool_size: args.pool_size.unwrap_or(default_pool_size).max(1),
            user: args.user.clone().filter(|u| !u.trim().is_empty()),
        })
    }

    /// Whether events are published to Redis (one server or a cluster).
    pub fn has_redis(&self) -> bool {
        self.redis_url.is_some() || !self.redis_cluster_urls.is_empty()
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite://")
    }

    /// The environment an MCP client must give this binary to open the same store, act as the same
    /// identity (`email`, as resolved) and publish to the same bus: every setting that differs from
    /// the default, passwords replaced by [`crate::store::PASSWORD_PLACEHOLDER`] (never printed).
    pub fn client_env(&self, email: Option<&str>) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        let default_url = format!("sqlite://{}", self.data_dir.join(SQLITE_FILE).display());
        if self.database_url != default_url {
            env.push(("DATABASE_URL", url_with_password_placeholder(&self.database_url)));
        }
        if let Some(url) = &self.database_read_url {
            env.push(("DATABASE_READ_URL", url_with_password_placeholder(url)));
        }
        // The data directory holds the embedded file (and `serve`'s generated secret).
        if default_data_dir().ok().as_deref() != Some(self.data_dir.as_path()) {
            env.push(("TASK_MCP_DATA_DIR", self.data_dir.display().to_string()));
        }
        if let Some(email) = email {
            env.push(("TASK_MCP_USER", email.to_owned()));
        }
        let cluster = self.redis_cluster_urls.iter().map(|u| url_with_password_placeholder(u)).collect::<Vec<_>>();
        if !cluster.is_empty() {
            env.push(("REDIS_CLUSTER_URLS", cluster.join(",")));
        }
        if let Some(url) = &self.redis_url {
            env.push(("REDIS_URL", url_with_password_placeholder(url)));
        }
        if self.has_redis() {
            if self.stream_prefix != DEFAULT_STREAM_PREFIX {
                env.push(("TASK_MCP_STREAM_PREFIX", self.stream_prefix.clone()));
            }
            if self.stream_maxlen != DEFAULT_STREAM_MAXLEN {
                env.push(("TASK_MCP_STREAM_MAXLEN", self.stream_maxlen.to_string()));
            }
        }
        if self.event_retention_days != DEFAULT_EVENT_RETENTION_DAYS {
            env.push(("TASK_MCP_EVENT_RETENTION_DAYS", self.event_retention_days.to_string()));
        }
        env
    }
}

/// `$TASK_MCP_DATA_DIR`, else the platform's data directory (XDG on Linux) + `task-mcp`.
pub fn default_data_dir() -> Result<PathBuf> {
    dirs::data_dir().map(|d| d.join("task-mcp")).ok_or_else(|| {
        Error::invalid("TASK_MCP_DATA_DIR", "no data directory could be found for this user: set TASK_MCP_DATA_DIR")
    })
}

/// The identity this process acts as: `--user`, else git's `user.email`, else `$USER@localhost`.
pub fn resolve_actor(user: Option<&str>) -> Result<Actor> {
    resolve_actor_with_notice(user).map(|(actor, _)| actor)
}

/// Like [`resolve_actor`], with a notice for a person when the identity is a made-up `@localhost`
/// address (no `TASK_MCP_USER`, no git `user.email`): tasks would carry an address nobody reads.
pub fn resolve_actor_with_notice(user: Option<&str>) -> Result<(Actor, Option<String>)> {
    if let Some(raw) = user {
        return Ok((Actor::new(Email::parse("TASK_MCP_USER", raw)?), None));
    }
    if let Some(email) = git_user_email().and_then(|e| Email::parse("user.email", &e).ok()) {
        return Ok((Actor::new(email), None));
    }
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .map(|n| n.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')).collect::<String>())
        .filter(|n| !n.is_empty());
    let why = if name.is_some() {
        "made up from $USER: no TASK_MCP_USER, no git user.email"
    } else {
        "made up: no TASK_MCP_USER, no git user.email, no $USER"
    };
    let actor = Actor::new(Email::parse("USER", &format!("{}@localhost", name.as_deref().unwrap_or("user")))?);
    let notice = format!(
        "acting as {} ({why}); set TASK_MCP_USER to your email \
         so that \"me\" and your tasks carry it",
        actor.email
    );
    Ok((actor, Some(notice)))
}

/// git's `user.email`: read from git's configuration files when they tell it for sure (no process
/// to start), else from `git config --get user.email`.
fn git_user_email() -> Option<String> {
    let email = match crate::git_config::user_email(&crate::git_config::Context::of_process()) {
        Ok(email) => email,
        Err(crate::git_config::AskGit(why)) => {
            tracing::debug!("asking git for user.email: {why}");
            git_config_get_user_email()
        }
    };
    email.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty())
}

fn git_config_get_user_email() -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["config", "--get", "user.email"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()
}
