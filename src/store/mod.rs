//! The storage contract: one trait, two backends (PostgreSQL, SQLite), chosen by the URL scheme.
//! Each write method is one transaction that writes the change, its history rows and its event row.

pub mod dump;
pub mod failed;
pub mod payload;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use self::dump::DumpRow;
use crate::domain::{Access, KeyName};
use crate::domain::{
    Comment, CommentText, Complexity, Description, Event, HistoryEntry, IdempotencyKey, KeyPrefix, Lease, Priority,
    RepoName, Repository, SearchText, Session, Status, Task, TaskDraft, TaskKey, TaskLinks, TaskPatch, Title, User,
    UserKey,
};
use crate::error::{Error, Result};

/// What a store is and where it lives, for `doctor` and `/health` (never with a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// `postgres` or `sqlite`.
    pub kind: &'static str,
    pub location: String,
}

/// A task to create. The actor's label goes into `created_by` / `updated_by`.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub title: Title,
    pub description: Option<Description>,
    pub status: Status,
    pub priority: Priority,
    pub complexity: Complexity,
    pub assignee: Option<UserKey>,
    pub repository: Option<RepoName>,
    pub actor: String,
    /// A retried create with the same key (from the same user) returns the first task.
    pub idempotency_key: Option<IdempotencyKey>,
    /// The acting user (their email), whose keys `idempotency_key` is one of: keys belong to a user,
    /// not to the free-text `actor` label (two users may share a label; one user may use two).
    pub owner: String,
    /// The task it is a step of.
    pub parent_id: Option<Uuid>,
    /// Tasks it waits on.
    pub blocked_by: Vec<Uuid>,
}

impl NewTask {
    /// What a retry must repeat, as a digest: the task's fields as asked (not the label, which only
    /// names the author).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let assignee = match &self.assignee {
            Some(UserKey::Id(id)) => format!("id:{id}"),
            Some(UserKey::Email(email)) => format!("email:{}", email.as_str()),
            None => String::new(),
        };
        let fields = serde_json::json!([
            self.title.as_str(),
            self.description.as_ref().map(|d| d.as_str()),
            self.status.as_str(),
            self.priority.as_str(),
            self.complexity.as_str(),
            assignee,
            self.repository.as_ref().map(|r| r.as_str()),
        ]);
        // Links join the digest only when given, so a key used before links existed still replays.
        let fields = if self.parent_id.is_none() && self.blocked_by.is_empty() {
            fields
        } else {
            serde_json::json!([fields, self.parent_id, self.blocked_by])
        };
        hex::encode(Sha256::digest(fields.to_string().as_bytes()))
    }

    /// The answer to this create when its key already made `earlier` (whose request had
    /// `fingerprint`, unknown for tasks made before fingerprints were kept): the first task, or
    /// `IdempotencyConflict` when this request asks for something else.
    pub fn replay(&self, earlier: Task, fingerprint: Option<&str>) -> Result<CreatedTask> {
        match (fingerprint, &self.idempotency_key) {
            (Some(first), Some(key)) if first != self.fingerprint() => {
                Err(Error::IdempotencyConflict { key: key.as_str().to_owned(), task_id: earlier.id.to_string() })
            }
            _ => Ok(CreatedTask { task: earlier, replayed: true }),
        }
    }
}

impl NewTask {
    /// The fields the new task starts with, once its assignee is resolved (the domain builds the task).
    pub(crate) fn draft(&self, assignee: Option<User>) -> TaskDraft<'_> {
        TaskDraft {
            title: &self.title,
            description: self.description.as_ref(),
            status: self.status,
            priority: self.priority,
            complexity: self.complexity,
            assignee,
            repository: self.repository.as_ref(),
            parent_id: self.parent_id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CreatedTask {
    pub task: Task,
    /// True when the idempotency key matched an earlier create and nothing new was written.
    pub replayed: bool,
}

/// A task with its comments and history, as [`Store::get_task_detail`] reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTaskDetail {
    pub task: Task,
    pub comments: Vec<Comment>,
    pub history: Vec<HistoryEntry>,
}

/// A change to a task's fields.
#[derive(Debug, Clone)]
pub struct TaskUpdate {
    pub task_id: Uuid,
    pub patch: TaskPatch,
    pub actor: String,
    /// Stored in the history rows of this change.
    pub comment: Option<CommentText>,
    /// When set, the change applies only if the task is still at this version.
    pub expected_version: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewComment {
    pub task_id: Uuid,
    pub comment: CommentText,
    pub author: String,
}

#[derive(Debug, Clone)]
pub struct TaskDeletion {
    pub task_id: Uuid,
    pub actor: String,
    pub reason: Option<CommentText>,
    pub expected_version: Option<i64>,
}

/// A claim asked for: of one task, or of the next ready one (in a repository, if given).
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub task_id: Option<Uuid>,
    pub repository: Option<RepoName>,
    pub session: Session,
    /// The claiming user, who becomes the assignee.
    pub user: UserKey,
    /// What history records the change under.
    pub actor: String,
    pub lease: Lease,
}

/// What a claim of the next ready task found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed(Box<Task>),
    /// No task was ready; the counts say why.
    NoneReady(NotReady),
}

