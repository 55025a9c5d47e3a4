//! The event stream over real HTTP: events in order with `id:` = seq, filters, heartbeats and the
//! retry hint, resume with `Last-Event-ID` (exactly the missed events), `resync` for ids out of the
//! log, the query-string token, and two servers sharing one Redis.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::per_backend;
use crate::support::http::{self, SseEvent, SseReader, TestServer, error_code};
use crate::support::redis::TestPrefix;
use crate::support::{self, Backend, TestStore};

const WAIT: Duration = Duration::from_secs(10);

async fn create(server: &TestServer, body: Value) -> Value {
    let response = server.post("/api/tasks", body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn open(server: &TestServer, query: &str, last_event_id: Option<&str>) -> SseReader {
    let mut request = server.get(&format!("/api/tasks/stream{query}"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    SseReader::new(response)
}

/// Reads `n` events.
async fn take(stream: &mut SseReader, n: usize) -> Vec<SseEvent> {
    let mut events = Vec::new();
    while events.len() < n {
        match stream.next(WAIT).await {
            Some(event) => events.push(event),
            None => panic!("only {} of {n} events came: {events:?}", events.len()),
        }
    }
    events
}

fn seqs(events: &[SseEvent]) -> Vec<i64> {
    events.iter().map(|e| e.id.as_deref().unwrap().parse().unwrap()).collect()
}

async fn changes_reach_stream_clients_in_order_and_resume_exactly(backend: Backend) {
    let db = TestStore::new(backend).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    // No pause after opening: a change made once the response has come is in the stream.
    let mut stream = open(&server, "", None).await;

    let task = create(&server, json!({"title": "watched", "repository": "web"})).await;
    let id = task["id"].as_str().unwrap();
    server
        .as_user(Method::PUT, &format!("/api/tasks/{id}/status"), "tester@example.com")
        .json(&json!({"status": "completed"}))
        .send()
        .await
        .unwrap();
    let events = take(&mut stream, 2).await;
    assert_eq!(stream.retry, Some(3000));
    assert_eq!(events[0].event.as_deref(), Some("task_created"));
    assert_eq!(events[1].event.as_deref(), Some("task_completed"));
    let data = events[0].json();
    for field in ["type", "task_id", "task", "timestamp", "seq"] {
        assert!(data.get(field).is_some(), "{field} missing from {data}");
    }
    assert_eq!(data["task_id"], task["id"]);
    assert_eq!(data["task"]["title"], "watched");
    assert_eq!(data["seq"].to_string(), events[0].id.clone().unwrap());
    let first = seqs(&events);
    assert!(first[0] < first[1]);
    drop(stream);

    // Disconnected: three changes happen.
    for status in ["in_progress", "blocked"] {
        server
            .as_user(Method::PUT, &format!("/api/tasks/{id}/status"), "tester@example.com")
            .json(&json!({"status": status}))
            .send()
            .await
            .unwrap();
    }
    server.post(&format!("/api/tasks/{id}/comments"), json!({"comment": "while away"})).send().await.unwrap();

    // Reconnect with the last id seen: exactly the three missed events, in order, then live ones.
    let mut resumed = open(&server, "", Some(&first[1].to_string())).await;
    let missed = take(&mut resumed, 3).await;
    let kinds: Vec<&str> = missed.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(kinds, ["task_updated", "task_updated", "task_commented"]);
    let missed_seqs = seqs(&missed);
    assert!(missed_seqs.windows(2).all(|w| w[0] < w[1]) && missed_seqs[0] > first[1], "{missed_seqs:?}");
    create(&server, json!({"title": "after the resume"})).await;
    let live = take(&mut resumed, 1).await;
    assert_eq!(live[0].event.as_deref(), Some("task_created"));
    assert!(seqs(&live)[0] > missed_seqs[2]);
    // No duplicate came in between.
    assert!(resumed.next(Duration::from_millis(500)).await.is_none());
}

per_backend!(changes_reach_stream_clients_in_order_and_resume_exactly);

/// The starting point of a stream is fixed before its response is sent: a client that opens the
/// stream and at once makes a change finds that change in it (it used to be fixed later, by the feed's
/// own task, and a change made in between was missed).
async fn a_change_made_as_soon_as_the_stream_answers_is_in_the_stream(backend: Backend) {
    let db = TestStore::new(backend).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    for round in 0..25 {
        let mut stream = open(&server, "", None).await;
        let title = format!("made at once {round}");
        create(&server, json!({ "title": title })).await;
        let first = take(&mut stream, 1).await.remove(0);
        assert_eq!(first.json()["task"]["title"], title, "round {round}");
    }
}

per_backend!(a_change_made_as_soon_as_the_stream_answers_is_in_the_stream);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_stream_to_a_user_or_repositories() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    // A stream filters by users that exist: bob signs in once first.
    let bob = server.as_user(Method::GET, "/api/me", "bob@example.com").send().await.unwrap();
    assert_eq!(bob.status(), 200);
    let mut mine = open(&server, "?user_id=me", None).await;
    let mut repos = open(&server, "?repositories=web,api", None).await;
    let mut by_email = open(&server, "?user_id=bob@example.com", None).await;
    create(&server, json!({"title": "for bob in ops", "assignee_id": "bob@example.com", "repository": "ops"})).await;
    create(&server, json!({"title": "mine in web", "assignee_id": "me", "repository": "web"})).await;
    create(&server, json!({"title": "nobody's in api", "repository": "api"})).await;
    let title = |e: &SseEvent| e.json()["task"]["title"].as_str().unwrap().to_owned();
    assert_eq!(title(&take(&mut mine, 1).await[0]), "mine in web");
    let both = take(&mut repos, 2).await;
    assert_eq!(both.iter().map(title).collect::<Vec<_>>(), ["mine in web", "nobody's in api"]);
    assert_eq!(title(&take(&mut by_email, 1).await[0]), "for bob in ops");
    assert!(mine.next(Duration::from_millis(300)).await.is_none());
    assert!(by_email.next(Duration::from_millis(300)).await.is_none());

    for (query, field) in
        [("?user_id=nobody", "user_id"), ("?repositories=a%20b", "repositories"), ("?colour=red", "colour")]
    {
        let response = server.get(&format!("/api/tasks/stream{query}")).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!((status.as_u16(), body["error"]["details"]["field"].as_str()), (422, Some(field)), "{query}");
    }
}

/// Naming a user in the stream's filter looks them up; it never creates them.
async fn a_stream_filtered_by_an_unknown_user_is_refused_and_creates_nobody(backend: Backend) {
    let db = TestStore::new(backend).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let ghost_id = uuid::Uuid::new_v4().to_string();
    for ghost in ["ghost@example.com", ghost_id.as_str()] {
        let query = format!("/api/tasks/stream?user_id={ghost}");
        let response = server.get(&query).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("user_id")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(ghost), "the value is named: {body}");
    }
    let users: Value = server.get("/api/users").send().await.unwrap().json().await.unwrap();
    let emails: Vec<&str> = users.as_array().unwrap().iter().filter_map(|u| u["email"].as_str()).collect();
    assert!(!emails.contains(&"ghost@example.com"), "the stream created a user: {emails:?}");
}

per_backend!(a_stream_filtered_by_an_unknown_user_is_refused_and_creates_nobody);

async fn a_resume_from_inside_a_pruned_range_gets_a_resync_though_an_older_event_is_kept(backend: Backend) {
    let db = TestStore::new(backend).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    for i in 0..5 {
        create(&server, json!({"title": format!("t{i}")})).await;
    }
    let written: Vec<i64> = db.store.events_after(0, 10).await.unwrap().iter().map(|e| e.seq).collect();
    // The oldest event is not published yet (its relay is late); the three after it are, and are
    // old enough to prune: the log keeps the first and the last, with a hole between.
    let (first_pruned, last_pruned) = (written[1], written[3]);
    match backend {
        Backend::Postgres => {
            let sql =
                format!("UPDATE events SET published_at = now() WHERE seq BETWEEN {first_pruned} AND {last_pruned}");
            support::pg::execute(&db.url, &sql).await;
        }
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").unwrap();
            let conn = rusqlite::Connection::open(path).unwrap();
            let sql = "UPDATE events SET published_at = 1 WHERE seq BETWEEN ?1 AND ?2";
            conn.execute(sql, [first_pruned, last_pruned]).unwrap();
        }
    }
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(db.store.prune_events(later, false, 100).await.unwrap(), 3);
    assert_eq!(db.store.event_bounds().await.unwrap().oldest, Some(written[0]), "the unpublished event is kept");

    let mut stream = open(&server, "", Some(&first_pruned.to_string())).await;
    let event = stream.next(WAIT).await.expect("an event");
    assert_eq!(event.event.as_deref(), Some("resync"), "a silent gap instead: {event:?}");
    assert_eq!(event.json()["seq"], written[4]);
    // At the watermark nothing after it is missing: a plain replay.
    let mut stream = open(&server, "", Some(&last_pruned.to_string())).await;
    assert_eq!(seqs(&take(&mut stream, 1).await), [written[4]]);
}

per_backend!(a_resume_from_inside_a_pruned_range_gets_a_resync_though_an_older_event_is_kept);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_outside_the_log_get_a_resync_and_garbage_is_refused() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    create(&server, json!({"title": "one"})).await;
    for absurd in ["999999999", "-5", "9223372036854775807"] {
        let mut stream = open(&server, "", Some(absurd)).await;
        let event = stream.next(WAIT).await.expect("a resync event");
        assert_eq!(event.event.as_deref(), Some("resync"), "{absurd}");
        assert_eq!(event.json()["type"], "resync");
    }
    let response = server.get("/api/tasks/stream").header("last-event-id", "yesterday").send().await.unwrap();
    assert_eq!(error_code(response).await, (422, "invalid_argument".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventsource_clients_authenticate_with_a_query_token_and_get_heartbeats() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut config = http::config();
    config.limits.sse_heartbeat = Duration::from_millis(200);
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    let token = server.token("viewer@example.com");
    let response = server
        .client
        .get(server.url(&format!("/api/tasks/stream?access_token={token}&user_id=me")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    assert!(stream.next(Duration::from_millis(1200)).await.is_none(), "no event expected");
    assert!(stream.comments.iter().filter(|c| c.as_str() == "heartbeat").count() >= 2, "{:?}", stream.comments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_either_of_two_servers_reaches_the_clients_of_both() {
    let db = TestStore::new(Backend::Postgres).await;
    let prefix = TestPrefix::new();
    let redis = Some((prefix.url.as_str(), prefix.prefix.as_str()));
    let one = TestServer::start(support::app(&db.url, redis)).await;
    let two = TestServer::start(support::app(&db.url, redis)).await;
    let mut on_one = open(&one, "", None).await;
    let mut on_two = open(&two, "", None).await;
    create(&one, json!({"title": "via one"})).await;
    create(&two, json!({"title": "via two"})).await;
    for stream in [&mut on_one, &mut on_two] {
        let events = take(stream, 2).await;
        let titles: Vec<String> =
            events.iter().map(|e| e.json()["task"]["title"].as_str().unwrap().to_owned()).collect();
        assert_eq!(titles, ["via one", "via two"]);
    }
    let health: Value = one.client.get(one.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["redis"]["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_holds_up_no_other_client() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut config = http::config();
    config.limits.slow_client = Duration::from_secs(3);
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    let mut reading = open(&server, "", None).await;
    let mut stalled = open(&server, "", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Big events (the description travels in each) fill the stalled client's buffers and sockets.
    let description = "x".repeat(60 * 1024);
    let n = 300;
    let reader = tokio::spawn(async move {
        let events = take(&mut reading, n).await;
        (reading, events)
    });
    for i in 0..n {
        create(&server, json!({"title": format!("big {i}"), "description": description})).await;
    }
    let (mut reading, events) = reader.await.unwrap();
    let gaps = seqs(&events).windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert_eq!(gaps, 0, "the reading client got every event in order");

    // Past its patience the stalled stream is ended: what was buffered arrives, then the end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(stalled.ends_within(WAIT).await, "a client that stopped reading is still connected");
    assert!(!reading.ends_within(Duration::from_millis(500)).await, "the reading client was dropped too");
}
