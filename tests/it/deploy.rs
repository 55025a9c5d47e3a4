//! The deployment files checked as far as this machine can (no container engine runs here): the
//! Compose file parses and names only services, volumes, variables and files that exist; every setting
//! it hands task-mcp is one the binary reads; the Dockerfile copies only what exists and checks health
//! with the binary itself, which answers truthfully against a real `serve`; the systemd unit verifies.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::http::ServeProcess;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(root().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn binary() -> Command {
    crate::support::binary_command(None)
}

/// The `[env: NAME]` variables `task-mcp serve --help` lists: the settings the server reads.
fn serve_variables() -> BTreeSet<String> {
    let help = binary().args(["serve", "--help"]).output().expect("serve --help");
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    text.match_indices("[env: ").map(|(at, _)| text[at + 6..].split(']').next().unwrap().trim().to_owned()).collect()
}

/// The names of `${NAME}`, `${NAME:-default}` and `${NAME:?message}` references in `text`.
fn referenced_variables(text: &str) -> BTreeSet<String> {
    text.match_indices("${")
        .map(|(at, _)| {
            text[at + 2..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
        })
        .collect()
}

/// The `NAME=` lines of an env file.
fn env_file_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split('=').next().unwrap().trim().to_owned())
        .collect()
}

fn keys(yaml: &Yaml) -> Vec<String> {
    yaml.as_hash().map(|hash| hash.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

#[test]
fn the_compose_file_names_only_services_volumes_variables_and_files_that_exist() {
    let text = read("compose.yaml");
    let compose = YamlLoader::load_from_str(&text).expect("compose.yaml parses").remove(0);
    let services = &compose["services"];
    let names = keys(services);
    assert_eq!(names, ["postgres", "redis", "migrate", "task-mcp"]);
    assert!(services["postgres"]["image"].as_str().unwrap().starts_with("postgres:15"));
    assert!(services["redis"]["image"].as_str().unwrap().starts_with("redis:7"));
    let redis_command: Vec<&str> =
        services["redis"]["command"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert!(
        redis_command.windows(2).any(|w| w == ["--appendonly", "yes"]),
        "Redis keeps its streams: {redis_command:?}"
    );

    let declared_volumes = keys(&compose["volumes"]);
    for name in &names {
        let service = &services[name.as_str()];
        for dependency in keys(&service["depends_on"]) {
            assert!(names.contains(&dependency), "{name} depends on an unknown service {dependency}");
            let condition = service["depends_on"][dependency.as_str()]["condition"].as_str().unwrap();
            let expected = if dependency == "migrate" { "service_completed_successfully" } else { "service_healthy" };
            assert_eq!(condition, expected, "{name} waits on {dependency}");
            if expected == "service_healthy" {
                assert!(
                    !services[dependency.as_str()]["healthcheck"].is_badvalue(),
                    "{dependency} has no health check"
                );
            }
        }
        for volume in services[name.as_str()]["volumes"].as_vec().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            assert!(declared_volumes.contains(&source.to_owned()), "{name} mounts an undeclared volume {source}");
        }
        if let Some(context) = service["build"].as_str() {
            assert!(root().join(context).join("Dockerfile").is_file(), "{name} builds from {context}");
        }
    }

    // Every variable the file refers to is explained in .env.example, and .env itself stays out of git.
    let example = env_file_names(&read(".env.example"));
    let referenced = referenced_variables(&text);
    assert!(!referenced.is_empty());
    for name in &referenced {
        assert!(example.contains(name), "compose.yaml uses ${{{name}}}, which .env.example does not explain");
    }
    assert!(read(".gitignore").lines().any(|line| line.trim() == "/.env"), ".env must never be committed");
    assert!(!text.contains("JWT_SECRET:"), "the JWT secret comes from .env, never from the Compose file");

    // What task-mcp is given (its environment, and the .env it reads) are settings the server reads.
    let known = serve_variables();
    assert!(known.contains("DATABASE_URL") && known.contains("JWT_SECRET"), "{known:?}");
    for service in ["migrate", "task-mcp"] {
        for variable in keys(&services[service]["environment"]) {
            assert!(known.contains(&variable), "{service} sets {variable}, which task-mcp does not read");
        }
    }
    let compose_only = ["POSTGRES_PASSWORD", "TASK_MCP_PORT"];
    for variable in &example {
        assert!(
            known.contains(variable) || compose_only.contains(&variable.as_str()),
            ".env.example sets {variable}, which neither task-mcp nor compose.yaml reads"
        );
    }
    assert_eq!(services["task-mcp"]["env_file"].as_str(), Some(".env"));
}

#[test]
fn the_dockerfile_copies_what_exists_runs_unprivileged_and_checks_health_with_the_binary() {
    let text = read("Dockerfile");
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let mut copied = 0;
    for line in text.lines().map(str::trim).filter(|line| line.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            assert!(root().join(source).exists(), "COPY {source}: no such file in the repository");
            assert!(!ignored.iter().any(|pattern| pattern == source), "{source} is copied but .dockerignore drops it");
            copied += 1;
        }
    }
    assert!(copied >= 4, "Cargo.toml, Cargo.lock, src and sql are copied");
    for needed in [
        r#"HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["task-mcp", "health"]"#,
        r#"ENTRYPOINT ["task-mcp"]"#,
        r#"CMD ["serve"]"#,
        "EXPOSE 8000",
        "USER 10001:10001",
        "HOST=0.0.0.0",
    ] {
        assert!(text.contains(needed), "the Dockerfile lacks {needed}");
    }
}

fn health(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = binary();
    command.arg("health").args(args).env_remove("PORT");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("run task-mcp health");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_health_command_says_whether_a_real_serve_is_healthy() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data.path().join("tasks.db").display());
    let (mut serve, _dir) = ServeProcess::spawn_on(&url);
    let base = serve.url("");
    let port = base.rsplit(':').next().unwrap().trim_end_matches('/').to_owned();

    assert_eq!(health(&["--url", &base], &[]), (Some(0), "ok".to_owned(), String::new()));
    // As in the image: the port from PORT, the host this one.
    let (code, status, _) = health(&[], &[("PORT", &port)]);
    assert_eq!((code, status.as_str()), (Some(0), "ok"));

    serve.terminate(std::time::Duration::from_secs(10));
    let (code, stdout, stderr) = health(&["--url", &base], &[]);
    assert_eq!(code, Some(1), "a stopped server is unhealthy");
    assert!(stdout.is_empty());
    assert!(stderr.contains("unhealthy") && stderr.contains("no answer"), "{stderr}");
}

