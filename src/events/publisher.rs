//! Publishes events to Redis Streams: `{prefix}:notifications`, `{prefix}:user:{assignee}` (and the
//! previous assignee on reassignment), `{prefix}:repo:{repository}`, trimmed with approximate MAXLEN,
//! on one Redis or a Redis Cluster (where the streams of one event live in different slots).

use std::time::Duration;

use async_trait::async_trait;
use redis::streams::StreamMaxlen;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;

use crate::domain::Event;
use crate::error::{Error, Result};
use crate::events::bus::{Bus, BusConnection, ClusterReport, Group, REPLICA_WAIT_MS};
use crate::events::entry;
use crate::store::{EventSink, redact_url};

pub struct RedisPublisher {
    bus: Bus,
    url: String,
    /// The cluster's seed nodes as given (for the health report); empty on a single server.
    seeds: Vec<String>,
    prefix: String,
    maxlen: usize,
    /// Connected on first use; reset after a failure so the next call reconnects.
    connection: Mutex<Option<BusConnection>>,
    /// The value of the `{prefix}:epoch` key we last saw. Redis keeps nothing on disk: when the key
    /// is gone or different, Redis restarted empty and the retained log must be published again.
    epoch: std::sync::Mutex<Option<String>>,
    /// Set when a restart of Redis was detected; taken by the relay.
    wiped: AtomicBool,
}

impl RedisPublisher {
    /// Checks the URL; connects lazily.
    pub fn new(url: &str, prefix: &str, maxlen: usize) -> Result<Self> {
        Ok(Self::with_bus(Bus::single(url)?, redact_url(url), Vec::new(), prefix, maxlen))
    }

    /// A publisher to a Redis Cluster, from its seed nodes; connects lazily.
    pub fn cluster(urls: &[String], prefix: &str, maxlen: usize) -> Result<Self> {
        let bus = Bus::cluster(urls)?;
        let shown = format!("the cluster of {}", urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(", "));
        Ok(Self::with_bus(bus, shown, urls.to_vec(), prefix, maxlen))
    }

