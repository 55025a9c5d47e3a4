//! `/mcp` as an OAuth protected resource, against a real authorization server started by the test
//! (`support::oauth`): the metadata documents, the 401 challenge, access tokens checked against the
//! issuer's keys (audience, issuer, lifetime, algorithm, key rotation, the key set down), the scopes
//! (a write refused with 403 `insufficient_scope`, the service refusing it as for a read-only key), API
//! keys beside OAuth, and nothing changed without `OAUTH_ISSUER`.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use task_mcp::http::Limits;
use task_mcp::http::auth::oauth::OAuthConfig;

use crate::support::http::{self, TestServer, error_code, now, sign};
use crate::support::oauth::{AuthServer, RSA_1_PUBLIC_PEM, TestKey};
use crate::support::{self, Backend, TestStore};

const ALL: &str = "tasks:read tasks:write";

/// A server over a fresh SQLite store trusting `auth`'s tokens; `refetch` is how soon its keys may be
/// fetched again for an unknown key.
async fn server(db: &TestStore, auth: &AuthServer, refetch: Duration) -> TestServer {
    let config = task_mcp::http::Config {
        oauth: Some(OAuthConfig { issuer: auth.issuer.clone(), audience: None, base_url: None }),
        limits: Limits { jwks_refetch: refetch, ..http::config().limits },
        ..http::config()
    };
    TestServer::start_with(support::app(&db.url, None), config).await
}

/// The resource (and default audience) of `server`.
fn resource(server: &TestServer) -> String {
    server.url("/mcp")
}

