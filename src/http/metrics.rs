//! `GET /metrics` in the Prometheus text format (`prometheus-client`): requests by method, route and
//! status, a latency histogram, SSE clients, events sent and relayed, pool use. The registry belongs
//! to one server (not a global recorder), so tests that start several servers in one process each see
//! their own counts. Every label is taken from a bounded set, whatever a request says: a method
//! outside the standard ones is `other`, a route is the matched template (never the raw path), a
//! status is a number.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::AppState;
use crate::store::PoolStatus;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// The method as a label: the standard ones by name, anything else (hyper accepts any token, of
/// any length) as `other`, so made-up methods cannot grow the number of series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// One server's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    sse_events_sent: Counter,
    sse_streams_opened: Counter,
}

/// What is read when scraped rather than counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub sse_clients: usize,
    /// `None` for a store without a pool (SQLite).
    pub pool: Option<PoolStatus>,
}

impl Metrics {
    /// The metrics of a server; `live` is asked at each scrape.
    pub fn new(live: impl Fn() -> Live + Send + Sync + 'static) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method (other for non-standard ones), route template and status",
            requests.clone(),
        );
        let durations: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer (to the response head for streams)",
            durations.clone(),
        );
        let sse_streams_opened = Counter::default();
        registry.register("sse_streams_opened", "Server-Sent Events streams opened", sse_streams_opened.clone());
        let sse_events_sent = Counter::default();
        registry.register("sse_events_sent", "Events written to SSE clients", sse_events_sent.clone());
        registry.register(
            "task_mcp_build",
            "The running version",
            Info::new(VersionLabels { version: env!("CARGO_PKG_VERSION") }),
        );
        registry.register_collector(Box::new(AtScrape(Box::new(live))));
        Self { registry, requests, durations, sse_events_sent, sse_streams_opened }
    }

    fn record(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests.get_or_create(&RequestLabels { method, route: route.to_owned(), status }).inc();
        self.durations.get_or_create(&RouteLabels { method, route: route.to_owned() }).observe(seconds);
    }

    pub fn sse_event_sent(&self) {
        self.sse_events_sent.inc();
    }

    pub fn sse_stream_opened(&self) {
        self.sse_streams_opened.inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(err) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!("cannot render the metrics: {err}");
        }
        out
    }
}

/// The metrics read when scraped: SSE clients, events relayed, the pool.
struct AtScrape(Box<dyn Fn() -> Live + Send + Sync>);

impl std::fmt::Debug for AtScrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtScrape").finish_non_exhaustive()
    }
}

impl AtScrape {
    fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: usize) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
        gauge.encode(metric)
    }
}

impl Collector for AtScrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live = (self.0)();
        Self::gauge(&mut encoder, "sse_clients", "Connected Server-Sent Events clients.", live.sse_clients)?;
        let relayed = ConstCounter::new(crate::events::events_relayed());
        let metric = encoder.encode_descriptor(
            "events_relayed",
            "Events this process published to Redis from the outbox.",
            None,
            relayed.metric_type(),
        )?;
        relayed.encode(metric)?;
        let set_aside = ConstCounter::new(crate::events::stream_entries_set_aside());
        let metric = encoder.encode_descriptor(
            "redis_entries_set_aside",
            "Stream entries a Redis stream refused (a key of another type); the event reached its other streams.",
            None,
            set_aside.metric_type(),
        )?;
        set_aside.encode(metric)?;
        if let Some(pool) = live.pool {
            let pool_gauges = [
                ("db_pool_connections", "Connections open in the pool.", pool.size),
                ("db_pool_connections_idle", "Open connections not in use.", pool.available),
                ("db_pool_connections_max", "The pool's maximum size.", pool.max_size),
                ("db_pool_waiting", "Callers waiting for a connection.", pool.waiting),
            ];
            for (name, help, value) in pool_gauges {
                Self::gauge(&mut encoder, name, help, value)?;
            }
        }
        Ok(())
    }
}

/// The layer that counts every request under its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    let route = route.as_deref().unwrap_or(UNMATCHED);
    state.metrics.record(&method, route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_are_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes("X".repeat(10_000).as_bytes()).unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
    }

    #[test]
    fn the_exposition_counts_by_route_and_status() {
        let metrics = Metrics::new(|| Live { sse_clients: 2, pool: None });
        metrics.record(&Method::GET, "/api/tasks/{id}", 200, 0.003);
        metrics.record(&Method::GET, "/api/tasks/{id}", 404, 0.2);
        let text = metrics.render();
        assert!(
            text.contains("http_requests_total{method=\"GET\",route=\"/api/tasks/{id}\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("sse_clients 2"), "{text}");
        assert!(text.contains("task_mcp_build_info{version=\""), "{text}");
    }
}
