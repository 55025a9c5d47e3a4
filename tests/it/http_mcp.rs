//! MCP over Streamable HTTP at `/mcp`: the same tools as stdio, an API key required (and revocable),
//! the key's user acting whatever the arguments say, and Origin and Host validated (403).

use serde_json::{Value, json};

use crate::support::http::{TestServer, error_code};
use crate::support::{self, Backend, TestStore};

fn rpc(id: i64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

fn initialize() -> Value {
    rpc(
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "http-test", "version": "1"}}),
    )
}

fn mcp(server: &TestServer, key: &str, body: &Value) -> reqwest::RequestBuilder {
    server
        .client
        .post(server.url("/mcp"))
        .header("x-api-key", key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(body)
}

/// The JSON-RPC answer of a response (JSON, or the first `data:` of an event stream).
async fn answer(response: reqwest::Response) -> Value {
    let status = response.status();
    let is_stream =
        response.headers().get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    if is_stream {
        let data = text.lines().find_map(|l| l.strip_prefix("data:")).expect("a data line");
        serde_json::from_str(data.trim()).unwrap()
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// An unsigned token (`alg: none`) naming the key's user.
fn alg_none_token() -> String {
    use base64::Engine;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let claims = json!({"sub": "agent@example.com", "iss": "task-mcp", "exp": crate::support::http::now() + 600});
    format!("{}.{}.", encode(br#"{"alg":"none","typ":"JWT"}"#), encode(claims.to_string().as_bytes()))
}

async fn server_with_key(user: &str) -> (TestStore, TestServer, String) {
    let db = TestStore::new(Backend::Postgres).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some(user.to_owned());
    let key = task_mcp::commands::api_key::create(&app, "test key").await.unwrap();
    let server = TestServer::start(app).await;
    (db, server, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_answer_over_http_as_the_keys_user() {
    let (_db, server, key) = server_with_key("agent@example.com").await;
    let init = answer(mcp(&server, &key, &initialize()).send().await.unwrap()).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "task-mcp", "{init}");
    let tools = answer(mcp(&server, &key, &rpc(2, "tools/list", json!({}))).send().await.unwrap()).await;
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for tool in
        ["get_tasks", "get_task", "create_task", "update_task_status", "update_task", "add_task_comment", "delete_task"]
    {
        assert!(names.contains(&tool), "{tool} missing: {names:?}");
    }
    // A label argument cannot make the change someone else's.
    let call = rpc(
        3,
        "tools/call",
        json!({"name": "create_task", "arguments": {"title": "from an agent", "created_by": "boss@example.com", "assignee_id": "me"}}),
    );
    let created = answer(mcp(&server, &key, &call).send().await.unwrap()).await;
    let task = &created["result"]["structuredContent"];
    assert_eq!(created["result"]["isError"], json!(false), "{created}");
    assert_eq!(task["created_by"], "agent@example.com", "{created}");
    assert_eq!(task["assignee_email"], "agent@example.com", "{created}");
    // The same task over REST.
    let id = task["id"].as_str().unwrap();
    let over_rest: Value = server.get(&format!("/api/tasks/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(over_rest["title"], "from an agent");
    // The same task as a resource: listed for the key's user, read by key.
    let listed = answer(mcp(&server, &key, &rpc(4, "resources/list", json!({}))).send().await.unwrap()).await;
    assert_eq!(listed["result"]["resources"][0]["uri"], "task://T-1", "{listed}");
    let read =
        answer(mcp(&server, &key, &rpc(5, "resources/read", json!({"uri": "task://t-1"}))).send().await.unwrap()).await;
    assert!(read["result"]["contents"][0]["text"].as_str().unwrap().starts_with("# T-1 from an agent"), "{read}");
    let missing =
        answer(mcp(&server, &key, &rpc(6, "resources/read", json!({"uri": "task://T-9"}))).send().await.unwrap()).await;
    assert_eq!(missing["error"]["code"], -32002, "{missing}");
}

/// Runs `async fn name(backend)` once per backend, as `name::postgres` and `name::sqlite`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
        }
    )*};
}

on_every_backend!(the_prompts_answer_over_http_as_the_keys_user);

async fn the_prompts_answer_over_http_as_the_keys_user(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut app = support::app(&db.url, None);
    app.settings.user = Some("agent@example.com".to_owned());
    let key = task_mcp::commands::api_key::create(&app, "test key").await.unwrap();
    let server = TestServer::start(app).await;
    let send = |id: i64, method: &str, params: Value| {
        let request = mcp(&server, &key, &rpc(id, method, params));
        async move { answer(request.send().await.unwrap()).await }
    };
    let init = answer(mcp(&server, &key, &initialize()).send().await.unwrap()).await;
    assert!(init["result"]["capabilities"]["prompts"].is_object(), "{init}");
    let listed = send(2, "prompts/list", json!({})).await;
    let names: Vec<&str> =
        listed["result"]["prompts"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["next_task", "plan_work", "standup"], "{listed}");

    let create = |title: &str, assignee: &str| json!({"name": "create_task", "arguments": {"title": title, "repository": "web", "assignee_id": assignee}});
    let mine = send(3, "tools/call", create("Mine to do", "me")).await;
    let mine_key = mine["result"]["structuredContent"]["key"].as_str().unwrap().to_owned();
    let theirs = send(4, "tools/call", create("Theirs to do", "other@example.com")).await;
    let theirs_key = theirs["result"]["structuredContent"]["key"].as_str().unwrap().to_owned();
    let status =
        json!({"name": "update_task_status", "arguments": {"task_id": theirs_key, "new_status": "in_progress"}});
    send(5, "tools/call", status).await;

    let text = |answer: &Value| answer["result"]["messages"][0]["content"]["text"].as_str().unwrap_or("").to_owned();
    let next = send(6, "prompts/get", json!({"name": "next_task", "arguments": {"repository": "web"}})).await;
    let next = text(&next);
    assert!(next.contains(&format!("- {mine_key} medium Mine to do")), "{next}");
    assert!(!next.contains(&theirs_key), "assigned to someone else: {next}");
    let standup = send(7, "prompts/get", json!({"name": "standup", "arguments": {"since": "1h"}})).await;
    let standup = text(&standup);
    assert!(standup.contains("agent@example.com") && standup.contains(&mine_key), "{standup}");
    assert!(!standup.contains(&theirs_key), "the key's user's tasks only: {standup}");
    let plan = send(8, "prompts/get", json!({"name": "plan_work", "arguments": {"goal": "Dark mode"}})).await;
    assert!(text(&plan).contains("Dark mode") && text(&plan).contains("blocked_by"), "{plan}");

    let refused = send(9, "prompts/get", json!({"name": "standup", "arguments": {"since": "last week"}})).await;
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(refused["error"]["data"]["field"], "since", "{refused}");
    let unknown = send(10, "prompts/get", json!({"name": "retro"})).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(unknown["error"]["message"].as_str().unwrap().contains("next_task, plan_work, standup"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refuses_missing_unknown_revoked_and_jwt_credentials() {
    let (db, server, key) = server_with_key("agent@example.com").await;
    let body = initialize();
    let send = |credential: Option<(&'static str, String)>| {
        let mut request =
            server.client.post(server.url("/mcp")).header("accept", "application/json, text/event-stream").json(&body);
        if let Some((name, value)) = credential {
            request = request.header(name, value);
        }
        request.send()
    };
    let jwt = server.token("agent@example.com");
    let cases: Vec<(&str, Option<(&'static str, String)>)> = vec![
        ("none", None),
        ("unknown key", Some(("x-api-key", "tmk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()))),
        ("not a key", Some(("x-api-key", "hunter2".to_owned()))),
        ("a JWT", Some(("authorization", format!("Bearer {jwt}")))),
        ("malformed authorization", Some(("authorization", "Token abc".to_owned()))),
        ("empty key", Some(("x-api-key", String::new()))),
        ("oversized key", Some(("x-api-key", format!("tmk_{}", "A".repeat(8000))))),
        ("the key with a character more", Some(("x-api-key", format!("{key}A")))),
        ("the key with a character less", Some(("x-api-key", key[..key.len() - 1].to_owned()))),
        ("the key in another case", Some(("x-api-key", key.to_uppercase()))),
        ("the key's hash", Some(("x-api-key", task_mcp::service::api_keys::hash_api_key(&key)))),
        ("an alg:none JWT as bearer", Some(("authorization", format!("Bearer {}", alg_none_token())))),
    ];
    for (name, credential) in cases {
        let response = send(credential).await.unwrap();
        assert_eq!(error_code(response).await, (401, "unauthorized".to_owned()), "{name}");
    }
    // Every method of /mcp is behind the key.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE, reqwest::Method::POST] {
        let response = server
            .client
            .request(method.clone(), server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (401, "unauthorized".to_owned()), "{method} /mcp without a key");
    }
    // A key in the query string proves nothing (it would end up in proxies' logs).
    for name in ["api_key", "access_token", "key"] {
        let response = server
            .client
            .post(server.url(&format!("/mcp?{name}={key}")))
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (401, "unauthorized".to_owned()), "?{name}=");
    }
    // The key is also accepted as a Bearer token.
    let response = send(Some(("authorization", format!("Bearer {key}")))).await.unwrap();
    assert_eq!(response.status(), 200);
    // Revoked: refused from the next request on.
    assert!(db.store.revoke_api_key("test key").await.unwrap());
    let response = send(Some(("x-api-key", key.clone()))).await.unwrap();
    assert_eq!(error_code(response).await, (401, "unauthorized".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_refuses_foreign_origins_and_rebinding_hosts() {
    let (_db, server, key) = server_with_key("agent@example.com").await;
    let response = mcp(&server, &key, &initialize()).header("origin", "https://evil.example.net").send().await.unwrap();
    assert_eq!(response.status(), 403);
    // The server's own origin is allowed, as on every route.
    let own = server.base.clone();
    let response = mcp(&server, &key, &initialize()).header("origin", own).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response =
        mcp(&server, &key, &initialize()).header("origin", "https://dashboard.example.com").send().await.unwrap();
    assert_eq!(response.status(), 200);
    // A page on attacker.example whose name now resolves to 127.0.0.1 sends its own Host.
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let response =
        mcp(&server, &key, &initialize()).header("host", format!("attacker.example:{port}")).send().await.unwrap();
    assert_eq!(response.status(), 403);
    let response = mcp(&server, &key, &initialize()).header("host", format!("localhost:{port}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Look-alike names and origins are not the allowed ones.
    for host in ["localhost.attacker.example", "127.0.0.1.attacker.example", "attacker.example"] {
        let response = mcp(&server, &key, &initialize()).header("host", host).send().await.unwrap();
        assert_eq!(response.status(), 403, "Host: {host}");
    }
    for origin in ["null", "https://dashboard.example.com.attacker.example", "http://dashboard.example.com"] {
        let response = mcp(&server, &key, &initialize()).header("origin", origin).send().await.unwrap();
        assert_eq!(response.status(), 403, "Origin: {origin}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_call_while_the_database_is_down_says_unavailable_without_naming_it() {
    // Nothing listens on port 1: the database is down from the start.
    let url = "postgres://postgres@127.0.0.1:1/secret_tasks_db?connect_timeout=2";
    let server = TestServer::start(support::app(url, None)).await;
    let key = format!("tmk_{}", "a".repeat(40));
    let response = mcp(&server, &key, &initialize()).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 503, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{text}");
    for detail in ["127.0.0.1:1", "secret_tasks_db", "PostgreSQL"] {
        assert!(!text.contains(detail), "the refusal names {detail:?}: {text}");
    }
}
