//! Pure domain types and rules: values, validated text, tasks, change diffs, event kinds, and the
//! rules of every write (`write`). Knows nothing about SQL, rmcp, axum or Redis.

mod change;
mod key;
#[cfg(test)]
pub(crate) mod properties;
mod since;
mod text;
mod values;
mod work;
mod write;

pub use change::{EventKind, FieldChange, TaskPatch, diff_tasks, event_kind_for_update};
pub use key::{DEFAULT_PREFIX, KeyPrefix, TaskKey, TaskRef};
pub use since::{SINCE_DEFAULT_HOURS, SINCE_MAX_DAYS, Since};
pub use text::{
    COMMENT_MAX_CHARS, CommentText, DESCRIPTION_MAX_CHARS, Description, EMAIL_MAX_CHARS, Email,
    IDEMPOTENCY_KEY_MAX_CHARS, IdempotencyKey, KeyName, Label, REPO_MAX_CHARS, RepoName, SEARCH_MAX_CHARS, SearchText,
    TITLE_MAX_CHARS, Title,
};
pub use values::{Complexity, Priority, Status};
pub use work::{
    Claim, LEASE_DEFAULT_SECONDS, LEASE_MAX_SECONDS, Lease, Link, Refusal, SYSTEM_ACTOR, Session, TaskLinks, WorkError,
    claimed, dependency_cycle, lapsed, link_changes, parent_cycle, released, unblocked, unfinished_subtasks,
};
pub use write::{Record, TaskDraft, VersionConflict, check_version, commented, deleted, updated_at};

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Why a value was refused: the field, what is wrong, and (for enums) what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: String,
    pub message: String,
    pub accepted: Vec<String>,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), accepted: Vec::new() }
    }

    pub fn with_accepted(mut self, accepted: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.accepted = accepted.into_iter().map(Into::into).collect();
        self
    }

    /// The same error reported under another field name (a frontend may call a field differently).
    pub fn renamed(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)?;
        if !self.accepted.is_empty() {
            write!(f, " (accepted: {})", self.accepted.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}

/// A user as stored: found or created by email, or known by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A repository, created on first use by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub id: Uuid,
    pub name: String,
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The prefix of its tasks' keys (none until its first task).
    pub key_prefix: Option<String>,
    /// Tasks in it that are not deleted.
    pub open_task_count: i64,
}

/// How a user is named in an argument: by id, by email, or as the acting identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Me,
    Id(Uuid),
    Email(Email),
}

impl UserRef {
    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.eq_ignore_ascii_case("me") {
            return Ok(UserRef::Me);
        }
        if let Ok(id) = Uuid::parse_str(trimmed) {
            return Ok(UserRef::Id(id));
        }
        if trimmed.contains('@') {
            return Email::parse(field, trimmed).map(UserRef::Email);
        }
        Err(ValidationError::new(field, format!("{raw:?} is not a user: give a UUID, an email address, or \"me\"")))
    }
}

/// A user reference the store can resolve without knowing who "me" is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// Must exist: an unknown id is an error.
    Id(Uuid),
    /// Found, or created on first use.
    Email(Email),
}

/// The identity a change is made by: recorded in `created_by` / `updated_by` / `author`,
/// and resolved as `"me"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// What is written in `created_by` / `updated_by` / `author` for this change.
    pub label: Label,
    /// The user this actor is, for `"me"`.
    pub email: Email,
    /// What the credential this actor acts with may do.
    pub access: Access,
}

/// What a credential may do: read and change, or only list and read (a read-only API key, or an OAuth
/// access token granted `tasks:read` without `tasks:write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    #[default]
    ReadWrite,
    ReadOnly,
    /// An access token without the write scope: what a read-only key may do, said in its own words.
    ReadScope,
}

impl Access {
    /// The stored and listed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadWrite => "read_write",
            Access::ReadOnly | Access::ReadScope => "read_only",
        }
    }

    pub fn from_stored(raw: &str) -> Option<Self> {
        match raw {
            "read_write" => Some(Access::ReadWrite),
            "read_only" => Some(Access::ReadOnly),
            _ => None,
        }
    }
}

impl Actor {
    pub fn new(email: Email) -> Self {
        Self { label: Label::from_email(&email), email, access: Access::ReadWrite }
    }

    /// The same actor, limited to what `access` allows.
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// The same user, recorded under another label (stdio callers may name themselves).
    pub fn labelled(mut self, label: Option<Label>) -> Self {
        if let Some(label) = label {
            self.label = label;
        }
        self
    }
}

/// A task as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: Uuid,
    /// The short name (`WEB-42`), given at creation and kept for life (its prefix follows a rename).
    pub key: String,
    pub title: String,
    pub description: Option<String>,
    pub status: Status,
    pub priority: Priority,
    pub complexity: Complexity,
    pub assignee_id: Option<Uuid>,
    pub assignee_email: Option<String>,
    pub repository: Option<String>,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The task this one is a step of.
    pub parent_id: Option<Uuid>,
    /// Who works on it now, until when (see `work`).
    pub claim: Option<Claim>,
    /// The holder whose lease ran out, until the task is claimed or released again: renewing is
    /// then refused as `claim_lost` rather than silently granted anew.
    pub lapsed_holder: Option<String>,
    /// Blockers neither completed nor cancelled, counted when the task is read.
    pub open_blockers: i64,
}

/// A comment on a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: Uuid,
    pub task_id: Uuid,
    pub comment: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

/// One audit row: a field of a task changed from one value to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: Uuid,
    pub task_id: Uuid,
    pub field_changed: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub changed_by: String,
    pub comment: Option<String>,
    pub changed_at: DateTime<Utc>,
}

/// One row of the event log (the transactional outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Global, increasing; the SSE id and the consumers' duplicate filter.
    pub seq: i64,
    pub kind: EventKind,
    pub task_id: Uuid,
    pub actor: String,
    /// The task as it was after the change (a comment leaves it as it was).
    pub task: Task,
    pub assignee_id: Option<Uuid>,
    /// The assignee before a reassignment, so they hear that the task left them.
    pub previous_assignee_id: Option<Uuid>,
    pub repository: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The filters of a task listing. Every field narrows the result (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub assignee: Vec<UserKey>,
    pub repository: Option<RepoName>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub query: Option<SearchText>,
}

/// The position after the last row of a page: tasks are listed by `updated_at` descending, then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub updated_at: DateTime<Utc>,
    pub id: Uuid,
}

impl PageCursor {
    pub fn after(task: &Task) -> Self {
        Self { updated_at: task.updated_at, id: task.id }
    }
}

/// An optional input as given: absent, null and blank all mean "not given" (models often send `""`
/// for arguments they mean to leave out; forms send `status=` for "any").
pub fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// Parses an id argument such as `task_id`.
pub fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, ValidationError> {
    Uuid::parse_str(raw.trim()).map_err(|_| ValidationError::new(field, format!("{raw:?} is not a valid UUID")))
}