/// `tools/call` of `name` over `/mcp` with `Authorization: Bearer <token>`.
async fn call(server: &TestServer, token: &str, name: &str, arguments: Value) -> reqwest::Response {
    server
        .client
        .post(server.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": arguments}}))
        .send()
        .await
        .unwrap()
}

fn www_authenticate(response: &reqwest::Response) -> String {
    response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A 401 carrying the challenge that points at the metadata, with `invalid_token`.
async fn assert_refused(server: &TestServer, token: &str, name: &str, says: &str) {
    let response = call(server, token, "get_tasks", json!({})).await;
    let challenge = www_authenticate(&response);
    let metadata = server.url("/.well-known/oauth-protected-resource/mcp");
    assert_eq!(response.status(), 401, "{name}");
    assert!(challenge.starts_with("Bearer "), "{name}: {challenge}");
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata}\"")), "{name}: {challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{name}: {challenge}");
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{name}: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_issuer_nothing_changes_and_there_is_no_metadata() {
    let db = TestStore::new(Backend::Sqlite).await;
    let server = TestServer::start(support::app(&db.url, None)).await;
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(error_code(response).await, (404, "route_not_found".to_owned()), "{path}");
    }
    let response = server.client.post(server.url("/mcp")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(www_authenticate(&response), "Bearer realm=\"task-mcp\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_names_the_resource_its_issuer_and_scopes_and_a_401_points_at_it() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Rsa1]).await;
    let server = server(&db, &auth, Duration::from_secs(60)).await;
    let metadata_url = server.url("/.well-known/oauth-protected-resource/mcp");
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let document: Value = response.json().await.unwrap();
        assert_eq!(document["resource"], resource(&server), "{document}");
        assert_eq!(document["authorization_servers"], json!([auth.issuer]), "{document}");
        assert_eq!(document["scopes_supported"], json!(["tasks:read", "tasks:write"]), "{document}");
        assert_eq!(document["bearer_methods_supported"], json!(["header"]), "{document}");
    }
    // No credential: 401 with where to sign in and which scopes to ask for, and nothing else.
    let response = server
        .client
        .post(server.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(www_authenticate(&response), format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"{ALL}\""));
    // A bad API key is told the same, so a client can still find the sign-in.
    let response = server.client.post(server.url("/mcp")).header("x-api-key", "tmk_nope").json(&json!({})).send().await;
    let challenge = www_authenticate(&response.unwrap());
    assert!(challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")), "{challenge}");
    // Behind PUBLIC_URL the resource is named by it.
    let config = task_mcp::http::Config {
        public_url: Some("https://tasks.example.com".to_owned()),
        oauth: Some(OAuthConfig {
            issuer: auth.issuer.clone(),
            audience: Some("api://task-mcp".to_owned()),
            base_url: Some("https://tasks.example.com".to_owned()),
        }),
        ..http::config()
    };
    let public = TestServer::start_with(support::app(&db.url, None), config).await;
    let document: Value = public
        .client
        .get(public.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["resource"], "https://tasks.example.com/mcp", "{document}");
    let response = public.client.post(public.url("/mcp")).json(&json!({})).send().await.unwrap();
    let challenge = www_authenticate(&response);
    assert!(
        challenge.contains("resource_metadata=\"https://tasks.example.com/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_access_token_acts_as_its_email_and_api_keys_keep_working() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Rsa1, TestKey::Ec1]).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("keyholder@example.com".to_owned());
    let key =
        task_mcp::commands::api_key::create_with(&app, "laptop", task_mcp::domain::Access::ReadWrite).await.unwrap();
    let server = server(&db, &auth, Duration::from_secs(60)).await;
    for (key_used, email) in [(TestKey::Rsa1, "ann@example.com"), (TestKey::Ec1, "Bob@Example.com")] {
        let token = auth.sign(key_used, &auth.claims(email, &resource(&server), ALL));
        let frame: Value = call(&server, &token, "create_task", json!({"title": format!("filed by {email}")}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(frame["result"]["isError"], false, "{key_used:?}: {frame}");
        let task = &frame["result"]["structuredContent"];
        assert_eq!(task["created_by"], email.to_ascii_lowercase(), "{frame}");
    }
    // `sub` names the user when there is no email claim and it is one.
    let mut claims = auth.claims("x@example.com", &resource(&server), ALL);
    claims.as_object_mut().unwrap().remove("email");
    claims["sub"] = json!("carol@example.com");
    let frame: Value = call(&server, &auth.sign(TestKey::Rsa1, &claims), "create_task", json!({"title": "by sub"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(frame["result"]["structuredContent"]["created_by"], "carol@example.com", "{frame}");
    // The API key beside OAuth, in either header.
    for request in [
        server.client.post(server.url("/mcp")).header("x-api-key", &key),
        server.client.post(server.url("/mcp")).bearer_auth(&key),
    ] {
        let frame: Value = request
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "create_task", "arguments": {"title": "by key"}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(frame["result"]["structuredContent"]["created_by"], "keyholder@example.com", "{frame}");
    }
    assert_eq!(auth.jwks_fetches(), 1, "the keys are fetched once and cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_with_openid_discovery_only_is_found_there() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start_with(&[TestKey::Ec1], true).await;
    let server = server(&db, &auth, Duration::from_secs(60)).await;
    let token = auth.sign(TestKey::Ec1, &auth.claims("ann@example.com", &resource(&server), ALL));
    let frame: Value = call(&server, &token, "get_tasks", json!({})).await.json().await.unwrap();
    assert_eq!(frame["result"]["isError"], false, "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_that_prove_nothing_are_refused_with_the_challenge() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Rsa1]).await;
    let server = server(&db, &auth, Duration::from_secs(60)).await;
    let good = auth.claims("mallory@example.com", &resource(&server), ALL);
    let with = |changes: Value| {
        let mut claims = good.clone();
        for (name, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        claims
    };
    let rsa = |claims: Value| auth.sign(TestKey::Rsa1, &claims);
    let unsigned = |alg: &str| {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"rsa-1"}}"#));
        format!("{header}.{}.", URL_SAFE_NO_PAD.encode(good.to_string()))
    };
    // HS256 with the issuer's public key as the secret: the key-confusion trick.
    let mut hs_header = jsonwebtoken::Header::new(Algorithm::HS256);
    hs_header.kid = Some("rsa-1".to_owned());
    let hs256 =
        jsonwebtoken::encode(&hs_header, &good, &jsonwebtoken::EncodingKey::from_secret(RSA_1_PUBLIC_PEM.as_bytes()))
            .unwrap();
    // A valid token whose payload is swapped for one naming someone else.
    let tampered = {
        let token = rsa(good.clone());
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with(json!({"email": "admin@example.com"})).to_string());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("another audience", rsa(with(json!({"aud": "https://other.example.com/mcp"}))), "aud must be"),
        ("audiences without this one", rsa(with(json!({"aud": ["a", "b"]}))), "aud must be"),
        ("no audience", rsa(with(json!({"aud": null}))), "\"aud\""),
        ("another issuer", rsa(with(json!({"iss": "https://evil.example.com"}))), "not issued by"),
        ("expired", rsa(with(json!({"iat": now() - 7200, "exp": now() - 3600}))), "expired"),
        ("no expiry", rsa(with(json!({"exp": null}))), "\"exp\""),
        ("not yet valid", rsa(with(json!({"nbf": now() + 3600}))), "not valid yet"),
        ("alg none", unsigned("none"), "RS256 or ES256"),
        ("HS256 signed with the public key", hs256, "RS256 or ES256"),
        ("a forged payload", tampered, "signature"),
        ("an unknown key", auth.sign(TestKey::Ec2, &good), "does not hold"),
        ("no user", rsa(with(json!({"email": null, "sub": "auth0|42"}))), "names no user"),
        ("an unverified email", rsa(with(json!({"email_verified": false}))), "not verified"),
        ("not a JWT", "opaque-token-abc".to_owned(), "not a JWT"),
    ];
    for (name, token, says) in cases {
        assert_refused(&server, &token, name, says).await;
    }
    // The HS256 token signed with the *public* key bytes, sent as the server's own JWT on REST, proves
    // nothing there either.
    let on_rest = sign(good.clone(), Algorithm::HS256, RSA_1_PUBLIC_PEM.as_bytes());
    let response = server.client.get(server.url("/api/tasks")).bearer_auth(on_rest).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // The valid one still works.
    let frame: Value = call(&server, &rsa(good.clone()), "get_tasks", json!({})).await.json().await.unwrap();
    assert_eq!(frame["result"]["isError"], false, "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_tasks_write_reads_like_a_read_only_key_and_one_without_either_scope_is_refused() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Ec1]).await;
    let server = server(&db, &auth, Duration::from_secs(60)).await;
    let writer = auth.sign(TestKey::Ec1, &auth.claims("ann@example.com", &resource(&server), ALL));
    let created: Value = call(&server, &writer, "create_task", json!({"title": "to read"})).await.json().await.unwrap();
    let id = created["result"]["structuredContent"]["id"].as_str().unwrap().to_owned();
    let reader = auth.sign(TestKey::Ec1, &auth.claims("ann@example.com", &resource(&server), "openid tasks:read"));
    for (name, arguments) in [("get_tasks", json!({})), ("get_task", json!({"task_id": id}))] {
        let frame: Value = call(&server, &reader, name, arguments).await.json().await.unwrap();
        assert_eq!(frame["result"]["isError"], false, "{name}: {frame}");
    }
    // Every tool that writes: 403 insufficient_scope before the call, naming the scope to ask for.
    for (name, arguments) in [
        ("create_task", json!({"title": "x"})),
        ("update_task", json!({"task_id": id, "title": "changed"})),
        ("update_task_status", json!({"task_id": id, "new_status": "completed"})),
        ("add_task_comment", json!({"task_id": id, "comment": "x"})),
        ("delete_task", json!({"task_id": id})),
        ("claim_task", json!({"task_id": id})),
    ] {
        let response = call(&server, &reader, name, arguments).await;
        let challenge = www_authenticate(&response);
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_scope\", scope=\"tasks:write\""),
            "{name}: {challenge}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "insufficient_scope", "{name}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("tasks:write"), "{name}: {body}");
    }
    let after: Value = call(&server, &writer, "get_task", json!({"task_id": id})).await.json().await.unwrap();
    assert_eq!(after["result"]["structuredContent"]["version"], 1, "nothing changed: {after}");
    // `scp` as a list is read too.
    let mut claims = auth.claims("ann@example.com", &resource(&server), "");
    claims["scp"] = json!(["tasks:write"]);
    let frame: Value = call(&server, &auth.sign(TestKey::Ec1, &claims), "create_task", json!({"title": "scp"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(frame["result"]["isError"], false, "{frame}");
    // Neither scope: 403 insufficient_scope, saying which to ask for.
    let neither = auth.sign(TestKey::Ec1, &auth.claims("ann@example.com", &resource(&server), "openid email"));
    let response = call(&server, &neither, "get_tasks", json!({})).await;
    let challenge = www_authenticate(&response);
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains(&format!("scope=\"{ALL}\"")), "{challenge}");
    assert_eq!(error_code(response).await, (403, "insufficient_scope".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_a_new_key_works_once_the_issuer_publishes_it() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Ec1]).await;
    let server = server(&db, &auth, Duration::ZERO).await;
    let claims = auth.claims("ann@example.com", &resource(&server), ALL);
    let rotated = auth.sign(TestKey::Ec2, &claims);
    assert_refused(&server, &rotated, "a key not published yet", "does not hold").await;
    auth.publish(&[TestKey::Ec1, TestKey::Ec2]);
    let frame: Value = call(&server, &rotated, "get_tasks", json!({})).await.json().await.unwrap();
    assert_eq!(frame["result"]["isError"], false, "{frame}");
    // A key the issuer no longer publishes stops working at the next fetch.
    auth.publish(&[TestKey::Ec2]);
    let unknown = auth.sign(TestKey::Rsa1, &claims);
    assert_refused(&server, &unknown, "a key never published", "does not hold").await;
    assert_refused(&server, &auth.sign(TestKey::Ec1, &claims), "a key withdrawn", "does not hold").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_keys_make_the_keys_be_fetched_at_most_once_a_minute() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Ec1]).await;
    let server = server(&db, &auth, Duration::from_secs(60)).await;
    let claims = auth.claims("ann@example.com", &resource(&server), ALL);
    let frame: Value =
        call(&server, &auth.sign(TestKey::Ec1, &claims), "get_tasks", json!({})).await.json().await.unwrap();
    assert_eq!(frame["result"]["isError"], false, "{frame}");
    auth.publish(&[TestKey::Ec1, TestKey::Ec2]);
    for _ in 0..5 {
        assert_refused(&server, &auth.sign(TestKey::Ec2, &claims), "unknown within the minute", "once a minute").await;
    }
    assert_eq!(auth.jwks_fetches(), 1, "no fetch for unknown keys within the minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_key_set_down_a_new_key_fails_clearly_and_a_cached_key_keeps_working() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Rsa1]).await;
    let server = server(&db, &auth, Duration::ZERO).await;
    let claims = auth.claims("ann@example.com", &resource(&server), ALL);
    let cached = auth.sign(TestKey::Rsa1, &claims);
    let frame: Value = call(&server, &cached, "get_tasks", json!({})).await.json().await.unwrap();
    assert_eq!(frame["result"]["isError"], false, "{frame}");
    auth.set_jwks_down(true);
    let response = call(&server, &auth.sign(TestKey::Ec2, &claims), "get_tasks", json!({})).await;
    assert_eq!(response.headers()["retry-after"], "30");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "authorization_server_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("/jwks answered 503"), "{message}");
    let frame: Value = call(&server, &cached, "get_tasks", json!({})).await.json().await.unwrap();
    assert_eq!(frame["result"]["isError"], false, "the cached key keeps working: {frame}");
    // An issuer that is gone (its metadata cannot be fetched): 503 as well.
    drop(auth);
    let gone = AuthServer::start(&[]).await;
    let config = task_mcp::http::Config {
        oauth: Some(OAuthConfig { issuer: gone.issuer.clone(), audience: None, base_url: None }),
        ..http::config()
    };
    let token = gone.sign(TestKey::Rsa1, &gone.claims("ann@example.com", "x", ALL));
    drop(gone);
    let orphan = TestServer::start_with(support::app(&db.url, None), config).await;
    let response = call(&orphan, &token, "get_tasks", json!({})).await;
    assert_eq!(error_code(response).await, (503, "authorization_server_unavailable".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_that_is_not_https_or_an_empty_audience_stops_the_server_from_starting() {
    let db = TestStore::new(Backend::Sqlite).await;
    for (issuer, audience, says) in [
        ("http://auth.example.com", None, "OAUTH_ISSUER"),
        ("auth.example.com", None, "OAUTH_ISSUER"),
        ("https://auth.example.com", Some(" "), "OAUTH_AUDIENCE"),
    ] {
        let config = task_mcp::http::Config {
            oauth: Some(OAuthConfig {
                issuer: issuer.to_owned(),
                audience: audience.map(str::to_owned),
                base_url: None,
            }),
            ..http::config()
        };
        let err = task_mcp::http::Server::build(support::app(&db.url, None), config).await.err().expect("refused");
        assert!(format!("{err:#}").contains(says), "{issuer}: {err:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_the_issuer_and_audience_from_its_environment() {
    let db = TestStore::new(Backend::Sqlite).await;
    let auth = AuthServer::start(&[TestKey::Rsa1]).await;
    let data_dir = tempfile::tempdir().unwrap();
    let process = http::ServeProcess::spawn(&[
        ("DATABASE_URL", db.url.as_str()),
        ("TASK_MCP_DATA_DIR", data_dir.path().to_str().unwrap()),
        ("JWT_SECRET", http::SECRET),
        ("OAUTH_ISSUER", auth.issuer.as_str()),
        ("OAUTH_AUDIENCE", "api://task-mcp"),
    ]);
    let client = reqwest::Client::new();
    let document: Value = client
        .get(process.url("/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["resource"], process.url("/mcp"), "{document}");
    assert_eq!(document["authorization_servers"], json!([auth.issuer]), "{document}");
    let token = auth.sign(TestKey::Rsa1, &auth.claims("ann@example.com", "api://task-mcp", ALL));
    let frame: Value = client
        .post(process.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "create_task", "arguments": {"title": "from afar"}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(frame["result"]["structuredContent"]["created_by"], "ann@example.com", "{frame}");
}
