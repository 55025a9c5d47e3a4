//! Redis Cluster as the bus, through the real binary on a private cluster (3 masters, 3 replicas):
//! every event of stdio and `serve` reaches its three streams (which live in different slots), SSE
//! clients of two `serve` instances get every event once and in order, and a master killed under load
//! loses nothing. `doctor` and `/health` report the cluster; both Redis settings at once are refused.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use task_mcp::store::Store;

use crate::support::http::{SECRET, ServeProcess, SseReader, token_for};
use crate::support::mcp::Server as StdioServer;
use crate::support::redis_cluster::PrivateRedisCluster;
use crate::support::{Backend, TestStore};

async fn start_cluster() -> PrivateRedisCluster {
    tokio::task::spawn_blocking(PrivateRedisCluster::start).await.expect("cluster start")
}

/// `serve` over this database and the cluster, with the stream prefix and a data directory of its own.
fn serve_on(db: &str, cluster: &PrivateRedisCluster, prefix: &str) -> (ServeProcess, tempfile::TempDir) {
    let data_dir = tempfile::tempdir().expect("a data directory");
    let process = ServeProcess::spawn(&[
        ("DATABASE_URL", db),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().expect("a UTF-8 path")),
        ("TASK_MCP_POOL_SIZE", "4"),
        ("JWT_SECRET", SECRET),
        ("REDIS_CLUSTER_URLS", &cluster.urls()),
        ("TASK_MCP_STREAM_PREFIX", prefix),
    ]);
    (process, data_dir)
}

fn new_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

async fn create_over_rest(client: &reqwest::Client, serve: &ServeProcess, title: &str, assignee: &str) -> Value {
    let response = client
        .post(serve.url("/api/tasks"))
        .bearer_auth(token_for("person@example.com"))
        .json(&json!({"title": title, "repository": "web", "assignee_id": assignee}))
        .send()
        .await
        .expect("POST /api/tasks");
    assert_eq!(response.status(), 201, "create {title}");
    response.json().await.expect("task JSON")
}

/// Every seq each stream must hold: the notifications stream all of them, each assignee's and each
/// repository's stream those of its tasks.
async fn expected_streams(store: &dyn Store, prefix: &str) -> HashMap<String, BTreeSet<i64>> {
    let mut expected: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for event in store.events_after(0, 10_000).await.expect("events") {
        expected.entry(format!("{prefix}:notifications")).or_default().insert(event.seq);
        let assignee = event.assignee_id.expect("every test task has an assignee");
        expected.entry(format!("{prefix}:user:{assignee}")).or_default().insert(event.seq);
        let repo = event.repository.clone().expect("every test task has a repository");
        expected.entry(format!("{prefix}:repo:{repo}")).or_default().insert(event.seq);
    }
    expected
}

