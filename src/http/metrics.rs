//! `GET /metrics` in the Prometheus text format: requests by route and status, a latency histogram,
//! SSE clients, events sent and relayed, pool use. The registry belongs to one server (not a global
//! recorder), so tests that start several servers in one process each see their own counts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// One server's counters.
#[derive(Default)]
pub struct Metrics {
    /// Keyed by (method, route template): the template, never the raw path, so ids don't explode the
    /// number of series.
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
    sse_events_sent: AtomicU64,
    sse_streams_opened: AtomicU64,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let stats = routes.entry((method.to_owned(), route.to_owned())).or_default();
        *stats.by_status.entry(status).or_default() += 1;
        stats.count += 1;
        stats.sum_seconds += seconds;
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            stats.buckets[i] += 1;
        }
    }

    pub fn sse_event_sent(&self) {
        self.sse_events_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sse_stream_opened(&self) {
        self.sse_streams_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, sse_clients: usize, pool: Option<crate::store::PoolStatus>) -> String {
        let mut out = String::with_capacity(4096);
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for ((method, route), stats) in routes.iter() {
            for (status, n) in &stats.by_status {
                let _ = writeln!(
                    out,
                    "http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str("# HELP http_request_duration_seconds Time to answer (to the response head for streams).\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for ((method, route), stats) in routes.iter() {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(stats.buckets.iter()) {
                cumulative += n;
                let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", stats.count);
            let _ = writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {}", stats.sum_seconds);
            let _ = writeln!(out, "http_request_duration_seconds_count{{{labels}}} {}", stats.count);
        }
        drop(routes);
        let gauges: [(&str, &str, &str, u64); 5] = [
            ("sse_clients", "gauge", "Connected Server-Sent Events clients.", sse_clients as u64),
            (
                "sse_streams_opened_total",
                "counter",
                "Server-Sent Events streams opened.",
                self.sse_streams_opened.load(Ordering::Relaxed),
            ),
            (
                "sse_events_sent_total",
                "counter",
                "Events written to SSE clients.",
                self.sse_events_sent.load(Ordering::Relaxed),
            ),
            (
                "events_relayed_total",
                "counter",
                "Events this process published to Redis from the outbox.",
                crate::events::events_relayed(),
            ),
            (
                "redis_entries_set_aside_total",
                "counter",
                "Stream entries a Redis stream refused (a key of another type); the event reached its other streams.",
                crate::events::stream_entries_set_aside(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        }
        if let Some(pool) = pool {
            let pool_gauges = [
                ("db_pool_connections", "Connections open in the pool.", pool.size),
                ("db_pool_connections_idle", "Open connections not in use.", pool.available),
                ("db_pool_connections_max", "The pool's maximum size.", pool.max_size),
                ("db_pool_waiting", "Callers waiting for a connection.", pool.waiting),
            ];
            for (name, help, value) in pool_gauges {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP task_mcp_build_info The running version.\n# TYPE task_mcp_build_info gauge\n\
             task_mcp_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The layer that counts every request under its route template.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    state.metrics.record(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(state.hub.subscriber_count(), state.app.store.pool_status());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_by_route_and_status() {
        let metrics = Metrics::default();
        metrics.record("GET", "/api/tasks/{id}", 200, 0.003);
        metrics.record("GET", "/api/tasks/{id}", 404, 0.2);
        let text = metrics.render(2, None);
        assert!(text.contains("http_requests_total{method=\"GET\",route=\"/api/tasks/{id}\",status=\"404\"} 1"));
        assert!(text.contains("le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("sse_clients 2"));
    }
}
