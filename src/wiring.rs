//! The wired parts every command is built from (settings, store, service, optional Redis publisher),
//! and their two builders. Below the frontends and the commands: it imports neither.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::events::hub::Hub;
use crate::events::publisher::RedisPublisher;
use crate::events::relay::{self, RelayMode};
use crate::service::TaskService;
use crate::store::{self, Store};

/// How often `serve` looks for leases that ran out.
pub const LEASE_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The parts every command is built from.
#[derive(Clone)]
pub struct Parts {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub service: TaskService,
    /// Present when `REDIS_URL` or `REDIS_CLUSTER_URLS` is set.
    pub publisher: Option<Arc<RedisPublisher>>,
}

impl Parts {
    /// For a stdio session, which must keep answering whatever is wrong: a store URL that cannot be
    /// opened becomes a store whose every call says why, and a malformed `REDIS_URL` is reported and
    /// left out (events wait in the outbox for a process that can publish them).
    pub fn build_for_stdio(settings: Settings) -> Self {
        let store =
            store::open_or_report(&settings.database_url, settings.database_read_url.as_deref(), settings.pool_size);
        let service = TaskService::new(store.clone());
        let publisher = publisher_for(&settings).and_then(|publisher| {
            publisher
                .map_err(|err| tracing::error!("events will not be published from this process: {err}"))
                .ok()
                .map(Arc::new)
        });
        Self { settings, store, service, publisher }
    }

    /// Builds the parts without touching the network: pools connect on first use.
    pub fn build(settings: Settings) -> crate::error::Result<Self> {
        // No I/O here: the SQLite store creates its directory (owner-only) on first use.
        let store = store::open_with_replica(
            &settings.database_url,
            settings.database_read_url.as_deref(),
            settings.pool_size,
        )?;
        let service = TaskService::new(store.clone());
        let publisher = publisher_for(&settings).transpose()?.map(Arc::new);
        Ok(Self { settings, store, service, publisher })
    }

    /// How long events are kept in the store's log.
    pub fn event_retention(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.settings.event_retention_days))
    }

    /// Starts the outbox relay when a publisher is configured, handing it only what it uses.
    pub fn spawn_relay(&self, mode: RelayMode, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
        let publisher = self.publisher.clone()?;
        let signal = self.service.commit_signal();
        Some(relay::spawn(self.store.clone(), publisher, signal, self.event_retention(), mode, shutdown))
    }

    /// Without Redis: prunes the event log by age alone.
    pub fn spawn_pruner(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        relay::spawn_pruner(self.store.clone(), self.event_retention(), shutdown)
    }

    /// Records leases that run out while `serve` runs, within [`LEASE_SWEEP_EVERY`] of their end, so
    /// watchers see the task become ready without waiting for the next claim.
    pub fn spawn_lease_sweeper(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let service = self.service.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(LEASE_SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {}
                }
                if let Err(err) = service.expire_claims().await {
                    tracing::debug!("leases that ran out are recorded later: {err}");
                }
            }
        })
    }

    /// Starts this process's live hub over the store and, when configured, Redis.
    pub fn start_hub(&self, shutdown: CancellationToken) -> Arc<Hub> {
        Hub::start(self.store.clone(), self.publisher.clone(), shutdown)
    }
}

/// The publisher the settings ask for: `None` without Redis, else the publisher (to one server or a
/// cluster) or why the setting cannot be used. Connects lazily.
pub fn publisher_for(settings: &Settings) -> Option<crate::error::Result<RedisPublisher>> {
    if !settings.redis_cluster_urls.is_empty() {
        return Some(RedisPublisher::cluster(
            &settings.redis_cluster_urls,
            &settings.stream_prefix,
            settings.stream_maxlen,
        ));
    }
    let url = settings.redis_url.as_deref()?;
    Some(RedisPublisher::new(url, &settings.stream_prefix, settings.stream_maxlen))
}
