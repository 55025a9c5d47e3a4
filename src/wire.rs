//! The JSON shapes of the public contract, shared by the MCP tools, the REST API and the event feed,
//! so a task looks the same wherever a client meets it. Changing one changes the contract.

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What names a task in a path or argument: a UUID, or a key (`WEB-42`, any case).
pub const TASK_REF_PATTERN: &str =
    "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[A-Za-z0-9]{1,6}-[0-9]{1,18})$";

/// A task with every field.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TaskJson {
    pub id: Uuid,
    /// The short name, e.g. "WEB-42": accepted wherever a task id is. (Absent only in events
    /// written before tasks had keys.)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    pub title: String,
    pub description: Option<String>,
    /// not_started | in_progress | blocked | completed | cancelled
    pub status: String,
    /// low | medium | high | urgent
    pub priority: String,
    /// low | medium | high
    pub complexity: String,
    pub assignee_id: Option<Uuid>,
    pub assignee_email: Option<String>,
    pub repository: Option<String>,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Increases by one with every change; pass it back as `expected_version` to avoid lost updates.
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// The task this one is a step of.
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    /// Who works on it, until when; null when nobody holds it.
    #[serde(default)]
    pub claim: Option<ClaimJson>,
    /// Blockers not yet completed or cancelled (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub open_blockers: i64,
}

/// A claim: the session holding the task, its client's name, and when the lease ends.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ClaimJson {
    pub holder: String,
    pub agent: Option<String>,
    pub expires_at: String,
}

impl From<&domain::Claim> for ClaimJson {
    fn from(c: &domain::Claim) -> Self {
        Self { holder: c.holder.clone(), agent: c.agent.clone(), expires_at: rfc3339(c.expires_at) }
    }
}

impl From<&domain::Task> for TaskJson {
    fn from(t: &domain::Task) -> Self {
        Self {
            id: t.id,
            key: t.key.clone(),
            title: t.title.clone(),
            description: t.description.clone(),
            status: t.status.to_string(),
            priority: t.priority.to_string(),
            complexity: t.complexity.to_string(),
            assignee_id: t.assignee_id,
            assignee_email: t.assignee_email.clone(),
            repository: t.repository.clone(),
            created_by: t.created_by.clone(),
            updated_by: t.updated_by.clone(),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            version: t.version,
            deleted_at: t.deleted_at.map(rfc3339),
            parent_id: t.parent_id,
            claim: t.claim.as_ref().map(ClaimJson::from),
            open_blockers: t.open_blockers,
        }
    }
}

/// A task in a listing's summary detail: what a model needs to choose a task, small enough to list
/// fifty (named by key; `get_task` or `detail: "full"` give every field).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TaskSummaryJson {
    pub key: String,
    pub title: String,
    pub status: String,
    pub priority: String,
    /// The assignee's email (absent: unassigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Absent when the page names one repository for all its tasks, or the task has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Open blockers it waits on (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub open_blockers: i64,
    /// The claim's holder (absent when nobody holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl From<&domain::Task> for TaskSummaryJson {
    fn from(t: &domain::Task) -> Self {
        Self {
            key: if t.key.is_empty() { t.id.to_string() } else { t.key.clone() },
            title: t.title.clone(),
            status: t.status.to_string(),
            priority: t.priority.to_string(),
            assignee: t.assignee_email.clone(),
            repository: t.repository.clone(),
            open_blockers: t.open_blockers,
            claimed_by: t.claim.as_ref().map(|c| c.holder.clone()),
        }
    }
}

/// How much of each task a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Detail {
    #[default]
    Summary,
    Full,
}

impl Detail {
    pub fn parse(field: &str, raw: &str) -> Result<Self, domain::ValidationError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "summary" => Ok(Detail::Summary),
            "full" => Ok(Detail::Full),
            _ => Err(domain::ValidationError::new(field, format!("{raw:?} is not a detail level"))
                .with_accepted(["summary", "full"])),
        }
    }
}

/// A listed task, in the detail asked for.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // built and serialised once per listed task, never stored
pub enum TaskItemJson {
    Full(Box<TaskJson>),
    Summary(TaskSummaryJson),
}

impl TaskItemJson {
    pub fn new(task: &domain::Task, detail: Detail) -> Self {
        match detail {
            Detail::Summary => TaskItemJson::Summary(TaskSummaryJson::from(task)),
            Detail::Full => TaskItemJson::Full(Box::new(TaskJson::from(task))),
        }
    }
}

