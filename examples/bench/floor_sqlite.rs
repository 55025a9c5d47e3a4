//! The SQLite floor: the statements each operation of `src/store/sqlite/ops.rs` runs, on one rusqlite
//! connection with the store's settings (WAL, synchronous NORMAL, foreign keys), writes in one
//! `BEGIN IMMEDIATE` transaction. Keep it in step with the store.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use task_mcp::domain::{Complexity, Priority, Status, Task};
use uuid::Uuid;

const TASK_COLUMNS: &str = "t.id, t.title, t.description, t.status, t.priority, t.complexity, \
     t.assignee_id, u.email, r.name, t.created_by, t.updated_by, t.created_at, t.updated_at, t.version, t.deleted_at, \
     t.parent_id, t.claim_holder, t.claim_agent, t.claim_expires_at, t.claim_lapsed_holder, \
     (SELECT count(*) FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
     WHERE l.task_id = t.id AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL)";
/// The store's condition "task `t` waits on an open blocker".
const OPEN_BLOCKER: &str = "SELECT 1 FROM task_links l JOIN tasks b ON b.id = l.blocked_by \
     WHERE l.task_id = t.id AND b.status NOT IN ('completed', 'cancelled') AND b.deleted_at IS NULL";
/// The store's pick of the next ready task (`store::*::work::next_ready`).
const NEXT_READY_ORDER: &str = "ORDER BY CASE t.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 \
     ELSE 3 END, t.created_at, t.id LIMIT 1";
const TASK_FROM: &str =
    "FROM tasks t LEFT JOIN users u ON u.id = t.assignee_id LEFT JOIN repositories r ON r.id = t.repository_id";

pub struct SqliteFloor {
    conn: Connection,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn time(micros: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(micros).context("time")
}

impl SqliteFloor {
    pub fn open(path: &Path) -> Result<SqliteFloor> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(128);
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The repository the floor files tasks under.
        conn.execute(
            "INSERT INTO repositories (id, name, url, created_at) VALUES (?1, ?2, NULL, ?3) ON CONFLICT (name) DO NOTHING",
            params![Uuid::now_v7().hyphenated().to_string(), crate::tools::REPOSITORY, now_micros()],
        )?;
        Ok(SqliteFloor { conn })
    }

    fn live_task(conn: &Connection, id: &str) -> Result<Task> {
        let sql = format!("SELECT {TASK_COLUMNS} {TASK_FROM} WHERE t.id = ?1 AND t.deleted_at IS NULL");
        conn.prepare_cached(&sql)?.query_row([id], task).optional()?.context("no such task")
    }

    fn history(
        conn: &Connection,
        task_id: &str,
        field: &str,
        old: Option<&str>,
        new: Option<&str>,
        actor: &str,
        at: i64,
    ) -> Result<()> {
        conn.prepare_cached(
            "INSERT INTO task_history (id, task_id, field_changed, old_value, new_value, changed_by, comment, changed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![Uuid::now_v7().hyphenated().to_string(), task_id, field, old, new, actor, None::<&str>, at])?;
        Ok(())
    }

    fn event(conn: &Connection, kind: &str, task: &Task, actor: &str, at: i64) -> Result<i64> {
        // The store's own payload, as the store writes it (not the public JSON).
        let json = task_mcp::store::payload::Payload::of(task).to_text();
        conn.prepare_cached(
            "INSERT INTO events (event_type, task_id, actor, task, assignee_id, previous_assignee_id, repository, \
                                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            kind,
            task.id.hyphenated().to_string(),
            actor,
            json,
            task.assignee_id.map(|u| u.hyphenated().to_string()),
            None::<String>,
            task.repository,
            at
        ])?;
        Ok(conn.last_insert_rowid())
    }

