//! What `serve` holds for a client, and for how long: silent, slow and idle connections are closed after
//! the header timeout (an event stream is not), and the caps on connections and on event streams (in
//! all and per user) answer 503 with `Retry-After`. Bounded counts, on 127.0.0.1.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::http::{self, SseReader, TestServer, error_code};
use crate::support::{self, Backend, TestStore};

/// Reads until the server closes the connection (or `wait` passes); returns what it sent and
/// whether it closed.
async fn read_until_closed(tcp: &mut TcpStream, wait: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one answer's head (up to the blank line).
async fn read_head(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, tcp.read(&mut byte)).await {
            Ok(Ok(1)) => seen.push(byte[0]),
            other => panic!("no answer head: {other:?} after {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn host_of(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(host_of(server)).await.expect("connect")
}

/// A request for `/health` that leaves the connection open after its answer.
fn health_request(server: &TestServer) -> String {
    format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", host_of(server))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut config = http::config();
    config.limits.header_timeout = Duration::from_millis(800);
    let server = TestServer::start_with(support::app(&db.url, None), config).await;

    let started = Instant::now();
    let mut silent = connect(&server).await;
    // Slowloris: a header line every 100 ms, never the blank line that ends the head.
    let mut slow = connect(&server).await;
    let trickle = tokio::spawn(async move {
        let _ = slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n").await;
        for i in 0..100 {
            if slow.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                return (i, true);
            }
            let mut buf = [0u8; 1];
            // A read that ends (EOF or reset) is the server closing; a pending one means still open.
            match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (i, true),
                _ => {}
            }
        }
        (100, false)
    });
    // Idle: one request answered, then nothing.
    let mut idle = connect(&server).await;
    idle.write_all(health_request(&server).as_bytes()).await.unwrap();
    assert!(read_head(&mut idle).await.starts_with("HTTP/1.1 200"));

    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "a silent connection stayed open");
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection stayed open");
    let (lines_sent, closed) = trickle.await.unwrap();
    assert!(closed, "a slowloris connection stayed open through 100 header lines");
    assert!(lines_sent < 60, "closed only after {lines_sent} header lines");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_header_timeout() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut config = http::config();
    config.limits.header_timeout = Duration::from_millis(500);
    config.limits.sse_heartbeat = Duration::from_millis(200);
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    let response = server.get("/api/tasks/stream").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = SseReader::new(response);
    assert!(!stream.ends_within(Duration::from_secs(2)).await, "the stream was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_answered_503_with_retry_after() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut config = http::config();
    config.limits.max_connections = 3;
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = connect(&server).await;
        tcp.write_all(health_request(&server).as_bytes()).await.unwrap();
        assert!(read_head(&mut tcp).await.starts_with("HTTP/1.1 200"));
        held.push(tcp);
    }
    let mut fourth = connect(&server).await;
    fourth.write_all(health_request(&server).as_bytes()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut fourth, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 5"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert!(closed, "the refused connection stayed open");

    // A closed connection gives its place back.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut tcp = connect(&server).await;
        tcp.write_all(health_request(&server).as_bytes()).await.unwrap();
        if read_head(&mut tcp).await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the place of a closed connection was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_beyond_the_caps_per_user_and_in_all_are_answered_503_with_retry_after() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut config = http::config();
    config.limits.max_streams = 3;
    config.limits.max_streams_per_user = 2;
    config.limits.sse_heartbeat = Duration::from_millis(200);
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    let open = |email: &'static str| {
        let request = server.as_user(reqwest::Method::GET, "/api/tasks/stream", email);
        async move { request.send().await.unwrap() }
    };
    let alice_1 = open("alice@example.com").await;
    assert_eq!(alice_1.status(), 200);
    let alice_2 = open("alice@example.com").await;
    assert_eq!(alice_2.status(), 200);

    let refused = open("alice@example.com").await;
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_eq!(error_code(refused).await, (503, "too_many_streams".to_owned()));

    let bob = open("bob@example.com").await;
    assert_eq!(bob.status(), 200, "another user is served");
    let carol = open("carol@example.com").await;
    assert_eq!(carol.headers()["retry-after"], "5");
    assert_eq!(error_code(carol).await, (503, "too_many_streams".to_owned()));

    // A stream that ends gives its place back.
    drop(alice_1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = open("alice@example.com").await;
        if again.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the place of a closed stream was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((alice_2, bob));
}
