//! SQLite connections: creating the file owner-only, opening connections with the PRAGMAs every one needs,
//! the one writer and the idle readers of a process, short write transactions retried while another
//! process holds the lock, and the mapping of SQLite errors to `Error`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use crate::error::Error;

/// How long a statement waits (in [`wait_for_lock`]) for another connection's lock before SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The first waits for a busy lock poll this often: a write transaction holds the lock for a fraction
/// of a millisecond, so SQLite's own schedule (sleeps of 1, 2, 5, 10 … 100 ms) leaves the file idle
/// most of the time while several processes wait for it.
const BUSY_POLL_FIRST: Duration = Duration::from_micros(100);
/// Polls at the short interval before the waits lengthen to [`BUSY_POLL_LATER`].
const BUSY_SHORT_POLLS: i32 = 100;
const BUSY_POLL_LATER: Duration = Duration::from_millis(2);
/// How long we keep retrying a transaction that still meets SQLITE_BUSY after SQLite's own wait.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Idle reader connections kept per process (more are opened on demand and closed after use).
const MAX_IDLE_READERS: usize = 4;
/// Enough for every variant of the listing query plus the fixed statements.
const STATEMENT_CACHE: usize = 128;

/// Why a blocking store operation failed: SQLite (maybe retryable), or an answer for the caller.
#[derive(Debug)]
pub(super) enum Fail {
    Sql(rusqlite::Error),
    App(Error),
}

impl From<rusqlite::Error> for Fail {
    fn from(err: rusqlite::Error) -> Self {
        Fail::Sql(err)
    }
}

impl From<Error> for Fail {
    fn from(err: Error) -> Self {
        Fail::App(err)
    }
}

impl From<crate::domain::ValidationError> for Fail {
    fn from(err: crate::domain::ValidationError) -> Self {
        Fail::App(err.into())
    }
}

pub(super) type Outcome<T> = std::result::Result<T, Fail>;

impl Fail {
    /// Another connection holds a lock we need: trying again later will succeed.
    pub(super) fn is_busy(&self) -> bool {
        match self {
            Fail::Sql(err) => is_busy(err),
            Fail::App(_) => false,
        }
    }

    /// The error the caller sees; `path` names the file in messages about it.
    pub(super) fn into_error(self, path: &Path) -> Error {
        match self {
            Fail::App(err) => err,
            Fail::Sql(err) => sql_error(path, &err),
        }
    }
}

pub(super) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(err.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// Maps a SQLite error: the file being unusable is `Unavailable` (naming the path), anything else is a bug.
pub(super) fn sql_error(path: &Path, err: &rusqlite::Error) -> Error {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Unavailable(format!(
            "the SQLite database {} stayed locked by another process for more than {} s: {err}",
            path.display(),
            RETRY_FOR.as_secs()
        )),
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::NotADatabase
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NoLargeFileSupport,
        ) => Error::Unavailable(format!("the SQLite database {} cannot be used: {err}", path.display())),
        _ => Error::Internal(format!("SQLite ({}): {err}", path.display())),
    }
}

/// Creates the file's directory (0700) and the file itself (0600) when they do not exist yet, so nothing
/// SQLite creates next to it (`-wal`, `-shm`, which copy the file's mode) is readable by others either.
/// Existing directories and files are left as they are.
pub(super) fn prepare_file(path: &Path) -> Result<(), Error> {
    let unavailable =
        |what: &str, err: std::io::Error| Error::Unavailable(format!("cannot {what} {}: {err}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| unavailable("create the directory of the SQLite database", e))?;
    }
    if !path.exists() {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path).map_err(|e| unavailable("create the SQLite database", e))?;
    }
    Ok(())
}

/// Opens a connection to an existing file (see [`prepare_file`]) with the settings every connection needs.
pub(super) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    // No SQLITE_OPEN_CREATE: the file was created owner-only before, and a missing file is an error.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL: readers never block the writer and the writer never blocks readers; NORMAL is durable across
    // process crashes in WAL mode (only an OS crash can lose the last commits) and skips an fsync per commit.
    // Switching a fresh file to WAL takes a lock another process may hold for a moment: retry then.
    retry_busy(|| conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0)))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// SQLite's busy handler: called with how many times it was called for this lock; `true` = try again.
