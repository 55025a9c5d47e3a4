//! The stdio MCP server end to end: the built binary, raw JSON-RPC frames over its stdin/stdout,
//! a database of its own per test, on every backend where the backend matters.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};

use crate::support::mcp::{PROTOCOL, PROTOCOL_DISCOVER, Server, parse_frame};
use crate::support::{BACKENDS, Backend, TestStore};

/// The identity the test processes act as.
const USER: &str = "agent@example.com";

/// Runs `async fn name(backend)` once per backend, as `name::postgres` and `name::sqlite`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
        }
    )*};
}

on_every_backend!(
    every_tool_works,
    the_discover_era_serves_the_same_tools,
    pages_follow_each_other_without_gaps_or_repeats,
    filters_narrow_the_listing,
    a_retried_create_with_the_same_key_returns_the_first_task,
    an_idempotency_key_belongs_to_the_user_whatever_label_they_write_under,
    a_stale_expected_version_is_a_conflict_carrying_the_current_task,
    every_change_writes_its_history_rows,
    me_is_the_process_identity_whatever_label_is_recorded,
    concurrent_processes_on_one_task_lose_no_update,
    closing_stdin_answers_the_calls_in_flight_then_exits_0,
    changes_made_over_stdio_reach_redis_before_the_process_exits,
    next_task_lists_the_ready_tasks_most_urgent_first,
    standup_tells_what_happened_to_the_callers_tasks,
    the_official_python_sdk_gets_the_prompts_and_reads_the_resources,
);

async fn connect(backend: Backend) -> (TestStore, Server) {
    let store = TestStore::new(backend).await;
    let server = Server::connect(&store.url, USER).await;
    (store, server)
}

fn id_of(task: &Value) -> String {
    task["id"].as_str().unwrap_or_else(|| panic!("no id in {task}")).to_owned()
}

/// A URL to a port where nothing listens (bound once, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------------------------
// The handshake and the tool list: no database is needed (nor touched) for them.

#[tokio::test]
async fn initialize_answers_at_once_without_the_database() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nowhere", closed_port());
    let mut server = Server::spawn(&url, USER);
    let info = server.initialize().await;
    assert_eq!(info["protocolVersion"], PROTOCOL);
    assert_eq!(info["serverInfo"]["name"], "task-mcp");
    assert_eq!(info["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(info["capabilities"]["tools"].is_object(), "{info}");
    assert!(info["capabilities"]["prompts"].is_object(), "{info}");
    let instructions = info["instructions"].as_str().expect("instructions");
    assert!(instructions.contains("get_tasks") && instructions.contains("expected_version"), "{instructions}");
    let pong = server.request("ping", json!({})).await;
    assert!(pong["result"].is_object(), "{pong}");
    let (status, _) = server.close().await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn server_discover_answers_without_the_database() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nowhere", closed_port());
    let mut server = Server::spawn(&url, USER);
    let id = 1;
    server
        .send(&json!({"jsonrpc": "2.0", "id": id, "method": "server/discover",
            "params": {"_meta": crate::support::mcp::discover_meta()}}))
        .await;
    let answer = server.answer(id).await;
    let result = &answer["result"];
    let versions: Vec<&str> =
        result["supportedVersions"].as_array().expect("supportedVersions").iter().filter_map(Value::as_str).collect();
    assert!(versions.contains(&PROTOCOL) && versions.contains(&PROTOCOL_DISCOVER), "{versions:?}");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    assert!(result["capabilities"]["prompts"].is_object(), "{result}");
    assert_eq!(result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "task-mcp", "{result}");
    // In this era a request without its metadata is refused as a protocol error.
    server.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let refused = server.answer(2).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let (status, _) = server.close().await;
    assert!(status.success());
}

#[tokio::test]
async fn tools_list_names_every_tool_of_the_spec_with_its_schemas() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nowhere", closed_port());
    let mut server = Server::spawn(&url, USER);
    server.initialize().await;
    let answer = server.request("tools/list", json!({})).await;
    let tools = answer["result"]["tools"].as_array().expect("tools").clone();
    let spec: [(&str, &[&str], &[&str]); 9] = [
        (
            "get_tasks",
            &[
                "user_id",
                "repository",
                "status",
                "assignee",
                "priority",
                "query",
                "limit",
                "cursor",
                "detail",
                "ready",
                "parent_id",
            ],
            &[],
        ),
        ("get_task", &["task_id"], &["task_id"]),
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
                "blocked_by",
                "parent_id",
            ],
            &["title"],
        ),
        (
            "update_task_status",
            &["task_id", "new_status", "updated_by", "comment", "expected_version"],
            &["task_id", "new_status"],
        ),
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
                "add_blocked_by",
                "remove_blocked_by",
                "parent_id",
            ],
            &["task_id"],
        ),
        ("add_task_comment", &["task_id", "comment", "author"], &["task_id", "comment"]),
        ("delete_task", &["task_id", "deleted_by", "reason"], &["task_id"]),
        ("claim_task", &["task_id", "repository", "lease_seconds"], &[]),
        ("release_task", &["task_id", "status", "comment"], &["task_id"]),
    ];
    assert_eq!(tools.len(), spec.len(), "{answer}");
    for (name, arguments, required) in spec {
        let tool = tools.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no tool {name}"));
        assert!(tool["description"].as_str().is_some_and(|d| d.len() > 20), "{name} has no description");
        let input = &tool["inputSchema"];
        assert_eq!(input["type"], "object", "{name}");
        let properties: BTreeSet<&str> =
            input["properties"].as_object().expect("properties").keys().map(|k| k.as_str()).collect();
        assert_eq!(properties, arguments.iter().copied().collect(), "{name}'s arguments");
        for (argument, schema) in input["properties"].as_object().unwrap() {
            assert!(schema["type"].is_string() || schema["type"].is_array(), "{name}.{argument} has no type");
        }
        let listed: BTreeSet<&str> =
            input["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        assert_eq!(listed, required.iter().copied().collect(), "{name}'s required arguments");
        let output = &tool["outputSchema"];
        assert_eq!(output["type"], "object", "{name} has no object outputSchema");
        assert!(output["properties"].is_object(), "{name}'s outputSchema lists no properties");
        let annotations = &tool["annotations"];
        let read_only = name.starts_with("get_");
        assert_eq!(annotations["readOnlyHint"], read_only, "{name}");
        if !read_only {
            assert!(annotations["destructiveHint"].is_boolean() && annotations["idempotentHint"].is_boolean());
        }
    }
    assert_eq!(tools.iter().find(|t| t["name"] == "delete_task").unwrap()["annotations"]["destructiveHint"], true);
    let size = serde_json::to_string(&answer["result"]).unwrap().len();
    let model_facing: usize = tools
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.as_object_mut().unwrap().remove("outputSchema");
            serde_json::to_string(&t).unwrap().len()
        })
        .sum();
    println!("tools/list: {size} bytes in all, {model_facing} bytes without the output schemas");
    // What clients put into the model's context: it must stay small as tools are added.
    assert!(size <= 8 * 1024, "tools/list is {size} bytes (over 8 KB)");
    server.close().await;
}

