//! The binary as a person meets it from a terminal: what it says when started by hand, `--help`,
//! a made-up identity, a database URL that cannot be right, and `doctor`'s client snippets, which
//! must open the same store as the same identity when pasted into a client.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::mcp::Server;
use crate::support::{Backend, TestStore, pg};

const USER: &str = "ann@example.com";
/// A line of the notice printed when stdin is a terminal.
const TERMINAL_MARK: &str = "It is waiting for a client now";

/// The built binary with only PATH, a temporary HOME and `env`, started in `cwd` (outside any git
/// repository: git's `user.email` must not decide the identity), git's system configuration ignored.
fn command(home: &Path, cwd: &Path, env: &[(&str, &str)]) -> std::process::Command {
    let mut command = crate::support::binary_command(None);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("RUST_LOG", "warn")
        .current_dir(cwd);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A running binary whose stderr is collected as it comes.
struct Running {
    child: tokio::process::Child,
    stdout: BufReader<tokio::process::ChildStdout>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn spawn(mut command: std::process::Command, stdin: Stdio) -> Running {
        command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut command = tokio::process::Command::from(command);
        command.kill_on_drop(true);
        let mut child = command.spawn().expect("spawn task-mcp");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let stderr = crate::support::mcp::collect_stderr(child.stderr.take().expect("stderr"));
        Running { child, stdout, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (polling, with a deadline) until stderr holds `text`.
    async fn stderr_shows(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stderr = self.stderr();
            if stderr.contains(text) {
                return stderr;
            }
            assert!(Instant::now() < deadline, "stderr never showed {text:?}: {stderr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn read_line(&mut self) -> Value {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stdout.read_line(&mut line))
            .await
            .expect("an answer within 10 s")
            .expect("read stdout");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// A pseudo-terminal: (the terminal's side, the program's side).
fn pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let open = |path: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"))
    };
    let master = open("/dev/ptmx");
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `master` is an open pseudo-terminal master; `name` outlives the call and its length is passed.
    let ok = unsafe {
        libc::grantpt(master.as_raw_fd()) == 0
            && libc::unlockpt(master.as_raw_fd()) == 0
            && libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) == 0
    };
    assert!(ok, "cannot set up a pseudo-terminal: {}", std::io::Error::last_os_error());
    // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
    let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_str().expect("utf-8 path").to_owned();
    (master, open(&path))
}

#[tokio::test]
async fn started_in_a_terminal_stdio_says_what_it_is_on_stderr_and_keeps_serving() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tasks.db").display());
    let (mut terminal, program_side) = pty();
    let command = command(dir.path(), dir.path(), &[("DATABASE_URL", &url), ("TASK_MCP_USER", USER)]);
    let mut running = Running::spawn(command, Stdio::from(program_side));
    let stderr = running.stderr_shows(TERMINAL_MARK).await;
    assert!(stderr.contains("MCP server") && stderr.contains("task-mcp doctor"), "{stderr}");
    assert!(stderr.lines().filter(|l| !l.trim().is_empty()).count() <= 2, "one or two lines: {stderr}");
    // Still an MCP server: a frame typed at the terminal is answered on stdout.
    writeln!(terminal, "{INITIALIZE}").unwrap();
    let answer = running.read_line().await;
    assert_eq!(answer["id"], 1, "{answer}");
    assert!(answer["result"]["serverInfo"].is_object(), "{answer}");
    drop(terminal);
    let _ = tokio::time::timeout(Duration::from_secs(10), running.child.wait()).await;
}

#[tokio::test]
async fn driven_through_a_pipe_stdio_prints_no_notice() {
    let db = TestStore::new(Backend::Sqlite).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    mcp.ok("get_tasks", json!({})).await;
    let stderr = mcp.stderr();
    let (status, _) = mcp.close().await;
    assert!(status.success());
    assert!(!stderr.contains(TERMINAL_MARK), "{stderr}");
}

#[tokio::test]
async fn with_no_configured_identity_stdio_says_once_that_it_made_one_up_naming_task_mcp_user() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tasks.db").display());
    let command = command(dir.path(), dir.path(), &[("DATABASE_URL", &url)]);
    let mut running = Running::spawn(command, Stdio::piped());
    let stderr = running.stderr_shows("user@localhost").await;
    assert!(stderr.contains("TASK_MCP_USER"), "{stderr}");
    // Serving a call does not repeat it.
    let mut stdin = running.child.stdin.take().unwrap();
    use tokio::io::AsyncWriteExt;
    stdin.write_all(format!("{INITIALIZE}\n").as_bytes()).await.unwrap();
    running.read_line().await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "create_task", "arguments": {"title": "Mine", "assignee_id": "me"}}});
    stdin
        .write_all(format!("{}\n", r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).as_bytes())
        .await
        .unwrap();
    stdin.write_all(format!("{call}\n").as_bytes()).await.unwrap();
    let answer = running.read_line().await;
    assert_eq!(answer["result"]["structuredContent"]["created_by"], "user@localhost", "{answer}");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), running.child.wait()).await.expect("exits").unwrap();
    assert!(status.success());
    let stderr = running.stderr();
    assert_eq!(stderr.matches("acting as user@localhost").count(), 1, "said once: {stderr}");
}

