//! Authentication over real HTTP: every protected route refuses every bad credential with 401, the
//! identity comes from the credential only, failed attempts are rate-limited per address, and API
//! keys are shown once, stored hashed and can be revoked.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::json;

use crate::support::http::{self, SECRET, TestServer, error_code, now, sign};
use crate::support::{self, Backend, TestStore};

/// Every (method, path) the OpenAPI document lists, with `{id}` filled in, and whether it is public.
pub async fn documented_routes(server: &TestServer) -> Vec<(Method, String, bool)> {
    let doc: serde_json::Value =
        server.client.get(server.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let public = operation.get("security").is_some_and(|s| s.as_array().is_some_and(|a| a.is_empty()));
            let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            routes.push((method, path.replace("{id}", &uuid::Uuid::new_v4().to_string()), public));
        }
    }
    routes
}

/// A public key anyone may have: the "public-key trick" signs HS256 with its text as the secret,
/// hoping a server that verifies RS256 with this key would take it as an HMAC secret.
const PUBLIC_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8YqT41b9Q5JVOaQMY5yw
jlybe4sMUi6THI9bceLyGq04T3f/MZgTCob44ZL6W+fi3mBCcf0eK2JtPetqPPNd
v6kI6nKR1fG+mrsAUn9IwpjK+QpkAXIfV6tR3RZNQQRPT9dVWMZd/S08muyRcxau
fExRObCzQnx7JbQAQe5/2f7dG4FD6nmMErxPG9Mg0/8XhGea1/RplKutI79UL7e6
Rb5lfCDsJatOAIfwBNwCtkryXWjwYU+HLX0+Q2oB2EAUDBU3BuZp3IEBHWPdGFos
XymRSVDhUy8ztU0cQi57txXDxXYl8HA7QNvvOc+mDI/WApr3S05P3sphbxxvdaiE
UwIDAQAB
-----END PUBLIC KEY-----
";

/// A token whose header names `alg` over valid claims, with a signature that is not one (the server
/// must refuse on the algorithm, before any signature check).
fn with_alg_header(alg: &str, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode([7u8; 64])
    )
}

/// Tokens that must all be refused, by name (what may also travel as `?access_token=`).
fn bad_tokens() -> Vec<(&'static str, String)> {
    bad_credentials()
        .into_iter()
        .filter_map(|(name, credential)| Some((name, credential?.strip_prefix("Bearer ")?.to_owned())))
        // A URL of 64 KiB is not one an HTTP client can even send.
        .filter(|(_, token)| !token.is_empty() && token.len() < 16 * 1024)
        .collect()
}

