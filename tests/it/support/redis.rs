//! Redis for tests: a key prefix of its own per test (keys deleted on drop), and a private
//! `redis-server` on a free port that a test may kill and restart.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| REDIS_URL.to_owned())
}

/// A stream prefix no other test uses; its keys are deleted when dropped.
pub struct TestPrefix {
    pub prefix: String,
    pub url: String,
}

impl TestPrefix {
    pub fn new() -> TestPrefix {
        TestPrefix::on(&redis_url())
    }

    pub fn on(url: &str) -> TestPrefix {
        TestPrefix { prefix: format!("test-{}", uuid::Uuid::new_v4().simple()), url: url.to_owned() }
    }

    pub fn stream(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// The entries of a stream, as field maps, oldest first.
    pub fn entries(&self, stream: &str) -> Vec<std::collections::HashMap<String, String>> {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut conn = client.get_connection().expect("redis connection");
        let reply: redis::streams::StreamRangeReply = redis::Commands::xrange_all(&mut conn, stream).expect("XRANGE");
        reply
            .ids
            .into_iter()
            .map(|entry| {
                entry
                    .map
                    .iter()
                    .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).expect("text field")))
                    .collect()
            })
            .collect()
    }

    /// Every key under this prefix.
    pub fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut conn = client.get_connection().expect("redis connection");
        let mut keys: Vec<String> = redis::Commands::keys(&mut conn, format!("{}:*", self.prefix)).expect("KEYS");
        keys.sort();
        keys
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else { return };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else { return };
        let keys: Vec<String> = redis::Commands::keys(&mut conn, format!("{}:*", self.prefix)).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::Commands::del(&mut conn, keys);
        }
    }
}

/// A `redis-server` of the test's own, on a free port, keeping nothing on disk.
pub struct PrivateRedis {
    pub port: u16,
    /// Required from every client when set (`--requirepass`).
    password: Option<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        PrivateRedis::start_with_password(None)
    }

    /// A server that answers only clients giving `password` (`NOAUTH` to the others).
    pub fn start_with_password(password: Option<&str>) -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut redis = PrivateRedis { port, password: password.map(str::to_owned), child: None };
        redis.restart();
        redis
    }

    /// The URL to reach it, with its password if it has one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => self.url_without_password(),
        }
    }

    pub fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many connections the server has accepted since it started (`INFO stats`).
    pub fn connections_received(&self) -> u64 {
        let client = redis::Client::open(self.url()).expect("url");
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).expect("redis connection");
        let info: String = redis::cmd("INFO").arg("stats").query(&mut conn).expect("INFO stats");
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_connections_received in INFO stats")
    }

    /// SIGKILL: no goodbye, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let mut command = Command::new("redis-server");
        command.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server is installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("url");
        for _ in 0..200 {
            if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(100))
                && redis::cmd("PING").query::<String>(&mut conn).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("private redis-server on port {} did not start", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
