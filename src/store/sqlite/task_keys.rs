//! Task keys in SQLite: the next number of a series (one writer at a time, so no two creators share
//! a key), a repository's series created with its first task under the first free prefix, keys
//! resolved through every prefix a series has had, prefix renames, and the numbering of tasks made
//! before keys existed.

use rusqlite::{Connection, OptionalExtension, params};

use super::conn::Outcome;
use super::rows;
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

/// Takes the next number of the series of `repository` (its id as stored, and its name), creating
/// the series with the repository's first task. Call inside a write transaction.
pub(super) fn next_key(conn: &Connection, repository: Option<(&str, &str)>) -> Outcome<NewKey> {
    let series_id = match repository {
        None => DEFAULT_SERIES,
        Some((id, name)) => series_of(conn, id, name)?,
    };
    let take = |conn: &Connection| -> rusqlite::Result<Option<(String, i64)>> {
        conn.prepare_cached(
            "UPDATE key_series SET last_number = last_number + 1 WHERE id = ?1 RETURNING prefix, last_number",
        )?
        .query_row([series_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
    };
    let (prefix, number) = match take(conn)? {
        Some(taken) => taken,
        None => {
            // The first task without a repository: its series is made now (a store's rows are only its
            // data, so a copy into an empty store never meets a row the migration made).
            conn.prepare_cached("INSERT INTO key_series (id, prefix) VALUES (?1, ?2)")?
                .execute(params![DEFAULT_SERIES, DEFAULT_PREFIX])?;
            conn.prepare_cached("INSERT INTO key_prefixes (prefix, series_id) VALUES (?1, ?2)")?
                .execute(params![DEFAULT_PREFIX, DEFAULT_SERIES])?;
            take(conn)?.ok_or_else(|| Error::Internal("the default key series vanished".into()))?
        }
    };
    Ok(NewKey { series_id, number, key: format!("{prefix}-{number}") })
}

/// The series of a repository, created under the first prefix candidate nobody has (now or before).
fn series_of(conn: &Connection, repository_id: &str, name: &str) -> Outcome<i64> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM key_series WHERE repository_id = ?1")?
        .query_row([repository_id], |row| row.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    for candidate in KeyPrefix::candidates(name).take(1000) {
        let taken: bool = conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM key_prefixes WHERE prefix = ?1)")?
            .query_row([candidate.as_str()], |row| row.get(0))?;
        if taken {
            continue;
        }
        conn.prepare_cached("INSERT INTO key_series (prefix, repository_id) VALUES (?1, ?2)")?
            .execute(params![candidate.as_str(), repository_id])?;
        let id = conn.last_insert_rowid();
        conn.prepare_cached("INSERT INTO key_prefixes (prefix, series_id) VALUES (?1, ?2)")?
            .execute(params![candidate.as_str(), id])?;
        return Ok(id);
    }
    Err(Error::Internal(format!("no free key prefix for the repository {name}")).into())
}

/// The id of the task a key names (deleted or not), through any prefix its series has had.
pub(super) fn find_task_id(conn: &Connection, key: &TaskKey) -> Outcome<Option<uuid::Uuid>> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT t.id FROM key_prefixes p JOIN tasks t ON t.key_series_id = p.series_id \
             WHERE p.prefix = ?1 AND t.key_number = ?2",
        )?
        .query_row(params![key.prefix.as_str(), key.number], |row| row.get(0))
        .optional()?;
    id.map(|raw| uuid::Uuid::parse_str(&raw).map_err(|_| Error::Internal(format!("{raw:?} is not a UUID")).into()))
        .transpose()
}

/// `id, name, url, created_at, open_task_count, key_prefix` of the repositories `r`.
pub(super) const REPOSITORY_SELECT: &str = "SELECT r.id, r.name, r.url, r.created_at, \
     (SELECT count(*) FROM tasks t WHERE t.repository_id = r.id AND t.deleted_at IS NULL), \
     (SELECT ks.prefix FROM key_series ks WHERE ks.repository_id = r.id) FROM repositories r";

pub(super) fn repository(row: &rusqlite::Row<'_>) -> rusqlite::Result<Repository> {
    Ok(Repository {
        id: rows::get_uuid(row, 0)?,
        name: row.get(1)?,
        url: row.get(2)?,
        created_at: rows::get_time(row, 3)?,
        open_task_count: row.get(4)?,
        key_prefix: row.get(5)?,
    })
}

/// Gives a repository's series a new prefix; the old one keeps naming the same series. A prefix
/// another series has (or had) is refused, naming `key_prefix`.
pub(super) fn rename(conn: &Connection, repository: &RepoName, prefix: &KeyPrefix) -> Outcome<Repository> {
    let not_found = || Error::NotFound { what: "repository", id: repository.as_str().to_owned() };
    let repository_id: String = conn
        .prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([repository.as_str()], |row| row.get(0))
        .optional()?
        .ok_or_else(not_found)?;
    let series_id = series_of(conn, &repository_id, repository.as_str())?;
    let owner: Option<i64> = conn
        .prepare_cached("SELECT series_id FROM key_prefixes WHERE prefix = ?1")?
        .query_row([prefix.as_str()], |row| row.get(0))
        .optional()?;
    match owner {
        Some(owner) if owner != series_id => {
            return Err(Error::invalid(
                "key_prefix",
                format!("the key prefix {prefix} is taken by another repository"),
            )
            .into());
        }
        Some(_) => {}
        None => {
            conn.prepare_cached("INSERT INTO key_prefixes (prefix, series_id) VALUES (?1, ?2)")?
                .execute(params![prefix.as_str(), series_id])?;
        }
    }
    conn.prepare_cached("UPDATE key_series SET prefix = ?2 WHERE id = ?1")?
        .execute(params![series_id, prefix.as_str()])?;
    let sql = format!("{REPOSITORY_SELECT} WHERE r.id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([repository_id], self::repository)?)
}

/// Whether some task has no key yet (made before keys existed).
pub(super) fn any_unnumbered(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM tasks WHERE key_number IS NULL)", [], |row| row.get(0))
}

/// Numbers the tasks that have no key yet, in creation order, each in its repository's series.
/// Call inside a write transaction.
pub(super) fn number_existing(conn: &Connection) -> Outcome<u64> {
    let pending: Vec<(String, Option<String>, Option<String>)> = conn
        .prepare(
            "SELECT t.id, t.repository_id, r.name FROM tasks t LEFT JOIN repositories r ON r.id = t.repository_id \
             WHERE t.key_number IS NULL ORDER BY t.created_at, t.id",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, repository_id, name) in &pending {
        let key = next_key(conn, repository_id.as_deref().zip(name.as_deref()))?;
        conn.prepare_cached("UPDATE tasks SET key_series_id = ?2, key_number = ?3 WHERE id = ?1")?.execute(params![
            id,
            key.series_id,
            key.number
        ])?;
    }
    Ok(pending.len() as u64)
}