// ---------------------------------------------------------------------------------------------
// The tools against a real store.

async fn every_tool_works(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let created = mcp
        .ok(
            "create_task",
            json!({
                "title": "Fix the login redirect",
                "description": "After login the user lands on /404.\nRepro: log in from /settings.",
                "assignee_id": "dev@example.com",
                "repository": "org/web",
                "priority": "high",
                "complexity": "low",
            }),
        )
        .await;
    let id = id_of(&created);
    assert_eq!(created["title"], "Fix the login redirect");
    assert_eq!(created["status"], "not_started");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["complexity"], "low");
    assert_eq!(created["assignee_email"], "dev@example.com");
    assert!(created["assignee_id"].is_string());
    assert_eq!(created["repository"], "org/web");
    assert_eq!(created["created_by"], USER);
    assert_eq!(created["updated_by"], USER);
    assert_eq!(created["version"], 1);
    for field in ["created_at", "updated_at", "description"] {
        assert!(created[field].is_string(), "{field} missing from {created}");
    }

    let page = mcp.ok("get_tasks", json!({})).await;
    let tasks = page["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    let summary = &tasks[0];
    assert_eq!(created["key"], "WEB-1", "the first task of org/web");
    assert_eq!(summary["key"], created["key"], "a summary names its task by key: {summary}");
    assert!(summary.get("id").is_none() && summary.get("updated_at").is_none(), "{summary}");
    assert_eq!(summary["assignee"], "dev@example.com");
    assert!(summary.get("description").is_none(), "summary carries only the summary fields: {summary}");
    assert!(page.get("next_cursor").is_none());

    let by_key = mcp.ok("get_task", json!({"task_id": "web-1"})).await;
    assert_eq!(by_key["id"], created["id"], "a key in any case names the task");
    let detail = mcp.ok("get_task", json!({"task_id": id})).await;
    assert_eq!(detail["id"], created["id"]);
    assert_eq!(detail["description"], created["description"]);
    assert!(detail["comments"].as_array().unwrap().is_empty());
    assert!(detail["history"].is_array());

    let started =
        mcp.ok("update_task_status", json!({"task_id": id, "new_status": "in_progress", "expected_version": 1})).await;
    assert_eq!(started["status"], "in_progress");
    assert_eq!(started["version"], 2);

    let edited = mcp
        .ok(
            "update_task",
            json!({"task_id": id, "title": "Fix the login redirect (again)", "priority": "urgent", "assignee_id": "me"}),
        )
        .await;
    assert_eq!(edited["title"], "Fix the login redirect (again)");
    assert_eq!(edited["priority"], "urgent");
    assert_eq!(edited["assignee_email"], USER);
    assert_eq!(edited["description"], created["description"], "omitted fields stay as they were");
    assert_eq!(edited["version"], 3);

    let cleared = mcp.ok("update_task", json!({"task_id": id, "description": "", "repository": ""})).await;
    assert!(cleared["description"].is_null() || cleared["description"] == "", "{cleared}");
    assert!(cleared["repository"].is_null(), "{cleared}");

    let commented = mcp.ok("add_task_comment", json!({"task_id": id, "comment": "Found it: a stale cookie."})).await;
    assert_eq!(commented["comment"]["comment"], "Found it: a stale cookie.");
    assert_eq!(commented["comment"]["author"], USER);
    assert_eq!(commented["comment"]["task_id"], created["id"]);
    let version_after_comment = commented["task_version"].as_i64().expect("task_version");
    assert!(version_after_comment >= cleared["version"].as_i64().unwrap());

    let detail = mcp.ok("get_task", json!({"task_id": id})).await;
    assert_eq!(detail["comments"].as_array().unwrap().len(), 1);
    assert_eq!(detail["version"], version_after_comment);

    let deleted = mcp.ok("delete_task", json!({"task_id": id, "reason": "duplicate of another task"})).await;
    assert_eq!(deleted["id"], created["id"]);
    assert!(deleted["deleted_at"].is_string(), "{deleted}");
    assert_eq!(mcp.fail("get_task", json!({"task_id": id})).await.code(), "not_found");
    assert!(mcp.ok("get_tasks", json!({})).await["tasks"].as_array().unwrap().is_empty());
    let (status, _) = mcp.close().await;
    assert!(status.success());
}

