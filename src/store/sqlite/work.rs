//! Working together on SQLite: claims (of one task, or the next ready one: one writer at a time
//! makes the pick and the write atomic), releases, the sweep of leases that ran out, links between
//! tasks (blockers, parents) and the events of tasks their last blocker freed. The rules are the
//! domain's (`domain::work`); these run inside the caller's write transaction.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::conn::Outcome;
use super::ops::{live_task, resolve_user, write_record};
use super::rows::{self, micros, uuid_text};
use crate::domain::{
    Link, Status, Task, TaskLinks, TaskPatch, claimed, dependency_cycle, lapsed, parent_cycle, released, unblocked,
    unfinished_subtasks,
};
use crate::error::Error;
use crate::store::{ClaimOutcome, ClaimRequest, NewTask, NotReady, Release};

/// The condition "task `t` waits on an open blocker", for `NOT EXISTS (…)`.
pub(super) const OPEN_BLOCKER: &str = "SELECT 1 FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
     WHERE l.task_id = t.id AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL";

/// Writes the columns a claim, a release or a lapse change (and the parent of an update).
pub(super) fn write_work_columns(conn: &Connection, task: &Task) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE tasks SET status = ?2, assignee_id = ?3, updated_by = ?4, updated_at = ?5, version = ?6, \
                          parent_id = ?7, claim_holder = ?8, claim_agent = ?9, claim_expires_at = ?10, \
                          claim_lapsed_holder = ?11 \
         WHERE id = ?1",
    )?
    .execute(params![
        uuid_text(task.id),
        task.status.as_str(),
        task.assignee_id.map(uuid_text),
        task.updated_by,
        micros(task.updated_at),
        task.version,
        task.parent_id.map(uuid_text),
        task.claim.as_ref().map(|c| c.holder.as_str()),
        task.claim.as_ref().and_then(|c| c.agent.as_deref()),
        task.claim.as_ref().map(|c| micros(c.expires_at)),
        task.lapsed_holder,
    ])?;
    Ok(())
}

/// The next ready task for `user_id`. The ready-order index is named: without statistics (nobody runs
/// ANALYZE on the embedded file) SQLite would pick the status index and sort every open task each time.
fn next_ready(conn: &Connection, user_id: Uuid, repository: Option<&str>) -> rusqlite::Result<Option<Uuid>> {
    let sql = format!(
        "SELECT t.id FROM tasks t INDEXED BY tasks_ready_order WHERE t.deleted_at IS NULL AND t.status = 'not_started' \
         AND (t.assignee_id IS NULL OR t.assignee_id = ?1) \
         AND (?2 IS NULL OR t.repository_id = (SELECT id FROM repositories WHERE name = ?2)) \
         AND NOT EXISTS ({OPEN_BLOCKER}) \
         ORDER BY CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, \
                  t.created_at, t.id \
         LIMIT 1"
    );
    conn.prepare_cached(&sql)?
        .query_row(params![uuid_text(user_id), repository], |row| rows::get_uuid(row, 0))
        .optional()
}

fn not_ready(conn: &Connection, user_id: Uuid, holder: &str, repository: Option<&str>) -> rusqlite::Result<NotReady> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE t.status = 'not_started' AND EXISTS ({OPEN_BLOCKER})), \
                count(*) FILTER (WHERE t.claim_holder IS NOT NULL AND t.claim_holder <> ?2), \
                count(*) FILTER (WHERE t.status = 'not_started' AND t.assignee_id <> ?1 AND NOT EXISTS ({OPEN_BLOCKER})) \
         FROM tasks t WHERE t.deleted_at IS NULL AND t.status IN ('not_started', 'in_progress') \
         AND (?3 IS NULL OR t.repository_id = (SELECT id FROM repositories WHERE name = ?3))"
    );
    conn.prepare_cached(&sql)?.query_row(params![uuid_text(user_id), holder, repository], |row| {
        Ok(NotReady {
            waiting_on_blockers: row.get(0)?,
            claimed_by_others: row.get(1)?,
            assigned_to_others: row.get(2)?,
        })
    })
}

pub(super) fn claim(conn: &Connection, request: &ClaimRequest) -> Outcome<(ClaimOutcome, Option<i64>)> {
    let user = resolve_user(conn, "user", &request.user)?;
    let repository = request.repository.as_ref().map(|r| r.as_str());
    let id = match request.task_id {
        Some(id) => id,
        None => match next_ready(conn, user.id, repository)? {
            Some(id) => id,
            None => {
                let why = not_ready(conn, user.id, &request.session.holder, repository)?;
                return Ok((ClaimOutcome::NoneReady(why), None));
            }
        },
    };
    let task = live_task(conn, id)?.ok_or_else(|| Error::task_not_found(id))?;
    let now = rows::now();
    let named = request.task_id.is_some();
    let record =
        claimed(&task, &request.session, &user, &request.actor, request.lease, now, named).map_err(Error::from)?;
    write_work_columns(conn, &record.task)?;
    let seq = write_record(conn, &record, now)?;
    Ok((ClaimOutcome::Claimed(Box::new(record.task)), Some(seq)))
}

