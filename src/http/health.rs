//! `GET /health`: whether the database (and its read replica, when there is one) and Redis (one server
//! or a cluster: its nodes and state) answer, for load balancers and people. No credential; it names
//! the kinds of backend, never their addresses.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::AppState;
use crate::store::ReplicaState;

/// How long each check may take before it counts as down.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthJson {
    /// "ok" when everything in use answers, else "degraded". The code is 503 only when the database
    /// does not answer.
    pub status: &'static str,
    pub database: CheckJson,
    /// The read replica (`DATABASE_READ_URL`), when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaJson>,
    pub redis: CheckJson,
    /// On a Redis Cluster: its nodes, how many answer, and its `cluster_state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cluster: Option<ClusterJson>,
    pub version: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckJson {
    /// "ok", "down" or "disabled".
    pub status: &'static str,
    /// `postgres`, `sqlite`, `redis` or `redis-cluster`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Why it is down, in general terms (the details, which may name hosts, are only logged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReplicaJson {
    /// "ok" (reads go to it), else "down", "lagging" or "not_standby": reads go to the primary
    /// meanwhile, and the status is "degraded", not down.
    pub status: &'static str,
    /// Whether it answered this check.
    pub reachable: bool,
    /// How far behind the primary it is, in milliseconds, when that is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ClusterJson {
    /// The nodes the cluster knows of (masters and replicas).
    pub nodes: usize,
    /// The nodes that answered.
    pub reachable: usize,
    /// The `cluster_state` the nodes report: "ok", else the first other state one reported
    /// ("fail": some slots have no master that answers, and their writes wait).
    pub state: String,
}

fn check<E: std::fmt::Display>(
    kind: &'static str,
    outcome: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> CheckJson {
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            tracing::warn!("health check: {kind} fails: {err}");
            Some("fails")
        }
        Err(_) => {
            tracing::warn!("health check: {kind} gave no answer within {} s", CHECK_TIMEOUT.as_secs());
            Some("no answer in time")
        }
    };
    CheckJson { status: if error.is_some() { "down" } else { "ok" }, kind: Some(kind), error }
}

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthJson>) {
    let store = state.parts.store.clone();
    let database = async {
        let outcome = tokio::time::timeout(CHECK_TIMEOUT, async { store.schema_version().await.map(|_| ()) }).await;
        check(store.info().kind, outcome)
    };
    let redis = async {
        match &state.parts.publisher {
            Some(publisher) if publisher.is_cluster() => {
                let (ping, report) = tokio::join!(
                    tokio::time::timeout(CHECK_TIMEOUT, publisher.ping()),
                    tokio::time::timeout(CHECK_TIMEOUT, publisher.cluster_report())
                );
                let cluster = report.ok().flatten().map(|r| ClusterJson {
                    nodes: r.nodes,
                    reachable: r.reachable,
                    state: r.state,
                });
                (check("redis-cluster", ping), cluster)
            }
            Some(publisher) => (check("redis", tokio::time::timeout(CHECK_TIMEOUT, publisher.ping()).await), None),
            None => (CheckJson { status: "disabled", kind: None, error: None }, None),
        }
    };
    let replica = async {
        match tokio::time::timeout(CHECK_TIMEOUT, store.replica_status()).await {
            Ok(None) => None,
            Ok(Some(status)) => {
                if let Some(detail) = &status.detail {
                    tracing::debug!("health check: replica: {detail}");
                }
                Some(ReplicaJson {
                    status: status.state.as_str(),
                    reachable: matches!(
                        status.state,
                        ReplicaState::InUse | ReplicaState::Lagging | ReplicaState::NotStandby
                    ),
                    lag_ms: status.lag.map(|lag| u64::try_from(lag.as_millis()).unwrap_or(u64::MAX)),
                })
            }
            Err(_) => Some(ReplicaJson { status: "down", reachable: false, lag_ms: None }),
        }
    };
    let (database, replica, (redis, redis_cluster)) = tokio::join!(database, replica, redis);
    let cluster_ok = redis_cluster.as_ref().is_none_or(|c| c.state == "ok" && c.reachable == c.nodes);
    // Only the database decides the status code: without Redis, changes still commit (events wait in
    // the outbox) and live events come from the store, so a load balancer should keep this instance.
    let status = if database.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    // A replica that is skipped costs load on the primary, not answers.
    let replica_ok = replica.as_ref().is_none_or(|r| r.status == "ok");
    let everything_ok = database.status == "ok" && replica_ok && redis.status != "down" && cluster_ok;
    let body = HealthJson {
        status: if everything_ok { "ok" } else { "degraded" },
        database,
        replica,
        redis,
        redis_cluster,
        version: env!("CARGO_PKG_VERSION"),
    };
    (status, Json(body))
}