/// One page of tasks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TaskPageJson {
    pub tasks: Vec<TaskItemJson>,
    /// In summaries: the repository of every task on the page, when they share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Present when the listing was narrowed to the session's default repository (stdio MCP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_repository: Option<DefaultRepositoryJson>,
}

impl TaskPageJson {
    /// A page of `tasks`, each in `detail`.
    pub fn new(tasks: &[domain::Task], next_cursor: Option<String>, detail: Detail) -> Self {
        let mut items: Vec<TaskItemJson> = tasks.iter().map(|t| TaskItemJson::new(t, detail)).collect();
        // Summaries say a shared repository once, for the page, rather than fifty times.
        let shared = match tasks.split_first() {
            Some((first, rest)) if detail == Detail::Summary && first.repository.is_some() => {
                rest.iter().all(|t| t.repository == first.repository).then(|| first.repository.clone()).flatten()
            }
            _ => None,
        };
        if shared.is_some() {
            for item in &mut items {
                if let TaskItemJson::Summary(summary) = item {
                    summary.repository = None;
                }
            }
        }
        Self { tasks: items, repository: shared, next_cursor, default_repository: None }
    }
}

/// Which repository a listing without `repository` was narrowed to, where that came from, and how to
/// see every repository.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DefaultRepositoryJson {
    pub repository: String,
    pub from: String,
    pub note: String,
}

