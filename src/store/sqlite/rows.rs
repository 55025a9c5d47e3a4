//! How values are stored in SQLite and read back: UUIDs as lower-case hyphenated text (it sorts as
//! PostgreSQL sorts uuids), times as integer microseconds since the epoch (UTC), and the row mappers.

use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Type;
use uuid::Uuid;

use crate::domain::{Access, Claim, Comment, Complexity, Event, EventKind, HistoryEntry, Priority, Status, Task, User};
use crate::store::{ApiKey, payload};

/// Now, at the precision stored (PostgreSQL keeps microseconds too), so what a write returns equals
/// what a later read returns.
pub(super) fn now() -> DateTime<Utc> {
    micros_to_time(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now)
}

pub(super) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn micros_to_time(v: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
}

pub(super) fn uuid_text(id: Uuid) -> String {
    // `Display` of a Uuid is the lower-case hyphenated form, which is what the keyset order relies on.
    id.hyphenated().to_string()
}

fn conversion(idx: usize, ty: Type, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, ty, what.into())
}

pub(super) fn get_uuid(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let raw: String = row.get(idx)?;
    Uuid::parse_str(&raw).map_err(|_| conversion(idx, Type::Text, format!("{raw:?} is not a UUID")))
}

pub(super) fn get_opt_uuid(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Uuid>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(raw) => {
            Uuid::parse_str(&raw).map(Some).map_err(|_| conversion(idx, Type::Text, format!("{raw:?} is not a UUID")))
        }
    }
}

pub(super) fn get_time(row: &Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let v: i64 = row.get(idx)?;
    micros_to_time(v).ok_or_else(|| conversion(idx, Type::Integer, format!("{v} is not a time")))
}

pub(super) fn get_opt_time(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(v) => {
            micros_to_time(v).map(Some).ok_or_else(|| conversion(idx, Type::Integer, format!("{v} is not a time")))
        }
    }
}

fn get_closed<T>(row: &Row<'_>, idx: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let raw: String = row.get(idx)?;
    parse(&raw).ok_or_else(|| conversion(idx, Type::Text, format!("{raw:?} is not a known value")))
}

/// The columns [`task`] reads, from `tasks t` joined to its assignee `u` and repository `r`.
pub(super) const TASK_COLUMNS: &str = "t.id, t.title, t.description, t.status, t.priority, t.complexity, \
     t.assignee_id, u.email, r.name, t.created_by, t.updated_by, t.created_at, t.updated_at, t.version, t.deleted_at, \
     t.parent_id, t.claim_holder, t.claim_agent, t.claim_expires_at, t.claim_lapsed_holder, \
     (SELECT count(*) FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
     WHERE l.task_id = t.id AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL), \
     ks.prefix || '-' || t.key_number";

/// How many columns [`TASK_COLUMNS`] names (a query may read more after them).
pub(super) const TASK_COLUMN_COUNT: usize = 22;

/// `FROM` with the joins [`TASK_COLUMNS`] needs.
pub(super) const TASK_FROM: &str = "FROM tasks t LEFT JOIN users u ON u.id = t.assignee_id \
     LEFT JOIN repositories r ON r.id = t.repository_id LEFT JOIN key_series ks ON ks.id = t.key_series_id";

pub(super) fn task(row: &Row<'_>) -> rusqlite::Result<Task> {
    Ok(Task {
        id: get_uuid(row, 0)?,
        key: row.get::<_, Option<String>>(21)?.unwrap_or_default(),
        title: row.get(1)?,
        description: row.get(2)?,
        status: get_closed(row, 3, Status::from_stored)?,
        priority: get_closed(row, 4, Priority::from_stored)?,
        complexity: get_closed(row, 5, Complexity::from_stored)?,
        assignee_id: get_opt_uuid(row, 6)?,
        assignee_email: row.get(7)?,
        repository: row.get(8)?,
        created_by: row.get(9)?,
        updated_by: row.get(10)?,
        created_at: get_time(row, 11)?,
        updated_at: get_time(row, 12)?,
        version: row.get(13)?,
        deleted_at: get_opt_time(row, 14)?,
        parent_id: get_opt_uuid(row, 15)?,
        claim: match (row.get::<_, Option<String>>(16)?, get_opt_time(row, 18)?) {
            (Some(holder), Some(expires_at)) => Some(Claim { holder, agent: row.get(17)?, expires_at }),
            _ => None,
        },
        lapsed_holder: row.get(19)?,
        open_blockers: row.get(20)?,
    })
}

