//! The schema: the SQL files in `sql/postgres/`, embedded in the binary and applied by refinery under a
//! session advisory lock, so ten agent sessions starting at once apply each migration exactly once.

use deadpool_postgres::Object;

use super::{Fail, Inner, Outcome, chain};
use crate::error::Error;

mod embedded {
    refinery::embed_migrations!("sql/postgres");
}

/// The advisory lock key that orders migrating processes ("tmcp-mig" in ASCII).
const MIGRATION_LOCK: i64 = 0x746d_6370_2d6d_6967;

/// refinery's own table, where it records each applied migration.
const HISTORY_TABLE: &str = "refinery_schema_history";

/// Applies what is pending; returns the last applied version.
pub(super) async fn run(inner: &Inner) -> Outcome<i64> {
    let mut client = inner.pool.get().await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let applied = apply(inner, &mut client).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    if applied.is_err() || unlocked.is_err() {
        // A session lock must never go back into the pool: closing the connection releases it.
        drop(Object::take(client));
    }
    let version = applied?;
    unlocked?;
    Ok(version)
}

async fn apply(inner: &Inner, client: &mut Object) -> Outcome<i64> {
    let pg: &mut tokio_postgres::Client = client;
    let report = embedded::migrations::runner()
        .set_migration_table_name(HISTORY_TABLE)
        .run_async(pg)
        .await
        .map_err(|e| migration_error(inner, &e))?;
    for migration in report.applied_migrations() {
        tracing::info!(store = %inner.location, version = migration.version(), name = migration.name(), "migration applied");
    }
    let numbered = super::task_keys::number_existing(client).await?;
    if numbered > 0 {
        tracing::info!(store = %inner.location, tasks = numbered, "existing tasks given keys");
    }
    last_version(client).await
}

/// The last applied version, without migrating (0 for an empty database).
pub(super) async fn version(inner: &Inner) -> Outcome<i64> {
    let client = inner.pool.get().await?;
    let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE]).await?.try_get(0)?;
    if !exists {
        return Ok(0);
    }
    last_version(&client).await
}

async fn last_version(client: &Object) -> Outcome<i64> {
    let sql = format!("SELECT coalesce(max(version), 0)::bigint FROM {HISTORY_TABLE}");
    Ok(client.query_one(&sql, &[]).await?.try_get(0)?)
}

/// refinery wraps the driver's error: find it to tell "server down" from "bad migration".
fn migration_error(inner: &Inner, e: &refinery::Error) -> Fail {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(pg) = s.downcast_ref::<tokio_postgres::Error>() {
            return Fail::Store(match inner.pg_error(pg) {
                Error::Internal(detail) => Error::Internal(format!("migration failed: {e}: {detail}")),
                other => other,
            });
        }
        source = s.source();
    }
    let detail = chain(e);
    tracing::error!(store = %inner.location, "migration failed: {detail}");
    Fail::Store(Error::Internal(format!("migration failed: {detail}")))
}
