//! The one service layer: every use case (list, get, create, update, comment, delete, …) as a method.
//! MCP tools and HTTP handlers only translate arguments and results; rules live here and in `domain`.

pub mod api_keys;
pub mod cursor;

use std::sync::Arc;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::{
    Access, Actor, Comment, CommentText, Complexity, Description, Event, HistoryEntry, IdempotencyKey, KeyPrefix,
    Lease, Priority, RepoName, Repository, SearchText, Session, Since, Status, Task, TaskLinks, TaskPatch, TaskRef,
    Title, User, UserKey, UserRef,
};
use crate::error::{Error, Result};
use crate::store::{
    ClaimOutcome, ClaimRequest, CreatedTask, EventBounds, NewComment, NewTask, NotReady, Release, Store, TaskDeletion,
    TaskQuery, TaskUpdate,
};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

/// A listing request, already parsed.
#[derive(Debug, Clone, Default)]
pub struct ListTasks {
    /// Each narrows to tasks assigned to that user (`user_id` and `assignee` both land here).
    pub assignees: Vec<UserRef>,
    pub repository: Option<RepoName>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub query: Option<SearchText>,
    pub limit: Option<u32>,
    /// An opaque cursor from a previous page (decoded here, so a forged one is refused here).
    pub cursor: Option<String>,
    /// Only tasks the caller could claim now (see `claim_task`).
    pub ready: bool,
    /// Only the subtasks of this task.
    pub parent_id: Option<Uuid>,
}

/// One page of tasks.
#[derive(Debug, Clone)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// A task with its comments and history.
#[derive(Debug, Clone)]
pub struct TaskDetail {
    pub task: Task,
    pub comments: Vec<Comment>,
    pub history: Vec<HistoryEntry>,
    pub links: TaskLinks,
}

/// A claim asked for: a named task, or the next ready one (in a repository, if given).
#[derive(Debug, Clone, Default)]
pub struct ClaimTask {
    pub task_id: Option<Uuid>,
    pub repository: Option<RepoName>,
    pub lease: Lease,
}

/// What a claim gave: the task, or none and why.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub task: Option<Task>,
    pub reason: Option<String>,
}

/// A task assigned to the caller that changed since a moment, with the history rows written since.
#[derive(Debug, Clone)]
pub struct TaskActivity {
    pub task: Task,
    pub history: Vec<HistoryEntry>,
}

/// At most this many tasks in an activity report (the most recently changed).
pub const ACTIVITY_TASKS: usize = 50;

/// How many expired claims one sweep records at most (the rest wait for the next).
const EXPIRY_BATCH: u32 = 100;

#[derive(Debug, Clone)]
pub struct CreateTask {
    pub title: Title,
    pub description: Option<Description>,
    pub assignee: Option<UserRef>,
    pub repository: Option<RepoName>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub complexity: Option<Complexity>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub parent_id: Option<Uuid>,
    pub blocked_by: Vec<Uuid>,
}

/// A patch whose assignee may still be `"me"`.
#[derive(Debug, Clone, Default)]
pub struct UpdateTask {
    pub title: Option<Title>,
    pub description: Option<Option<Description>>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub complexity: Option<Complexity>,
    pub assignee: Option<Option<UserRef>>,
    pub repository: Option<Option<RepoName>>,
    pub comment: Option<CommentText>,
    pub expected_version: Option<i64>,
    pub parent: Option<Option<Uuid>>,
    pub add_blocked_by: Vec<Uuid>,
    pub remove_blocked_by: Vec<Uuid>,
}

#[derive(Clone)]
pub struct TaskService {
    store: Arc<dyn Store>,
    /// Woken after every commit, so the relay publishes the new events at once.
    committed: Arc<Notify>,
}

