//! A private Redis Cluster for tests: 3 masters and 3 replicas on free ports in a temporary
//! directory, nothing kept on disk, ready once every node says `cluster_state:ok`; a master can be
//! killed (SIGKILL) and the failover waited for. Every server is killed when it is dropped.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node may be silent before the others fail it over (short, so a test waits little).
const NODE_TIMEOUT_MS: u64 = 2_000;

pub struct PrivateRedisCluster {
    /// The client ports, masters and replicas alike.
    pub ports: Vec<u16>,
    children: Mutex<HashMap<u16, Child>>,
    _dir: tempfile::TempDir,
}

impl PrivateRedisCluster {
    /// Starts six servers, joins them into a cluster (`redis-cli --cluster create`, one replica per
    /// master) and waits until every node reports the cluster ok.
    pub fn start() -> PrivateRedisCluster {
        let dir = tempfile::tempdir().expect("a directory for the cluster");
        // Each node needs a client port and a cluster bus port: all held at once so none repeats.
        let listeners: Vec<std::net::TcpListener> =
            (0..12).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port")).collect();
        let free: Vec<u16> = listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect();
        drop(listeners);
        let (ports, buses) = free.split_at(6);
        let cluster = PrivateRedisCluster { ports: ports.to_vec(), children: Mutex::new(HashMap::new()), _dir: dir };
        for (port, bus) in ports.iter().zip(buses) {
            let conf = cluster._dir.path().join(format!("nodes-{port}.conf"));
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--cluster-port", &bus.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", conf.to_str().expect("UTF-8 path")])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                // A replica takes over however long its link was down (the test decides when to kill).
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(cluster._dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            cluster.children.lock().unwrap().insert(*port, child);
        }
        for port in ports {
            wait_for(Duration::from_secs(20), &format!("redis-server on {port} to answer"), || {
                query(*port, &["PING"]).is_some()
            });
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed");
        assert!(output.status.success(), "cluster create failed: {}", String::from_utf8_lossy(&output.stdout));
        cluster.wait_until_ok(Duration::from_secs(60));
        cluster
    }

    /// The seed URLs, as `REDIS_CLUSTER_URLS` takes them.
    pub fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// Waits until every running node says `cluster_state:ok` and knows every slot, and every replica
    /// has its copy of its master (`master_link_status:up`).
    pub fn wait_until_ok(&self, limit: Duration) {
        wait_for(limit, "every node to report cluster_state:ok and every replica in sync", || {
            self.running().iter().all(|port| {
                let cluster_ok = query(*port, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384"));
                let synced = query(*port, &["INFO", "replication"])
                    .is_some_and(|info| info.contains("role:master") || info.contains("master_link_status:up"));
                cluster_ok && synced
            })
        });
    }

    /// The ports of the servers not killed.
    fn running(&self) -> Vec<u16> {
        self.children.lock().unwrap().keys().copied().collect()
    }

    /// Waits until a replica holds `key`'s slot instead of the killed master `victim`, and every
    /// running node says the cluster is ok again.
    pub fn wait_for_failover(&self, victim: u16, key: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.running().iter().all(|node| self.master_seen_by(*node, key).is_some_and(|m| m != victim)) {
            if Instant::now() > deadline {
                let views: Vec<String> =
                    self.running().iter().map(|p| format!("{p}: {:?}", query(*p, &["CLUSTER", "NODES"]))).collect();
                panic!("no replica took over {key} from {victim}:\n{}", views.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_ok(limit);
    }

    /// The port of the master that holds `key`'s slot now.
    pub fn master_of(&self, key: &str) -> u16 {
        let alive = *self.running().first().expect("a running node");
        self.master_seen_by(alive, key).unwrap_or_else(|| panic!("no master holds the slot of {key}"))
    }

    /// The master that holds `key`'s slot, as the node on `port` sees it.
    fn master_seen_by(&self, port: u16, key: &str) -> Option<u16> {
        let slot: u16 = query(port, &["CLUSTER", "KEYSLOT", key]).and_then(|s| s.parse().ok())?;
        let nodes = query(port, &["CLUSTER", "NODES"])?;
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields.get(2).is_some_and(|f| f.contains("master")) || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let owns = fields[8..].iter().any(|range| match range.split_once('-') {
                Some((a, b)) => a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b),
                None => range.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if owns {
                return Some(port);
            }
        }
        None
    }

    /// SIGKILL to the server on `port`, by its pid: no goodbye, like a crash.
    pub fn kill(&self, port: u16) {
        let mut child = self.children.lock().unwrap().remove(&port).expect("a running node on that port");
        let status = Command::new("kill").args(["-KILL", &child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let _ = child.wait();
    }

    /// Every entry of a stream, as field maps, oldest first (read through a cluster client).
    pub fn entries(&self, stream: &str) -> Vec<HashMap<String, String>> {
        let urls: Vec<String> = self.running().iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
        let client = redis::cluster::ClusterClient::new(urls).expect("cluster client");
        let mut conn = client.get_connection().expect("cluster connection");
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
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for (_, mut child) in self.children.lock().unwrap().drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One command to one node (a fresh connection, short timeouts); `None` when it does not answer.
fn query(port: u16, args: &[&str]) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let value: redis::Value = cmd.query(&mut conn).ok()?;
    match value {
        redis::Value::Int(n) => Some(n.to_string()),
        other => redis::from_redis_value(other).ok(),
    }
}

/// Polls `condition` until it holds; panics naming `what` after `limit`.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
