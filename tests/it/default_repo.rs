//! A stdio session's default repository, with the real binary started in temporary folders: a git
//! repository with an ssh or https remote, one without a remote, a plain folder, `/`; the setting
//! overriding them; a client's roots overriding the working directory; `"*"` listing every
//! repository; the doctor naming it.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::mcp::{PROTOCOL, Server, tool_result};
use crate::support::sqlite::TestFile;

const USER: &str = "ann@example.com";

/// A git repository made of git's own files (no `git` needed): `top/.git/config` with `remote`.
fn git_repo(parent: &Path, name: &str, remote: Option<&str>) -> PathBuf {
    let top = parent.join(name);
    std::fs::create_dir_all(top.join(".git")).unwrap();
    std::fs::create_dir_all(top.join("src/deep")).unwrap();
    let mut config = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n".to_owned();
    if let Some(url) = remote {
        config
            .push_str(&format!("[remote \"origin\"]\n\turl = {url}\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n"));
    }
    std::fs::write(top.join(".git/config"), config).unwrap();
    std::fs::write(top.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    top
}

/// The binary started in `cwd` over its own SQLite file, with `env` on top; initialized.
async fn started_in(cwd: &Path, db: &TestFile, env: &[(&str, &str)]) -> (Server, Value) {
    let mut all = vec![("DATABASE_URL", db.url.as_str()), ("TASK_MCP_USER", USER)];
    all.extend_from_slice(env);
    let mut server = Server::spawn_in(cwd, &all, None);
    let init = server.initialize().await;
    (server, init)
}

fn instructions(init: &Value) -> String {
    init["instructions"].as_str().unwrap_or_default().to_owned()
}

/// Each task's repository: its own, or (in summaries) the page's when all its tasks share one.
fn repositories(page: &Value) -> Vec<Value> {
    let shared = &page["repository"];
    page["tasks"].as_array().unwrap().iter().map(|t| t.get("repository").unwrap_or(shared).clone()).collect()
}

/// Files one task without a repository and one elsewhere, and checks what a listing without a
/// repository shows: only the default's, saying so; `"*"` shows both.
async fn files_and_lists_in(server: &mut Server, expected: &str) {
    let created = server.ok("create_task", json!({"title": "default"})).await;
    assert_eq!(created["repository"], expected);
    server.ok("create_task", json!({"title": "elsewhere", "repository": "other"})).await;

    let page = server.ok("get_tasks", json!({})).await;
    assert_eq!(repositories(&page), vec![json!(expected)], "{page}");
    let scope = &page["default_repository"];
    assert_eq!(scope["repository"], expected, "{page}");
    assert!(scope["note"].as_str().unwrap().contains("\"*\""), "{scope}");

    let all = server.ok("get_tasks", json!({"repository": "*"})).await;
    assert_eq!(all["tasks"].as_array().unwrap().len(), 2, "{all}");
    assert!(all.get("default_repository").is_none(), "{all}");
    let named = server.ok("get_tasks", json!({"repository": "other"})).await;
    assert_eq!(repositories(&named), vec![json!("other")]);
}

#[tokio::test]
async fn in_a_git_repository_with_an_ssh_remote_the_remote_names_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let top = git_repo(dir.path(), "checkout", Some("git@github.com:acme/web-app.git"));
    let db = TestFile::create();
    // Started in a subfolder, with no git on PATH: git's files are read directly.
    let (mut server, init) = started_in(&top.join("src/deep"), &db, &[("PATH", "/nonexistent")]).await;
    let said = instructions(&init);
    assert!(said.contains("Default repository: web-app") && said.contains("origin remote"), "{said}");
    files_and_lists_in(&mut server, "web-app").await;
}

#[tokio::test]
async fn in_a_git_repository_with_an_https_remote_the_remote_names_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let top = git_repo(dir.path(), "checkout", Some("https://example.com/acme/api-server"));
    let db = TestFile::create();
    let (mut server, _) = started_in(&top, &db, &[]).await;
    files_and_lists_in(&mut server, "api-server").await;
}

#[tokio::test]
async fn in_a_git_repository_without_a_remote_the_folder_names_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let top = git_repo(dir.path(), "my-service", None);
    let db = TestFile::create();
    let (mut server, init) = started_in(&top.join("src"), &db, &[]).await;
    assert!(instructions(&init).contains("Default repository: my-service"), "{}", instructions(&init));
    files_and_lists_in(&mut server, "my-service").await;
}

