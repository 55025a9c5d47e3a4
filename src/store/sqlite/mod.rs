//! The embedded SQLite store: one file shared by every process of a user (agent sessions and `serve`),
//! opened and migrated on first use. WAL lets readers run beside the one writer; writes are short
//! `BEGIN IMMEDIATE` transactions retried while another process holds the lock. Blocking SQLite calls run
//! on tokio's blocking pool.

mod conn;
mod dump;
mod ops;
mod rows;
mod task_keys;
mod watch;
mod work;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use uuid::Uuid;

use self::conn::{Connections, Fail, Outcome};
use self::watch::CommitWatch;
use super::dump::DumpRow;
use super::{
    ApiKey, CreatedTask, EventBounds, EventSink, NewComment, NewTask, NumberedRow, Store, StoreInfo, TaskDeletion,
};
use super::{ClaimOutcome, ClaimRequest, Release, TaskQuery, TaskUpdate};
use crate::domain::{Access, KeyName};
use crate::domain::{
    Comment, Event, HistoryEntry, KeyPrefix, RepoName, Repository, Task, TaskKey, TaskLinks, User, UserKey,
};
use crate::error::{Error, Result};

mod embedded {
    refinery::embed_migrations!("sql/sqlite");
}

pub struct SqliteStore {
    shared: Arc<Shared>,
    /// Relays of this process take turns (held across the publish), so this process never publishes an
    /// event twice; relays in other processes may (see `relay_pending`).
    relay: tokio::sync::Mutex<()>,
}

struct Shared {
    connections: Connections,
    /// Set once the file exists and is migrated; a failed attempt is tried again by the next call.
    ready: OnceCell<i64>,
    commits: Arc<Mutex<CommitWatch>>,
}

impl SqliteStore {
    /// Names the file; touches nothing (the file and its directory are created on first use).
    pub fn open(path: &Path) -> Result<Self> {
        if path.as_os_str().is_empty() {
            return Err(Error::invalid(
                "DATABASE_URL",
                "a sqlite:// URL needs a file path, for example sqlite:///home/me/tasks.db",
            ));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                connections: Connections::new(PathBuf::from(path)),
                ready: OnceCell::new(),
                commits: Arc::new(Mutex::new(CommitWatch::default())),
            }),
            relay: tokio::sync::Mutex::new(()),
        })
    }

    fn path(&self) -> &Path {
        self.shared.connections.path()
    }

    /// Creates and migrates the file on the first call; concurrent first calls wait for one migration.
    async fn ready(&self) -> Result<i64> {
        let shared = self.shared.clone();
        self.shared
            .ready
            .get_or_try_init(|| async move { blocking(&shared, |s| migrate_now(&s.connections)).await })
            .await
            .copied()
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnMut(&rusqlite::Connection) -> Outcome<T> + Send + 'static,
    ) -> Result<T> {
        self.ready().await?;
        blocking(&self.shared, move |s| s.connections.read(f)).await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&rusqlite::Transaction<'_>) -> Outcome<T> + Send + 'static,
    ) -> Result<T> {
        self.ready().await?;
        blocking(&self.shared, move |s| s.connections.write(f)).await
    }

    /// A write that may have written an event: receivers of `watch_commits` in this process hear of it now.
    async fn write_event<T: Send + 'static>(
        &self,
        f: impl FnMut(&rusqlite::Transaction<'_>) -> Outcome<(T, Option<i64>)> + Send + 'static,
    ) -> Result<T> {
        let (value, seq) = self.write(f).await?;
        if let Some(seq) = seq {
            CommitWatch::committed(&self.shared.commits, seq);
        }
        Ok(value)
    }
}

/// Runs blocking SQLite work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> Outcome<T> + Send + 'static,
) -> Result<T> {
    let shared = shared.clone();
    let path = shared.connections.path().to_path_buf();
    match tokio::task::spawn_blocking(move || f(&shared)).await {
        Ok(outcome) => outcome.map_err(|fail| fail.into_error(&path)),
        Err(err) => Err(Error::Internal(format!("a SQLite task failed: {err}"))),
    }
}

/// Creates the file (owner-only) if needed and applies pending migrations; returns the schema version.
/// Safe when several processes do it at once on a new file: refinery's transactions are IMMEDIATE (the
/// writer's behaviour), so they run one after the other, and one that fails because another process
/// applied the same migration first sees the new version and tries again (finding nothing to do).
fn migrate_now(connections: &Connections) -> Outcome<i64> {
    conn::prepare_file(connections.path())?;
    let target = embedded::migrations::runner().get_migrations().iter().map(|m| i64::from(m.version())).max();
    let target = target.unwrap_or(0);
    connections.with_writer(|conn| {
        let version = apply_migrations(connections.path(), conn, target)?;
        if conn::retry_busy(|| task_keys::any_unnumbered(conn))? {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let numbered = task_keys::number_existing(&tx)?;
            tx.commit()?;
            tracing::info!(store = %connections.path().display(), tasks = numbered, "existing tasks given keys");
        }
        // Keeps the planner's statistics current (bounded work; usually nothing to do), so it picks the
        // most selective index when a listing combines filters. Only an optimisation: errors are ignored.
        if let Err(err) = conn.execute_batch("PRAGMA analysis_limit = 400; PRAGMA optimize = 0x10002;") {
            tracing::debug!("PRAGMA optimize on {}: {err}", connections.path().display());
        }
        Ok(version)
    })
}

