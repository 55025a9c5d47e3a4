//! The bad-input corpus (`cases.jsonl`, one case per line, format in `case.rs`) run against both
//! transports and both stores: one server per (transport, store) serves every case in turn. After
//! each case the server must still answer, a rejected call must leave the store exactly as it was,
//! and a value the corpus expects to be stored verbatim must read back byte for byte. `random.rs`
//! adds generated tool calls (bounded by `PROPTEST_CASES`) through the same binary.

mod case;
pub(crate) mod random;
mod target;

use serde_json::{Value, json};
use task_mcp::domain::{Actor, CommentText, Description, Email, IdempotencyKey, PageCursor, RepoName, Title, UserRef};
use task_mcp::service::{CreateTask, ListTasks, UpdateTask};

use self::case::{Case, Expect, Fixtures, Transport};
use self::target::{Outcome, Target};
use crate::support::snapshot::StoreSnapshot;
use crate::support::{self, Backend, TestStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_case_over_stdio_on_postgres() {
    run_corpus(Backend::Postgres, Transport::Stdio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_case_over_stdio_on_sqlite() {
    run_corpus(Backend::Sqlite, Transport::Stdio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_case_over_http_on_postgres() {
    run_corpus(Backend::Postgres, Transport::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_case_over_http_on_sqlite() {
    run_corpus(Backend::Sqlite, Transport::Http).await;
}

#[test]
fn the_corpus_file_parses_and_covers_both_transports() {
    let cases = Case::load_all();
    let stdio = cases.iter().filter(|c| c.runs_on(Transport::Stdio)).count();
    let http = cases.iter().filter(|c| c.runs_on(Transport::Http)).count();
    eprintln!("bad-input corpus: {} cases ({stdio} run over stdio, {http} over HTTP)", cases.len());
    assert!(stdio > 0 && http > 0, "{stdio} stdio and {http} HTTP cases");
}

async fn run_corpus(backend: Backend, transport: Transport) {
    let db = TestStore::new(backend).await;
    let app = support::app(&db.url, None);
    let mut fixtures = fixtures(&app).await;
    let mut target = Target::start(transport, &app, &db.url).await;
    let cases: Vec<Case> = Case::load_all().into_iter().filter(|c| c.runs_on(transport)).collect();
    let mut baseline = StoreSnapshot::take(db.store.as_ref()).await;
    let mut failures = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        // Shown if the run dies in this case (a panic, a server that stopped answering).
        eprintln!("case {}/{}: {}", n + 1, cases.len(), case.name);
        fixtures.latest_seq = baseline.latest_seq;
        let expect = Case::expanded(case.expectation(transport), &fixtures);
        let outcome = target.send(&case.request(&fixtures), &expect).await;
        let mut problems = check(&expect, &outcome);
        let writes = expect.stored.is_some();
        if writes && problems.is_empty() {
            problems.extend(check_stored(&expect, &outcome, &mut target, db.store.as_ref()).await);
        }
        problems.extend(target.still_answers(&fixtures.task).await);
        let after = StoreSnapshot::take(db.store.as_ref()).await;
        if !writes {
            problems.extend(baseline.differences(&after).into_iter().map(|d| format!("the store changed: {d}")));
        }
        baseline = after;
        for problem in problems {
            failures.push(format!(
                "{} ({transport:?}, {backend:?}): {problem}\n    got: {}",
                case.name,
                outcome.shown()
            ));
        }
    }
    eprintln!(
        "bad-input corpus over {transport:?} on {backend:?}: {} cases run, {} failures",
        cases.len(),
        failures.len()
    );
    target.stop().await;
    assert!(failures.is_empty(), "{} of the corpus' checks failed:\n{}", failures.len(), failures.join("\n"));
}

/// The rows bad input aims at: a target task with a comment, a deleted task, a stale cursor.
async fn fixtures(app: &task_mcp::wiring::Parts) -> Fixtures {
    let service = &app.service;
    let actor = Actor::new(Email::parse("email", "tester@example.com").unwrap());
    let create = |title: &str| CreateTask {
        title: Title::parse("title", title).unwrap(),
        description: Some(Description::parse("description", "what bad input aims at").unwrap()),
        assignee: Some(UserRef::Me),
        repository: Some(RepoName::parse("repository", "corpus/target").unwrap()),
        status: None,
        priority: None,
        complexity: None,
        idempotency_key: None,
        parent_id: None,
        blocked_by: Vec::new(),
    };
    // Made with an idempotency key, so a replay of that key with another body is a case too.
    let keyed = CreateTask {
        idempotency_key: Some(IdempotencyKey::parse("idempotency_key", "corpus-key").unwrap()),
        ..create("Corpus target")
    };
    let task = service.create_task(&actor, keyed).await.unwrap().task;
    service.add_comment(&actor, task.id, CommentText::parse("comment", "a first comment").unwrap()).await.unwrap();
    // A cursor after the newest of three tasks; then that task changes, so the cursor is stale.
    let mut pages = Vec::new();
    for title in ["page one", "page two", "page three"] {
        pages.push(service.create_task(&actor, create(title)).await.unwrap().task);
    }
    let page = service.list_tasks(&actor, ListTasks { limit: Some(1), ..ListTasks::default() }).await.unwrap();
    let stale_cursor = page.next_cursor.expect("a second page");
    let change =
        UpdateTask { title: Some(Title::parse("title", "page three, renamed").unwrap()), ..UpdateTask::default() };
    service.update_task(&actor, page.tasks[0].id, change).await.unwrap();
    let deleted = service.create_task(&actor, create("deleted at once")).await.unwrap().task;
    service.delete_task(&actor, deleted.id, None, None).await.unwrap();
    // A cursor after the deleted task is stale in another way: its row left the listing.
    let deleted_cursor = task_mcp::service::cursor::encode(&PageCursor::after(&deleted));
    let completed = service.create_task(&actor, create("completed already")).await.unwrap().task;
    service.update_status(&actor, completed.id, task_mcp::domain::Status::Completed, None, None).await.unwrap();
    let mut chain: Vec<String> = Vec::new();
    for n in 1..=5 {
        let blocked_by = chain.last().map(|id| vec![id.parse().unwrap()]).unwrap_or_default();
        let link = CreateTask { blocked_by, ..create(&format!("chain {n}")) };
        chain.push(service.create_task(&actor, link).await.unwrap().task.id.to_string());
    }
    Fixtures {
        completed: completed.id.to_string(),
        chain,
        task: task.id.to_string(),
        unknown: uuid::Uuid::new_v4().to_string(),
        deleted: deleted.id.to_string(),
        stale_cursor,
        deleted_cursor,
        latest_seq: 0,
    }
}

/// What differs between the expectation and the outcome (empty when it matches).
fn check(expect: &Expect, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(status) = expect.status
        && outcome.status != Some(status)
    {
        problems.push(format!("expected HTTP {status}, got {:?}", outcome.status));
    }
    if let Some(code) = expect.rpc_error {
        match outcome.rpc_error() {
            None => problems.push(format!("expected a JSON-RPC error {code}, got none")),
            Some(frame) => {
                if frame["error"]["code"] != json!(code) {
                    problems.push(format!("expected JSON-RPC error {code}, got {}", frame["error"]["code"]));
                }
                if frame["id"] != expect.id {
                    problems.push(format!("expected the error to answer id {}, got {}", expect.id, frame["id"]));
                }
                let message = frame["error"]["message"].as_str().unwrap_or("");
                if message.is_empty() {
                    problems.push("the JSON-RPC error has no message".into());
                }
                problems.extend(missing_words(&expect.says, message));
                // An invalid-params error about one argument names it in `data`, with what is accepted.
                if let Some(expected) = &expect.field {
                    if frame["error"]["data"]["field"] != json!(expected) {
                        problems.push(format!(
                            "expected the error to name {expected}, it names {}",
                            frame["error"]["data"]["field"]
                        ));
                    }
                    if !message.contains(expected.as_str()) {
                        problems.push(format!("the message does not name {expected}"));
                    }
                }
                if let Some(accepted) = &expect.accepted
                    && frame["error"]["data"]["accepted"] != json!(accepted)
                {
                    problems.push(format!(
                        "expected the error to list {accepted:?}, it lists {}",
                        frame["error"]["data"]["accepted"]
                    ));
                }
            }
        }
    }
    if let Some(code) = &expect.error {
        match outcome.error() {
            None => problems.push(format!("expected a {code} error, got none")),
            Some((error, message)) => {
                let got = error["code"].as_str().unwrap_or("");
                let field = error["details"]["field"].as_str();
                if got != code {
                    problems.push(format!("expected a {code} error, got {got}"));
                }
                if let Some(accepted) = &expect.accepted
                    && error["details"]["accepted"] != json!(accepted)
                {
                    problems.push(format!(
                        "expected the error to list {accepted:?}, it lists {}",
                        error["details"]["accepted"]
                    ));
                }
                if message.is_empty() {
                    problems.push("the error has no message".into());
                }
                if let Some(expected) = &expect.field {
                    if field != Some(expected.as_str()) {
                        problems.push(format!("expected the error to name {expected}, it names {field:?}"));
                    }
                    if !message.contains(expected.as_str()) {
                        problems.push(format!("the message does not name {expected}"));
                    }
                }
                problems.extend(missing_words(&expect.says, &message));
            }
        }
    }
    if (expect.ok || expect.stored.is_some()) && !outcome.succeeded() {
        problems.push("expected success".into());
    }
    if let Some(event) = &expect.event
        && outcome.first_event.as_deref() != Some(event.as_str())
    {
        problems.push(format!("expected a first event {event:?}, got {:?}", outcome.first_event));
    }
    if expect.silent && (outcome.frame.is_some() || !outcome.stray.is_empty()) {
        problems.push("expected no answer".into());
    }
    let expects_something = expect.silent
        || expect.status.is_some()
        || expect.rpc_error.is_some()
        || expect.error.is_some()
        || expect.ok
        || expect.stored.is_some()
        || expect.event.is_some();
    if !expects_something {
        problems.push("the case expects nothing: give error, rpc_error, status, ok, stored, event or silent".into());
    }
    problems
}

fn missing_words(words: &[String], text: &str) -> Vec<String> {
    words.iter().filter(|w| !text.contains(w.as_str())).map(|w| format!("the message does not say {w:?}")).collect()
}

/// A value the case expects stored verbatim: as answered, as read back through the same transport,
/// as held by the store, and found (literally, and only where it occurs) by a search.
async fn check_stored(
    expect: &Expect,
    outcome: &Outcome,
    target: &mut Target,
    store: &dyn task_mcp::store::Store,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(stored) = &expect.stored else { return problems };
    let Some(result) = outcome.result() else {
        return vec!["no result to read the stored value from".into()];
    };
    // A task, or a comment (`add_task_comment` answers {comment, task_version}).
    let comment = result.get("comment").filter(|c| c.is_object()).or_else(|| result.get("task_id").map(|_| &result));
    let task_id = match comment {
        Some(comment) => comment["task_id"].as_str(),
        None => result["id"].as_str(),
    };
    let Some(task_id) = task_id.and_then(|id| uuid::Uuid::parse_str(id).ok()) else {
        return vec![format!("no task id in the result {result}")];
    };
    let answered = comment.unwrap_or(&result);
    let read_back = target.read_back(&task_id.to_string(), comment.is_some()).await;
    let task = store.get_task(task_id).await.expect("read the task").expect("the task exists");
    let comments = store.list_comments(task_id).await.expect("read the comments");
    for (field, value) in stored {
        if answered.get(field) != Some(value) {
            problems.push(format!("{field} was answered as {:?}, not as sent", answered.get(field)));
        }
        if read_back.get(field) != Some(value) {
            problems.push(format!("{field} reads back as {:?}, not as sent", read_back.get(field)));
        }
        let held = match (comment.is_some(), field.as_str()) {
            (true, "comment") => comments.last().map(|c| c.comment.clone()),
            (false, "title") => Some(task.title.clone()),
            (false, "description") => task.description.clone(),
            (false, "repository") => task.repository.clone(),
            (_, other) => panic!("stored: no store read-back for {other:?}"),
        };
        if held.as_deref() != value.as_str() {
            problems.push(format!("{field} is held by the store as {held:?}, not as sent"));
        }
    }
    if let Some(needle) = &expect.search {
        let found = target.search(needle).await;
        let all = store.list_tasks(&task_mcp::store::TaskQuery { limit: 10_000, ..Default::default() }).await.unwrap();
        let lower = needle.to_lowercase();
        let mut holding: Vec<String> = all
            .iter()
            .filter(|t| {
                t.title.to_lowercase().contains(&lower)
                    || t.description.as_deref().is_some_and(|d| d.to_lowercase().contains(&lower))
            })
            .map(|t| t.id.to_string())
            .collect();
        holding.sort();
        match found {
            Ok(mut found) => {
                found.sort();
                if found != holding {
                    problems.push(format!(
                        "searching {needle:?} found {found:?}, but the tasks holding it are {holding:?}"
                    ));
                }
            }
            Err(error) => problems.push(format!("searching {needle:?} failed: {error}")),
        }
    }
    problems
}

/// A JSON value for `shown()` outputs, cut to a readable length.
pub fn cut(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 300 { format!("{}…", text.chars().take(300).collect::<String>()) } else { text }
}
