//! A PostgreSQL read replica (`DATABASE_READ_URL`), through the real binary against a private primary
//! and its streaming replica: reads reach the replica (counted in its statement log), each read sees
//! the write before it, a replica stopped mid-run is skipped without a failed call and used again once
//! it is back, `/health` and `doctor` say how it stands, and a read URL beside a store that cannot
//! have one is refused at start.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::http::{SECRET, ServeProcess, SseReader, token_for};
use crate::support::mcp::Server;
use crate::support::pg::Shutdown;
use crate::support::pg_replica::ReplicaPair;

const USER: &str = "reader@example.com";
/// Write-then-read pairs the read-your-writes check makes.
const PAIRS: usize = 1_000;
/// How long a test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until the replica has run more task reads than `before`; panics with `context` after PATIENCE.
async fn until_replica_reads_exceed(pair: &ReplicaPair, before: usize, context: &str) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = pair.task_reads_on_replica();
        if now > before {
            return now;
        }
        assert!(Instant::now() < deadline, "{context}: no read reached the replica ({now} in all)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_replica_and_each_sees_the_write_before_it() {
    let pair = ReplicaPair::start("tm_replica").await;
    let (primary, replica) = (pair.primary_url(), pair.replica_url());
    let mut mcp =
        Server::spawn_with(&[("DATABASE_URL", &primary), ("DATABASE_READ_URL", &replica), ("TASK_MCP_USER", USER)]);
    mcp.initialize().await;

    let created = mcp.ok("create_task", json!({"title": "v0", "repository": "org/replica"})).await;
    let id = created["id"].as_str().expect("an id").to_owned();
    let key = created["key"].as_str().expect("a key").to_owned();
    let before = pair.task_reads_on_replica();
    assert_eq!(mcp.ok("get_task", json!({"task_id": id})).await["title"], "v0");
    let before = until_replica_reads_exceed(&pair, before, "a read after a write").await;

    // Each pair writes, then reads what it wrote: the update through the task (by id, then by key),
    // the create through the listing (newest change first).
    for i in 1..=PAIRS {
        let title = format!("v{i}");
        if i % 2 == 0 {
            mcp.ok("update_task", json!({"task_id": id, "title": title})).await;
            let by = if i % 4 == 0 { &key } else { &id };
            let read = mcp.ok("get_task", json!({"task_id": by})).await;
            assert_eq!(read["title"], title.as_str(), "pair {i}: the read did not see its write: {read}");
        } else {
            mcp.ok("create_task", json!({"title": title, "repository": "org/replica"})).await;
            let page = mcp.ok("get_tasks", json!({"repository": "org/replica", "limit": 1})).await;
            assert_eq!(
                page["tasks"][0]["title"],
                title.as_str(),
                "pair {i}: the listing did not show its write: {page}"
            );
        }
    }
    let on_replica = pair.task_reads_on_replica() - before;
    eprintln!("{on_replica} of {PAIRS} reads after a write were answered by the replica");
    // Most do (a loaded machine may make some wait longer than the replica is waited for: those read
    // from the primary, and still see their write).
    assert!(on_replica >= PAIRS / 10, "only {on_replica} of {PAIRS} reads reached the replica");
    let (status, _) = mcp.close().await;
    assert!(status.success(), "{status}");

    // `doctor` names the replica and says it answers.
    let data_dir = tempfile::tempdir().expect("a data directory");
    let (healthy, report) = doctor(&pair, data_dir.path());
    assert!(healthy, "{report}");
    let line = report.lines().position(|l| l.starts_with("replica:")).unwrap_or_else(|| panic!("no replica: {report}"));
    assert!(report.lines().nth(line + 1).is_some_and(|l| l.contains("answers; reads go to it")), "{report}");
    assert!(report.contains("DATABASE_READ_URL"), "the client snippet carries the replica: {report}");
}

