//! Test helpers: a fresh store per test (its own PostgreSQL database or SQLite file), and more.

pub mod http;
pub mod mcp;
pub mod oauth;
pub mod pg;
pub mod pg_replica;
pub mod python;
pub mod redis;
pub mod redis_cluster;
pub mod snapshot;
pub mod sqlite;

use std::sync::Arc;

use task_mcp::store::Store;

/// The backends every store contract test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub const BACKENDS: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

/// A store of its own for one test; dropping it removes its database or file.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// The URL the store was opened with (to hand to the binary as DATABASE_URL).
    pub url: String,
    _guard: Box<dyn Send + Sync>,
}

impl TestStore {
    pub async fn new(backend: Backend) -> TestStore {
        match backend {
            Backend::Postgres => {
                let db = pg::TestDatabase::create().await;
                let store = task_mcp::store::open(&db.url, 2).expect("open postgres store");
                TestStore { store, url: db.url.clone(), _guard: Box::new(db) }
            }
            Backend::Sqlite => {
                let file = sqlite::TestFile::create();
                let store = task_mcp::store::open(&file.url, 2).expect("open sqlite store");
                TestStore { store, url: file.url.clone(), _guard: Box::new(file) }
            }
        }
    }
}

/// The parts of a process (store, service, publisher) over a test's store and, optionally, Redis
/// (`(url, stream prefix)`).
/// A command that runs the built binary, under `umask` when given (set first, through `sh`). A `std`
/// command: the stdio helper turns it into tokio's with `Command::from`.
pub fn binary_command(umask: Option<u32>) -> std::process::Command {
    let binary = env!("CARGO_BIN_EXE_task-mcp");
    match umask {
        Some(mask) => {
            let mut command = std::process::Command::new("sh");
            command.args(["-c", &format!("umask {mask:03o} && exec \"$0\" \"$@\""), binary]);
            command
        }
        None => std::process::Command::new(binary),
    }
}

pub fn app(database_url: &str, redis: Option<(&str, &str)>) -> task_mcp::wiring::Parts {
    // A SQLite store's data directory is its own temporary one; PostgreSQL needs none on disk.
    let data_dir = match database_url.strip_prefix("sqlite://") {
        Some(path) => std::path::Path::new(path).parent().expect("file in a directory").to_path_buf(),
        None => std::env::temp_dir().join(format!("task-mcp-test-{}", uuid::Uuid::new_v4().simple())),
    };
    let settings = task_mcp::config::Settings {
        database_url: database_url.to_owned(),
        database_read_url: None,
        redis_url: redis.map(|(url, _)| url.to_owned()),
        redis_cluster_urls: Vec::new(),
        stream_prefix: redis.map(|(_, prefix)| prefix.to_owned()).unwrap_or_else(|| "tasks".to_owned()),
        stream_maxlen: 10_000,
        event_retention_days: 7,
        data_dir,
        pool_size: 2,
        user: Some("tester@example.com".to_owned()),
    };
    task_mcp::wiring::Parts::build(settings).expect("build app")
}

/// Runs a contract test once per backend, as `name::postgres` and `name::sqlite`.
#[macro_export]
macro_rules! per_backend {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::support::Backend::Postgres).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            }
        )+
    };
}
