//! Test helpers: a fresh store per test (its own PostgreSQL database or SQLite file), and more.

pub mod mcp;
pub mod pg;
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
