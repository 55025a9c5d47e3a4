//! Secrets stay secret: the real `serve` and stdio binaries at debug level (trace for task-mcp),
//! with a PostgreSQL password, a Redis password, a JWT secret, API keys and tokens in use, and the
//! database and Redis made to fail: no secret in any log line or error body. And the files that hold
//! secrets (the SQLite database with its -wal and -shm, the generated JWT secret) are the owner's
//! only, even under a permissive umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::http::{ServeProcess, SseReader};
use crate::support::mcp::Server;
use crate::support::pg::{PrivatePostgres, Shutdown};
use crate::support::redis::{PrivateRedis, TestPrefix};

const PG_PASSWORD: &str = "pg-pw-8f3a1c77d2";
const REDIS_PASSWORD: &str = "redis-pw-5b9e20c4aa";
const JWT_SECRET: &str = "jwt-secret-4d7f0e9b1a2c3d4e5f60718293a4b5c6";
const LOG_LEVEL: &str = "debug,task_mcp=trace";

/// Runs a one-shot command of the binary; returns its stdout (trimmed), after adding its stderr to `log`.
fn command(args: &[&str], env: &[(&str, &str)], log: &mut String) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_task-mcp"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", LOG_LEVEL)
        .stdin(Stdio::null())
        .output()
        .expect("run task-mcp");
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "task-mcp {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The status and the whole body of a response.
async fn answer(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.expect("serve answers");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_an_error_body_of_serve_or_stdio() {
    let pg = PrivatePostgres::start();
    let database_url = pg.create_user_with_password("tm_app", PG_PASSWORD).await;
    let redis = PrivateRedis::start_with_password(Some(REDIS_PASSWORD));
    let prefix = TestPrefix::on(&redis.url());
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_str().unwrap();
    let env = [
        ("DATABASE_URL", database_url.as_str()),
        ("REDIS_URL", prefix.url.as_str()),
        ("TASK_MCP_STREAM_PREFIX", prefix.prefix.as_str()),
        ("JWT_SECRET", JWT_SECRET),
        ("TASK_MCP_DATA_DIR", data),
    ];
    let mut logs = String::new();
    let mut bodies: Vec<String> = Vec::new();

    // Credentials made by the commands, as an operator would.
    let user = ("TASK_MCP_USER", "agent@example.com");
    let key = command(&["api-key", "create", "--name", "laptop"], &[env[0], env[3], env[4], user], &mut logs);
    let token = command(&["token", "--ttl", "1h"], &[env[0], env[3], env[4], user], &mut logs);
    assert!(key.starts_with("tmk_") && token.split('.').count() == 3, "{key} {token}");
    let signature = token.rsplit('.').next().unwrap().to_owned();

    let mut serve_env = env.to_vec();
    serve_env.push(("RUST_LOG", LOG_LEVEL));
    let mut serve = ServeProcess::spawn(&serve_env);
    let client = reqwest::Client::new();

    // Credentials in use: a token in the header and in the query string, the key over /mcp.
    let (status, body) =
        answer(client.post(serve.url("/api/tasks")).bearer_auth(&token).json(&json!({"title": "with secrets"}))).await;
    assert_eq!(status, 201, "{body}");
    let stream = client.get(serve.url(&format!("/api/tasks/stream?access_token={token}"))).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let mut stream = SseReader::new(stream);
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    for (name, value) in [("x-api-key", key.clone()), ("authorization", format!("Bearer {key}"))] {
        let request = client
            .post(serve.url("/mcp"))
            .header(name, value)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        assert_eq!(answer(request).await.0, 200);
    }
    // Bad credentials: near misses of the real ones.
    let near_misses = [format!("{token}x"), token.replace(&signature, &signature.chars().rev().collect::<String>())];
    for bad in &near_misses {
        bodies.push(answer(client.get(serve.url("/api/me")).bearer_auth(bad)).await.1);
        bodies.push(answer(client.get(serve.url(&format!("/api/tasks/stream?access_token={bad}")))).await.1);
    }
    let request =
        client.post(serve.url("/mcp")).header("x-api-key", format!("{key}x")).json(&initialize).header("accept", "*/*");
    bodies.push(answer(request).await.1);

    // Redis down: changes still commit; health says degraded.
    let mut redis = redis;
    redis.kill();
    let (status, body) =
        answer(client.post(serve.url("/api/tasks")).bearer_auth(&token).json(&json!({"title": "redis down"}))).await;
    assert_eq!(status, 201, "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await; // the relay and the hub meet the outage
    bodies.push(answer(client.get(serve.url("/health"))).await.1);
    redis.restart();

    // The database down: 503s that say which database, without its password.
    pg.stop(Shutdown::Fast);
    let (status, body) = answer(client.get(serve.url("/api/tasks")).bearer_auth(&token)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("tm_app:***@127.0.0.1"), "the message names the database, redacted: {body}");
    bodies.push(body);
    bodies.push(answer(client.post(serve.url("/api/tasks")).bearer_auth(&token).json(&json!({"title": "x"}))).await.1);
    let call =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get_tasks", "arguments": {}}});
    let request = client.post(serve.url("/mcp")).header("accept", "application/json, text/event-stream");
    bodies.push(answer(request.header("x-api-key", &key).json(&call)).await.1);
    bodies.push(answer(client.get(serve.url("/health"))).await.1);

    // stdio, with the database still down, then back.
    let mut stdio_env = env.to_vec();
    stdio_env.extend([user, ("RUST_LOG", LOG_LEVEL)]);
    let mut mcp = Server::spawn_with(&stdio_env);
    mcp.initialize().await;
    let failed = mcp.fail("create_task", json!({"title": "while down"})).await;
    assert_eq!(failed.code(), "unavailable", "{}", failed.text);
    bodies.push(failed.text.clone());
    bodies.push(failed.structured.to_string());
    pg.start_again();
    let mut created = None;
    for _ in 0..50 {
        let result = mcp.call("create_task", json!({"title": "after"})).await;
        if !result.is_error {
            created = Some(result);
            break;
        }
        bodies.push(result.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created.is_some(), "stdio recovered");
    let stdio_log = mcp.stderr();
    let (status, _) = mcp.close().await;
    assert!(status.success());
    // serve recovered too; the stream saw the changes.
    assert_eq!(answer(client.get(serve.url("/api/me")).bearer_auth(&token)).await.0, 200);
    assert!(stream.next(Duration::from_secs(10)).await.is_some(), "the stream carried events");
    let (code, _) = serve.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    logs.push_str(&serve.stderr_text());
    logs.push_str(&stdio_log);

    assert!(logs.contains("DEBUG"), "debug logs were on");
    assert!(logs.contains("unavailable"), "the outages were logged");
    let secrets = [
        ("the PostgreSQL password", PG_PASSWORD.to_owned()),
        ("the Redis password", REDIS_PASSWORD.to_owned()),
        ("the JWT secret", JWT_SECRET.to_owned()),
        ("the API key", key.clone()),
        ("the API key's random part", key.trim_start_matches("tmk_").to_owned()),
        ("the token", token.clone()),
        ("the token's signature", signature.clone()),
    ];
    eprintln!("checked {} log bytes and {} error bodies for {} secrets", logs.len(), bodies.len(), secrets.len());
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret.as_str()), "{what} is in the logs:\n{}", lines_with(&logs, secret));
        for body in &bodies {
            assert!(!body.contains(secret.as_str()), "{what} is in an error body: {body}");
        }
    }
}