/// Credentials that must all be refused, by name.
fn bad_credentials() -> Vec<(&'static str, Option<String>)> {
    let claims = |extra: serde_json::Value| {
        let mut c = json!({ "sub": "mallory@example.com", "iss": "task-mcp", "iat": now(), "exp": now() + 600 });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    vec![
        ("no credential", None),
        ("not a bearer", Some("Basic dXNlcjpwYXNz".to_owned())),
        ("malformed", Some("Bearer not-a-jwt".to_owned())),
        ("empty bearer", Some("Bearer ".to_owned())),
        (
            "wrong secret",
            Some(format!(
                "Bearer {}",
                sign(claims(json!({})), Algorithm::HS256, b"wrong-secret-wrong-secret-wrong-secret")
            )),
        ),
        (
            "expired",
            Some(format!("Bearer {}", sign(claims(json!({"exp": now() - 3600})), Algorithm::HS256, SECRET.as_bytes()))),
        ),
        (
            "not yet valid",
            Some(format!("Bearer {}", sign(claims(json!({"nbf": now() + 3600})), Algorithm::HS256, SECRET.as_bytes()))),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                sign(json!({"sub": "mallory@example.com", "iss": "task-mcp"}), Algorithm::HS256, SECRET.as_bytes())
            )),
        ),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        ("HS512", Some(format!("Bearer {}", sign(claims(json!({})), Algorithm::HS512, SECRET.as_bytes())))),
        ("HS384", Some(format!("Bearer {}", sign(claims(json!({})), Algorithm::HS384, SECRET.as_bytes())))),
        ("an RS256 header", Some(format!("Bearer {}", with_alg_header("RS256", &claims(json!({})))))),
        ("an ES256 header", Some(format!("Bearer {}", with_alg_header("ES256", &claims(json!({})))))),
        ("a NONE header", Some(format!("Bearer {}", with_alg_header("NONE", &claims(json!({})))))),
        (
            "the public-key trick",
            Some(format!("Bearer {}", sign(claims(json!({})), Algorithm::HS256, PUBLIC_KEY_PEM.as_bytes()))),
        ),
        (
            "another issuer",
            Some(format!(
                "Bearer {}",
                sign(claims(json!({"iss": "other-service"})), Algorithm::HS256, SECRET.as_bytes())
            )),
        ),
        (
            "a subject that is not an email",
            Some(format!("Bearer {}", sign(claims(json!({"sub": "admin"})), Algorithm::HS256, SECRET.as_bytes()))),
        ),
        (
            "a valid token with its signature altered",
            Some(format!("Bearer {}", cut_signature(&http::token_for("a@b.c")))),
        ),
        (
            "a lifetime past the cap",
            Some(format!(
                "Bearer {}",
                sign(claims(json!({"exp": now() + 401 * 86_400})), Algorithm::HS256, SECRET.as_bytes())
            )),
        ),
        (
            "valid until the end of time",
            Some(format!("Bearer {}", sign(claims(json!({"exp": u64::MAX})), Algorithm::HS256, SECRET.as_bytes()))),
        ),
        (
            "issued for longer than the cap",
            Some(format!(
                "Bearer {}",
                sign(claims(json!({"iat": now() - 400 * 86_400})), Algorithm::HS256, SECRET.as_bytes())
            )),
        ),
        ("oversized", Some(format!("Bearer {}", "a".repeat(8000)))),
        ("a 64 KiB token", Some(format!("Bearer {}.{}.x", "a".repeat(32 * 1024), "b".repeat(32 * 1024)))),
        ("an API key as a JWT", Some("Bearer tmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_route_refuses_every_bad_credential() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let routes = documented_routes(&server).await;
    assert!(routes.len() >= 16, "{routes:?}");
    let mut checked = 0;
    for (method, path, public) in &routes {
        if *public {
            continue;
        }
        for (name, credential) in bad_credentials() {
            let mut request = server.client.request(method.clone(), server.url(path));
            if let Some(credential) = &credential {
                request = request.header("authorization", credential);
            }
            if [Method::POST, Method::PATCH, Method::PUT].contains(method) {
                request = request.json(&json!({"title": "x", "status": "completed", "comment": "x"}));
            }
            let response = request.send().await.unwrap();
            assert!(response.headers().contains_key("www-authenticate"), "{method} {path} {name}");
            let (status, code) = error_code(response).await;
            assert_eq!((status, code.as_str()), (401, "unauthorized"), "{method} {path} with {name}");
            checked += 1;
        }
    }
    assert!(checked >= 13 * 21, "only {checked} cases");
    // The stream also takes the token as a query parameter, and refuses every bad one there.
    for (name, token) in bad_tokens() {
        let url = server.url(&format!("/api/tasks/stream?access_token={}", percent(&token)));
        let response = server.client.get(url).send().await.unwrap();
        assert_eq!(error_code(response).await, (401, "unauthorized".to_owned()), "access_token {name}");
    }
    // A bad header is not rescued by a good query token.
    let url = server.url(&format!("/api/tasks/stream?access_token={}", server.token("ann@example.com")));
    let response = server.client.get(url).header("authorization", "Bearer forged").send().await.unwrap();
    assert_eq!(response.status(), 401);
    // Only the stream does: elsewhere a query token proves nothing.
    let token = server.token("ann@example.com");
    let response = server.client.get(server.url(&format!("/api/me?access_token={token}"))).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

/// A valid token with the first character of its signature changed.
fn cut_signature(token: &str) -> String {
    let (head, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    format!("{head}.{flipped}{}", &signature[1..])
}

/// Percent-encodes a query value.
fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_routes_need_no_credential() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    for path in ["/health", "/metrics", "/api/openapi.json"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentication_is_rate_limited_per_address() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut config = http::config();
    config.limits.auth_failures = 3;
    config.limits.auth_window = Duration::from_secs(30);
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    for _ in 0..3 {
        let response = server.client.get(server.url("/api/me")).bearer_auth("forged").send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = server.client.get(server.url("/api/me")).bearer_auth("forged").send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(error_code(response).await.1, "too_many_attempts");
    // While blocked, a good token is still served: others' failures from the same address (a proxy,
    // a NAT, a web page) must not lock its users out.
    let response = server.get("/api/me").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = server.client.get(server.url("/api/me")).bearer_auth("forged").send().await.unwrap();
    assert_eq!(response.status(), 429, "bad credentials still wait");
    // Public routes still answer.
    assert_eq!(server.client.get(server.url("/health")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_not_counted_as_guesses() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut config = http::config();
    config.limits.auth_failures = 2;
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    for _ in 0..5 {
        assert_eq!(server.client.get(server.url("/api/users")).send().await.unwrap().status(), 401);
    }
    assert_eq!(server.get("/api/users").send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_is_who_the_token_names_whatever_the_body_says() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let me: serde_json::Value =
        server.as_user(Method::GET, "/api/me", "Ann@Example.com").send().await.unwrap().json().await.unwrap();
    assert_eq!(me["email"], "ann@example.com");

    // Naming someone else in the body is refused, and nothing is created.
    for field in ["created_by", "updated_by", "author"] {
        let response = server
            .as_user(Method::POST, "/api/tasks", "ann@example.com")
            .json(&json!({"title": "forged", field: "boss@example.com"}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"]["field"], field);
    }
    let page: serde_json::Value = server.get("/api/tasks").send().await.unwrap().json().await.unwrap();
    assert_eq!(page["tasks"].as_array().unwrap().len(), 0);

    // What is recorded is the token's user.
    let task: serde_json::Value = server
        .as_user(Method::POST, "/api/tasks", "ann@example.com")
        .json(&json!({"title": "mine"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task["created_by"], "ann@example.com");
    let id = task["id"].as_str().unwrap();
    let comment: serde_json::Value = server
        .as_user(Method::POST, &format!("/api/tasks/{id}/comments"), "bob@example.com")
        .json(&json!({"comment": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(comment["author"], "bob@example.com");
    let updated: serde_json::Value = server
        .as_user(Method::PUT, &format!("/api/tasks/{id}/status"), "bob@example.com")
        .json(&json!({"status": "in_progress"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["updated_by"], "bob@example.com");
    // "me" is the caller.
    let mine: serde_json::Value = server
        .as_user(Method::POST, "/api/tasks", "carol@example.com")
        .json(&json!({"title": "for me", "assignee_id": "me"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["assignee_email"], "carol@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_created_hashed_listed_and_revoked() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("agent-owner@example.com".to_owned());
    let key = task_mcp::commands::api_key::create(&app, "laptop").await.unwrap();
    assert!(key.starts_with("tmk_"));
    let keys = app.store.list_api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].user_email, "agent-owner@example.com");
    let listing = task_mcp::commands::api_key::list(&app).await.unwrap().join("\n");
    assert!(listing.contains("laptop") && !listing.contains(&key), "{listing}");
    // The store holds the hash only.
    let hash = task_mcp::service::api_keys::hash_api_key(&key);
    assert!(app.store.find_api_key(&hash).await.unwrap().is_some());
    assert!(app.store.find_api_key(&key).await.unwrap().is_none());
    assert!(app.store.revoke_api_key("laptop").await.unwrap());
    assert!(app.store.find_api_key(&hash).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_signs_for_the_user_with_the_configured_secret() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("dev@example.com".to_owned());
    let args = task_mcp::cli::TokenArgs { ttl: "2h".to_owned(), jwt_secret: Some(SECRET.to_owned()) };
    let token = task_mcp::commands::token::issue(&app.settings, &args).await.unwrap();
    let server = TestServer::start(app).await;
    let me: serde_json::Value =
        server.client.get(server.url("/api/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["email"], "dev@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_on_rest_the_stream_and_mcp_count_toward_one_limit() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("agent@example.com".to_owned());
    let key = task_mcp::commands::api_key::create(&app, "agent").await.unwrap();
    let mut config = http::config();
    config.limits.auth_failures = 4;
    let server = TestServer::start_with(app, config).await;
    let mcp = |key: &str| {
        server
            .client
            .post(server.url("/mcp"))
            .header("x-api-key", key)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
    };
    // Four guesses, spread over the three kinds of route.
    assert_eq!(mcp("tmk_guess-one").send().await.unwrap().status(), 401);
    assert_eq!(mcp("tmk_guess-two").send().await.unwrap().status(), 401);
    let stream = server.client.get(server.url("/api/tasks/stream?access_token=guess.three.x")).send();
    assert_eq!(stream.await.unwrap().status(), 401);
    assert_eq!(server.client.get(server.url("/api/me")).bearer_auth("guess-four").send().await.unwrap().status(), 401);
    // The address is now refused everywhere for bad credentials, and served with right ones.
    let response = mcp("tmk_guess-five").send().await.unwrap();
    assert_eq!(error_code(response).await, (429, "too_many_attempts".to_owned()), "/mcp with a wrong key");
    let stream = server.client.get(server.url("/api/tasks/stream?access_token=guess.six.x"));
    assert_eq!(stream.send().await.unwrap().status(), 429, "the stream with a wrong token");
    assert_eq!(server.client.get(server.url("/api/me")).bearer_auth("guess-7").send().await.unwrap().status(), 429);
    assert_eq!(mcp(&key).send().await.unwrap().status(), 200, "/mcp with the right key");
    let stream = server.client.get(server.url(&format!("/api/tasks/stream?access_token={}", server.token("a@b.c"))));
    assert_eq!(stream.send().await.unwrap().status(), 200, "the stream with a good token");
    assert_eq!(server.get("/api/tasks").send().await.unwrap().status(), 200, "REST with a good token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_no_cors_requests_to_the_stream_are_refused_before_they_count() {
    let db = TestStore::new(Backend::Postgres).await;
    let mut config = http::config();
    config.limits.auth_failures = 2;
    let server = TestServer::start_with(support::app(&db.url, None), config).await;
    // What `<img src=".../api/tasks/stream?access_token=x">` on another site makes a browser send.
    for _ in 0..5 {
        let response = server
            .client
            .get(server.url("/api/tasks/stream?access_token=x"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "no-cors")
            .header("sec-fetch-dest", "image")
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (403, "cross_site_request".to_owned()));
    }
    // None of them counted: a wrong token is still a plain 401, not a lockout.
    let response = server.client.get(server.url("/api/me")).bearer_auth("forged").send().await.unwrap();
    assert_eq!(response.status(), 401);
    // The dashboard's own EventSource (same origin, cors mode) is served.
    let response = server
        .client
        .get(server.url(&format!("/api/tasks/stream?access_token={}", server.token("a@b.c"))))
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// A stream ticket from `POST /api/tasks/stream/ticket`, signed in as `email`.
async fn stream_ticket(server: &TestServer, email: &str) -> serde_json::Value {
    let response = server.as_user(Method::POST, "/api/tasks/stream/ticket", email).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ticket_opens_the_stream_and_nothing_else() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let answer = stream_ticket(&server, "ann@example.com").await;
    let ticket = answer["ticket"].as_str().unwrap().to_owned();
    assert_ne!(ticket, server.token("ann@example.com"));
    let expires_at = chrono::DateTime::parse_from_rfc3339(answer["expires_at"].as_str().unwrap()).unwrap();
    let left = expires_at.timestamp() - i64::try_from(now()).unwrap();
    assert!((50..=61).contains(&left), "the ticket is valid for {left} s");
    // It opens the stream, as the query parameter an EventSource sends, for the user it names.
    let url = server.url(&format!("/api/tasks/stream?access_token={}", percent(&ticket)));
    let response = server.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/event-stream"));
    drop(response);
    // Everywhere else it is refused, saying why.
    for (method, path) in
        [(Method::GET, "/api/tasks"), (Method::GET, "/api/me"), (Method::POST, "/api/tasks/stream/ticket")]
    {
        let response =
            server.client.request(method.clone(), server.url(path)).bearer_auth(&ticket).send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("stream ticket"), "{method} {path}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stream_ticket_is_refused() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let claims = json!({"sub": "ann@example.com", "iss": "task-mcp", "iat": now() - 3600, "exp": now() - 3540, "scope": "stream"});
    let expired = sign(claims, Algorithm::HS256, SECRET.as_bytes());
    let url = server.url(&format!("/api/tasks/stream?access_token={}", percent(&expired)));
    let response = server.client.get(url).send().await.unwrap();
    assert_eq!(error_code(response).await, (401, "unauthorized".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ticket_needs_a_sign_in_token() {
    let db = TestStore::new(Backend::Postgres).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    let response = server.client.post(server.url("/api/tasks/stream/ticket")).send().await.unwrap();
    assert_eq!(error_code(response).await, (401, "unauthorized".to_owned()));
    let response = server
        .client
        .post(server.url(&format!("/api/tasks/stream/ticket?access_token={}", server.token("ann@example.com"))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "the ticket route takes the token in the header only");
}

/// The body a write route of the matrix is sent.
fn write_body() -> serde_json::Value {
    json!({"title": "x", "status": "completed", "comment": "x", "priority": "high"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_key_reads_every_route_and_changes_nothing() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("reader@example.com".to_owned());
    let read_only = task_mcp::domain::Access::ReadOnly;
    let key = task_mcp::commands::api_key::create_with(&app, "reader", read_only).await.unwrap();
    let server = TestServer::start(app.clone()).await;
    // A task to read and to try to change.
    let task: serde_json::Value =
        server.post("/api/tasks", json!({"title": "kept as it is"})).send().await.unwrap().json().await.unwrap();
    let id = task["id"].as_str().unwrap().to_owned();
    let mut writes = 0;
    for (method, path, public) in documented_routes(&server).await {
        if public {
            continue;
        }
        let path = path
            .split('/')
            .map(|p| if uuid::Uuid::parse_str(p).is_ok() { id.as_str() } else { p })
            .collect::<Vec<_>>()
            .join("/");
        let mut request = server.client.request(method.clone(), server.url(&path)).header("x-api-key", &key);
        let write = [Method::POST, Method::PATCH, Method::PUT, Method::DELETE].contains(&method);
        if write {
            request = request.json(&write_body());
        }
        let response = request.timeout(Duration::from_secs(5)).send().await.unwrap();
        let status = response.status().as_u16();
        // Opening a stream ticket changes nothing: it is a read of the stream.
        if write && !path.ends_with("/stream/ticket") {
            assert_eq!(error_code(response).await, (403, "read_only".to_owned()), "{method} {path}");
            writes += 1;
        } else {
            assert!(status < 400, "{method} {path} answered {status} to a read-only key");
        }
    }
    assert!(writes >= 4, "only {writes} write routes");
    // Over /mcp: the read tools answer, every write tool says the key is read-only.
    let call = |name: &str, arguments: serde_json::Value| {
        server
            .client
            .post(server.url("/mcp"))
            .header("x-api-key", &key)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}))
            .send()
    };
    for (name, arguments) in [("get_tasks", json!({})), ("get_task", json!({"task_id": id}))] {
        let frame: serde_json::Value = call(name, arguments).await.unwrap().json().await.unwrap();
        assert_eq!(frame["result"]["isError"], false, "{name}: {frame}");
    }
    for (name, arguments) in [
        ("create_task", json!({"title": "x"})),
        ("update_task", json!({"task_id": id, "title": "changed"})),
        ("update_task_status", json!({"task_id": id, "new_status": "completed"})),
        ("add_task_comment", json!({"task_id": id, "comment": "x"})),
        ("delete_task", json!({"task_id": id})),
    ] {
        let frame: serde_json::Value = call(name, arguments).await.unwrap().json().await.unwrap();
        assert_eq!(frame["result"]["isError"], true, "{name}: {frame}");
        assert_eq!(frame["result"]["structuredContent"]["error"]["code"], "read_only", "{name}: {frame}");
        let text = frame["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("read-only"), "{name}: {text}");
    }
    // Nothing changed.
    let now: serde_json::Value = server.get(&format!("/api/tasks/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["version"], 1, "{now}");
    // The listing shows each key's scope.
    let listing = task_mcp::commands::api_key::list(&app).await.unwrap().join("\n");
    assert!(listing.lines().next().unwrap().contains("scope"), "{listing}");
    assert!(listing.contains("reader\treader@example.com\tread-only"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_write_key_changes_tasks_over_rest_too() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("writer@example.com".to_owned());
    let key = task_mcp::commands::api_key::create(&app, "writer").await.unwrap();
    let server = TestServer::start(app.clone()).await;
    let response = server
        .client
        .post(server.url("/api/tasks"))
        .header("x-api-key", &key)
        .json(&json!({"title": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task: serde_json::Value = response.json().await.unwrap();
    assert_eq!(task["created_by"], "writer@example.com");
    let listing = task_mcp::commands::api_key::list(&app).await.unwrap().join("\n");
    assert!(listing.contains("writer\twriter@example.com\tread-write"), "{listing}");
}