async fn the_discover_era_serves_the_same_tools(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect_discover(&db.url, USER).await;
    let list = mcp.request("tools/list", json!({})).await;
    assert_eq!(list["result"]["tools"].as_array().map(Vec::len), Some(9), "{list}");
    let created = mcp.ok("create_task", json!({"title": "Born in the discover era", "assignee_id": "me"})).await;
    assert_eq!(created["assignee_email"], USER);
    let detail = mcp.ok("get_task", json!({"task_id": id_of(&created)})).await;
    assert_eq!(detail["title"], "Born in the discover era");
    assert_eq!(
        mcp.fail("update_task_status", json!({"task_id": id_of(&created), "new_status": "done"})).await.code(),
        "invalid_argument"
    );
    let (status, _) = mcp.close().await;
    assert!(status.success());
}

async fn pages_follow_each_other_without_gaps_or_repeats(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let mut created = HashSet::new();
    for n in 0..7 {
        created.insert(
            mcp.ok("create_task", json!({"title": format!("task {n}")})).await["key"].as_str().unwrap().to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut arguments = json!({"limit": 3, "detail": "full"});
        if let Some(cursor) = &cursor {
            arguments["cursor"] = json!(cursor);
        }
        let page = mcp.ok("get_tasks", arguments).await;
        let tasks = page["tasks"].as_array().unwrap();
        pages += 1;
        assert!(tasks.len() <= 3);
        for task in tasks {
            assert!(task["version"].is_i64(), "detail full carries every field: {task}");
            seen.push(task["key"].as_str().unwrap().to_owned());
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7, "no task twice: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), created);
    // Newest change first: touching the oldest task brings it to the front.
    let oldest = seen.last().unwrap().clone();
    mcp.ok("update_task_status", json!({"task_id": oldest, "new_status": "in_progress"})).await;
    let first = mcp.ok("get_tasks", json!({"limit": 1})).await;
    assert_eq!(first["tasks"][0]["key"].as_str().unwrap(), oldest);
    mcp.close().await;
}

async fn filters_narrow_the_listing(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let mine = mcp
        .ok(
            "create_task",
            json!({"title": "Write the migration", "assignee_id": "me", "repository": "org/api", "priority": "urgent"}),
        )
        .await;
    let theirs = mcp
        .ok("create_task", json!({"title": "Review the docs", "assignee_id": "ann@example.com", "repository": "org/docs", "description": "the migration guide"}))
        .await;
    let loose = mcp.ok("create_task", json!({"title": "Unassigned 100% chore"})).await;
    mcp.ok("update_task_status", json!({"task_id": id_of(&theirs), "new_status": "blocked"})).await;

    // Summaries name tasks by key.
    let key_of = |task: &Value| task["key"].as_str().unwrap_or_else(|| panic!("no key in {task}")).to_owned();
    let ids = |page: &Value| -> BTreeSet<String> { page["tasks"].as_array().unwrap().iter().map(key_of).collect() };
    let one = |task: &Value| -> BTreeSet<String> { [key_of(task)].into() };
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"assignee": "me"})).await), one(&mine));
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"user_id": "me"})).await), one(&mine));
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"user_id": USER})).await), one(&mine));
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"assignee": "ANN@example.com"})).await), one(&theirs));
    let ann = theirs["assignee_id"].as_str().unwrap();
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"user_id": ann})).await), one(&theirs));
    assert!(ids(&mcp.ok("get_tasks", json!({"assignee": "nobody@example.com"})).await).is_empty());
    assert!(ids(&mcp.ok("get_tasks", json!({"user_id": "me", "assignee": "ann@example.com"})).await).is_empty());
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"repository": "org/api"})).await), one(&mine));
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"status": "blocked"})).await), one(&theirs));
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"priority": "urgent"})).await), one(&mine));
    // `query` matches titles and descriptions, literally.
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"query": "migration"})).await), [key_of(&mine), key_of(&theirs)].into());
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"query": "100%"})).await), one(&loose));
    assert!(ids(&mcp.ok("get_tasks", json!({"query": "_"})).await).is_empty());
    // Blank filters are no filters (models often send "").
    assert_eq!(ids(&mcp.ok("get_tasks", json!({"status": "", "assignee": " "})).await).len(), 3);
    mcp.close().await;
}

async fn a_retried_create_with_the_same_key_returns_the_first_task(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let arguments = json!({"title": "Ship it", "idempotency_key": "session-7/ship-it"});
    let first = mcp.ok("create_task", arguments.clone()).await;
    let again = mcp.ok("create_task", arguments).await;
    assert_eq!(again, first);
    let other = mcp.ok("create_task", json!({"title": "Ship it", "idempotency_key": "session-7/ship-it-2"})).await;
    assert_ne!(other["id"], first["id"]);
    let page = mcp.ok("get_tasks", json!({})).await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 2);
    mcp.close().await;
}

async fn an_idempotency_key_belongs_to_the_user_whatever_label_they_write_under(backend: Backend) {
    let (db, mut ann) = connect(backend).await;
    let mut bob = Server::connect(&db.url, "bob@example.com").await;
    let plan = |label: &str, title: &str| json!({"title": title, "created_by": label, "idempotency_key": "plan-9"});
    let first = ann.ok("create_task", plan("Planner Bot", "Plan")).await;
    let bobs = bob.ok("create_task", plan("Planner Bot", "Plan")).await;
    assert_ne!(bobs["id"], first["id"], "two users under one label get two tasks");
    let relabelled = ann.ok("create_task", plan("Reviewer", "Plan")).await;
    assert_eq!(relabelled["id"], first["id"], "one user under two labels gets one task");

    let refused = ann.fail("create_task", plan("Planner Bot", "Another plan")).await;
    assert_eq!(refused.structured["error"]["code"], "idempotency_conflict");
    assert_eq!(refused.structured["error"]["details"]["task_id"], first["id"]);
    assert!(refused.text.contains("plan-9"), "{}", refused.text);
    assert_eq!(ann.ok("get_tasks", json!({})).await["tasks"].as_array().unwrap().len(), 2);
    bob.close().await;
    ann.close().await;
}

