//! The outbox and Redis Streams: each event in exactly its streams with its fields, nothing for a
//! failed call, two relays at once, and no event lost while Redis is killed and restarted.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use task_mcp::domain::{Actor, CommentText, Email, RepoName, Status, Title, UserRef};
use task_mcp::events::relay;
use task_mcp::service::{CreateTask, UpdateTask};

use crate::per_backend;
use crate::support::redis::{PrivateRedis, TestPrefix};
use crate::support::{self, Backend, TestStore};

fn actor() -> Actor {
    Actor::new(Email::parse("user", "lead@example.com").unwrap())
}

fn new_task(title: &str, assignee: Option<&str>, repository: Option<&str>) -> CreateTask {
    CreateTask {
        title: Title::parse("title", title).unwrap(),
        description: None,
        assignee: assignee.map(|a| UserRef::parse("assignee_id", a).unwrap()),
        repository: repository.map(|r| RepoName::parse("repository", r).unwrap()),
        status: None,
        priority: None,
        complexity: None,
        idempotency_key: None,
        parent_id: None,
        blocked_by: Vec::new(),
    }
}

/// `(event_type, seq)` of each entry of a stream.
fn kinds(prefix: &TestPrefix, stream: &str) -> Vec<(String, i64)> {
    prefix
        .entries(&prefix.stream(stream))
        .into_iter()
        .map(|e| (e["event_type"].clone(), e["seq"].parse().unwrap()))
        .collect()
}

async fn every_event_kind_lands_in_exactly_its_streams(backend: Backend) {
    let db = TestStore::new(backend).await;
    let prefix = TestPrefix::new();
    let app = support::app(&db.url, Some((&prefix.url, &prefix.prefix)));
    let publisher = app.publisher.clone().unwrap();
    let service = &app.service;
    let me = actor();

    let loose = service.create_task(&me, new_task("loose", None, Some("web"))).await.unwrap().task;
    let task = service.create_task(&me, new_task("owned", Some("ann@example.com"), Some("web"))).await.unwrap().task;
    let ann = task.assignee_id.unwrap();
    let edit = UpdateTask { title: Some(Title::parse("title", "owned, renamed").unwrap()), ..Default::default() };
    service.update_task(&me, task.id, edit).await.unwrap();
    let reassign =
        UpdateTask { assignee: Some(Some(UserRef::parse("a", "bob@example.com").unwrap())), ..Default::default() };
    let task = service.update_task(&me, task.id, reassign).await.unwrap();
    let bob = task.assignee_id.unwrap();
    service.update_status(&me, task.id, Status::Completed, None, None).await.unwrap();
    service.add_comment(&me, task.id, CommentText::parse("comment", "done and dusted").unwrap()).await.unwrap();
    service.delete_task(&me, task.id, None, None).await.unwrap();

    // Failed calls: a stale version, an unknown task. They must emit nothing.
    let stale = UpdateTask { status: Some(Status::Blocked), expected_version: Some(1), ..Default::default() };
    assert!(service.update_task(&me, loose.id, UpdateTask { ..stale.clone() }).await.is_ok());
    assert!(service.update_task(&me, loose.id, stale).await.is_err());
    assert!(service.add_comment(&me, uuid::Uuid::new_v4(), CommentText::parse("c", "x").unwrap()).await.is_err());

    relay::drain(app.store.as_ref(), &publisher).await.unwrap();

    let all = kinds(&prefix, "notifications");
    let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "task_created",
            "task_assigned",
            "task_updated",
            "task_assigned",
            "task_completed",
            "task_commented",
            "task_deleted",
            "task_updated"
        ]
    );
    let seqs: Vec<i64> = all.iter().map(|(_, s)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq increases: {seqs:?}");

    let ann_kinds: Vec<String> = kinds(&prefix, &format!("user:{ann}")).into_iter().map(|(k, _)| k).collect();
    assert_eq!(ann_kinds, ["task_assigned", "task_updated", "task_assigned"], "ann hears the task leave her");
    let bob_kinds: Vec<String> = kinds(&prefix, &format!("user:{bob}")).into_iter().map(|(k, _)| k).collect();
    assert_eq!(bob_kinds, ["task_assigned", "task_completed", "task_commented", "task_deleted"]);
    assert_eq!(kinds(&prefix, "repo:web").len(), 8, "every event of a task in repo web");

    let mut expected_keys = vec![
        prefix.stream("epoch"),
        prefix.stream("notifications"),
        prefix.stream("repo:web"),
        prefix.stream(&format!("user:{ann}")),
        prefix.stream(&format!("user:{bob}")),
    ];
    expected_keys.sort();
    assert_eq!(prefix.keys(), expected_keys, "no stream beyond the ones the events belong to");

    let first = &prefix.entries(&prefix.stream("notifications"))[1];
    for field in ["event_type", "task_id", "task_data", "timestamp", "seq", "actor"] {
        assert!(first.contains_key(field), "field {field} in {first:?}");
    }
    let data: serde_json::Value = serde_json::from_str(&first["task_data"]).unwrap();
    assert_eq!(data["title"], "owned");
    assert_eq!(data["assignee_email"], "ann@example.com");
    assert_eq!(first["actor"], "lead@example.com");
    chrono::DateTime::parse_from_rfc3339(&first["timestamp"]).expect("RFC 3339 timestamp");
}

