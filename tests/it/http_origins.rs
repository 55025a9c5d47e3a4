//! The one Origin rule on every kind of route (REST, the event stream, `/mcp`): the server's own
//! origin, `PUBLIC_URL` and `CORS_ORIGINS` are allowed; on a loopback binding, loopback pages on any
//! port too; everything else is 403 `origin_not_allowed`.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::http::{TestServer, config, error_code};
use crate::support::{self, Backend, TestStore};

/// A server for `user` with an API key (for `/mcp`) on `host`, with `PUBLIC_URL` set.
async fn server_on(host: &str) -> (TestStore, TestServer, String) {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("origin@example.com".to_owned());
    let key = task_mcp::commands::api_key::create(&app, "origin key").await.unwrap();
    let mut config = config();
    config.host = host.parse().unwrap();
    config.public_url = Some("https://tasks.example.com".to_owned());
    let mut server = TestServer::start_with(app, config).await;
    // Bound to every address: reached, as a client would, through one of them.
    server.base = server.base.replace("0.0.0.0", "127.0.0.1");
    (db, server, key)
}

/// The status each route answers a request from `origin` with (403s checked to be `origin_not_allowed`).
async fn statuses(server: &TestServer, key: &str, origin: &str) -> Vec<(String, u16)> {
    let token = server.token("origin@example.com");
    let mut seen = Vec::new();
    for path in ["/api/tasks", "/api/tasks/stream"] {
        let response = server
            .client
            .get(server.url(path))
            .bearer_auth(&token)
            .header("origin", origin)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        seen.push((path.to_owned(), response));
    }
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "origin-test", "version": "1"}}});
    let response = server
        .client
        .post(server.url("/mcp"))
        .header("x-api-key", key)
        .header("accept", "application/json, text/event-stream")
        .header("origin", origin)
        .json(&initialize)
        .send()
        .await
        .unwrap();
    seen.push(("/mcp".to_owned(), response));
    let mut out = Vec::new();
    for (path, response) in seen {
        let status = response.status().as_u16();
        if status == 403 {
            assert_eq!(error_code(response).await, (403, "origin_not_allowed".to_owned()), "{origin} {path}");
        } else {
            let allow = response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(allow.as_deref(), Some(origin.trim_end_matches('/')), "CORS header for {origin} on {path}");
        }
        out.push((path, status));
    }
    out
}

async fn assert_all(server: &TestServer, key: &str, origin: &str, expected: u16) {
    for (path, status) in statuses(server, key, origin).await {
        assert_eq!(status, expected, "Origin {origin} on {path}");
    }
    // The preflight agrees.
    let preflight = server
        .client
        .request(Method::OPTIONS, server.url("/mcp"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-api-key")
        .send()
        .await
        .unwrap();
    let ok = preflight.status().is_success();
    assert_eq!(ok, expected == 200, "preflight from {origin}: {}", preflight.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_the_own_origin_and_loopback_pages_are_allowed_on_every_route() {
    let (_db, server, key) = server_on("127.0.0.1").await;
    let own = server.base.clone();
    let port = own.rsplit(':').next().unwrap().to_owned();
    for origin in [
        own.as_str(),
        &format!("http://localhost:{port}"),
        "http://localhost:5173",
        "http://[::1]:3000",
        "http://127.0.0.1:9",
    ] {
        assert_all(&server, &key, origin, 200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_url_and_cors_origins_are_allowed_on_every_route() {
    let (_db, server, key) = server_on("127.0.0.1").await;
    assert_all(&server, &key, "https://tasks.example.com", 200).await;
    assert_all(&server, &key, "https://dashboard.example.com", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_are_refused_on_every_route() {
    let (_db, server, key) = server_on("127.0.0.1").await;
    for origin in [
        "https://evil.example.net",
        "null",
        "http://localhost.attacker.example",
        "https://tasks.example.com.attacker.example",
        "file://localhost",
    ] {
        assert_all(&server, &key, origin, 403).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_loopback_pages_are_foreign_but_the_own_origin_is_not() {
    let (_db, server, key) = server_on("0.0.0.0").await;
    // Requests go to 127.0.0.1:PORT: a page served from there is the server's own.
    assert_all(&server, &key, &server.base.clone(), 200).await;
    assert_all(&server, &key, "https://tasks.example.com", 200).await;
    for origin in ["http://localhost:5173", "http://[::1]:3000"] {
        assert_all(&server, &key, origin, 403).await;
    }
}