async fn a_stale_expected_version_is_a_conflict_carrying_the_current_task(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let task = mcp.ok("create_task", json!({"title": "Contended"})).await;
    let id = id_of(&task);
    mcp.ok("update_task_status", json!({"task_id": id, "new_status": "in_progress", "expected_version": 1})).await;

    for (tool, arguments) in [
        ("update_task_status", json!({"task_id": id, "new_status": "completed", "expected_version": 1})),
        ("update_task", json!({"task_id": id, "title": "Mine now", "expected_version": 1})),
    ] {
        let conflict = mcp.fail(tool, arguments).await;
        assert_eq!(conflict.code(), "version_conflict", "{}", conflict.text);
        let details = &conflict.structured["error"]["details"];
        assert_eq!(details["expected_version"], 1);
        assert_eq!(details["current_version"], 2);
        assert_eq!(details["current"]["status"], "in_progress");
        assert_eq!(details["current"]["version"], 2);
        assert!(conflict.text.contains("version 2"), "{}", conflict.text);
        assert!(conflict.text.contains("in_progress"), "the text carries the current task: {}", conflict.text);
    }
    let now = mcp.ok("get_task", json!({"task_id": id})).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["title"], "Contended");
    mcp.ok("update_task_status", json!({"task_id": id, "new_status": "completed", "expected_version": 2})).await;
    mcp.close().await;
}

async fn every_change_writes_its_history_rows(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let task = mcp.ok("create_task", json!({"title": "Audited", "priority": "low"})).await;
    let id = id_of(&task);
    mcp.ok("update_task_status", json!({"task_id": id, "new_status": "in_progress", "comment": "starting now"})).await;
    mcp.ok(
        "update_task",
        json!({"task_id": id, "title": "Audited twice", "priority": "high", "updated_by": "Reviewer Bot"}),
    )
    .await;
    let detail = mcp.ok("get_task", json!({"task_id": id})).await;
    let history = detail["history"].as_array().unwrap();
    let row = |field: &str| -> Value {
        history
            .iter()
            .rev()
            .find(|h| h["field_changed"] == field)
            .cloned()
            .unwrap_or_else(|| panic!("no history row for {field}: {history:?}"))
    };
    let status = row("status");
    assert_eq!(status["old_value"], "not_started");
    assert_eq!(status["new_value"], "in_progress");
    assert_eq!(status["changed_by"], USER);
    assert_eq!(status["comment"], "starting now");
    let title = row("title");
    assert_eq!((title["old_value"].as_str(), title["new_value"].as_str()), (Some("Audited"), Some("Audited twice")));
    assert_eq!(title["changed_by"], "Reviewer Bot");
    let priority = row("priority");
    assert_eq!((priority["old_value"].as_str(), priority["new_value"].as_str()), (Some("low"), Some("high")));
    // A change that changes nothing writes nothing.
    let rows = history.len();
    mcp.ok("update_task_status", json!({"task_id": id, "new_status": "in_progress"})).await;
    let again = mcp.ok("get_task", json!({"task_id": id})).await;
    assert_eq!(again["history"].as_array().unwrap().len(), rows);
    assert_eq!(again["version"], detail["version"]);
    mcp.close().await;
}

async fn me_is_the_process_identity_whatever_label_is_recorded(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let labelled =
        mcp.ok("create_task", json!({"title": "Labelled", "assignee_id": "me", "created_by": "Planner Bot"})).await;
    assert_eq!(labelled["created_by"], "Planner Bot");
    assert_eq!(labelled["assignee_email"], USER, "\"me\" is the process identity, not the label");
    let plain = mcp.ok("create_task", json!({"title": "Plain", "created_by": "me"})).await;
    assert_eq!(plain["created_by"], USER);
    let updated = mcp
        .ok("update_task", json!({"task_id": id_of(&plain), "assignee_id": "ME", "updated_by": "Someone Else"}))
        .await;
    assert_eq!(updated["assignee_email"], USER);
    assert_eq!(updated["updated_by"], "Someone Else");
    let comment = mcp.ok("add_task_comment", json!({"task_id": id_of(&plain), "comment": "hi", "author": "me"})).await;
    assert_eq!(comment["comment"]["author"], USER);
    let mine = mcp.ok("get_tasks", json!({"assignee": "me"})).await;
    assert_eq!(mine["tasks"].as_array().unwrap().len(), 2);
    mcp.close().await;
}