#[test]
fn the_health_command_fails_when_the_database_does_not_answer() {
    // Nothing listens on port 1: the server runs, but its /health answers 503.
    let (_serve, _dir) = ServeProcess::spawn_on("postgres://nobody@127.0.0.1:1/none?connect_timeout=1");
    let base = _serve.url("");
    let (code, stdout, stderr) = health(&["--url", &base], &[]);
    assert_eq!(code, Some(1), "{stdout} {stderr}");
    assert!(stderr.contains("503"), "{stderr}");
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the unit is not verified on this machine");
        return;
    };
    assert!(probe.status.success());
    let unit = read("examples/task-mcp.service");
    for needed in
        ["ExecStart=/usr/local/bin/task-mcp serve", "EnvironmentFile=", "DynamicUser=yes", "Restart=on-failure"]
    {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // Verified with the binary at the path it names, as installed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task-mcp.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/task-mcp", env!("CARGO_BIN_EXE_task-mcp"))).unwrap();
    let verified = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let complaints = String::from_utf8_lossy(&verified.stderr).into_owned();
    assert!(verified.status.success() && complaints.trim().is_empty(), "systemd-analyze verify: {complaints}");
}

#[test]
fn referenced_variables_are_found_in_every_form() {
    let found = referenced_variables("a ${ONE} b ${TWO:-x} c ${THREE:?say} $PLAIN");
    assert_eq!(found, BTreeSet::from(["ONE".to_owned(), "TWO".to_owned(), "THREE".to_owned()]));
    assert!(Path::new(&root()).join("compose.yaml").is_file());
}
