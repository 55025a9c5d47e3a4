//! The outbox payload: the task after a change, as an event row stores it (PostgreSQL `jsonb`, SQLite
//! JSON text). A versioned format of the store's own, `{"v": 1, "task": {…}}`, not the public JSON:
//! that is rendered from the task at the edges (`wire`), so either can change without the other.
//! Rows written before the payload was versioned hold the public task JSON of that time; they are
//! still read (`Stored::Legacy`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Claim, Complexity, Priority, Status, Task};

/// The version this code writes.
const VERSION: u32 = 1;

/// The payload as written: `{"v": 1, "task": {…}}`. Public for code that writes event rows itself
/// (the benchmark's floor writes exactly what the stores write).
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    v: u32,
    task: TaskV1<'a>,
}

impl<'a> Payload<'a> {
    pub fn of(task: &'a Task) -> Self {
        Self { v: VERSION, task: TaskV1::from(task) }
    }

    /// As JSON text (SQLite).
    pub fn to_text(&self) -> String {
        // Plain strings, numbers and options: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Version 1 of the stored task: every field of `domain::Task`, times as integer microseconds (the
/// precision both stores keep), closed values by their stored names.
#[derive(Debug, Serialize)]
struct TaskV1<'a> {
    id: Uuid,
    key: &'a str,
    title: &'a str,
    description: Option<&'a str>,
    status: &'static str,
    priority: &'static str,
    complexity: &'static str,
    assignee_id: Option<Uuid>,
    assignee_email: Option<&'a str>,
    repository: Option<&'a str>,
    created_by: &'a str,
    updated_by: &'a str,
    #[serde(with = "chrono::serde::ts_microseconds")]
    created_at: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_microseconds")]
    updated_at: DateTime<Utc>,
    version: i64,
    #[serde(with = "chrono::serde::ts_microseconds_option")]
    deleted_at: Option<DateTime<Utc>>,
    parent_id: Option<Uuid>,
    claim: Option<ClaimV1<'a>>,
    open_blockers: i64,
}

/// A claim as stored in version 1 (absent in payloads written before claims existed).
#[derive(Debug, Serialize, Deserialize)]
struct ClaimV1<'a> {
    holder: std::borrow::Cow<'a, str>,
    agent: Option<std::borrow::Cow<'a, str>>,
    #[serde(with = "chrono::serde::ts_microseconds")]
    expires_at: DateTime<Utc>,
}

impl<'a> From<&'a Task> for TaskV1<'a> {
    fn from(t: &'a Task) -> Self {
        Self {
            id: t.id,
            key: &t.key,
            title: &t.title,
            description: t.description.as_deref(),
            status: t.status.as_str(),
            priority: t.priority.as_str(),
            complexity: t.complexity.as_str(),
            assignee_id: t.assignee_id,
            assignee_email: t.assignee_email.as_deref(),
            repository: t.repository.as_deref(),
            created_by: &t.created_by,
            updated_by: &t.updated_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
            version: t.version,
            deleted_at: t.deleted_at,
            parent_id: t.parent_id,
            claim: t.claim.as_ref().map(|c| ClaimV1 {
                holder: c.holder.as_str().into(),
                agent: c.agent.as_deref().map(Into::into),
                expires_at: c.expires_at,
            }),
            open_blockers: t.open_blockers,
        }
    }
}

/// Any payload an event row may hold, as read back.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Stored {
    Versioned {
        v: u32,
        task: StoredTask,
    },
    /// No `v`: the public task JSON, written before the payload was versioned (frozen here: the
    /// public shape may change since). Its times are RFC 3339 text, and `deleted_at` is absent while
    /// the task is live.
    Legacy(StoredTask),
}

/// A stored task as read back, from either shape: the fields are the same, only times differ.
#[derive(Deserialize)]
pub(crate) struct StoredTask {
    id: Uuid,
    /// Absent in payloads written before tasks had keys.
    #[serde(default)]
    key: String,
    title: String,
    description: Option<String>,
    status: String,
    priority: String,
    complexity: String,
    assignee_id: Option<Uuid>,
    assignee_email: Option<String>,
    repository: Option<String>,
    created_by: String,
    updated_by: String,
    #[serde(deserialize_with = "time")]
    created_at: DateTime<Utc>,
    #[serde(deserialize_with = "time")]
    updated_at: DateTime<Utc>,
    version: i64,
    #[serde(default, deserialize_with = "optional_time")]
    deleted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    parent_id: Option<Uuid>,
    #[serde(default)]
    claim: Option<ClaimV1<'static>>,
    #[serde(default)]
    open_blockers: i64,
}

/// A time as either shape stores it: integer microseconds, or RFC 3339 text.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredTime {
    Micros(i64),
    Text(DateTime<Utc>),
}