async fn concurrent_processes_on_one_task_lose_no_update(backend: Backend) {
    const PROCESSES: usize = 4;
    const EACH: usize = 5;
    let (db, mut mcp) = connect(backend).await;
    let task = mcp.ok("create_task", json!({"title": "Shared counter"})).await;
    let id = id_of(&task);
    let mut workers = Vec::new();
    for p in 0..PROCESSES {
        let (url, id) = (db.url.clone(), id.clone());
        workers.push(tokio::spawn(async move {
            let mut agent = Server::connect(&url, &format!("agent{p}@example.com")).await;
            let mut conflicts = 0;
            for k in 0..EACH {
                loop {
                    let current = agent.ok("get_task", json!({"task_id": id})).await;
                    let description = format!("{}p{p}k{k};", current["description"].as_str().unwrap_or(""));
                    let arguments =
                        json!({"task_id": id, "description": description, "expected_version": current["version"]});
                    let result = agent.call("update_task", arguments).await;
                    if !result.is_error {
                        break;
                    }
                    assert_eq!(result.code(), "version_conflict", "{}", result.text);
                    conflicts += 1;
                }
            }
            let (status, _) = agent.close().await;
            assert!(status.success());
            conflicts
        }));
    }
    let mut conflicts = 0;
    for worker in workers {
        conflicts += worker.await.expect("worker");
    }
    let last = mcp.ok("get_task", json!({"task_id": id})).await;
    let description = last["description"].as_str().unwrap();
    for p in 0..PROCESSES {
        for k in 0..EACH {
            assert!(description.contains(&format!("p{p}k{k};")), "lost update p{p}k{k}: {description}");
        }
    }
    assert_eq!(last["version"], 1 + (PROCESSES * EACH) as i64);
    let rows = last["history"].as_array().unwrap().iter().filter(|h| h["field_changed"] == "description").count();
    assert_eq!(rows, PROCESSES * EACH);
    println!("{backend:?}: {} updates from {PROCESSES} processes, {conflicts} conflicts retried", PROCESSES * EACH);
    mcp.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_carries_nothing_but_json_rpc_frames() {
    for backend in BACKENDS {
        let db = TestStore::new(backend).await;
        // The most talkative log level: every log line must still go to stderr.
        let mut mcp = Server::spawn_with(&[("DATABASE_URL", &db.url), ("TASK_MCP_USER", USER), ("RUST_LOG", "trace")]);
        mcp.initialize().await;
        mcp.request("tools/list", json!({})).await;
        let task = mcp.ok("create_task", json!({"title": "Quiet please"})).await;
        mcp.fail("update_task_status", json!({"task_id": id_of(&task), "new_status": "nope"})).await;
        mcp.fail("get_task", json!({"task_id": uuid::Uuid::new_v4().to_string()})).await;
        mcp.send(&json!({"jsonrpc": "2.0", "id": 99, "method": "no/such/method"})).await;
        let unknown = mcp.answer(99).await;
        assert!(unknown["error"].is_object(), "{unknown}");
        let unknown_tool = mcp.request("tools/call", json!({"name": "drop_database", "arguments": {}})).await;
        assert!(unknown_tool["error"].is_object() || unknown_tool["result"]["isError"] == true, "{unknown_tool}");
        let stderr_so_far = mcp.stderr();
        let (status, frames) = mcp.close().await;
        assert!(status.success(), "{backend:?}");
        assert!(frames.len() >= 7, "{backend:?}");
        for line in &frames {
            assert!(line.ends_with('\n'));
            parse_frame(line);
        }
        assert!(!stderr_so_far.is_empty(), "{backend:?}: logs go to stderr");
    }
}

async fn closing_stdin_answers_the_calls_in_flight_then_exits_0(backend: Backend) {
    let (db, mut mcp) = connect(backend).await;
    let mut pending = Vec::new();
    for n in 0..5 {
        pending.push(
            mcp.start_request(
                "tools/call",
                json!({"name": "create_task", "arguments": {"title": format!("in flight {n}")}}),
            )
            .await,
        );
    }
    let (status, frames) = mcp.close().await;
    assert!(status.success(), "{status}");
    let answered: HashSet<i64> = frames.iter().map(|l| parse_frame(l)).filter_map(|f| f["id"].as_i64()).collect();
    for id in pending {
        assert!(answered.contains(&id), "request {id} was not answered before exit: {frames:?}");
    }
    // The answers were real: a new session sees the five tasks.
    let mut again = Server::connect(&db.url, USER).await;
    assert_eq!(again.ok("get_tasks", json!({})).await["tasks"].as_array().unwrap().len(), 5);
    again.close().await;
}

async fn changes_made_over_stdio_reach_redis_before_the_process_exits(backend: Backend) {
    let db = TestStore::new(backend).await;
    let redis = crate::support::redis::TestPrefix::new();
    let mut mcp = Server::spawn_with(&[
        ("DATABASE_URL", &db.url),
        ("TASK_MCP_USER", USER),
        ("REDIS_URL", &redis.url),
        ("TASK_MCP_STREAM_PREFIX", &redis.prefix),
    ]);
    mcp.initialize().await;
    let task = mcp.ok("create_task", json!({"title": "Announce me", "repository": "org/news"})).await;
    mcp.ok("update_task_status", json!({"task_id": id_of(&task), "new_status": "completed"})).await;
    // Closing at once: the relay still publishes what was committed before the process exits.
    let (status, _) = mcp.close().await;
    assert!(status.success());
    let events = redis.entries(&redis.stream("notifications"));
    let kinds: Vec<&str> = events.iter().map(|e| e["event_type"].as_str()).collect();
    assert_eq!(kinds, ["task_created", "task_completed"], "{events:?}");
    assert!(events.iter().all(|e| e["task_id"] == id_of(&task) && e["actor"] == USER));
    assert_eq!(redis.entries(&redis.stream("repo:org/news")).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// The process around the tools.

#[tokio::test]
async fn stdin_closed_before_initialize_exits_0() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nowhere", closed_port());
    let server = Server::spawn(&url, USER);
    let (status, frames) = server.close().await;
    assert!(status.success(), "{status}");
    assert!(frames.is_empty(), "{frames:?}");
}

#[tokio::test]
async fn with_postgres_unreachable_tool_calls_say_so_and_the_server_keeps_running() {
    let port = closed_port();
    let url = format!("postgres://tester:s3cret@127.0.0.1:{port}/tasks");
    let mut mcp = Server::connect(&url, USER).await;
    for _ in 0..2 {
        let error = mcp.fail("get_tasks", json!({})).await;
        assert_eq!(error.code(), "unavailable", "{}", error.text);
        assert!(error.text.contains(&format!("127.0.0.1:{port}")), "the text says where: {}", error.text);
        assert!(!error.text.contains("s3cret") && !error.structured.to_string().contains("s3cret"), "{}", error.text);
    }
    let error = mcp.fail("create_task", json!({"title": "Queued?"})).await;
    assert_eq!(error.code(), "unavailable");
    // Still serving.
    assert!(mcp.request("tools/list", json!({})).await["result"]["tools"].is_array());
    let stderr = mcp.stderr();
    let (status, _) = mcp.close().await;
    assert!(status.success());
    assert!(!stderr.contains("s3cret"), "the log never shows the password: {stderr}");
}

#[tokio::test]
async fn a_malformed_database_url_is_reported_by_every_call_and_the_server_keeps_running() {
    for url in ["mysql://root@127.0.0.1/tasks", "postgres://u:s3cret@[::1/broken"] {
        let mut mcp = Server::connect(url, USER).await;
        let error = mcp.fail("get_tasks", json!({})).await;
        // A setting that cannot be right, not an outage: no retry will help.
        assert_eq!(error.code(), "configuration_error", "{}", error.text);
        assert!(error.text.contains("DATABASE_URL"), "{}", error.text);
        assert!(!error.text.contains("s3cret"), "{}", error.text);
        assert!(mcp.request("tools/list", json!({})).await["result"]["tools"].is_array(), "still serving");
        let (status, _) = mcp.close().await;
        assert!(status.success(), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_while_postgres_is_down_recovers_when_it_comes_back() {
    let db = TestStore::new(Backend::Postgres).await;
    // The test database, reached through a port where nothing listens yet.
    let port = closed_port();
    let (authority_start, authority_end) = authority(&db.url);
    let mut real = db.url[authority_start..authority_end].rsplit('@').next().unwrap().to_owned();
    if !real.contains(':') {
        real.push_str(":5432");
    }
    let host_port = format!("127.0.0.1:{port}");
    let via_proxy = format!(
        "{}{}{}",
        &db.url[..authority_start],
        match db.url[authority_start..authority_end].rsplit_once('@') {
            Some((userinfo, _)) => format!("{userinfo}@{host_port}"),
            None => host_port.clone(),
        },
        &db.url[authority_end..]
    );
    let mut mcp = Server::connect(&via_proxy, USER).await;
    assert_eq!(mcp.fail("get_tasks", json!({})).await.code(), "unavailable");

    // PostgreSQL "comes back": a proxy starts listening on that port.
    let listener = tokio::net::TcpListener::bind(&host_port).await.expect("bind the proxy port");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let real = real.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&real).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let mut recovered = None;
    for _ in 0..50 {
        let result = mcp.call("create_task", json!({"title": "After the outage"})).await;
        if !result.is_error {
            recovered = Some(result.structured);
            break;
        }
        assert_eq!(result.code(), "unavailable", "{}", result.text);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let task = recovered.expect("the server did not recover once PostgreSQL answered");
    assert_eq!(task["title"], "After the outage");
    mcp.close().await;
}

#[tokio::test]
async fn an_invalid_identity_setting_is_a_clear_tool_error() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut mcp = Server::connect(&db.url, "not an email").await;
    let error = mcp.fail("get_tasks", json!({})).await;
    assert_eq!(error.code(), "invalid_argument");
    assert!(error.text.contains("TASK_MCP_USER"), "{}", error.text);
    mcp.close().await;
}

/// Where the `user@host:port` part of a URL starts and ends.
fn authority(url: &str) -> (usize, usize) {
    let start = url.find("://").expect("scheme") + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    (start, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_resources_listed_for_the_caller_and_read_as_markdown_by_key() {
    let (_db, mut mcp) = connect(Backend::Sqlite).await;
    let mine = mcp.ok("create_task", json!({"title": "Mine to do", "repository": "web", "assignee_id": "me"})).await;
    mcp.ok("create_task", json!({"title": "Someone else's", "assignee_id": "other@example.com"})).await;
    let done = mcp.ok("create_task", json!({"title": "Mine and done", "assignee_id": "me"})).await;
    mcp.ok("update_task_status", json!({"task_id": done["key"], "new_status": "completed"})).await;
    mcp.ok("add_task_comment", json!({"task_id": "web-1", "comment": "half way there"})).await;

    let templates = mcp.request("resources/templates/list", json!({})).await;
    assert_eq!(templates["result"]["resourceTemplates"][0]["uriTemplate"], "task://{key}", "{templates}");
    let listed = mcp.request("resources/list", json!({})).await;
    let uris: Vec<&str> =
        listed["result"]["resources"].as_array().unwrap().iter().map(|r| r["uri"].as_str().unwrap()).collect();
    assert_eq!(uris, [format!("task://{}", mine["key"].as_str().unwrap())], "only my open tasks: {listed}");

    let read = mcp.request("resources/read", json!({"uri": "task://web-1"})).await;
    let contents = &read["result"]["contents"][0];
    assert_eq!(contents["mimeType"], "text/markdown", "{read}");
    let text = contents["text"].as_str().unwrap();
    assert!(text.starts_with("# WEB-1 Mine to do"), "{text}");
    assert!(text.contains("half way there") && text.contains("status: not_started"), "{text}");

    for uri in ["task://WEB-99", "task://not a key", "https://example.com/WEB-1"] {
        let missing = mcp.request("resources/read", json!({"uri": uri})).await;
        assert_eq!(missing["error"]["code"], -32002, "{uri}: {missing}");
    }
}

// ---------------------------------------------------------------------------------------------
// Prompts: the slash commands, rendered from the store.

/// The text of a prompt's one message; panics with the answer when it is an error.
async fn prompt_text(mcp: &mut Server, name: &str, arguments: Value) -> String {
    let got = mcp.request("prompts/get", json!({"name": name, "arguments": arguments})).await;
    let messages = got["result"]["messages"].as_array().unwrap_or_else(|| panic!("{name}: {got}"));
    assert_eq!(messages.len(), 1, "{got}");
    assert_eq!(messages[0]["role"], "user", "{got}");
    messages[0]["content"]["text"].as_str().unwrap_or_else(|| panic!("{got}")).to_owned()
}

#[tokio::test]
async fn prompts_list_is_small_and_names_every_argument() {
    let url = format!("postgres://postgres@127.0.0.1:{}/nowhere", closed_port());
    let mut server = Server::spawn(&url, USER);
    server.initialize().await;
    let answer = server.request("prompts/list", json!({})).await;
    let prompts = answer["result"]["prompts"].as_array().unwrap_or_else(|| panic!("{answer}"));
    let shape: Vec<(String, Vec<(String, bool)>)> = prompts
        .iter()
        .map(|p| {
            assert!(p["description"].as_str().is_some_and(|d| d.len() <= 60), "a short description: {p}");
            let arguments = p["arguments"].as_array().unwrap_or_else(|| panic!("{p}"));
            let arguments = arguments
                .iter()
                .map(|a| {
                    assert!(a["description"].is_string(), "{a}");
                    (a["name"].as_str().unwrap().to_owned(), a["required"].as_bool().unwrap())
                })
                .collect();
            (p["name"].as_str().unwrap().to_owned(), arguments)
        })
        .collect();
    let expected = [
        ("next_task", vec![("repository", false)]),
        ("plan_work", vec![("goal", true), ("repository", false)]),
        ("standup", vec![("since", false)]),
    ];
    let expected: Vec<(String, Vec<(String, bool)>)> = expected
        .into_iter()
        .map(|(name, args)| (name.to_owned(), args.into_iter().map(|(a, r)| (a.to_owned(), r)).collect()))
        .collect();
    assert_eq!(shape, expected, "{answer}");
    let size = serde_json::to_string(&answer["result"]).unwrap().len();
    println!("prompts/list: {size} bytes");
    assert!(size <= 1024, "prompts/list is {size} bytes (over 1 KB)");
    let unknown = server.request("prompts/get", json!({"name": "next"})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert_eq!(unknown["error"]["data"]["prompts"], json!(["next_task", "plan_work", "standup"]), "{unknown}");
    let (status, _) = server.close().await;
    assert!(status.success());
}

async fn next_task_lists_the_ready_tasks_most_urgent_first(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let low = mcp.ok("create_task", json!({"title": "Tidy the footer", "repository": "web", "priority": "low"})).await;
    let urgent =
        mcp.ok("create_task", json!({"title": "Fix the login loop", "repository": "web", "priority": "urgent"})).await;
    let waiting = mcp
        .ok("create_task", json!({"title": "Ship after the fix", "repository": "web", "blocked_by": [urgent["key"]]}))
        .await;
    let theirs = mcp
        .ok("create_task", json!({"title": "Someone else's", "repository": "web", "assignee_id": "o@example.com"}))
        .await;
    let elsewhere = mcp.ok("create_task", json!({"title": "In the API", "repository": "api"})).await;
    let taken = mcp.ok("create_task", json!({"title": "Already taken", "repository": "web"})).await;
    mcp.ok("claim_task", json!({"task_id": taken["key"]})).await;

    let text = prompt_text(&mut mcp, "next_task", json!({"repository": "web"})).await;
    let key = |t: &Value| t["key"].as_str().unwrap().to_owned();
    let (at_urgent, at_low) = (text.find(&key(&urgent)), text.find(&key(&low)));
    assert!(at_urgent.is_some() && at_low.is_some() && at_urgent < at_low, "urgent first: {text}");
    assert!(text.contains(&format!("- {} urgent Fix the login loop", key(&urgent))), "{text}");
    for absent in [&waiting, &theirs, &elsewhere, &taken] {
        assert!(!text.contains(&key(absent)), "{} is not ready here: {text}", key(absent));
    }
    for tool in ["claim_task", "add_task_comment", "update_task_status", "release_task", "\"completed\""] {
        assert!(text.contains(tool), "{tool}: {text}");
    }
    // Every repository: the API's task too.
    let all = prompt_text(&mut mcp, "next_task", json!({"repository": "*"})).await;
    assert!(all.contains(&key(&elsewhere)) && all.contains(&key(&urgent)), "{all}");
    let none = prompt_text(&mut mcp, "next_task", json!({"repository": "empty"})).await;
    assert!(none.starts_with("No task is ready in empty"), "{none}");
    let (status, _) = mcp.close().await;
    assert!(status.success());
}

async fn standup_tells_what_happened_to_the_callers_tasks(backend: Backend) {
    let (_db, mut mcp) = connect(backend).await;
    let mine = mcp.ok("create_task", json!({"title": "Mine", "repository": "web", "assignee_id": "me"})).await;
    let key = mine["key"].as_str().unwrap().to_owned();
    mcp.ok("update_task_status", json!({"task_id": key, "new_status": "in_progress"})).await;
    mcp.ok("add_task_comment", json!({"task_id": key, "comment": "Half way:\nthe parser is done."})).await;
    mcp.ok("update_task_status", json!({"task_id": key, "new_status": "blocked", "comment": "waiting on review"}))
        .await;
    let theirs = mcp.ok("create_task", json!({"title": "Theirs", "assignee_id": "o@example.com"})).await;
    mcp.ok("add_task_comment", json!({"task_id": theirs["key"], "comment": "not mine"})).await;

    let text = prompt_text(&mut mcp, "standup", json!({})).await;
    assert!(text.contains(USER), "{text}");
    assert!(text.contains(&format!("{key} Mine (blocked, medium)")), "{text}");
    for line in [
        "created",
        "status: not_started → in_progress",
        "commented: Half way: the parser is done.",
        "status: in_progress → blocked (waiting on review)",
    ] {
        assert!(text.contains(line), "{line:?} missing: {text}");
    }
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle}: {text}"));
    assert!(at("→ in_progress") < at("commented") && at("commented") < at("→ blocked"), "oldest first: {text}");
    assert!(!text.contains("Theirs") && !text.contains("not mine"), "only the caller's tasks: {text}");
    // Every accepted form of `since` is served; a span shorter than the test still holds the changes.
    let started = mine["created_at"].as_str().unwrap();
    for since in ["1h", "3d", "2w", "90m", started] {
        let text = prompt_text(&mut mcp, "standup", json!({"since": since})).await;
        assert!(text.contains("→ blocked"), "since {since}: {text}");
    }
    // A task whose only change since then is a comment (which leaves updated_at alone) is there,
    // with that comment only; the changes before that moment are not.
    let quiet = mcp.ok("create_task", json!({"title": "Quiet", "assignee_id": "me"})).await;
    let quiet_key = quiet["key"].as_str().unwrap().to_owned();
    let commented = mcp.ok("add_task_comment", json!({"task_id": quiet_key, "comment": "still on it"})).await;
    let at = commented["comment"]["created_at"].as_str().unwrap();
    let text = prompt_text(&mut mcp, "standup", json!({"since": at})).await;
    assert!(text.contains(&format!("{quiet_key} Quiet")) && text.contains("commented: still on it"), "{text}");
    assert!(!text.contains(&key) && !text.contains("created"), "nothing before {at}: {text}");
    let (status, _) = mcp.close().await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_work_names_the_tools_and_arguments_that_link_tasks() {
    let (_db, mut mcp) = connect(Backend::Sqlite).await;
    let goal = "Let users export their data as CSV.\nBoth the web app and the API.";
    let text = prompt_text(&mut mcp, "plan_work", json!({"goal": goal, "repository": "org/web"})).await;
    assert!(text.contains(goal), "the goal as given: {text}");
    for words in ["create_task", "parent_id", "blocked_by", "update_task", "add_blocked_by", "get_tasks", "\"org/web\""]
    {
        assert!(text.contains(words), "{words}: {text}");
    }
    let listed = mcp.ok("get_tasks", json!({"repository": "*"})).await;
    assert!(listed["tasks"].as_array().unwrap().is_empty(), "a prompt changes nothing: {listed}");
    let (status, _) = mcp.close().await;
    assert!(status.success());
}

/// The official MCP Python SDK (`tests/python/prompts_client.py`), in both handshakes.
async fn the_official_python_sdk_gets_the_prompts_and_reads_the_resources(backend: Backend) {
    let python = crate::support::python::sdk_python();
    for mode in ["legacy", "auto"] {
        let db = TestStore::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let output = tokio::process::Command::new(&python)
            .arg(crate::support::python::script("prompts_client.py"))
            .arg(env!("CARGO_BIN_EXE_task-mcp"))
            .arg(mode)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &db.url)
            .env("TASK_MCP_USER", USER)
            .env("TASK_MCP_DATA_DIR", dir.path())
            .output()
            .await
            .expect("run the Python client");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{mode}: the Python client failed:\n{stderr}");
        let said: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
        let key = said["key"].as_str().unwrap();
        let names: Vec<&str> =
            said["prompts"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["next_task", "plan_work", "standup"], "{mode}: {said}");
        assert_eq!(said["prompts"][1]["arguments"][0], json!({"name": "goal", "required": true}), "{mode}: {said}");
        let first =
            |field: &str| said[field][0].as_str().unwrap_or_else(|| panic!("{mode} {field}: {said}")).to_owned();
        assert!(first("next_task").contains(&format!("- {key} high Read by the SDK")), "{mode}: {said}");
        assert!(first("plan_work").contains("Port the CLI to Python"), "{mode}: {said}");
        for standup in [first("standup"), first("standup_default")] {
            assert!(standup.contains("commented: started from Python"), "{mode}: {standup}");
        }
        assert_eq!(said["unknown_prompt"]["code"], -32602, "{mode}: {said}");
        assert_eq!(said["bad_since"]["code"], -32602, "{mode}: {said}");
        assert_eq!(said["bad_since"]["data"]["field"], "since", "{mode}: {said}");
        assert_eq!(said["missing_goal"]["data"]["field"], "goal", "{mode}: {said}");
        assert_eq!(
            said["resources"],
            json!([{"uri": format!("task://{key}"), "name": format!("{key} Read by the SDK"), "mime": "text/markdown"}]),
            "{mode}: {said}"
        );
        assert_eq!(said["read"][0]["mime"], "text/markdown", "{mode}: {said}");
        assert!(
            said["read"][0]["text"].as_str().unwrap().starts_with(&format!("# {key} Read by the SDK")),
            "{mode}: {said}"
        );
        // Resource not found is -32002 before protocol 2026-07-28, invalid params since.
        let not_found = if mode == "legacy" { -32002 } else { -32602 };
        assert_eq!(said["missing_resource"]["code"], not_found, "{mode}: {said}");
    }
}
