//! The corpus file's format: one case per line of `cases.jsonl`, what it sends and what must come
//! back, and the placeholders a case may use (expanded per run, since ids differ per store).
//!
//! A line is a JSON object:
//! - `name`: unique, says what is wrong with the input.
//! - what is sent, one of: `tool` + `args` (an MCP `tools/call`, over stdio and over `/mcp`); `rpc`
//!   (a raw JSON-RPC message: one stdio line, or the body of a POST to `/mcp`); `http` (`method`,
//!   `path`, `headers`, and `json` or a raw `body`: a REST request; `anonymous` sends no credential,
//!   `read_only_key` the test user's read-only API key).
//! - `on`: the transports, `stdio` and/or `http` (default: every transport the kind of case has).
//! - `expect`: what must come back; `expect_http` / `expect_stdio` replace it on one transport.
//!   `error` (the code of a tool error or of a REST error body), `field` (the field it names),
//!   `says` (words the message holds), `accepted` (the values the error lists), `rpc_error` (a JSON-RPC error code) with `id` (the id it
//!   answers, default null; `field` and `accepted` then name the error's `data`), `status` (HTTP status), `ok` (a read that succeeds), `stored` (fields
//!   that must be stored and read back exactly as sent), `search` (text that must find, literally,
//!   exactly the tasks holding it), `event` (the first Server-Sent Event's type), `silent` (no
//!   answer: a notification the server does not know).
//!
//! Placeholders in strings: `${task}` (the target task's id), `${unknown}` (a UUID no row has),
//! `${deleted}` (a deleted task's id), `${completed}` (a completed task's id), `${chain1}` …
//! `${chain5}` (five tasks, each waiting on the one before), `${stale_cursor}` (a cursor to a page whose tasks changed
//! since), `${deleted_cursor}` (a cursor after a task deleted since), `${seq}` / `${seq+N}` (the latest event seq, plus N), `${repeat:N:text}` (text N times),
//! `${b64:text}` (text in unpadded base64url, for forged cursors). In `rpc`, `body` and header
//! values, the four characters `\xHH` stand for the byte HH (for invalid UTF-8).

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

/// Where a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// The binary's MCP over stdio.
    Stdio,
    /// `serve`: REST and MCP over Streamable HTTP at `/mcp`.
    Http,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub on: Option<Vec<Transport>>,
    pub tool: Option<String>,
    pub args: Option<Value>,
    pub rpc: Option<String>,
    pub http: Option<HttpRequest>,
    pub expect: Expect,
    pub expect_http: Option<Expect>,
    pub expect_stdio: Option<Expect>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub json: Option<Value>,
    pub body: Option<String>,
    /// Send no credentials (the default is a valid token for the test user).
    #[serde(default)]
    pub anonymous: bool,
    /// Send the test user's read-only API key instead (as `X-API-Key`, REST and `/mcp` alike).
    #[serde(default)]
    pub read_only_key: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub error: Option<String>,
    pub field: Option<String>,
    #[serde(default)]
    pub says: Vec<String>,
    /// The accepted values the error lists (`details.accepted`).
    pub accepted: Option<Vec<String>>,
    pub rpc_error: Option<i64>,
    #[serde(default)]
    pub id: Value,
    pub status: Option<u16>,
    #[serde(default)]
    pub ok: bool,
    pub stored: Option<serde_json::Map<String, Value>>,
    pub search: Option<String>,
    pub event: Option<String>,
    /// No answer at all (a notification the server does not know gets none, per JSON-RPC).
    #[serde(default)]
    pub silent: bool,
}

/// What a case sends, once placeholders are expanded.
#[derive(Debug, Clone)]
pub enum Request {
    Tool {
        name: String,
        args: Value,
    },
    Rpc(Vec<u8>),
    /// Header values are bytes (`\xHH` escapes allowed): a header need not be ASCII.
    Http {
        method: String,
        path: String,
        headers: BTreeMap<String, Vec<u8>>,
        body: Option<Vec<u8>>,
        anonymous: bool,
        read_only_key: bool,
    },
}

/// The values placeholders stand for in one run.
#[derive(Debug, Clone)]
pub struct Fixtures {
    pub task: String,
    pub unknown: String,
    pub deleted: String,
    pub stale_cursor: String,
    pub deleted_cursor: String,
    pub latest_seq: i64,
    /// A completed task.
    pub completed: String,
    /// Five tasks, each waiting on the one before (`${chain1}` … `${chain5}`).
    pub chain: Vec<String>,
}