    fn with_bus(bus: Bus, url: String, seeds: Vec<String>, prefix: &str, maxlen: usize) -> Self {
        Self {
            bus,
            url,
            seeds,
            prefix: prefix.to_owned(),
            maxlen,
            connection: Mutex::new(None),
            epoch: std::sync::Mutex::new(None),
            wiped: AtomicBool::new(false),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this publishes to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.bus.is_cluster()
    }

    /// The Redis URL without its password.
    pub fn location(&self) -> &str {
        &self.url
    }

    /// The stream every event goes to.
    pub fn notifications_stream(&self) -> String {
        format!("{}:notifications", self.prefix)
    }

    pub fn user_stream(&self, user_id: uuid::Uuid) -> String {
        format!("{}:user:{user_id}", self.prefix)
    }

    pub fn repo_stream(&self, repository: &str) -> String {
        format!("{}:repo:{repository}", self.prefix)
    }

    /// The streams an event belongs to.
    pub fn streams_for(&self, event: &Event) -> Vec<String> {
        let mut streams = vec![self.notifications_stream()];
        if let Some(id) = event.assignee_id {
            streams.push(self.user_stream(id));
        }
        if let Some(previous) = event.previous_assignee_id.filter(|p| Some(*p) != event.assignee_id) {
            streams.push(self.user_stream(previous));
        }
        if let Some(repo) = &event.repository {
            streams.push(self.repo_stream(repo));
        }
        streams
    }

    fn epoch_key(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    pub fn maxlen(&self) -> usize {
        self.maxlen
    }

    /// Remembers a wipe whose republishing failed, so the next round tries again.
    pub fn mark_wiped(&self) {
        self.wiped.store(true, Ordering::Release);
    }

    /// True once after Redis was found to have restarted empty (its streams lost what they held).
    pub fn take_wiped(&self) -> bool {
        self.wiped.swap(false, Ordering::AcqRel)
    }

    /// Compares the epoch Redis holds with the one we knew; a missing or different one means Redis
    /// lost its data since we last published. Sets a fresh epoch when there is none.
    async fn check_epoch(&self, conn: &mut BusConnection, seen: Option<String>) -> redis::RedisResult<()> {
        let current = match seen {
            Some(value) => value,
            None => {
                let fresh = uuid::Uuid::new_v4().to_string();
                let (value,): (String,) = redis::pipe()
                    .cmd("SET")
                    .arg(self.epoch_key())
                    .arg(&fresh)
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(self.epoch_key())
                    .query_async(conn)
                    .await?;
                value
            }
        };
        let mut known = self.epoch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.as_deref().is_some_and(|k| k != current) {
            tracing::warn!("Redis lost its streams (restarted without persistence): publishing the retained log again");
            self.wiped.store(true, Ordering::Release);
        }
        *known = Some(current);
        Ok(())
    }

    /// Reads the epoch now, so a restart of Redis is noticed before new events are published after it
    /// (then the retained log goes out first, and the streams stay in `seq` order).
    pub async fn detect_restart(&self) -> Result<()> {
        let mut conn = self.connection().await?;
        let epoch: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg(self.epoch_key()).query_async(&mut conn).await;
        let result = match epoch {
            Ok(epoch) => self.check_epoch(&mut conn, epoch).await,
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            self.forget_connection().await;
            return Err(self.unavailable(err));
        }
        Ok(())
    }

    /// The error for a failed Redis command, naming the server without its password.
    pub fn unavailable(&self, err: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!("Redis at {} is unavailable: {err}", self.url))
    }

    /// A connection of the shared manager (cheap to clone: it multiplexes).
    pub async fn connection(&self) -> Result<BusConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self.bus.shared().await.map_err(|e| self.unavailable(e))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// A dedicated connection for `XREAD BLOCK block` (which must not share a multiplexed connection
    /// with other commands, nor time out after redis' default 500 ms).
    pub async fn blocking_connection(&self, block: Duration) -> Result<BusConnection> {
        self.bus.blocking(block).await.map_err(|e| self.unavailable(e))
    }

    /// The cluster's nodes, how many answer, and its `cluster_state`; `None` on a single server.
    pub async fn cluster_report(&self) -> Option<ClusterReport> {
        self.bus.cluster_report(&self.seeds).await
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    /// PING, for `/health` and `doctor`.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.connection().await?;
        let result: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        result.map(|_| ()).map_err(|e| self.unavailable(e))
    }
}

#[async_trait]
impl EventSink for RedisPublisher {
    async fn publish(&self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let conn = self.connection().await?;
        // One pipeline per group: the whole batch on one server; one per hash slot on a cluster (a
        // pipeline may not cross slots). The order of each stream's entries is kept within its group.
        let mut batches: HashMap<Group, Batch> = HashMap::new();
        let epoch_key = self.epoch_key();
        batches.entry(self.bus.group_of(&epoch_key)).or_default().get_epoch(&epoch_key);
        for event in events {
            let fields = entry::fields(event);
            for stream in self.streams_for(event) {
                let batch = batches.entry(self.bus.group_of(&stream)).or_default();
                batch.pipe.xadd_maxlen(&stream, StreamMaxlen::Approx(self.maxlen), "*", &fields);
                batch.targets.push(Some((event.seq, stream)));
            }
        }
        let replicated = self.bus.is_cluster();
        let sends = batches.into_values().map(|batch| {
            let mut conn = conn.clone();
            async move { batch.send(&mut conn, replicated).await }
        });
        let mut epoch = None;
        let mut failure = None;
        for outcome in futures::future::join_all(sends).await {
            match outcome {
                Ok(Some(seen)) => epoch = Some(seen),
                Ok(None) => {}
                Err(err) => failure = failure.or(Some(err)),
            }
        }
        let result = match failure {
            Some(err) => Err(err),
            None => {
                let mut conn = conn.clone();
                self.check_epoch(&mut conn, epoch.flatten()).await
            }
        };
        if let Err(err) = result {
            if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() {
                self.forget_connection().await;
            }
            return Err(self.unavailable(err));
        }
        Ok(())
    }
}

/// The commands of one group of a publish: `None` marks the epoch read, `Some((seq, stream))` an entry.
#[derive(Default)]
struct Batch {
    pipe: redis::Pipeline,
    targets: Vec<Option<(i64, String)>>,
}

impl Batch {
    fn get_epoch(&mut self, key: &str) {
        self.pipe.cmd("GET").arg(key);
        self.targets.push(None);
    }

