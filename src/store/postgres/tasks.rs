//! Tasks: reads (one query each, joins instead of N+1) and writes (one transaction each: the change,
//! its history rows, its outbox event).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::rows::{self, COMMENT_COLUMNS, HISTORY_COLUMNS, TASK_COLUMN_COUNT, TASK_COLUMNS, TASK_FROM};
use super::{Inner, Outcome, lookup, outbox};
use crate::domain::{
    Comment, EventKind, FieldChange, HistoryEntry, IdempotencyKey, Task, diff_tasks, event_kind_for_update,
};
use crate::error::Error;
use crate::store::{CreatedTask, NewComment, NewTask, TaskDeletion, TaskQuery, TaskUpdate};
use crate::wire;

/// The `ON CONFLICT` target names the partial unique index on (idempotency_owner, idempotency_key):
/// a concurrent create with the same key from the same user waits for the first, then inserts nothing.
const INSERT_TASK: &str = "INSERT INTO tasks (id, title, description, status, priority, complexity, assignee_id, \
     repository_id, created_by, updated_by, idempotency_key, idempotency_owner, idempotency_fingerprint) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12) \
     ON CONFLICT (idempotency_owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
     RETURNING created_at, updated_at";

/// How a write locks the task row it changes.
#[derive(Clone, Copy)]
enum Lock {
    /// The row itself changes.
    Update,
    /// The row must not change or vanish meanwhile (a comment).
    Share,
}

/// A live task, locked for the rest of the transaction, with its repository id. Missing or
/// deleted: `NotFound`.
async fn lock_live(tx: &Transaction<'_>, id: Uuid, lock: Lock) -> Outcome<(Task, Option<Uuid>)> {
    let mode = match lock {
        Lock::Update => "UPDATE",
        Lock::Share => "SHARE",
    };
    let sql = format!("SELECT {TASK_COLUMNS}, t.repository_id FROM {TASK_FROM} WHERE t.id = $1 FOR {mode} OF t");
    let statement = tx.prepare_cached(&sql).await?;
    let row = tx.query_opt(&statement, &[&id]).await?.ok_or_else(|| Error::task_not_found(id))?;
    let task = rows::task(&row)?;
    if task.deleted_at.is_some() {
        return Err(Error::task_not_found(id).into());
    }
    Ok((task, row.try_get(TASK_COLUMN_COUNT)?))
}

fn check_version(task: &Task, expected: Option<i64>) -> Outcome<()> {
    match expected {
        Some(expected) if expected != task.version => {
            Err(Error::Conflict { expected, current: Box::new(task.clone()) }.into())
        }
        _ => Ok(()),
    }
}

/// Appends history rows in one statement; `ORDER BY ord` keeps their order in the identity column.
async fn write_history(
    tx: &Transaction<'_>,
    task_id: Uuid,
    changes: &[FieldChange],
    changed_by: &str,
    comment: Option<&str>,
) -> Outcome<()> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO task_history (id, task_id, field_changed, old_value, new_value, changed_by, comment) \
             SELECT h.id, $1, h.field, h.old, h.new, $6, $7 \
             FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS h(id, field, old, new, ord) \
             ORDER BY h.ord",
        )
        .await?;
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
    let olds: Vec<Option<&str>> = changes.iter().map(|c| c.old_value.as_deref()).collect();
    let news: Vec<Option<&str>> = changes.iter().map(|c| c.new_value.as_deref()).collect();
    tx.execute(&statement, &[&task_id, &ids, &fields, &olds, &news, &changed_by, &comment]).await?;
    Ok(())
}

/// Writes a change's history rows and then its event, pipelined: `try_join` polls the history insert
/// first, so it is sent (and run by the server) first, and the second statement goes out without
/// waiting for the first one's answer. Returns the event's seq.
async fn record(
    tx: &Transaction<'_>,
    changes: &[FieldChange],
    comment: Option<&str>,
    kind: EventKind,
    task: &Task,
    actor: &str,
    previous_assignee_id: Option<Uuid>,
) -> Outcome<i64> {
    let history = write_history(tx, task.id, changes, actor, comment);
    let event = outbox::append(tx, kind, task, actor, previous_assignee_id);
    let ((), seq) = futures::future::try_join(history, event).await?;
    Ok(seq)
}

