//! The PostgreSQL store: a lazy deadpool-postgres pool, migrations applied on first use under an
//! advisory lock, every write one transaction (change + history rows + outbox event), and a LISTEN
//! connection that reports commits made by any process.
//!
//! Submodules: [`migrate`] (embedded migrations), [`rows`] (row ↔ domain), [`lookup`] (users and
//! repositories), [`tasks`] (task reads and writes), [`outbox`] (events, relay, pruning),
//! [`keys`] (API keys), [`task_keys`] (task keys: numbering, lookup, prefixes), [`listen`] (the commit
//! watcher), [`dump`] (export and import), [`work`] (claims, links, ready work), [`replica`] (the
//! read replica: when a read may go to it).
//!
//! Routing: the reads of tasks, comments, history, links and of a resuming event feed go through
//! [`Inner::read`] (the replica when it may answer, else the primary); everything else — writes,
//! claims, migrations, the LISTEN connection, the relay, the hub's own reads, export — uses the
//! primary's pool only. Each committed write notes the primary's position ([`Inner::wrote`]).

mod dump;
mod keys;
mod listen;
mod lookup;
mod migrate;
mod outbox;
mod replica;
mod rows;
mod task_keys;
mod tasks;
mod work;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType};
use tokio::sync::watch;
use tokio_postgres::NoTls;
use tokio_postgres::error::{DbError, SqlState};
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use self::replica::{Fresh, Replica};
use super::dump::DumpRow;
use super::{
    ApiKey, ClaimOutcome, ClaimRequest, CreatedTask, EventBounds, EventSink, NewComment, NewTask, NumberedRow, Release,
    ReplicaStatus, Store, StoreInfo, TaskDeletion, TaskQuery, TaskUpdate, redact_url,
};
use crate::domain::{Access, KeyName};
use crate::domain::{
    Comment, Event, HistoryEntry, KeyPrefix, RepoName, Repository, Task, TaskKey, TaskLinks, User, UserKey,
};
use crate::error::{Error, Result};

/// How long a call waits for a free pooled connection before it fails.
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a connection may take (a server that does not answer at all).
const CREATE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long checking a pooled connection before reuse may take.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one call of the store may take in all (waiting for a connection included), below the
/// 30 s `serve` gives a request, so the caller learns that the database is the reason.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub struct PgStore {
    inner: Arc<Inner>,
    /// Stops the LISTEN task (which holds its own `Arc<Inner>`) when the store goes away.
    _stop_listener: DropGuard,
}

/// Everything the store's methods and its background task share.
pub(crate) struct Inner {
    pool: Pool,
    /// For the dedicated LISTEN connection, which is not pooled.
    config: tokio_postgres::Config,
    /// The URL without its password: every message names the server by it.
    location: String,
    pool_size: usize,
    /// Fast path: once set, no call waits on migrations again.
    migrated: AtomicBool,
    /// Slow path: one migration attempt at a time in this process (an advisory lock orders processes).
    migrating: tokio::sync::Mutex<()>,
    /// The latest seq known to be committed, by this process or (through LISTEN) any other.
    commits: watch::Sender<i64>,
    listener_started: AtomicBool,
    stop: CancellationToken,
    /// The read replica (`DATABASE_READ_URL`), if any.
    replica: Option<Replica>,
}

impl PgStore {
    /// Builds the pools (the primary's, and the replica's when `read_url` is given) without
    /// connecting: the first call connects (and migrates).
    pub fn open(url: &str, read_url: Option<&str>, pool_size: usize) -> Result<Self> {
        let (mut config, location) = connection_config(url, "DATABASE_URL")?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CREATE_TIMEOUT);
        }
        let pool_size = pool_size.max(1);
        let replica = read_url.map(|url| Replica::open(url, pool_size)).transpose()?;
        let timeouts = PoolTimeouts { wait: WAIT_TIMEOUT, create: CREATE_TIMEOUT, recycle: RECYCLE_TIMEOUT };
        let pool = build_pool(config.clone(), pool_size, timeouts, "the PostgreSQL pool")?;
        let stop = CancellationToken::new();
        let inner = Arc::new(Inner {
            pool,
            config,
            location,
            pool_size,
            migrated: AtomicBool::new(false),
            migrating: tokio::sync::Mutex::new(()),
            commits: watch::Sender::new(0),
            listener_started: AtomicBool::new(false),
            stop: stop.clone(),
            replica,
        });
        Ok(Self { inner, _stop_listener: stop.drop_guard() })
    }
}