/// `task-mcp doctor` with the pair as primary and replica: whether it found everything healthy, and
/// its report.
fn doctor(pair: &ReplicaPair, data_dir: &std::path::Path) -> (bool, String) {
    let output = crate::support::binary_command(None)
        .arg("doctor")
        .env("DATABASE_URL", pair.primary_url())
        .env("DATABASE_READ_URL", pair.replica_url())
        .env("TASK_MCP_USER", USER)
        .env("TASK_MCP_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    let report = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}

/// `serve` as one client sees it: a create and a read of what it created; both must succeed.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn write_then_read(&self, title: &str) {
        let created = self
            .http
            .post(format!("{}/api/tasks", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"title": title}))
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201, "create {title}: {}", created.text().await.unwrap_or_default());
        let id = created.json::<Value>().await.expect("a task")["id"].as_str().expect("an id").to_owned();
        let read =
            self.http.get(format!("{}/api/tasks/{id}", self.base)).bearer_auth(&self.token).send().await.expect("get");
        assert_eq!(read.status(), 200, "read {title}: {}", read.text().await.unwrap_or_default());
        assert_eq!(read.json::<Value>().await.expect("a task")["title"], title);
    }

    async fn health(&self) -> (u16, Value) {
        let response = self.http.get(format!("{}/health", self.base)).send().await.expect("health");
        (response.status().as_u16(), response.json().await.expect("health JSON"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_is_skipped_without_a_failed_call_and_used_again_once_back() {
    let pair = ReplicaPair::start("tm_replica").await;
    let data_dir = tempfile::tempdir().expect("a data directory");
    let serve = ServeProcess::spawn(&[
        ("DATABASE_URL", &pair.primary_url()),
        ("DATABASE_READ_URL", &pair.replica_url()),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().expect("a UTF-8 path")),
        ("TASK_MCP_POOL_SIZE", "2"),
        ("JWT_SECRET", SECRET),
    ]);
    let client = Client { http: reqwest::Client::new(), base: serve.base.clone(), token: token_for(USER) };

    let (code, health) = client.health().await;
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")), "{health}");
    assert_eq!(health["replica"]["status"], "ok", "{health}");
    assert_eq!(health["replica"]["reachable"], true, "{health}");
    let before = pair.task_reads_on_replica();
    client.write_then_read("before the stop").await;
    until_replica_reads_exceed(&pair, before, "with the replica up").await;

    pair.replica.stop(Shutdown::Immediate);
    for i in 0..20 {
        client.write_then_read(&format!("replica down {i}")).await;
    }
    let (code, health) = client.health().await;
    assert_eq!(code, 200, "a replica down is no reason to leave this instance: {health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["replica"]["status"], "down", "{health}");
    assert_eq!(health["replica"]["reachable"], false, "{health}");
    let (healthy, report) = doctor(&pair, data_dir.path());
    assert!(!healthy, "{report}");
    let line = report.lines().position(|l| l.starts_with("replica:")).unwrap_or_else(|| panic!("no replica: {report}"));
    let verdict = report.lines().nth(line + 1).unwrap_or_default();
    assert!(verdict.contains("CANNOT BE USED") && verdict.contains("reads go to the primary"), "{report}");
    let stderr = serve.stderr_text();
    let warnings = stderr.lines().filter(|l| l.contains("the read replica is skipped")).count();
    assert_eq!(warnings, 1, "one warning, not one per read:\n{stderr}");

    pair.replica.start_again();
    pair.wait_until_replica_answers().await;
    let before = pair.task_reads_on_replica();
    let deadline = Instant::now() + PATIENCE;
    let mut i = 0;
    while pair.task_reads_on_replica() <= before {
        assert!(Instant::now() < deadline, "reads never went back to the replica:\n{}", serve.stderr_text());
        client.write_then_read(&format!("replica back {i}")).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, health) = client.health().await;
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")), "{health}");
    assert_eq!(health["replica"]["status"], "ok", "{health}");
    assert!(serve.stderr_text().contains("the read replica answers again"), "{}", serve.stderr_text());

    // A feed resuming after `Last-Event-ID` replays from the replica, every event from the first on.
    let before = pair.event_reads_on_replica();
    let response = client
        .http
        .get(format!("{}/api/tasks/stream", client.base))
        .bearer_auth(&client.token)
        .header("last-event-id", "0")
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    let first = stream.next(PATIENCE).await.expect("a replayed event");
    assert_eq!(first.id.as_deref(), Some("1"), "{}", first.data);
    assert!(pair.event_reads_on_replica() > before, "the replay did not reach the replica");
    drop(stream);

    // A replica that stops replaying (paused) is skipped once it is more than 5 s behind a write;
    // reads still answer, from the primary.
    let replica = pair.replica_url();
    crate::support::pg::execute(&replica, "SELECT pg_wal_replay_pause()").await;
    // A task another process creates meanwhile is not on the replica yet: its "not found" is not the
    // answer, the primary's is.
    let added = crate::support::binary_command(None)
        .args(["add", "made elsewhere", "--json"])
        .env("DATABASE_URL", pair.primary_url())
        .env_remove("DATABASE_READ_URL")
        .env("TASK_MCP_USER", USER)
        .env("TASK_MCP_DATA_DIR", data_dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let added: Value = serde_json::from_slice(&added.stdout).expect("the task as JSON");
    let key = added["key"].as_str().expect("a key");
    let read = client.http.get(format!("{}/api/tasks/{key}", client.base)).bearer_auth(&client.token).send().await;
    let read = read.expect("get");
    assert_eq!(
        read.status(),
        200,
        "a task committed elsewhere, not yet replayed: {}",
        read.text().await.unwrap_or_default()
    );
    client.write_then_read("while replay is paused").await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (code, health) = client.health().await;
        assert_eq!(code, 200, "{health}");
        if health["replica"]["status"] == "lagging" {
            assert_eq!(health["status"], "degraded", "{health}");
            assert!(health["replica"]["lag_ms"].as_u64().is_some_and(|ms| ms > 5_000), "{health}");
            break;
        }
        assert!(Instant::now() < deadline, "a paused replica was never reported lagging: {health}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    client.write_then_read("while the replica lags").await;
    assert!(serve.stderr_text().contains("behind the primary"), "{}", serve.stderr_text());
    crate::support::pg::execute(&replica, "SELECT pg_wal_replay_resume()").await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, health) = client.health().await;
        if health["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < deadline, "a replica that caught up stays skipped: {health}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Idle is not lagging: with no write for longer than the lag limit, the replica is still in use.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, health) = client.health().await;
    assert_eq!(health["replica"]["status"], "ok", "an idle replica is no lagging one: {health}");
    let before = pair.task_reads_on_replica();
    let listing = client.http.get(format!("{}/api/tasks", client.base)).bearer_auth(&client.token).send().await;
    assert_eq!(listing.expect("list").status(), 200);
    until_replica_reads_exceed(&pair, before, "after an idle spell").await;
}

#[test]
fn a_read_url_beside_a_store_that_cannot_have_one_is_refused_at_start_naming_it() {
    let data_dir = tempfile::tempdir().expect("a data directory");
    let sqlite = format!("sqlite://{}", data_dir.path().join("tasks.db").display());
    let postgres_replica = "postgres://tm:s3cret@127.0.0.1:1/tasks";
    let cases: [(Option<&str>, &str, &str); 3] = [
        (Some(&sqlite), postgres_replica, "needs a PostgreSQL DATABASE_URL"),
        (None, postgres_replica, "needs a PostgreSQL DATABASE_URL"),
        (
            Some("postgres://tm:s3cret@127.0.0.1:1/tasks"),
            "mysql://tm:s3cret@127.0.0.1/tasks",
            "is not a PostgreSQL URL",
        ),
    ];
    for (database_url, read_url, why) in cases {
        for (args, by_flag) in [(&["doctor"][..], false), (&[][..], false), (&["serve", "--port", "0"][..], true)] {
            let mut command = crate::support::binary_command(None);
            command.args(args).env("TASK_MCP_DATA_DIR", data_dir.path()).env_remove("DATABASE_READ_URL");
            match database_url {
                Some(url) => command.env("DATABASE_URL", url),
                None => command.env_remove("DATABASE_URL"),
            };
            if by_flag {
                command.args(["--database-read-url", read_url]);
            } else {
                command.env("DATABASE_READ_URL", read_url);
            }
            let output = command.stdin(Stdio::null()).output().expect("the binary runs");
            let stderr = String::from_utf8_lossy(&output.stderr);
            let case = format!("{args:?} with {database_url:?} and {read_url}");
            assert!(!output.status.success(), "{case}: accepted");
            assert!(stderr.contains("DATABASE_READ_URL") && stderr.contains(why), "{case}: {stderr}");
            assert!(!stderr.contains("s3cret"), "{case}: the password is printed: {stderr}");
            assert!(output.stdout.is_empty(), "{case}: {}", String::from_utf8_lossy(&output.stdout));
        }
    }
}
