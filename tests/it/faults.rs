//! Faults, through the real binaries: PostgreSQL restarted (fast and immediate shutdown) under load
//! over stdio and `serve`, frozen, and down when `serve` starts; Redis killed and restarted under
//! `serve`'s SSE clients, and refusing every command; an SSE client that never reads; stdin closed
//! while a call waits on the database. Nothing hangs, nothing is lost, nothing needs a restart.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use task_mcp::store::Store;

use futures::StreamExt;

use crate::support::http::{self, ServeProcess, SseReader, TestServer};
use crate::support::mcp::Server;
use crate::support::pg::{PrivatePostgres, Shutdown};
use crate::support::redis::{PrivateRedis, TestPrefix};
use crate::support::{Backend, TestStore};

const USER: &str = "agent@example.com";
/// How long PostgreSQL or Redis stays down in a restart test.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// No single call may take longer than this during an outage: the pool's wait timeout (5 s) plus
/// its connect timeout (3 s), with room for a loaded machine. A hang would be a multiple of it.
const CALL_BOUND: Duration = Duration::from_secs(20);
/// How long a test waits for something that should happen (events relayed, streams caught up).
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `async fn name(mode)` once per shutdown mode, as `name::fast_shutdown` and
/// `name::immediate_shutdown`.
macro_rules! per_shutdown {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fast_shutdown() {
                super::$name(crate::support::pg::Shutdown::Fast).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn immediate_shutdown() {
                super::$name(crate::support::pg::Shutdown::Immediate).await
            }
        }
    )+};
}

per_shutdown!(
    a_postgres_restart_under_stdio_load_fails_calls_fast_then_recovers_without_losing_an_event,
    a_postgres_restart_under_serve_load_fails_calls_fast_then_recovers_without_losing_an_event,
);

/// What the calls of a load came to.
#[derive(Debug, Default)]
struct Tally {
    /// Ids of the tasks whose creation was answered with success.
    created: Vec<String>,
    /// Messages of the calls refused because the database was unavailable.
    unavailable: Vec<String>,
    /// Anything else (a test failure).
    other: Vec<String>,
    slowest: Duration,
    /// Successes since the outage was over.
    after: usize,
}

impl Tally {
    fn record(&mut self, outcome: Result<String, (String, String)>, took: Duration, outage_over: bool) {
        self.slowest = self.slowest.max(took);
        match outcome {
            Ok(id) => {
                self.created.push(id);
                if outage_over {
                    self.after += 1;
                }
            }
            Err((code, message)) if code == "unavailable" => self.unavailable.push(message),
            Err((code, message)) => self.other.push(format!("{code}: {message}")),
        }
    }

    /// The checks every restart test makes of its load.
    fn check(&self, pg: &PrivatePostgres) {
        assert!(self.other.is_empty(), "calls failed otherwise than `unavailable`: {:?}", self.other);
        assert!(!self.unavailable.is_empty(), "no call met the outage: the test proved nothing");
        for message in &self.unavailable {
            assert!(
                message.contains("PostgreSQL at") && message.contains(&format!("127.0.0.1:{}", pg.port)),
                "the error says which database is unavailable: {message}"
            );
        }
        assert!(self.slowest < CALL_BOUND, "a call took {:?} (bound {CALL_BOUND:?})", self.slowest);
        assert!(self.after > 0, "no call succeeded after the restart");
    }
}

/// Stops the cluster with `mode`, keeps it down for [`DOWN_FOR`], starts it again (pg_ctl blocks:
/// a thread of its own).
fn restart_in_background(pg: Arc<PrivatePostgres>, mode: Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        pg.stop(mode);
        std::thread::sleep(DOWN_FOR);
        pg.start_again();
    })
}

