//! A PostgreSQL database of its own for one test: created from the server's `postgres` database,
//! dropped `WITH (FORCE)` when the test is over. The server is `TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`.

use tokio_postgres::NoTls;
use uuid::Uuid;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDatabase {
    /// The URL of this test's database.
    pub url: String,
    name: String,
    admin_url: String,
}

/// The URL tests create and drop their databases through.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let name = format!("tm_test_{}", Uuid::new_v4().simple());
        execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
        TestDatabase { url: with_database(&admin_url, &name), name, admin_url }
    }
}

impl Drop for TestDatabase {
    /// Drop is synchronous and may run inside the test's runtime: the database is dropped from a
    /// thread of its own, with its own small runtime. A failure is reported, never a panic.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(try_execute(&admin_url, &sql)).map_err(|e| format!("{e:#}"))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("warning: test database {} was not dropped: the dropping thread panicked", self.name),
        }
    }
}

/// Runs SQL (several statements allowed) on a connection of its own; panics with the reason.
pub async fn execute(url: &str, sql: &str) {
    if let Err(e) = try_execute(url, sql).await {
        panic!("{sql:?} on {}: {e:#}", task_mcp::store::redact_url(url));
    }
}

async fn try_execute(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    result
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