    /// Sends the group; returns the epoch when the group read it. With `replicated` (a cluster) the
    /// group also waits for a replica to hold its entries: a master killed right after answering must
    /// not take entries with it that the relay counts as published. A master without replicas (its
    /// replica took over and the old master is gone) cannot do better, and is taken at its word.
    async fn send(mut self, conn: &mut BusConnection, replicated: bool) -> redis::RedisResult<Option<Option<String>>> {
        // Each command answers for itself: one stream refusing its entry must not hide that the
        // others took theirs (retrying the batch would add those again).
        self.pipe.ignore_errors();
        if replicated {
            self.pipe.cmd("WAIT").arg(1).arg(REPLICA_WAIT_MS);
            self.pipe.cmd("ROLE");
        }
        let mut replies: Vec<redis::RedisResult<redis::Value>> = self.pipe.query_async(conn).await?;
        if replicated {
            let role = replies.pop();
            let acknowledged = replies.pop();
            check_replicated(acknowledged, role)?;
        }
        set_aside_refusals(replies, &self.targets)
    }
}

/// Fails when the master has replicas and none confirmed the entries in time (the batch is retried).
fn check_replicated(
    acknowledged: Option<redis::RedisResult<redis::Value>>,
    role: Option<redis::RedisResult<redis::Value>>,
) -> redis::RedisResult<()> {
    let acknowledged: i64 = match acknowledged {
        Some(reply) => redis::from_redis_value(reply?)?,
        None => 0,
    };
    if acknowledged >= 1 {
        return Ok(());
    }
    let replicas = match role {
        Some(Ok(redis::Value::Array(parts))) => match parts.get(2) {
            Some(redis::Value::Array(replicas)) => replicas.len(),
            _ => 0,
        },
        Some(Err(err)) => return Err(err),
        _ => 0,
    };
    if replicas == 0 {
        return Ok(());
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Io,
        "no replica confirmed the entries in time",
        format!("{replicas} replica(s) connected, none within {REPLICA_WAIT_MS} ms"),
    )))
}

/// Server errors that say Redis as a whole cannot take writes now (not that one key is wrong): the
/// batch is retried later rather than its entries set aside.
const UNAVAILABLE_CODES: &[&str] = &[
    "OOM",
    "READONLY",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "NOREPLICAS",
    "NOAUTH",
    "MOVED",
    "ASK",
];

/// Reads the replies of a publish pipeline, one per target: the epoch's (when the group read it), then
/// one per `(seq, stream)` entry.
/// A stream that refuses an entry for a reason of its own (a key of another type: WRONGTYPE) is set
/// aside for that event, logged and counted, and the rest of the batch counts as published; an error
/// that says Redis cannot write at all fails the batch (it is retried).
fn set_aside_refusals(
    replies: Vec<redis::RedisResult<redis::Value>>,
    targets: &[Option<(i64, String)>],
) -> redis::RedisResult<Option<Option<String>>> {
    let mut epoch = None;
    let mut refused = Vec::new();
    for (reply, target) in replies.into_iter().zip(targets) {
        let Some((seq, stream)) = target else {
            epoch = Some(redis::from_redis_value(reply?)?);
            continue;
        };
        if let Err(err) = reply {
            if err.code().is_none_or(|code| UNAVAILABLE_CODES.contains(&code)) {
                return Err(err);
            }
            refused.push((seq, stream, err));
        }
    }
    for (seq, stream, err) in refused {
        tracing::warn!("event {seq} was not added to the Redis stream {stream} (it went to its other streams): {err}");
        super::count_set_aside(1);
    }
    Ok(epoch)
}
