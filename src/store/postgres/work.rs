//! Working together on PostgreSQL: claims (of one task, or the next ready one under `SKIP LOCKED`),
//! releases, the sweep of leases that ran out, links between tasks (blockers, parents) and the
//! events of tasks their last blocker freed. The rules are the domain's (`domain::work`).

use std::collections::HashSet;

use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::rows::{self, TASK_COLUMN_COUNT, TASK_COLUMNS, TASK_FROM};
use super::tasks::{Lock, Locked, lock_live, write_record, write_task};
use super::{Inner, Outcome, lookup};
use crate::domain::{
    Link, Status, Task, TaskLinks, TaskPatch, claimed, dependency_cycle, lapsed, parent_cycle, released, unblocked,
    unfinished_subtasks,
};
use crate::error::Error;
use crate::store::{ClaimOutcome, ClaimRequest, NewTask, NotReady, Release};

/// The condition "task `t` waits on an open blocker", for `NOT EXISTS (…)`.
pub(super) const OPEN_BLOCKER: &str = "SELECT 1 FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
     WHERE l.task_id = t.id AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL";

/// Link changes from any two transactions must not pass the cycle check each without the other's
/// link: they take turns under this transaction-scoped advisory lock (the outbox uses another key).
const LINK_LOCK: i64 = 0x7461_736b_6c69_6e6b;

/// The next ready task for `user_id`, locked; tasks other claimers hold locks on are skipped.
async fn next_ready(tx: &Transaction<'_>, user_id: Uuid, repository: Option<&str>) -> Outcome<Option<Uuid>> {
    let sql = format!(
        "SELECT t.id FROM tasks t WHERE t.deleted_at IS NULL AND t.status = 'not_started' \
         AND (t.assignee_id IS NULL OR t.assignee_id = $1) \
         AND ($2::text IS NULL OR t.repository_id = (SELECT id FROM repositories WHERE name = $2)) \
         AND NOT EXISTS ({OPEN_BLOCKER}) \
         ORDER BY CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, \
                  t.created_at, t.id \
         LIMIT 1 FOR UPDATE OF t SKIP LOCKED"
    );
    let statement = tx.prepare_cached(&sql).await?;
    Ok(tx.query_opt(&statement, &[&user_id, &repository]).await?.map(|row| row.get(0)))
}

/// Why nothing was ready for `user_id` / `holder`.
async fn not_ready(
    client: &impl GenericClient,
    user_id: Uuid,
    holder: &str,
    repository: Option<&str>,
) -> Outcome<NotReady> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE t.status = 'not_started' AND EXISTS ({OPEN_BLOCKER})), \
                count(*) FILTER (WHERE t.claim_holder IS NOT NULL AND t.claim_holder <> $2), \
                count(*) FILTER (WHERE t.status = 'not_started' AND t.assignee_id <> $1 AND NOT EXISTS ({OPEN_BLOCKER})) \
         FROM tasks t WHERE t.deleted_at IS NULL AND t.status IN ('not_started', 'in_progress') \
         AND ($3::text IS NULL OR t.repository_id = (SELECT id FROM repositories WHERE name = $3))"
    );
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_one(&statement, &[&user_id, &holder, &repository]).await?;
    Ok(NotReady { waiting_on_blockers: row.get(0), claimed_by_others: row.get(1), assigned_to_others: row.get(2) })
}

pub(super) async fn claim(inner: &Inner, request: ClaimRequest) -> Outcome<ClaimOutcome> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let user = lookup::resolve_user(&tx, "user", &request.user).await?;
    let repository = request.repository.as_ref().map(|r| r.as_str());
    let id = match request.task_id {
        Some(id) => id,
        None => match next_ready(&tx, user.id, repository).await? {
            Some(id) => id,
            None => {
                let why = not_ready(&tx, user.id, &request.session.holder, repository).await?;
                tx.commit().await?;
                return Ok(ClaimOutcome::NoneReady(why));
            }
        },
    };
    let Locked { task, repository_id, now } = lock_live(&tx, id, Lock::Update).await?;
    let named = request.task_id.is_some();
    let record =
        claimed(&task, &request.session, &user, &request.actor, request.lease, now, named).map_err(Error::from)?;
    write_task(&tx, &record.task, repository_id).await?;
    let seq = write_record(&tx, &record).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok(ClaimOutcome::Claimed(Box::new(record.task)))
}

