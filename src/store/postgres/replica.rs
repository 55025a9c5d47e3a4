//! The read replica (`DATABASE_READ_URL`): a second lazy pool that reads may go to, and the rules that
//! decide when they do. A read goes to the replica only when it answers, is a standby, has not stayed
//! behind the primary for more than [`MAX_LAG`], and has replayed what the read must see ([`Fresh`]):
//! every write this process committed (read-your-writes), or, for a resuming event feed, everything
//! committed on the primary when the read began. Otherwise, and whenever the replica fails, the read
//! goes to the primary: a replica's trouble is never the caller's. A replica found down or lagging is
//! skipped with one warning and tried again after [`BACKOFF`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool, PoolError, TimeoutType};

use super::{Fail, PoolTimeouts, build_pool, chain, connection_config, is_connection_error, is_unavailable};
use crate::error::Result;
use crate::store::{ReplicaState, ReplicaStatus};

/// Opening a connection to the replica, waiting for one of its pooled connections, or one check on it:
/// a replica is a convenience, not worth a long wait.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a read waits for one of the replica's pooled connections to come free: when all are busy,
/// the read goes to the primary rather than queue.
const POOL_WAIT: Duration = Duration::from_millis(100);
/// How long a read waits for the replica to replay what it must see before it goes to the primary.
const CATCH_UP_WAIT: Duration = Duration::from_millis(50);
const CATCH_UP_POLL: Duration = Duration::from_millis(2);
/// A replica that stays behind a position of the primary for longer than this is skipped.
pub(crate) const MAX_LAG: Duration = Duration::from_secs(5);
/// How long a skipped replica is left alone before it is tried again.
const BACKOFF: Duration = Duration::from_secs(5);
/// How often a read samples the primary's position, to see whether the replica keeps up with the
/// writes of other processes (its own writes are sampled as they commit).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A read on the replica that takes longer is abandoned, and asked of the primary.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What a read sent to the replica must see.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fresh {
    /// Every write this process committed (the next read of a caller sees its own write).
    OwnWrites,
    /// Everything committed on the primary, by any process, when the read began.
    Primary,
}

pub(super) struct Replica {
    pool: Pool,
    /// The URL without its password.
    location: String,
    /// The primary's WAL position (bytes from 0/0) read after this process's latest commit.
    written: AtomicI64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Skipped until then (the back-off).
    skipped_until: Option<Instant>,
    /// Why it is skipped; logged once, when it became so, and cleared when it answers again.
    problem: Option<Problem>,
    /// A primary position the replica had not replayed, and since when it existed: while it stays
    /// unreplayed, the replica is at least that long behind. A replica that replayed everything (an idle
    /// one too) has none, so idleness is never taken for lag.
    behind_since: Option<(i64, Instant)>,
    last_probe: Option<Instant>,
}

#[derive(Debug, Clone)]
enum Problem {
    Down(String),
    Lagging(Duration),
    NotStandby,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Down(why) => write!(f, "it does not answer: {why}"),
            Problem::Lagging(lag) => write!(f, "it is more than {} s behind the primary", lag.as_secs()),
            Problem::NotStandby => f.write_str("it is not a standby (not in recovery)"),
        }
    }
}

/// The primary's current WAL position.
const PRIMARY_POSITION: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint";
/// Whether the server is a standby, and the WAL position it replayed.
const REPLAY_POSITION: &str = "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint";

impl Replica {
    /// Builds the pool without connecting.
    pub(super) fn open(url: &str, pool_size: usize) -> Result<Replica> {
        let (mut config, location) = connection_config(url, "DATABASE_READ_URL")?;
        if config.get_connect_timeout().is_none_or(|t| *t > CONNECT_TIMEOUT) {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let timeouts = PoolTimeouts { wait: POOL_WAIT, create: CONNECT_TIMEOUT, recycle: CONNECT_TIMEOUT };
        let pool = build_pool(config, pool_size, timeouts, "the replica's pool")?;
        Ok(Replica { pool, location, written: AtomicI64::new(0), state: Mutex::new(State::default()) })
    }

    /// After this process committed a write on the primary: reads must see it from now on. The
    /// primary's position read after the commit returned is at or past the commit record. When it
    /// cannot be read, the replica is skipped for a while rather than risk an old answer.
    pub(super) async fn note_write(&self, primary: &Pool) {
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, primary_position(primary)).await {
            Ok(Ok(position)) => {
                self.written.fetch_max(position, Ordering::AcqRel);
                self.observe_primary(position);
            }
            Ok(Err(fail)) => {
                self.skip(Problem::Down(format!("the primary's position after a write: {}", describe(&fail))))
            }
            Err(_) => self.skip(Problem::Down("the primary's position after a write was not read in time".into())),
        }
    }

