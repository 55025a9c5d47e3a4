//! An MCP client for tests: spawns the built `task-mcp` binary and speaks raw JSON-RPC over its
//! stdio, exactly as Claude Desktop or Cursor do. Every stdout line must be a JSON-RPC frame.

use std::collections::HashMap;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long any single answer may take before the test fails (and prints the server's stderr).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocol version of the `initialize` era.
pub const PROTOCOL: &str = "2025-11-25";
/// The protocol version of the `server/discover` era (no handshake; metadata on every request).
pub const PROTOCOL_DISCOVER: &str = "2026-07-28";

/// The `_meta` a 2026-07-28 client puts on every request.
pub fn discover_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": PROTOCOL_DISCOVER,
        "io.modelcontextprotocol/clientInfo": {"name": "task-mcp-tests", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A running `task-mcp` process and the client end of its stdio.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: i64,
    /// Answers read while waiting for another one (the server may answer out of order).
    early: HashMap<i64, Value>,
    /// Every stdout line so far.
    pub frames: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// `_meta` added to every request (the 2026-07-28 era), or none after `initialize`.
    meta: Option<Value>,
    /// Responses without an id (or with `id: null`) read while waiting for another answer: what the
    /// server says to a line it could not read.
    stray: Vec<Value>,
}

/// A tool call's result.
#[derive(Debug, Clone)]
pub struct ToolResult {
    pub is_error: bool,
    pub text: String,
    pub structured: Value,
}

impl ToolResult {
    /// For an error: `structuredContent.error.code`.
    pub fn code(&self) -> &str {
        self.structured["error"]["code"].as_str().unwrap_or("")
    }
}

impl Server {
    /// Starts the binary with this database and identity, without initializing.
    pub fn spawn(database_url: &str, user: &str) -> Server {
        Self::spawn_with(&[("DATABASE_URL", database_url), ("TASK_MCP_USER", user)])
    }

    /// Starts the binary with exactly these variables (plus PATH, HOME, a quiet log, a small pool and a
    /// shared temporary data directory); an empty value unsets a variable.
    pub fn spawn_with(env: &[(&str, &str)]) -> Server {
        Server::spawn_with_umask(env, None)
    }

    /// Like [`Server::spawn_with`], with the process's umask set first (through `sh`). It runs in the
    /// temporary directory, outside any git repository: no default repository narrows its calls.
    pub fn spawn_with_umask(env: &[(&str, &str)], umask: Option<u32>) -> Server {
        Server::spawn_in(&std::env::temp_dir(), env, umask)
    }

    /// Like [`Server::spawn_with`], started in `cwd`.
    pub fn spawn_in(cwd: &std::path::Path, env: &[(&str, &str)], umask: Option<u32>) -> Server {
        let data_dir = std::env::temp_dir().join("task-mcp-tests-data");
        let mut command = Command::from(crate::support::binary_command(umask));
        command
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
            .env("RUST_LOG", "warn")
            .env("TASK_MCP_POOL_SIZE", "2")
            .env("TASK_MCP_DATA_DIR", data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            // An empty value means "unset" (clap refuses empty values for some flags).
            if value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let mut child = command.spawn().expect("spawn task-mcp");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let stderr = collect_stderr(child.stderr.take().expect("stderr"));
        Server {
            child,
            stdin: Some(stdin),
            stdout,
            next_id: 1,
            early: HashMap::new(),
            frames: Vec::new(),
            stderr,
            meta: None,
            stray: Vec::new(),
        }
    }

    /// Starts the binary and completes the `initialize` handshake.
    pub async fn connect(database_url: &str, user: &str) -> Server {
        let mut server = Self::spawn(database_url, user);
        server.initialize().await;
        server
    }

    /// Starts the binary in the 2026-07-28 era: `server/discover`, then metadata on every request.
    pub async fn connect_discover(database_url: &str, user: &str) -> Server {
        let mut server = Self::spawn(database_url, user);
        server.meta = Some(discover_meta());
        let discovered = server.request("server/discover", json!({})).await;
        assert!(discovered.get("result").is_some(), "server/discover failed: {discovered}");
        server
    }

    /// `initialize` + `notifications/initialized`; returns the `initialize` result.
    pub async fn initialize(&mut self) -> Value {
        let answer = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "task-mcp-tests", "version": "1"}
                }),
            )
            .await;
        self.notify("notifications/initialized", json!({})).await;
        answer.get("result").cloned().unwrap_or_else(|| panic!("initialize failed: {answer}"))
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Writes one frame (one line).
    pub async fn send(&mut self, frame: &Value) {
        let mut line = serde_json::to_string(frame).unwrap();
        line.push('\n');
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(line.as_bytes()).await.expect("write to task-mcp");
        stdin.flush().await.expect("flush to task-mcp");
    }

    /// Writes bytes as they are (a bad line, a line without its end, …).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        stdin.write_all(bytes).await.expect("write to task-mcp");
        stdin.flush().await.expect("flush to task-mcp");
    }

    /// The responses without an id read so far (taken: the next call starts afresh).
    pub fn take_stray(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.stray)
    }

    /// The response to `id` if it was already read while waiting for another one.
    pub fn take_early(&mut self, id: i64) -> Option<Value> {
        self.early.remove(&id)
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params})).await;
    }

    /// Sends a request without waiting; returns its id (see [`Server::answer`]).
    pub async fn start_request(&mut self, method: &str, mut params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(meta) = &self.meta {
            params["_meta"] = meta.clone();
        }
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        id
    }

    /// The whole response frame of request `id` (`result` or `error`).
    pub async fn answer(&mut self, id: i64) -> Value {
        loop {
            if let Some(frame) = self.early.remove(&id) {
                return frame;
            }
            let frame = self.read_frame().await.unwrap_or_else(|| {
                panic!("task-mcp closed stdout while request {id} was pending; stderr:\n{}", self.stderr())
            });
            match frame.get("id").and_then(Value::as_i64) {
                Some(got) if frame.get("method").is_none() => {
                    self.early.insert(got, frame);
                }
                None if frame.get("method").is_none() => self.stray.push(frame),
                _ => {} // a notification (or a request from the server): not ours to answer here
            }
        }
    }

    /// Sends a request and returns its whole response frame.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.start_request(method, params).await;
        self.answer(id).await
    }

    /// Reads the next stdout line, which must be a JSON-RPC 2.0 frame; `None` at end of output.
    pub async fn read_frame(&mut self) -> Option<Value> {
        let mut line = String::new();
        let read = tokio::time::timeout(ANSWER_TIMEOUT, self.stdout.read_line(&mut line)).await;
        let n = match read {
            Ok(result) => result.expect("read task-mcp stdout"),
            Err(_) => panic!("task-mcp did not answer within {ANSWER_TIMEOUT:?}; stderr:\n{}", self.stderr()),
        };
        if n == 0 {
            return None;
        }
        self.frames.push(line.clone());
        Some(parse_frame(&line))
    }

    pub async fn call(&mut self, tool: &str, arguments: Value) -> ToolResult {
        let frame = self.request("tools/call", json!({"name": tool, "arguments": arguments})).await;
        let result = frame.get("result").unwrap_or_else(|| panic!("tools/call {tool} failed: {frame}"));
        tool_result(result)
    }

    /// A call that must succeed; returns its structured content.
    pub async fn ok(&mut self, tool: &str, arguments: Value) -> Value {
        let result = self.call(tool, arguments.clone()).await;
        assert!(!result.is_error, "{tool}({arguments}) failed: {}", result.text);
        assert!(!result.structured.is_null(), "{tool} returned no structured content");
        match serde_json::from_str::<Value>(&result.text) {
            // The text copy says the same as the structured content…
            Ok(text) => assert_eq!(text, result.structured),
            // …or, for a page of summaries, one line a task, each naming its task by key.
            Err(_) => {
                assert_eq!(tool, "get_tasks", "only summaries have a text of their own: {}", result.text);
                for task in result.structured["tasks"].as_array().expect("a page") {
                    let key = task["key"].as_str().expect("a summary has a key");
                    assert!(result.text.lines().any(|l| l.starts_with(&format!("{key} "))), "{key} in {}", result.text);
                }
            }
        }
        result.structured
    }

    /// A call that must fail as a tool error (`isError: true`, not a protocol error).
    pub async fn fail(&mut self, tool: &str, arguments: Value) -> ToolResult {
        let result = self.call(tool, arguments.clone()).await;
        assert!(result.is_error, "{tool}({arguments}) should have failed: {}", result.text);
        assert!(result.structured["error"]["message"].is_string(), "no structured error: {:?}", result);
        result
    }

    /// Closes stdin without waiting for anything (see [`Server::close`] to wait for the exit).
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Whether the process has exited already.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("wait for task-mcp").is_some()
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it to end.
    pub async fn kill(mut self) -> ExitStatus {
        self.child.start_kill().expect("kill task-mcp");
        tokio::time::timeout(ANSWER_TIMEOUT, self.child.wait())
            .await
            .expect("task-mcp did not end after SIGKILL")
            .expect("wait for task-mcp")
    }

    /// Closes stdin and waits for the process to exit (it must, promptly).
    pub async fn close(mut self) -> (ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let mut rest = String::new();
        let read = tokio::time::timeout(ANSWER_TIMEOUT, self.stdout.read_to_string(&mut rest)).await;
        read.expect("stdout did not close after stdin closed").expect("read stdout");
        self.frames.extend(rest.lines().map(|l| format!("{l}\n")));
        let status = tokio::time::timeout(ANSWER_TIMEOUT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("task-mcp did not exit after stdin closed; stderr:\n{}", self.stderr()))
            .expect("wait for task-mcp");
        (status, self.frames)
    }
}

/// Parses one stdout line, failing the test unless it is a JSON-RPC 2.0 frame.
pub fn parse_frame(line: &str) -> Value {
    let frame: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("stdout carried a non-JSON line ({e}): {line:?}"));
    assert_eq!(frame["jsonrpc"], "2.0", "stdout carried a non-JSON-RPC frame: {line}");
    assert!(
        frame.get("result").is_some() || frame.get("error").is_some() || frame.get("method").is_some(),
        "stdout carried a frame that is neither a response nor a message: {line}"
    );
    frame
}

pub fn tool_result(result: &Value) -> ToolResult {
    let text = result["content"]
        .as_array()
        .map(|blocks| blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    ToolResult {
        is_error: result["isError"].as_bool().unwrap_or(false),
        text,
        structured: result.get("structuredContent").cloned().unwrap_or(Value::Null),
    }
}

/// Collects a child's stderr as it comes (a task reads it until the pipe closes), so a test can read
/// what was logged so far at any time.
pub fn collect_stderr(mut pipe: tokio::process::ChildStderr) -> Arc<Mutex<String>> {
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    stderr
}