impl Case {
    /// Every case of the corpus file, checked for the mistakes a new line may have.
    pub fn load_all() -> Vec<Case> {
        let text = include_str!("cases.jsonl");
        let mut cases: Vec<Case> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            let case: Case =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("cases.jsonl line {}: {e}: {line}", n + 1));
            let kinds = [case.tool.is_some(), case.rpc.is_some(), case.http.is_some()];
            assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "{}: give one of tool, rpc or http", case.name);
            assert!(!cases.iter().any(|c| c.name == case.name), "two cases are named {:?}", case.name);
            cases.push(case);
        }
        cases
    }

    pub fn runs_on(&self, transport: Transport) -> bool {
        match &self.on {
            Some(on) => on.contains(&transport),
            None => self.http.is_none() || transport == Transport::Http,
        }
    }

    pub fn expectation(&self, transport: Transport) -> &Expect {
        let specific = match transport {
            Transport::Stdio => self.expect_stdio.as_ref(),
            Transport::Http => self.expect_http.as_ref(),
        };
        specific.unwrap_or(&self.expect)
    }

    pub fn request(&self, fixtures: &Fixtures) -> Request {
        if let Some(name) = &self.tool {
            let args = expand_value(self.args.clone().unwrap_or_else(|| Value::Object(Default::default())), fixtures);
            return Request::Tool { name: name.clone(), args };
        }
        if let Some(rpc) = &self.rpc {
            return Request::Rpc(bytes(&expand(rpc, fixtures)));
        }
        let http = self.http.as_ref().expect("checked at load");
        let mut headers: BTreeMap<String, Vec<u8>> =
            http.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), bytes(&expand(v, fixtures)))).collect();
        let body = match (&http.json, &http.body) {
            (Some(json), None) => {
                headers.entry("content-type".into()).or_insert_with(|| b"application/json".to_vec());
                Some(serde_json::to_vec(&expand_value(json.clone(), fixtures)).expect("serialize a JSON body"))
            }
            (None, Some(body)) => Some(bytes(&expand(body, fixtures))),
            (None, None) => None,
            (Some(_), Some(_)) => panic!("{}: give json or body, not both", self.name),
        };
        Request::Http {
            method: http.method.clone(),
            path: expand(&http.path, fixtures),
            headers,
            body,
            anonymous: http.anonymous,
            read_only_key: http.read_only_key,
        }
    }

    /// The expected values with placeholders expanded (`stored`, `search`, `says`).
    pub fn expanded(expect: &Expect, fixtures: &Fixtures) -> Expect {
        let mut expect = expect.clone();
        expect.says = expect.says.iter().map(|s| expand(s, fixtures)).collect();
        expect.search = expect.search.as_deref().map(|s| expand(s, fixtures));
        expect.stored = expect.stored.map(|m| m.into_iter().map(|(k, v)| (k, expand_value(v, fixtures))).collect());
        expect
    }
}

fn expand_value(value: Value, fixtures: &Fixtures) -> Value {
    match value {
        Value::String(s) => Value::String(expand(&s, fixtures)),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| expand_value(v, fixtures)).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, expand_value(v, fixtures))).collect()),
        other => other,
    }
}

/// Expands every `${...}` in `text`.
pub fn expand(text: &str, fixtures: &Fixtures) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap_or_else(|| panic!("unclosed placeholder in {text:?}"));
        out.push_str(&placeholder(&after[..end], fixtures));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn placeholder(name: &str, fixtures: &Fixtures) -> String {
    if let Some(spec) = name.strip_prefix("repeat:") {
        let (count, unit) = spec.split_once(':').unwrap_or_else(|| panic!("${{repeat:N:text}}, not {name:?}"));
        return unit.repeat(count.parse().unwrap_or_else(|_| panic!("a count in {name:?}")));
    }
    if let Some(text) = name.strip_prefix("b64:") {
        return base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    }
    if let Some(plus) = name.strip_prefix("seq+") {
        let plus: i64 = plus.parse().unwrap_or_else(|_| panic!("a number in {name:?}"));
        return (fixtures.latest_seq + plus).to_string();
    }
    match name {
        "task" => fixtures.task.clone(),
        "unknown" => fixtures.unknown.clone(),
        "deleted" => fixtures.deleted.clone(),
        "stale_cursor" => fixtures.stale_cursor.clone(),
        "deleted_cursor" => fixtures.deleted_cursor.clone(),
        "seq" => fixtures.latest_seq.to_string(),
        "completed" => fixtures.completed.clone(),
        chain if chain.starts_with("chain") => {
            let n: usize = chain["chain".len()..].parse().unwrap_or_else(|_| panic!("a number in {name:?}"));
            fixtures.chain[n - 1].clone()
        }
        other => panic!("unknown placeholder ${{{other}}}"),
    }
}

/// The bytes of a raw field: `\xHH` is the byte HH, everything else is its UTF-8.
fn bytes(text: &str) -> Vec<u8> {
    let raw = text.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\'
            && raw.get(i + 1) == Some(&b'x')
            && let Some(byte) = raw.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(byte) = u8::from_str_radix(byte, 16)
        {
            out.push(byte);
            i += 4;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    out
}
