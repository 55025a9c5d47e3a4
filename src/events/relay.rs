//! The outbox relay: publishes committed, unpublished events to Redis after each commit, retries
//! while Redis is down (one warning per outage), and in `serve` also sweeps and prunes the log.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::publisher::RedisPublisher;
use crate::store::{EventSink, Store};

/// Events claimed per round trip.
const BATCH: u32 = 500;
/// Events pruned per statement, so pruning never holds long locks.
const PRUNE_BATCH: u32 = 5_000;

/// How a relay runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// A stdio process: publish at start and after each commit; retry only while something waits.
    AfterCommits,
    /// `serve`: also sweep every second for events other processes left behind, and prune the log.
    Sweeping,
}

/// Tracks an outage so it is reported once, not once per call.
#[derive(Default)]
struct Outage {
    down: bool,
}

impl Outage {
    fn failed(&mut self, err: &crate::error::Error) {
        if !self.down {
            tracing::warn!("events are kept in the outbox until publishing works again: {err}");
            self.down = true;
        }
    }

    fn recovered(&mut self) {
        if self.down {
            tracing::info!("publishing events again");
            self.down = false;
        }
    }
}

/// Publishes everything pending, in batches; if Redis turned out to have restarted empty, publishes
/// the retained log again so the streams hold every event. Returns how many were published, or the
/// error that stopped it.
pub async fn drain(store: &dyn Store, publisher: &RedisPublisher) -> crate::error::Result<usize> {
    publisher.detect_restart().await?;
    republish_if_wiped(store, publisher).await?;
    let mut total = 0;
    loop {
        let published = store.relay_pending(BATCH, publisher).await?;
        super::count_relayed(published);
        total += published;
        if published < BATCH as usize {
            break;
        }
    }
    republish_if_wiped(store, publisher).await?;
    Ok(total)
}

async fn republish_if_wiped(store: &dyn Store, publisher: &RedisPublisher) -> crate::error::Result<()> {
    if publisher.take_wiped()
        && let Err(err) = republish_retained(store, publisher).await
    {
        // Try again on the next round: the wipe must not be forgotten.
        publisher.mark_wiped();
        return Err(err);
    }
    Ok(())
}

/// Publishes the retained event log again (at most a stream's length of it), in order. Consumers
/// drop what they already had by `seq`.
async fn republish_retained(store: &dyn Store, publisher: &RedisPublisher) -> crate::error::Result<()> {
    let bounds = store.event_bounds().await?;
    let Some(oldest) = bounds.oldest else { return Ok(()) };
    let mut last = (oldest - 1).max(bounds.latest - publisher.maxlen() as i64);
    loop {
        let batch = store.events_after(last, BATCH).await?;
        let Some(tail) = batch.last() else { return Ok(()) };
        last = tail.seq;
        publisher.publish(&batch).await?;
        super::count_relayed(batch.len());
        if batch.len() < BATCH as usize {
            return Ok(());
        }
    }
}

/// Starts the relay over the store, the publisher, the commit signal and the retention. It stops when `shutdown` is cancelled, after a
/// last bounded attempt to publish what is pending.
pub fn spawn(
    store: Arc<dyn Store>,
    publisher: Arc<RedisPublisher>,
    signal: Arc<Notify>,
    retention: chrono::Duration,
    mode: RelayMode,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(run(store, publisher, signal, mode, retention, shutdown))
}

async fn run(
    store: Arc<dyn Store>,
    publisher: Arc<RedisPublisher>,
    signal: Arc<Notify>,
    mode: RelayMode,
    retention: chrono::Duration,
    shutdown: CancellationToken,
) {
    let mut outage = Outage::default();
    let mut backoff = Duration::from_millis(250);
    let mut pending = true; // at start, publish what earlier processes left behind
    let mut last_prune = tokio::time::Instant::now() - Duration::from_secs(3600);
    loop {
        if pending {
            match drain(store.as_ref(), &publisher).await {
                Ok(_) => {
                    outage.recovered();
                    pending = false;
                    backoff = Duration::from_millis(250);
                }
                Err(err) => {
                    outage.failed(&err);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if mode == RelayMode::Sweeping && last_prune.elapsed() >= Duration::from_secs(600) {
            last_prune = tokio::time::Instant::now();
            prune(store.as_ref(), retention).await;
        }
        let wait = match (pending, mode) {
            (true, _) => backoff,
            (false, RelayMode::Sweeping) => Duration::from_secs(1),
            (false, RelayMode::AfterCommits) => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = signal.notified() => pending = true,
            _ = tokio::time::sleep(wait) => pending = pending || mode == RelayMode::Sweeping,
            _ = shutdown.cancelled() => break,
        }
    }
    // One last bounded attempt, so a stdio process that exits right after a change still publishes it.
    match tokio::time::timeout(Duration::from_secs(2), drain(store.as_ref(), &publisher)).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::debug!("events left in the outbox at exit: {err}"),
        Err(_) => tracing::debug!("events left in the outbox at exit: timed out"),
    }
}

async fn prune(store: &dyn Store, retention: chrono::Duration) {
    let before = Utc::now() - retention;
    loop {
        match store.prune_events(before, false, PRUNE_BATCH).await {
            Ok(n) if n >= u64::from(PRUNE_BATCH) => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(deleted = n, "pruned old events");
                }
                return;
            }
            Err(err) => {
                tracing::debug!("pruning events failed: {err}");
                return;
            }
        }
    }
}

/// Without Redis nothing is ever published, so `serve` prunes the log by age alone.
pub fn spawn_pruner(store: Arc<dyn Store>, retention: chrono::Duration, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let before = Utc::now() - retention;
            loop {
                match store.prune_events(before, true, PRUNE_BATCH).await {
                    Ok(n) if n >= u64::from(PRUNE_BATCH) => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::debug!("pruning events failed: {err}");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(600)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    })
}
