//! HTTP test helpers: `serve` started in-process on 127.0.0.1:0 (or the real binary, spawned), tokens
//! signed with the test's secret, a reqwest client, and a small Server-Sent Events reader.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use task_mcp::domain::Email;
use task_mcp::http::{Config, Limits, Server};
use task_mcp::wiring::Parts;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The secret every in-process test server signs with.
pub const SECRET: &str = "test-secret-0123456789-0123456789-abcdef";

pub fn config() -> Config {
    Config {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        jwt_secret: Some(SECRET.to_owned()),
        cors_origins: vec!["https://dashboard.example.com".to_owned()],
        allowed_hosts: Vec::new(),
        public_url: None,
        oauth: None,
        // Auth-matrix tests fail on purpose many times from 127.0.0.1: only the rate-limit test
        // lowers this.
        limits: Limits { auth_failures: 100_000, ..Limits::default() },
    }
}

/// A `serve` running in this process.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(app: Parts) -> TestServer {
        TestServer::start_with(app, config()).await
    }

    pub async fn start_with(app: Parts, config: Config) -> TestServer {
        let server = Server::build(app.clone(), config).await.expect("build server");
        let base = format!("http://{}", server.local_addr());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server.run(shutdown.clone()));
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        TestServer { base, client, shutdown, handle: Some(handle) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A valid token for `email`.
    pub fn token(&self, email: &str) -> String {
        token_for(email)
    }

    /// A request with a valid token for `email`.
    pub fn as_user(&self, method: reqwest::Method, path: &str, email: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(self.token(email))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.as_user(reqwest::Method::GET, path, "tester@example.com")
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> reqwest::RequestBuilder {
        self.as_user(reqwest::Method::POST, path, "tester@example.com").json(&body)
    }

    /// Stops the server the way a signal does, and returns how long it took.
    pub async fn stop(mut self) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task").expect("server run");
        }
        started.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Signs `claims` with `alg` and `secret` (for forged tokens).
pub fn sign(claims: serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).unwrap()
}

pub fn token_for(email: &str) -> String {
    let email = Email::parse("email", email).unwrap();
    task_mcp::http::auth::JwtKeys::new(SECRET.as_bytes()).unwrap().issue(&email, Duration::from_secs(3600)).unwrap()
}

/// The JSON error body's `code`.
pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["error"]["code"].as_str().unwrap_or("(no JSON error body)").to_owned())
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_default()
    }
}

/// Reads events (and counts comments) from an event-stream response.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
    pub comments: Vec<String>,
    pub retry: Option<u64>,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> SseReader {
        SseReader { body: response.bytes_stream().boxed(), buffer: String::new(), comments: Vec::new(), retry: None }
    }

    /// The next event, or `None` when the stream ends or nothing comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??.ok()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Whether the stream ends within `wait` (`false` if it is still open).
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    fn parse_one(&mut self) -> Option<SseEvent> {
        loop {
            let normalized = self.buffer.replace("\r\n", "\n");
            self.buffer = normalized;
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer[..end].to_owned();
            self.buffer.drain(..end + 2);
            let mut event = SseEvent::default();
            let mut has_field = false;
            for line in block.lines() {
                if let Some(comment) = line.strip_prefix(':') {
                    self.comments.push(comment.trim().to_owned());
                    continue;
                }
                let (field, value) =
                    line.split_once(':').map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v))).unwrap_or((line, ""));
                match field {
                    "id" => {
                        event.id = Some(value.to_owned());
                        has_field = true;
                    }
                    "event" => {
                        event.event = Some(value.to_owned());
                        has_field = true;
                    }
                    "data" => {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_field = true;
                    }
                    "retry" => self.retry = value.parse().ok(),
                    _ => {}
                }
            }
            if has_field {
                return Some(event);
            }
        }
    }
}

/// The real binary running `serve` on a free port, its stderr captured.
pub struct ServeProcess {
    pub base: String,
    child: Option<Child>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `task-mcp serve --port 0` with `env`, and waits until it listens.
    pub fn spawn(env: &[(&str, &str)]) -> ServeProcess {
        ServeProcess::spawn_with_umask(env, None)
    }

    /// Like [`ServeProcess::spawn`], with the process's umask set first (through `sh`).
    pub fn spawn_with_umask(env: &[(&str, &str)], umask: Option<u32>) -> ServeProcess {
        let mut command = crate::support::binary_command(umask);
        command
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .env_remove("DATABASE_URL")
            .env_remove("DATABASE_READ_URL")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_URLS")
            .env_remove("JWT_SECRET")
            .env_remove("CORS_ORIGINS")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn task-mcp serve");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let captured = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("serving on http://") {
                    let rest = &line[i + "serving on ".len()..];
                    let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(url);
                }
                captured.lock().unwrap().push(line);
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("serve did not start: {:?}", lines.lock().unwrap());
            }
        };
        ServeProcess { base, child: Some(child), stderr: lines }
    }

    /// `serve` on this store, signing with [`SECRET`], with a small pool and a data directory of its
    /// own (kept alive by the returned guard).
    pub fn spawn_on(database_url: &str) -> (ServeProcess, tempfile::TempDir) {
        let data_dir = tempfile::tempdir().expect("a data directory");
        let process = ServeProcess::spawn(&[
            ("DATABASE_URL", database_url),
            ("TASK_MCP_DATA_DIR", data_dir.path().to_str().expect("a UTF-8 path")),
            ("TASK_MCP_POOL_SIZE", "2"),
            ("JWT_SECRET", SECRET),
        ]);
        (process, data_dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits (at most `wait`) for the exit; returns the exit code and the time taken.
    pub fn terminate(&mut self, wait: Duration) -> (Option<i32>, Duration) {
        let child = self.child.as_mut().expect("running");
        let started = std::time::Instant::now();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        while started.elapsed() < wait {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return (status.code(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (None, started.elapsed())
    }

    /// The token in the dashboard URL that `serve` prints on loopback without a configured secret.
    pub fn printed_token(&self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr_text();
            if let Some(start) = text.find("#token=") {
                let rest = &text[start + "#token=".len()..];
                return rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap().to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "no dashboard URL printed: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
