//! Task keys in PostgreSQL: the next number of a series (taken under the series row's lock, so
//! concurrent creators never share a key), a repository's series created with its first task under
//! the first free prefix, keys resolved through every prefix a series has had, prefix renames, and
//! the numbering of tasks made before keys existed.

use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::{Inner, Outcome};
use crate::domain::{DEFAULT_PREFIX, KeyPrefix, RepoName, Repository, TaskKey};
use crate::error::Error;

/// The series of tasks without a repository (prefix `T`), made with the first such task.
const DEFAULT_SERIES: i64 = 0;

/// A key given to a new task: its series, its number, and the key as shown.
pub(super) struct NewKey {
    pub series_id: i64,
    pub number: i64,
    pub key: String,
}

/// Takes the next number of the series of `repository` (its id and name), creating the series with
/// the repository's first task. The series row stays locked until the transaction ends.
pub(super) async fn next_key(client: &impl GenericClient, repository: Option<(Uuid, &str)>) -> Outcome<NewKey> {
    let series_id = match repository {
        None => DEFAULT_SERIES,
        Some((id, name)) => series_of(client, id, name).await?,
    };
    let statement = client
        .prepare_cached(
            "UPDATE key_series SET last_number = last_number + 1 WHERE id = $1 RETURNING prefix, last_number",
        )
        .await?;
    let row = match client.query_opt(&statement, &[&series_id]).await? {
        Some(row) => row,
        None => {
            // The first task without a repository: its series is made now (a store's rows are only its
            // data, so a copy into an empty store never meets a row the migration made).
            let create = client
                .prepare_cached(
                    "WITH s AS (INSERT INTO key_series (id, prefix) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id) \
                     INSERT INTO key_prefixes (prefix, series_id) SELECT $2, id FROM s",
                )
                .await?;
            client.execute(&create, &[&DEFAULT_SERIES, &DEFAULT_PREFIX]).await?;
            client.query_one(&statement, &[&series_id]).await?
        }
    };
    let (prefix, number): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok(NewKey { series_id, number, key: format!("{prefix}-{number}") })
}

/// The series of a repository, created under the first prefix candidate nobody has (now or before).
async fn series_of(client: &impl GenericClient, repository_id: Uuid, name: &str) -> Outcome<i64> {
    let find = client.prepare_cached("SELECT id FROM key_series WHERE repository_id = $1").await?;
    if let Some(row) = client.query_opt(&find, &[&repository_id]).await? {
        return Ok(row.try_get(0)?);
    }
    // ON CONFLICT DO NOTHING covers both unique columns: a concurrent creator in the same repository
    // (found on the next read) and a prefix another series holds (try the next candidate).
    let insert = client
        .prepare_cached(
            "INSERT INTO key_series (prefix, repository_id) SELECT $1, $2 \
             WHERE NOT EXISTS (SELECT 1 FROM key_prefixes WHERE prefix = $1) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .await?;
    let alias = client.prepare_cached("INSERT INTO key_prefixes (prefix, series_id) VALUES ($1, $2)").await?;
    for candidate in KeyPrefix::candidates(name).take(1000) {
        if let Some(row) = client.query_opt(&insert, &[&candidate.as_str(), &repository_id]).await? {
            let id: i64 = row.try_get(0)?;
            client.execute(&alias, &[&candidate.as_str(), &id]).await?;
            return Ok(id);
        }
        if let Some(row) = client.query_opt(&find, &[&repository_id]).await? {
            return Ok(row.try_get(0)?);
        }
    }
    Err(Error::Internal(format!("no free key prefix for the repository {name}")).into())
}

/// The id of the task a key names (deleted or not), through any prefix its series has had.
pub(super) async fn find_task_id(client: deadpool_postgres::Object, key: &TaskKey) -> Outcome<Option<Uuid>> {
    let statement = client
        .prepare_cached(
            "SELECT t.id FROM key_prefixes p JOIN tasks t ON t.key_series_id = p.series_id \
             WHERE p.prefix = $1 AND t.key_number = $2",
        )
        .await?;
    let row = client.query_opt(&statement, &[&key.prefix.as_str(), &key.number]).await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Gives a repository's series a new prefix; the old one keeps naming the same series. A prefix
/// another series has (or had) is refused, naming `key_prefix`.
pub(super) async fn rename(inner: &Inner, repository: &RepoName, prefix: &KeyPrefix) -> Outcome<Repository> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let repository_id = super::lookup::existing_repository_id(&tx, repository).await?;
    let series_id = series_of(&tx, repository_id, repository.as_str()).await?;
    let owner = tx.prepare_cached("SELECT series_id FROM key_prefixes WHERE prefix = $1").await?;
    match tx.query_opt(&owner, &[&prefix.as_str()]).await? {
        Some(row) if row.try_get::<_, i64>(0)? != series_id => return Err(taken(prefix).into()),
        Some(_) => {}
        None => {
            let insert = tx
                .prepare_cached("INSERT INTO key_prefixes (prefix, series_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .await?;
            if tx.execute(&insert, &[&prefix.as_str(), &series_id]).await? == 0 {
                return Err(taken(prefix).into());
            }
        }
    }
    let update = tx.prepare_cached("UPDATE key_series SET prefix = $2 WHERE id = $1").await?;
    tx.execute(&update, &[&series_id, &prefix.as_str()]).await?;
    tx.commit().await?;
    super::lookup::repository(&client, repository).await
}

fn taken(prefix: &KeyPrefix) -> Error {
    Error::invalid("key_prefix", format!("the key prefix {prefix} is taken by another repository"))
}

/// Numbers the tasks that have no key yet, in creation order, each in its repository's series:
/// the tasks made before keys existed. Run after migrating, under the migration lock.
pub(super) async fn number_existing(client: &mut deadpool_postgres::Object) -> Outcome<u64> {
    let any: bool =
        client.query_one("SELECT EXISTS (SELECT 1 FROM tasks WHERE key_number IS NULL)", &[]).await?.try_get(0)?;
    if !any {
        return Ok(0);
    }
    let tx: Transaction<'_> = client.transaction().await?;
    let numbered = number_pending(&tx).await?;
    tx.commit().await?;
    Ok(numbered)
}

/// Numbers the tasks without a key, in creation order, inside the caller's transaction.
pub(super) async fn number_pending(tx: &Transaction<'_>) -> Outcome<u64> {
    let pending = tx
        .query(
            "SELECT t.id, t.repository_id, r.name FROM tasks t LEFT JOIN repositories r ON r.id = t.repository_id \
             WHERE t.key_number IS NULL ORDER BY t.created_at, t.id",
            &[],
        )
        .await?;
    let set = tx.prepare_cached("UPDATE tasks SET key_series_id = $2, key_number = $3 WHERE id = $1").await?;
    for row in &pending {
        let id: Uuid = row.try_get(0)?;
        let repository_id: Option<Uuid> = row.try_get(1)?;
        let name: Option<String> = row.try_get(2)?;
        let key = next_key(tx, repository_id.zip(name.as_deref())).await?;
        tx.execute(&set, &[&id, &key.series_id, &key.number]).await?;
    }
    Ok(pending.len() as u64)
}