/// The `created_by` of a task created over stdio by the binary started in `cwd` with no configured
/// identity, and its stderr.
async fn created_by_without_a_configured_identity(home: &Path, cwd: &Path, url: &str) -> (String, String) {
    use tokio::io::AsyncWriteExt;
    let mut running = Running::spawn(command(home, cwd, &[("DATABASE_URL", url)]), Stdio::piped());
    let mut stdin = running.child.stdin.take().unwrap();
    stdin.write_all(format!("{INITIALIZE}\n").as_bytes()).await.unwrap();
    running.read_line().await;
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "create_task", "arguments": {"title": "Mine", "repository": "r"}}});
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    stdin.write_all(format!("{initialized}\n{call}\n").as_bytes()).await.unwrap();
    let answer = running.read_line().await;
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), running.child.wait()).await.expect("exits").unwrap();
    assert!(status.success());
    let created_by = answer["result"]["structuredContent"]["created_by"].as_str();
    (created_by.unwrap_or_else(|| panic!("{answer}")).to_owned(), running.stderr())
}

#[tokio::test]
async fn with_no_configured_identity_stdio_acts_as_git_user_email_the_repository_s_over_the_home_one() {
    let home = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", home.path().join("tasks.db").display());
    std::fs::write(home.path().join(".gitconfig"), "[user]\n\tname = Ann\n\temail = ann@home.example\n").unwrap();
    let outside = home.path().join("notes");
    let repo = home.path().join("work").join("app");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let output = std::process::Command::new("git")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .current_dir(&repo)
            .output()
            .expect("run git");
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    git(&["init", "-q"]);

    let (created_by, stderr) = created_by_without_a_configured_identity(home.path(), &outside, &url).await;
    assert_eq!(created_by, "ann@home.example", "outside any repository: the home file's; {stderr}");
    let (created_by, _) = created_by_without_a_configured_identity(home.path(), &repo, &url).await;
    assert_eq!(created_by, "ann@home.example", "a repository without its own: the home file's");

    git(&["config", "user.email", "ann@work.example"]);
    let (created_by, stderr) = created_by_without_a_configured_identity(home.path(), &repo, &url).await;
    assert_eq!(created_by, "ann@work.example", "the repository's own wins; {stderr}");
    assert!(!stderr.contains("localhost"), "nothing made up: {stderr}");
}

