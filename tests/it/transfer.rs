//! `export`, `import` and `copy` through the real binary: a store filled by real calls (valid ones
//! and the random-call generator's) copied SQLite → PostgreSQL → SQLite dumps the same rows, ids and
//! timestamps included; an event stream resumes across the copy; damaged, truncated or foreign files
//! are refused naming their line and leave the target as it was; a store that is not empty is refused.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use task_mcp::store::dump::{DERIVED_COLUMNS, TABLES};

use crate::support::http::{SseReader, TestServer};
use crate::support::mcp::Server;
use crate::support::pg::TestDatabase;
use crate::support::sqlite::TestFile;
use crate::support::{BACKENDS, TestStore};

const USER: &str = "ann@example.com";

fn task_mcp(url: &str, args: &[&str]) -> Output {
    crate::support::binary_command(None)
        .env_remove("REDIS_URL")
        .env("DATABASE_URL", url)
        .env("TASK_MCP_USER", USER)
        .env("RUST_LOG", "warn")
        .args(args)
        .output()
        .expect("run task-mcp")
}

fn succeed(url: &str, args: &[&str]) -> Output {
    let output = task_mcp(url, args);
    assert!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The rows of an export (the lines between the header and the end line), and the header.
fn export(url: &str) -> (Value, Vec<Value>) {
    let output = succeed(url, &["export"]);
    let mut lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let end = lines.pop().expect("an end line");
    assert_eq!(end["end"]["rows"], json!(lines.len() - 1), "the end line counts the rows");
    let header = lines.remove(0);
    (header, lines)
}

fn rows_of<'a>(rows: &'a [Value], table: &str) -> impl Iterator<Item = &'a Value> {
    rows.iter().filter(move |row| row["table"] == table)
}