/// Every committed change has its event, and every event reached the Redis stream (published once
/// Redis could be reached): waits for the relay, then compares the store's log with the stream.
async fn every_committed_change_has_its_event_in_redis(store: &dyn Store, prefix: &TestPrefix, created: &[String]) {
    let tasks = store
        .list_tasks(&task_mcp::store::TaskQuery { limit: 10_000, ..Default::default() })
        .await
        .expect("list the tasks");
    let committed: BTreeSet<String> = tasks.iter().map(|t| t.id.to_string()).collect();
    for id in created {
        assert!(committed.contains(id), "task {id} was answered as created but is not in the store");
    }
    let events = store.events_after(0, 100_000).await.expect("read the event log");
    let with_event: BTreeSet<String> =
        events.iter().filter(|e| e.kind.as_str() == "task_created").map(|e| e.task_id.to_string()).collect();
    assert_eq!(with_event, committed, "every committed task has its task_created event");
    let logged: BTreeSet<i64> = events.iter().map(|e| e.seq).collect();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let published: BTreeSet<i64> = prefix
            .entries(&prefix.stream("notifications"))
            .iter()
            .map(|e| e["seq"].parse().expect("a seq field"))
            .collect();
        if published == logged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events missing from Redis: {:?}; unknown there: {:?}",
            logged.difference(&published).collect::<Vec<_>>(),
            published.difference(&logged).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_postgres_restart_under_stdio_load_fails_calls_fast_then_recovers_without_losing_an_event(mode: Shutdown) {
    let pg = Arc::new(PrivatePostgres::start());
    let url = pg.create_database("tasks").await;
    let redis = PrivateRedis::start();
    let prefix = TestPrefix::on(&redis.url());
    let mut mcp = Server::spawn_with(&[
        ("DATABASE_URL", url.as_str()),
        ("TASK_MCP_USER", USER),
        ("REDIS_URL", prefix.url.as_str()),
        ("TASK_MCP_STREAM_PREFIX", prefix.prefix.as_str()),
    ]);
    mcp.initialize().await;

    // Rounds of four calls in flight at once; the restart starts after a few good rounds.
    let mut tally = Tally::default();
    let mut restart = None;
    let deadline = Instant::now() + PATIENCE * 2;
    for round in 0.. {
        assert!(Instant::now() < deadline, "no recovery: {tally:?}\n{}\n{}", mcp.stderr(), pg.log());
        if round == 5 {
            restart = Some(restart_in_background(pg.clone(), mode));
        }
        let outage_over = restart.as_ref().is_some_and(|r| r.is_finished());
        if outage_over && tally.after >= 20 {
            break;
        }
        let started = Instant::now();
        let mut ids = Vec::new();
        for n in 0..4 {
            let arguments = json!({"title": format!("load {round}.{n}"), "repository": "web"});
            ids.push(mcp.start_request("tools/call", json!({"name": "create_task", "arguments": arguments})).await);
        }
        for id in ids {
            let frame = mcp.answer(id).await;
            let result = crate::support::mcp::tool_result(&frame["result"]);
            let outcome = if result.is_error {
                Err((result.code().to_owned(), result.text.clone()))
            } else {
                Ok(result.structured["id"].as_str().expect("a task id").to_owned())
            };
            tally.record(outcome, started.elapsed(), outage_over);
        }
    }
    eprintln!(
        "{mode:?} restart over stdio: {} created, {} refused as unavailable, slowest round {:?}",
        tally.created.len(),
        tally.unavailable.len(),
        tally.slowest
    );
    tally.check(&pg);
    // Still the same process, still answering; then it exits 0 and publishes what is pending.
    assert!(mcp.request("tools/list", json!({})).await["result"]["tools"].is_array());
    let (status, _) = mcp.close().await;
    assert!(status.success(), "{status}");
    let store = task_mcp::store::open(&url, 1).expect("open the store");
    every_committed_change_has_its_event_in_redis(store.as_ref(), &prefix, &tally.created).await;
}

/// Creates tasks over REST until `stop`, recording each outcome.
async fn rest_load(
    client: reqwest::Client,
    url: String,
    token: String,
    tally: Arc<Mutex<Tally>>,
    restart_done: Arc<std::sync::atomic::AtomicBool>,
    worker: usize,
) {
    for n in 0.. {
        let outage_over = restart_done.load(std::sync::atomic::Ordering::Acquire);
        if outage_over && tally.lock().unwrap().after >= 40 {
            return;
        }
        let started = Instant::now();
        let response = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"title": format!("load {worker}.{n}"), "repository": (["web", "api"])[n % 2]}))
            .timeout(CALL_BOUND * 2)
            .send()
            .await
            .expect("serve answers every request");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        let outcome = match status {
            201 => Ok(body["id"].as_str().expect("a task id").to_owned()),
            _ => Err((
                body["error"]["code"].as_str().unwrap_or("(no code)").to_owned(),
                format!("{status} {}", body["error"]["message"].as_str().unwrap_or("(no message)")),
            )),
        };
        tally.lock().unwrap().record(outcome, started.elapsed(), outage_over);
    }
}

