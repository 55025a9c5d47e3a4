//! The terminal task commands (`list`, `show`, `add`, `start`, `done`, `comment`) through the real
//! binary on both stores: what they print (JSON for scripts, a table for people, coloured only on a
//! terminal), the exit codes scripts test, and the events their changes publish.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::redis::TestPrefix;
use crate::support::{BACKENDS, TestStore};

const USER: &str = "ann@example.com";

/// The binary with only what these tests give it: the store, the identity, a private HOME and data
/// directory, and optionally Redis.
fn command(url: &str, home: &Path, redis: Option<&TestPrefix>) -> Command {
    let mut command = crate::support::binary_command(None);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TASK_MCP_DATA_DIR", home)
        .env("DATABASE_URL", url)
        .env("TASK_MCP_USER", USER)
        .current_dir(home);
    if let Some(redis) = redis {
        command.env("REDIS_URL", &redis.url).env("TASK_MCP_STREAM_PREFIX", &redis.prefix);
    }
    command
}

fn run(url: &str, home: &Path, redis: Option<&TestPrefix>, args: &[&str]) -> Output {
    command(url, home, redis).args(args).output().expect("run task-mcp")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed and print JSON.
fn json(url: &str, home: &Path, redis: Option<&TestPrefix>, args: &[&str]) -> Value {
    let output = run(url, home, redis, args);
    assert!(output.status.success(), "{args:?} failed: {}", text(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{args:?} printed no JSON ({err}): {}", text(&output.stdout)))
}

#[tokio::test]
async fn a_person_works_a_task_through_the_terminal_commands_and_the_feed_sees_each_change() {
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let home = tempfile::tempdir().unwrap();
        let redis = TestPrefix::new();
        let (url, home, bus) = (store.url.as_str(), home.path(), Some(&redis));

        let added = json(
            url,
            home,
            bus,
            &["add", "Write the parser", "--priority", "high", "--repository", "web-app", "--json"],
        );
        assert_eq!(added["status"], "not_started", "{backend:?}");
        assert_eq!(added["priority"], "high");
        assert_eq!(added["repository"], "web-app");
        let id = added["id"].as_str().unwrap().to_owned();
        let other = json(url, home, bus, &["add", "Someone else's", "--assignee", "bob@example.com", "--json"]);

        let started = json(url, home, bus, &["start", &id, "--json"]);
        assert_eq!(started["status"], "in_progress");
        assert_eq!(started["assignee_email"], USER);
        let commented = json(url, home, bus, &["comment", &id, "half way", "--json"]);
        assert_eq!(commented["comment"]["comment"], "half way");
        assert_eq!(commented["comment"]["author"], USER);

        let mine = json(url, home, bus, &["list", "--mine", "--json"]);
        let ids: Vec<&str> = mine["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [id.as_str()], "--mine lists only the caller's tasks");
        let all = json(url, home, bus, &["list", "--json"]);
        assert_eq!(all["tasks"].as_array().unwrap().len(), 2);
        let in_repo = json(url, home, bus, &["list", "--repository", "web-app", "--status", "in_progress", "--json"]);
        assert_eq!(in_repo["tasks"].as_array().unwrap().len(), 1);

        let done = json(url, home, bus, &["done", &id, "--json"]);
        assert_eq!(done["status"], "completed");
        let shown = json(url, home, bus, &["show", &id, "--json"]);
        assert_eq!(shown["comments"][0]["comment"], "half way");
        let fields: Vec<&str> =
            shown["history"].as_array().unwrap().iter().map(|h| h["field_changed"].as_str().unwrap()).collect();
        for field in ["created", "status", "assignee", "comment"] {
            assert!(fields.contains(&field), "{backend:?}: history {fields:?} lacks {field}");
        }

        // Every change reached Redis before the command returned: the two creations (the second,
        // with an assignee, is an assignment), the start (an assignment too), the comment and the
        // completion.
        let mut kinds: Vec<String> = redis
            .entries(&redis.stream("notifications"))
            .into_iter()
            .map(|entry| entry["event_type"].clone())
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            ["task_assigned", "task_assigned", "task_commented", "task_completed", "task_created"],
            "{backend:?}: events on the feed"
        );
        assert_ne!(other["id"], added["id"]);
    }
}

#[tokio::test]
async fn exit_codes_tell_a_script_what_happened() {
    for backend in BACKENDS {
        let store = TestStore::new(backend).await;
        let home = tempfile::tempdir().unwrap();
        let (url, home) = (store.url.as_str(), home.path());
        let missing = "00000000-0000-4000-8000-000000000000";

        let cases: [(&[&str], i32, &str); 7] = [
            (&["show", missing], 1, "was not found"),
            (&["done", missing], 1, "was not found"),
            (&["show", "not-a-task"], 2, "TASK"),
            (&["add", ""], 2, "TITLE: must not be empty"),
            (&["add", "x", "--priority", "huge"], 2, "--priority: \"huge\" is not a valid priority (accepted: low"),
            (&["list", "--limit", "0"], 2, "--limit: must be between 1 and 200"),
            (&["list", "--no-such-flag"], 2, "--no-such-flag"),
        ];
        for (args, code, says) in cases {
            let output = run(url, home, None, args);
            assert_eq!(output.status.code(), Some(code), "{backend:?} {args:?}: {}", text(&output.stderr));
            assert!(text(&output.stderr).contains(says), "{backend:?} {args:?}: stderr {:?}", text(&output.stderr));
            assert!(output.stdout.is_empty(), "{args:?} printed {:?}", text(&output.stdout));
        }
        // Refused commands changed nothing.
        let listed = json(url, home, None, &["list", "--json"]);
        assert_eq!(listed["tasks"], serde_json::json!([]), "{backend:?}");
    }
}

/// Runs `args` on a pseudo-terminal (util-linux `script`), returning what the terminal showed.
fn on_terminal(url: &str, home: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let binary = env!("CARGO_BIN_EXE_task-mcp");
    let line = std::iter::once(binary).chain(args.iter().copied()).map(shell_quote).collect::<Vec<_>>().join(" ");
    // A terminal of a known width, as a person's is (script's own has none).
    let line = format!("stty cols 160 rows 50; {line}");
    let mut script = Command::new("script");
    script
        .args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TERM", "xterm")
        .env("TASK_MCP_DATA_DIR", home)
        .env("DATABASE_URL", url)
        .env("TASK_MCP_USER", USER)
        .current_dir(home);
    script.envs(env.iter().copied());
    let output = script.output().expect("run script(1)");
    assert!(output.status.success(), "{args:?} on a terminal failed: {}", text(&output.stdout));
    text(&output.stdout)
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[tokio::test]
async fn the_table_is_coloured_on_a_terminal_only_and_never_with_no_color() {
    let store = TestStore::new(crate::support::Backend::Sqlite).await;
    let home = tempfile::tempdir().unwrap();
    let (url, home) = (store.url.as_str(), home.path());
    json(url, home, None, &["add", "Urgent thing", "--priority", "urgent", "--json"]);
    json(url, home, None, &["add", "Calm thing", "--priority", "low", "--repository", "web-app", "--json"]);

    let terminal = on_terminal(url, home, &[], &["list"]);
    assert!(terminal.contains("\x1b["), "a terminal gets colour: {terminal:?}");
    for word in ["TASK", "STATUS", "PRIORITY", "REPOSITORY", "Urgent thing", "Calm thing", "web-app"] {
        assert!(terminal.contains(word), "{word} missing from {terminal:?}");
    }

    let no_color = on_terminal(url, home, &[("NO_COLOR", "1")], &["list"]);
    assert!(!no_color.contains("\x1b["), "NO_COLOR is honoured: {no_color:?}");
    assert!(no_color.contains("Urgent thing"));

    let piped = run(url, home, None, &["list"]);
    let piped = text(&piped.stdout);
    assert!(!piped.contains("\x1b["), "a pipe gets no colour: {piped:?}");
    let header = piped.lines().next().unwrap();
    assert!(
        header.split_whitespace().eq(["TASK", "STATUS", "PRIORITY", "ASSIGNEE", "REPOSITORY", "TITLE"]),
        "{header:?}"
    );
    assert_eq!(piped.lines().count(), 3, "a header and one line a task: {piped:?}");

    // Filtered to one repository, the repository column goes.
    let one_repo = text(&run(url, home, None, &["list", "--repository", "web-app"]).stdout);
    assert!(!one_repo.lines().next().unwrap().contains("REPOSITORY"), "{one_repo:?}");
}
