//! Random tool calls through the real binary over stdio (proptest's generators, no shrinking): every
//! call is answered with a result or a clear tool error naming its field, the server keeps serving,
//! and a refused call writes nothing. `PROPTEST_CASES` calls per store (256 by default).

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

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
fn any_call(task: String) -> impl Strategy<Value = (String, Map<String, Value>)> {
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