    /// A connection to the replica that has replayed what the read must see, or `None`: read from the
    /// primary then.
    pub(super) async fn connection(&self, primary: &Pool, fresh: Fresh) -> Option<Object> {
        if self.skipped() {
            return None;
        }
        let target = match fresh {
            Fresh::OwnWrites => {
                if self.probe_due()
                    && let Ok(Ok(position)) = tokio::time::timeout(CONNECT_TIMEOUT, primary_position(primary)).await
                {
                    self.observe_primary(position);
                }
                self.written.load(Ordering::Acquire)
            }
            Fresh::Primary => match tokio::time::timeout(CONNECT_TIMEOUT, primary_position(primary)).await {
                Ok(Ok(position)) => {
                    self.observe_primary(position);
                    position
                }
                _ => return None,
            },
        };
        let client = self.connect().await?;
        let deadline = Instant::now() + CATCH_UP_WAIT;
        loop {
            let replayed = self.replayed(&client).await?;
            if replayed >= target {
                self.answers();
                return Some(client);
            }
            if Instant::now() >= deadline {
                tracing::debug!(replica = %self.location, "the replica has not replayed this read's position yet: reading from the primary");
                return None;
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }

    /// A read on the replica failed: a connection failure skips it; any other failure (a conflict with
    /// recovery, say) only sends this one read to the primary.
    pub(super) fn failed(&self, fail: &Fail) {
        let connection = match fail {
            Fail::Pg(e) => is_connection_error(e) || e.as_db_error().is_some_and(|db| is_unavailable(db.code())),
            Fail::Pool(_) => true,
            Fail::Store(_) => false,
        };
        if connection {
            self.skip(Problem::Down(describe(fail)));
        } else {
            tracing::debug!(replica = %self.location, "a read failed on the replica, reading from the primary: {}", describe(fail));
        }
    }

    pub(super) fn timed_out(&self) {
        self.skip(Problem::Down(format!("a read took longer than {} s", READ_TIMEOUT.as_secs())));
    }

    /// Checks the replica now, whatever the back-off (for `/health` and `doctor`); one that answers
    /// and keeps up is used again at once.
    pub(super) async fn status(&self, primary: &Pool) -> ReplicaStatus {
        if let Ok(Ok(position)) = tokio::time::timeout(CONNECT_TIMEOUT, primary_position(primary)).await {
            self.observe_primary(position);
        }
        let state = match self.connect_now().await {
            Err(problem) => Err(problem),
            // Every connection is busy reading: it answers; how far behind it is stays unknown.
            Ok(None) => self.lock().problem.clone().map_or(Ok(None), Err),
            Ok(Some(client)) => match self.replay_position(&client).await {
                Err(problem) => Err(problem),
                Ok(replayed) => match self.lag(replayed) {
                    Some(lag) if lag > MAX_LAG => Err(Problem::Lagging(lag)),
                    lag => Ok(Some(lag.unwrap_or_default())),
                },
            },
        };
        let location = self.location.clone();
        match state {
            Ok(lag) => {
                self.answers();
                ReplicaStatus { location, state: ReplicaState::InUse, lag, detail: None }
            }
            Err(problem) => {
                let detail = Some(problem.to_string());
                let (state, lag) = match &problem {
                    Problem::Down(_) => (ReplicaState::Down, None),
                    Problem::Lagging(lag) => (ReplicaState::Lagging, Some(*lag)),
                    Problem::NotStandby => (ReplicaState::NotStandby, None),
                };
                self.skip(problem);
                ReplicaStatus { location, state, lag, detail }
            }
        }
    }

    /// A pooled connection; a replica that cannot give one is skipped (all in use is no fault: `None`).
    async fn connect(&self) -> Option<Object> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get()).await {
            Ok(Ok(client)) => Some(client),
            Ok(Err(PoolError::Timeout(TimeoutType::Wait))) => None,
            Ok(Err(e)) => {
                self.skip(Problem::Down(e.to_string()));
                None
            }
            Err(_) => {
                self.skip(Problem::Down(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())));
                None
            }
        }
    }

    async fn connect_now(&self) -> std::result::Result<Option<Object>, Problem> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get()).await {
            Ok(Ok(client)) => Ok(Some(client)),
            Ok(Err(PoolError::Timeout(TimeoutType::Wait))) => Ok(None),
            Ok(Err(e)) => Err(Problem::Down(e.to_string())),
            Err(_) => Err(Problem::Down(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))),
        }
    }

    /// The position the replica replayed, if it may be read from; otherwise it is skipped.
    async fn replayed(&self, client: &Object) -> Option<i64> {
        let outcome = self.replay_position(client).await.and_then(|replayed| match self.lag(replayed) {
            Some(lag) if lag > MAX_LAG => Err(Problem::Lagging(lag)),
            _ => Ok(replayed),
        });
        match outcome {
            Ok(replayed) => Some(replayed),
            Err(problem) => {
                self.skip(problem);
                None
            }
        }
    }

    async fn replay_position(&self, client: &Object) -> std::result::Result<i64, Problem> {
        let row = match tokio::time::timeout(CONNECT_TIMEOUT, async {
            let statement = client.prepare_cached(REPLAY_POSITION).await?;
            client.query_one(&statement, &[]).await
        })
        .await
        {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => return Err(Problem::Down(chain(&e))),
            Err(_) => return Err(Problem::Down(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
        };
        let in_recovery: bool = row.try_get(0).map_err(|e| Problem::Down(chain(&e)))?;
        let replayed: Option<i64> = row.try_get(1).map_err(|e| Problem::Down(chain(&e)))?;
        match replayed {
            Some(replayed) if in_recovery => Ok(replayed),
            _ => Err(Problem::NotStandby),
        }
    }

    /// How long the replica has been behind a position of the primary it has not replayed (`None`
    /// when it replayed every position seen).
    fn lag(&self, replayed: i64) -> Option<Duration> {
        let mut state = self.lock();
        match state.behind_since {
            Some((position, _)) if replayed >= position => {
                state.behind_since = None;
                None
            }
            Some((_, since)) => Some(since.elapsed()),
            None => None,
        }
    }

    /// The primary was at `position` now: the replica is behind it until it replays it.
    fn observe_primary(&self, position: i64) {
        let mut state = self.lock();
        state.last_probe = Some(Instant::now());
        if state.behind_since.is_none() {
            state.behind_since = Some((position, Instant::now()));
        }
    }

    fn probe_due(&self) -> bool {
        self.lock().last_probe.is_none_or(|at| at.elapsed() >= PROBE_EVERY)
    }

    fn skipped(&self) -> bool {
        self.lock().skipped_until.is_some_and(|until| Instant::now() < until)
    }

    /// Skips the replica for [`BACKOFF`]; warns once, when it stops being used.
    fn skip(&self, problem: Problem) {
        let mut state = self.lock();
        state.skipped_until = Some(Instant::now() + BACKOFF);
        if state.problem.is_none() {
            tracing::warn!(
                replica = %self.location,
                "the read replica is skipped, reads go to the primary (tried again every {} s): {problem}",
                BACKOFF.as_secs()
            );
        }
        state.problem = Some(problem);
    }

    /// The replica answered and keeps up: reads go to it (again).
    fn answers(&self) {
        let mut state = self.lock();
        state.skipped_until = None;
        if state.problem.take().is_some() {
            tracing::info!(replica = %self.location, "the read replica answers again: reads go to it");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain values, consistent after any single assignment: a panic while
        // holding the lock cannot leave it half-written.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn primary_position(primary: &Pool) -> std::result::Result<i64, Fail> {
    let client = primary.get().await?;
    let statement = client.prepare_cached(PRIMARY_POSITION).await?;
    Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
}

fn describe(fail: &Fail) -> String {
    match fail {
        Fail::Pg(e) => chain(e),
        Fail::Pool(e) => e.to_string(),
        Fail::Store(e) => e.to_string(),
    }
}
