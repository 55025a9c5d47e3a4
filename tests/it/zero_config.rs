//! Zero configuration: with an empty HOME and no URLs the binary serves MCP over stdio on an
//! embedded SQLite file and `serve` streams its changes; several stdio processes and `serve` share one
//! SQLite file without errors or lost updates, and every event reaches an SSE client.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::support::http::{SECRET, ServeProcess, SseReader, token_for};
use crate::support::mcp::Server;

const USER: &str = "newcomer@example.com";

async fn open_stream(serve: &ServeProcess, token: &str) -> SseReader {
    let response = reqwest::Client::new()
        .get(serve.url(&format!("/api/tasks/stream?access_token={token}")))
        .send()
        .await
        .expect("stream request");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    SseReader::new(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_empty_home_and_no_configuration_stdio_serves_and_serve_streams_its_changes() {
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().to_str().unwrap().to_owned();
    // XDG_DATA_HOME empty counts as unset: the data directory is $HOME/.local/share/task-mcp.
    let env = [("HOME", home_path.as_str()), ("XDG_DATA_HOME", ""), ("TASK_MCP_USER", USER)];
    let serve = ServeProcess::spawn(&env);
    let token = serve.printed_token();
    let mut stream = open_stream(&serve, &token).await;

    let mut mcp = Server::spawn_with(&[("TASK_MCP_DATA_DIR", ""), env[0], env[1], env[2]]);
    mcp.initialize().await;
    let created = mcp.ok("create_task", json!({"title": "Try task-mcp", "assignee_id": "me"})).await;
    let event = stream.next(Duration::from_secs(5)).await.expect("serve streams the stdio change");
    assert_eq!(event.event.as_deref(), Some("task_assigned"));
    assert_eq!(event.json()["task"]["id"], created["id"]);
    let (status, _) = mcp.close().await;
    assert!(status.success());

    let data_dir = home.path().join(".local/share/task-mcp");
    assert!(data_dir.join("tasks.db").is_file(), "the database lives in the user's data directory");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data_dir.join("tasks.db")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the database is the owner's only");
    let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "so is its directory, which holds the generated secret too");
}

/// Appends `mark` to the task's description through stdio, retrying on version conflicts.
async fn append_over_stdio(mcp: &mut Server, task_id: &str, mark: &str) -> usize {
    let mut conflicts = 0;
    loop {
        let task = mcp.ok("get_task", json!({"task_id": task_id})).await;
        let description = format!("{}{mark};", task["description"].as_str().unwrap_or(""));
        let result = mcp
            .call(
                "update_task",
                json!({"task_id": task_id, "description": description, "expected_version": task["version"]}),
            )
            .await;
        if !result.is_error {
            return conflicts;
        }
        assert_eq!(result.code(), "version_conflict", "only conflicts are expected: {}", result.text);
        conflicts += 1;
    }
}

/// The same over REST, with `If-Match`.
async fn append_over_rest(serve: &ServeProcess, token: &str, task_id: &str, mark: &str) -> usize {
    let client = reqwest::Client::new();
    let mut conflicts = 0;
    loop {
        let task: serde_json::Value = client
            .get(serve.url(&format!("/api/tasks/{task_id}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let description = format!("{}{mark};", task["description"].as_str().unwrap_or(""));
        let response = client
            .patch(serve.url(&format!("/api/tasks/{task_id}")))
            .bearer_auth(token)
            .header("If-Match", format!("\"{}\"", task["version"]))
            .json(&json!({"description": description}))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => return conflicts,
            412 => conflicts += 1,
            other => panic!("PATCH answered {other}: {}", response.text().await.unwrap_or_default()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stdio_processes_and_serve_share_one_sqlite_file_without_errors_or_lost_updates() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let serve = ServeProcess::spawn(&[("DATABASE_URL", &url), ("JWT_SECRET", SECRET)]);
    let token = token_for(USER);
    let mut stream = open_stream(&serve, &token).await;

    let mut first = Server::connect(&url, USER).await;
    let task = first.ok("create_task", json!({"title": "Shared counter", "description": ""})).await;
    let task_id = task["id"].as_str().unwrap().to_owned();
    let rounds = 6;

    let mut writers = Vec::new();
    for process in 0..4 {
        let url = url.clone();
        let task_id = task_id.clone();
        writers.push(tokio::spawn(async move {
            let mut mcp = Server::connect(&url, USER).await;
            let mut conflicts = 0;
            for round in 0..rounds {
                conflicts += append_over_stdio(&mut mcp, &task_id, &format!("p{process}r{round}")).await;
                // Fresh tasks too, so the file sees creates interleaved with updates.
                mcp.ok("create_task", json!({"title": format!("from p{process} r{round}")})).await;
            }
            let (status, _) = mcp.close().await;
            assert!(status.success());
            conflicts
        }));
    }
    let mut rest_conflicts = 0;
    for round in 0..rounds {
        rest_conflicts += append_over_rest(&serve, &token, &task_id, &format!("http{round}")).await;
    }
    let mut conflicts = rest_conflicts;
    for writer in writers {
        conflicts += writer.await.expect("writer ran without error");
    }

    let task = first.ok("get_task", json!({"task_id": task_id})).await;
    let marks: BTreeSet<&str> = task["description"].as_str().unwrap().split(';').filter(|m| !m.is_empty()).collect();
    assert_eq!(marks.len(), 5 * rounds, "every update is kept ({conflicts} conflicts retried): {marks:?}");
    let version = task["version"].as_i64().unwrap();
    assert_eq!(version, 1 + 5 * rounds as i64, "one version per update");

    // Every change is an event: 1 create + 30 updates + 24 creates, each seen once, in order.
    let expected = 1 + 5 * rounds + 4 * rounds;
    let mut seqs = Vec::new();
    while seqs.len() < expected {
        let event = stream.next(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("only {} events", seqs.len()));
        seqs.push(event.id.unwrap().parse::<i64>().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, no duplicate: {seqs:?}");
    let (status, _) = first.close().await;
    assert!(status.success());
}

#[tokio::test]
async fn doctor_reports_the_embedded_store_and_how_to_hook_up_clients() {
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_task-mcp"))
        .arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("TASK_MCP_USER", USER)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("store:      sqlite"), "{text}");
    assert!(text.contains(".local/share/task-mcp"), "{text}");
    assert!(text.contains("schema version"), "{text}");
    assert!(text.contains(USER), "{text}");
    assert!(text.contains("\"mcpServers\""), "{text}");
    assert!(text.contains("claude mcp add task-mcp"), "{text}");
}