pub(super) async fn release(inner: &Inner, release: Release) -> Outcome<Task> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let Locked { task, repository_id, now } = lock_live(&tx, release.task_id, Lock::Update).await?;
    let comment = release.comment.as_ref().map(|c| c.as_str());
    let record =
        released(&task, &release.session, &release.actor, release.status, comment, now).map_err(Error::from)?;
    write_task(&tx, &record.task, repository_id).await?;
    let seq = write_record(&tx, &record).await?;
    tx.commit().await?;
    inner.committed(seq);
    Ok(record.task)
}

/// Records the claims whose lease ran out, oldest first; rows another transaction holds are left
/// to it (or to the next sweep).
pub(super) async fn expire(inner: &Inner, limit: u32) -> Outcome<usize> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let sql = format!(
        "SELECT {TASK_COLUMNS}, t.repository_id, now() FROM {TASK_FROM} \
         WHERE t.claim_expires_at <= now() AND t.deleted_at IS NULL \
         ORDER BY t.claim_expires_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let found = tx.query(&statement, &[&i64::from(limit)]).await?;
    let mut seq = 0;
    for row in &found {
        let task = rows::task(row)?;
        let (repository_id, now) = (row.try_get(TASK_COLUMN_COUNT)?, row.try_get(TASK_COLUMN_COUNT + 1)?);
        if let Some(record) = lapsed(&task, now) {
            write_task(&tx, &record.task, repository_id).await?;
            seq = seq.max(write_record(&tx, &record).await?);
        }
    }
    tx.commit().await?;
    inner.committed(seq);
    Ok(found.len())
}

/// Live tasks among `ids`, with their status; a missing or deleted one is refused naming `field`.
async fn live_statuses(client: &impl GenericClient, field: &str, ids: &[Uuid]) -> Outcome<Vec<Status>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let statement =
        client.prepare_cached("SELECT id, status FROM tasks WHERE id = ANY($1) AND deleted_at IS NULL").await?;
    let rows = client.query(&statement, &[&ids]).await?;
    let found: HashSet<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
        return Err(Error::invalid(field, format!("no task {missing} exists (or it was deleted)")).into());
    }
    Ok(rows.iter().filter_map(|r| Status::from_stored(r.get(1))).collect())
}

/// A new task's parent and blockers must be live tasks. Returns how many blockers are open.
pub(super) async fn check_new_task_links(tx: &Transaction<'_>, new: &NewTask) -> Outcome<i64> {
    if let Some(parent) = new.parent_id {
        live_statuses(tx, "parent_id", &[parent]).await?;
    }
    let statuses = live_statuses(tx, "blocked_by", &new.blocked_by).await?;
    Ok(statuses.iter().filter(|s| s.is_open()).count() as i64)
}

pub(super) async fn insert_links(tx: &Transaction<'_>, task: Uuid, blockers: &[Uuid]) -> Outcome<()> {
    if blockers.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO task_links (task_id, blocked_by) SELECT $1, b FROM unnest($2::uuid[]) AS b \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    tx.execute(&statement, &[&task, &blockers]).await?;
    Ok(())
}

/// Checks what a patch asks of links and completion, against the locked task `old`: the new
/// parent is live and not a descendant; new blockers are live and close no cycle; completing
/// leaves no open subtask. Returns the patch with only the link changes that change something.
pub(super) async fn check_patch_links(tx: &Transaction<'_>, old: &Task, patch: &TaskPatch) -> Outcome<TaskPatch> {
    let mut patch = patch.clone();
    if let Some(Some(parent)) = patch.parent {
        live_statuses(tx, "parent_id", &[parent]).await?;
        let statement = tx
            .prepare_cached(
                "WITH RECURSIVE up(id, depth) AS ( \
                   SELECT parent_id, 1 FROM tasks WHERE id = $1 \
                   UNION ALL SELECT t.parent_id, up.depth + 1 FROM tasks t JOIN up ON t.id = up.id \
                   WHERE up.depth < 10000) \
                 SELECT id FROM up WHERE id IS NOT NULL ORDER BY depth",
            )
            .await?;
        let ancestors: Vec<Uuid> = tx.query(&statement, &[&parent]).await?.iter().map(|r| r.get(0)).collect();
        parent_cycle(old.id, parent, &ancestors).map_err(Error::from)?;
    }
    if !patch.add_blocked_by.is_empty() || !patch.remove_blocked_by.is_empty() {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LINK_LOCK]).await?;
        let statement = tx.prepare_cached("SELECT blocked_by FROM task_links WHERE task_id = $1").await?;
        let existing: HashSet<Uuid> = tx.query(&statement, &[&old.id]).await?.iter().map(|r| r.get(0)).collect();
        patch.add_blocked_by.retain(|b| !existing.contains(b));
        patch.add_blocked_by.dedup();
        patch.remove_blocked_by.retain(|b| existing.contains(b));
        patch.remove_blocked_by.dedup();
        if patch.add_blocked_by.contains(&old.id) {
            dependency_cycle(old.id, &[old.id], &[]).map_err(Error::from)?;
        }
        live_statuses(tx, "add_blocked_by", &patch.add_blocked_by).await?;
        if !patch.add_blocked_by.is_empty() {
            let statement = tx
                .prepare_cached(
                    "WITH RECURSIVE reach(id) AS ( \
                       SELECT unnest($1::uuid[]) \
                       UNION SELECT l.blocked_by FROM task_links l JOIN reach ON l.task_id = reach.id) \
                     SELECT l.task_id, l.blocked_by FROM task_links l JOIN reach ON l.task_id = reach.id",
                )
                .await?;
            let edges: Vec<(Uuid, Uuid)> =
                tx.query(&statement, &[&patch.add_blocked_by]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
            dependency_cycle(old.id, &patch.add_blocked_by, &edges).map_err(Error::from)?;
        }
    }
    if patch.status == Some(Status::Completed) && old.status != Status::Completed {
        let open = links(tx, "t.parent_id = $1 AND t.status NOT IN ('completed', 'cancelled')", old.id).await?;
        unfinished_subtasks(old, &open).map_err(Error::from)?;
    }
    Ok(patch)
}

