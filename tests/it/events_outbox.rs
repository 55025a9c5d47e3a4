//! The outbox payload: event rows written in the shape older versions wrote (the public task JSON)
//! are still read, and reach Redis and SSE clients with the same JSON as before.

use std::time::Duration;

use task_mcp::events::hub::LiveEvent;
use task_mcp::events::publisher::RedisPublisher;
use task_mcp::events::relay;
use uuid::Uuid;

use crate::per_backend;
use crate::support::redis::TestPrefix;
use crate::support::{Backend, TestStore};

/// The task JSON of a live task as older versions stored it (and published it: keys sorted).
const LIVE_TASK: &str = r#"{"assignee_email":null,"assignee_id":null,"complexity":"high","created_at":"2026-12-01T09:00:00.000001Z","created_by":"ann@example.com","description":"from before","id":"ID","priority":"low","repository":"web","status":"in_progress","title":"written by an older version","updated_at":"2026-12-01T10:00:00.123456Z","updated_by":"bob@example.com","version":2}"#;

/// The same for a deleted task, with an assignee.
const DELETED_TASK: &str = r#"{"assignee_email":"bob@example.com","assignee_id":"ASSIGNEE","complexity":"medium","created_at":"2026-12-01T09:00:00.000001Z","created_by":"ann@example.com","deleted_at":"2026-12-01T11:00:00.000000Z","description":null,"id":"ID","priority":"urgent","repository":null,"status":"blocked","title":"gone","updated_at":"2026-12-01T11:00:00.000000Z","updated_by":"ann@example.com","version":5}"#;

/// Writes an event row as older versions did, behind the store's back.
async fn insert_old_event(ts: &TestStore, backend: Backend, kind: &str, task_id: Uuid, task: &str, at: &str) {
    match backend {
        Backend::Postgres => {
            let sql = format!(
                "INSERT INTO events (event_type, task_id, actor, task, repository, created_at) \
                 VALUES ('{kind}', '{task_id}', 'bob@example.com', '{task}'::jsonb, 'web', '{at}'::timestamptz)"
            );
            crate::support::pg::execute(&ts.url, &sql).await
        }
        Backend::Sqlite => {
            let path = ts.url.strip_prefix("sqlite://").expect("a sqlite:// URL").to_owned();
            let (kind, task) = (kind.to_owned(), task.to_owned());
            let at_micros = chrono::DateTime::parse_from_rfc3339(at).expect("a time").timestamp_micros();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
                conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
                conn.execute(
                    "INSERT INTO events (event_type, task_id, actor, task, repository, created_at) \
                     VALUES (?1, ?2, 'bob@example.com', ?3, 'web', ?4)",
                    rusqlite::params![kind, task_id.to_string(), task, at_micros],
                )
                .expect("insert an event row");
            })
            .await
            .expect("join");
        }
    }
}

async fn an_event_row_in_the_old_shape_is_delivered_with_the_same_json_as_before(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    store.migrate().await.unwrap();
    let (live_id, deleted_id, assignee) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let live_task = LIVE_TASK.replace("ID", &live_id.to_string());
    let deleted_task = DELETED_TASK.replace("ASSIGNEE", &assignee.to_string()).replace("ID", &deleted_id.to_string());
    insert_old_event(&ts, backend, "task_updated", live_id, &live_task, "2026-12-01T10:00:00.123456Z").await;
    insert_old_event(&ts, backend, "task_deleted", deleted_id, &deleted_task, "2026-12-01T11:00:00Z").await;
    // Read back, an old task is what it was plus the fields added since, empty: no claim, no parent.
    let shown = |task: &str| {
        task.replacen("\"complexity\"", "\"claim\":null,\"complexity\"", 1).replacen(
            ",\"priority\"",
            ",\"parent_id\":null,\"priority\"",
            1,
        )
    };
    let (live_task, deleted_task) = (shown(&live_task), shown(&deleted_task));

    // What SSE clients and `events tail` get: the event JSON, with the task as it was stored.
    let events = store.events_after(0, 10).await.expect("old rows are read");
    let sse: Vec<String> = events.iter().map(|e| LiveEvent::new(e.clone()).json.expect("rendered")).collect();
    assert_eq!(
        sse,
        [
            format!(
                r#"{{"type":"task_updated","task_id":"{live_id}","task":{live_task},"timestamp":"2026-12-01T10:00:00.123456Z","seq":1,"actor":"bob@example.com"}}"#
            ),
            format!(
                r#"{{"type":"task_deleted","task_id":"{deleted_id}","task":{deleted_task},"timestamp":"2026-12-01T11:00:00.000000Z","seq":2,"actor":"bob@example.com"}}"#
            ),
        ]
    );

    // What Redis consumers get: the same task JSON in `task_data`.
    let prefix = TestPrefix::new();
    let publisher = RedisPublisher::new(&prefix.url, &prefix.prefix, 1_000).unwrap();
    assert_eq!(relay::drain(store, &publisher).await.unwrap(), 2);
    let entries = prefix.entries(&prefix.stream("notifications"));
    let data: Vec<&str> = entries.iter().map(|e| e["task_data"].as_str()).collect();
    assert_eq!(data, [live_task.as_str(), deleted_task.as_str()]);
    assert_eq!(entries[0]["timestamp"], "2026-12-01T10:00:00.123456Z");
}

per_backend!(an_event_row_in_the_old_shape_is_delivered_with_the_same_json_as_before);