/// Waits until every stream holds every seq it should (the relay publishes after commit, and retries
/// after a failover); panics with what is missing after `limit`.
async fn wait_for_streams(cluster: &PrivateRedisCluster, store: &dyn Store, prefix: &str, limit: Duration) {
    let expected = expected_streams(store, prefix).await;
    assert!(expected.len() >= 3, "three kinds of stream: {:?}", expected.keys());
    let deadline = Instant::now() + limit;
    loop {
        let mut missing = Vec::new();
        for (stream, seqs) in &expected {
            let held: BTreeSet<i64> =
                cluster.entries(stream).iter().filter_map(|e| e.get("seq")?.parse().ok()).collect();
            let absent: Vec<i64> = seqs.difference(&held).copied().collect();
            if !absent.is_empty() {
                missing.push((stream.clone(), absent));
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "events missing from their streams: {missing:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_stdio_and_serve_reach_their_three_streams_on_a_cluster() {
    let cluster = start_cluster().await;
    let db = TestStore::new(Backend::Postgres).await;
    let prefix = new_prefix();
    let urls = cluster.urls();

    let mut agent = StdioServer::spawn_with(&[
        ("DATABASE_URL", db.url.as_str()),
        ("TASK_MCP_USER", "agent@example.com"),
        ("REDIS_CLUSTER_URLS", urls.as_str()),
        ("TASK_MCP_STREAM_PREFIX", prefix.as_str()),
    ]);
    agent.initialize().await;
    for i in 0..5 {
        let task = agent
            .ok("create_task", json!({"title": format!("agent {i}"), "repository": "api", "assignee_id": "me"}))
            .await;
        let id = task["id"].as_str().expect("id");
        agent.ok("update_task_status", json!({"task_id": id, "new_status": "in_progress"})).await;
    }
    agent.close().await;

    let (serve, _dir) = serve_on(&db.url, &cluster, &prefix);
    let client = reqwest::Client::new();
    for i in 0..5 {
        create_over_rest(&client, &serve, &format!("person {i}"), "dev@example.com").await;
    }
    wait_for_streams(&cluster, db.store.as_ref(), &prefix, Duration::from_secs(30)).await;

    let health: Value = client.get(serve.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["redis"]["kind"], "redis-cluster", "{health}");
    assert_eq!(health["redis"]["status"], "ok", "{health}");
    assert_eq!(health["redis_cluster"], json!({"nodes": 6, "reachable": 6, "state": "ok"}), "{health}");
    assert_eq!(health["status"], "ok", "{health}");

    let doctor = crate::support::binary_command(None)
        .arg("doctor")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_CLUSTER_URLS", &urls)
        .env("TASK_MCP_USER", "agent@example.com")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("doctor runs");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.status.success(), "{report}");
    assert!(report.contains("6 of 6 nodes reachable, cluster_state:ok"), "{report}");
    assert!(report.contains("REDIS_CLUSTER_URLS"), "the client snippet carries the cluster: {report}");
}

#[test]
fn a_redis_url_and_cluster_urls_together_are_refused_at_start() {
    let output = crate::support::binary_command(None)
        .arg("doctor")
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("REDIS_CLUSTER_URLS", "redis://127.0.0.1:7000,redis://127.0.0.1:7001")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("REDIS_CLUSTER_URLS") && stderr.contains("REDIS_URL"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing reported: {}", String::from_utf8_lossy(&output.stdout));
}

/// An SSE client of one `serve`, reading in the background: every event's seq, in the order received.
struct Watcher {
    seqs: Arc<std::sync::Mutex<Vec<i64>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn connect(serve: &ServeProcess) -> Watcher {
        let response = reqwest::Client::new()
            .get(serve.url("/api/tasks/stream"))
            .bearer_auth(token_for("watcher@example.com"))
            .send()
            .await
            .expect("stream");
        assert_eq!(response.status(), 200);
        let mut reader = SseReader::new(response);
        let seqs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seqs.clone();
        let handle = tokio::spawn(async move {
            while let Some(event) = reader.next(Duration::from_secs(120)).await {
                if let Some(seq) = event.json()["seq"].as_i64() {
                    sink.lock().unwrap().push(seq);
                }
            }
        });
        Watcher { seqs, handle }
    }

    /// Waits until the client has received `last`; returns everything it received.
    async fn until(&self, last: i64, limit: Duration) -> Vec<i64> {
        let deadline = Instant::now() + limit;
        loop {
            let seqs = self.seqs.lock().unwrap().clone();
            if seqs.last().is_some_and(|s| *s >= last) {
                return seqs;
            }
            assert!(Instant::now() < deadline, "seq {last} not received; got {seqs:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Each client got exactly the store's events after it connected, once each, in seq order.
async fn assert_every_event_once_in_order(watchers: &[Watcher], store: &dyn Store, after: i64) {
    let all: Vec<i64> = store.events_after(after, 10_000).await.expect("events").iter().map(|e| e.seq).collect();
    let last = *all.last().expect("events were written");
    for (i, watcher) in watchers.iter().enumerate() {
        let got = watcher.until(last, Duration::from_secs(60)).await;
        assert_eq!(got, all, "client {i} must get every event once, in order");
    }
}

/// Two `serve` instances on one database and the cluster, with SSE clients on each.
struct TwoInstances {
    cluster: PrivateRedisCluster,
    db: TestStore,
    prefix: String,
    serves: Vec<(ServeProcess, tempfile::TempDir)>,
    watchers: Vec<Watcher>,
    /// The last seq before the clients connected.
    start: i64,
}

impl TwoInstances {
    async fn start() -> TwoInstances {
        let cluster = start_cluster().await;
        let db = TestStore::new(Backend::Postgres).await;
        db.store.migrate().await.expect("migrate");
        let prefix = new_prefix();
        let serves = vec![serve_on(&db.url, &cluster, &prefix), serve_on(&db.url, &cluster, &prefix)];
        let mut watchers = Vec::new();
        for (serve, _) in &serves {
            watchers.push(Watcher::connect(serve).await);
            watchers.push(Watcher::connect(serve).await);
        }
        let start = db.store.event_bounds().await.expect("bounds").latest;
        TwoInstances { cluster, db, prefix, serves, watchers, start }
    }

    /// Writes `count` tasks, alternating between the instances, `lanes` at a time; every write must
    /// commit.
    async fn write(&self, label: &str, count: usize, lanes: usize) {
        let client = reqwest::Client::new();
        let lane_writes = |lane: usize| {
            let client = client.clone();
            async move {
                for i in (lane..count).step_by(lanes) {
                    let (serve, _) = &self.serves[i % self.serves.len()];
                    let assignee = format!("dev{}@example.com", i % 3);
                    create_over_rest(&client, serve, &format!("{label} {i}"), &assignee).await;
                }
            }
        };
        futures::future::join_all((0..lanes).map(lane_writes)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_clients_of_two_serve_instances_on_a_cluster_get_every_event_once_in_order() {
    let setup = TwoInstances::start().await;
    setup.write("task", 60, 4).await;
    assert_every_event_once_in_order(&setup.watchers, setup.db.store.as_ref(), setup.start).await;
    wait_for_streams(&setup.cluster, setup.db.store.as_ref(), &setup.prefix, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_loses_no_event_and_no_client_sees_one_twice() {
    let setup = TwoInstances::start().await;
    setup.write("before", 20, 2).await;
    let notifications = format!("{}:notifications", setup.prefix);
    let victim = setup.cluster.master_of(&notifications);

    // SIGKILL to the master of the notifications stream's slot while writes are in flight (once a
    // few of them committed); every write must still commit.
    let committed_before = setup.db.store.event_bounds().await.expect("bounds").latest;
    let kill = async {
        loop {
            let latest = setup.db.store.event_bounds().await.expect("bounds").latest;
            if latest >= committed_before + 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        setup.cluster.kill(victim);
    };
    tokio::join!(setup.write("during", 40, 2), kill);

    // Its replica takes over; writes go on.
    let cluster = &setup.cluster;
    tokio::task::block_in_place(|| cluster.wait_for_failover(victim, &notifications, Duration::from_secs(60)));
    setup.write("after", 20, 2).await;

    assert_every_event_once_in_order(&setup.watchers, setup.db.store.as_ref(), setup.start).await;
    wait_for_streams(&setup.cluster, setup.db.store.as_ref(), &setup.prefix, Duration::from_secs(60)).await;
}