    /// `claim_task` without a task id: the sweep of leases that ran out (its own transaction), then in
    /// one write transaction the user, the pick, the task read, the claim written, three history rows
    /// and the event. `None` when nothing is ready.
    pub fn claim_next(
        &mut self,
        email: &str,
        holder: &str,
        actor: &str,
        repository: Option<&str>,
    ) -> Result<Option<Uuid>> {
        // The sweep before a claim: a read, as the store's (the write lock only when a lease ran out).
        let expired: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM tasks WHERE claim_expires_at <= ?1 AND claim_expires_at IS NOT NULL \
                 AND deleted_at IS NULL)",
            )?
            .query_row([now_micros()], |r| r.get(0))?;
        debug_assert!(!expired);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let user_id: String = tx
            .prepare_cached("SELECT id, email, name, created_at FROM users WHERE email = ?1")?
            .query_row([email], |r| r.get(0))?;
        let pick = format!(
            "SELECT t.id FROM tasks t INDEXED BY tasks_ready_order WHERE t.deleted_at IS NULL AND t.status = 'not_started' \
             AND (t.assignee_id IS NULL OR t.assignee_id = ?1) \
             AND (?2 IS NULL OR t.repository_id = (SELECT id FROM repositories WHERE name = ?2)) \
             AND NOT EXISTS ({OPEN_BLOCKER}) {NEXT_READY_ORDER}"
        );
        let next: Option<String> =
            tx.prepare_cached(&pick)?.query_row(params![user_id, repository], |r| r.get(0)).optional()?;
        let Some(id) = next else {
            tx.commit()?;
            return Ok(None);
        };
        let old = Self::live_task(&tx, &id)?;
        let at = now_micros();
        let mut new = old.clone();
        new.status = Status::InProgress;
        new.assignee_id = Some(Uuid::parse_str(&user_id)?);
        new.assignee_email = Some(email.to_owned());
        new.updated_at = time(at)?.max(old.updated_at);
        new.version = old.version + 1;
        new.updated_by = actor.to_owned();
        let expires = at + 1_800_000_000;
        new.claim =
            Some(task_mcp::domain::Claim { holder: holder.to_owned(), agent: None, expires_at: time(expires)? });
        tx.prepare_cached(
            "UPDATE tasks SET status = ?2, assignee_id = ?3, updated_by = ?4, updated_at = ?5, version = ?6, \
                              parent_id = ?7, claim_holder = ?8, claim_agent = ?9, claim_expires_at = ?10, \
                              claim_lapsed_holder = ?11 WHERE id = ?1",
        )?
        .execute(params![
            id,
            "in_progress",
            user_id,
            actor,
            new.updated_at.timestamp_micros(),
            new.version,
            None::<String>,
            holder,
            None::<String>,
            expires,
            None::<String>
        ])?;
        let claim = new.claim.as_ref().map(|c| c.describe());
        Self::history(&tx, &id, "status", Some("not_started"), Some("in_progress"), actor, at)?;
        Self::history(&tx, &id, "assignee", None, Some(email), actor, at)?;
        Self::history(&tx, &id, "claim", None, claim.as_deref(), actor, at)?;
        Self::event(&tx, "task_assigned", &new, actor, at)?;
        tx.commit()?;
        Ok(Some(new.id))
    }

    /// `create_task` with a repository (which exists by then).
    pub fn create(&mut self, title: &str, repository: &str, actor: &str) -> Result<Uuid> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let repository_id: String =
            tx.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?.query_row([repository], |r| r.get(0))?;
        let at = now_micros();
        let id = Uuid::now_v7();
        let task = Task {
            id,
            key: String::new(),
            title: title.to_owned(),
            description: None,
            status: Status::NotStarted,
            priority: Priority::High,
            complexity: Complexity::Medium,
            assignee_id: None,
            assignee_email: None,
            repository: Some(repository.to_owned()),
            created_by: actor.to_owned(),
            updated_by: actor.to_owned(),
            created_at: time(at)?,
            updated_at: time(at)?,
            version: 1,
            deleted_at: None,
            parent_id: None,
            claim: None,
            lapsed_holder: None,
            open_blockers: 0,
        };
        let id_text = id.hyphenated().to_string();
        tx.prepare_cached(
            "INSERT INTO tasks (id, title, description, status, priority, complexity, assignee_id, repository_id, \
                                created_by, updated_by, created_at, updated_at, version, deleted_at, idempotency_key, \
                                search_text) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, NULL, ?13, ?14)",
        )?
        .execute(params![
            id_text,
            title,
            None::<String>,
            "not_started",
            "high",
            "medium",
            None::<String>,
            repository_id,
            actor,
            actor,
            at,
            at,
            None::<String>,
            title.to_lowercase()
        ])?;
        Self::history(&tx, &id_text, "created", None, Some(title), actor, at)?;
        Self::event(&tx, "task_created", &task, actor, at)?;
        tx.commit()?;
        Ok(id)
    }

    /// `update_task_status`.
    pub fn update_status(&mut self, id: Uuid, status: &str, actor: &str) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id_text = id.hyphenated().to_string();
        let old = Self::live_task(&tx, &id_text)?;
        let mut new = old.clone();
        new.status = Status::from_stored(status).context("status")?;
        let at = now_micros();
        new.version = old.version + 1;
        new.updated_by = actor.to_owned();
        new.updated_at = time(at)?;
        tx.prepare_cached(
            "UPDATE tasks SET title = ?2, description = ?3, status = ?4, priority = ?5, complexity = ?6, \
                              assignee_id = ?7, \
                              repository_id = CASE WHEN ?8 THEN ?9 ELSE repository_id END, \
                              updated_by = ?10, updated_at = ?11, version = ?12, search_text = ?13 \
             WHERE id = ?1",
        )?
        .execute(params![
            id_text,
            new.title,
            new.description,
            new.status.as_str(),
            new.priority.as_str(),
            new.complexity.as_str(),
            new.assignee_id.map(|u| u.hyphenated().to_string()),
            false,
            None::<String>,
            new.updated_by,
            at,
            new.version,
            new.title.to_lowercase()
        ])?;
        Self::history(&tx, &id_text, "status", Some(old.status.as_str()), Some(new.status.as_str()), actor, at)?;
        Self::event(&tx, "task_updated", &new, actor, at)?;
        tx.commit()?;
        Ok(())
    }

    /// `add_task_comment`.
    pub fn comment(&mut self, id: Uuid, text: &str, actor: &str) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id_text = id.hyphenated().to_string();
        let task = Self::live_task(&tx, &id_text)?;
        let at = now_micros();
        tx.prepare_cached(
            "INSERT INTO task_comments (id, task_id, comment, author, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![Uuid::now_v7().hyphenated().to_string(), id_text, text, actor, at])?;
        Self::history(&tx, &id_text, "comment", None, Some(text), actor, at)?;
        Self::event(&tx, "task_commented", &task, actor, at)?;
        tx.commit()?;
        Ok(())
    }

    /// `get_tasks`: one page plus one row.
    pub fn list(&self, limit: i64) -> Result<usize> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} {TASK_FROM} WHERE t.deleted_at IS NULL ORDER BY t.updated_at DESC, t.id DESC LIMIT {}",
            limit + 1
        );
        let tasks = self.conn.prepare_cached(&sql)?.query_map([], task)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(tasks.len())
    }

    /// `get_task`: the task, its comments, its history.
    pub fn get(&self, id: Uuid) -> Result<usize> {
        let id_text = id.hyphenated().to_string();
        Self::live_task(&self.conn, &id_text)?;
        let comments = self
            .conn
            .prepare_cached(
                "SELECT id, task_id, comment, author, created_at FROM task_comments WHERE task_id = ?1 ORDER BY rowid",
            )?
            .query_map([&id_text], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, i64>(4)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let history = self
            .conn
            .prepare_cached(
                "SELECT id, task_id, field_changed, old_value, new_value, changed_by, comment, changed_at \
                 FROM task_history WHERE task_id = ?1 ORDER BY rowid",
            )?
            .query_map([&id_text], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, i64>(7)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(comments.len() + history.len())
    }
}

fn task(row: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
    let bad = |i: usize| rusqlite::Error::InvalidColumnType(i, "value".into(), rusqlite::types::Type::Text);
    let uuid = |i: usize| -> rusqlite::Result<Uuid> { Uuid::parse_str(&row.get::<_, String>(i)?).map_err(|_| bad(i)) };
    let opt_uuid = |i: usize| -> rusqlite::Result<Option<Uuid>> {
        row.get::<_, Option<String>>(i)?.map(|s| Uuid::parse_str(&s).map_err(|_| bad(i))).transpose()
    };
    let at = |i: usize| -> rusqlite::Result<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_micros(row.get(i)?).ok_or_else(|| bad(i))
    };
    Ok(Task {
        id: uuid(0)?,
        key: String::new(),
        title: row.get(1)?,
        description: row.get(2)?,
        status: Status::from_stored(&row.get::<_, String>(3)?).ok_or_else(|| bad(3))?,
        priority: Priority::from_stored(&row.get::<_, String>(4)?).ok_or_else(|| bad(4))?,
        complexity: Complexity::from_stored(&row.get::<_, String>(5)?).ok_or_else(|| bad(5))?,
        assignee_id: opt_uuid(6)?,
        assignee_email: row.get(7)?,
        repository: row.get(8)?,
        created_by: row.get(9)?,
        updated_by: row.get(10)?,
        created_at: at(11)?,
        updated_at: at(12)?,
        version: row.get(13)?,
        deleted_at: row.get::<_, Option<i64>>(14)?.and_then(chrono::DateTime::from_timestamp_micros),
        parent_id: None,
        claim: None,
        lapsed_holder: None,
        open_blockers: 0,
    })
}
