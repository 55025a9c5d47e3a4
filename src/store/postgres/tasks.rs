//! Tasks: reads (one query each, joins instead of N+1) and writes (one transaction each: the change,
//! its history rows, its outbox event).

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::rows::{self, COMMENT_COLUMNS, HISTORY_COLUMNS, TASK_COLUMN_COUNT, TASK_COLUMNS, TASK_FROM};
use super::{Inner, Outcome, lookup, outbox, task_keys, work};
use crate::domain::{
    Comment, HistoryEntry, IdempotencyKey, Record, Task, TaskPatch, User, check_version, commented, deleted,
    link_changes,
};
use crate::error::Error;
use crate::store::{CreatedTask, NewComment, NewTask, TaskDeletion, TaskQuery, TaskUpdate};

/// The `ON CONFLICT` target names the partial unique index on (idempotency_owner, idempotency_key):
/// a concurrent create with the same key from the same user waits for the first, then inserts nothing.
/// The times are the transaction's `now()`, returned so the domain builds the task as created then.
const INSERT_TASK: &str = "INSERT INTO tasks (id, title, description, status, priority, complexity, assignee_id, \
     repository_id, created_by, updated_by, idempotency_key, idempotency_owner, idempotency_fingerprint, parent_id, \
     key_series_id, key_number) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (idempotency_owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
     RETURNING created_at";

/// How a write locks the task row it changes.
#[derive(Clone, Copy)]
pub(super) enum Lock {
    /// The row itself changes.
    Update,
    /// The row must not change or vanish meanwhile (a comment).
    Share,
}

/// A live task, locked for the rest of the transaction.
pub(super) struct Locked {
    pub(super) task: Task,
    pub(super) repository_id: Option<Uuid>,
    /// The transaction's `now()`: the time of the change (history and event rows default to it too).
    pub(super) now: DateTime<Utc>,
}

/// Reads and locks a live task. Missing or deleted: `NotFound`.
pub(super) async fn lock_live(tx: &Transaction<'_>, id: Uuid, lock: Lock) -> Outcome<Locked> {
    let mode = match lock {
        Lock::Update => "UPDATE",
        Lock::Share => "SHARE",
    };
    let sql = format!("SELECT {TASK_COLUMNS}, t.repository_id, now() FROM {TASK_FROM} WHERE t.id = $1 FOR {mode} OF t");
    let statement = tx.prepare_cached(&sql).await?;
    let row = tx.query_opt(&statement, &[&id]).await?.ok_or_else(|| Error::task_not_found(id))?;
    let task = rows::task(&row)?;
    if task.deleted_at.is_some() {
        return Err(Error::task_not_found(id).into());
    }
    Ok(Locked { task, repository_id: row.try_get(TASK_COLUMN_COUNT)?, now: row.try_get(TASK_COLUMN_COUNT + 1)? })
}

/// Appends a change's history rows in one statement; `ORDER BY ord` keeps their order in the identity
/// column.
async fn write_history(tx: &Transaction<'_>, record: &Record) -> Outcome<()> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO task_history (id, task_id, field_changed, old_value, new_value, changed_by, comment) \
             SELECT h.id, $1, h.field, h.old, h.new, $6, $7 \
             FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS h(id, field, old, new, ord) \
             ORDER BY h.ord",
        )
        .await?;
    let changes = &record.history;
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
    let olds: Vec<Option<&str>> = changes.iter().map(|c| c.old_value.as_deref()).collect();
    let news: Vec<Option<&str>> = changes.iter().map(|c| c.new_value.as_deref()).collect();
    tx.execute(&statement, &[&record.task.id, &ids, &fields, &olds, &news, &record.actor, &record.comment]).await?;
    Ok(())
}