async fn two_relays_at_once_publish_every_event_and_skip_none(backend: Backend) {
    let db = TestStore::new(backend).await;
    let prefix = TestPrefix::new();
    let one = support::app(&db.url, Some((&prefix.url, &prefix.prefix)));
    let two = support::app(&db.url, Some((&prefix.url, &prefix.prefix)));
    let me = actor();
    let total = 300;
    for i in 0..total {
        one.service.create_task(&me, new_task(&format!("task {i}"), None, None)).await.unwrap();
    }
    let (a, b) = tokio::join!(
        relay::drain(one.store.as_ref(), one.publisher.as_ref().unwrap()),
        relay::drain(two.store.as_ref(), two.publisher.as_ref().unwrap()),
    );
    let published = a.unwrap() + b.unwrap();
    assert!(published >= total, "published {published} of {total}");
    let seqs: Vec<i64> = kinds(&prefix, "notifications").into_iter().map(|(_, s)| s).collect();
    let distinct: BTreeSet<i64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len(), total, "every event published at least once");
    let bounds = one.store.event_bounds().await.unwrap();
    assert_eq!(*distinct.first().unwrap(), bounds.oldest.unwrap());
    assert_eq!(*distinct.last().unwrap(), bounds.latest);
    // Nothing left behind.
    assert_eq!(relay::drain(one.store.as_ref(), one.publisher.as_ref().unwrap()).await.unwrap(), 0);
}

async fn no_event_is_lost_while_redis_is_killed_and_restarted(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut redis = PrivateRedis::start();
    let prefix = TestPrefix::on(&redis.url());
    let app = support::app(&db.url, Some((&prefix.url, &prefix.prefix)));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let relay = app.spawn_relay(relay::RelayMode::AfterCommits, shutdown.clone()).unwrap();
    let me = actor();
    let total = 200;
    for i in 0..total {
        if i == total / 4 {
            redis.kill();
        }
        if i == total * 3 / 4 {
            redis.restart();
        }
        app.service
            .create_task(&me, new_task(&format!("task {i}"), Some("ann@example.com"), Some("web")))
            .await
            .expect("every call succeeds while Redis is down");
    }
    // The relay retries with a bounded backoff: wait until every event is out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut first_seen: Vec<i64> = Vec::new();
    while tokio::time::Instant::now() < deadline {
        let seqs: Vec<i64> = kinds(&prefix, "notifications").into_iter().map(|(_, s)| s).collect();
        let mut seen = HashMap::new();
        first_seen = seqs.into_iter().filter(|s| seen.insert(*s, ()).is_none()).collect();
        if first_seen.len() == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(first_seen.len(), total, "every event is in the stream after Redis came back");
    assert!(first_seen.windows(2).all(|w| w[0] < w[1]), "in seq order after dropping duplicates");
    shutdown.cancel();
    relay.await.unwrap();
}

per_backend!(
    every_event_kind_lands_in_exactly_its_streams,
    two_relays_at_once_publish_every_event_and_skip_none,
    no_event_is_lost_while_redis_is_killed_and_restarted,
    a_stream_that_refuses_entries_does_not_hold_back_the_events_after_it,
);

async fn a_stream_that_refuses_entries_does_not_hold_back_the_events_after_it(backend: Backend) {
    let db = TestStore::new(backend).await;
    let prefix = TestPrefix::new();
    let app = support::app(&db.url, Some((&prefix.url, &prefix.prefix)));
    let publisher = app.publisher.clone().unwrap();
    // The repository stream of "poison" is a plain string: every XADD to it fails with WRONGTYPE.
    let client = redis::Client::open(prefix.url.as_str()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let () = redis::Commands::set(&mut conn, prefix.stream("repo:poison"), "x").unwrap();
    let set_aside_before = task_mcp::events::stream_entries_set_aside();

    let me = actor();
    let poisoned = app.service.create_task(&me, new_task("poisoned", None, Some("poison"))).await.unwrap().task;
    let clean = app.service.create_task(&me, new_task("clean", None, Some("clean"))).await.unwrap().task;
    // Twice: a second round must neither fail nor add again what the first one added.
    let published = relay::drain(app.store.as_ref(), &publisher).await.expect("the relay goes on");
    assert_eq!(published, 2);
    assert_eq!(relay::drain(app.store.as_ref(), &publisher).await.unwrap(), 0, "nothing left pending");

    let task_ids = |stream: &str| -> Vec<String> {
        prefix.entries(&prefix.stream(stream)).into_iter().map(|e| e["task_id"].clone()).collect()
    };
    assert_eq!(task_ids("notifications"), [poisoned.id.to_string(), clean.id.to_string()], "each event once");
    assert_eq!(task_ids("repo:clean"), [clean.id.to_string()], "the next event reached its streams");
    let kept: String = redis::Commands::get(&mut conn, prefix.stream("repo:poison")).unwrap();
    assert_eq!(kept, "x", "the refusing key is left as it was");
    assert!(task_mcp::events::stream_entries_set_aside() > set_aside_before, "the refusal is counted");
}
