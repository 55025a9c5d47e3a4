//! End to end across transports: a task created by an agent over stdio reaches an SSE client of
//! `serve`, a status changed over REST is what `get_tasks` over stdio sees, and the time from a
//! commit to the SSE client (with Redis and without).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::http::{SseReader, TestServer};
use crate::support::mcp::Server as StdioServer;
use crate::support::redis::TestPrefix;
use crate::support::{self, Backend, TestStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_stdio_and_a_person_over_http_see_each_others_changes() {
    let db = TestStore::new(Backend::Postgres).await;
    let prefix = TestPrefix::new();
    let server = TestServer::start(support::app(&db.url, Some((&prefix.url, &prefix.prefix)))).await;
    let response = server.get("/api/tasks/stream").send().await.unwrap();
    let mut stream = SseReader::new(response);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut agent = StdioServer::spawn_with(&[
        ("DATABASE_URL", db.url.as_str()),
        ("TASK_MCP_USER", "agent@example.com"),
        ("REDIS_URL", prefix.url.as_str()),
        ("TASK_MCP_STREAM_PREFIX", prefix.prefix.as_str()),
    ]);
    agent.initialize().await;
    let task = agent.ok("create_task", json!({"title": "made by an agent", "repository": "web"})).await;
    let id = task["id"].as_str().unwrap().to_owned();

    let event = stream.next(Duration::from_secs(10)).await.expect("the agent's task on the stream");
    assert_eq!(event.event.as_deref(), Some("task_created"));
    assert_eq!(event.json()["task"]["title"], "made by an agent");
    assert_eq!(event.json()["actor"], "agent@example.com");

    let response = server
        .as_user(Method::PUT, &format!("/api/tasks/{id}/status"), "person@example.com")
        .json(&json!({"status": "completed", "comment": "checked by hand"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = agent.ok("get_tasks", json!({"status": "completed", "detail": "full"})).await;
    let listed = &page["tasks"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["updated_by"], "person@example.com");
    let event = stream.next(Duration::from_secs(10)).await.expect("the person's change on the stream");
    assert_eq!(event.event.as_deref(), Some("task_completed"));
    agent.close().await;
}

/// Percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn commit_to_client_latency(redis: bool) -> (Duration, Duration, Duration) {
    let db = TestStore::new(Backend::Postgres).await;
    let prefix = TestPrefix::new();
    let bus = redis.then_some((prefix.url.as_str(), prefix.prefix.as_str()));
    let server = TestServer::start(support::app(&db.url, bus)).await;
    let mut stream = SseReader::new(server.get("/api/tasks/stream").send().await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::new();
    for i in 0..60 {
        let started = Instant::now();
        let response = server.post("/api/tasks", json!({"title": format!("latency {i}")})).send().await.unwrap();
        assert_eq!(response.status(), 201);
        // The commit happened before the response: measure from the request, an upper bound.
        let event = stream.next(Duration::from_secs(10)).await.expect("event");
        assert_eq!(event.json()["task"]["title"], format!("latency {i}"));
        if i >= 10 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.95), *samples.last().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_stream_clients_within_a_second_with_and_without_redis() {
    for redis in [true, false] {
        let (p50, p95, max) = commit_to_client_latency(redis).await;
        eprintln!(
            "request -> SSE client latency ({}): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            if redis { "Redis" } else { "store log" },
            p50.as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
        assert!(p95 < Duration::from_secs(1), "p95 {p95:?}");
    }
}
