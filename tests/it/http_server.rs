//! The server around the API: the OpenAPI document matches the routes, request ids, CORS and the
//! Origin guard, health and metrics, start-up refusals, and graceful shutdown (in-process and of the
//! real binary on SIGTERM).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::http_auth::documented_routes;
use crate::support::http::{self, ServeProcess, SseReader, TestServer, error_code};
use crate::support::{self, Backend, TestStore};

/// The routes of the REST API and MCP over HTTP, plus health, metrics and the document itself.
const EXPECTED_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/tasks"),
    ("POST", "/api/tasks"),
    ("GET", "/api/tasks/stream"),
    ("POST", "/api/tasks/stream/ticket"),
    ("GET", "/api/tasks/{id}"),
    ("PATCH", "/api/tasks/{id}"),
    ("DELETE", "/api/tasks/{id}"),
    ("PUT", "/api/tasks/{id}/status"),
    ("GET", "/api/tasks/{id}/comments"),
    ("POST", "/api/tasks/{id}/comments"),
    ("GET", "/api/tasks/{id}/history"),
    ("GET", "/api/tasks/{id}/links"),
    ("POST", "/api/tasks/claim"),
    ("POST", "/api/tasks/{id}/claim"),
    ("POST", "/api/tasks/{id}/release"),
    ("GET", "/api/repositories"),
    ("PATCH", "/api/repositories/{name}"),
    ("GET", "/api/users"),
    ("GET", "/api/me"),
    ("GET", "/api/openapi.json"),
    ("GET", "/health"),
    ("GET", "/metrics"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let doc: Value = server.client.get(server.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_ascii_uppercase(), path.clone())))
        .collect();
    let expected: BTreeSet<(String, String)> =
        EXPECTED_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected);

    // Every documented route is served (never the router's 404 or 405)...
    for (method, path, _) in documented_routes(&server).await {
        let mut request = server.as_user(method.clone(), &path, "tester@example.com");
        if [Method::POST, Method::PATCH, Method::PUT].contains(&method) {
            request = request.json(&json!({}));
        }
        if path.ends_with("/stream") {
            request = request.timeout(Duration::from_secs(2));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{method} {path}");
        if status == 404 {
            assert_ne!(error_code(response).await.1, "route_not_found", "{method} {path}");
        }
    }
    // ...and a method the document does not list on a documented path is not.
    for (method, path) in [(Method::DELETE, "/api/tasks"), (Method::POST, "/api/me"), (Method::PUT, "/api/users")] {
        let response = server.as_user(method.clone(), path, "tester@example.com").send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
    }
    // Every schema it refers to is defined.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"").skip(1) {
        let name = reference.split('"').next().unwrap().trim_start_matches("#/components/schemas/");
        assert!(doc["components"]["schemas"].get(name).is_some(), "undefined schema {name}");
    }
    assert!(doc["components"]["schemas"].get("TaskJson").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id_and_keeps_the_clients() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let response = server.get("/api/me").header("x-request-id", "client-chose-this-1").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chose-this-1");
    let generated = server.client.get(server.url("/nothing")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    // An id that could forge log lines is replaced.
    let response = server.get("/api/me").header("x-request-id", "a b\tc").send().await.unwrap();
    assert_ne!(response.headers()["x-request-id"], "a b\tc");
    let unauthorized = server.client.get(server.url("/api/me")).send().await.unwrap();
    assert!(unauthorized.headers().contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_the_configured_origins() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let preflight = |origin: &str| {
        server
            .client
            .request(Method::OPTIONS, server.url("/api/tasks"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
    };
    let allowed = preflight("https://dashboard.example.com").send().await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://dashboard.example.com");
    let methods = allowed.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    assert!(methods.contains("PATCH") && !methods.contains('*'), "{methods}");
    assert!(allowed.headers().contains_key("access-control-max-age"));

    let refused = preflight("https://evil.example.net").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
    let response = server.get("/api/me").header("origin", "https://evil.example.net").send().await.unwrap();
    assert_eq!(error_code(response).await, (403, "origin_not_allowed".to_owned()));
    // The server's own origin (the dashboard it serves) is allowed.
    let own = server.base.clone();
    let response = server.get("/api/me").header("origin", own).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = server.get("/api/me").header("origin", "https://dashboard.example.com").send().await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "https://dashboard.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_origins_are_refused_on_every_kind_of_route() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let origins = [
        "null",
        "https://dashboard.example.com.attacker.example",
        "https://attacker.example/https://dashboard.example.com",
        "http://dashboard.example.com",
        "https://dashboard.example.com:8443",
        "https://evil-dashboard.example.com",
    ];
    for origin in origins {
        for path in ["/api/tasks", "/api/tasks/stream", "/api/me"] {
            let response =
                server.get(path).header("origin", origin).timeout(Duration::from_secs(5)).send().await.unwrap();
            assert!(!response.headers().contains_key("access-control-allow-origin"), "{origin} {path}");
            assert_eq!(error_code(response).await, (403, "origin_not_allowed".to_owned()), "{origin} {path}");
        }
        let preflight = server
            .client
            .request(Method::OPTIONS, server.url("/api/tasks"))
            .header("origin", origin)
            .header("access-control-request-method", "DELETE")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 403, "preflight from {origin}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_whether_the_database_answers() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let response = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["redis"]["status"], "disabled");

    // A database nobody listens on: 503, and no address in the answer.
    let dead = support::app("postgres://postgres@127.0.0.1:1/nothing", None);
    let server = TestServer::start(dead).await;
    let response = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    assert!(text.contains("\"down\"") && !text.contains("127.0.0.1"), "{text}");
    // A call that needs the database is a 503 too, quickly.
    let started = std::time::Instant::now();
    let response = server.get("/api/tasks").send().await.unwrap();
    assert_eq!(error_code(response).await, (503, "unavailable".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_status() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    server.get("/api/me").send().await.unwrap();
    server.get(&format!("/api/tasks/{}", uuid::Uuid::new_v4())).send().await.unwrap();
    let text = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/api/me",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"route="/api/tasks/{id}",status="404"} 1"#), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    for name in ["sse_clients", "events_relayed_total", "sse_events_sent_total"] {
        assert!(text.contains(&format!("\n{name} ")), "{name} missing: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_are_counted_as_other_and_keep_metrics_small() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestStore::new(Backend::Sqlite).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    for i in 0..100 {
        // A 10 KB method name, different each time: hyper accepts it as a token.
        let method = format!("{}{i}", "M".repeat(10 * 1024));
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        let request = format!("{method} /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut response)).await.unwrap().unwrap();
        assert!(response.starts_with(b"HTTP/1.1 4"), "{}", String::from_utf8_lossy(&response));
    }
    let text = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.len() < 64 * 1024, "a scrape of {} bytes after 100 made-up methods", text.len());
    assert!(!text.contains("MMMM"), "a made-up method became a label");
    let other: u64 = text
        .lines()
        .filter(|line| line.starts_with(r#"http_requests_total{method="other","#))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(other, 100, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_and_finishes_requests_in_flight() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let streams = futures::future::join_all((0..20).map(|_| async {
        let response = server.get("/api/tasks/stream").send().await.unwrap();
        assert_eq!(response.status(), 200);
        SseReader::new(response)
    }))
    .await;
    let client = server.client.clone();
    let url = server.url("/api/tasks");
    let token = server.token("tester@example.com");
    let base = server.base.clone();
    let took = server.stop().await;
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    for mut stream in streams {
        assert!(stream.ends_within(Duration::from_secs(2)).await, "a stream stayed open");
    }
    // Stopped: no longer accepting.
    assert!(client.get(url).bearer_auth(token).send().await.is_err(), "{base} still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_without_a_usable_secret() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut config = http::config();
    config.jwt_secret = Some("too-short".to_owned());
    let err = task_mcp::http::Server::build(support::app(&db.url, None), config).await.err().expect("refused");
    assert!(err.to_string().contains("at least 32"), "{err}");
    let mut config = http::config();
    config.jwt_secret = None;
    config.host = "0.0.0.0".parse().unwrap();
    let err = task_mcp::http::Server::build(support::app(&db.url, None), config).await.err().expect("refused");
    assert!(err.to_string().contains("JWT_SECRET is not set"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_a_signed_in_dashboard_link_and_stops_on_sigterm() {
    let db = TestStore::new(Backend::Postgres).await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut process = ServeProcess::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().unwrap()),
        ("TASK_MCP_USER", "owner@example.com"),
    ]);
    // Wait for the link (printed right after the listening line).
    let mut link = None;
    for _ in 0..100 {
        link = process
            .stderr_text()
            .lines()
            .find_map(|l| l.split_whitespace().find(|w| w.contains("#token=")).map(str::to_owned));
        if link.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let link = link.expect("a dashboard link on stderr");
    assert!(link.starts_with(&process.base), "{link}");
    let token = link.split("#token=").nth(1).unwrap().to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.path().join("jwt-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let client = reqwest::Client::new();
    let me: Value = client.get(process.url("/api/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["email"], "owner@example.com");

    let stream = client.get(process.url("/api/tasks/stream")).bearer_auth(&token).send().await.unwrap();
    let mut stream = SseReader::new(stream);
    let (code, took) = process.terminate(Duration::from_secs(10));
    assert_eq!(code, Some(0), "stderr: {}", process.stderr_text());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(stream.ends_within(Duration::from_secs(2)).await);
    // The secret never reaches the log.
    let secret = std::fs::read_to_string(data_dir.path().join("jwt-secret")).unwrap();
    assert!(!process.stderr_text().contains(secret.trim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_thousand_open_streams_exits_cleanly_within_seconds() {
    let db = TestStore::new(Backend::Postgres).await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut process = ServeProcess::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().unwrap()),
        ("JWT_SECRET", http::SECRET),
        // One user's thousand streams: above the default cap per user.
        ("TASK_MCP_MAX_STREAMS_PER_USER", "1000"),
    ]);
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let token = http::token_for("watcher@example.com");
    let mut streams = Vec::new();
    for _ in 0..10 {
        let batch = futures::future::join_all(
            (0..100).map(|_| client.get(process.url("/api/tasks/stream")).bearer_auth(&token).send()),
        )
        .await;
        for response in batch {
            let response = response.expect("stream opened");
            assert_eq!(response.status(), 200);
            streams.push(SseReader::new(response));
        }
    }
    assert_eq!(streams.len(), 1000);
    // Every stream is a live subscription of the hub (not only an answered request head).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = client.get(process.url("/metrics")).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == "sse_clients 1000") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not 1000 live subscriptions: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, took) = process.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0), "stderr: {}", process.stderr_text());
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    for stream in &mut streams {
        assert!(stream.ends_within(Duration::from_secs(2)).await);
    }
    eprintln!("SIGTERM with 1000 open streams: exited 0 in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_a_host_it_does_not_answer_to_and_serves_the_allowed_ones() {
    let db = TestStore::new(Backend::Sqlite).await;
    let config = task_mcp::http::Config {
        public_url: Some("https://tasks.example.com".to_owned()),
        allowed_hosts: vec!["intranet.example:8443".to_owned()],
        ..http::config()
    };
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let mut routes: Vec<(Method, String)> =
        documented_routes(&server).await.into_iter().map(|(method, path, _)| (method, path)).collect();
    for path in ["/", "/assets/app.js", "/mcp", "/no/such/route"] {
        routes.push((Method::GET, path.to_owned()));
    }
    routes.push((Method::POST, "/mcp".to_owned()));
    let foreign = [
        "attacker.example".to_owned(),
        format!("attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
        "tasks.example.com.attacker.example".to_owned(),
        "intranet.example:9999".to_owned(),
    ];
    let allowed = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "tasks.example.com".to_owned(),
        "intranet.example:8443".to_owned(),
    ];
    for (method, path) in &routes {
        let send = |host: &str| {
            let mut request = server.as_user(method.clone(), path, "tester@example.com").header("host", host);
            if [Method::POST, Method::PATCH, Method::PUT].contains(method) {
                request = request.json(&json!({}));
            }
            request.timeout(Duration::from_secs(5)).send()
        };
        for host in &foreign {
            let response = send(host).await.unwrap();
            assert_eq!(
                error_code(response).await,
                (403, "host_not_allowed".to_owned()),
                "{method} {path} Host: {host}"
            );
        }
        for host in &allowed {
            let status = send(host).await.unwrap().status().as_u16();
            assert!(status != 403 && status != 421, "{method} {path} Host: {host} got {status}");
        }
    }
}