#[tokio::test]
async fn a_repository_made_by_git_itself_is_read_too() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("cloned");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(&top)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    std::fs::create_dir_all(&top).unwrap();
    match git(&["init", "-q"]) {
        Ok(status) if status.success() => {}
        _ => return, // no git on this machine: the other tests cover the files it would write
    }
    assert!(git(&["remote", "add", "origin", "git@example.com:team/from-git.git"]).unwrap().success());
    let db = TestFile::create();
    let (mut server, _) = started_in(&top, &db, &[]).await;
    let created = server.ok("create_task", json!({"title": "t"})).await;
    assert_eq!(created["repository"], "from-git");
}

/// No default: calls without a repository behave as without this feature.
async fn has_no_default(cwd: &Path) {
    let db = TestFile::create();
    let (mut server, init) = started_in(cwd, &db, &[]).await;
    assert!(instructions(&init).contains("No default repository"), "{}", instructions(&init));
    let created = server.ok("create_task", json!({"title": "nowhere"})).await;
    assert!(created["repository"].is_null(), "{created}");
    server.ok("create_task", json!({"title": "somewhere", "repository": "other"})).await;
    let page = server.ok("get_tasks", json!({})).await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 2, "{page}");
    assert!(page.get("default_repository").is_none(), "{page}");
}

#[tokio::test]
async fn a_plain_folder_gives_no_default() {
    let dir = tempfile::tempdir().unwrap();
    has_no_default(dir.path()).await;
}

#[tokio::test]
async fn the_filesystem_root_gives_no_default() {
    has_no_default(Path::new("/")).await;
}

#[tokio::test]
async fn the_setting_overrides_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let top = git_repo(dir.path(), "checkout", Some("git@github.com:acme/web-app.git"));
    let db = TestFile::create();
    let (mut server, init) = started_in(&top, &db, &[("TASK_MCP_REPOSITORY", "acme/chosen")]).await;
    assert!(instructions(&init).contains("TASK_MCP_REPOSITORY"), "{}", instructions(&init));
    files_and_lists_in(&mut server, "acme/chosen").await;
    // An explicit repository always wins.
    let created = server.ok("create_task", json!({"title": "x", "repository": "named"})).await;
    assert_eq!(created["repository"], "named");
}

#[tokio::test]
async fn a_bad_setting_fails_the_calls_that_need_it_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestFile::create();
    let (mut server, _) = started_in(dir.path(), &db, &[("TASK_MCP_REPOSITORY", "has spaces")]).await;
    let failed = server.fail("create_task", json!({"title": "x"})).await;
    assert!(failed.text.contains("TASK_MCP_REPOSITORY"), "{}", failed.text);
    // A call naming its repository does not need the default.
    server.ok("create_task", json!({"title": "x", "repository": "named"})).await;
    // "*" is a filter, never a repository to file into.
    let star = server.fail("create_task", json!({"title": "x", "repository": "*"})).await;
    assert_eq!(star.structured["error"]["details"]["field"], "repository", "{:?}", star);
}

/// `initialize` as a client that supports roots; the session then asks for them.
async fn initialize_with_roots(server: &mut Server) {
    let answer = server
        .request(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL,
                "capabilities": {"roots": {"listChanged": true}},
                "clientInfo": {"name": "roots-client", "version": "1"}
            }),
        )
        .await;
    assert!(answer.get("result").is_some(), "{answer}");
    server.notify("notifications/initialized", json!({})).await;
}

/// Calls `create_task` without a repository while answering the session's `roots/list` with `roots`
/// (the call waits for that answer); returns the created task.
async fn create_answering_roots(server: &mut Server, roots: Value) -> Value {
    let id = server.start_request("tools/call", json!({"name": "create_task", "arguments": {"title": "t"}})).await;
    loop {
        let frame = server.read_frame().await.expect("task-mcp closed stdout");
        if frame["method"] == "roots/list" {
            server.send(&json!({"jsonrpc": "2.0", "id": frame["id"], "result": {"roots": roots}})).await;
            continue;
        }
        if frame["id"] == id && frame.get("method").is_none() {
            let result = tool_result(&frame["result"]);
            assert!(!result.is_error, "{}", result.text);
            return result.structured;
        }
    }
}