/// The task `owner` made with `key`, and the fingerprint of the request that made it.
async fn find_by_idempotency_key(
    client: &impl GenericClient,
    owner: &str,
    key: &IdempotencyKey,
) -> Outcome<Option<(Task, Option<String>)>> {
    let sql = format!(
        "SELECT {TASK_COLUMNS}, t.idempotency_fingerprint FROM {TASK_FROM} \
         WHERE t.idempotency_owner = $1 AND t.idempotency_key = $2"
    );
    let statement = client.prepare_cached(&sql).await?;
    let Some(row) = client.query_opt(&statement, &[&owner, &key.as_str()]).await? else { return Ok(None) };
    Ok(Some((rows::task(&row)?, row.try_get(TASK_COLUMN_COUNT)?)))
}

pub(super) async fn create(inner: &Inner, new: NewTask) -> Outcome<CreatedTask> {
    let mut client = inner.conn().await?;
    // A retry finds the first task without writing anything (not even a user or repository).
    if let Some(key) = &new.idempotency_key
        && let Some((task, fingerprint)) = find_by_idempotency_key(&client, &new.owner, key).await?
    {
        return Ok(new.replay(task, fingerprint.as_deref())?);
    }
    let tx = client.transaction().await?;
    // Both lookups are pipelined on the transaction's connection.
    let (assignee, repository_id) = futures::future::try_join(
        async {
            match &new.assignee {
                Some(key) => lookup::resolve_user(&tx, "assignee_id", key).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &new.repository {
                Some(name) => lookup::repository_id(&tx, name).await.map(Some),
                None => Ok(None),
            }
        },
    )
    .await?;
    let id = Uuid::now_v7();
    let description = new.description.as_ref().map(|d| d.as_str());
    let assignee_id = assignee.as_ref().map(|u| u.id);
    let idempotency_key = new.idempotency_key.as_ref().map(|k| k.as_str());
    let idempotency_owner = idempotency_key.map(|_| new.owner.as_str());
    let fingerprint = idempotency_key.map(|_| new.fingerprint());
    let statement = tx.prepare_cached(INSERT_TASK).await?;
    let inserted = tx
        .query_opt(
            &statement,
            &[
                &id,
                &new.title.as_str(),
                &description,
                &new.status.as_str(),
                &new.priority.as_str(),
                &new.complexity.as_str(),
                &assignee_id,
                &repository_id,
                &new.actor,
                &idempotency_key,
                &idempotency_owner,
                &fingerprint,
            ],
        )
        .await?;
    let Some(row) = inserted else {
        // A concurrent create with the same key committed first: undo ours (users, repositories
        // included) and answer with theirs.
        tx.rollback().await?;
        let key = new.idempotency_key.as_ref().ok_or_else(|| Error::Internal("a task insert was skipped".into()))?;
        let (task, fingerprint) = find_by_idempotency_key(&client, &new.owner, key)
            .await?
            .ok_or_else(|| Error::Internal(format!("the task with idempotency key {key} vanished")))?;
        return Ok(new.replay(task, fingerprint.as_deref())?);
    };
    let task = Task {
        id,
        title: new.title.into_inner(),
        description: new.description.map(|d| d.into_inner()),
        status: new.status,
        priority: new.priority,
        complexity: new.complexity,
        assignee_id,
        assignee_email: assignee.map(|u| u.email),
        repository: new.repository.map(|r| r.into_inner()),
        created_by: new.actor.clone(),
        updated_by: new.actor,
        created_at: row.try_get(0)?,
        updated_at: row.try_get(1)?,
        version: 1,
        deleted_at: None,
    };
    let created = FieldChange { field: "created", old_value: None, new_value: Some(task.title.clone()) };
    let seq = record(&tx, &[created], None, EventKind::for_creation(&task), &task, &task.created_by, None).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok(CreatedTask { task, replayed: false })
}

pub(super) async fn update(inner: &Inner, update: TaskUpdate) -> Outcome<Task> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let (old, old_repository_id) = lock_live(&tx, update.task_id, Lock::Update).await?;
    check_version(&old, update.expected_version)?;
    let patch = update.patch;
    if patch.is_empty() {
        return Ok(old);
    }

    let mut new = old.clone();
    if let Some(title) = patch.title {
        new.title = title.into_inner();
    }
    if let Some(description) = patch.description {
        new.description = description.map(|d| d.into_inner());
    }
    if let Some(status) = patch.status {
        new.status = status;
    }
    if let Some(priority) = patch.priority {
        new.priority = priority;
    }
    if let Some(complexity) = patch.complexity {
        new.complexity = complexity;
    }
    if let Some(assignee) = patch.assignee {
        let user = match assignee {
            Some(key) => Some(lookup::resolve_user(&tx, "assignee_id", &key).await?),
            None => None,
        };
        new.assignee_id = user.as_ref().map(|u| u.id);
        new.assignee_email = user.map(|u| u.email);
    }
    let mut repository_id = old_repository_id;
    if let Some(repository) = patch.repository {
        match repository {
            Some(name) if Some(name.as_str()) == old.repository.as_deref() => {}
            Some(name) => {
                repository_id = Some(lookup::repository_id(&tx, &name).await?);
                new.repository = Some(name.into_inner());
            }
            None => {
                repository_id = None;
                new.repository = None;
            }
        }
    }
    let changes = diff_tasks(&old, &new);
    if changes.is_empty() {
        // Nothing changed, so nothing was created either: dropping the transaction rolls back.
        return Ok(old);
    }

    let statement = tx
        .prepare_cached(
            "UPDATE tasks SET title = $2, description = $3, status = $4, priority = $5, complexity = $6, \
             assignee_id = $7, repository_id = $8, updated_by = $9, version = version + 1 \
             WHERE id = $1 RETURNING updated_at, version",
        )
        .await?;
    let row = tx
        .query_one(
            &statement,
            &[
                &new.id,
                &new.title,
                &new.description,
                &new.status.as_str(),
                &new.priority.as_str(),
                &new.complexity.as_str(),
                &new.assignee_id,
                &repository_id,
                &update.actor,
            ],
        )
        .await?;
    new.updated_at = row.try_get(0)?;
    new.version = row.try_get(1)?;
    new.updated_by = update.actor;

    let comment = update.comment.as_ref().map(|c| c.as_str());
    let previous_assignee = if old.assignee_id != new.assignee_id { old.assignee_id } else { None };
    let kind = event_kind_for_update(&old, &new);
    let seq = record(&tx, &changes, comment, kind, &new, &new.updated_by, previous_assignee).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok(new)
}

