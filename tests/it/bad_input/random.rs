//! Random calls through the real binary (proptest's generators, no shrinking): tool calls over stdio
//! and REST requests to `serve`. Every call is answered with a result or a clear error naming its
//! field (never a protocol error, never a 5xx), the server keeps serving, and a refused call writes
//! nothing. `PROPTEST_CASES` calls per store and transport (256 by default).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

use crate::support::http::{ServeProcess, token_for};
use crate::support::mcp::Server;
use crate::support::snapshot::StoreSnapshot;
use crate::support::{Backend, TestStore};

/// Each tool and the arguments it knows.
const TOOLS: &[(&str, &[&str])] = &[
    ("get_tasks", &["user_id", "repository", "status", "assignee", "priority", "query", "limit", "cursor", "detail"]),
    ("get_task", &["task_id"]),
    (
        "create_task",
        &[
            "title",
            "description",
            "assignee_id",
            "repository",
            "priority",
            "complexity",
            "created_by",
            "idempotency_key",
        ],
    ),
    ("update_task_status", &["task_id", "new_status", "updated_by", "comment", "expected_version"]),
    (
        "update_task",
        &[
            "task_id",
            "title",
            "description",
            "priority",
            "complexity",
            "assignee_id",
            "repository",
            "updated_by",
            "expected_version",
        ],
    ),
    ("add_task_comment", &["task_id", "comment", "author"]),
    ("delete_task", &["task_id", "deleted_by", "reason"]),
];