/// Parses a PostgreSQL URL (`setting` names it in the error) and sets what every connection needs: the
/// application name, unless the URL gives one, and TCP keep-alives. Returns it with the URL's password
/// hidden, by which every message names the server.
pub(super) fn connection_config(url: &str, setting: &str) -> Result<(tokio_postgres::Config, String)> {
    let location = redact_url(url);
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| Error::invalid(setting, format!("{location} is not a valid PostgreSQL URL: {e}")))?;
    if config.get_application_name().is_none() {
        config.application_name("task-mcp");
    }
    // Notice a vanished server on idle connections (the LISTEN one above all) within a minute,
    // not after the system default of two hours.
    config.keepalives_idle(Duration::from_secs(30));
    Ok((config, location))
}

/// How long a pool waits for a free connection, for a new one, and for checking one before reuse.
pub(super) struct PoolTimeouts {
    pub(super) wait: Duration,
    pub(super) create: Duration,
    pub(super) recycle: Duration,
}

/// A lazy pool (nothing connects until a connection is asked for); `what` names it in the error.
pub(super) fn build_pool(
    config: tokio_postgres::Config,
    size: usize,
    timeouts: PoolTimeouts,
    what: &str,
) -> Result<Pool> {
    // Fast: a connection whose socket closed (a server restart) is replaced, with no query.
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeouts.wait))
        .create_timeout(Some(timeouts.create))
        .recycle_timeout(Some(timeouts.recycle))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build {what}: {e}")))
}

/// A failure inside the store, turned into an [`Error`] once, at the boundary (`Inner::error`).
pub(crate) enum Fail {
    Pg(tokio_postgres::Error),
    Pool(PoolError),
    Store(Error),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Self {
        Fail::Pool(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Store(e)
    }
}

type Outcome<T> = std::result::Result<T, Fail>;

impl Inner {
    /// A pooled connection to a migrated database.
    async fn conn(&self) -> Outcome<Object> {
        self.ensure_migrated().await?;
        Ok(self.pool.get().await?)
    }

    /// Applies migrations once per process, on first use. A failed attempt (the server is down)
    /// leaves the flag unset, so the next call tries again.
    async fn ensure_migrated(&self) -> Outcome<()> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one_at_a_time = self.migrating.lock().await;
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        migrate::run(self).await?;
        self.migrated.store(true, Ordering::Release);
        if let Some(replica) = &self.replica {
            replica.note_write(&self.pool).await;
        }
        Ok(())
    }

