//! A private Redis Cluster for the relay section: 3 masters and 3 replicas on free ports in a temporary
//! directory (Debian's `redis-server` and `redis-cli`), nothing kept on disk, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct PrivateCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    /// Starts six servers, joins them (one replica per master) and waits until every node says
    /// `cluster_state:ok` and every replica is in sync.
    pub fn start() -> Result<PrivateCluster> {
        let dir = tempfile::tempdir()?;
        let listeners: Vec<std::net::TcpListener> =
            (0..12).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
        let free: Vec<u16> =
            listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<std::io::Result<_>>()?;
        drop(listeners);
        let (ports, buses) = free.split_at(6);
        let mut cluster = PrivateCluster { ports: ports.to_vec(), children: Vec::new(), _dir: dir };
        for (port, bus) in ports.iter().zip(buses) {
            let conf = cluster._dir.path().join(format!("nodes-{port}.conf"));
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--cluster-port", &bus.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", &conf.to_string_lossy()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(cluster._dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start redis-server (is it installed?)")?;
            cluster.children.push(child);
        }
        for port in ports {
            wait_for(&format!("redis-server on {port}"), || query(*port, &["PING"]).is_some())?;
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for port in ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let output = create.args(["--cluster-replicas", "1", "--cluster-yes"]).stdin(Stdio::null()).output()?;
        if !output.status.success() {
            bail!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&output.stdout));
        }
        wait_for("the cluster to be ok", || {
            ports.iter().all(|port| {
                query(*port, &["CLUSTER", "INFO"]).is_some_and(|i| i.contains("cluster_state:ok"))
                    && query(*port, &["INFO", "replication"])
                        .is_some_and(|i| i.contains("role:master") || i.contains("master_link_status:up"))
            })
        })?;
        Ok(cluster)
    }

    /// The seed URLs, as `REDIS_CLUSTER_URLS` takes them.
    pub fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn query(port: u16, args: &[&str]) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(&mut conn).ok()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