impl TaskService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, committed: Arc::new(Notify::new()) }
    }

    /// Notified after each commit of a change (the relay waits on it).
    pub fn commit_signal(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    fn after_commit(&self) {
        self.committed.notify_one();
    }

    fn user_key(actor: &Actor, user: UserRef) -> UserKey {
        match user {
            UserRef::Me => UserKey::Email(actor.email.clone()),
            UserRef::Id(id) => UserKey::Id(id),
            UserRef::Email(email) => UserKey::Email(email),
        }
    }

    pub async fn list_tasks(&self, actor: &Actor, request: ListTasks) -> Result<TaskPage> {
        let limit = request.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_PAGE_SIZE} (got {limit})")));
        }
        let after = match request.cursor.as_deref() {
            Some(token) => Some(cursor::decode("cursor", token)?),
            None => None,
        };
        // Several assignee filters must all name the same user; an unknown user has no tasks.
        let mut assignee_id: Option<Uuid> = None;
        for user in request.assignees {
            let key = Self::user_key(actor, user);
            let Some(found) = self.store.find_user(&key).await? else {
                return Ok(TaskPage { tasks: Vec::new(), next_cursor: None });
            };
            if assignee_id.is_some_and(|id| id != found.id) {
                return Ok(TaskPage { tasks: Vec::new(), next_cursor: None });
            }
            assignee_id = Some(found.id);
        }
        let ready_for = if request.ready && actor.access == Access::ReadWrite {
            // A lease that ran out makes its task ready: recorded before the listing says so.
            self.expire_claims().await?;
            Some(self.me(actor).await?.id)
        } else if request.ready {
            // A read-only caller changes nothing, not even to record a lapse (`serve` sweeps every few
            // seconds) or to create its own user row: unknown, it can only be given unassigned tasks.
            let me = self.store.find_user(&UserKey::Email(actor.email.clone())).await?;
            Some(me.map_or(Uuid::nil(), |user| user.id))
        } else {
            None
        };
        let query = TaskQuery {
            ready_for,
            parent_id: request.parent_id,
            changed_since: None,
            assignee_id,
            repository: request.repository,
            status: request.status,
            priority: request.priority,
            query: request.query,
            limit: limit + 1,
            after,
        };
        let mut tasks = self.store.list_tasks(&query).await?;
        let next_cursor = if tasks.len() > limit as usize {
            tasks.truncate(limit as usize);
            tasks.last().map(|t| cursor::encode(&crate::domain::PageCursor::after(t)))
        } else {
            None
        };
        Ok(TaskPage { tasks, next_cursor })
    }

    /// The id of the task a reference names: the one resolver of keys (any case, any prefix the
    /// series has had). An unknown key is `NotFound` naming it; an id is checked by the call it serves.
    pub async fn resolve(&self, task: &TaskRef) -> Result<Uuid> {
        match task {
            TaskRef::Id(id) => Ok(*id),
            TaskRef::Key(key) => self.store.find_task_id(key).await?.ok_or_else(|| Error::task_not_found(key)),
        }
    }

    pub async fn get_task(&self, task: impl Into<TaskRef>) -> Result<Task> {
        let task: TaskRef = task.into();
        let id = self.resolve(&task).await?;
        self.store.get_task(id).await?.ok_or_else(|| Error::task_not_found(&task))
    }

    pub async fn get_task_detail(&self, task: impl Into<TaskRef>) -> Result<TaskDetail> {
        let task: TaskRef = task.into();
        let id = self.resolve(&task).await?;
        let detail = self.store.get_task_detail(id).await?.ok_or_else(|| Error::task_not_found(&task))?;
        let links = self.store.task_links(id).await?;
        Ok(TaskDetail { task: detail.task, comments: detail.comments, history: detail.history, links })
    }

    /// The tasks linked to a live task.
    pub async fn task_links(&self, id: Uuid) -> Result<TaskLinks> {
        self.get_task(id).await?;
        self.store.task_links(id).await
    }

    pub async fn list_comments(&self, task: impl Into<TaskRef>) -> Result<Vec<Comment>> {
        let task: TaskRef = task.into();
        let id = self.get_task(task).await?.id;
        self.store.list_comments(id).await
    }

    pub async fn list_history(&self, task: impl Into<TaskRef>) -> Result<Vec<HistoryEntry>> {
        let task: TaskRef = task.into();
        let id = self.get_task(task).await?.id;
        self.store.list_history(id).await
    }

    pub async fn create_task(&self, actor: &Actor, request: CreateTask) -> Result<CreatedTask> {
        may_change(actor, "create a task")?;
        let new = NewTask {
            title: request.title,
            description: request.description,
            status: request.status.unwrap_or_default(),
            priority: request.priority.unwrap_or_default(),
            complexity: request.complexity.unwrap_or_default(),
            assignee: request.assignee.map(|u| Self::user_key(actor, u)),
            repository: request.repository,
            actor: actor.label.to_string(),
            idempotency_key: request.idempotency_key,
            owner: actor.email.as_str().to_owned(),
            parent_id: request.parent_id,
            blocked_by: request.blocked_by,
        };
        let created = self.store.create_task(new).await?;
        if !created.replayed {
            self.after_commit();
        }
        Ok(created)
    }

    pub async fn update_task(&self, actor: &Actor, task: impl Into<TaskRef>, request: UpdateTask) -> Result<Task> {
        may_change(actor, "change a task")?;
        let task: TaskRef = task.into();
        let id = self.resolve(&task).await?;
        let patch = TaskPatch {
            title: request.title,
            description: request.description,
            status: request.status,
            priority: request.priority,
            complexity: request.complexity,
            assignee: request.assignee.map(|a| a.map(|u| Self::user_key(actor, u))),
            repository: request.repository,
            parent: request.parent,
            add_blocked_by: request.add_blocked_by,
            remove_blocked_by: request.remove_blocked_by,
        };
        let task = self
            .store
            .update_task(TaskUpdate {
                task_id: id,
                patch,
                actor: actor.label.to_string(),
                comment: request.comment,
                expected_version: request.expected_version,
            })
            .await?;
        self.after_commit();
        Ok(task)
    }

    pub async fn update_status(
        &self,
        actor: &Actor,
        task: impl Into<TaskRef>,
        status: Status,
        comment: Option<CommentText>,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        let task: TaskRef = task.into();
        let request = UpdateTask { status: Some(status), comment, expected_version, ..UpdateTask::default() };
        self.update_task(actor, task, request).await
    }

    pub async fn add_comment(
        &self,
        actor: &Actor,
        task: impl Into<TaskRef>,
        comment: CommentText,
    ) -> Result<(Comment, Task)> {
        may_change(actor, "comment on a task")?;
        let task: TaskRef = task.into();
        let id = self.resolve(&task).await?;
        let added =
            self.store.add_comment(NewComment { task_id: id, comment, author: actor.label.to_string() }).await?;
        self.after_commit();
        Ok(added)
    }

    pub async fn delete_task(
        &self,
        actor: &Actor,
        task: impl Into<TaskRef>,
        reason: Option<CommentText>,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        may_change(actor, "delete a task")?;
        let task: TaskRef = task.into();
        let id = self.resolve(&task).await?;
        let task = self
            .store
            .delete_task(TaskDeletion { task_id: id, actor: actor.label.to_string(), reason, expected_version })
            .await?;
        self.after_commit();
        Ok(task)
    }

    /// Claims a task for `session` (acting as `actor`), or the next ready one. Leases that ran out
    /// are recorded first, so their tasks are ready for this very claim.
    pub async fn claim_task(&self, actor: &Actor, session: &Session, request: ClaimTask) -> Result<Claimed> {
        may_change(actor, "claim a task")?;
        self.expire_claims().await?;
        let outcome = self
            .store
            .claim_task(ClaimRequest {
                task_id: request.task_id,
                repository: request.repository,
                session: session.clone(),
                user: UserKey::Email(actor.email.clone()),
                actor: actor.label.to_string(),
                lease: request.lease,
            })
            .await?;
        match outcome {
            ClaimOutcome::Claimed(task) => {
                self.after_commit();
                Ok(Claimed { task: Some(*task), reason: None })
            }
            ClaimOutcome::NoneReady(why) => Ok(Claimed { task: None, reason: Some(not_ready_reason(why)) }),
        }
    }

    /// The holder gives a task back, `not_started` (anyone may claim it at once) or `blocked`.
    pub async fn release_task(
        &self,
        actor: &Actor,
        session: &Session,
        id: Uuid,
        status: Option<Status>,
        comment: Option<CommentText>,
    ) -> Result<Task> {
        may_change(actor, "release a task")?;
        self.expire_claims().await?;
        let task = self
            .store
            .release_task(Release {
                task_id: id,
                session: session.clone(),
                actor: actor.label.to_string(),
                status: status.unwrap_or(Status::NotStarted),
                comment,
            })
            .await?;
        self.after_commit();
        Ok(task)
    }

    /// Records every claim whose lease ran out (a change by the system each, with its event).
    pub async fn expire_claims(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let found = self.store.expire_claims(EXPIRY_BATCH).await?;
            total += found;
            if found > 0 {
                self.after_commit();
            }
            if found < EXPIRY_BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// What happened to the caller's tasks (assigned to them, not deleted) since `since`: the tasks
    /// with history rows since then, most recently updated first (at most [`ACTIVITY_TASKS`]), each
    /// with those rows (status changes, comments, edits), oldest first. Two reads whatever the number.
    pub async fn activity_since(&self, actor: &Actor, since: Since) -> Result<Vec<TaskActivity>> {
        let Some(me) = self.store.find_user(&UserKey::Email(actor.email.clone())).await? else {
            return Ok(Vec::new());
        };
        // By history, not `updated_at`: a comment leaves the task's own fields (and time) as they were.
        let query = TaskQuery {
            assignee_id: Some(me.id),
            changed_since: Some(since.at()),
            limit: ACTIVITY_TASKS as u32,
            ..TaskQuery::default()
        };
        let tasks = self.store.list_tasks(&query).await?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let mut history = self.store.history_since(&ids, since.at()).await?;
        Ok(tasks
            .into_iter()
            .map(|task| {
                let (mine, rest) = std::mem::take(&mut history).into_iter().partition(|h| h.task_id == task.id);
                history = rest;
                TaskActivity { task, history: mine }
            })
            .collect())
    }

    /// The acting user, created on first use.
    pub async fn me(&self, actor: &Actor) -> Result<User> {
        self.store.resolve_user("user", &UserKey::Email(actor.email.clone())).await
    }

    /// A user named by a filter, looked up only: an unknown user is refused, naming `field` and the
    /// value, and nobody is created.
    pub async fn known_user(&self, field: &str, key: UserKey) -> Result<User> {
        if let Some(user) = self.store.find_user(&key).await? {
            return Ok(user);
        }
        Err(match key {
            UserKey::Id(id) => Error::invalid(field, format!("no user has the id {id}")),
            UserKey::Email(email) => Error::invalid(field, format!("no user {:?} is known", email.as_str())),
        })
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.store.list_users().await
    }

    pub async fn list_repositories(&self) -> Result<Vec<Repository>> {
        self.store.list_repositories().await
    }

    /// Gives a repository's task keys a new prefix; the old keys keep naming the same tasks.
    pub async fn set_key_prefix(&self, repository: &RepoName, prefix: &KeyPrefix) -> Result<Repository> {
        self.store.set_key_prefix(repository, prefix).await
    }

    /// The events after `after_seq`, for a feed that resumes (a read replica may answer).
    pub async fn events_after(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        self.store.replay_events(after_seq, limit).await
    }

    pub async fn event_bounds(&self) -> Result<EventBounds> {
        self.store.event_bounds().await
    }
}

