//! The server a corpus run talks to: the binary over stdio, or the binary's `serve` over HTTP (REST
//! with a JWT, `/mcp` with an API key). Sends a case's request and gathers what came back.

use std::time::Duration;

use serde_json::{Value, json};

use super::case::{Expect, Request, Transport};
use super::cut;
use crate::support::http::{ServeProcess, SseReader, token_for};
use crate::support::mcp::Server;

/// How long the first Server-Sent Event may take (the resync comes at once).
const FIRST_EVENT_WAIT: Duration = Duration::from_secs(10);
/// The stdio process's identity; the HTTP caller's is the JWT's and the API key's.
const STDIO_USER: &str = "agent@example.com";
const HTTP_USER: &str = "tester@example.com";

pub enum Target {
    Stdio(Box<Server>),
    Http(Box<HttpTarget>),
}

pub struct HttpTarget {
    process: ServeProcess,
    client: reqwest::Client,
    token: String,
    key: String,
    /// A read-only key of the same user.
    read_only_key: String,
    next_id: i64,
    /// Whether the last case went through `/mcp` (read-backs then go the same way).
    last_via_mcp: bool,
    _data_dir: tempfile::TempDir,
}

/// What came back for one case.
#[derive(Debug, Default)]
pub struct Outcome {
    pub status: Option<u16>,
    /// The JSON-RPC response to the request sent (tool calls; `rpc` lines that had an id).
    pub frame: Option<Value>,
    /// JSON-RPC responses without an id: what the server said to a message it could not read.
    pub stray: Vec<Value>,
    /// A REST response's JSON body.
    pub body: Option<Value>,
    /// The response body as text when it is not JSON.
    pub text: Option<String>,
    pub first_event: Option<String>,
}

impl Outcome {
    /// A JSON-RPC error frame among the answers.
    pub fn rpc_error(&self) -> Option<&Value> {
        self.frame.iter().chain(&self.stray).find(|f| f.get("error").is_some())
    }

    /// A tool error or a REST error body: its `error` object (`code`, `details`, …) and the text the
    /// client reads (the tool result's text, the REST message).
    pub fn error(&self) -> Option<(&Value, String)> {
        if let Some(result) = self.frame.as_ref().and_then(|f| f.get("result")) {
            if result["isError"] != json!(true) {
                return None;
            }
            let text = result["content"]
                .as_array()
                .map(|blocks| blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default();
            return Some((&result["structuredContent"]["error"], text));
        }
        let error = &self.body.as_ref()?["error"];
        error.get("code")?;
        Some((error, str_of(&error["message"])))
    }

    pub fn succeeded(&self) -> bool {
        match &self.frame {
            Some(frame) => frame.get("result").is_some_and(|r| r["isError"] != json!(true)),
            None => self.status.is_some_and(|s| (200..300).contains(&s)),
        }
    }

    /// A successful call's structured result (or REST body).
    pub fn result(&self) -> Option<Value> {
        match &self.frame {
            Some(frame) => frame.get("result").map(|r| r["structuredContent"].clone()),
            None => self.body.clone(),
        }
    }

    pub fn shown(&self) -> String {
        let mut parts = Vec::new();
        if let Some(status) = self.status {
            parts.push(format!("HTTP {status}"));
        }
        if let Some(frame) = &self.frame {
            parts.push(cut(frame));
        }
        for frame in &self.stray {
            parts.push(format!("stray {}", cut(frame)));
        }
        if let Some(body) = &self.body {
            parts.push(cut(body));
        }
        if let Some(text) = &self.text {
            parts.push(format!("text {:?}", text.chars().take(200).collect::<String>()));
        }
        if let Some(event) = &self.first_event {
            parts.push(format!("first event {event}"));
        }
        if parts.is_empty() { "nothing".into() } else { parts.join("; ") }
    }
}

fn str_of(value: &Value) -> String {
    value.as_str().unwrap_or("").to_owned()
}

impl Target {
    pub async fn start(transport: Transport, app: &task_mcp::wiring::Parts, database_url: &str) -> Target {
        match transport {
            Transport::Stdio => Target::Stdio(Box::new(Server::connect(database_url, STDIO_USER).await)),
            Transport::Http => {
                let key = task_mcp::commands::api_key::create(app, "corpus").await.expect("an API key");
                let read_only = task_mcp::domain::Access::ReadOnly;
                let read_only_key = task_mcp::commands::api_key::create_with(app, "corpus read-only", read_only)
                    .await
                    .expect("a read-only API key");
                let (process, data_dir) = ServeProcess::spawn_on(database_url);
                let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client");
                Target::Http(Box::new(HttpTarget {
                    process,
                    client,
                    token: token_for(HTTP_USER),
                    key,
                    read_only_key,
                    next_id: 1,
                    last_via_mcp: false,
                    _data_dir: data_dir,
                }))
            }
        }
    }

