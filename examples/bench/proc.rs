//! The processes the bench starts: the real binary with a clean environment, its resident memory
//! (`VmRSS` in /proc), the file limit this process raises so 10,000 sockets fit, and the start-up floor
//! (a line-echo program).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where the processes under test get their settings.
#[derive(Clone, Debug)]
pub struct Target {
    pub bin: PathBuf,
    /// The variables every child gets (on top of PATH): store, Redis, identity, data directory.
    pub env: Vec<(String, String)>,
    /// Where children start: outside any git repository unless a section asks otherwise, so that no
    /// default repository narrows the listings measured.
    pub cwd: PathBuf,
}

impl Target {
    /// A command for the binary with only PATH and this target's variables.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).current_dir(&self.cwd);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// The same target, its children started in `dir`.
    pub fn in_dir(&self, dir: PathBuf) -> Target {
        Target { cwd: dir, ..self.clone() }
    }

    /// The same target without the variable `key`.
    pub fn without(&self, key: &str) -> Target {
        let mut target = self.clone();
        target.env.retain(|(k, _)| k != key);
        target
    }

    pub fn with(&self, key: &str, value: &str) -> Target {
        let mut target = self.clone();
        target.env.retain(|(k, _)| k != key);
        target.env.push((key.to_owned(), value.to_owned()));
        target
    }

    /// Runs a one-shot command (`migrate`, `token`) and returns its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let output = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.bin.display()))?;
        if !output.status.success() {
            bail!("task-mcp {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc/PID/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// Raises this process's soft limit on open files to the hard limit (children inherit it); returns
/// the limit now in force.
pub fn raise_file_limit() -> Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX).context("raise RLIMIT_NOFILE")
}

/// The start-up floor, `examples/line_echo.rs` (std only: read a line, write a line), compiled now by
/// `rustc` with the release profile's settings (whatever profile the bench itself runs in); its path.
pub fn build_line_echo() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/bench-floor");
    std::fs::create_dir_all(&out).context("create target/bench-floor")?;
    let bin = out.join("line_echo");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let args = ["--edition", "2024", "-C", "opt-level=3", "-C", "codegen-units=1", "-C", "strip=symbols", "-o"];
    let status = Command::new(&rustc)
        .args(args)
        .arg(&bin)
        .arg(root.join("examples/line_echo.rs"))
        .status()
        .context("run rustc")?;
    if !status.success() {
        bail!("{rustc} examples/line_echo.rs failed");
    }
    Ok(bin)
}

/// The binary to measure: `--bin PATH`, else the release build, built now (a no-op when up to date).
pub fn resolve_binary(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        if !path.exists() {
            bail!("--bin {}: no such file", path.display());
        }
        // Absolute: the stdio servers run in folders of their own (outside any git repository).
        return path.canonicalize().with_context(|| format!("--bin {}", path.display()));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("bench: cargo build --release --bin task-mcp");
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--bin", "task-mcp"])
        .current_dir(root)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build --release --bin task-mcp failed");
    }
    Ok(root.join("target/release/task-mcp"))
}