pub(super) const USER_COLUMNS: &str = "id, email, name, created_at";

pub(super) fn user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User { id: get_uuid(row, 0)?, email: row.get(1)?, name: row.get(2)?, created_at: get_time(row, 3)? })
}

pub(super) const COMMENT_COLUMNS: &str = "id, task_id, comment, author, created_at";

pub(super) fn comment(row: &Row<'_>) -> rusqlite::Result<Comment> {
    Ok(Comment {
        id: get_uuid(row, 0)?,
        task_id: get_uuid(row, 1)?,
        comment: row.get(2)?,
        author: row.get(3)?,
        created_at: get_time(row, 4)?,
    })
}

pub(super) const HISTORY_COLUMNS: &str =
    "id, task_id, field_changed, old_value, new_value, changed_by, comment, changed_at";

pub(super) fn history(row: &Row<'_>) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        id: get_uuid(row, 0)?,
        task_id: get_uuid(row, 1)?,
        field_changed: row.get(2)?,
        old_value: row.get(3)?,
        new_value: row.get(4)?,
        changed_by: row.get(5)?,
        comment: row.get(6)?,
        changed_at: get_time(row, 7)?,
    })
}

pub(super) const EVENT_COLUMNS: &str =
    "seq, event_type, task_id, actor, task, assignee_id, previous_assignee_id, repository, created_at";

pub(super) fn event(row: &Row<'_>) -> rusqlite::Result<Event> {
    let task: String = row.get(4)?;
    Ok(Event {
        seq: row.get(0)?,
        kind: get_closed(row, 1, EventKind::from_stored)?,
        task_id: get_uuid(row, 2)?,
        actor: row.get(3)?,
        task: payload::from_text(&task).map_err(|e| conversion(4, Type::Text, e))?,
        assignee_id: get_opt_uuid(row, 5)?,
        previous_assignee_id: get_opt_uuid(row, 6)?,
        repository: row.get(7)?,
        created_at: get_time(row, 8)?,
    })
}

/// The columns [`api_key`] reads, from `api_keys k` joined to its user `u`.
pub(super) const API_KEY_COLUMNS: &str =
    "k.id, k.user_id, u.email, k.name, k.created_at, k.last_used_at, k.revoked_at, u.name, u.created_at, k.scope";

pub(super) fn api_key(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: get_uuid(row, 0)?,
        user_id: get_uuid(row, 1)?,
        user_email: row.get(2)?,
        name: row.get(3)?,
        created_at: get_time(row, 4)?,
        last_used_at: get_opt_time(row, 5)?,
        revoked_at: get_opt_time(row, 6)?,
        access: {
            let raw: String = row.get(9)?;
            Access::from_stored(&raw).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    9,
                    rusqlite::types::Type::Text,
                    format!("unknown key scope {raw:?}").into(),
                )
            })?
        },
    })
}

/// The key's user, from the same row as [`api_key`].
pub(super) fn api_key_user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User { id: get_uuid(row, 1)?, email: row.get(2)?, name: row.get(7)?, created_at: get_time(row, 8)? })
}

/// The text `query` is matched against: title and description lower-cased with Unicode rules, on
/// separate lines so a match never spans both (a search text is one line).
pub(super) fn search_text(title: &str, description: Option<&str>) -> String {
    let mut text = title.to_lowercase();
    if let Some(description) = description {
        text.push('\n');
        text.push_str(&description.to_lowercase());
    }
    text
}