/// Writes the link changes of a checked patch.
pub(super) async fn write_patch_links(tx: &Transaction<'_>, task: Uuid, patch: &TaskPatch) -> Outcome<()> {
    insert_links(tx, task, &patch.add_blocked_by).await?;
    if !patch.remove_blocked_by.is_empty() {
        let statement = tx.prepare_cached("DELETE FROM task_links WHERE task_id = $1 AND blocked_by = ANY($2)").await?;
        tx.execute(&statement, &[&task, &patch.remove_blocked_by]).await?;
    }
    Ok(())
}

pub(super) async fn open_blockers(client: &impl GenericClient, task: Uuid) -> Outcome<i64> {
    let statement = client
        .prepare_cached(
            "SELECT count(*) FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
             WHERE l.task_id = $1 AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL",
        )
        .await?;
    Ok(client.query_one(&statement, &[&task]).await?.get(0))
}

/// After `closed` was completed, cancelled or deleted: an event for each live task it blocked that waits on
/// nothing now (they became ready). Returns the last event's seq (0 when none).
pub(super) async fn announce_unblocked(tx: &Transaction<'_>, closed: Uuid, actor: &str) -> Outcome<i64> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.deleted_at IS NULL \
         AND t.id IN (SELECT task_id FROM task_links WHERE blocked_by = $1) AND NOT EXISTS ({OPEN_BLOCKER})"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let mut seq = 0;
    for row in tx.query(&statement, &[&closed]).await? {
        seq = seq.max(write_record(tx, &unblocked(&rows::task(&row)?, actor)).await?);
    }
    Ok(seq)
}

/// Live tasks matching `condition` (over `tasks t`, with `$1` the given id), oldest first.
async fn links(client: &impl GenericClient, condition: &str, id: Uuid) -> Outcome<Vec<Link>> {
    let sql = format!(
        "SELECT t.id, t.title, t.status FROM tasks t WHERE t.deleted_at IS NULL AND {condition} ORDER BY t.created_at, t.id"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &[&id]).await?;
    rows.iter()
        .map(|r| {
            let raw: &str = r.get(2);
            let status = Status::from_stored(raw)
                .ok_or_else(|| Error::Internal(format!("the database holds an unknown status {raw:?}")))?;
            Ok(Link { id: r.get(0), title: r.get(1), status })
        })
        .collect()
}

pub(super) async fn task_links(client: deadpool_postgres::Object, id: Uuid) -> Outcome<TaskLinks> {
    let (blocked_by, blocking, subtasks, parent) = futures::future::try_join4(
        links(&client, "t.id IN (SELECT blocked_by FROM task_links WHERE task_id = $1)", id),
        links(&client, "t.id IN (SELECT task_id FROM task_links WHERE blocked_by = $1)", id),
        links(&client, "t.parent_id = $1", id),
        links(&client, "t.id = (SELECT parent_id FROM tasks WHERE id = $1)", id),
    )
    .await?;
    Ok(TaskLinks { blocked_by, blocking, subtasks, parent: parent.into_iter().next() })
}