    pub async fn send(&mut self, request: &Request, expect: &Expect) -> Outcome {
        match self {
            Target::Stdio(server) => stdio_send(server, request, expect).await,
            Target::Http(http) => http.send(request).await,
        }
    }

    /// A follow-up call on the target task: what is wrong if it does not succeed.
    pub async fn still_answers(&mut self, task: &str) -> Vec<String> {
        let mut problems = Vec::new();
        match self {
            Target::Stdio(server) => {
                let frame =
                    server.request("tools/call", json!({"name": "get_task", "arguments": {"task_id": task}})).await;
                if frame["result"]["isError"] != json!(false) {
                    problems.push(format!("the follow-up get_task failed: {}", cut(&frame)));
                }
            }
            Target::Http(http) => {
                let response = http.rest("GET", &format!("/api/tasks/{task}"), None).await;
                if response.0 != 200 {
                    problems.push(format!(
                        "the follow-up GET of the task answered {}: {}",
                        response.0,
                        cut(&response.1)
                    ));
                }
                let frame = http.tool("get_task", json!({"task_id": task})).await.1;
                if frame["result"]["isError"] != json!(false) {
                    problems.push(format!("the follow-up get_task over /mcp failed: {}", cut(&frame)));
                }
            }
        }
        problems
    }

    /// The task (or its last comment) as the frontend the last case used reads it back.
    pub async fn read_back(&mut self, task: &str, comment: bool) -> Value {
        let detail = match self {
            Target::Stdio(server) => server
                .request("tools/call", json!({"name": "get_task", "arguments": {"task_id": task}}))
                .await["result"]["structuredContent"]
                .clone(),
            Target::Http(http) if http.last_via_mcp => {
                http.tool("get_task", json!({"task_id": task})).await.1["result"]["structuredContent"].clone()
            }
            Target::Http(http) => {
                let task_json = http.rest("GET", &format!("/api/tasks/{task}"), None).await.1;
                let comments = http.rest("GET", &format!("/api/tasks/{task}/comments"), None).await.1;
                json!({"task": task_json, "comments": comments})
            }
        };
        // `get_task` answers the task's fields with its comments and history beside them.
        match (comment, self) {
            (true, _) => detail["comments"].as_array().and_then(|c| c.last()).cloned().unwrap_or_default(),
            (false, Target::Http(http)) if !http.last_via_mcp => detail["task"].clone(),
            (false, _) => detail,
        }
    }

    /// The ids of the tasks a search for `needle` finds through the frontend the last case used.
    pub async fn search(&mut self, needle: &str) -> Result<Vec<String>, String> {
        let page = match self {
            Target::Stdio(server) => {
                let frame = server
                    .request(
                        "tools/call",
                        json!({"name": "get_tasks", "arguments": {"query": needle, "limit": 200, "detail": "full"}}),
                    )
                    .await;
                frame["result"]["structuredContent"].clone()
            }
            Target::Http(http) if http.last_via_mcp => http
                .tool("get_tasks", json!({"query": needle, "limit": 200, "detail": "full"}))
                .await
                .1["result"]["structuredContent"]
                .clone(),
            Target::Http(http) => {
                let query = serde_urlencoded_pair("q", needle);
                http.rest("GET", &format!("/api/tasks?limit=200&{query}"), None).await.1
            }
        };
        let tasks = page["tasks"].as_array().ok_or_else(|| format!("no page: {}", cut(&page)))?;
        Ok(tasks.iter().filter_map(|t| t["id"].as_str().map(str::to_owned)).collect())
    }