/// Fills a store through the real stdio server: tasks in repositories, assigned, described in several
/// scripts, commented, moved through statuses, edited, deleted, created with an idempotency key; then
/// the random-call generator's calls (most refused, some accepted with odd values); and an API key.
async fn fill(url: &str) {
    let mut mcp = Server::connect(url, USER).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let priority = ["low", "medium", "high", "urgent"][i % 4];
        let complexity = ["low", "medium", "high"][i % 3];
        let mut arguments = json!({
            "title": format!("task {i} — ünïcödé 😀"),
            "description": format!("line one\nline two of {i} «»"),
            "priority": priority,
            "complexity": complexity,
        });
        if i % 2 == 0 {
            arguments["repository"] = json!(["web-app", "api"][i % 4 / 2]);
        }
        if i % 3 == 0 {
            arguments["assignee_id"] = json!(["me", "bob@example.com"][i % 2]);
        }
        if i == 5 {
            arguments["idempotency_key"] = json!("retry-5");
        }
        ids.push(mcp.ok("create_task", arguments).await["id"].as_str().expect("an id").to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        mcp.ok("add_task_comment", json!({"task_id": id, "comment": format!("comment on {i}")})).await;
        if i % 2 == 1 {
            mcp.ok("update_task_status", json!({"task_id": id, "new_status": "in_progress", "comment": "started"}))
                .await;
        }
        if i % 4 == 1 {
            mcp.ok("update_task_status", json!({"task_id": id, "new_status": "completed"})).await;
        }
        if i % 3 == 2 {
            mcp.ok("update_task", json!({"task_id": id, "title": format!("renamed {i}"), "description": ""})).await;
        }
    }
    mcp.ok("delete_task", json!({"task_id": ids[11], "reason": "duplicate"})).await;
    let generator = crate::bad_input::random::any_call(ids[0].clone());
    let mut runner = TestRunner::deterministic();
    for _ in 0..60 {
        let (tool, arguments) = generator.new_tree(&mut runner).expect("a call").current();
        let frame = mcp.request("tools/call", json!({"name": tool, "arguments": arguments})).await;
        assert!(frame.get("result").is_some(), "{tool}: {frame}");
    }
    let (status, _) = mcp.close().await;
    assert!(status.success());
    succeed(url, &["api-key", "create", "--user", USER, "--name", "ci-agent"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_sqlite_to_postgresql_and_back_keeps_every_row_and_the_event_feed_resumes_across_it() {
    let first = TestFile::create();
    fill(&first.url).await;
    let (header, original) = export(&first.url);
    assert_eq!(header["format"], "task-mcp-dump");
    assert_eq!(header["version"], 1);
    for table in ["users", "repositories", "tasks", "task_history", "task_comments", "events", "api_keys"] {
        assert!(rows_of(&original, table).count() > 0, "the filled store has {table} rows");
    }

    let postgres = TestDatabase::create().await;
    succeed(&postgres.url, &["copy", "--from", &first.url, "--to", &postgres.url]);
    let (_, in_postgres) = export(&postgres.url);
    assert_eq!(in_postgres, original, "PostgreSQL holds what the SQLite file held");

    let last = TestFile::create();
    succeed(&last.url, &["copy", "--from", &postgres.url, "--to", &last.url]);
    let (_, back) = export(&last.url);
    assert_eq!(back, original, "the copy back holds the same rows");

    // The task as a client sees it is the same in each store (the public JSON, not only the rows).
    let live = rows_of(&original, "tasks").find(|task| task["row"]["deleted_at"].is_null()).expect("a live task");
    let id = live["row"]["id"].as_str().unwrap().to_owned();
    let shown: Vec<Value> = [&first.url, &postgres.url, &last.url]
        .iter()
        .map(|url| serde_json::from_slice(&succeed(url, &["show", &id, "--json"]).stdout).expect("JSON"))
        .collect();
    assert_eq!(shown[0], shown[1]);
    assert_eq!(shown[0], shown[2]);

    // A client that saw the first store's events up to some seq resumes on the copy with exactly the
    // events after it, and new events follow the old seqs.
    let seqs: Vec<i64> = rows_of(&original, "events").map(|e| e["row"]["seq"].as_i64().unwrap()).collect();
    let highest = *seqs.last().unwrap();
    let resume_after = seqs[seqs.len() - 4];
    let server = TestServer::start(crate::support::app(&postgres.url, None)).await;
    let response =
        server.get("/api/tasks/stream").header("last-event-id", resume_after.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let event = stream.next(Duration::from_secs(10)).await.expect("a replayed event");
        replayed.push(event.id.expect("an id").parse::<i64>().unwrap());
    }
    assert_eq!(replayed, seqs[seqs.len() - 3..].to_vec());
    let created = server.post("/api/tasks", json!({"title": "after the move"})).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let next = stream.next(Duration::from_secs(10)).await.expect("the new event");
    assert_eq!(next.id.as_deref(), Some((highest + 1).to_string().as_str()), "new events continue the old seqs");
    server.stop().await;
}

/// A dump of a small filled store, as lines.
async fn small_dump() -> Vec<String> {
    let source = TestFile::create();
    let mut mcp = Server::connect(&source.url, USER).await;
    for i in 0..6 {
        let task = mcp.ok("create_task", json!({"title": format!("t{i}"), "assignee_id": "me"})).await;
        mcp.ok("add_task_comment", json!({"task_id": task["id"], "comment": "c"})).await;
    }
    mcp.close().await;
    let output = succeed(&source.url, &["export"]);
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_truncated_or_foreign_dump_is_refused_naming_its_line_and_the_target_stays_empty() {
    let lines = small_dump().await;
    let middle = lines.len() / 2;
    let whole = lines.join("\n") + "\n";
    let mut cases: Vec<(&str, String, String)> = Vec::new();
    let mut corrupted = lines.clone();
    corrupted[middle] = "{\"table\": \"tasks\", \"row\": {\"id\": 42}}".into();
    cases.push(("a line of the wrong shape at 50%", corrupted.join("\n") + "\n", format!("line {}", middle + 1)));
    let mut garbage = lines.clone();
    garbage[middle] = "%%% not json".into();
    cases.push(("a line that is not JSON at 50%", garbage.join("\n") + "\n", format!("line {}", middle + 1)));
    cases.push((
        "cut at a line's end",
        lines[..middle].join("\n") + "\n",
        format!("line {middle}: the file ends here without its end line"),
    ));
    let mut cut = whole.len() * 2 / 3;
    while !whole.is_char_boundary(cut) || whole.as_bytes()[cut - 1] == b'\n' {
        cut -= 1;
    }
    cases.push(("cut inside a line", whole[..cut].to_string(), "truncated".into()));
    let mut future = lines.clone();
    future[0] = future[0].replace("\"version\":1", "\"version\":2");
    cases.push((
        "a version from the future",
        future.join("\n") + "\n",
        "line 1: the dump's format version is 2".into(),
    ));
    let mut foreign = lines.clone();
    foreign[0] = "{\"hello\": \"world\"}".into();
    cases.push(("not a dump", foreign.join("\n") + "\n", "line 1: is not the header".into()));
    let mut miscounted = lines.clone();
    let last_event = miscounted.iter().rposition(|line| line.contains("\"table\":\"events\"")).unwrap();
    miscounted.remove(last_event);
    cases.push(("a row missing", miscounted.join("\n") + "\n", "rows are missing or added".into()));
    let mut reordered = lines.clone();
    let last_row = reordered.len() - 2;
    reordered.swap(1, last_row);
    cases.push(("tables out of order", reordered.join("\n") + "\n", "a dump lists its tables in the order".into()));
    cases.push(("an empty file", String::new(), "line 1: the dump is empty".into()));

    for backend in BACKENDS {
        let target = TestStore::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        for (what, content, expected) in &cases {
            let file = dir.path().join("dump.jsonl");
            std::fs::write(&file, content).unwrap();
            let output = task_mcp(&target.url, &["import", "--from", file.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{backend:?}, {what}: imported");
            assert!(stderr.contains(expected.as_str()), "{backend:?}, {what}: expected {expected:?} in {stderr}");
            let (_, rows) = export(&target.url);
            let kept: Vec<&Value> = rows.iter().filter(|row| row["table"] != "event_log_state").collect();
            assert!(kept.is_empty(), "{backend:?}, {what}: the target is not empty: {kept:?}");
        }
        // The whole file imports.
        let file = dir.path().join("whole.jsonl");
        std::fs::write(&file, &whole).unwrap();
        succeed(&target.url, &["import", "--from", file.to_str().unwrap()]);
        let (_, rows) = export(&target.url);
        assert_eq!(rows.len(), lines.len() - 2, "{backend:?}: every row imported");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_not_empty_is_refused_unless_forced_and_a_forced_clash_changes_nothing() {
    let lines = small_dump().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let file = file.to_str().unwrap();
    for backend in BACKENDS {
        let target = TestStore::new(backend).await;
        succeed(&target.url, &["add", "already here"]);
        let (_, before) = export(&target.url);

        let refused = task_mcp(&target.url, &["import", "--from", file]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success());
        assert!(stderr.contains("already holds 1 task, 1 event"), "{backend:?}: {stderr}");
        assert!(stderr.contains("--force"), "{backend:?}: {stderr}");

        // Forced, the rows go in beside what was there.
        succeed(&target.url, &["import", "--from", file, "--force"]);
        let (_, merged) = export(&target.url);
        // Less the header and end lines and the one event_log_state row, and less the dump's series of
        // tasks without a repository (its key_series and key_prefixes rows): the target has its own, and
        // numbers the imported tasks in it (the repositories' series are made again, as many rows).
        assert_eq!(merged.len(), before.len() + lines.len() - 2 - 1 - 2, "{backend:?}: one event_log_state row");

        // Forced again, every id clashes: the import fails as a whole and changes nothing.
        let clash = task_mcp(&target.url, &["import", "--from", file, "--force"]);
        let stderr = String::from_utf8_lossy(&clash.stderr);
        assert!(!clash.status.success(), "{backend:?}: a clashing import succeeded");
        assert!(stderr.contains("line"), "{backend:?}: the refusal names no line: {stderr}");
        let (_, after) = export(&target.url);
        assert_eq!(after, merged, "{backend:?}: a failed import changed the store");
    }
    let source = TestFile::create();
    let same = task_mcp(&source.url, &["copy", "--from", "sqlite:///nowhere/at/all.db", "--to", &source.url]);
    assert!(String::from_utf8_lossy(&same.stderr).contains("there is no SQLite file at /nowhere/at/all.db"));
}

/// Every column of both stores is carried by a copy or derived by the target: a column added by a
/// migration and forgotten here would be lost in every move between stores.
#[tokio::test]
async fn the_copy_knows_every_column_of_both_stores() {
    let carried = |table: &str, column: &str| {
        TABLES.iter().any(|t| t.name == table && t.columns.iter().any(|c| c.name == column))
            || DERIVED_COLUMNS.contains(&(table, column))
    };
    let postgres = TestStore::new(crate::support::Backend::Postgres).await;
    postgres.store.migrate().await.unwrap();
    let (client, connection) = tokio_postgres::connect(&postgres.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> 'refinery_schema_history'",
            &[],
        )
        .await
        .unwrap();
    let mut forgotten: Vec<String> = rows
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .filter(|(table, column)| !carried(table, column))
        .map(|(table, column)| format!("postgres {table}.{column}"))
        .collect();

    let sqlite = TestStore::new(crate::support::Backend::Sqlite).await;
    sqlite.store.migrate().await.unwrap();
    let path = sqlite.url.strip_prefix("sqlite://").unwrap();
    let conn = rusqlite::Connection::open(Path::new(path)).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'refinery_schema_history'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for table in &tables {
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        forgotten.extend(columns.iter().filter(|c| !carried(table, c)).map(|c| format!("sqlite {table}.{c}")));
    }
    assert_eq!(forgotten, Vec::<String>::new(), "columns a copy would lose: add them to store::dump::TABLES");
    // And nothing the dump names is missing from a store.
    for table in TABLES {
        assert!(tables.contains(&table.name.to_string()), "SQLite has no table {}", table.name);
    }
}

/// A task row of a dump, made up.
fn task_line(i: usize) -> String {
    let row = json!({"table": "tasks", "row": {
        "id": uuid::Uuid::new_v4().to_string(), "title": format!("task {i}"), "description": null,
        "status": "not_started", "priority": "medium", "complexity": "medium", "assignee_id": null,
        "repository_id": null, "created_by": "x", "updated_by": "x", "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z", "version": 1, "deleted_at": null, "idempotency_key": null,
        "idempotency_owner": null, "idempotency_fingerprint": null, "parent_id": null, "claim_holder": null,
        "claim_agent": null, "claim_expires_at": null, "claim_lapsed_holder": null, "key_series_id": null,
        "key_number": null}});
    format!("{row}\n")
}

/// PostgreSQL going down in the middle of an import: the import fails saying so, and once the server
/// is back the target holds nothing of it (one transaction, never committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_cut_off_by_postgresql_going_down_leaves_the_target_as_it_was() {
    use std::io::Write;
    let pg = crate::support::pg::PrivatePostgres::start();
    let url = pg.create_database("target").await;
    let mut import = crate::support::binary_command(None)
        .env_remove("REDIS_URL")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .arg("import")
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the import");
    let mut input = import.stdin.take().unwrap();
    writeln!(input, r#"{{"format":"task-mcp-dump","version":1}}"#).unwrap();
    for i in 0..1200 {
        input.write_all(task_line(i).as_bytes()).unwrap();
    }
    input.flush().unwrap();
    // Two batches are written and the import waits for more lines, inside its transaction.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let driver = tokio::spawn(connection);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'task-mcp' \
                 AND state = 'idle in transaction'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the import never got under way");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    driver.abort();
    pg.stop(crate::support::pg::Shutdown::Fast);
    for i in 1200..1300 {
        // The import may already have given up and closed its input.
        if input.write_all(task_line(i).as_bytes()).is_err() {
            break;
        }
    }
    let _ = writeln!(input, r#"{{"end":{{"rows":1300}}}}"#);
    drop(input);
    let output = import.wait_with_output().expect("the import ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the import succeeded without its server");
    assert!(stderr.contains("PostgreSQL") && stderr.contains("unavailable"), "{stderr}");
    pg.start_again();
    let (_, rows) = export(&url);
    let tasks = rows_of(&rows, "tasks").count();
    assert_eq!(tasks, 0, "the target kept {tasks} tasks of an import that failed");
}