/// A value an argument may get: mostly strings near the rules' edges, sometimes the target's id,
/// sometimes the wrong type.
fn any_value(task: String) -> impl Strategy<Value = Value> {
    let text = prop::collection::vec(
        prop_oneof![
            6 => any::<char>(),
            2 => prop::sample::select(vec!['\0', '\n', ' ', '\u{202E}', '\u{2028}', '%', '_', '\\', '\'', '@', 'é', '😀']),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>());
    prop_oneof![
        6 => text.prop_map(Value::String),
        2 => prop::sample::select(vec!["me", "low", "high", "blocked", "completed", "full", "summary", "agent@example.com", "org/repo", ""])
            .prop_map(|s| json!(s)),
        3 => Just(json!(task)),
        2 => any::<i64>().prop_map(|n| json!(n)),
        1 => (0i64..5).prop_map(|n| json!(n)),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(json!(["a"])),
        1 => Just(json!({"nested": true})),
    ]
}

/// One call: a tool, and some of its arguments (and now and then one it does not know).
pub(crate) fn any_call(task: String) -> impl Strategy<Value = (String, Map<String, Value>)> {
    (0..TOOLS.len()).prop_flat_map(move |i| {
        let (tool, fields) = TOOLS[i];
        let key =
            prop_oneof![8 => prop::sample::select(fields.to_vec()).prop_map(str::to_owned), 1 => Just("id".to_owned())];
        prop::collection::btree_map(key, any_value(task.clone()), 0..5)
            .prop_map(move |args| (tool.to_owned(), args.into_iter().collect()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_tool_calls_over_stdio_on_postgres_are_answered_and_refusals_write_nothing() {
    random_calls(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_tool_calls_over_stdio_on_sqlite_are_answered_and_refusals_write_nothing() {
    random_calls(Backend::Sqlite).await;
}

async fn random_calls(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, "agent@example.com").await;
    let target = mcp.ok("create_task", json!({"title": "random target"})).await;
    let task = target["id"].as_str().expect("an id").to_owned();
    let cases: usize = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    let strategy = any_call(task.clone());
    let mut runner = TestRunner::default();
    let mut before = StoreSnapshot::take(db.store.as_ref()).await;
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..cases {
        let (tool, args) = strategy.new_tree(&mut runner).expect("a call").current();
        let shown = format!("{tool}({})", Value::Object(args.clone()));
        let frame = mcp.request("tools/call", json!({"name": tool, "arguments": args})).await;
        let result =
            frame.get("result").unwrap_or_else(|| panic!("{shown}: a protocol error, not a tool result: {frame}"));
        let after = StoreSnapshot::take(db.store.as_ref()).await;
        if result["isError"] == json!(true) {
            refused += 1;
            let error = &result["structuredContent"]["error"];
            let code = error["code"].as_str().unwrap_or("");
            assert!(["invalid_argument", "not_found", "version_conflict"].contains(&code), "{shown}: {result}");
            if code == "invalid_argument" {
                let field = error["details"]["field"].as_str().unwrap_or("");
                assert!(!field.is_empty(), "{shown}: the refusal names no field: {result}");
            }
            assert_eq!(before.differences(&after), Vec::<String>::new(), "{shown} was refused but wrote");
        } else {
            accepted += 1;
        }
        before = after;
    }
    // Still serving.
    let page = mcp.ok("get_tasks", json!({"limit": 1})).await;
    assert!(page["tasks"].is_array());
    eprintln!("random tool calls over stdio on {backend:?}: {cases} calls, {accepted} accepted, {refused} refused");
    let (status, _) = mcp.close().await;
    assert!(status.success());
}

/// REST routes that take input, with `{id}` for a task id.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/tasks"),
    ("PATCH", "/api/tasks/{id}"),
    ("PUT", "/api/tasks/{id}/status"),
    ("POST", "/api/tasks/{id}/comments"),
    ("DELETE", "/api/tasks/{id}"),
    ("GET", "/api/tasks"),
];
const BODY_FIELDS: &[&str] = &[
    "title",
    "description",
    "status",
    "priority",
    "complexity",
    "assignee_id",
    "repository",
    "comment",
    "reason",
    "expected_version",
    "version",
    "author",
];
const QUERY_FIELDS: &[&str] =
    &["status", "priority", "q", "limit", "cursor", "user_id", "assignee", "repository", "detail"];

/// One REST request: a route, the id in its path, a body (JSON object or raw bytes), a query and
/// maybe an If-Match.
fn any_request(task: String) -> impl Strategy<Value = (String, String, Option<Vec<u8>>, Option<String>)> {
    let id = prop_oneof![3 => Just(task.clone()), 1 => Just("not-a-uuid".to_owned()), 1 => Just(uuid::Uuid::nil().to_string())];
    let object = prop::collection::btree_map(prop::sample::select(BODY_FIELDS.to_vec()), any_value(task.clone()), 0..5)
        .prop_map(|m| {
            serde_json::to_vec(&m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())
                .unwrap_or_default()
        });
    let body = prop_oneof![6 => object.prop_map(Some), 1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Some), 1 => Just(None)];
    let query = prop::collection::vec((prop::sample::select(QUERY_FIELDS.to_vec()), "[ -~]{0,12}"), 0..3)
        .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&"));
    let if_match = prop_oneof![4 => Just(None), 1 => (0i64..4).prop_map(|v| Some(format!("\"{v}\""))), 1 => "[ -~]{0,6}".prop_map(Some)];
    (0..ROUTES.len(), id, body, query, if_match).prop_map(|(route, id, body, query, if_match)| {
        let (method, path) = ROUTES[route];
        let path = path.replace("{id}", &id);
        let target = if query.is_empty() { path } else { format!("{path}?{query}") };
        let body = if method == "GET" { None } else { body };
        (method.to_owned(), target, body, if_match)
    })
}

fn urlencode(value: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a URL");
    url.query_pairs_mut().append_pair("v", value);
    url.query().unwrap_or("v=").trim_start_matches("v=").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_rest_requests_on_postgres_are_answered_and_refusals_write_nothing() {
    random_requests(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_rest_requests_on_sqlite_are_answered_and_refusals_write_nothing() {
    random_requests(Backend::Sqlite).await;
}

async fn random_requests(backend: Backend) {
    let db = TestStore::new(backend).await;
    let (mut serve, _data_dir) = ServeProcess::spawn_on(&db.url);
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().expect("a client");
    let token = token_for("tester@example.com");
    let created: Value = client
        .post(serve.url("/api/tasks"))
        .bearer_auth(&token)
        .json(&json!({"title": "random REST target"}))
        .send()
        .await
        .expect("create the target")
        .json()
        .await
        .expect("the target");
    let task = created["id"].as_str().expect("an id").to_owned();
    let cases: usize = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    let strategy = any_request(task.clone());
    let mut runner = TestRunner::default();
    let mut before = StoreSnapshot::take(db.store.as_ref()).await;
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..cases {
        let (method, target, body, if_match) = strategy.new_tree(&mut runner).expect("a request").current();
        let shown = format!("{method} {target} {:?}", body.as_deref().map(String::from_utf8_lossy));
        let mut request = client
            .request(reqwest::Method::from_bytes(method.as_bytes()).expect("a method"), serve.url(&target))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        if let Some(if_match) = if_match {
            request = request.header("if-match", if_match);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{shown}: no answer: {e}"));
        let status = response.status().as_u16();
        let answer: Value =
            response.json().await.unwrap_or_else(|e| panic!("{shown}: {status} without a JSON body: {e}"));
        assert!(status < 500, "{shown}: {status} {answer}");
        let after = StoreSnapshot::take(db.store.as_ref()).await;
        if status >= 400 {
            refused += 1;
            let error = &answer["error"];
            assert!(error["code"].is_string() && error["message"].is_string(), "{shown}: {status} {answer}");
            if error["code"] == "invalid_argument" {
                let field = error["details"]["field"].as_str().unwrap_or("");
                assert!(!field.is_empty(), "{shown}: the refusal names no field: {answer}");
            }
            assert_eq!(before.differences(&after), Vec::<String>::new(), "{shown} was refused but wrote");
        } else {
            accepted += 1;
        }
        before = after;
    }
    eprintln!("random REST requests on {backend:?}: {cases} requests, {accepted} accepted, {refused} refused");
    let (code, _) = serve.terminate(std::time::Duration::from_secs(20));
    assert_eq!(code, Some(0), "serve did not exit cleanly; stderr:\n{}", serve.stderr_text());
}