fn apply_migrations(path: &Path, conn: &mut rusqlite::Connection, target: i64) -> Outcome<i64> {
    let started = std::time::Instant::now();
    loop {
        let before = conn::retry_busy(|| ops::schema_version(conn))?;
        if before >= target {
            // The common case for every process after the first: no write lock taken.
            return Ok(before);
        }
        match embedded::migrations::runner().set_grouped(true).run(conn) {
            Ok(_) => return Ok(ops::schema_version(conn)?),
            Err(err) => {
                let after = conn::retry_busy(|| ops::schema_version(conn)).unwrap_or(before);
                let busy = refinery_sqlite_error(&err).is_some_and(conn::is_busy);
                if (after > before || busy) && started.elapsed() < std::time::Duration::from_secs(30) {
                    continue;
                }
                return Err(Fail::App(match refinery_sqlite_error(&err) {
                    Some(sql) => conn::sql_error(path, sql),
                    None => Error::Internal(format!("migrating the SQLite database {}: {err}", path.display())),
                }));
            }
        }
    }
}

/// The SQLite error under a refinery error, if that is what it is.
fn refinery_sqlite_error(err: &refinery::Error) -> Option<&rusqlite::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(current) = source {
        if let Some(sql) = current.downcast_ref::<rusqlite::Error>() {
            return Some(sql);
        }
        source = current.source();
    }
    None
}

#[async_trait]
impl Store for SqliteStore {
    fn info(&self) -> StoreInfo {
        StoreInfo { kind: "sqlite", location: self.path().display().to_string() }
    }

    async fn migrate(&self) -> Result<i64> {
        self.ready().await
    }

    async fn schema_version(&self) -> Result<i64> {
        // Reports without migrating, but the file must be there to answer.
        let path = self.path().to_path_buf();
        blocking(&self.shared, move |s| {
            conn::prepare_file(&path)?;
            s.connections.read(|c| Ok(ops::schema_version(c)?))
        })
        .await
    }

    async fn resolve_user(&self, field: &str, key: &UserKey) -> Result<User> {
        let lookup = key.clone();
        if let Some(user) = self.read(move |c| Ok(ops::find_user(c, &lookup)?)).await? {
            return Ok(user);
        }
        let (field, key) = (field.to_owned(), key.clone());
        self.write(move |tx| ops::resolve_user(tx, &field, &key)).await
    }

    async fn find_user(&self, key: &UserKey) -> Result<Option<User>> {
        let key = key.clone();
        self.read(move |c| Ok(ops::find_user(c, &key)?)).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.read(|c| Ok(ops::list_users(c)?)).await
    }

    async fn list_repositories(&self) -> Result<Vec<Repository>> {
        self.read(|c| Ok(ops::list_repositories(c)?)).await
    }

    async fn find_task_id(&self, key: &TaskKey) -> Result<Option<Uuid>> {
        let key = key.clone();
        self.read(move |c| task_keys::find_task_id(c, &key)).await
    }

    async fn set_key_prefix(&self, repository: &RepoName, prefix: &KeyPrefix) -> Result<Repository> {
        let (repository, prefix) = (repository.clone(), prefix.clone());
        self.write(move |tx| task_keys::rename(tx, &repository, &prefix)).await
    }

    async fn create_task(&self, new: NewTask) -> Result<CreatedTask> {
        self.write_event(move |tx| ops::create_task(tx, &new)).await
    }

    async fn update_task(&self, update: TaskUpdate) -> Result<Task> {
        self.write_event(move |tx| ops::update_task(tx, &update)).await
    }

    async fn add_comment(&self, new: NewComment) -> Result<(Comment, Task)> {
        self.write_event(move |tx| ops::add_comment(tx, &new).map(|(v, seq)| (v, Some(seq)))).await
    }

    async fn delete_task(&self, deletion: TaskDeletion) -> Result<Task> {
        self.write_event(move |tx| ops::delete_task(tx, &deletion).map(|(v, seq)| (v, Some(seq)))).await
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        self.read(move |c| Ok(ops::live_task(c, id)?)).await
    }

    async fn list_comments(&self, task_id: Uuid) -> Result<Vec<Comment>> {
        self.read(move |c| Ok(ops::list_comments(c, task_id)?)).await
    }

    async fn list_history(&self, task_id: Uuid) -> Result<Vec<HistoryEntry>> {
        self.read(move |c| Ok(ops::list_history(c, task_id)?)).await
    }

    async fn history_since(&self, task_ids: &[Uuid], since: DateTime<Utc>) -> Result<Vec<HistoryEntry>> {
        let task_ids = task_ids.to_vec();
        self.read(move |c| Ok(ops::history_since(c, &task_ids, since)?)).await
    }