    /// A read: on the replica when it answers and has replayed what the read must see (`fresh`),
    /// else on the primary. A read that fails on the replica is asked of the primary.
    async fn read<T, F, Fut>(&self, fresh: Fresh, read: F) -> Outcome<T>
    where
        F: Fn(Object) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        Ok(self.read_from(fresh, &read).await?.0)
    }

    /// A read of one thing by id or key, like [`Inner::read`]; when the replica finds nothing, the
    /// primary is asked: the thing may have been committed by another process and not replayed yet,
    /// so only the primary's "not found" is an answer.
    async fn read_found<T, F, Fut>(&self, fresh: Fresh, read: F) -> Outcome<Option<T>>
    where
        F: Fn(Object) -> Fut,
        Fut: Future<Output = Outcome<Option<T>>>,
    {
        match self.read_from(fresh, &read).await? {
            (None, true) => read(self.conn().await?).await,
            (found, _) => Ok(found),
        }
    }

    /// The read, and whether the replica answered it.
    async fn read_from<T, F, Fut>(&self, fresh: Fresh, read: &F) -> Outcome<(T, bool)>
    where
        F: Fn(Object) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        if let Some(replica) = &self.replica {
            self.ensure_migrated().await?;
            if let Some(client) = replica.connection(&self.pool, fresh).await {
                match tokio::time::timeout(replica::READ_TIMEOUT, read(client)).await {
                    Ok(Ok(value)) => return Ok((value, true)),
                    Ok(Err(Fail::Store(e))) => return Err(Fail::Store(e)),
                    Ok(Err(fail)) => replica.failed(&fail),
                    Err(_) => replica.timed_out(),
                }
            }
        }
        Ok((read(self.conn().await?).await?, false))
    }

    /// After a write: when it committed, the reads that follow must see it (on the replica too).
    async fn wrote<T>(&self, outcome: Result<T>) -> Result<T> {
        if outcome.is_ok()
            && let Some(replica) = &self.replica
        {
            replica.note_write(&self.pool).await;
        }
        outcome
    }

    /// Records that `seq` is committed (seq order is commit order, so everything below it is too).
    fn committed(&self, seq: i64) {
        self.commits.send_if_modified(|latest| {
            if seq > *latest {
                *latest = seq;
                true
            } else {
                false
            }
        });
    }

    /// Runs one operation of the store, bounded: a server that stops answering without closing its
    /// connections (frozen, or cut off by the network) fails the call after [`CALL_TIMEOUT`] instead
    /// of hanging it (stdio has no other time limit). A write cut off this way may still commit when
    /// the server comes back, like one whose answer a crash lost; its event is in the same transaction.
    async fn bounded<T>(&self, operation: impl Future<Output = Outcome<T>>) -> Result<T> {
        match tokio::time::timeout(CALL_TIMEOUT, operation).await {
            Ok(outcome) => outcome.map_err(|fail| self.error(fail)),
            Err(_) => Err(self.unavailable(format_args!("it did not answer within {} s", CALL_TIMEOUT.as_secs()))),
        }
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!("PostgreSQL at {} is unavailable: {reason}", self.location))
    }

    fn error(&self, fail: Fail) -> Error {
        match fail {
            Fail::Store(e) => e,
            Fail::Pg(e) => self.pg_error(&e),
            Fail::Pool(e) => self.pool_error(e),
        }
    }

    fn pool_error(&self, e: PoolError) -> Error {
        match e {
            PoolError::Backend(e) => self.pg_error(&e),
            PoolError::Timeout(TimeoutType::Wait) => self.unavailable(format_args!(
                "no connection came free within {}s (all {} in use)",
                WAIT_TIMEOUT.as_secs(),
                self.pool_size
            )),
            PoolError::Timeout(TimeoutType::Create) => {
                self.unavailable(format_args!("connecting took longer than {}s", CREATE_TIMEOUT.as_secs()))
            }
            PoolError::Timeout(TimeoutType::Recycle) => {
                self.unavailable(format_args!("checking a connection took longer than {}s", RECYCLE_TIMEOUT.as_secs()))
            }
            PoolError::Closed => self.unavailable("the connection pool is closed"),
            other => {
                tracing::error!(store = %self.location, "PostgreSQL pool error: {other:#}");
                Error::Internal(format!("PostgreSQL pool error: {other}"))
            }
        }
    }

    /// Sorts a driver error: the server is unreachable (`Unavailable`), the caller's input broke a
    /// rule the database keeps (`Invalid`), or a bug (`Internal`, logged here, once).
    fn pg_error(&self, e: &tokio_postgres::Error) -> Error {
        if let Some(db) = e.as_db_error() {
            if db.code() == &SqlState::INVALID_CATALOG_NAME {
                return self.unavailable(format_args!(
                    "{}; create it with `{}`",
                    db.message(),
                    self.createdb_command()
                ));
            }
            if is_unavailable(db.code()) {
                return self.unavailable(db.message());
            }
            if let Some(invalid) = caller_error(db) {
                return invalid;
            }
        } else if is_connection_error(e) {
            return self.unavailable(chain(e));
        }
        let detail = chain(e);
        tracing::error!(store = %self.location, "PostgreSQL error: {detail}");
        Error::Internal(format!("PostgreSQL error: {detail}"))
    }
}

impl Inner {
    /// The `createdb` line that makes the database this URL names (on a fresh server, a newcomer's
    /// usual first error).
    fn createdb_command(&self) -> String {
        let config = &self.config;
        let mut command = String::from("createdb");
        if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
            command.push_str(&format!(" -h {host}"));
        }
        if let Some(port) = config.get_ports().first().filter(|p| **p != 5432) {
            command.push_str(&format!(" -p {port}"));
        }
        if let Some(user) = config.get_user() {
            command.push_str(&format!(" -U {user}"));
        }
        command.push(' ');
        command.push_str(config.get_dbname().or(config.get_user()).unwrap_or("DB"));
        command
    }
}

/// SQLSTATEs that mean "the server cannot serve us now", not "the query is wrong".
fn is_unavailable(code: &SqlState) -> bool {
    let code = code.code();
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin / crash shutdown, cannot connect now
        || code.starts_with("28") // authentication failed
        || matches!(code, "53300" | "3D000" | "53100" | "53200") // too many clients, no such database, out of space / memory
}

fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    ["error connecting", "error communicating", "timeout waiting", "authentication error", "error performing TLS"]
        .iter()
        .any(|prefix| text.starts_with(prefix))
}

/// Constraint violations a caller can cause, as `Invalid` naming the argument.
fn caller_error(db: &DbError) -> Option<Error> {
    let constraint = db.constraint().unwrap_or_default();
    let (field, message) = match (db.code(), constraint) {
        (&SqlState::UNIQUE_VIOLATION, "api_keys_key_hash_key") => ("key", "this key is already registered"),
        (&SqlState::UNIQUE_VIOLATION, _) => (constraint, "is already taken"),
        (&SqlState::FOREIGN_KEY_VIOLATION, "api_keys_user_id_fkey") => ("user_id", "no user has this id"),
        (&SqlState::FOREIGN_KEY_VIOLATION, "tasks_assignee_id_fkey") => ("assignee_id", "no user has this id"),
        (&SqlState::FOREIGN_KEY_VIOLATION, _) => (constraint, "names something that does not exist"),
        (&SqlState::CHECK_VIOLATION, _) => {
            let field = constraint.strip_suffix("_check").unwrap_or(constraint);
            let field = field.split_once('_').map_or(field, |(_table, column)| column);
            (field, "is not an accepted value")
        }
        _ => return None,
    };
    Some(Error::invalid(field, message))
}

