//! The live hub of one process: follows Redis (`XREAD BLOCK` on the notifications stream, one reader
//! for all clients) or, without Redis, the store's event log, and broadcasts events in `seq` order,
//! each once. A gap in what Redis delivers is filled from the store, which holds every committed event.
//! On a Redis Cluster the read follows the notifications stream's slot to whichever node holds it; after
//! a failover it reads on from the last id it saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;

use crate::domain::Event;
use crate::events::bus::BusConnection;
use crate::events::entry;
use crate::events::publisher::RedisPublisher;
use crate::store::Store;

/// An event as the hub hands it out: the event, and its JSON (`wire::EventJson`, what SSE sends in
/// `data:`) rendered once, so a thousand subscribers copy bytes instead of serialising the same event
/// a thousand times.
#[derive(Debug)]
pub struct LiveEvent {
    pub event: Event,
    /// `None` only if the event could not be serialised (it has no map with non-string keys, so never).
    pub json: Option<String>,
}

impl LiveEvent {
    pub fn new(event: Event) -> Self {
        let json = serde_json::to_string(&crate::wire::EventJson::from(&event)).ok();
        Self { event, json }
    }
}

/// Events buffered for the slowest subscriber; one that falls further behind is dropped (it resumes
/// from the store with `Last-Event-ID`).
const CHANNEL_CAPACITY: usize = 4096;
/// How long one `XREAD` waits for new entries (its connection waits longer for the answer).
const BLOCK: Duration = Duration::from_secs(5);
/// Events read from the store per query when catching up.
const CATCH_UP_BATCH: u32 = 1000;

pub struct Hub {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    /// The highest seq broadcast so far.
    last_seq: AtomicI64,
    /// Serialises delivery so events go out in order, each once.
    deliver_lock: Mutex<()>,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
    subscribers: AtomicUsize,
    /// True while the Redis reader is delivering: the store is then only checked once a second.
    redis_live: AtomicBool,
}

impl Hub {
    /// Starts following the feed. Returns at once; the followers run until `shutdown`.
    pub fn start(
        store: Arc<dyn Store>,
        publisher: Option<Arc<RedisPublisher>>,
        shutdown: CancellationToken,
    ) -> Arc<Hub> {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        let hub = Arc::new(Hub {
            sender,
            last_seq: AtomicI64::new(-1),
            deliver_lock: Mutex::new(()),
            store,
            shutdown,
            subscribers: AtomicUsize::new(0),
            redis_live: AtomicBool::new(false),
        });
        tokio::spawn(hub.clone().follow_store());
        if let Some(publisher) = publisher {
            tokio::spawn(hub.clone().follow_redis(publisher));
        }
        hub
    }

    /// Live events with a seq above [`Hub::last_seq`] at the time of the call, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// Subscribes and returns the seq the subscription starts after, atomically: every event with a
    /// higher seq will be received, every event up to it was broadcast before.
    pub async fn subscribe_from(&self) -> (broadcast::Receiver<Arc<LiveEvent>>, i64) {
        let _order = self.deliver_lock.lock().await;
        (self.sender.subscribe(), self.last_seq())
    }