/// Why no task was ready for a caller: the open tasks that were not, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotReady {
    pub waiting_on_blockers: i64,
    pub claimed_by_others: i64,
    pub assigned_to_others: i64,
}

/// The holder gives a task back.
#[derive(Debug, Clone)]
pub struct Release {
    pub task_id: Uuid,
    pub session: Session,
    pub actor: String,
    pub status: Status,
    pub comment: Option<CommentText>,
}

/// A page request over tasks that are not deleted, newest change first.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    pub assignee_id: Option<Uuid>,
    pub repository: Option<RepoName>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub query: Option<SearchText>,
    /// Only tasks ready for this user (by id): not started, no open blocker, theirs or nobody's.
    pub ready_for: Option<Uuid>,
    /// Only the subtasks of this task.
    pub parent_id: Option<Uuid>,
    /// Only tasks with a history row (a change, a comment) written at or after this moment.
    pub changed_since: Option<DateTime<Utc>>,
    /// Rows to return at most.
    pub limit: u32,
    /// Return rows strictly after this position in (`updated_at` desc, `id` desc) order.
    pub after: Option<crate::domain::PageCursor>,
}

/// The range of the retained event log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventBounds {
    /// The smallest seq still kept, if any event is kept.
    pub oldest: Option<i64>,
    /// The largest seq ever written (0 when none).
    pub latest: i64,
    /// Pruning's watermark: any event at or below it may be gone (0 when none ever was). Events above
    /// it are all kept, so a resume from at or above it replays without a gap.
    pub pruned_through: i64,
}

/// How a store's connection pool is used, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open.
    pub size: usize,
    /// Open connections not in use.
    pub available: usize,
    pub max_size: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// How the read replica (`DATABASE_READ_URL`) stands, for `/health` and `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica's URL without its password.
    pub location: String,
    pub state: ReplicaState,
    /// How far behind the primary it is, when that is known.
    pub lag: Option<std::time::Duration>,
    /// Why it is skipped (may name hosts: for logs and `doctor`, not `/health`).
    pub detail: Option<String>,
}

/// Whether reads go to the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// It answers and keeps up: reads go to it.
    InUse,
    /// It does not answer: reads go to the primary.
    Down,
    /// It is further behind than the store accepts: reads go to the primary.
    Lagging,
    /// It answers but is not a standby: reads go to the primary.
    NotStandby,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::InUse => "ok",
            ReplicaState::Down => "down",
            ReplicaState::Lagging => "lagging",
            ReplicaState::NotStandby => "not_standby",
        }
    }
}

/// An API key as listed (the secret itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    pub user_email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the key may do.
    pub access: crate::domain::Access,
}

