//! The Redis the events go to: one server (`REDIS_URL`) or a Redis Cluster (`REDIS_CLUSTER_URLS`, its
//! seed nodes), the connections each gives (shared, and dedicated ones for blocking reads), how a batch
//! of commands is grouped (one group, or one per hash slot), and what a health check sees of it.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::error::{Error, Result};
use crate::store::redact_url;

/// How long a cluster waits for a replica to confirm a batch's entries (`WAIT 1`), so a failover
/// does not lose entries the relay already counts as published.
pub const REPLICA_WAIT_MS: u64 = 1_000;

/// A Redis client: one server or a cluster.
pub enum Bus {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

/// One connection of either kind (cheap to clone: both multiplex).
#[derive(Clone)]
pub enum BusConnection {
    Managed(ConnectionManager),
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for BusConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            BusConnection::Managed(c) => c.req_packed_command(cmd),
            BusConnection::Plain(c) => c.req_packed_command(cmd),
            BusConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            BusConnection::Managed(c) => c.req_packed_commands(pipeline, offset, count),
            BusConnection::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            BusConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            BusConnection::Managed(c) => c.get_db(),
            BusConnection::Plain(c) => c.get_db(),
            BusConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// Where a command goes: the whole batch shares one group on a single server; on a cluster each
/// hash slot is its own group (a pipeline may not cross slots), sent on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    All,
    Slot(Slot),
}

/// What a health check sees of a cluster: the nodes it knows and those that answer, and the
/// `cluster_state` each answering node reports.
#[derive(Debug, Default)]
pub struct ClusterReport {
    pub nodes: usize,
    pub reachable: usize,
    /// `ok` when every answering node says `cluster_state:ok`; else the first other state seen.
    pub state: String,
}

impl ClusterReport {
    pub fn healthy(&self) -> bool {
        self.nodes > 0 && self.reachable == self.nodes && self.state == "ok"
    }
}

impl Bus {
    /// Checks the URL; connects lazily.
    pub fn single(url: &str) -> Result<Self> {
        redis::Client::open(url)
            .map(Bus::Single)
            .map_err(|e| Error::invalid("REDIS_URL", format!("{} is not a Redis URL: {e}", redact_url(url))))
    }

    /// Checks the seed nodes' URLs; connects lazily.
    pub fn cluster(urls: &[String]) -> Result<Self> {
        if urls.is_empty() {
            return Err(Error::invalid(
                "REDIS_CLUSTER_URLS",
                "give at least one node, e.g. redis://h1:6379,redis://h2:6379",
            ));
        }
        for url in urls {
            redis::Client::open(url.as_str()).map_err(|e| {
                Error::invalid("REDIS_CLUSTER_URLS", format!("{} is not a Redis URL: {e}", redact_url(url)))
            })?;
        }
        ClusterClient::builder(urls.iter().map(String::as_str))
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_millis(REPLICA_WAIT_MS + 2_000))
            .retries(3)
            .min_retry_wait(100)
            .max_retry_wait(1_000)
            .build()
            .map(|client| Bus::Cluster(Box::new(client)))
            .map_err(|e| Error::invalid("REDIS_CLUSTER_URLS", format!("the nodes cannot form one cluster client: {e}")))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Bus::Cluster(_))
    }

    /// The group a key's commands go to.
    pub fn group_of(&self, key: &str) -> Group {
        match self {
            Bus::Single(_) => Group::All,
            Bus::Cluster(_) => Group::Slot(Slot::for_key(key)),
        }
    }

    /// A shared connection: reconnects by itself after a failure; times out answers after 2 s
    /// (a cluster: after the replica wait and 2 s more).
    pub async fn shared(&self) -> redis::RedisResult<BusConnection> {
        match self {
            Bus::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(1);
                client.get_connection_manager_with_config(config).await.map(BusConnection::Managed)
            }
            Bus::Cluster(client) => client.get_async_connection().await.map(BusConnection::Cluster),
        }
    }

    /// A dedicated connection for `XREAD BLOCK block`: nothing else shares it (a blocked read holds
    /// up every command behind it), and answers may take longer than the block.
    pub async fn blocking(&self, block: Duration) -> redis::RedisResult<BusConnection> {
        match self {
            Bus::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(None);
                client.get_multiplexed_async_connection_with_config(&config).await.map(BusConnection::Plain)
            }
            Bus::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(Duration::from_secs(2))
                    .set_response_timeout(block + Duration::from_secs(5));
                client.get_async_connection_with_config(config).await.map(BusConnection::Cluster)
            }
        }
    }

    /// Every node of the cluster (from `CLUSTER NODES` on a seed that answers), each asked for its
    /// `cluster_state`. `None` on a single server.
    pub async fn cluster_report(&self, seeds: &[String]) -> Option<ClusterReport> {
        let Bus::Cluster(_) = self else { return None };
        let mut report = ClusterReport::default();
        let mut nodes: Vec<String> = Vec::new();
        for seed in seeds {
            if let Ok(Some(text)) = node_command(seed, "CLUSTER", Some("NODES")).await {
                nodes = text
                    .lines()
                    .filter_map(|line| {
                        let fields: Vec<&str> = line.split(' ').collect();
                        // Skip nodes the cluster itself marks as gone or without an address.
                        let addr = fields.get(1)?.split('@').next()?;
                        (!addr.starts_with(':')).then(|| with_host(seed, addr))
                    })
                    .collect();
                break;
            }
        }
        if nodes.is_empty() {
            nodes = seeds.to_vec();
        }
        report.nodes = nodes.len();
        let answers =
            futures::future::join_all(nodes.iter().map(|node| node_command(node, "CLUSTER", Some("INFO")))).await;
        for answer in answers {
            if let Ok(Some(info)) = answer {
                report.reachable += 1;
                let state =
                    info.lines().find_map(|l| l.trim().strip_prefix("cluster_state:")).unwrap_or("unknown").to_owned();
                if report.state.is_empty() || (report.state == "ok" && state != "ok") {
                    report.state = state;
                }
            }
        }
        if report.state.is_empty() {
            report.state = "unknown".to_owned();
        }
        Some(report)
    }
}

/// A seed URL with its host and port replaced by `addr` (`ip:port`), keeping its scheme and password.
fn with_host(seed: &str, addr: &str) -> String {
    match redis::parse_redis_url(seed) {
        Some(mut url) => {
            let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
            let _ = url.set_host(Some(host));
            let _ = url.set_port(port.parse().ok());
            url.to_string()
        }
        None => format!("redis://{addr}"),
    }
}

/// One command to one node, on a short-lived connection with a short timeout.
async fn node_command(url: &str, name: &str, arg: Option<&str>) -> redis::RedisResult<Option<String>> {
    let client = redis::Client::open(url)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    let mut cmd = redis::cmd(name);
    if let Some(arg) = arg {
        cmd.arg(arg);
    }
    cmd.query_async(&mut conn).await
}