    pub async fn stop(self) {
        match self {
            Target::Stdio(server) => {
                let stderr = server.stderr();
                let (status, _) = server.close().await;
                assert!(status.success(), "the stdio server exited with {status}; stderr:\n{stderr}");
            }
            Target::Http(mut http) => {
                let (code, _) = http.process.terminate(Duration::from_secs(20));
                assert_eq!(code, Some(0), "serve did not exit cleanly; stderr:\n{}", http.process.stderr_text());
            }
        }
    }
}

/// `name=value`, percent-encoded.
fn serde_urlencoded_pair(name: &str, value: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("a URL");
    url.query_pairs_mut().append_pair(name, value);
    url.query().unwrap_or_default().to_owned()
}

/// Over stdio: a tool call, or a raw line followed by a `ping` (whose answer proves the line was
/// read; whatever the server said to the line arrived before it).
async fn stdio_send(server: &mut Server, request: &Request, expect: &Expect) -> Outcome {
    match request {
        Request::Tool { name, args } => {
            let frame = server.request("tools/call", json!({"name": name, "arguments": args})).await;
            Outcome { frame: Some(frame), ..Outcome::default() }
        }
        Request::Rpc(bytes) => {
            let mut line = bytes.clone();
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            server.send_raw(&line).await;
            let pong = server.request("ping", json!({})).await;
            let mut outcome = Outcome { stray: server.take_stray(), ..Outcome::default() };
            if pong.get("result").is_none() {
                outcome.stray.push(json!({"ping_failed": pong}));
            }
            if let Some(id) = expect.id.as_i64() {
                // A request the server could read is answered under its id, maybe after the ping.
                let frame = match server.take_early(id) {
                    Some(frame) => frame,
                    None => server.answer(id).await,
                };
                outcome.frame = Some(frame);
            }
            outcome
        }
        Request::Http { .. } => unreachable!("HTTP cases do not run over stdio"),
    }
}

impl HttpTarget {
    fn mcp_request(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.client
            .post(self.process.url("/mcp"))
            .header("x-api-key", &self.key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("content-type", "application/json")
            .body(body)
    }

    /// A `tools/call` over `/mcp`: the HTTP status and the JSON-RPC frame.
    async fn tool(&mut self, name: &str, args: Value) -> (u16, Value) {
        let id = self.next_id;
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": args}});
        let response = self.mcp_request(serde_json::to_vec(&body).expect("JSON")).send().await.expect("POST /mcp");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| json!({"not_json": text})))
    }

    /// A REST request with the test user's token: the status and the JSON body.
    async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, self.process.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("a REST request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    async fn send(&mut self, request: &Request) -> Outcome {
        match request {
            Request::Tool { name, args } => {
                self.last_via_mcp = true;
                let (status, frame) = self.tool(name, args.clone()).await;
                Outcome { status: Some(status), frame: Some(frame), ..Outcome::default() }
            }
            Request::Rpc(bytes) => {
                self.last_via_mcp = true;
                let response = self.mcp_request(bytes.clone()).send().await.expect("POST /mcp");
                self.outcome(response).await
            }
            Request::Http { method, path, headers, body, anonymous, read_only_key } => {
                self.last_via_mcp = path.starts_with("/mcp");
                let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
                let mut builder = self.client.request(method, self.process.url(path));
                if *read_only_key {
                    builder = builder.header("x-api-key", &self.read_only_key);
                } else if !anonymous {
                    builder = if self.last_via_mcp {
                        builder.header("x-api-key", &self.key)
                    } else {
                        builder.bearer_auth(&self.token)
                    };
                }
                if self.last_via_mcp && !headers.contains_key("accept") {
                    builder = builder.header("accept", "application/json, text/event-stream");
                }
                for (name, value) in headers {
                    let value =
                        reqwest::header::HeaderValue::from_bytes(value).expect("a header value without CR or LF");
                    builder = builder.header(name, value);
                }
                if let Some(body) = body {
                    builder = builder.body(body.clone());
                }
                match builder.send().await {
                    Ok(response) => self.outcome(response).await,
                    // A refused body may close the connection before the request is fully sent.
                    Err(err) => Outcome { text: Some(format!("request failed: {err}")), ..Outcome::default() },
                }
            }
        }
    }

    async fn outcome(&self, response: reqwest::Response) -> Outcome {
        let status = response.status().as_u16();
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if is_stream {
            let mut reader = SseReader::new(response);
            let first_event = reader.next(FIRST_EVENT_WAIT).await.map(|e| e.event.unwrap_or_else(|| "message".into()));
            return Outcome { status: Some(status), first_event, ..Outcome::default() };
        }
        let text = response.text().await.unwrap_or_default();
        let mut outcome = Outcome { status: Some(status), ..Outcome::default() };
        match serde_json::from_str::<Value>(&text) {
            Ok(frame) if frame.get("jsonrpc").is_some() => {
                if frame["id"].is_null() {
                    outcome.stray.push(frame);
                } else {
                    outcome.frame = Some(frame);
                }
            }
            Ok(body) => outcome.body = Some(body),
            Err(_) => outcome.text = Some(text),
        }
        outcome
    }
}