/// Writes what a change records, its history rows and then its event, pipelined: `try_join` polls the
/// history insert first, so it is sent (and run by the server) first, and the second statement goes
/// out without waiting for the first one's answer. Returns the event's seq.
pub(super) async fn write_record(tx: &Transaction<'_>, record: &Record) -> Outcome<i64> {
    let ((), seq) = futures::future::try_join(write_history(tx, record), outbox::append(tx, record)).await?;
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

/// The new task's assignee (created on first use by email) and repository id (created on first use),
/// both looked up at once, pipelined on the transaction's connection.
async fn resolve_references(tx: &Transaction<'_>, new: &NewTask) -> Outcome<(Option<User>, Option<Uuid>)> {
    futures::future::try_join(
        async {
            match &new.assignee {
                Some(key) => lookup::resolve_user(tx, "assignee_id", key).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &new.repository {
                Some(name) => lookup::repository_id(tx, name).await.map(Some),
                None => Ok(None),
            }
        },
    )
    .await
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
    let (assignee, repository_id) = resolve_references(&tx, &new).await?;
    let repository = repository_id.zip(new.repository.as_ref().map(|r| r.as_str()));
    let key = task_keys::next_key(&tx, repository).await?;
    let open_blockers = work::check_new_task_links(&tx, &new).await?;
    let id = Uuid::now_v7();
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
                &new.description.as_ref().map(|d| d.as_str()),
                &new.status.as_str(),
                &new.priority.as_str(),
                &new.complexity.as_str(),
                &assignee.as_ref().map(|u| u.id),
                &repository_id,
                &new.actor,
                &idempotency_key,
                &idempotency_owner,
                &fingerprint,
                &new.parent_id,
                &key.series_id,
                &key.number,
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
    let mut record = new.draft(assignee).create(id, key.key, &new.actor, row.try_get(0)?);
    work::insert_links(&tx, id, &new.blocked_by).await?;
    record.history.extend(link_changes(&new.blocked_by, &[]));
    record.task.open_blockers = open_blockers;
    let seq = write_record(&tx, &record).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok(CreatedTask { task: record.task, replayed: false })
}

/// The patch's assignee resolved to a user (`None` when the patch leaves the assignee alone).
async fn resolve_assignee(tx: &Transaction<'_>, patch: &TaskPatch) -> Outcome<Option<Option<User>>> {
    match &patch.assignee {
        Some(Some(key)) => Ok(Some(Some(lookup::resolve_user(tx, "assignee_id", key).await?))),
        Some(None) => Ok(Some(None)),
        None => Ok(None),
    }
}

/// Writes a changed task's row (its version and `updated_at` as the domain set them).
pub(super) async fn write_task(tx: &Transaction<'_>, task: &Task, repository_id: Option<Uuid>) -> Outcome<()> {
    let statement = tx
        .prepare_cached(
            "UPDATE tasks SET title = $2, description = $3, status = $4, priority = $5, complexity = $6, \
             assignee_id = $7, repository_id = $8, updated_by = $9, updated_at = $10, version = $11, \
             parent_id = $12, claim_holder = $13, claim_agent = $14, claim_expires_at = $15, \
             claim_lapsed_holder = $16 \
             WHERE id = $1",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &task.id,
            &task.title,
            &task.description,
            &task.status.as_str(),
            &task.priority.as_str(),
            &task.complexity.as_str(),
            &task.assignee_id,
            &repository_id,
            &task.updated_by,
            &task.updated_at,
            &task.version,
            &task.parent_id,
            &task.claim.as_ref().map(|c| c.holder.as_str()),
            &task.claim.as_ref().and_then(|c| c.agent.as_deref()),
            &task.claim.as_ref().map(|c| c.expires_at),
            &task.lapsed_holder,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn update(inner: &Inner, update: TaskUpdate) -> Outcome<Task> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let Locked { task: old, repository_id, now } = lock_live(&tx, update.task_id, Lock::Update).await?;
    check_version(&old, update.expected_version).map_err(Error::from)?;
    // Links to check and to write: only those that change something (re-adding one is no change).
    let patch = &work::check_patch_links(&tx, &old, &update.patch).await?;
    let assignee = resolve_assignee(&tx, patch).await?;
    let comment = update.comment.as_ref().map(|c| c.as_str());
    let Some(mut record) = patch.apply(&old, assignee, &update.actor, comment, now) else {
        // Nothing changed, so nothing was created either: dropping the transaction rolls back.
        return Ok(old);
    };
    // The repository's id, looked up (created on first use) only when the repository changes.
    let repository_id = match &patch.repository {
        Some(Some(name)) if record.task.repository != old.repository => Some(lookup::repository_id(&tx, name).await?),
        Some(None) => None,
        _ => repository_id,
    };
    write_task(&tx, &record.task, repository_id).await?;
    work::write_patch_links(&tx, old.id, patch).await?;
    record.task.open_blockers = work::open_blockers(&tx, old.id).await?;
    // The event first: it takes the event-order lock, so a concurrent close of the task's other blocker
    // has committed before the check below, whose statement then sees it (read committed). Checking
    // before the lock, two blockers closed at once would each see the other open and nobody announce.
    let mut seq = write_record(&tx, &record).await?;
    if old.status.is_open() && !record.task.status.is_open() {
        seq = seq.max(work::announce_unblocked(&tx, old.id, &update.actor).await?);
    }
    tx.commit().await?;
    inner.committed(seq);
    Ok(record.task)
}

pub(super) async fn add_comment(inner: &Inner, new: NewComment) -> Outcome<(Comment, Task)> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let Locked { task, .. } = lock_live(&tx, new.task_id, Lock::Share).await?;
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO task_comments (id, task_id, comment, author) VALUES ($1, $2, $3, $4) RETURNING {COMMENT_COLUMNS}"
        ))
        .await?;
    let row = tx.query_one(&statement, &[&Uuid::now_v7(), &task.id, &new.comment.as_str(), &new.author]).await?;
    let comment = rows::comment(&row)?;
    let seq = write_record(&tx, &commented(&task, &comment)).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok((comment, task))
}