pub(super) fn release(conn: &Connection, release: &Release) -> Outcome<(Task, Option<i64>)> {
    let task = live_task(conn, release.task_id)?.ok_or_else(|| Error::task_not_found(release.task_id))?;
    let now = rows::now();
    let comment = release.comment.as_ref().map(|c| c.as_str());
    let record =
        released(&task, &release.session, &release.actor, release.status, comment, now).map_err(Error::from)?;
    write_work_columns(conn, &record.task)?;
    let seq = write_record(conn, &record, now)?;
    Ok((record.task, Some(seq)))
}

/// Whether any live task's lease has run out: read without the write lock, so the sweep before each
/// claim takes that lock (which every process's writes queue for) only when there is a lapse to record.
pub(super) fn any_expired(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE claim_expires_at <= ?1 AND claim_expires_at IS NOT NULL \
         AND deleted_at IS NULL)",
    )?
    .query_row([micros(rows::now())], |row| row.get(0))
}

pub(super) fn expire(conn: &Connection, limit: u32) -> Outcome<(usize, Option<i64>)> {
    let now = rows::now();
    let sql = format!(
        "SELECT {} {} WHERE t.claim_expires_at <= ?1 AND t.deleted_at IS NULL ORDER BY t.claim_expires_at LIMIT ?2",
        rows::TASK_COLUMNS,
        rows::TASK_FROM
    );
    let found: Vec<Task> =
        conn.prepare_cached(&sql)?.query_map(params![micros(now), limit], rows::task)?.collect::<Result<_, _>>()?;
    let mut seq = None;
    for task in &found {
        if let Some(record) = lapsed(task, now) {
            write_work_columns(conn, &record.task)?;
            seq = Some(write_record(conn, &record, now)?);
        }
    }
    Ok((found.len(), seq))
}

/// The statuses of `ids`, all live tasks; a missing or deleted one is refused naming `field`.
fn live_statuses(conn: &Connection, field: &str, ids: &[Uuid]) -> Outcome<Vec<Status>> {
    let mut statuses = Vec::with_capacity(ids.len());
    let mut statement = conn.prepare_cached("SELECT status FROM tasks WHERE id = ?1 AND deleted_at IS NULL")?;
    for id in ids {
        let status: Option<String> = statement.query_row([uuid_text(*id)], |row| row.get(0)).optional()?;
        let Some(status) = status else {
            return Err(Error::invalid(field, format!("no task {id} exists (or it was deleted)")).into());
        };
        statuses.extend(Status::from_stored(&status));
    }
    Ok(statuses)
}

/// A new task's parent and blockers must be live tasks. Returns how many blockers are open.
pub(super) fn check_new_task_links(conn: &Connection, new: &NewTask) -> Outcome<i64> {
    if let Some(parent) = new.parent_id {
        live_statuses(conn, "parent_id", &[parent])?;
    }
    let statuses = live_statuses(conn, "blocked_by", &new.blocked_by)?;
    Ok(statuses.iter().filter(|s| s.is_open()).count() as i64)
}

pub(super) fn insert_links(conn: &Connection, task: Uuid, blockers: &[Uuid]) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO task_links (task_id, blocked_by, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
    )?;
    let now = micros(rows::now());
    for blocker in blockers {
        statement.execute(params![uuid_text(task), uuid_text(*blocker), now])?;
    }
    Ok(())
}

fn ids(conn: &Connection, sql: &str, id: Uuid) -> rusqlite::Result<Vec<Uuid>> {
    conn.prepare_cached(sql)?.query_map([uuid_text(id)], |row| rows::get_uuid(row, 0))?.collect()
}