    /// The highest seq broadcast so far (`-1` before the hub knows where the log stands).
    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Cancelled when the process shuts down: streams end.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Connected live subscribers (for `/metrics`).
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    pub(crate) fn subscriber_joined(&self) {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn subscriber_left(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Waits until the hub knows where the log stands (so "only new events" has a meaning).
    pub async fn ready(&self) {
        while self.last_seq() < 0 && !self.shutdown.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Broadcasts `candidate` if it is the next event; otherwise first fills the gap from the store.
    async fn deliver(&self, candidate: Option<Event>) -> crate::error::Result<()> {
        let _order = self.deliver_lock.lock().await;
        let mut last = self.last_seq();
        if last < 0 {
            return Ok(()); // not started yet: the start-up position covers this event
        }
        if let Some(event) = &candidate
            && event.seq <= last
        {
            return Ok(()); // a duplicate (at-least-once publishing)
        }
        let direct = candidate.as_ref().is_some_and(|e| e.seq == last + 1);
        if !direct {
            loop {
                let batch = self.store.events_after(last, CATCH_UP_BATCH).await?;
                let full = batch.len() == CATCH_UP_BATCH as usize;
                for event in batch {
                    last = event.seq;
                    self.broadcast(event);
                }
                if !full {
                    break;
                }
            }
        }
        if let Some(event) = candidate
            && event.seq > last
        {
            self.broadcast(event);
        }
        Ok(())
    }

    fn broadcast(&self, event: Event) {
        self.last_seq.store(event.seq, Ordering::Release);
        // Nobody listening right now: nothing to render or send.
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Arc::new(LiveEvent::new(event)));
        }
    }

    /// Learns where the log stands, then catches up whenever the store says something was committed.
    /// With Redis this is the safety net (events whose publishing is late); without, it is the feed.
    async fn follow_store(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.store.event_bounds().await {
                Ok(bounds) => {
                    self.last_seq.store(bounds.latest, Ordering::Release);
                    break;
                }
                Err(err) => {
                    tracing::debug!("live feed waiting for the store: {err}");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(5)),
                        _ = self.shutdown.cancelled() => return,
                    }
                }
            }
        }
        let mut commits = self.store.watch_commits();
        let mut reported = false;
        loop {
            let redis_live = self.redis_live.load(Ordering::Relaxed);
            tokio::select! {
                changed = commits.changed(), if !redis_live => {
                    if changed.is_err() {
                        // The watcher went away: fall back to polling.
                        commits = self.store.watch_commits();
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.shutdown.cancelled() => return,
            }
            match self.deliver(None).await {
                Ok(()) => reported = false,
                Err(err) if !reported => {
                    tracing::warn!("live feed cannot read the event log: {err}");
                    reported = true;
                }
                Err(_) => {}
            }
        }
    }

    /// One `XREAD BLOCK` loop on the notifications stream for the whole process, tracking the last id.
    /// Every failure (no connection, a command refused, a read cut off) waits a growing pause before
    /// the next attempt: a Redis that accepts connections but refuses commands (a missing password,
    /// out of memory) must not be hammered in a hot loop.
    async fn follow_redis(self: Arc<Self>, publisher: Arc<RedisPublisher>) {
        let stream = publisher.notifications_stream();
        let mut last_id: Option<String> = None;
        let mut reported = false;
        let mut backoff = Duration::from_millis(200);
        while !self.shutdown.is_cancelled() {
            if let Err(err) = self.read_redis(&publisher, &stream, &mut last_id, &mut reported, &mut backoff).await {
                self.redis_live.store(false, Ordering::Relaxed);
                if !reported {
                    tracing::warn!("live feed falls back to the store's event log: {err}");
                    reported = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(5)),
                    _ = self.shutdown.cancelled() => return,
                }
            }
        }
    }

    /// Connects, resolves where to read from, and delivers what `XREAD BLOCK` returns until a command
    /// fails (the error) or the process shuts down (`Ok`).
    async fn read_redis(
        &self,
        publisher: &RedisPublisher,
        stream: &str,
        last_id: &mut Option<String>,
        reported: &mut bool,
        backoff: &mut Duration,
    ) -> crate::error::Result<()> {
        let unavailable = |err: redis::RedisError| publisher.unavailable(err);
        let mut conn = publisher.blocking_connection(BLOCK).await?;
        // Resolve the starting point once per connection (never loop on `$`): the last entry now,
        // or where we were (Redis may have restarted empty: then start from the beginning).
        let start = match last_id.as_ref() {
            Some(id) => id.clone(),
            None => last_entry_id(&mut conn, stream).await.map_err(unavailable)?,
        };
        *last_id = Some(start);
        loop {
            let options = StreamReadOptions::default().block(BLOCK.as_millis() as usize).count(500);
            let id = last_id.clone().unwrap_or_else(|| "0-0".to_owned());
            let keys = [stream];
            let ids = [&id];
            let read = tokio::select! {
                read = redis::AsyncCommands::xread_options::<_, _, Option<StreamReadReply>>(&mut conn, &keys, &ids, &options) => read,
                _ = self.shutdown.cancelled() => return Ok(()),
            };
            match read {
                Ok(reply) => {
                    self.redis_live.store(true, Ordering::Relaxed);
                    if *reported {
                        tracing::info!("live feed follows Redis again");
                        *reported = false;
                    }
                    *backoff = Duration::from_millis(200);
                    let entries = reply.map(|r| r.keys).unwrap_or_default();
                    for key in entries {
                        for read in key.ids {
                            *last_id = Some(read.id.clone());
                            if let Some(event) = entry::parse(&read.map)
                                && let Err(err) = self.deliver(Some(event)).await
                            {
                                tracing::debug!("live feed could not fill a gap from the store: {err}");
                            }
                        }
                    }
                }
                Err(err) => {
                    self.redis_live.store(false, Ordering::Relaxed);
                    // If Redis restarted, its streams are empty and ids start again: re-resolve.
                    if let Ok(mut fresh) = publisher.blocking_connection(BLOCK).await
                        && let Ok(newest) = last_entry_id(&mut fresh, stream).await
                        && stream_id_less(&newest, last_id.as_deref().unwrap_or("0-0"))
                    {
                        *last_id = Some("0-0".to_owned());
                    }
                    return Err(unavailable(err));
                }
            }
        }
    }
}

/// The id of the newest entry of a stream, or `0-0` when it is empty.
async fn last_entry_id(conn: &mut BusConnection, stream: &str) -> redis::RedisResult<String> {
    let reply: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrevrange_count(conn, stream, "+", "-", 1).await?;
    Ok(reply.ids.first().map(|e| e.id.clone()).unwrap_or_else(|| "0-0".to_owned()))
}

fn stream_id_less(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        let (ms, n) = s.split_once('-').unwrap_or((s, "0"));
        (ms.parse::<u64>().unwrap_or(0), n.parse::<u64>().unwrap_or(0))
    };
    parse(a) < parse(b)
}
