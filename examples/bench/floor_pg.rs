//! The PostgreSQL floor: the statements each operation of `src/store/postgres/` runs, sent directly
//! with tokio-postgres on one connection (writes in one transaction, pipelined where the store
//! pipelines), with no process, protocol or service in between. Keep it in step with the store.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use task_mcp::domain::{Complexity, Priority, Status, Task};
use tokio_postgres::{Client, NoTls, Row, Statement};
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
    "tasks t LEFT JOIN users u ON u.id = t.assignee_id LEFT JOIN repositories r ON r.id = t.repository_id";
const EVENT_ORDER_LOCK: i64 = 0x746d_6370_2d65_7674;

pub struct PgFloor {
    client: Client,
    repository_id: Statement,
    insert_task: Statement,
    history: Statement,
    event: Statement,
    lock_update: Statement,
    lock_share: Statement,
    update: Statement,
    comment: Statement,
    list: Statement,
    get: Statement,
    comments: Statement,
    history_of: Statement,
    sweep: Statement,
    user: Statement,
    next_ready: Statement,
    claim: Statement,
}

pub async fn connect_client(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.context("connect to PostgreSQL")?;
    tokio::spawn(connection);
    Ok(client)
}

impl PgFloor {
    /// Connects and prepares every statement; makes sure the repository the floor files tasks under exists.
    pub async fn connect(url: &str) -> Result<PgFloor> {
        let client = connect_client(url).await?;
        client
            .execute(
                "INSERT INTO repositories (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&Uuid::now_v7(), &crate::tools::REPOSITORY],
            )
            .await?;
        let p = |sql: String| {
            let client = &client;
            async move { client.prepare(&sql).await.with_context(|| sql.clone()) }
        };
        Ok(PgFloor {
            repository_id: p("SELECT id FROM repositories WHERE name = $1".into()).await?,
            insert_task: p("INSERT INTO tasks (id, title, description, status, priority, complexity, assignee_id, \
                 repository_id, created_by, updated_by, idempotency_key, idempotency_owner, idempotency_fingerprint) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12) \
                 ON CONFLICT (idempotency_owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
                 RETURNING created_at, updated_at"
                .into())
            .await?,
            history: p("INSERT INTO task_history (id, task_id, field_changed, old_value, new_value, changed_by, comment) \
                 SELECT h.id, $1, h.field, h.old, h.new, $6, $7 \
                 FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS h(id, field, old, new, ord) \
                 ORDER BY h.ord"
                .into())
            .await?,
            event: p("WITH ordered AS (SELECT pg_advisory_xact_lock($1)), appended AS (\
                 INSERT INTO events (event_type, task_id, actor, task, assignee_id, previous_assignee_id, repository) \
                 SELECT $2::text, $3::uuid, $4::text, $5::jsonb, $6::uuid, $7::uuid, $8::text FROM ordered RETURNING seq) \
                 SELECT seq, pg_notify('task_mcp_events', seq::text) FROM appended"
                .into())
            .await?,
            lock_update: p(format!(
                "SELECT {TASK_COLUMNS}, t.repository_id FROM {TASK_FROM} WHERE t.id = $1 FOR UPDATE OF t"
            ))
            .await?,
            lock_share: p(format!(
                "SELECT {TASK_COLUMNS}, t.repository_id FROM {TASK_FROM} WHERE t.id = $1 FOR SHARE OF t"
            ))
            .await?,
            update: p("UPDATE tasks SET title = $2, description = $3, status = $4, priority = $5, complexity = $6, \
                 assignee_id = $7, repository_id = $8, updated_by = $9, version = version + 1, \
                 updated_at = GREATEST(now(), updated_at) \
                 WHERE id = $1 RETURNING updated_at, version"
                .into())
            .await?,
            comment: p("INSERT INTO task_comments (id, task_id, comment, author) VALUES ($1, $2, $3, $4) \
                 RETURNING id, task_id, comment, author, created_at"
                .into())
            .await?,
            list: p(format!(
                "SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.deleted_at IS NULL \
                 ORDER BY t.updated_at DESC, t.id DESC LIMIT $1"
            ))
            .await?,
            get: p(format!("SELECT {TASK_COLUMNS} FROM {TASK_FROM} WHERE t.id = $1 AND t.deleted_at IS NULL")).await?,
            comments: p("SELECT id, task_id, comment, author, created_at FROM task_comments WHERE task_id = $1 ORDER BY n"
                .into())
            .await?,
            history_of: p("SELECT id, task_id, field_changed, old_value, new_value, changed_by, comment, changed_at \
                 FROM task_history WHERE task_id = $1 ORDER BY n"
                .into())
            .await?,
            sweep: p(format!(
                "SELECT {TASK_COLUMNS}, t.repository_id, now() FROM {TASK_FROM} \
                 WHERE t.claim_expires_at <= now() AND t.deleted_at IS NULL \
                 ORDER BY t.claim_expires_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED"
            ))
            .await?,
            user: p("SELECT id, email, name, created_at FROM users WHERE email = $1".into()).await?,
            next_ready: p(format!(
                "SELECT t.id FROM tasks t WHERE t.deleted_at IS NULL AND t.status = 'not_started' \
                 AND (t.assignee_id IS NULL OR t.assignee_id = $1) \
                 AND ($2::text IS NULL OR t.repository_id = (SELECT id FROM repositories WHERE name = $2)) \
                 AND NOT EXISTS ({OPEN_BLOCKER}) {NEXT_READY_ORDER} FOR UPDATE OF t SKIP LOCKED"
            ))
            .await?,
            claim: p("UPDATE tasks SET status = 'in_progress', assignee_id = $2, updated_by = $3, version = version + 1, \
                 updated_at = GREATEST(now(), updated_at), claim_holder = $4, claim_agent = NULL, \
                 claim_expires_at = now() + interval '1800 seconds', claim_lapsed_holder = NULL \
                 WHERE id = $1 RETURNING updated_at, version, claim_expires_at"
                .into())
            .await?,
            client,
        })
    }

