//! The REST API over real HTTP against real stores: the task life cycle, listings and their filters,
//! ETag / If-Match, idempotent creates, a chunked body cut at the limit. Every other kind of bad
//! request is a case of the bad-input corpus (`bad_input/cases.jsonl`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::per_backend;
use crate::support::http::{TestServer, error_code};
use crate::support::{self, Backend, TestStore};

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

async fn a_task_goes_through_its_life_over_rest(backend: Backend) {
    let db = TestStore::new(backend).await;
    let server = TestServer::start(support::app(&db.url, None)).await;

    let created = server
        .post(
            "/api/tasks",
            json!({"title": "Ship it", "description": "all of it", "priority": "high", "repository": "org/api", "assignee_id": "ann@example.com"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(created.headers()["etag"], "\"1\"");
    let task = json_of(created).await;
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/tasks/{id}"));
    for field in [
        "id",
        "title",
        "description",
        "status",
        "priority",
        "complexity",
        "assignee_id",
        "assignee_email",
        "repository",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
        "version",
    ] {
        assert!(task.get(field).is_some(), "{field} missing from {task}");
    }
    assert_eq!(task["status"], "not_started");
    assert_eq!(task["assignee_email"], "ann@example.com");

    let fetched = server.get(&location).send().await.unwrap();
    assert_eq!(fetched.headers()["etag"], "\"1\"");
    assert_eq!(json_of(fetched).await, task);

    let status = server
        .as_user(Method::PUT, &format!("/api/tasks/{id}/status"), "tester@example.com")
        .json(&json!({"status": "in_progress", "comment": "on it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    assert_eq!(status.headers()["etag"], "\"2\"");
    assert_eq!(json_of(status).await["status"], "in_progress");

    // PATCH: change some fields, clear nullable ones with null.
    let patched = server
        .as_user(Method::PATCH, &format!("/api/tasks/{id}"), "tester@example.com")
        .header("if-match", "\"2\"")
        .json(&json!({"title": "Ship it now", "description": null, "assignee_id": null, "repository": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let patched = json_of(patched).await;
    assert_eq!(patched["title"], "Ship it now");
    assert_eq!(patched["description"], Value::Null);
    assert_eq!(patched["assignee_id"], Value::Null);
    assert_eq!(patched["repository"], Value::Null);
    assert_eq!(patched["version"], 3);

    let comment = server
        .post(&format!("/api/tasks/{id}/comments"), json!({"comment": "line one\nline two"}))
        .send()
        .await
        .unwrap();
    assert_eq!(comment.status(), 201);
    assert_eq!(json_of(comment).await["comment"], "line one\nline two");
    let comments = json_of(server.get(&format!("/api/tasks/{id}/comments")).send().await.unwrap()).await;
    assert_eq!(comments.as_array().unwrap().len(), 1);
    let history = json_of(server.get(&format!("/api/tasks/{id}/history")).send().await.unwrap()).await;
    let fields: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["field_changed"].as_str().unwrap()).collect();
    assert!(fields.contains(&"status") && fields.contains(&"title"), "{fields:?}");

    let repositories = json_of(server.get("/api/repositories").send().await.unwrap()).await;
    assert!(repositories.as_array().unwrap().iter().any(|r| r["name"] == "org/api"), "{repositories}");
    let users = json_of(server.get("/api/users").send().await.unwrap()).await;
    assert!(users.as_array().unwrap().iter().any(|u| u["email"] == "ann@example.com"), "{users}");

    let deleted =
        server.as_user(Method::DELETE, &format!("/api/tasks/{id}"), "tester@example.com").send().await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(json_of(deleted).await["deleted_at"].is_string());
    assert_eq!(error_code(server.get(&location).send().await.unwrap()).await, (404, "not_found".to_owned()));
    let again = server.as_user(Method::DELETE, &format!("/api/tasks/{id}"), "tester@example.com").send().await.unwrap();
    assert_eq!(again.status(), 404);
}

per_backend!(a_task_goes_through_its_life_over_rest);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_filter_and_page_like_get_tasks() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    for i in 0..5 {
        let body = json!({"title": format!("task {i}"), "repository": if i % 2 == 0 { "even" } else { "odd" }, "assignee_id": if i < 2 { "me" } else { "bob@example.com" }, "priority": if i == 4 { "urgent" } else { "low" }});
        assert_eq!(server.post("/api/tasks", body).send().await.unwrap().status(), 201);
    }
    let count = |page: &Value| page["tasks"].as_array().unwrap().len();
    assert_eq!(count(&json_of(server.get("/api/tasks").send().await.unwrap()).await), 5);
    assert_eq!(count(&json_of(server.get("/api/tasks?repository=even").send().await.unwrap()).await), 3);
    assert_eq!(count(&json_of(server.get("/api/tasks?user_id=me").send().await.unwrap()).await), 2);
    assert_eq!(
        count(&json_of(server.get("/api/tasks?assignee=bob@example.com&priority=urgent").send().await.unwrap()).await),
        1
    );
    assert_eq!(count(&json_of(server.get("/api/tasks?q=task%203").send().await.unwrap()).await), 1);
    assert_eq!(count(&json_of(server.get("/api/tasks?status=").send().await.unwrap()).await), 5, "blank means any");

    // Pages of two, following next_cursor, see every task once.
    let mut seen = Vec::new();
    let mut path = "/api/tasks?limit=2".to_owned();
    loop {
        let page = json_of(server.get(&path).send().await.unwrap()).await;
        seen.extend(page["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/tasks?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    let summary = json_of(server.get("/api/tasks?detail=summary&limit=1").send().await.unwrap()).await;
    assert!(summary["tasks"][0].get("assignee").is_some() && summary["tasks"][0].get("version").is_none(), "{summary}");

    for (query, field) in [
        ("status=done", "status"),
        ("priority=whenever", "priority"),
        ("limit=0", "limit"),
        ("limit=-5", "limit"),
        ("limit=100000", "limit"),
        ("limit=ten", "limit"),
        ("cursor=forged", "cursor"),
        ("user_id=nobody", "user_id"),
        ("repository=a%20b", "repository"),
        ("colour=red", "colour"),
    ] {
        let response = server.get(&format!("/api/tasks?{query}")).send().await.unwrap();
        let status = response.status();
        let body = json_of(response).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_if_match_gets_412_with_the_current_task() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let task = json_of(server.post("/api/tasks", json!({"title": "contested"})).send().await.unwrap()).await;
    let id = task["id"].as_str().unwrap();
    let path = format!("/api/tasks/{id}");
    let first = server
        .as_user(Method::PATCH, &path, "ann@example.com")
        .header("if-match", "\"1\"")
        .json(&json!({"priority": "high"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let stale = server
        .as_user(Method::PATCH, &path, "bob@example.com")
        .header("if-match", "\"1\"")
        .json(&json!({"priority": "low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    assert_eq!(stale.headers()["etag"], "\"2\"");
    let body = json_of(stale).await;
    assert_eq!(body["error"]["code"], "version_conflict");
    assert_eq!(body["error"]["details"]["current"]["priority"], "high");
    assert_eq!(body["error"]["details"]["current"]["version"], 2);
    // The same through the body's expected_version is a 409.
    let stale = server
        .as_user(Method::PUT, &format!("{path}/status"), "bob@example.com")
        .json(&json!({"status": "blocked", "expected_version": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let stale_delete =
        server.as_user(Method::DELETE, &path, "bob@example.com").header("if-match", "1").send().await.unwrap();
    assert_eq!(stale_delete.status(), 412);
    // Nothing changed.
    let now = json_of(server.get(&path).send().await.unwrap()).await;
    assert_eq!(
        (now["priority"].as_str(), now["status"].as_str(), now["version"].as_i64()),
        (Some("high"), Some("not_started"), Some(2))
    );
    // A garbage If-Match is refused, not ignored.
    let response = server
        .as_user(Method::PATCH, &path, "bob@example.com")
        .header("if-match", "W/\"x\"")
        .json(&json!({"priority": "low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (422, "invalid_argument".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_with_the_same_idempotency_key_returns_the_first_task() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let create = || server.post("/api/tasks", json!({"title": "once"})).header("idempotency-key", "retry-42");
    let first = create().send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first = json_of(first).await;
    let second = create().send().await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(second).await["id"], first["id"]);
    let page = json_of(server.get("/api/tasks").send().await.unwrap()).await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
    let response =
        server.post("/api/tasks", json!({"title": "x"})).header("idempotency-key", "has space").send().await.unwrap();
    assert_eq!(error_code(response).await, (422, "invalid_argument".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_the_callers_own_and_a_different_body_under_it_is_a_409() {
    let db = TestStore::new(Backend::Sqlite).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let create = |email: &str, title: &str| {
        server
            .as_user(reqwest::Method::POST, "/api/tasks", email)
            .json(&json!({"title": title}))
            .header("idempotency-key", "plan-7")
    };
    let ann = json_of(create("ann@example.com", "Plan").send().await.unwrap()).await;
    let bob = create("bob@example.com", "Plan").send().await.unwrap();
    assert_eq!(bob.status(), 201, "another user's key is not ours");
    assert_ne!(json_of(bob).await["id"], ann["id"]);

    let changed = create("ann@example.com", "Another plan").send().await.unwrap();
    let body = json_of_status(changed, 409).await;
    assert_eq!(body["error"]["code"], "idempotency_conflict");
    assert_eq!(body["error"]["details"]["idempotency_key"], "plan-7");
    assert_eq!(body["error"]["details"]["task_id"], ann["id"]);
    assert!(body["error"]["message"].as_str().unwrap().contains("plan-7"), "{body}");
    let page = json_of(server.get("/api/tasks").send().await.unwrap()).await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_without_a_length_is_cut_at_the_limit() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    // A chunked body (no Content-Length) larger than 1 MiB.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..20).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = server
        .client
        .post(server.url("/api/tasks"))
        .bearer_auth(server.token("tester@example.com"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (413, "payload_too_large".to_owned()));
}

/// The JSON body of a response that must have `status`.
async fn json_of_status(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_reached_by_key_and_a_renamed_prefix_keeps_old_keys_working() {
    let db = TestStore::new(Backend::Sqlite).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let created = json_of(
        server.post("/api/tasks", json!({"title": "Keyed", "repository": "org/web-app"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(created["key"], "WEB-1");
    json_of(server.post("/api/tasks", json!({"title": "Other", "repository": "mobile"})).send().await.unwrap()).await;
    for path in ["/api/tasks/WEB-1", "/api/tasks/web-1", "/api/tasks/web-1/history"] {
        let response = server.get(path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let patch = |name: &str, body: Value| {
        server.as_user(Method::PATCH, &format!("/api/repositories/{name}"), "ann@example.com").json(&body)
    };
    let renamed = patch("org%2Fweb-app", json!({"key_prefix": "site"})).send().await.unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(json_of(renamed).await["key_prefix"], "SITE");
    let old = json_of(server.get("/api/tasks/WEB-1").send().await.unwrap()).await;
    assert_eq!((old["id"].clone(), old["key"].clone()), (created["id"].clone(), json!("SITE-1")));
    // Taken by another repository, now or before; not a prefix; no such repository.
    assert_eq!(
        error_code(patch("mobile", json!({"key_prefix": "web"})).send().await.unwrap()).await,
        (422, "invalid_argument".into())
    );
    assert_eq!(
        error_code(patch("mobile", json!({"key_prefix": "SITE"})).send().await.unwrap()).await,
        (422, "invalid_argument".into())
    );
    assert_eq!(
        error_code(patch("mobile", json!({"key_prefix": "a-b"})).send().await.unwrap()).await,
        (422, "invalid_argument".into())
    );
    assert_eq!(
        error_code(patch("nowhere", json!({"key_prefix": "NW"})).send().await.unwrap()).await,
        (404, "not_found".into())
    );
}
