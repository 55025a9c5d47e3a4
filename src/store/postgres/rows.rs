//! Rows to domain values: the column lists every query selects, and their readers. A value the code
//! does not know (a status the schema should have refused) is an internal error, never a panic.

use tokio_postgres::Row;
use tokio_postgres::types::Json;

use super::{Fail, Outcome};
use crate::domain::{
    Access, Claim, Comment, Complexity, Event, EventKind, HistoryEntry, Priority, Repository, Status, Task, User,
};
use crate::error::Error;
use crate::store::ApiKey;
use crate::store::payload::Stored;

/// A task with its assignee's email and its repository's name, read in one query.
pub(super) const TASK_COLUMNS: &str = "t.id, t.title, t.description, t.status, t.priority, t.complexity, \
     t.assignee_id, u.email, r.name, t.created_by, t.updated_by, t.created_at, t.updated_at, t.version, t.deleted_at, \
     t.parent_id, t.claim_holder, t.claim_agent, t.claim_expires_at, t.claim_lapsed_holder, \
     (SELECT count(*) FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
     WHERE l.task_id = t.id AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL), \
     ks.prefix || '-' || t.key_number";
pub(super) const TASK_FROM: &str = "tasks t LEFT JOIN users u ON u.id = t.assignee_id \
     LEFT JOIN repositories r ON r.id = t.repository_id LEFT JOIN key_series ks ON ks.id = t.key_series_id";
/// How many columns [`TASK_COLUMNS`] has (extra columns a query selects come after them).
pub(super) const TASK_COLUMN_COUNT: usize = 22;

pub(super) const USER_COLUMNS: &str = "id, email, name, created_at";
pub(super) const COMMENT_COLUMNS: &str = "id, task_id, comment, author, created_at";
pub(super) const HISTORY_COLUMNS: &str =
    "id, task_id, field_changed, old_value, new_value, changed_by, comment, changed_at";
pub(super) const EVENT_COLUMNS: &str =
    "seq, event_type, task_id, actor, task, assignee_id, previous_assignee_id, repository, created_at";
/// Over `api_keys k JOIN users u`.
pub(super) const API_KEY_COLUMNS: &str =
    "k.id, k.user_id, u.email, k.name, k.created_at, k.last_used_at, k.revoked_at, k.scope";
pub(super) const API_KEY_COLUMN_COUNT: usize = 8;

fn known<T>(raw: &str, what: &str, parse: fn(&str) -> Option<T>) -> Outcome<T> {
    parse(raw).ok_or_else(|| Fail::Store(Error::Internal(format!("the database holds an unknown {what} {raw:?}"))))
}

pub(super) fn task(row: &Row) -> Outcome<Task> {
    Ok(Task {
        id: row.try_get(0)?,
        key: row.try_get::<_, Option<String>>(21)?.unwrap_or_default(),
        title: row.try_get(1)?,
        description: row.try_get(2)?,
        status: known(row.try_get(3)?, "status", Status::from_stored)?,
        priority: known(row.try_get(4)?, "priority", Priority::from_stored)?,
        complexity: known(row.try_get(5)?, "complexity", Complexity::from_stored)?,
        assignee_id: row.try_get(6)?,
        assignee_email: row.try_get(7)?,
        repository: row.try_get(8)?,
        created_by: row.try_get(9)?,
        updated_by: row.try_get(10)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        version: row.try_get(13)?,
        deleted_at: row.try_get(14)?,
        parent_id: row.try_get(15)?,
        claim: claim(row.try_get(16)?, row.try_get(17)?, row.try_get(18)?),
        lapsed_holder: row.try_get(19)?,
        open_blockers: row.try_get(20)?,
    })
}

/// A claim from its three columns (all set or none, as the schema holds them).
fn claim(
    holder: Option<String>,
    agent: Option<String>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<Claim> {
    Some(Claim { holder: holder?, agent, expires_at: expires_at? })
}

/// A user whose columns start at `at` ([`USER_COLUMNS`] order).
pub(super) fn user(row: &Row, at: usize) -> Outcome<User> {
    Ok(User {
        id: row.try_get(at)?,
        email: row.try_get(at + 1)?,
        name: row.try_get(at + 2)?,
        created_at: row.try_get(at + 3)?,
    })
}

/// `id, name, url, created_at, open_task_count, key_prefix`.
pub(super) fn repository(row: &Row) -> Outcome<Repository> {
    Ok(Repository {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        url: row.try_get(2)?,
        created_at: row.try_get(3)?,
        open_task_count: row.try_get(4)?,
        key_prefix: row.try_get(5)?,
    })
}

pub(super) fn comment(row: &Row) -> Outcome<Comment> {
    Ok(Comment {
        id: row.try_get(0)?,
        task_id: row.try_get(1)?,
        comment: row.try_get(2)?,
        author: row.try_get(3)?,
        created_at: row.try_get(4)?,
    })
}

pub(super) fn history(row: &Row) -> Outcome<HistoryEntry> {
    Ok(HistoryEntry {
        id: row.try_get(0)?,
        task_id: row.try_get(1)?,
        field_changed: row.try_get(2)?,
        old_value: row.try_get(3)?,
        new_value: row.try_get(4)?,
        changed_by: row.try_get(5)?,
        comment: row.try_get(6)?,
        changed_at: row.try_get(7)?,
    })
}

pub(super) fn event(row: &Row) -> Outcome<Event> {
    Ok(Event {
        seq: row.try_get(0)?,
        kind: known(row.try_get(1)?, "event type", EventKind::from_stored)?,
        task_id: row.try_get(2)?,
        actor: row.try_get(3)?,
        task: row.try_get::<_, Json<Stored>>(4)?.0.into_task().map_err(|e| Fail::Store(Error::Internal(e)))?,
        assignee_id: row.try_get(5)?,
        previous_assignee_id: row.try_get(6)?,
        repository: row.try_get(7)?,
        created_at: row.try_get(8)?,
    })
}

pub(super) fn api_key(row: &Row) -> Outcome<ApiKey> {
    Ok(ApiKey {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        user_email: row.try_get(2)?,
        name: row.try_get(3)?,
        created_at: row.try_get(4)?,
        last_used_at: row.try_get(5)?,
        revoked_at: row.try_get(6)?,
        access: known(row.try_get::<_, &str>(7)?, "API key scope", Access::from_stored)?,
    })
}