/// Every change starts here: a read-only credential may list and read, never change.
pub fn may_change(actor: &Actor, what: &str) -> Result<()> {
    match actor.access {
        Access::ReadWrite => Ok(()),
        Access::ReadOnly => Err(Error::Forbidden(format!(
            "this API key is read-only: it may list and read tasks but not {what} (use a key created without \
             --read-only)"
        ))),
        Access::ReadScope => Err(Error::Forbidden(format!(
            "this access token is read-only: it was granted tasks:read but not tasks:write, so it may list and read \
             tasks but not {what} (sign in again granting tasks:write)"
        ))),
    }
}

/// Why `claim_task` found nothing, as the caller reads it.
fn not_ready_reason(why: NotReady) -> String {
    let mut parts = Vec::new();
    if why.waiting_on_blockers > 0 {
        parts.push(format!("{} wait on blockers", why.waiting_on_blockers));
    }
    if why.claimed_by_others > 0 {
        parts.push(format!("{} are claimed by others", why.claimed_by_others));
    }
    if why.assigned_to_others > 0 {
        parts.push(format!("{} are assigned to someone else", why.assigned_to_others));
    }
    if parts.is_empty() {
        "no task is ready: no open task waits to be started".to_owned()
    } else {
        format!("no task is ready: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;

    #[test]
    fn read_only_credentials_may_not_change_and_say_what_would_let_them() {
        let actor = Actor::new(Email::parse("email", "ann@example.com").unwrap());
        assert!(may_change(&actor, "create a task").is_ok());
        let key = may_change(&actor.clone().with_access(Access::ReadOnly), "create a task").unwrap_err();
        assert!(key.to_string().contains("--read-only"), "{key}");
        let token = may_change(&actor.with_access(Access::ReadScope), "create a task").unwrap_err();
        assert!(matches!(&token, Error::Forbidden(m) if m.contains("tasks:write") && m.contains("create a task")));
        assert_eq!(token.code(), "read_only");
    }
}
