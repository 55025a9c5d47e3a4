//! A PostgreSQL database of its own for one test: created from the server's `postgres` database,
//! dropped `WITH (FORCE)` when the test is over. The server is `TEST_DATABASE_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/postgres`.

use tokio_postgres::NoTls;
use uuid::Uuid;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct TestDatabase {
    /// The URL of this test's database.
    pub url: String,
    name: String,
    admin_url: String,
}

/// The URL tests create and drop their databases through.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let name = format!("tm_test_{}", Uuid::new_v4().simple());
        execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
        TestDatabase { url: with_database(&admin_url, &name), name, admin_url }
    }
}

impl Drop for TestDatabase {
    /// Drop is synchronous and may run inside the test's runtime: the database is dropped from a
    /// thread of its own, with its own small runtime. A failure is reported, never a panic.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(try_execute(&admin_url, &sql)).map_err(|e| format!("{e:#}"))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("warning: test database {} was not dropped: the dropping thread panicked", self.name),
        }
    }
}

/// Runs SQL (several statements allowed) on a connection of its own; panics with the reason.
pub async fn execute(url: &str, sql: &str) {
    if let Err(e) = try_execute(url, sql).await {
        panic!("{sql:?} on {}: {e:#}", task_mcp::store::redact_url(url));
    }
}

async fn try_execute(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    result
}

/// The same server URL naming another database.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = location.split('/').next().unwrap_or(location);
    format!("{scheme}://{authority}/{database}{query}")
}

/// How a private cluster is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `pg_ctl stop -m fast`: sessions are terminated with an error, then a clean shutdown.
    Fast,
    /// `pg_ctl stop -m immediate`: every process quits at once, like a crash; recovery at the next start.
    Immediate,
}

/// A PostgreSQL cluster of the test's own (`initdb` into a temporary directory, a free port), which the
/// test may stop and start at will without touching the shared server. initdb and postgres refuse to
/// run as root: as root they run as the `postgres` user, which then owns the directory.
pub struct PrivatePostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    as_postgres: bool,
    /// Server settings of this cluster beyond the common ones (`-c name=value …`), on every start.
    options: String,
}

impl PrivatePostgres {
    /// Creates the cluster (trust authentication for `postgres` over TCP) and starts it.
    pub fn start() -> PrivatePostgres {
        Self::start_with("")
    }

    /// Like [`PrivatePostgres::start`], with server settings of its own (`-c name=value …`).
    pub fn start_with(options: &str) -> PrivatePostgres {
        let cluster = Self::empty(options);
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
        );
        cluster.start_again();
        cluster
    }

    /// A streaming replica of `primary` (which must allow replication connections): a base backup
    /// with its recovery settings (`pg_basebackup -R -X stream`), started on a port of its own as a hot
    /// standby, with `options`.
    pub fn standby_of(primary: &PrivatePostgres, options: &str) -> PrivatePostgres {
        let cluster = Self::empty(options);
        let data = cluster.data_dir();
        let primary_port = primary.port.to_string();
        cluster.run(
            "pg_basebackup",
            &["-h", "127.0.0.1", "-p", &primary_port, "-U", "postgres", "-D", &data, "-R", "-X", "stream", "--no-sync"],
        );
        cluster.start_again();
        cluster
    }

    /// A temporary directory for a cluster (owned by `postgres` when we are root) and a free port.
    fn empty(options: &str) -> PrivatePostgres {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let as_postgres = std::fs::metadata(dir.path()).expect("temp dir").uid() == 0;
        if as_postgres {
            let postgres = Self::postgres_user_ids();
            std::os::unix::fs::chown(dir.path(), Some(postgres.0), Some(postgres.1)).expect("chown the cluster dir");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        PrivatePostgres { port, dir, bin: Self::bin_dir(), as_postgres, options: options.to_owned() }
    }

    /// The URL of `database` on this cluster, as `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        execute(&self.url("postgres"), &format!("CREATE DATABASE {name}")).await;
        self.url(name)
    }

    /// Creates a login role that must give `password` (SCRAM) over TCP, owning a new database of the
    /// same name; returns the URL with the password in it.
    pub async fn create_user_with_password(&self, name: &str, password: &str) -> String {
        execute(&self.url("postgres"), &format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'")).await;
        execute(&self.url("postgres"), &format!("CREATE DATABASE {name} OWNER {name}")).await;
        let hba = std::path::Path::new(&self.data_dir()).join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
        // The first matching line wins: this one goes before the trust lines.
        let rule = format!("host all {name} 127.0.0.1/32 scram-sha-256\nhost all {name} ::1/128 scram-sha-256\n");
        std::fs::write(&hba, format!("{rule}{rules}")).expect("write pg_hba.conf");
        self.run("pg_ctl", &["reload", "-D", &self.data_dir(), "-s"]);
        format!("postgres://{name}:{password}@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server (waiting until it is down).
    pub fn stop(&self, mode: Shutdown) {
        let mode = match mode {
            Shutdown::Fast => "fast",
            Shutdown::Immediate => "immediate",
        };
        self.run("pg_ctl", &["stop", "-D", &self.data_dir(), "-m", mode, "-w", "-s"]);
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off -c max_connections=50 {}",
            self.port,
            self.dir.path().display(),
            self.options
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run("pg_ctl", &["start", "-D", &self.data_dir(), "-o", &options, "-l", &log, "-w", "-t", "60", "-s"]);
    }

    /// Freezes the server (SIGSTOP to the postmaster and each of its processes, by pid): it keeps its
    /// sockets, the kernel still accepts connections and acknowledges data, nothing answers.
    pub fn freeze(&self) {
        self.signal_all("-STOP");
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal_all("-CONT");
    }

    /// Sends `signal` to the postmaster (its pid is the first line of `postmaster.pid`) and its children.
    fn signal_all(&self, signal: &str) {
        let pid_file = std::path::Path::new(&self.data_dir()).join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid: the server runs");
        let postmaster: u32 = text.lines().next().and_then(|l| l.trim().parse().ok()).expect("a pid");
        let mut pids = vec![postmaster];
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // The parent pid is the second field after the command name, which ends with ')'.
            let parent =
                stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if parent == Some(postmaster) {
                pids.push(pid);
            }
        }
        let status = std::process::Command::new("kill")
            .arg(signal)
            .args(pids.iter().map(|p| p.to_string()))
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pids:?}");
    }

    /// The server's own log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of the cluster's programs (as `postgres` when we are root); panics with its output.
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            std::process::Command::new(&program)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}\n{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
    fn bin_dir() -> std::path::PathBuf {
        if let Ok(dir) = std::env::var("PG_BIN") {
            return dir.into();
        }
        let mut versions: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, bin)| bin.join("initdb").exists())
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return bin;
        }
        let output = std::process::Command::new("pg_config").arg("--bindir").output().expect("PostgreSQL is installed");
        String::from_utf8_lossy(&output.stdout).trim().into()
    }

    /// The uid and gid of the `postgres` user.
    fn postgres_user_ids() -> (u32, u32) {
        let id = |flag: &str| -> u32 {
            let output = std::process::Command::new("id").args([flag, "postgres"]).output().expect("run id");
            String::from_utf8_lossy(&output.stdout).trim().parse().expect("a postgres user exists")
        };
        (id("-u"), id("-g"))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let args = ["stop", "-D", data.as_str(), "-m", "immediate", "-w", "-s"];
        let _ = if self.as_postgres {
            std::process::Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
        } else {
            std::process::Command::new(&program).args(args).output()
        };
    }
}