    /// `claim_task` without a task id: the sweep of leases that ran out (its own transaction), then
    /// the user, the pick under `SKIP LOCKED`, the row locked, the claim written, three history rows
    /// and the event. `None` when nothing is ready.
    pub async fn claim_next(
        &mut self,
        email: &str,
        holder: &str,
        actor: &str,
        repository: Option<&str>,
    ) -> Result<Option<Uuid>> {
        let tx = self.client.transaction().await?;
        tx.query(&self.sweep, &[&100i64]).await?;
        tx.commit().await?;
        let tx = self.client.transaction().await?;
        let user_id: Uuid = tx.query_one(&self.user, &[&email]).await?.try_get(0)?;
        let Some(next) = tx.query_opt(&self.next_ready, &[&user_id, &repository]).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: Uuid = next.try_get(0)?;
        let old = task(&tx.query_one(&self.lock_update, &[&id]).await?)?;
        let updated = tx.query_one(&self.claim, &[&id, &user_id, &actor, &holder]).await?;
        let mut new = old.clone();
        new.status = Status::InProgress;
        new.assignee_id = Some(user_id);
        new.assignee_email = Some(email.to_owned());
        new.updated_at = updated.try_get(0)?;
        new.version = updated.try_get(1)?;
        new.updated_by = actor.to_owned();
        new.claim =
            Some(task_mcp::domain::Claim { holder: holder.to_owned(), agent: None, expires_at: updated.try_get(2)? });
        let claim = new.claim.as_ref().map(|c| c.describe());
        let changes = [
            ("status", Some("not_started".to_owned()), Some("in_progress".to_owned())),
            ("assignee", None, Some(email.to_owned())),
            ("claim", None, claim),
        ];
        record(&tx, &self.history, &self.event, &changes, None, "task_assigned", &new, actor).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    /// `create_task` with a repository: the lookup, the insert, the history row and the event.
    pub async fn create(&mut self, title: &str, repository: &str, actor: &str) -> Result<Uuid> {
        let tx = self.client.transaction().await?;
        let repository_id: Uuid = tx.query_one(&self.repository_id, &[&repository]).await?.try_get(0)?;
        let id = Uuid::now_v7();
        let description: Option<&str> = None;
        let assignee: Option<Uuid> = None;
        // No idempotency key, so no owner and no fingerprint either (as the store writes them).
        let (key, owner, fingerprint): (Option<&str>, Option<&str>, Option<&str>) = (None, None, None);
        let row = tx
            .query_one(
                &self.insert_task,
                &[
                    &id,
                    &title,
                    &description,
                    &"not_started",
                    &"high",
                    &"medium",
                    &assignee,
                    &Some(repository_id),
                    &actor,
                    &key,
                    &owner,
                    &fingerprint,
                ],
            )
            .await?;
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
            created_at: row.try_get(0)?,
            updated_at: row.try_get(1)?,
            version: 1,
            deleted_at: None,
            parent_id: None,
            claim: None,
            lapsed_holder: None,
            open_blockers: 0,
        };
        let changes = [("created", None, Some(title.to_owned()))];
        record(&tx, &self.history, &self.event, &changes, None, "task_created", &task, actor).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// `update_task_status`: lock the row, update it, history row and event.
    pub async fn update_status(&mut self, id: Uuid, status: &str, actor: &str) -> Result<()> {
        let tx = self.client.transaction().await?;
        let row = tx.query_one(&self.lock_update, &[&id]).await?;
        let old = task(&row)?;
        let repository_id: Option<Uuid> = row.try_get(21)?;
        let mut new = old.clone();
        new.status = Status::from_stored(status).context("status")?;
        let updated = tx
            .query_one(
                &self.update,
                &[
                    &new.id,
                    &new.title,
                    &new.description,
                    &new.status.as_str(),
                    &new.priority.as_str(),
                    &new.complexity.as_str(),
                    &new.assignee_id,
                    &repository_id,
                    &actor,
                ],
            )
            .await?;
        new.updated_at = updated.try_get(0)?;
        new.version = updated.try_get(1)?;
        new.updated_by = actor.to_owned();
        let changes = [("status", Some(old.status.as_str().to_owned()), Some(new.status.as_str().to_owned()))];
        record(&tx, &self.history, &self.event, &changes, None, "task_updated", &new, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `add_task_comment`: share-lock the row, insert the comment, history row and event.
    pub async fn comment(&mut self, id: Uuid, text: &str, actor: &str) -> Result<()> {
        let tx = self.client.transaction().await?;
        let row = tx.query_one(&self.lock_share, &[&id]).await?;
        let task = task(&row)?;
        tx.query_one(&self.comment, &[&Uuid::now_v7(), &id, &text, &actor]).await?;
        let changes = [("comment", None, Some(text.to_owned()))];
        record(&tx, &self.history, &self.event, &changes, None, "task_commented", &task, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `get_tasks`: one page (the store asks for one row more than the page, to know if there is a next).
    pub async fn list(&self, limit: i64) -> Result<usize> {
        let rows = self.client.query(&self.list, &[&(limit + 1)]).await?;
        let tasks = rows.iter().map(task).collect::<Result<Vec<_>>>()?;
        Ok(tasks.len())
    }

    /// `get_task`: the task, then its comments and history (pipelined, as the service runs them at once).
    pub async fn get(&self, id: Uuid) -> Result<usize> {
        let row = self.client.query_one(&self.get, &[&id]).await?;
        task(&row)?;
        let (comments, history) = futures::future::try_join(
            self.client.query(&self.comments, &[&id]),
            self.client.query(&self.history_of, &[&id]),
        )
        .await?;
        Ok(comments.len() + history.len())
    }
}

/// The history rows and the event, pipelined (as the store's `record`).
#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    history: &Statement,
    event: &Statement,
    changes: &[(&str, Option<String>, Option<String>)],
    comment: Option<&str>,
    kind: &str,
    task: &Task,
    actor: &str,
) -> Result<i64> {
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let fields: Vec<&str> = changes.iter().map(|c| c.0).collect();
    let olds: Vec<Option<&str>> = changes.iter().map(|c| c.1.as_deref()).collect();
    let news: Vec<Option<&str>> = changes.iter().map(|c| c.2.as_deref()).collect();
    // The store's own payload, as the store writes it (not the public JSON).
    let json = tokio_postgres::types::Json(task_mcp::store::payload::Payload::of(task));
    let previous: Option<Uuid> = None;
    let history_params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&task.id, &ids, &fields, &olds, &news, &actor, &comment];
    let event_params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] =
        [&EVENT_ORDER_LOCK, &kind, &task.id, &actor, &json, &task.assignee_id, &previous, &task.repository];
    let history = tx.execute(history, &history_params);
    let event = tx.query_one(event, &event_params);
    let (_, row) = futures::future::try_join(history, event).await?;
    Ok(row.try_get(0)?)
}

fn task(row: &Row) -> Result<Task> {
    let known = |raw: &str| raw.to_owned();
    let status: &str = row.try_get(3)?;
    let priority: &str = row.try_get(4)?;
    let complexity: &str = row.try_get(5)?;
    let created_at: DateTime<Utc> = row.try_get(11)?;
    Ok(Task {
        id: row.try_get(0)?,
        key: String::new(),
        title: row.try_get(1)?,
        description: row.try_get(2)?,
        status: Status::from_stored(status).with_context(|| known(status))?,
        priority: Priority::from_stored(priority).with_context(|| known(priority))?,
        complexity: Complexity::from_stored(complexity).with_context(|| known(complexity))?,
        assignee_id: row.try_get(6)?,
        assignee_email: row.try_get(7)?,
        repository: row.try_get(8)?,
        created_by: row.try_get(9)?,
        updated_by: row.try_get(10)?,
        created_at,
        updated_at: row.try_get(12)?,
        version: row.try_get(13)?,
        deleted_at: row.try_get(14)?,
        parent_id: None,
        claim: None,
        lapsed_holder: None,
        open_blockers: 0,
    })
}