/// Where the relay hands events it claimed. Implemented by the Redis publisher.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes the events in order; an error leaves them unpublished, to be retried.
    async fn publish(&self, events: &[Event]) -> Result<()>;
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn info(&self) -> StoreInfo;

    /// The pool's use, for `/metrics`; `None` for a store without a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Applies pending migrations (safe when many processes start at once); returns the schema version.
    async fn migrate(&self) -> Result<i64>;

    /// The applied schema version; fails when the store cannot be reached.
    async fn schema_version(&self) -> Result<i64>;

    /// Finds a user by id (an unknown id is `Invalid` for `field`) or by email (created on first use).
    async fn resolve_user(&self, field: &str, key: &UserKey) -> Result<User>;

    /// Finds a user without creating one.
    async fn find_user(&self, key: &UserKey) -> Result<Option<User>>;

    async fn list_users(&self) -> Result<Vec<User>>;

    async fn list_repositories(&self) -> Result<Vec<Repository>>;

    /// The id of the task a key names (deleted or not), through any prefix its series has had.
    async fn find_task_id(&self, key: &TaskKey) -> Result<Option<Uuid>>;

    /// Gives an existing repository's keys a new prefix (old keys keep resolving). A prefix another
    /// repository has or had is refused, naming `key_prefix`; an unknown repository is `NotFound`.
    async fn set_key_prefix(&self, repository: &RepoName, prefix: &KeyPrefix) -> Result<Repository>;

    async fn create_task(&self, new: NewTask) -> Result<CreatedTask>;

    /// Applies a patch. An empty patch, or one that changes nothing, writes nothing and returns the task.
    async fn update_task(&self, update: TaskUpdate) -> Result<Task>;

    async fn add_comment(&self, new: NewComment) -> Result<(Comment, Task)>;

    /// Soft delete: sets `deleted_at`; the task disappears from listings and lookups.
    async fn delete_task(&self, deletion: TaskDeletion) -> Result<Task>;

    /// A task that is not deleted.
    async fn get_task(&self, id: Uuid) -> Result<Option<Task>>;

    async fn list_comments(&self, task_id: Uuid) -> Result<Vec<Comment>>;

    async fn list_history(&self, task_id: Uuid) -> Result<Vec<HistoryEntry>>;

    /// The history rows of these tasks written at or after `since`, in the order they were written.
    async fn history_since(&self, task_ids: &[Uuid], since: DateTime<Utc>) -> Result<Vec<HistoryEntry>>;

    /// A task that is not deleted, with its comments and history (oldest first), or `None`. By
    /// default the three reads; a backend may do them in one go (SQLite: one trip to its thread).
    async fn get_task_detail(&self, id: Uuid) -> Result<Option<StoredTaskDetail>> {
        let Some(task) = self.get_task(id).await? else { return Ok(None) };
        let (comments, history) = tokio::try_join!(self.list_comments(id), self.list_history(id))?;
        Ok(Some(StoredTaskDetail { task, comments, history }))
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>>;

    /// Claims a task for a session (see `domain::claimed`); without a task id, atomically the next
    /// ready one: highest priority, then oldest. Two callers never get the same task.
    async fn claim_task(&self, request: ClaimRequest) -> Result<ClaimOutcome>;

    /// The holder gives a task back (see `domain::released`).
    async fn release_task(&self, release: Release) -> Result<Task>;

    /// Records up to `limit` claims whose lease ran out (`domain::lapsed`), each a change by the
    /// system with its history and event. Returns how many.
    async fn expire_claims(&self, limit: u32) -> Result<usize>;

    /// The tasks linked to a live task: its blockers, the tasks it blocks, its subtasks, its parent.
    async fn task_links(&self, id: Uuid) -> Result<TaskLinks>;

    /// Events with `seq > after_seq`, in order, at most `limit`.
    async fn events_after(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>>;

    /// [`Store::events_after`] for a subscriber resuming after `Last-Event-ID`: a store with a read
    /// replica may answer from it, once it holds everything committed before the call.
    async fn replay_events(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        self.events_after(after_seq, limit).await
    }

    /// The read replica's state, checked now; `None` without one.
    async fn replica_status(&self) -> Option<ReplicaStatus> {
        None
    }

    async fn event_bounds(&self) -> Result<EventBounds>;

    /// Claims up to `limit` unpublished events without blocking other relays, hands them to `sink`
    /// in order, and marks them published if it succeeded. Returns how many were published.
    async fn relay_pending(&self, limit: u32, sink: &dyn EventSink) -> Result<usize>;

    /// Deletes up to `batch` events older than `before` (only published ones unless
    /// `include_unpublished`). Returns how many were deleted.
    async fn prune_events(&self, before: DateTime<Utc>, include_unpublished: bool, batch: u32) -> Result<u64>;

    /// A receiver whose value changes whenever an event may have been committed, by any process.
    /// The value is the latest seq known (a hint, not a promise).
    fn watch_commits(&self) -> tokio::sync::watch::Receiver<i64>;

    /// A key name already in use is refused with [`api_key_name_taken`], by both stores alike.
    async fn create_api_key(&self, user_id: Uuid, name: &KeyName, key_hash: &str, access: Access) -> Result<ApiKey>;

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;

    /// Revokes the key with this id or name; false when none matched.
    async fn revoke_api_key(&self, id_or_name: &str) -> Result<bool>;

    /// The key (not revoked) with this hash, and its user; records its use.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<(ApiKey, User)>>;

    /// Sends every row of the store, table by table in [`dump::TABLES`] order, from one consistent
    /// snapshot, as fast as the receiver takes them; returns how many. Stops when the receiver is gone.
    async fn export(&self, rows: tokio::sync::mpsc::Sender<DumpRow>) -> Result<u64>;

    /// Loads the rows it receives in one transaction: committed when the channel closes, rolled back
    /// when an `Err` arrives or a row cannot be written (the store is then as it was). Refused unless
    /// the store is empty or `force`. Returns how many rows were loaded.
    async fn import(&self, rows: tokio::sync::mpsc::Receiver<Result<NumberedRow>>, force: bool) -> Result<u64>;
}

/// A row of a dump and the line it came from, so a row the target refuses is named by its line.
#[derive(Debug)]
pub struct NumberedRow {
    pub line: u64,
    pub row: DumpRow,
}

/// The error for a row the target refused while importing.
pub fn import_refused(line: u64, table: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(format!("line {line}"), format!("the target refused this {table} row: {why}"))
}

/// The one answer to creating an API key under a name another key has (names are unique).
pub fn api_key_name_taken(name: &KeyName) -> Error {
    Error::invalid("name", format!("an API key named {:?} already exists", name.as_str()))
}

/// Opens the store a URL names: `postgres://…` / `postgresql://…` or `sqlite://path`.
/// Connecting is lazy: this never waits on the network. A URL that cannot be right is a
/// configuration error (`Error::Config`) naming `DATABASE_URL`: no retry will make it work.
pub fn open(url: &str, pool_size: usize) -> Result<Arc<dyn Store>> {
    open_with_replica(url, None, pool_size)
}

/// Like [`open`], with a read replica of the PostgreSQL store (`DATABASE_READ_URL`): reads may go to
/// it (see `postgres::replica`). A replica beside any other store is a configuration error.
pub fn open_with_replica(url: &str, read_url: Option<&str>, pool_size: usize) -> Result<Arc<dyn Store>> {
    open_url(url, read_url, pool_size).map_err(|err| match err {
        crate::error::Error::Invalid(setting) => crate::error::Error::Config(setting),
        other => other,
    })
}

fn open_url(url: &str, read_url: Option<&str>, pool_size: usize) -> Result<Arc<dyn Store>> {
    if let Some(read_url) = read_url {
        check_read_url(url, read_url)?;
    }
    if is_postgres_url(url) {
        Ok(Arc::new(postgres::PgStore::open(url, read_url, pool_size)?))
    } else if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(sqlite::SqliteStore::open(std::path::Path::new(path))?))
    } else {
        Err(crate::error::Error::Invalid(
            crate::domain::ValidationError::new(
                "DATABASE_URL",
                format!(
                    "{} is not a database URL task-mcp can open: it must start with postgres://, postgresql:// \
                     or sqlite:// (or be unset, for the embedded file in the data directory)",
                    redact_url(url)
                ),
            )
            .with_accepted(ACCEPTED_URLS),
        ))
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A read replica (`DATABASE_READ_URL`) is a PostgreSQL standby of a PostgreSQL `DATABASE_URL`.
pub fn check_read_url(url: &str, read_url: &str) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::Config(
            crate::domain::ValidationError::new("DATABASE_READ_URL", why)
                .with_accepted(["postgres://USER:PASSWORD@REPLICA:5432/DB"]),
        ))
    };
    if !is_postgres_url(url) {
        return refuse(format!(
            "a read replica needs a PostgreSQL DATABASE_URL, and the store is {}: unset DATABASE_READ_URL, \
             or set DATABASE_URL to the PostgreSQL primary it replicates",
            redact_url(url)
        ));
    }
    if !is_postgres_url(read_url) {
        return refuse(format!(
            "{} is not a PostgreSQL URL: it must start with postgres:// or postgresql:// and name a streaming \
             replica of DATABASE_URL",
            redact_url(read_url)
        ));
    }
    Ok(())
}

