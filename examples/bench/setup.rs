//! What the bench runs against and cleans up after: a PostgreSQL database of its own (dropped at the
//! end), a Redis key prefix of its own (deleted at the end), a SQLite file in a temporary directory.
//! 127.0.0.1 only.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tokio_postgres::NoTls;

use crate::proc::Target;

/// The server the bench creates its database on (`BENCH_DATABASE_URL`, else the tests' variable).
pub fn admin_url() -> String {
    std::env::var("BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("BENCH_REDIS_URL")
        .or_else(|_| std::env::var("TEST_REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

/// One store (and bus) under test.
pub struct Backend {
    pub kind: Kind,
    /// "PostgreSQL+Redis" or "SQLite".
    pub label: &'static str,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub prefix: String,
    pub target: Target,
    /// PostgreSQL: the database to drop.
    database: Option<String>,
    pub sqlite_path: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn base_env(dir: &std::path::Path, database_url: &str) -> Vec<(String, String)> {
    vec![
        ("HOME".into(), dir.display().to_string()),
        ("TASK_MCP_DATA_DIR".into(), dir.join("data").display().to_string()),
        ("TASK_MCP_USER".into(), "bench@example.com".into()),
        ("RUST_LOG".into(), "warn".into()),
        ("DATABASE_URL".into(), database_url.to_owned()),
    ]
}

impl Backend {
    pub async fn postgres(bin: PathBuf) -> Result<Backend> {
        let dir = tempfile::tempdir()?;
        let admin = admin_url();
        let name = format!("task_mcp_bench_{}", uuid::Uuid::new_v4().simple());
        execute(&admin, &format!("CREATE DATABASE {name}")).await?;
        let database_url = with_database(&admin, &name);
        let redis_url = redis_url();
        let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let mut env = base_env(dir.path(), &database_url);
        env.push(("REDIS_URL".into(), redis_url.clone()));
        env.push(("TASK_MCP_STREAM_PREFIX".into(), prefix.clone()));
        Ok(Backend {
            kind: Kind::Postgres,
            label: "PostgreSQL+Redis",
            database_url,
            redis_url: Some(redis_url),
            prefix,
            target: Target { bin, env, cwd: std::env::temp_dir() },
            database: Some(name),
            sqlite_path: None,
            _dir: dir,
        })
    }

    pub fn sqlite(bin: PathBuf) -> Result<Backend> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tasks.db");
        let database_url = format!("sqlite://{}", path.display());
        let env = base_env(dir.path(), &database_url);
        Ok(Backend {
            kind: Kind::Sqlite,
            label: "SQLite",
            database_url,
            redis_url: None,
            prefix: String::new(),
            target: Target { bin, env, cwd: std::env::temp_dir() },
            database: None,
            sqlite_path: Some(path),
            _dir: dir,
        })
    }

    /// Drops the database and deletes the Redis keys (the temporary directory goes with `self`).
    pub async fn clean_up(self) {
        if let Some(name) = &self.database
            && let Err(err) = execute(&admin_url(), &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
        {
            eprintln!("bench: could not drop the database {name}: {err:#}");
        }
        if let Some(url) = &self.redis_url
            && let Err(err) = delete_prefix(url, &self.prefix).await
        {
            eprintln!("bench: could not delete the Redis keys {}:*: {err:#}", self.prefix);
        }
    }
}

async fn delete_prefix(url: &str, prefix: &str) -> Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut conn).await?;
    if !keys.is_empty() {
        let () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    }
    Ok(())
}

/// Runs SQL on a connection of its own.
pub async fn execute(url: &str, sql: &str) -> Result<()> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.with_context(|| format!("connect to {}", redact(url)))?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(sql).await.with_context(|| format!("{sql:?}"));
    drop(client);
    let _ = driver.await;
    result
}

fn redact(url: &str) -> String {
    task_mcp::store::redact_url(url)
}

/// The same server URL naming another database.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = location.split('/').next().unwrap_or(location);
    format!("{scheme}://{authority}/{database}{query}")
}