impl DefaultRepositoryJson {
    pub fn new(repository: &str, from: &str, all: &str) -> Self {
        Self {
            repository: repository.to_owned(),
            from: from.to_owned(),
            note: format!(
                "only tasks of {repository}, this session's default repository; pass repository \"{all}\" to list every \
                 repository"
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CommentJson {
    pub id: Uuid,
    pub task_id: Uuid,
    pub comment: String,
    pub author: String,
    pub created_at: String,
}

impl From<&domain::Comment> for CommentJson {
    fn from(c: &domain::Comment) -> Self {
        Self {
            id: c.id,
            task_id: c.task_id,
            comment: c.comment.clone(),
            author: c.author.clone(),
            created_at: rfc3339(c.created_at),
        }
    }
}

/// `add_task_comment`'s result: the comment, and the task's version after it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CommentAddedJson {
    pub comment: CommentJson,
    /// The task's version after the comment (pass it as expected_version next).
    pub task_version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct HistoryJson {
    pub id: Uuid,
    pub task_id: Uuid,
    pub field_changed: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub changed_by: String,
    pub comment: Option<String>,
    pub changed_at: String,
}

impl From<&domain::HistoryEntry> for HistoryJson {
    fn from(h: &domain::HistoryEntry) -> Self {
        Self {
            id: h.id,
            task_id: h.task_id,
            field_changed: h.field_changed.clone(),
            old_value: h.old_value.clone(),
            new_value: h.new_value.clone(),
            changed_by: h.changed_by.clone(),
            comment: h.comment.clone(),
            changed_at: rfc3339(h.changed_at),
        }
    }
}

/// A task as a linked task's detail names it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct LinkJson {
    pub id: Uuid,
    pub title: String,
    pub status: String,
}

impl From<&domain::Link> for LinkJson {
    fn from(l: &domain::Link) -> Self {
        Self { id: l.id, title: l.title.clone(), status: l.status.to_string() }
    }
}

/// A task with its comments and history (oldest first), and the tasks linked to it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct TaskDetailJson {
    #[serde(flatten)]
    pub task: TaskJson,
    pub comments: Vec<CommentJson>,
    pub history: Vec<HistoryJson>,
    /// Tasks this one waits on.
    #[serde(default)]
    pub blocked_by: Vec<LinkJson>,
    /// Tasks waiting on this one.
    #[serde(default)]
    pub blocking: Vec<LinkJson>,
    #[serde(default)]
    pub subtasks: Vec<LinkJson>,
    #[serde(default)]
    pub parent: Option<LinkJson>,
}

impl TaskDetailJson {
    pub fn new(
        task: &domain::Task,
        comments: &[domain::Comment],
        history: &[domain::HistoryEntry],
        links: &domain::TaskLinks,
    ) -> Self {
        let list = |links: &[domain::Link]| links.iter().map(LinkJson::from).collect();
        Self {
            task: TaskJson::from(task),
            comments: comments.iter().map(CommentJson::from).collect(),
            history: history.iter().map(HistoryJson::from).collect(),
            blocked_by: list(&links.blocked_by),
            blocking: list(&links.blocking),
            subtasks: list(&links.subtasks),
            parent: links.parent.as_ref().map(LinkJson::from),
        }
    }
}

/// `claim_task`'s result: the task claimed, or none and why.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ClaimedJson {
    pub task: Option<TaskJson>,
    /// Why no task was claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct UserJson {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub created_at: String,
}

impl From<&domain::User> for UserJson {
    fn from(u: &domain::User) -> Self {
        Self { id: u.id, email: u.email.clone(), name: u.name.clone(), created_at: rfc3339(u.created_at) }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RepositoryJson {
    pub id: Uuid,
    pub name: String,
    pub url: Option<String>,
    pub created_at: String,
    /// The prefix of its tasks' keys (absent until its first task).
    pub key_prefix: Option<String>,
    pub open_task_count: i64,
}

impl From<&domain::Repository> for RepositoryJson {
    fn from(r: &domain::Repository) -> Self {
        Self {
            id: r.id,
            name: r.name.clone(),
            url: r.url.clone(),
            created_at: rfc3339(r.created_at),
            key_prefix: r.key_prefix.clone(),
            open_task_count: r.open_task_count,
        }
    }
}

/// An event as SSE clients receive it in `data:`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct EventJson {
    #[serde(rename = "type")]
    pub kind: String,
    pub task_id: Uuid,
    pub task: serde_json::Value,
    pub timestamp: String,
    pub seq: i64,
    pub actor: String,
}

impl From<&domain::Event> for EventJson {
    fn from(e: &domain::Event) -> Self {
        Self {
            kind: e.kind.to_string(),
            task_id: e.task_id,
            task: task_value(&e.task),
            timestamp: rfc3339(e.created_at),
            seq: e.seq,
            actor: e.actor.clone(),
        }
    }
}

/// What a follower of the feed gets in place of events it can no longer be given (`type` "resync"
/// and the latest `seq`: re-read, then follow from there), as an SSE `data:` or a line of `events tail`.
pub fn resync_text(latest_seq: i64) -> String {
    serde_json::json!({ "type": "resync", "seq": latest_seq }).to_string()
}

/// A task as the JSON value events carry (`task` in SSE `data:`, `task_data` in Redis entries). A
/// `Value` keeps its keys sorted, as these have always been written.
pub fn task_value(task: &domain::Task) -> serde_json::Value {
    serde_json::to_value(TaskJson::from(task)).unwrap_or(serde_json::Value::Null)
}

/// Timestamps as the contract writes them: RFC 3339, UTC, microseconds.
pub fn timestamp(t: DateTime<Utc>) -> String {
    rfc3339(t)
}

impl TaskJson {
    /// The task this JSON describes, as read back from a Redis entry; `None` when a value is not one
    /// the domain knows.
    pub fn to_task(&self) -> Option<domain::Task> {
        let time = |raw: &str| DateTime::parse_from_rfc3339(raw).ok().map(|t| t.with_timezone(&Utc));
        Some(domain::Task {
            id: self.id,
            key: self.key.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            status: domain::Status::from_stored(&self.status)?,
            priority: domain::Priority::from_stored(&self.priority)?,
            complexity: domain::Complexity::from_stored(&self.complexity)?,
            assignee_id: self.assignee_id,
            assignee_email: self.assignee_email.clone(),
            repository: self.repository.clone(),
            created_by: self.created_by.clone(),
            updated_by: self.updated_by.clone(),
            created_at: time(&self.created_at)?,
            updated_at: time(&self.updated_at)?,
            version: self.version,
            deleted_at: match &self.deleted_at {
                Some(raw) => Some(time(raw)?),
                None => None,
            },
            parent_id: self.parent_id,
            claim: match &self.claim {
                Some(c) => Some(domain::Claim {
                    holder: c.holder.clone(),
                    agent: c.agent.clone(),
                    expires_at: time(&c.expires_at)?,
                }),
                None => None,
            },
            lapsed_holder: None,
            open_blockers: self.open_blockers,
        })
    }
}
