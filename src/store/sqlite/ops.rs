//! The SQL of every store operation, as blocking functions over one connection or transaction.
//! Each write function runs inside the caller's transaction: the change, its history rows and its event
//! row commit together or not at all.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use uuid::Uuid;

use super::conn::Outcome;
use super::rows::{self, micros, uuid_text};
use super::{task_keys, work};
use crate::domain::{Access, KeyName};
use crate::domain::{
    Comment, Event, HistoryEntry, Record, RepoName, Repository, Task, TaskPatch, User, UserKey, check_version,
    commented, deleted, link_changes,
};
use crate::error::Error;
use crate::store::payload::Payload;
use crate::store::{ApiKey, CreatedTask, EventBounds, NewComment, NewTask, TaskDeletion, TaskQuery, TaskUpdate};

fn task_by(conn: &Connection, condition: &str, params: impl rusqlite::Params) -> rusqlite::Result<Option<Task>> {
    let sql = format!("SELECT {} {} WHERE {condition}", rows::TASK_COLUMNS, rows::TASK_FROM);
    conn.prepare_cached(&sql)?.query_row(params, rows::task).optional()
}

/// A task that is not deleted.
pub(super) fn live_task(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<Task>> {
    task_by(conn, "t.id = ?1 AND t.deleted_at IS NULL", [uuid_text(id)])
}

pub(super) fn find_user(conn: &Connection, key: &UserKey) -> rusqlite::Result<Option<User>> {
    let (condition, value) = match key {
        UserKey::Id(id) => ("id", uuid_text(*id)),
        UserKey::Email(email) => ("email", email.as_str().to_owned()),
    };
    let sql = format!("SELECT {} FROM users WHERE {condition} = ?1", rows::USER_COLUMNS);
    conn.prepare_cached(&sql)?.query_row([value], rows::user).optional()
}

/// A user by id (unknown: `Invalid` for `field`) or by email (created on first use). Writes: call it
/// inside a write transaction.
pub(super) fn resolve_user(conn: &Connection, field: &str, key: &UserKey) -> Outcome<User> {
    if let Some(user) = find_user(conn, key)? {
        return Ok(user);
    }
    match key {
        UserKey::Id(id) => Err(Error::invalid(field, format!("no user has the id {id}")).into()),
        UserKey::Email(email) => {
            let user =
                User { id: Uuid::now_v7(), email: email.as_str().to_owned(), name: None, created_at: rows::now() };
            conn.prepare_cached(
                "INSERT INTO users (id, email, name, created_at) VALUES (?1, ?2, NULL, ?3) \
                 ON CONFLICT (email) DO NOTHING",
            )?
            .execute(params![uuid_text(user.id), user.email, micros(user.created_at)])?;
            Ok(user)
        }
    }
}

pub(super) fn list_users(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let sql = format!("SELECT {} FROM users ORDER BY email", rows::USER_COLUMNS);
    conn.prepare_cached(&sql)?.query_map([], rows::user)?.collect()
}

/// The id of the repository with this name, created on first use.
fn repository_id(conn: &Connection, name: &RepoName) -> rusqlite::Result<String> {
    let found: Option<String> = conn
        .prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([name.as_str()], |row| row.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    let id = uuid_text(Uuid::now_v7());
    conn.prepare_cached("INSERT INTO repositories (id, name, url, created_at) VALUES (?1, ?2, NULL, ?3)")?
        .execute(params![id, name.as_str(), micros(rows::now())])?;
    Ok(id)
}

pub(super) fn list_repositories(conn: &Connection) -> rusqlite::Result<Vec<Repository>> {
    let sql = format!("{} ORDER BY r.name", task_keys::REPOSITORY_SELECT);
    conn.prepare_cached(&sql)?.query_map([], task_keys::repository)?.collect()
}

/// Writes what a change records: its history rows, then its event row. Returns the event's seq.
pub(super) fn write_record(conn: &Connection, record: &Record, at: DateTime<Utc>) -> rusqlite::Result<i64> {
    let task = &record.task;
    let mut history = conn.prepare_cached(
        "INSERT INTO task_history (id, task_id, field_changed, old_value, new_value, changed_by, comment, changed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for change in &record.history {
        history.execute(params![
            uuid_text(Uuid::now_v7()),
            uuid_text(task.id),
            change.field,
            change.old_value,
            change.new_value,
            record.actor,
            record.comment,
            micros(at),
        ])?;
    }
    conn.prepare_cached(
        "INSERT INTO events (event_type, task_id, actor, task, assignee_id, previous_assignee_id, repository, \
                             created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        record.kind.as_str(),
        uuid_text(task.id),
        record.actor,
        Payload::of(task).to_text(),
        task.assignee_id.map(uuid_text),
        record.previous_assignee_id.map(uuid_text),
        task.repository,
        micros(at),
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Creates a task (or finds the one an earlier create with the same idempotency key made).
/// Returns the seq of the event written, if any.
pub(super) fn create_task(conn: &Connection, new: &NewTask) -> Outcome<(CreatedTask, Option<i64>)> {
    if let Some(key) = &new.idempotency_key {
        // Inside the write transaction: no other create with this key can slip in between.
        let sql = format!(
            "SELECT {}, t.idempotency_fingerprint {} WHERE t.idempotency_owner = ?1 AND t.idempotency_key = ?2",
            rows::TASK_COLUMNS,
            rows::TASK_FROM
        );
        let earlier = conn
            .prepare_cached(&sql)?
            .query_row(params![new.owner, key.as_str()], |row| {
                Ok((rows::task(row)?, row.get::<_, Option<String>>(rows::TASK_COLUMN_COUNT)?))
            })
            .optional()?;
        if let Some((task, fingerprint)) = earlier {
            return Ok((new.replay(task, fingerprint.as_deref())?, None));
        }
    }
    let assignee = new.assignee.as_ref().map(|key| resolve_user(conn, "assignee_id", key)).transpose()?;
    let repository_id = new.repository.as_ref().map(|name| repository_id(conn, name)).transpose()?;
    let repository = repository_id.as_deref().zip(new.repository.as_ref().map(|r| r.as_str()));
    let open_blockers = work::check_new_task_links(conn, new)?;
    let key = task_keys::next_key(conn, repository)?;
    let mut record = new.draft(assignee).create(Uuid::now_v7(), key.key, &new.actor, rows::now());
    record.task.open_blockers = open_blockers;
    record.history.extend(link_changes(&new.blocked_by, &[]));
    let task = &record.task;
    conn.prepare_cached(
        "INSERT INTO tasks (id, title, description, status, priority, complexity, assignee_id, repository_id, \
                            created_by, updated_by, created_at, updated_at, version, deleted_at, idempotency_key, \
                            search_text, idempotency_owner, idempotency_fingerprint, parent_id, key_series_id, \
                            key_number) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, NULL, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        uuid_text(task.id),
        task.title,
        task.description,
        task.status.as_str(),
        task.priority.as_str(),
        task.complexity.as_str(),
        task.assignee_id.map(uuid_text),
        repository_id,
        task.created_by,
        task.updated_by,
        micros(task.created_at),
        micros(task.updated_at),
        task.version,
        new.idempotency_key.as_ref().map(|k| k.as_str()),
        rows::search_text(&task.title, task.description.as_deref()),
        new.idempotency_key.as_ref().map(|_| new.owner.as_str()),
        new.idempotency_key.as_ref().map(|_| new.fingerprint()),
        task.parent_id.map(uuid_text),
        key.series_id,
        key.number,
    ])?;
    work::insert_links(conn, task.id, &new.blocked_by)?;
    let seq = write_record(conn, &record, task.created_at)?;
    Ok((CreatedTask { task: record.task, replayed: false }, Some(seq)))
}

/// The task to change: it must exist, not be deleted, and be at `expected_version` when one is given.
fn task_to_change(conn: &Connection, id: Uuid, expected_version: Option<i64>) -> Outcome<Task> {
    let task = live_task(conn, id)?.ok_or_else(|| Error::task_not_found(id))?;
    check_version(&task, expected_version).map_err(Error::from)?;
    Ok(task)
}

/// The patch's assignee resolved to a user (`None` when the patch leaves the assignee alone).
fn resolve_assignee(conn: &Connection, patch: &TaskPatch) -> Outcome<Option<Option<User>>> {
    match &patch.assignee {
        Some(Some(key)) => Ok(Some(Some(resolve_user(conn, "assignee_id", key)?))),
        Some(None) => Ok(Some(None)),
        None => Ok(None),
    }
}

/// Applies a patch; a patch that changes nothing writes nothing. Returns the seq of the event written.
pub(super) fn update_task(conn: &Connection, update: &TaskUpdate) -> Outcome<(Task, Option<i64>)> {
    let old = task_to_change(conn, update.task_id, update.expected_version)?;
    // Links to check and to write: only those that change something (re-adding one is no change).
    let patch = &work::check_patch_links(conn, &old, &update.patch)?;
    let assignee = resolve_assignee(conn, patch)?;
    let comment = update.comment.as_ref().map(|c| c.as_str());
    let now = rows::now();
    let Some(mut record) = patch.apply(&old, assignee, &update.actor, comment, now) else {
        return Ok((old, None));
    };
    let task = &record.task;
    // The repository's id, looked up (created on first use) only when the repository changes.
    let repository_id = match &patch.repository {
        Some(name) if task.repository != old.repository => {
            Some(name.as_ref().map(|n| repository_id(conn, n)).transpose()?)
        }
        _ => None,
    };
    conn.prepare_cached(
        "UPDATE tasks SET title = ?2, description = ?3, status = ?4, priority = ?5, complexity = ?6, \
                          assignee_id = ?7, \
                          repository_id = CASE WHEN ?8 THEN ?9 ELSE repository_id END, \
                          updated_by = ?10, updated_at = ?11, version = ?12, search_text = ?13 \
         WHERE id = ?1",
    )?
    .execute(params![
        uuid_text(task.id),
        task.title,
        task.description,
        task.status.as_str(),
        task.priority.as_str(),
        task.complexity.as_str(),
        task.assignee_id.map(uuid_text),
        repository_id.is_some(),
        repository_id.flatten(),
        task.updated_by,
        micros(task.updated_at),
        task.version,
        rows::search_text(&task.title, task.description.as_deref()),
    ])?;
    work::write_work_columns(conn, task)?;
    work::write_patch_links(conn, old.id, patch)?;
    record.task.open_blockers = work::open_blockers(conn, old.id)?;
    let mut seq = write_record(conn, &record, now)?;
    if old.status.is_open() && !record.task.status.is_open() {
        seq = work::announce_unblocked(conn, old.id, &update.actor)?.unwrap_or(seq).max(seq);
    }
    Ok((record.task, Some(seq)))
}

pub(super) fn add_comment(conn: &Connection, new: &NewComment) -> Outcome<((Comment, Task), i64)> {
    let task = live_task(conn, new.task_id)?.ok_or_else(|| Error::task_not_found(new.task_id))?;
    let comment = Comment {
        id: Uuid::now_v7(),
        task_id: task.id,
        comment: new.comment.as_str().to_owned(),
        author: new.author.clone(),
        created_at: rows::now(),
    };
    conn.prepare_cached(
        "INSERT INTO task_comments (id, task_id, comment, author, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        uuid_text(comment.id),
        uuid_text(comment.task_id),
        comment.comment,
        comment.author,
        micros(comment.created_at)
    ])?;
    let seq = write_record(conn, &commented(&task, &comment), comment.created_at)?;
    Ok(((comment, task), seq))
}

pub(super) fn delete_task(conn: &Connection, deletion: &TaskDeletion) -> Outcome<(Task, i64)> {
    let old = task_to_change(conn, deletion.task_id, deletion.expected_version)?;
    let now = rows::now();
    let record = deleted(&old, &deletion.actor, deletion.reason.as_ref().map(|r| r.as_str()), now);
    let task = &record.task;
    conn.prepare_cached(
        "UPDATE tasks SET deleted_at = ?2, updated_at = ?3, updated_by = ?4, version = ?5 WHERE id = ?1",
    )?
    .execute(params![
        uuid_text(task.id),
        task.deleted_at.map(micros),
        micros(task.updated_at),
        task.updated_by,
        task.version
    ])?;
    let mut seq = write_record(conn, &record, now)?;
    if old.status.is_open() {
        // An open blocker deleted frees what waited on it, as its completion would.
        seq = work::announce_unblocked(conn, old.id, &deletion.actor)?.unwrap_or(seq).max(seq);
    }
    Ok((record.task, seq))
}

pub(super) fn list_comments(conn: &Connection, task_id: Uuid) -> rusqlite::Result<Vec<Comment>> {
    let sql = format!("SELECT {} FROM task_comments WHERE task_id = ?1 ORDER BY rowid", rows::COMMENT_COLUMNS);
    conn.prepare_cached(&sql)?.query_map([uuid_text(task_id)], rows::comment)?.collect()
}

pub(super) fn list_history(conn: &Connection, task_id: Uuid) -> rusqlite::Result<Vec<HistoryEntry>> {
    let sql = format!("SELECT {} FROM task_history WHERE task_id = ?1 ORDER BY rowid", rows::HISTORY_COLUMNS);
    conn.prepare_cached(&sql)?.query_map([uuid_text(task_id)], rows::history)?.collect()
}

/// The ids travel as one JSON array (`json_each`): one statement whatever their number.
pub(super) fn history_since(
    conn: &Connection,
    task_ids: &[Uuid],
    since: DateTime<Utc>,
) -> rusqlite::Result<Vec<HistoryEntry>> {
    let sql = format!(
        "SELECT {} FROM task_history WHERE task_id IN (SELECT value FROM json_each(?1)) AND changed_at >= ?2 \
         ORDER BY rowid",
        rows::HISTORY_COLUMNS
    );
    let ids = serde_json::to_string(&task_ids.iter().map(|id| uuid_text(*id)).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".to_owned());
    conn.prepare_cached(&sql)?.query_map(params![ids, micros(since)], rows::history)?.collect()
}

/// One query: every filter given, ANDed, over tasks that are not deleted, in keyset order. The SQL names
/// only the filters present, so SQLite can pick the index for the most selective one.
pub(super) fn list_tasks(conn: &Connection, query: &TaskQuery) -> rusqlite::Result<Vec<Task>> {
    let (sql, values) = list_tasks_sql(query);
    conn.prepare_cached(&sql)?.query_map(params_from_iter(values), rows::task)?.collect()
}

/// The SQL of [`list_tasks`] and its bound values.
fn list_tasks_sql(query: &TaskQuery) -> (String, Vec<Value>) {
    let mut sql = format!("SELECT {} {} WHERE t.deleted_at IS NULL", rows::TASK_COLUMNS, rows::TASK_FROM);
    let mut values: Vec<Value> = Vec::new();
    let mut bind = |sql: &mut String, condition: &str, value: Value| {
        values.push(value);
        sql.push_str(&condition.replace('?', &format!("?{}", values.len())));
    };
    if let Some(assignee) = query.assignee_id {
        bind(&mut sql, " AND t.assignee_id = ?", Value::Text(uuid_text(assignee)));
    }
    if let Some(repository) = &query.repository {
        bind(
            &mut sql,
            " AND t.repository_id = (SELECT id FROM repositories WHERE name = ?)",
            Value::Text(repository.as_str().to_owned()),
        );
    }
    // Status and priority are written into the SQL too (see the limit below): each is one of a few
    // fixed words, never text from a caller.
    if let Some(status) = query.status {
        sql.push_str(&format!(" AND t.status = '{}'", status.as_str()));
    }
    if let Some(user) = query.ready_for {
        bind(
            &mut sql,
            &format!(
                " AND t.status = 'not_started' AND (t.assignee_id IS NULL OR t.assignee_id = ?) AND NOT EXISTS ({})",
                work::OPEN_BLOCKER
            ),
            Value::Text(uuid_text(user)),
        );
    }
    if let Some(parent) = query.parent_id {
        bind(&mut sql, " AND t.parent_id = ?", Value::Text(uuid_text(parent)));
    }
    if let Some(since) = query.changed_since {
        bind(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.changed_at >= ?)",
            Value::Integer(micros(since)),
        );
    }
    if let Some(priority) = query.priority {
        sql.push_str(&format!(" AND t.priority = '{}'", priority.as_str()));
    }
    if let Some(text) = &query.query {
        // `search_text` is lower-cased with Unicode rules; so is the pattern (escapes are ASCII).
        bind(&mut sql, " AND t.search_text LIKE ? ESCAPE '\\'", Value::Text(text.like_pattern().to_lowercase()));
    }
    if let Some(after) = query.after {
        // PostgreSQL's `(updated_at, id) < (a, b)`: lower-case hyphenated text compares as uuids do.
        bind(&mut sql, " AND (t.updated_at, t.id) < (?", Value::Integer(micros(after.updated_at)));
        bind(&mut sql, ", ?)", Value::Text(uuid_text(after.id)));
    }
    // The limit is written into the SQL, not bound: SQLite re-plans a statement whose bound LIMIT (or
    // indexed-column) value changes on every execution, which cost more than the query itself. A
    // number is safe to write, and the cache keeps one statement per limit in use.
    sql.push_str(&format!(" ORDER BY t.updated_at DESC, t.id DESC LIMIT {}", query.limit));
    (sql, values)
}

pub(super) fn events_after(conn: &Connection, after_seq: i64, limit: u32) -> rusqlite::Result<Vec<Event>> {
    let sql = format!("SELECT {} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2", rows::EVENT_COLUMNS);
    conn.prepare_cached(&sql)?.query_map(params![after_seq, limit], rows::event)?.collect()
}

/// The largest seq ever written: AUTOINCREMENT keeps it in `sqlite_sequence` even once pruned.
pub(super) const LATEST_SEQ: &str = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)";

pub(super) fn event_bounds(conn: &Connection) -> rusqlite::Result<EventBounds> {
    let sql = format!(
        "SELECT (SELECT min(seq) FROM events), ({LATEST_SEQ}), \
                coalesce((SELECT pruned_through FROM event_log_state), 0)"
    );
    conn.prepare_cached(&sql)?
        .query_row([], |row| Ok(EventBounds { oldest: row.get(0)?, latest: row.get(1)?, pruned_through: row.get(2)? }))
}

pub(super) fn unpublished_events(conn: &Connection, limit: u32) -> rusqlite::Result<Vec<Event>> {
    let sql = format!("SELECT {} FROM events WHERE published_at IS NULL ORDER BY seq LIMIT ?1", rows::EVENT_COLUMNS);
    conn.prepare_cached(&sql)?.query_map([limit], rows::event)?.collect()
}

pub(super) fn mark_published(conn: &Connection, seqs: &[i64]) -> rusqlite::Result<()> {
    let now = micros(rows::now());
    let mut stmt =
        conn.prepare_cached("UPDATE events SET published_at = ?2 WHERE seq = ?1 AND published_at IS NULL")?;
    for seq in seqs {
        stmt.execute(params![seq, now])?;
    }
    Ok(())
}

pub(super) fn prune_events(
    conn: &Connection,
    before: DateTime<Utc>,
    include_unpublished: bool,
    batch: u32,
) -> rusqlite::Result<u64> {
    let gone: Vec<i64> = conn
        .prepare_cached(
            "DELETE FROM events WHERE seq IN ( \
                 SELECT seq FROM events WHERE created_at < ?1 AND (?2 OR published_at IS NOT NULL) \
                 ORDER BY seq LIMIT ?3) \
             RETURNING seq",
        )?
        .query_map(params![micros(before), include_unpublished, batch], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // The watermark moves in the same transaction: a resume from below it is told to resync.
    if let Some(highest) = gone.iter().max() {
        conn.prepare_cached("UPDATE event_log_state SET pruned_through = max(pruned_through, ?1)")?
            .execute([highest])?;
    }
    Ok(gone.len() as u64)
}

fn api_key_by(conn: &Connection, condition: &str, params: impl rusqlite::Params) -> rusqlite::Result<Vec<ApiKey>> {
    let sql = format!("SELECT {} FROM api_keys k JOIN users u ON u.id = k.user_id {condition}", rows::API_KEY_COLUMNS);
    conn.prepare_cached(&sql)?.query_map(params, rows::api_key)?.collect()
}

pub(super) fn create_api_key(
    conn: &Connection,
    user_id: Uuid,
    name: &KeyName,
    key_hash: &str,
    access: Access,
) -> Outcome<ApiKey> {
    if find_user(conn, &UserKey::Id(user_id))?.is_none() {
        return Err(Error::invalid("user_id", format!("no user has the id {user_id}")).into());
    }
    let id = Uuid::now_v7();
    let inserted = conn
        .prepare_cached(
            "INSERT INTO api_keys (id, user_id, name, key_hash, created_at, scope) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            uuid_text(id),
            uuid_text(user_id),
            name.as_str(),
            key_hash,
            micros(rows::now()),
            access.as_str()
        ]);
    match inserted {
        Err(rusqlite::Error::SqliteFailure(_, Some(message))) if message.contains("api_keys.name") => {
            return Err(crate::store::api_key_name_taken(name).into());
        }
        other => other?,
    };
    api_key_by(conn, "WHERE k.id = ?1", [uuid_text(id)])?
        .pop()
        .ok_or_else(|| Error::Internal("the API key just created is missing".into()).into())
}

pub(super) fn list_api_keys(conn: &Connection) -> rusqlite::Result<Vec<ApiKey>> {
    api_key_by(conn, "ORDER BY k.created_at, k.name", [])
}

pub(super) fn revoke_api_key(conn: &Connection, id_or_name: &str) -> rusqlite::Result<bool> {
    let id = Uuid::parse_str(id_or_name.trim()).ok().map(uuid_text);
    let changed = conn
        .prepare_cached("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?1) WHERE id = ?2 OR name = ?3")?
        .execute(params![micros(rows::now()), id, id_or_name])?;
    Ok(changed > 0)
}

/// The key (not revoked) with this hash and its user, without recording anything.
pub(super) fn find_api_key(conn: &Connection, key_hash: &str) -> rusqlite::Result<Option<(ApiKey, User)>> {
    let sql = format!(
        "SELECT {} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
        rows::API_KEY_COLUMNS
    );
    conn.prepare_cached(&sql)?
        .query_row([key_hash], |row| Ok((rows::api_key(row)?, rows::api_key_user(row)?)))
        .optional()
}

/// Records a key's use; returns it as it is now, or `None` if it was revoked meanwhile.
pub(super) fn touch_api_key(conn: &Connection, key_hash: &str) -> rusqlite::Result<Option<(ApiKey, User)>> {
    let changed = conn
        .prepare_cached("UPDATE api_keys SET last_used_at = ?1 WHERE key_hash = ?2 AND revoked_at IS NULL")?
        .execute(params![micros(rows::now()), key_hash])?;
    if changed == 0 {
        return Ok(None);
    }
    find_api_key(conn, key_hash)
}

/// The version of the newest migration applied (0 before the first).
pub(super) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history')",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    conn.query_row("SELECT coalesce(max(version), 0) FROM refinery_schema_history", [], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::domain::{Priority, Status};

    /// A listing runs on its cached statement as prepared: SQLite re-plans a statement on every call
    /// when a bound value can change its plan (a bound LIMIT did, and cost more than the query).
    #[test]
    fn a_repeated_listing_is_not_re_planned() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::embedded::migrations::runner().run(&mut conn).unwrap();
        let queries = [
            TaskQuery { limit: 51, ..TaskQuery::default() },
            TaskQuery {
                limit: 51,
                status: Some(Status::InProgress),
                priority: Some(Priority::High),
                ..TaskQuery::default()
            },
        ];
        for query in queries {
            for _ in 0..5 {
                list_tasks(&conn, &query).unwrap();
            }
            let (sql, _) = list_tasks_sql(&query);
            let replanned = conn.prepare_cached(&sql).unwrap().get_status(StatementStatus::RePrepare);
            assert_eq!(replanned, 0, "{sql}");
        }
    }
}