pub(super) async fn add_comment(inner: &Inner, new: NewComment) -> Outcome<(Comment, Task)> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let (task, _) = lock_live(&tx, new.task_id, Lock::Share).await?;
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO task_comments (id, task_id, comment, author) VALUES ($1, $2, $3, $4) RETURNING {COMMENT_COLUMNS}"
        ))
        .await?;
    let row = tx.query_one(&statement, &[&Uuid::now_v7(), &task.id, &new.comment.as_str(), &new.author]).await?;
    let comment = rows::comment(&row)?;
    let change = FieldChange { field: "comment", old_value: None, new_value: Some(comment.comment.clone()) };
    let seq = record(&tx, &[change], None, EventKind::TaskCommented, &task, &new.author, None).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok((comment, task))
}

pub(super) async fn delete(inner: &Inner, deletion: TaskDeletion) -> Outcome<Task> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let (mut task, _) = lock_live(&tx, deletion.task_id, Lock::Update).await?;
    check_version(&task, deletion.expected_version)?;
    let statement = tx
        .prepare_cached(
            "UPDATE tasks SET deleted_at = now(), updated_by = $2, version = version + 1 \
             WHERE id = $1 RETURNING deleted_at, updated_at, version",
        )
        .await?;
    let row = tx.query_one(&statement, &[&task.id, &deletion.actor]).await?;
    let deleted_at: DateTime<Utc> = row.try_get(0)?;
    task.deleted_at = Some(deleted_at);
    task.updated_at = row.try_get(1)?;
    task.version = row.try_get(2)?;
    task.updated_by = deletion.actor;
    let change = FieldChange { field: "deleted", old_value: None, new_value: Some(wire::timestamp(deleted_at)) };
    let reason = deletion.reason.as_ref().map(|r| r.as_str());
    let seq = record(&tx, &[change], reason, EventKind::TaskDeleted, &task, &task.updated_by, None).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok(task)
}

pub(super) async fn get(inner: &Inner, id: Uuid) -> Outcome<Option<Task>> {
    let client = inner.conn().await?;
    let sql = format!("SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.id = $1 AND t.deleted_at IS NULL");
    let statement = client.prepare_cached(&sql).await?;
    client.query_opt(&statement, &[&id]).await?.map(|row| rows::task(&row)).transpose()
}

pub(super) async fn list_comments(inner: &Inner, task_id: Uuid) -> Outcome<Vec<Comment>> {
    let client = inner.conn().await?;
    let sql = format!("SELECT {COMMENT_COLUMNS} FROM task_comments WHERE task_id = $1 ORDER BY n");
    let statement = client.prepare_cached(&sql).await?;
    client.query(&statement, &[&task_id]).await?.iter().map(rows::comment).collect()
}

pub(super) async fn list_history(inner: &Inner, task_id: Uuid) -> Outcome<Vec<HistoryEntry>> {
    let client = inner.conn().await?;
    let sql = format!("SELECT {HISTORY_COLUMNS} FROM task_history WHERE task_id = $1 ORDER BY n");
    let statement = client.prepare_cached(&sql).await?;
    client.query(&statement, &[&task_id]).await?.iter().map(rows::history).collect()
}

