//! One subscriber's feed: replay what it missed from the store's event log (after `Last-Event-ID`),
//! then the hub's live events, filtered to the streams it asked for — no gap, no duplicate. A
//! subscriber that stops taking events is dropped after its patience, so it never holds anyone up.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc::error::SendTimeoutError;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::domain::Event;
use crate::events::hub::{Hub, LiveEvent};
use crate::service::TaskService;

/// Events replayed per store query.
const REPLAY_BATCH: u32 = 500;
/// How long subscribing waits for the store to say where the log stands when the hub does not know yet
/// (the store may be down: then the feed starts with a resync once the hub is ready).
const BOUNDS_WAIT: Duration = Duration::from_secs(2);
/// Items buffered per subscriber between the feed task and the consumer (the response writer).
const SUBSCRIBER_BUFFER: usize = 64;

/// Which streams a subscriber follows: none given means every event; otherwise the union of the
/// assignee's stream and the repositories' streams (as `tasks:user:{id}` and `tasks:repo:{name}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub assignee_id: Option<Uuid>,
    pub repositories: Vec<String>,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        if self.assignee_id.is_none() && self.repositories.is_empty() {
            return true;
        }
        let assignee =
            self.assignee_id.is_some_and(|id| event.assignee_id == Some(id) || event.previous_assignee_id == Some(id));
        let repository = event.repository.as_ref().is_some_and(|r| self.repositories.iter().any(|f| f == r));
        assignee || repository
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Event(Arc<LiveEvent>),
    /// The position asked for is no longer in the log (or never was): reload, then follow from here.
    Resync {
        latest_seq: i64,
    },
}

/// Where a subscriber's feed begins. It is fixed when the subscriber connects, before its response
/// is sent, so every change committed after the client saw the response is in its feed (a client
/// that opens the stream and then makes a change must see that change).
enum Start {
    /// Already subscribed to the hub: live events after `last`.
    Live { live: broadcast::Receiver<Arc<LiveEvent>>, last: i64 },
    /// Replay the log after this seq, then go live (`Last-Event-ID`, or the hub not ready yet).
    After(i64),
    /// Neither the hub nor the store could say where "now" is: resync once the hub is ready.
    Unknown,
}

impl Start {
    async fn resolve(hub: &Hub, service: &TaskService, last_event_id: Option<i64>) -> Start {
        match last_event_id {
            Some(requested) => Start::After(requested),
            None if hub.last_seq() >= 0 => {
                let (live, last) = hub.subscribe_from().await;
                Start::Live { live, last }
            }
            // The hub does not know yet (the process has just started, or the database was down since
            // it started): ask the store (bounded: it may be down), and replay what is committed until
            // the hub is ready.
            None => match tokio::time::timeout(BOUNDS_WAIT, service.event_bounds()).await {
                Ok(Ok(bounds)) => Start::After(bounds.latest),
                _ => Start::Unknown,
            },
        }
    }
}

/// The feed of one subscriber, starting now (or after `last_event_id`). The stream ends when the
/// process shuts down, when the subscriber reads too slowly to keep up with the hub, or when it has
/// not taken an event for `patience` (`None`: wait as long as it takes). It reconnects with
/// `Last-Event-ID` and loses nothing.
pub async fn subscribe(
    hub: &Arc<Hub>,
    service: &TaskService,
    filter: EventFilter,
    last_event_id: Option<i64>,
    patience: Option<Duration>,
) -> impl Stream<Item = FeedItem> + Send + 'static {
    let start = Start::resolve(hub, service, last_event_id).await;
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    let hub = hub.clone();
    let service = service.clone();
    tokio::spawn(async move {
        hub.subscriber_joined();
        let shutdown = hub.shutdown().clone();
        let out = Outlet { tx: &tx, patience };
        tokio::select! {
            _ = run(&hub, &service, &filter, start, &out) => {}
            _ = shutdown.cancelled() => {}
            _ = tx.closed() => {}
        }
        hub.subscriber_left();
    });
    ReceiverStream::new(rx)
}

