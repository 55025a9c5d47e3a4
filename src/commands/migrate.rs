//! `task-mcp migrate`: applies the store's migrations now (every other command does it on first use).

use crate::store::Store;

pub async fn run(store: &dyn Store) -> anyhow::Result<()> {
    let version = store.migrate().await?;
    tracing::info!(store = %store.info().location, version, "migrations applied");
    Ok(())
}