/// The task, its comments and its history as of one moment: one read-only `REPEATABLE READ`
/// transaction on one connection (three separate reads could pair a task with history written
/// after it). The three queries are pipelined; the snapshot is the first one's.
pub(super) async fn get_detail(inner: &Inner, id: Uuid) -> Outcome<Option<crate::store::StoredTaskDetail>> {
    let mut client = inner.conn().await?;
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let task = tx
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.id = $1 AND t.deleted_at IS NULL"))
        .await?;
    let comments = tx
        .prepare_cached(&format!("SELECT {COMMENT_COLUMNS} FROM task_comments WHERE task_id = $1 ORDER BY n"))
        .await?;
    let history =
        tx.prepare_cached(&format!("SELECT {HISTORY_COLUMNS} FROM task_history WHERE task_id = $1 ORDER BY n")).await?;
    let (task, comments, history) = futures::future::try_join3(
        tx.query_opt(&task, &[&id]),
        tx.query(&comments, &[&id]),
        tx.query(&history, &[&id]),
    )
    .await?;
    tx.commit().await?;
    let Some(task) = task else { return Ok(None) };
    Ok(Some(crate::store::StoredTaskDetail {
        task: rows::task(&task)?,
        comments: comments.iter().map(rows::comment).collect::<Outcome<_>>()?,
        history: history.iter().map(rows::history).collect::<Outcome<_>>()?,
    }))
}

/// One query: only the filters given appear in the SQL (each combination is its own prepared
/// statement), so the planner can pick the index that leads with the filtered column.
pub(super) async fn list(inner: &Inner, query: &TaskQuery) -> Outcome<Vec<Task>> {
    let status = query.status.map(|s| s.as_str());
    let priority = query.priority.map(|p| p.as_str());
    let repository = query.repository.as_ref().map(|r| r.as_str());
    let pattern = query.query.as_ref().map(|q| q.like_pattern());
    let after = query.after.map(|c| (clamp_to_postgres(c.updated_at), c.id));
    let limit = i64::from(query.limit);

    let mut q = Conditions::new(format!("SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.deleted_at IS NULL"));
    if let Some(id) = &query.assignee_id {
        let p = q.param(id);
        q.and(format_args!("t.assignee_id = {p}"));
    }
    if let Some(name) = &repository {
        let p = q.param(name);
        q.and(format_args!("t.repository_id = (SELECT id FROM repositories WHERE name = {p})"));
    }
    if let Some(status) = &status {
        let p = q.param(status);
        q.and(format_args!("t.status = {p}"));
    }
    if let Some(priority) = &priority {
        let p = q.param(priority);
        q.and(format_args!("t.priority = {p}"));
    }
    if let Some(pattern) = &pattern {
        // like_pattern() escapes %, _ and \ with \, so the text matches literally.
        let p = q.param(pattern);
        q.and(format_args!(r"(t.title ILIKE {p} ESCAPE '\' OR t.description ILIKE {p} ESCAPE '\')"));
    }
    if let Some((at, id)) = &after {
        let (a, b) = (q.param(at), q.param(id));
        q.and(format_args!("(t.updated_at, t.id) < ({a}, {b})"));
    }
    let p = q.param(&limit);
    let _ = write!(q.sql, " ORDER BY t.updated_at DESC, t.id DESC LIMIT {p}");

    let client = inner.conn().await?;
    let statement = client.prepare_cached(&q.sql).await?;
    client.query(&statement, &q.params).await?.iter().map(rows::task).collect()
}

/// A WHERE clause under construction, with its numbered parameters.
struct Conditions<'a> {
    sql: String,
    params: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Conditions<'a> {
    fn new(sql: String) -> Self {
        Self { sql, params: Vec::with_capacity(8) }
    }

    /// Adds a parameter; returns its placeholder (`$n`).
    fn param(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn and(&mut self, condition: std::fmt::Arguments<'_>) {
        let _ = write!(self.sql, " AND {condition}");
    }
}

/// A cursor can carry any time chrono knows; PostgreSQL's range is narrower. Clamping to a range
/// that holds every real row keeps the answer the same.
fn clamp_to_postgres(at: DateTime<Utc>) -> DateTime<Utc> {
    let bound = |y| NaiveDate::from_ymd_opt(y, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
    match (bound(1), bound(100_000)) {
        (Some(low), Some(high)) => at.clamp(low, high),
        _ => at,
    }
}