/// The forms of `DATABASE_URL` [`open`] accepts, as examples.
pub const ACCEPTED_URLS: [&str; 3] =
    ["postgres://USER:PASSWORD@HOST:5432/DB", "postgresql://USER@HOST/DB", "sqlite:///path/to/tasks.db"];

/// Like [`open`], but a URL that cannot be opened gives a store whose every call reports why, so a
/// long-lived stdio session can keep answering (and say what is wrong) instead of exiting.
pub fn open_or_report(url: &str, read_url: Option<&str>, pool_size: usize) -> Arc<dyn Store> {
    match open_with_replica(url, read_url, pool_size) {
        Ok(store) => store,
        Err(err) => {
            tracing::error!("{err}");
            Arc::new(failed::FailedStore::new(redact_url(url), &err))
        }
    }
}

/// A database URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    replace_password(url, "***")
}

/// What a URL's password becomes in a configuration printed for a person to paste (who fills it in).
pub const PASSWORD_PLACEHOLDER: &str = "PASSWORD";

/// A URL with its password (if any) replaced by [`PASSWORD_PLACEHOLDER`].
pub fn url_with_password_placeholder(url: &str) -> String {
    replace_password(url, PASSWORD_PLACEHOLDER)
}

fn replace_password(url: &str, with: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let tail = replace_query_password(tail, with);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:{with}@{host}{tail}"),
            None => format!("{scheme}://{userinfo}@{host}{tail}"),
        },
        None => format!("{scheme}://{authority}{tail}"),
    }
}

fn replace_query_password(tail: &str, with: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else { return tail.to_owned() };
    let params: Vec<String> = query
        .split('&')
        .map(
            |p| if p.to_ascii_lowercase().starts_with("password=") { format!("password={with}") } else { p.to_owned() },
        )
        .collect();
    format!("{path}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_appear_in_a_redacted_url() {
        assert_eq!(redact_url("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db?user=u&password=s3cret"), "postgres://h/db?user=u&password=***");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