impl StoredTime {
    fn time<E: serde::de::Error>(self) -> Result<DateTime<Utc>, E> {
        match self {
            StoredTime::Micros(micros) => DateTime::from_timestamp_micros(micros)
                .ok_or_else(|| E::custom(format!("{micros} microseconds is not a time"))),
            StoredTime::Text(time) => Ok(time),
        }
    }
}

fn time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    StoredTime::deserialize(d)?.time()
}

fn optional_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<StoredTime>::deserialize(d)?.map(StoredTime::time::<D::Error>).transpose()
}

impl Stored {
    /// The task the payload holds. An error says what is wrong (a version or a value this code does
    /// not know); the caller reports it as an internal error.
    pub(crate) fn into_task(self) -> Result<Task, String> {
        let t = match self {
            Stored::Versioned { v: VERSION, task } | Stored::Legacy(task) => task,
            Stored::Versioned { v, .. } => return Err(format!("an event payload of unknown version {v}")),
        };
        let known = |raw: &str, what: &str| format!("an event payload with an unknown {what} {raw:?}");
        Ok(Task {
            status: Status::from_stored(&t.status).ok_or_else(|| known(&t.status, "status"))?,
            priority: Priority::from_stored(&t.priority).ok_or_else(|| known(&t.priority, "priority"))?,
            complexity: Complexity::from_stored(&t.complexity).ok_or_else(|| known(&t.complexity, "complexity"))?,
            id: t.id,
            key: t.key,
            title: t.title,
            description: t.description,
            assignee_id: t.assignee_id,
            assignee_email: t.assignee_email,
            repository: t.repository,
            created_by: t.created_by,
            updated_by: t.updated_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
            version: t.version,
            deleted_at: t.deleted_at,
            parent_id: t.parent_id,
            claim: t.claim.map(|c| Claim {
                holder: c.holder.into_owned(),
                agent: c.agent.map(|a| a.into_owned()),
                expires_at: c.expires_at,
            }),
            lapsed_holder: None,
            open_blockers: t.open_blockers,
        })
    }
}

/// Reads a payload from JSON text (SQLite).
pub(crate) fn from_text(text: &str) -> Result<Task, String> {
    serde_json::from_str::<Stored>(text).map_err(|e| format!("an unreadable event payload: {e}"))?.into_task()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        Task {
            id: Uuid::now_v7(),
            key: "WEB-7".into(),
            title: "stored".into(),
            description: Some("with \"quotes\" and ünïcode".into()),
            status: Status::Blocked,
            priority: Priority::Urgent,
            complexity: Complexity::Low,
            assignee_id: Some(Uuid::now_v7()),
            assignee_email: Some("bob@example.com".into()),
            repository: Some("web".into()),
            created_by: "ann@example.com".into(),
            updated_by: "bob@example.com".into(),
            created_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            updated_at: DateTime::from_timestamp_micros(1_800_000_001_000_001).unwrap(),
            version: 7,
            deleted_at: DateTime::from_timestamp_micros(1_800_000_002_000_000),
            parent_id: None,
            claim: None,
            lapsed_holder: None,
            open_blockers: 0,
        }
    }

    #[test]
    fn a_payload_reads_back_as_the_task_it_was_written_from() {
        for task in [task(), Task { deleted_at: None, description: None, assignee_id: None, ..task() }] {
            let text = Payload::of(&task).to_text();
            assert!(text.starts_with(r#"{"v":1,"task":{"#), "{text}");
            assert_eq!(from_text(&text), Ok(task));
        }
    }

    #[test]
    fn a_payload_in_the_public_json_of_before_is_still_read() {
        let task = task();
        let legacy = serde_json::json!({
            "id": task.id, "key": task.key, "title": task.title, "description": task.description, "status": "blocked",
            "priority": "urgent", "complexity": "low", "assignee_id": task.assignee_id,
            "assignee_email": task.assignee_email, "repository": task.repository, "created_by": task.created_by,
            "updated_by": task.updated_by, "created_at": "2027-01-15T08:00:00.123456Z",
            "updated_at": "2027-01-15T08:00:01.000001Z", "version": 7, "deleted_at": "2027-01-15T08:00:02.000000Z",
        });
        assert_eq!(from_text(&legacy.to_string()), Ok(task));
    }

    #[test]
    fn an_unknown_version_or_value_is_an_error_not_a_guess() {
        let text = Payload::of(&task()).to_text();
        assert!(from_text(&text.replacen(r#""v":1"#, r#""v":2"#, 1)).unwrap_err().contains("version 2"));
        assert!(from_text(&text.replacen("blocked", "stuck", 1)).unwrap_err().contains("stuck"));
        assert!(from_text("{}").is_err());
    }
}
