//! End to end across transports: a task created by an agent over stdio reaches an SSE client of
//! `serve`, a status changed over REST is what `get_tasks` over stdio sees, and every change reaches
//! the stream in order with Redis and without. Latencies are the benchmark's business, not a test's.

use std::time::Duration;

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

/// Changes made over REST, one after another, each reach a connected SSE client as the next event, in
/// order, with Redis as the bus or with the store's event log alone. (How fast: the benchmark.)
async fn every_change_reaches_the_stream_in_order(redis: bool) {
    let db = TestStore::new(Backend::Postgres).await;
    let prefix = TestPrefix::new();
    let bus = redis.then_some((prefix.url.as_str(), prefix.prefix.as_str()));
    let server = TestServer::start(support::app(&db.url, bus)).await;
    let mut stream = SseReader::new(server.get("/api/tasks/stream").send().await.unwrap());
    let mut last_seq = 0;
    for i in 0..30 {
        let response = server.post("/api/tasks", json!({"title": format!("change {i}")})).send().await.unwrap();
        assert_eq!(response.status(), 201);
        let event = stream.next(Duration::from_secs(10)).await.expect("the change on the stream");
        let data = event.json();
        assert_eq!(data["task"]["title"], format!("change {i}"), "with redis: {redis}");
        let seq = data["seq"].as_i64().expect("seq");
        assert!(seq > last_seq, "seq {seq} after {last_seq}");
        last_seq = seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_stream_clients_in_order_with_and_without_redis() {
    every_change_reaches_the_stream_in_order(true).await;
    every_change_reaches_the_stream_in_order(false).await;
}