/// Polls every 100–200 µs at first, then every 2–4 ms, and gives up after about [`BUSY_TIMEOUT`] in all
/// (the caller's retry takes over from there). Jittered, so waiting processes do not poll in step.
fn wait_for_lock(calls: i32) -> bool {
    let short = BUSY_SHORT_POLLS.min(calls);
    let long = calls - short;
    // Roughly the time waited so far: the short polls average 150 µs, the long ones 3 ms.
    let waited = BUSY_POLL_FIRST * 3 / 2 * short.unsigned_abs() + BUSY_POLL_LATER * 3 / 2 * long.unsigned_abs();
    if waited >= BUSY_TIMEOUT {
        return false;
    }
    let pause = if calls < BUSY_SHORT_POLLS { BUSY_POLL_FIRST } else { BUSY_POLL_LATER };
    let jitter = pause.mul_f64(rand::random::<f64>());
    std::thread::sleep(pause + jitter);
    true
}

/// Runs `attempt` again while it fails with SQLITE_BUSY/LOCKED, for up to [`RETRY_FOR`].
pub(super) fn retry_busy<T>(mut attempt: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = Instant::now();
    let mut round = 0u32;
    loop {
        match attempt() {
            Err(err) if is_busy(&err) && started.elapsed() < RETRY_FOR => {
                round += 1;
                std::thread::sleep(backoff(round));
            }
            other => return other,
        }
    }
}

/// A short, growing, jittered pause, so processes that collided do not collide again in step.
fn backoff(round: u32) -> Duration {
    let base_ms = 2u64.saturating_pow(round.min(6)); // 2, 4, … 64 ms
    let jitter_ms = rand::random::<u64>() % (base_ms + 1);
    Duration::from_millis(base_ms + jitter_ms)
}

/// The connections of one process: one writer (SQLite allows one writer at a time anyway, so a second
/// would only wait) and a few idle readers (WAL lets them read while the writer writes).
pub(super) struct Connections {
    path: PathBuf,
    /// A std mutex: it is only ever held inside `spawn_blocking`, never across an await.
    writer: Mutex<Option<Connection>>,
    readers: Mutex<Vec<Connection>>,
}

impl Connections {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path, writer: Mutex::new(None), readers: Mutex::new(Vec::new()) }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the writer connection (opened on first use). Blocking.
    pub(super) fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Outcome<T>) -> Outcome<T> {
        // A poisoned lock only means another thread panicked while holding it; the connection
        // itself is still consistent (SQLite rolls back an unfinished transaction), so carry on.
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let mut conn = connect(&self.path)?;
            // BEGIN IMMEDIATE takes the write lock at once: a deferred transaction that reads first and
            // then writes can meet SQLITE_BUSY on upgrade that no waiting can resolve.
            conn.set_transaction_behavior(TransactionBehavior::Immediate);
            *guard = Some(conn);
        }
        match guard.as_mut() {
            Some(conn) => f(conn),
            None => Err(Fail::App(Error::Internal("the SQLite writer connection vanished".into()))),
        }
    }

    /// Runs `f` in one write transaction (BEGIN IMMEDIATE), committed when it returns `Ok`, rolled back
    /// otherwise; the whole transaction is tried again while another process holds the write lock.
    pub(super) fn write<T>(&self, mut f: impl FnMut(&Transaction<'_>) -> Outcome<T>) -> Outcome<T> {
        self.with_writer(|conn| {
            let started = Instant::now();
            let mut round = 0u32;
            loop {
                let attempt = (|| -> Outcome<T> {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let value = f(&tx)?;
                    tx.commit()?;
                    Ok(value)
                })();
                match attempt {
                    Err(fail) if fail.is_busy() && started.elapsed() < RETRY_FOR => {
                        round += 1;
                        std::thread::sleep(backoff(round));
                    }
                    other => return other,
                }
            }
        })
    }

    /// Runs `f` on an idle reader connection (or a new one), retried while the file is busy
    /// (a reader meets SQLITE_BUSY only in rare moments such as WAL recovery). Blocking.
    pub(super) fn read<T>(&self, mut f: impl FnMut(&Connection) -> Outcome<T>) -> Outcome<T> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let started = Instant::now();
        let mut round = 0u32;
        let result = loop {
            match f(&conn) {
                Err(fail) if fail.is_busy() && started.elapsed() < RETRY_FOR => {
                    round += 1;
                    std::thread::sleep(backoff(round));
                }
                other => break other,
            }
        };
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        result
    }
}