/// `workers` REST writers running [`rest_load`] against serve, until told the outage is over.
struct RestLoad {
    tally: Arc<Mutex<Tally>>,
    outage_over: Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl RestLoad {
    /// Starts the writers and returns once `warm_up` tasks were created.
    async fn start(client: &reqwest::Client, url: String, token: &str, workers: usize, warm_up: usize) -> RestLoad {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let outage_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers = (0..workers)
            .map(|worker| {
                let load = rest_load(
                    client.clone(),
                    url.clone(),
                    token.to_owned(),
                    tally.clone(),
                    outage_over.clone(),
                    worker,
                );
                tokio::spawn(load)
            })
            .collect();
        while tally.lock().unwrap().created.len() < warm_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        RestLoad { tally, outage_over, workers }
    }

    fn created(&self) -> usize {
        self.tally.lock().unwrap().created.len()
    }

    /// Tells the writers the outage is over, waits (at most `patience` each) until they have made
    /// their calls after it, and returns what they saw. `context` is printed if they never finish.
    async fn finish(self, patience: Duration, context: impl Fn() -> String) -> Tally {
        self.outage_over.store(true, std::sync::atomic::Ordering::Release);
        for worker in self.workers {
            tokio::time::timeout(patience, worker)
                .await
                .unwrap_or_else(|_| panic!("no recovery: {:?}\n{}", self.tally.lock().unwrap(), context()))
                .expect("worker");
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

async fn a_postgres_restart_under_serve_load_fails_calls_fast_then_recovers_without_losing_an_event(mode: Shutdown) {
    let pg = Arc::new(PrivatePostgres::start());
    let url = pg.create_database("tasks").await;
    let redis = PrivateRedis::start();
    let prefix = TestPrefix::on(&redis.url());
    let data_dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(&[
        ("DATABASE_URL", url.as_str()),
        ("REDIS_URL", prefix.url.as_str()),
        ("TASK_MCP_STREAM_PREFIX", prefix.prefix.as_str()),
        ("JWT_SECRET", http::SECRET),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().unwrap()),
        ("TASK_MCP_POOL_SIZE", "4"),
    ]);
    let client = reqwest::Client::new();
    let token = http::token_for(USER);
    // A live client through the whole restart, from the start of the log.
    let response = client
        .get(serve.url("/api/tasks/stream"))
        .bearer_auth(&token)
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);

    let load = RestLoad::start(&client, serve.url("/api/tasks"), &token, 4, 20).await;
    restart_in_background(pg.clone(), mode).await.expect("restart");
    let tally = load.finish(PATIENCE * 2, || serve.stderr_text()).await;
    eprintln!(
        "{mode:?} restart under serve: {} created, {} refused as unavailable, slowest call {:?}",
        tally.created.len(),
        tally.unavailable.len(),
        tally.slowest
    );
    tally.check(&pg);
    for message in &tally.unavailable {
        assert!(message.starts_with("503 "), "{message}");
    }
    let health = client.get(serve.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "healthy again without a restart of serve");

    let store = task_mcp::store::open(&url, 1).expect("open the store");
    every_committed_change_has_its_event_in_redis(store.as_ref(), &prefix, &tally.created).await;
    // The live client saw every event once, in order, through the restart.
    let logged: Vec<i64> = store.events_after(0, 100_000).await.unwrap().iter().map(|e| e.seq).collect();
    let seen = read_seqs_until(&mut stream, *logged.last().unwrap()).await;
    assert_eq!(seen, logged, "the SSE client got every event, in order, once");
}

/// Reads events until one with seq `last` (or beyond) came; returns their seqs in arrival order.
async fn read_seqs_until(stream: &mut SseReader, last: i64) -> Vec<i64> {
    let mut seqs = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seqs.last().is_none_or(|s| *s < last) {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        match stream.next(wait).await {
            Some(event) => seqs.push(event.id.as_deref().and_then(|id| id.parse().ok()).expect("an id")),
            None => panic!("the stream ended or stalled at {:?} of {last}", seqs.last()),
        }
    }
    seqs
}

crate::per_backend!(sse_clients_of_serve_get_every_event_once_in_order_across_a_redis_restart);

async fn sse_clients_of_serve_get_every_event_once_in_order_across_a_redis_restart(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut redis = PrivateRedis::start();
    let prefix = TestPrefix::on(&redis.url());
    let data_dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", prefix.url.as_str()),
        ("TASK_MCP_STREAM_PREFIX", prefix.prefix.as_str()),
        ("JWT_SECRET", http::SECRET),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().unwrap()),
        ("TASK_MCP_POOL_SIZE", "4"),
    ]);
    let client = reqwest::Client::new();
    let token = http::token_for(USER);
    // Three clients from the start of the log: the header token, the query token, one repository.
    let open = |path: String, bearer: bool| {
        let mut request = client.get(serve.url(&path)).header("last-event-id", "0");
        if bearer {
            request = request.bearer_auth(&token);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            SseReader::new(response)
        }
    };
    let mut everything = open("/api/tasks/stream".to_owned(), true).await;
    let mut by_query = open(format!("/api/tasks/stream?access_token={token}"), false).await;
    let mut web_only = open("/api/tasks/stream?repositories=web".to_owned(), true).await;

    let load = RestLoad::start(&client, serve.url("/api/tasks"), &token, 3, 30).await;
    redis.kill();
    let down_at = load.created();
    tokio::time::sleep(DOWN_FOR).await;
    let while_down = load.created() - down_at;
    redis.restart();
    let tally = load.finish(PATIENCE, || serve.stderr_text()).await;
    eprintln!("{backend:?}: {} tasks created, {while_down} of them while Redis was down", tally.created.len());
    assert!(tally.unavailable.is_empty() && tally.other.is_empty(), "every call succeeds without Redis: {tally:?}");
    assert!(while_down > 0, "no change was made while Redis was down: the test proved nothing");

    // The outbox: every event in the (new, empty) Redis once it came back.
    every_committed_change_has_its_event_in_redis(db.store.as_ref(), &prefix, &tally.created).await;
    let events = db.store.events_after(0, 100_000).await.unwrap();
    let logged: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let last = *logged.last().unwrap();
    assert_eq!(read_seqs_until(&mut everything, last).await, logged, "header-token client");
    assert_eq!(read_seqs_until(&mut by_query, last).await, logged, "query-token client");
    let web: Vec<i64> = events.iter().filter(|e| e.repository.as_deref() == Some("web")).map(|e| e.seq).collect();
    assert_eq!(read_seqs_until(&mut web_only, *web.last().unwrap()).await, web, "repository client");
    // The hub went back to reading Redis (its position re-resolved on the emptied stream).
    let deadline = Instant::now() + PATIENCE;
    while !serve.stderr_text().contains("live feed follows Redis again") {
        assert!(Instant::now() < deadline, "the hub never followed Redis again:\n{}", serve.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_refuses_every_command_is_retried_with_a_pause_not_hammered() {
    // Redis wants a password serve was not given: connections succeed, every command is NOAUTH.
    let redis = PrivateRedis::start_with_password(Some("the-password-serve-lacks"));
    let db = TestStore::new(Backend::Sqlite).await;
    let data_dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis.url_without_password().as_str()),
        ("JWT_SECRET", http::SECRET),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().unwrap()),
    ]);
    // Changes still commit (their events wait in the outbox) and the live feed follows the store.
    let client = reqwest::Client::new();
    let token = http::token_for(USER);
    let response = client.get(serve.url("/api/tasks/stream")).bearer_auth(&token).header("last-event-id", "0");
    let mut stream = SseReader::new(response.send().await.unwrap());
    let created = client.post(serve.url("/api/tasks")).bearer_auth(&token).json(&json!({"title": "t"})).send();
    assert_eq!(created.await.unwrap().status(), 201);
    assert_eq!(read_seqs_until(&mut stream, 1).await, [1]);
    // Over a few seconds, the live feed and the relay reconnect a handful of times; a hot loop made
    // thousands of connections a second.
    let before = redis.connections_received();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let made = redis.connections_received() - before - 1;
    eprintln!("connections to a Redis refusing every command, in 3 s: {made}");
    assert!(made < 100, "{made} connections in 3 s: a hot loop");
    let log = serve.stderr_text();
    assert!(log.contains("NOAUTH"), "the reason is logged: {log}");
    assert!(!log.contains("the-password-serve-lacks"));
}

