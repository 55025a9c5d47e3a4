//! A raw JSON-RPC client over a child's stdin/stdout, as an MCP host speaks it: one JSON object per
//! line, no SDK in between. Blocking I/O on purpose: the client adds as little as possible to a call.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::proc::Target;

pub const PROTOCOL: &str = "2025-11-25";

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    line: String,
}

/// A call's answer: the parsed frame, its size on the wire, when it arrived.
pub struct Answer {
    pub frame: Value,
    pub bytes: usize,
    pub at: Instant,
}

impl Answer {
    /// `result.structuredContent` of a successful tool call, or why it failed.
    pub fn structured(&self) -> Result<&Value> {
        let result = self.frame.get("result").with_context(|| format!("no result: {}", self.frame))?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("tool error: {result}");
        }
        result.get("structuredContent").with_context(|| format!("no structuredContent: {result}"))
    }
}

impl Session {
    /// Spawns the stdio server (stderr discarded: its logs are not under test).
    pub fn spawn(target: &Target) -> Result<Session> {
        let mut child = target
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {}", target.bin.display()))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().context("stdout")?);
        Ok(Session { child, stdin: Some(stdin), stdout, next_id: 1, line: String::with_capacity(1 << 16) })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, frame: &Value) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        let mut text = serde_json::to_vec(frame)?;
        text.push(b'\n');
        stdin.write_all(&text)?;
        stdin.flush()?;
        Ok(())
    }

    /// Sends a request and reads frames until its answer (notifications in between are skipped).
    pub fn request(&mut self, method: &str, params: Value) -> Result<Answer> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        loop {
            self.line.clear();
            let n = self.stdout.read_line(&mut self.line)?;
            let at = Instant::now();
            if n == 0 {
                bail!("the server closed stdout while {method} was pending");
            }
            let frame: Value = serde_json::from_str(&self.line)
                .with_context(|| format!("stdout carried a line that is not JSON: {:?}", self.line))?;
            if frame.get("id").and_then(Value::as_u64) == Some(id) {
                return Ok(Answer { frame, bytes: n, at });
            }
        }
    }

    /// The handshake: `initialize`, then `notifications/initialized`.
    pub fn initialize(&mut self) -> Result<Answer> {
        let answer = self.request("initialize", initialize_params())?;
        if answer.frame.pointer("/result/serverInfo/name").and_then(Value::as_str) != Some("task-mcp") {
            bail!("unexpected initialize answer: {}", answer.frame);
        }
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
        Ok(answer)
    }

    /// A tool call that must succeed.
    pub fn call(&mut self, name: &str, arguments: Value) -> Result<Answer> {
        let answer = self.request("tools/call", json!({"name": name, "arguments": arguments}))?;
        answer.structured().with_context(|| format!("{name} failed"))?;
        Ok(answer)
    }

    /// A tool call, timed from the request to its answer.
    pub fn timed_call(&mut self, name: &str, arguments: Value) -> Result<(Duration, Answer)> {
        let started = Instant::now();
        let answer = self.call(name, arguments)?;
        Ok((answer.at - started, answer))
    }

    /// Closes stdin and waits for the exit (the server exits once stdin closes).
    pub fn close(mut self) -> Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the stdio server exited with {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the stdio server did not exit within 10 s of stdin closing");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The parameters of the `initialize` request the bench sends.
pub fn initialize_params() -> Value {
    json!({"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
}

/// The id of the task a tool answered with.
pub fn task_id(answer: &Answer) -> Result<String> {
    answer
        .structured()?
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no task id in {}", answer.frame))
}