    /// The three reads on one connection in one trip to the blocking pool (not three), inside one
    /// read transaction: they see one moment (three statements alone could each see a later commit).
    async fn get_task_detail(&self, id: Uuid) -> Result<Option<super::StoredTaskDetail>> {
        self.read(move |c| {
            let snapshot = c.unchecked_transaction()?;
            let Some(task) = ops::live_task(&snapshot, id)? else { return Ok(None) };
            let comments = ops::list_comments(&snapshot, id)?;
            let history = ops::list_history(&snapshot, id)?;
            snapshot.commit()?;
            Ok(Some(super::StoredTaskDetail { task, comments, history }))
        })
        .await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        let query = query.clone();
        self.read(move |c| Ok(ops::list_tasks(c, &query)?)).await
    }

    async fn claim_task(&self, request: ClaimRequest) -> Result<ClaimOutcome> {
        self.write_event(move |tx| work::claim(tx, &request)).await
    }

    async fn release_task(&self, release: Release) -> Result<Task> {
        self.write_event(move |tx| work::release(tx, &release)).await
    }

    async fn expire_claims(&self, limit: u32) -> Result<usize> {
        if !self.read(|c| Ok(work::any_expired(c)?)).await? {
            return Ok(0);
        }
        self.write_event(move |tx| work::expire(tx, limit)).await
    }

    async fn task_links(&self, id: Uuid) -> Result<TaskLinks> {
        self.read(move |c| Ok(work::task_links(c, id)?)).await
    }

    async fn events_after(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        self.read(move |c| Ok(ops::events_after(c, after_seq, limit)?)).await
    }

    async fn event_bounds(&self) -> Result<EventBounds> {
        self.read(|c| Ok(ops::event_bounds(c)?)).await
    }

    /// SQLite has no `SKIP LOCKED`: relays in several processes may read the same unpublished events and
    /// publish them twice. Delivery is at-least-once and consumers drop duplicates by seq, so that is safe.
    /// None is skipped, and none is first published after a later one: each relay takes the oldest
    /// unpublished events in seq order, and an event is marked published only after it was published.
    async fn relay_pending(&self, limit: u32, sink: &dyn EventSink) -> Result<usize> {
        let _turn = self.relay.lock().await;
        let events = self.read(move |c| Ok(ops::unpublished_events(c, limit)?)).await?;
        if events.is_empty() {
            return Ok(0);
        }
        sink.publish(&events).await?;
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        self.write(move |tx| Ok(ops::mark_published(tx, &seqs)?)).await?;
        Ok(events.len())
    }

    async fn prune_events(&self, before: DateTime<Utc>, include_unpublished: bool, batch: u32) -> Result<u64> {
        self.write(move |tx| Ok(ops::prune_events(tx, before, include_unpublished, batch)?)).await
    }

    fn watch_commits(&self) -> tokio::sync::watch::Receiver<i64> {
        CommitWatch::subscribe(&self.shared.commits, self.path())
    }

    async fn create_api_key(&self, user_id: Uuid, name: &KeyName, key_hash: &str, access: Access) -> Result<ApiKey> {
        let (name, key_hash) = (name.clone(), key_hash.to_owned());
        self.write(move |tx| ops::create_api_key(tx, user_id, &name, &key_hash, access)).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|c| Ok(ops::list_api_keys(c)?)).await
    }

    async fn revoke_api_key(&self, id_or_name: &str) -> Result<bool> {
        let id_or_name = id_or_name.to_owned();
        self.write(move |tx| Ok(ops::revoke_api_key(tx, &id_or_name)?)).await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<(ApiKey, User)>> {
        // Read first, so a wrong key (the common case under attack) takes no write lock; and record a use
        // at most once a minute, so authenticated traffic does not turn every request into a write.
        let hash = key_hash.to_owned();
        let Some(found) = self.read(move |c| Ok(ops::find_api_key(c, &hash)?)).await? else {
            return Ok(None);
        };
        let recent = chrono::Utc::now() - chrono::TimeDelta::minutes(1);
        if found.0.last_used_at.is_some_and(|used| used > recent) {
            return Ok(Some(found));
        }
        let hash = key_hash.to_owned();
        self.write(move |tx| Ok(ops::touch_api_key(tx, &hash)?)).await
    }

    async fn export(&self, rows: tokio::sync::mpsc::Sender<DumpRow>) -> Result<u64> {
        self.ready().await?;
        // A connection of its own: the export holds its snapshot for as long as it takes, without
        // keeping a pooled reader from the rest of the process.
        blocking(&self.shared, move |s| {
            let mut conn = conn::connect(s.connections.path())?;
            dump::export(&mut conn, &rows)
        })
        .await
    }

    async fn import(&self, rows: tokio::sync::mpsc::Receiver<Result<NumberedRow>>, force: bool) -> Result<u64> {
        self.ready().await?;
        blocking(&self.shared, move |s| s.connections.with_writer(|conn| dump::import(conn, rows, force))).await
    }
}