/// Where a subscriber's items go, and how long a full buffer may stay full.
struct Outlet<'a> {
    tx: &'a mpsc::Sender<FeedItem>,
    patience: Option<Duration>,
}

impl Outlet<'_> {
    /// False when the subscriber is gone or has stopped reading (then the feed ends).
    async fn send(&self, item: FeedItem) -> bool {
        let Some(patience) = self.patience else { return self.tx.send(item).await.is_ok() };
        match self.tx.send_timeout(item, patience).await {
            Ok(()) => true,
            Err(SendTimeoutError::Closed(_)) => false,
            Err(SendTimeoutError::Timeout(_)) => {
                tracing::info!("dropped an event subscriber that stopped reading for {} s", patience.as_secs());
                false
            }
        }
    }
}

async fn run(hub: &Arc<Hub>, service: &TaskService, filter: &EventFilter, start: Start, tx: &Outlet<'_>) {
    let (mut live, mut last) = match start {
        Start::Live { live, last } => (live, last),
        Start::After(requested) => {
            hub.ready().await;
            // Subscribe before replaying, so an event committed during the replay is not missed.
            let (live, last) = hub.subscribe_from().await;
            match replay(service, filter, requested, tx).await {
                Some(position) => (live, last.max(position)),
                None => return,
            }
        }
        Start::Unknown => {
            hub.ready().await;
            let (live, last) = hub.subscribe_from().await;
            if !tx.send(FeedItem::Resync { latest_seq: last }).await {
                return;
            }
            (live, last)
        }
    };
    loop {
        match live.recv().await {
            Ok(live) => {
                if live.event.seq <= last {
                    continue;
                }
                last = live.event.seq;
                if filter.matches(&live.event) && !tx.send(FeedItem::Event(live)).await {
                    return;
                }
            }
            // Too slow: end the stream rather than stall the others or skip events silently.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends the events after `requested` that the filter selects; returns the seq reached, or `None`
/// when the subscriber went away or the log cannot be read.
async fn replay(service: &TaskService, filter: &EventFilter, requested: i64, tx: &Outlet<'_>) -> Option<i64> {
    let bounds = match service.event_bounds().await {
        Ok(bounds) => bounds,
        Err(err) => {
            tracing::warn!("cannot resume a feed: {err}");
            return None;
        }
    };
    // Below the watermark some events may be gone (the oldest kept says nothing of holes above it).
    let pruned =
        requested < bounds.pruned_through || bounds.oldest.is_some_and(|oldest| requested.saturating_add(1) < oldest);
    let from_elsewhere = requested > bounds.latest || requested < 0;
    if pruned || from_elsewhere {
        if !tx.send(FeedItem::Resync { latest_seq: bounds.latest }).await {
            return None;
        }
        return Some(bounds.latest);
    }
    let mut last = requested;
    loop {
        let batch = match service.events_after(last, REPLAY_BATCH).await {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!("cannot resume a feed: {err}");
                return None;
            }
        };
        let full = batch.len() == REPLAY_BATCH as usize;
        // A hole after `last` (or the end of the log) is either a seq never committed, or events pruned
        // since the bounds were read: then the watermark has passed `last`, and the client resyncs.
        if batch.first().is_none_or(|first| first.seq != last + 1) && pruned_past(service, last).await {
            let position = bounds.latest.max(last);
            return tx.send(FeedItem::Resync { latest_seq: position }).await.then_some(position);
        }
        for event in batch {
            last = event.seq;
            if filter.matches(&event) && !tx.send(FeedItem::Event(Arc::new(LiveEvent::new(event)))).await {
                return None;
            }
        }
        if !full {
            return Some(last);
        }
    }
}

/// Whether pruning has passed `last` (any event after it may be gone). A store that cannot answer
/// says no: the replay goes on with what it read.
async fn pruned_past(service: &TaskService, last: i64) -> bool {
    service.event_bounds().await.is_ok_and(|bounds| bounds.pruned_through > last)
}