/// Runs `doctor` with `env`; returns whether it succeeded and its stdout (stderr appended on failure
/// of the parse, for messages).
fn doctor(home: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let output = command(home, home, env).arg("doctor").stdin(Stdio::null()).output().expect("run doctor");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `env` of the Claude Desktop / Cursor snippet in a doctor report.
fn desktop_env(report: &str) -> BTreeMap<String, String> {
    let start = report.find("{\n  \"mcpServers\"").unwrap_or_else(|| panic!("no snippet: {report}"));
    let snippet: Value = serde_json::Deserializer::from_str(&report[start..]).into_iter().next().unwrap().unwrap();
    let env = snippet["mcpServers"]["task-mcp"]["env"].as_object().unwrap_or_else(|| panic!("{snippet}"));
    env.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect()
}

/// The `--env` settings of the Claude Code line in a doctor report, as a shell reads them.
fn claude_code_env(report: &str) -> BTreeMap<String, String> {
    let line = report.lines().find(|l| l.trim_start().starts_with("claude mcp add task-mcp")).expect("a Claude line");
    let words = line.trim_start().strip_prefix("claude mcp add task-mcp").unwrap();
    let (flags, _binary) = words.split_once(" -- ").expect("-- before the command");
    let output = std::process::Command::new("sh")
        .args(["-c", &format!("for word in {flags}; do printf '%s\\n' \"$word\"; done")])
        .output()
        .expect("run sh");
    let words: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect();
    words
        .chunks(2)
        .map(|pair| {
            assert_eq!(pair[0], "--env", "{line}");
            let (name, value) = pair[1].split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// The lines of a report that say which store and which identity.
fn store_and_identity(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| l.starts_with("store:") || l.starts_with("identity:") || l.starts_with("bus:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn each_doctor_snippet_fed_back_as_the_environment_opens_the_same_store_and_identity() {
    let home = tempfile::tempdir().unwrap();
    let custom = format!("sqlite://{}", home.path().join("elsewhere").join("custom.db").display());
    let data_dir = home.path().join("data").display().to_string();
    let pg = TestStore::new(Backend::Postgres).await;
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("DATABASE_URL", &custom), ("TASK_MCP_USER", USER)],
        vec![("TASK_MCP_DATA_DIR", &data_dir), ("TASK_MCP_USER", USER)],
        vec![],
        vec![
            ("DATABASE_URL", &pg.url),
            ("TASK_MCP_USER", USER),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("TASK_MCP_STREAM_PREFIX", "elsewhere"),
        ],
    ];
    for env in cases {
        let (ok, report, stderr) = doctor(home.path(), &env);
        assert!(ok, "{env:?}\n{report}\n{stderr}");
        let expected = store_and_identity(&report);
        assert_eq!(expected.len(), 3, "{report}");
        for snippet in [desktop_env(&report), claude_code_env(&report)] {
            let fed_back: Vec<(&str, &str)> = snippet.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (ok, again, stderr) = doctor(home.path(), &fed_back);
            assert!(ok, "{fed_back:?}\n{again}\n{stderr}");
            assert_eq!(store_and_identity(&again), expected, "snippet {fed_back:?} of the settings {env:?}");
        }
    }
}

#[test]
fn doctor_snippets_show_a_placeholder_for_a_password_never_the_password() {
    let home = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://tester:s3cret@127.0.0.1:{closed}/tasks");
    let (_, report, stderr) = doctor(home.path(), &[("DATABASE_URL", &url), ("TASK_MCP_USER", USER)]);
    assert!(!report.contains("s3cret") && !stderr.contains("s3cret"), "{report}\n{stderr}");
    let expected = format!("postgres://tester:PASSWORD@127.0.0.1:{closed}/tasks");
    assert_eq!(desktop_env(&report)["DATABASE_URL"], expected, "{report}");
    assert_eq!(claude_code_env(&report)["DATABASE_URL"], expected, "{report}");
    assert!(report.contains("replace PASSWORD"), "{report}");
}

#[test]
fn doctor_reports_a_database_url_that_cannot_be_right_and_the_rest_of_its_report() {
    let home = tempfile::tempdir().unwrap();
    let (ok, report, stderr) = doctor(home.path(), &[("DATABASE_URL", "mysql://x"), ("TASK_MCP_USER", USER)]);
    assert!(!ok, "{report}");
    assert!(report.contains("CANNOT BE USED") && report.contains("DATABASE_URL"), "{report}\n{stderr}");
    assert!(report.contains("postgres://") && report.contains("sqlite://"), "the accepted forms: {report}");
    assert!(report.contains(&format!("identity:   {USER}")), "the rest of the report: {report}");
    assert!(report.contains("claude mcp add task-mcp"), "{report}");
}

#[tokio::test]
async fn doctor_suggests_createdb_for_a_missing_postgres_database() {
    let home = tempfile::tempdir().unwrap();
    let name = format!("tm_missing_{}", uuid::Uuid::new_v4().simple());
    let url = pg::with_database(&pg::admin_url(), &name);
    let (ok, report, _) = doctor(home.path(), &[("DATABASE_URL", &url), ("TASK_MCP_USER", USER)]);
    assert!(!ok, "{report}");
    let line = report.lines().find(|l| l.contains("createdb")).unwrap_or_else(|| panic!("no createdb: {report}"));
    assert!(line.contains(&name), "{line}");
}

#[tokio::test]
async fn with_no_configured_identity_doctor_says_it_made_one_up_naming_task_mcp_user() {
    let home = tempfile::tempdir().unwrap();
    let (ok, report, _) = doctor(home.path(), &[]);
    assert!(ok, "{report}");
    let note = report.lines().find(|l| l.contains("NOTE")).unwrap_or_else(|| panic!("no note: {report}"));
    assert!(note.contains("user@localhost") && note.contains("TASK_MCP_USER"), "{note}");
}

#[tokio::test]
async fn a_database_url_that_cannot_be_right_is_a_configuration_error_over_stdio() {
    let mut mcp = Server::connect("mysql://x", USER).await;
    let error = mcp.fail("create_task", json!({"title": "x"})).await;
    assert_eq!(error.code(), "configuration_error", "{}", error.text);
    assert!(error.text.contains("DATABASE_URL") && error.text.contains("sqlite://"), "{}", error.text);
    assert!(!error.text.contains("retry once"), "not an outage: {}", error.text);
    assert_eq!(error.structured["error"]["details"]["setting"], "DATABASE_URL");
    mcp.close().await;
}

/// Every variable a flag reads, and the `--help` that shows it.
const ENV_FLAGS: [(&str, &[&str]); 17] = [
    ("DATABASE_URL", &["--help"]),
    ("DATABASE_READ_URL", &["--help"]),
    ("REDIS_URL", &["--help"]),
    ("REDIS_CLUSTER_URLS", &["--help"]),
    ("TASK_MCP_STREAM_PREFIX", &["--help"]),
    ("TASK_MCP_STREAM_MAXLEN", &["--help"]),
    ("TASK_MCP_EVENT_RETENTION_DAYS", &["--help"]),
    ("TASK_MCP_USER", &["--help"]),
    ("TASK_MCP_DATA_DIR", &["--help"]),
    ("TASK_MCP_POOL_SIZE", &["--help"]),
    ("RUST_LOG", &["--help"]),
    ("HOST", &["serve", "--help"]),
    ("PORT", &["serve", "--help"]),
    ("JWT_SECRET", &["serve", "--help"]),
    ("CORS_ORIGINS", &["serve", "--help"]),
    ("ALLOWED_HOSTS", &["serve", "--help"]),
    ("PUBLIC_URL", &["serve", "--help"]),
];

#[test]
fn help_shows_every_variable_the_same_way_whether_it_is_unset_empty_or_set() {
    let home = tempfile::tempdir().unwrap();
    for value in [None, Some(""), Some("s3cret-value")] {
        let env: Vec<(&str, &str)> = match value {
            Some(value) => ENV_FLAGS.iter().map(|(name, _)| (*name, value)).collect(),
            None => Vec::new(),
        };
        for help in [&["--help"][..], &["serve", "--help"]] {
            let output = command(home.path(), home.path(), &env).args(help).output().unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{help:?}: {text}");
            assert!(!text.contains("=]") && !text.contains("s3cret-value"), "{help:?} with {value:?}:\n{text}");
            for (name, shown_by) in ENV_FLAGS {
                if shown_by == help {
                    assert!(text.contains(&format!("[env: {name}]")), "{name} with {value:?}:\n{text}");
                }
            }
        }
    }
}