/// See the PostgreSQL store's `check_patch_links`: the same checks, under SQLite's one writer.
pub(super) fn check_patch_links(conn: &Connection, old: &Task, patch: &TaskPatch) -> Outcome<TaskPatch> {
    let mut patch = patch.clone();
    if let Some(Some(parent)) = patch.parent {
        live_statuses(conn, "parent_id", &[parent])?;
        let ancestors = ids(
            conn,
            "WITH RECURSIVE up(id, depth) AS ( \
               SELECT parent_id, 1 FROM tasks WHERE id = ?1 \
               UNION ALL SELECT t.parent_id, up.depth + 1 FROM tasks t JOIN up ON t.id = up.id \
               WHERE up.depth < 10000) \
             SELECT id FROM up WHERE id IS NOT NULL ORDER BY depth",
            parent,
        )?;
        parent_cycle(old.id, parent, &ancestors).map_err(Error::from)?;
    }
    if !patch.add_blocked_by.is_empty() || !patch.remove_blocked_by.is_empty() {
        let existing: HashSet<Uuid> =
            ids(conn, "SELECT blocked_by FROM task_links WHERE task_id = ?1", old.id)?.into_iter().collect();
        patch.add_blocked_by.retain(|b| !existing.contains(b));
        patch.add_blocked_by.dedup();
        patch.remove_blocked_by.retain(|b| existing.contains(b));
        patch.remove_blocked_by.dedup();
        if patch.add_blocked_by.contains(&old.id) {
            dependency_cycle(old.id, &[old.id], &[]).map_err(Error::from)?;
        }
        live_statuses(conn, "add_blocked_by", &patch.add_blocked_by)?;
        if !patch.add_blocked_by.is_empty() {
            let mut edges = Vec::new();
            let mut statement = conn.prepare_cached(
                "WITH RECURSIVE reach(id) AS ( \
                   SELECT ?1 UNION SELECT l.blocked_by FROM task_links l JOIN reach ON l.task_id = reach.id) \
                 SELECT l.task_id, l.blocked_by FROM task_links l JOIN reach ON l.task_id = reach.id",
            )?;
            for start in &patch.add_blocked_by {
                let found = statement
                    .query_map([uuid_text(*start)], |row| Ok((rows::get_uuid(row, 0)?, rows::get_uuid(row, 1)?)))?;
                for edge in found {
                    edges.push(edge?);
                }
            }
            dependency_cycle(old.id, &patch.add_blocked_by, &edges).map_err(Error::from)?;
        }
    }
    if patch.status == Some(Status::Completed) && old.status != Status::Completed {
        let open = links(conn, "t.parent_id = ?1 AND t.status NOT IN ('completed', 'cancelled')", old.id)?;
        unfinished_subtasks(old, &open).map_err(Error::from)?;
    }
    Ok(patch)
}

pub(super) fn write_patch_links(conn: &Connection, task: Uuid, patch: &TaskPatch) -> rusqlite::Result<()> {
    insert_links(conn, task, &patch.add_blocked_by)?;
    let mut statement = conn.prepare_cached("DELETE FROM task_links WHERE task_id = ?1 AND blocked_by = ?2")?;
    for blocker in &patch.remove_blocked_by {
        statement.execute(params![uuid_text(task), uuid_text(*blocker)])?;
    }
    Ok(())
}

pub(super) fn open_blockers(conn: &Connection, task: Uuid) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
         WHERE l.task_id = ?1 AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL",
    )?
    .query_row([uuid_text(task)], |row| row.get(0))
}

/// After `closed` was completed, cancelled or deleted: an event for each live task it blocked that waits on
/// nothing now. Returns the last event's seq.
pub(super) fn announce_unblocked(conn: &Connection, closed: Uuid, actor: &str) -> rusqlite::Result<Option<i64>> {
    let sql = format!(
        "SELECT {} {} WHERE t.deleted_at IS NULL \
         AND t.id IN (SELECT task_id FROM task_links WHERE blocked_by = ?1) AND NOT EXISTS ({OPEN_BLOCKER})",
        rows::TASK_COLUMNS,
        rows::TASK_FROM
    );
    let freed: Vec<Task> =
        conn.prepare_cached(&sql)?.query_map([uuid_text(closed)], rows::task)?.collect::<Result<_, _>>()?;
    let mut seq = None;
    for task in &freed {
        seq = Some(write_record(conn, &unblocked(task, actor), rows::now())?);
    }
    Ok(seq)
}

fn links(conn: &Connection, condition: &str, id: Uuid) -> rusqlite::Result<Vec<Link>> {
    let sql = format!(
        "SELECT t.id, t.title, t.status FROM tasks t WHERE t.deleted_at IS NULL AND {condition} \
         ORDER BY t.created_at, t.id"
    );
    conn.prepare_cached(&sql)?
        .query_map([uuid_text(id)], |row| {
            let raw: String = row.get(2)?;
            Ok(Link {
                id: rows::get_uuid(row, 0)?,
                title: row.get(1)?,
                status: Status::from_stored(&raw).unwrap_or_default(),
            })
        })?
        .collect()
}

pub(super) fn task_links(conn: &Connection, id: Uuid) -> rusqlite::Result<TaskLinks> {
    Ok(TaskLinks {
        blocked_by: links(conn, "t.id IN (SELECT blocked_by FROM task_links WHERE task_id = ?1)", id)?,
        blocking: links(conn, "t.id IN (SELECT task_id FROM task_links WHERE blocked_by = ?1)", id)?,
        subtasks: links(conn, "t.parent_id = ?1", id)?,
        parent: links(conn, "t.id = (SELECT parent_id FROM tasks WHERE id = ?1)", id)?.into_iter().next(),
    })
}