/// `sse_clients` from `/metrics`: the live subscriptions of the server.
async fn sse_clients(server: &TestServer) -> u64 {
    let text = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix("sse_clients ")).and_then(|n| n.trim().parse().ok()).expect("sse_clients")
}

async fn wait_for_sse_clients(server: &TestServer, n: u64) {
    let deadline = Instant::now() + PATIENCE;
    while sse_clients(server).await != n {
        assert!(Instant::now() < deadline, "sse_clients stayed at {} (waiting for {n})", sse_clients(server).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_never_reads_is_dropped_and_the_others_keep_getting_every_event() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestStore::new(Backend::Postgres).await;
    let mut config = http::config();
    config.limits.slow_client = Duration::from_secs(5);
    let server = TestServer::start_with(crate::support::app(&db.url, None), config).await;
    let token = server.token(USER);

    // The client that never reads: a raw socket with a small receive buffer, one request, then silence.
    let address: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut silent = socket.connect(address).await.unwrap();
    let request = format!(
        "GET /api/tasks/stream HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Accept: text/event-stream\r\nLast-Event-ID: 0\r\n\r\n"
    );
    silent.write_all(request.as_bytes()).await.unwrap();
    // Two clients that read all along (a fresh database: the seqs are 1..=total).
    let total = 400;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let response = server.get("/api/tasks/stream").header("last-event-id", "0").send().await.unwrap();
        assert_eq!(response.status(), 200);
        let mut reader = SseReader::new(response);
        // The reader is handed back, still connected: the readers stay subscribed to the end.
        readers.push(tokio::spawn(async move {
            let seqs = read_seqs_until(&mut reader, total as i64).await;
            (reader, seqs)
        }));
    }
    wait_for_sse_clients(&server, 3).await;

    // Many large events: far more than the socket buffers and the server's queues hold.
    let description = "x".repeat(32 * 1024);
    let creates = futures::stream::iter(0..total)
        .map(|n| {
            let request = server.post("/api/tasks", json!({"title": format!("big {n}"), "description": description}));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(4)
        .collect::<Vec<u16>>()
        .await;
    assert!(creates.iter().all(|s| *s == 201), "{creates:?}");
    let logged: Vec<i64> = db.store.events_after(0, 10_000).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(logged, (1..=total as i64).collect::<Vec<_>>());
    let mut still_connected = Vec::new();
    for reader in readers {
        let (reader, seqs) = reader.await.unwrap();
        assert_eq!(seqs, logged, "a reading client missed nothing");
        still_connected.push(reader);
    }
    // The silent one lost its subscription (the two readers keep theirs)...
    wait_for_sse_clients(&server, 2).await;
    // ...and its connection: reading now ends (the server closed it) instead of streaming on.
    let mut sink = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, silent.read_to_end(&mut sink)).await;
    assert!(ended.is_ok(), "the server kept the connection of a client that never read");
    eprintln!("the silent client was cut off after {} bytes it read late ({:?})", sink.len(), ended.unwrap().err());
}

crate::per_backend!(stdin_closed_while_a_call_waits_on_the_database_commits_answers_and_exits_0);

/// Holds what every write of the test's store needs, until dropped: PostgreSQL's event-order
/// advisory lock (a session lock of a connection of the test's own), or SQLite's write lock.
enum WriteBlocker {
    Postgres(tokio_postgres::Client, tokio::task::JoinHandle<()>),
    Sqlite(rusqlite::Connection),
}

/// `pg_advisory_xact_lock` key every PostgreSQL write takes before it draws its event's seq.
const EVENT_ORDER_LOCK: i64 = 0x746d_6370_2d65_7674;

impl WriteBlocker {
    async fn hold(backend: Backend, db: &TestStore) -> WriteBlocker {
        match backend {
            Backend::Postgres => {
                let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
                let driver = tokio::spawn(async move {
                    let _ = connection.await;
                });
                client.execute("SELECT pg_advisory_lock($1)", &[&EVENT_ORDER_LOCK]).await.unwrap();
                WriteBlocker::Postgres(client, driver)
            }
            Backend::Sqlite => {
                let path = db.url.strip_prefix("sqlite://").unwrap();
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteBlocker::Sqlite(conn)
            }
        }
    }

    /// Waits until a write is queued behind the lock (PostgreSQL shows it; SQLite cannot, so a pause).
    async fn until_a_write_waits(&self) {
        match self {
            WriteBlocker::Postgres(client, _) => {
                let deadline = Instant::now() + PATIENCE;
                loop {
                    let waiting: i64 = client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                             AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                            &[],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    if waiting > 0 {
                        return;
                    }
                    assert!(Instant::now() < deadline, "the call never reached the database");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            WriteBlocker::Sqlite(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }

    async fn release(self) {
        match self {
            WriteBlocker::Postgres(client, driver) => {
                client.execute("SELECT pg_advisory_unlock($1)", &[&EVENT_ORDER_LOCK]).await.unwrap();
                drop(client);
                let _ = driver.await;
            }
            WriteBlocker::Sqlite(conn) => conn.execute_batch("COMMIT").unwrap(),
        }
    }
}

async fn stdin_closed_while_a_call_waits_on_the_database_commits_answers_and_exits_0(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    // The schema is in place (the first call migrates), so the next call waits on the lock only.
    mcp.ok("get_tasks", json!({})).await;
    let query = task_mcp::store::TaskQuery { limit: 10, ..Default::default() };
    assert!(db.store.list_tasks(&query).await.unwrap().is_empty());
    let blocker = WriteBlocker::hold(backend, &db).await;
    let call = json!({"name": "create_task", "arguments": {"title": "In flight when stdin closed"}});
    let id = mcp.start_request("tools/call", call).await;
    blocker.until_a_write_waits().await;
    mcp.close_stdin();
    // Longer than rmcp's own 5 s wait for calls in flight at end of input.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!mcp.has_exited(), "the process exited with a call in flight");
    assert!(db.store.list_tasks(&query).await.unwrap().is_empty(), "nothing can commit while the lock is held");
    blocker.release().await;
    let (status, frames) = mcp.close().await;
    assert!(status.success(), "{status}");
    let answer = frames
        .iter()
        .map(|line| crate::support::mcp::parse_frame(line))
        .find(|frame| frame["id"].as_i64() == Some(id))
        .unwrap_or_else(|| panic!("the call in flight was not answered: {frames:?}"));
    let result = crate::support::mcp::tool_result(&answer["result"]);
    assert!(!result.is_error, "{}", result.text);
    let tasks = db.store.list_tasks(&query).await.unwrap();
    assert_eq!(tasks.len(), 1, "the change was committed");
    assert_eq!(tasks[0].id.to_string(), result.structured["id"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_started_while_postgres_is_down_answers_503_then_recovers_with_its_streams() {
    let pg = PrivatePostgres::start();
    let url = pg.create_database("tasks").await;
    pg.stop(Shutdown::Fast);
    let data_dir = tempfile::tempdir().unwrap();
    let serve = ServeProcess::spawn(&[
        ("DATABASE_URL", url.as_str()),
        ("JWT_SECRET", http::SECRET),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().unwrap()),
    ]);
    let client = reqwest::Client::new();
    let token = http::token_for(USER);
    // A stream opened while the database is down waits for it rather than failing.
    let response = client.get(serve.url("/api/tasks/stream")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    let response = client.post(serve.url("/api/tasks")).bearer_auth(&token).json(&json!({"title": "t"})).send();
    let (status, code) = http::error_code(response.await.unwrap()).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    assert_eq!(client.get(serve.url("/health")).send().await.unwrap().status(), 503);

    pg.start_again();
    let deadline = Instant::now() + PATIENCE;
    let created = loop {
        let response = client.post(serve.url("/api/tasks")).bearer_auth(&token).json(&json!({"title": "after"}));
        let response = response.send().await.unwrap();
        if response.status() == 201 {
            break response.json::<Value>().await.unwrap();
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "serve did not recover:\n{}", serve.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(client.get(serve.url("/health")).send().await.unwrap().status(), 200);
    // It was opened when nobody could know where the log stood: it says so (reload, then carry on).
    let resync = stream.next(PATIENCE).await.expect("an event on the stream opened during the outage");
    assert_eq!(resync.event.as_deref(), Some("resync"), "{resync:?}");
    let from: i64 = resync.json()["seq"].as_i64().expect("the seq to carry on from");
    let page: Value =
        client.get(serve.url("/api/tasks")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert!(page["tasks"].as_array().unwrap().iter().any(|t| t["id"] == created["id"]), "the reload has it: {page}");
    // Then every change after that point, live.
    let next = client.post(serve.url("/api/tasks")).bearer_auth(&token).json(&json!({"title": "next"})).send();
    let next: Value = next.await.unwrap().json().await.unwrap();
    let mut seqs = Vec::new();
    loop {
        let event = stream.next(PATIENCE).await.expect("the next change");
        seqs.push(event.id.as_deref().and_then(|id| id.parse::<i64>().ok()).expect("an id"));
        if event.json()["task"]["id"] == next["id"] {
            break;
        }
    }
    let expected: Vec<i64> = (from + 1..=*seqs.last().unwrap()).collect();
    assert_eq!(seqs, expected, "every event after the resync point, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_frozen_postgres_fails_within_the_stores_bound_and_calls_succeed_once_it_thaws() {
    let pg = PrivatePostgres::start();
    let url = pg.create_database("tasks").await;
    let mut mcp = Server::spawn_with(&[("DATABASE_URL", url.as_str()), ("TASK_MCP_USER", USER)]);
    mcp.initialize().await;
    let before = mcp.ok("create_task", json!({"title": "before the freeze"})).await;
    // The server keeps its sockets and the kernel acknowledges what is sent: only a bound of our own
    // ends the wait (it was endless over stdio).
    pg.freeze();
    let started = Instant::now();
    let error = mcp.fail("get_tasks", json!({})).await;
    let took = started.elapsed();
    pg.thaw();
    eprintln!("a call to a frozen PostgreSQL failed after {took:?}: {}", error.text);
    assert_eq!(error.code(), "unavailable", "{}", error.text);
    assert!(error.text.contains("did not answer within"), "{}", error.text);
    assert!(took < Duration::from_secs(40), "{took:?}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let result = mcp.call("get_tasks", json!({"detail": "full"})).await;
        if !result.is_error {
            assert_eq!(result.structured["tasks"][0]["id"], before["id"]);
            break;
        }
        assert!(Instant::now() < deadline, "no recovery after the thaw: {}", result.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = mcp.close().await;
    assert!(status.success());
}