/// An error with its causes, `a: b: c` (tokio-postgres prints only the outermost by default).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl Store for PgStore {
    fn info(&self) -> StoreInfo {
        StoreInfo { kind: "postgres", location: self.inner.location.clone() }
    }

    fn pool_status(&self) -> Option<super::PoolStatus> {
        let status = self.inner.pool.status();
        Some(super::PoolStatus {
            size: status.size,
            available: status.available,
            max_size: status.max_size,
            waiting: status.waiting,
        })
    }

    async fn migrate(&self) -> Result<i64> {
        let inner = &self.inner;
        let _one_at_a_time = inner.migrating.lock().await;
        let version = migrate::run(inner).await.map_err(|f| inner.error(f))?;
        inner.migrated.store(true, Ordering::Release);
        inner.wrote(Ok(version)).await
    }

    async fn schema_version(&self) -> Result<i64> {
        self.inner.bounded(migrate::version(&self.inner)).await
    }

    async fn resolve_user(&self, field: &str, key: &UserKey) -> Result<User> {
        let inner = &self.inner;
        inner
            .bounded(async {
                let client = inner.conn().await?;
                lookup::resolve_user(&client, field, key).await
            })
            .await
    }

    async fn find_user(&self, key: &UserKey) -> Result<Option<User>> {
        let inner = &self.inner;
        inner
            .bounded(async {
                let client = inner.conn().await?;
                lookup::find_user(&client, key).await
            })
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.inner.bounded(lookup::list_users(&self.inner)).await
    }

    async fn list_repositories(&self) -> Result<Vec<Repository>> {
        self.inner.bounded(lookup::list_repositories(&self.inner)).await
    }

    async fn find_task_id(&self, key: &TaskKey) -> Result<Option<Uuid>> {
        let inner = &self.inner;
        inner.bounded(inner.read_found(Fresh::OwnWrites, |client| task_keys::find_task_id(client, key))).await
    }

    async fn set_key_prefix(&self, repository: &RepoName, prefix: &KeyPrefix) -> Result<Repository> {
        self.inner.wrote(self.inner.bounded(task_keys::rename(&self.inner, repository, prefix)).await).await
    }

    async fn create_task(&self, new: NewTask) -> Result<CreatedTask> {
        self.inner.wrote(self.inner.bounded(tasks::create(&self.inner, new)).await).await
    }

    async fn update_task(&self, update: TaskUpdate) -> Result<Task> {
        self.inner.wrote(self.inner.bounded(tasks::update(&self.inner, update)).await).await
    }

    async fn add_comment(&self, new: NewComment) -> Result<(Comment, Task)> {
        self.inner.wrote(self.inner.bounded(tasks::add_comment(&self.inner, new)).await).await
    }

    async fn delete_task(&self, deletion: TaskDeletion) -> Result<Task> {
        self.inner.wrote(self.inner.bounded(tasks::delete(&self.inner, deletion)).await).await
    }

    async fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        let inner = &self.inner;
        inner.bounded(inner.read_found(Fresh::OwnWrites, |client| tasks::get(client, id))).await
    }

    async fn list_comments(&self, task_id: Uuid) -> Result<Vec<Comment>> {
        let inner = &self.inner;
        inner.bounded(inner.read(Fresh::OwnWrites, |client| tasks::list_comments(client, task_id))).await
    }

    async fn list_history(&self, task_id: Uuid) -> Result<Vec<HistoryEntry>> {
        let inner = &self.inner;
        inner.bounded(inner.read(Fresh::OwnWrites, |client| tasks::list_history(client, task_id))).await
    }

    async fn history_since(&self, task_ids: &[Uuid], since: DateTime<Utc>) -> Result<Vec<HistoryEntry>> {
        let inner = &self.inner;
        inner.bounded(inner.read(Fresh::OwnWrites, |client| tasks::history_since(client, task_ids, since))).await
    }

    async fn get_task_detail(&self, id: Uuid) -> Result<Option<crate::store::StoredTaskDetail>> {
        let inner = &self.inner;
        inner.bounded(inner.read_found(Fresh::OwnWrites, |client| tasks::get_detail(client, id))).await
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        let inner = &self.inner;
        inner.bounded(inner.read(Fresh::OwnWrites, |client| tasks::list(client, query))).await
    }

    async fn claim_task(&self, request: ClaimRequest) -> Result<ClaimOutcome> {
        self.inner.wrote(self.inner.bounded(work::claim(&self.inner, request)).await).await
    }

    async fn release_task(&self, release: Release) -> Result<Task> {
        self.inner.wrote(self.inner.bounded(work::release(&self.inner, release)).await).await
    }

    async fn expire_claims(&self, limit: u32) -> Result<usize> {
        match self.inner.bounded(work::expire(&self.inner, limit)).await {
            Ok(0) => Ok(0),
            outcome => self.inner.wrote(outcome).await,
        }
    }

    async fn task_links(&self, id: Uuid) -> Result<TaskLinks> {
        let inner = &self.inner;
        inner.bounded(inner.read(Fresh::OwnWrites, |client| work::task_links(client, id))).await
    }

    async fn events_after(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        let inner = &self.inner;
        inner.bounded(async { outbox::events_after(inner.conn().await?, after_seq, limit).await }).await
    }

    // Everything committed before the call: the feed that resumes goes live from the hub's position,
    // which may be ahead of this process's own writes.
    async fn replay_events(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        let inner = &self.inner;
        inner.bounded(inner.read(Fresh::Primary, |client| outbox::events_after(client, after_seq, limit))).await
    }

    async fn replica_status(&self) -> Option<ReplicaStatus> {
        let replica = self.inner.replica.as_ref()?;
        Some(replica.status(&self.inner.pool).await)
    }

    async fn event_bounds(&self) -> Result<EventBounds> {
        self.inner.bounded(outbox::bounds(&self.inner)).await
    }

    async fn relay_pending(&self, limit: u32, sink: &dyn EventSink) -> Result<usize> {
        self.inner.bounded(outbox::relay_pending(&self.inner, limit, sink)).await
    }

    async fn prune_events(&self, before: DateTime<Utc>, include_unpublished: bool, batch: u32) -> Result<u64> {
        self.inner.bounded(outbox::prune(&self.inner, before, include_unpublished, batch)).await
    }

    fn watch_commits(&self) -> watch::Receiver<i64> {
        listen::start(&self.inner);
        self.inner.commits.subscribe()
    }

    async fn create_api_key(&self, user_id: Uuid, name: &KeyName, key_hash: &str, access: Access) -> Result<ApiKey> {
        self.inner.bounded(keys::create(&self.inner, user_id, name, key_hash, access)).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.inner.bounded(keys::list(&self.inner)).await
    }

    async fn revoke_api_key(&self, id_or_name: &str) -> Result<bool> {
        self.inner.bounded(keys::revoke(&self.inner, id_or_name)).await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<(ApiKey, User)>> {
        self.inner.bounded(keys::find(&self.inner, key_hash)).await
    }

    // Not bounded by the call timeout: a large store takes as long as it takes.
    async fn export(&self, rows: tokio::sync::mpsc::Sender<DumpRow>) -> Result<u64> {
        dump::export(&self.inner, rows).await
    }

    async fn import(&self, rows: tokio::sync::mpsc::Receiver<Result<NumberedRow>>, force: bool) -> Result<u64> {
        self.inner.wrote(dump::import(&self.inner, rows, force).await).await
    }
}