#[tokio::test]
async fn one_root_folder_from_the_client_overrides_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = git_repo(dir.path(), "started-here", None);
    let rooted = git_repo(dir.path(), "workspace", Some("git@github.com:acme/rooted-app.git"));
    let db = TestFile::create();
    let mut server = Server::spawn_in(&cwd, &[("DATABASE_URL", db.url.as_str()), ("TASK_MCP_USER", USER)], None);
    initialize_with_roots(&mut server).await;
    let uri = format!("file://{}", rooted.join("src").display());
    let created = create_answering_roots(&mut server, json!([{"uri": uri, "name": "workspace"}])).await;
    assert_eq!(created["repository"], "rooted-app");
    let page = server.ok("get_tasks", json!({})).await;
    assert!(page["default_repository"]["from"].as_str().unwrap().contains("root"), "{page}");
}

#[tokio::test]
async fn several_root_folders_leave_the_working_directory_in_charge() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = git_repo(dir.path(), "started-here", None);
    let db = TestFile::create();
    let mut server = Server::spawn_in(&cwd, &[("DATABASE_URL", db.url.as_str()), ("TASK_MCP_USER", USER)], None);
    initialize_with_roots(&mut server).await;
    let roots = json!([{"uri": "file:///srv/one"}, {"uri": "file:///srv/two"}]);
    let created = create_answering_roots(&mut server, roots).await;
    assert_eq!(created["repository"], "started-here");
}

#[tokio::test]
async fn doctor_names_the_default_repository_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let top = git_repo(dir.path(), "checkout", Some("https://example.com/acme/web-app.git"));
    let doctor = |cwd: &Path, args: &[&str]| {
        let output = crate::support::binary_command(None)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("TASK_MCP_DATA_DIR", dir.path().join("data"))
            .env("TASK_MCP_USER", USER)
            .env("RUST_LOG", "warn")
            .current_dir(cwd)
            .args(args)
            .arg("doctor")
            .stdin(Stdio::null())
            .output()
            .expect("run doctor");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let report = doctor(&top, &[]);
    assert!(report.contains("repository: web-app (from the origin remote"), "{report}");
    let report = doctor(&top, &["--repository", "acme/set"]);
    assert!(report.contains("repository: acme/set (from TASK_MCP_REPOSITORY"), "{report}");
    let report = doctor(dir.path(), &[]);
    assert!(report.contains("repository: none"), "{report}");
}

#[tokio::test]
async fn the_official_python_sdk_announcing_one_root_sets_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let rooted = git_repo(dir.path(), "workspace", Some("https://example.com/acme/sdk-root.git"));
    let db = TestFile::create();
    let python = crate::support::python::sdk_python();
    let output = tokio::process::Command::new(python)
        .arg(crate::support::python::script("roots_client.py"))
        .arg(env!("CARGO_BIN_EXE_task-mcp"))
        .arg(&plain)
        .arg(&rooted)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("TASK_MCP_USER", USER)
        .env("TASK_MCP_DATA_DIR", dir.path().join("data"))
        .output()
        .await
        .expect("run the Python client");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Python client failed:\n{stderr}");
    let said: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    assert_eq!(said["created"]["repository"], "sdk-root", "{said}");
    assert_eq!(said["listed"]["default_repository"]["repository"], "sdk-root", "{said}");
    assert_eq!(repositories(&said["listed"]), vec![json!("sdk-root")]);
}

#[tokio::test]
async fn claim_task_without_a_task_takes_the_next_one_from_the_default_repository() {
    let dir = tempfile::tempdir().unwrap();
    let top = git_repo(dir.path(), "checkout", Some("git@github.com:acme/web-app.git"));
    let db = TestFile::create();
    let (mut server, _) = started_in(&top, &db, &[]).await;
    // The other repository's task is older: without the default it would be claimed first.
    let elsewhere = server.ok("create_task", json!({"title": "elsewhere", "repository": "other"})).await;
    let here = server.ok("create_task", json!({"title": "here"})).await;
    let claimed = server.ok("claim_task", json!({})).await;
    assert_eq!(claimed["task"]["id"], here["id"], "{claimed}");
    // Nothing else is ready here; "*" takes from every repository.
    let none = server.ok("claim_task", json!({})).await;
    assert!(none["task"].is_null(), "{none}");
    let any = server.ok("claim_task", json!({"repository": "*"})).await;
    assert_eq!(any["task"]["id"], elsewhere["id"], "{any}");
}