/// The lines of `text` that contain `needle` (for a failure message).
fn lines_with(text: &str, needle: &str) -> String {
    text.lines().filter(|l| l.contains(needle)).collect::<Vec<_>>().join("\n")
}

/// The permission bits of a path.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_holding_secrets_are_the_owners_only_even_under_a_permissive_umask() {
    let root = tempfile::tempdir().unwrap();
    // serve with nothing configured: it generates the JWT secret and the SQLite file in a data
    // directory (and its parent) that do not exist yet.
    let serve_dir = root.path().join("serve").join("task-mcp");
    let serve = ServeProcess::spawn_with_umask(
        &[("TASK_MCP_DATA_DIR", serve_dir.to_str().unwrap()), ("TASK_MCP_USER", "owner@example.com")],
        Some(0o000),
    );
    let token = serve.printed_token();
    let response = reqwest::Client::new()
        .post(serve.url("/api/tasks"))
        .bearer_auth(&token)
        .json(&json!({"title": "written under umask 000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // stdio likewise, in a data directory of its own.
    let stdio_dir = root.path().join("stdio").join("task-mcp");
    let mut mcp = Server::spawn_with_umask(
        &[("TASK_MCP_DATA_DIR", stdio_dir.to_str().unwrap()), ("TASK_MCP_USER", "owner@example.com")],
        Some(0o000),
    );
    mcp.initialize().await;
    let task: Value = mcp.ok("create_task", json!({"title": "written under umask 000"})).await;
    assert!(task["id"].is_string());

    for dir in [&serve_dir, &stdio_dir] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        assert_eq!(mode(dir.parent().unwrap()), 0o700, "{} (a parent it created)", dir.parent().unwrap().display());
        for file in ["tasks.db", "tasks.db-wal", "tasks.db-shm"] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{}", dir.join(file).display());
        }
    }
    assert_eq!(mode(&serve_dir.join("jwt-secret")), 0o600, "the generated secret");
    // A file another tool of the machine made readable is made the owner's again when it is read.
    let secret_file = serve_dir.join("jwt-secret");
    drop(serve);
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = ServeProcess::spawn_with_umask(&[("TASK_MCP_DATA_DIR", serve_dir.to_str().unwrap())], Some(0o000));
    assert_eq!(mode(&secret_file), 0o600, "restricted again at start");
    assert!(again.stderr_text().contains("readable by others"), "and said so: {}", again.stderr_text());
    let (status, _) = mcp.close().await;
    assert!(status.success());
}