pub(super) async fn delete(inner: &Inner, deletion: TaskDeletion) -> Outcome<Task> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let Locked { task: old, now, .. } = lock_live(&tx, deletion.task_id, Lock::Update).await?;
    check_version(&old, deletion.expected_version).map_err(Error::from)?;
    let record = deleted(&old, &deletion.actor, deletion.reason.as_ref().map(|r| r.as_str()), now);
    let task = &record.task;
    let statement = tx
        .prepare_cached(
            "UPDATE tasks SET deleted_at = $2, updated_at = $3, updated_by = $4, version = $5 WHERE id = $1",
        )
        .await?;
    tx.execute(&statement, &[&task.id, &task.deleted_at, &task.updated_at, &task.updated_by, &task.version]).await?;
    let mut seq = write_record(&tx, &record).await?;
    if old.status.is_open() {
        // An open blocker deleted frees what waited on it, as its completion would.
        seq = seq.max(work::announce_unblocked(&tx, old.id, &deletion.actor).await?);
    }
    tx.commit().await?;
    inner.committed(seq);
    Ok(record.task)
}

pub(super) async fn get(client: Object, id: Uuid) -> Outcome<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.id = $1 AND t.deleted_at IS NULL");
    let statement = client.prepare_cached(&sql).await?;
    client.query_opt(&statement, &[&id]).await?.map(|row| rows::task(&row)).transpose()
}

pub(super) async fn list_comments(client: Object, task_id: Uuid) -> Outcome<Vec<Comment>> {
    let sql = format!("SELECT {COMMENT_COLUMNS} FROM task_comments WHERE task_id = $1 ORDER BY n");
    let statement = client.prepare_cached(&sql).await?;
    client.query(&statement, &[&task_id]).await?.iter().map(rows::comment).collect()
}

pub(super) async fn list_history(client: Object, task_id: Uuid) -> Outcome<Vec<HistoryEntry>> {
    let sql = format!("SELECT {HISTORY_COLUMNS} FROM task_history WHERE task_id = $1 ORDER BY n");
    let statement = client.prepare_cached(&sql).await?;
    client.query(&statement, &[&task_id]).await?.iter().map(rows::history).collect()
}

pub(super) async fn history_since(
    client: Object,
    task_ids: &[Uuid],
    since: DateTime<Utc>,
) -> Outcome<Vec<HistoryEntry>> {
    let sql =
        format!("SELECT {HISTORY_COLUMNS} FROM task_history WHERE task_id = ANY($1) AND changed_at >= $2 ORDER BY n");
    let statement = client.prepare_cached(&sql).await?;
    client.query(&statement, &[&task_ids, &since]).await?.iter().map(rows::history).collect()
}

/// The task, its comments and its history as of one moment: one read-only `REPEATABLE READ`
/// transaction on one connection (three separate reads could pair a task with history written
/// after it). The three queries are pipelined; the snapshot is the first one's.
pub(super) async fn get_detail(mut client: Object, id: Uuid) -> Outcome<Option<crate::store::StoredTaskDetail>> {
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
pub(super) async fn list(client: Object, query: &TaskQuery) -> Outcome<Vec<Task>> {
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
    if let Some(user) = &query.ready_for {
        let p = q.param(user);
        q.and(format_args!(
            "t.status = 'not_started' AND (t.assignee_id IS NULL OR t.assignee_id = {p}) AND NOT EXISTS ({})",
            work::OPEN_BLOCKER
        ));
    }
    if let Some(parent) = &query.parent_id {
        let p = q.param(parent);
        q.and(format_args!("t.parent_id = {p}"));
    }
    if let Some(since) = &query.changed_since {
        let p = q.param(since);
        q.and(format_args!("EXISTS (SELECT 1 FROM task_history h WHERE h.task_id = t.id AND h.changed_at >= {p})"));
    }
    if let Some((at, id)) = &after {
        let (a, b) = (q.param(at), q.param(id));
        q.and(format_args!("(t.updated_at, t.id) < ({a}, {b})"));
    }
    let p = q.param(&limit);
    let _ = write!(q.sql, " ORDER BY t.updated_at DESC, t.id DESC LIMIT {p}");

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
