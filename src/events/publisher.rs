//! Publishes events to Redis Streams: `{prefix}:notifications`, `{prefix}:user:{assignee}` (and the
//! previous assignee on reassignment), `{prefix}:repo:{repository}`, trimmed with approximate MAXLEN.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamMaxlen;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Mutex;

use crate::domain::Event;
use crate::error::{Error, Result};
use crate::events::entry;
use crate::store::{EventSink, redact_url};

pub struct RedisPublisher {
    client: redis::Client,
    url: String,
    prefix: String,
    maxlen: usize,
    /// Connected on first use; reset after a failure so the next call reconnects.
    connection: Mutex<Option<ConnectionManager>>,
    /// The value of the `{prefix}:epoch` key we last saw. Redis keeps nothing on disk: when the key
    /// is gone or different, Redis restarted empty and the retained log must be published again.
    epoch: std::sync::Mutex<Option<String>>,
    /// Set when a restart of Redis was detected; taken by the relay.
    wiped: AtomicBool,
}

impl RedisPublisher {
    /// Checks the URL; connects lazily.
    pub fn new(url: &str, prefix: &str, maxlen: usize) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| Error::invalid("REDIS_URL", format!("{} is not a Redis URL: {e}", redact_url(url))))?;
        Ok(Self {
            client,
            url: redact_url(url),
            prefix: prefix.to_owned(),
            maxlen,
            connection: Mutex::new(None),
            epoch: std::sync::Mutex::new(None),
            wiped: AtomicBool::new(false),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
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
    async fn check_epoch(&self, conn: &mut ConnectionManager, seen: Option<String>) -> redis::RedisResult<()> {
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
    pub async fn connection(&self) -> Result<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = self.client.get_connection_manager_with_config(config).await.map_err(|e| self.unavailable(e))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// A dedicated connection with no response timeout, for `XREAD BLOCK` (which must not share a
    /// multiplexed connection with other commands, nor time out after redis' default 500 ms).
    pub async fn blocking_connection(&self) -> Result<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(None);
        self.client.get_multiplexed_async_connection_with_config(&config).await.map_err(|e| self.unavailable(e))
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
        let mut conn = self.connection().await?;
        let mut pipe = redis::pipe();
        // Each command answers for itself: one stream refusing its entry must not hide that the
        // others took theirs (retrying the batch would add those again).
        pipe.ignore_errors();
        pipe.cmd("GET").arg(self.epoch_key());
        let mut targets = Vec::new();
        for event in events {
            let fields = entry::fields(event);
            for stream in self.streams_for(event) {
                pipe.xadd_maxlen(&stream, StreamMaxlen::Approx(self.maxlen), "*", &fields);
                targets.push((event.seq, stream));
            }
        }
        let result: redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> = pipe.query_async(&mut conn).await;
        let result = match result.and_then(|replies| set_aside_refusals(replies, &targets)) {
            Ok(epoch) => self.check_epoch(&mut conn, epoch).await,
            Err(err) => Err(err),
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

/// Reads the replies of a publish pipeline: the epoch (first), then one per `(seq, stream)` target.
/// A stream that refuses an entry for a reason of its own (a key of another type: WRONGTYPE) is set
/// aside for that event, logged and counted, and the rest of the batch counts as published; an error
/// that says Redis cannot write at all fails the batch (it is retried).
fn set_aside_refusals(
    replies: Vec<redis::RedisResult<redis::Value>>,
    targets: &[(i64, String)],
) -> redis::RedisResult<Option<String>> {
    let mut replies = replies.into_iter();
    let epoch = match replies.next() {
        Some(reply) => redis::from_redis_value(reply?)?,
        None => None,
    };
    let mut refused = Vec::new();
    for (reply, (seq, stream)) in replies.zip(targets) {
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
