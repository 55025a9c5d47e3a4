//! Sections 1–3 and 6 over stdio: start-up to `initialize` and idle memory; each tool's latency in one
//! session and across concurrent processes; the same work done directly on the database (the floor)
//! and the ratio; the size of what the server sends.

use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::floor_pg::PgFloor;
use crate::floor_sqlite::SqliteFloor;
use crate::plan::Plan;
use crate::proc::{Target, rss_kib};
use crate::setup::{Backend, Kind};
use crate::stats::{Samples, Table, kib, mib, ms, per_second, ratio};
use crate::stdio::{Session, initialize_params, task_id};

const ACTOR: &str = "bench@example.com";
pub const REPOSITORY: &str = "bench/api";

/// The operations measured, in the order they run (each builds on the tasks the first one made).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    UpdateStatus,
    Comment,
    ListSummary,
    ListFull,
    Get,
}

pub const OPS: [Op; 6] = [Op::Create, Op::UpdateStatus, Op::Comment, Op::ListSummary, Op::ListFull, Op::Get];

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Create => "create_task",
            Op::UpdateStatus => "update_task_status",
            Op::Comment => "add_task_comment",
            Op::ListSummary => "get_tasks (50, summary)",
            Op::ListFull => "get_tasks (50, full)",
            Op::Get => "get_task",
        }
    }

    /// The tool call for the `i`-th iteration, over the tasks created so far.
    fn call(self, i: usize, ids: &[String], tag: &str) -> (&'static str, Value) {
        let id = || ids[i % ids.len()].clone();
        match self {
            Op::Create => (
                "create_task",
                json!({"title": format!("bench task {tag}-{i}"), "repository": REPOSITORY, "priority": "high"}),
            ),
            Op::UpdateStatus => ("update_task_status", json!({"task_id": id(), "new_status": "in_progress"})),
            Op::Comment => ("add_task_comment", json!({"task_id": id(), "comment": format!("progress note {i}")})),
            Op::ListSummary => ("get_tasks", json!({})),
            Op::ListFull => ("get_tasks", json!({"detail": "full"})),
            Op::Get => ("get_task", json!({"task_id": id()})),
        }
    }
}

/// What one backend's stdio sections measured, for the summary.
pub struct ToolFigures {
    pub create_median: Duration,
    pub ratios: Vec<(Op, f64)>,
    pub tools_list_bytes: usize,
    /// The JSON-RPC frame of a 50-task summary page with 40-character titles.
    pub listing_frame_bytes: usize,
    /// Its text block alone (what a client that reads text puts in the model's context).
    pub listing_text_bytes: usize,
}

/// A summary page as a model meets it: 50 tasks with 40-character titles, assigned, in one
/// repository, listed unfiltered (newest first, so the page is these 50). Returns the frame's
/// size and its text block's.
fn listing_sizes(session: &mut Session) -> Result<(usize, usize)> {
    for i in 0..50 {
        let title = format!("{:<40}", format!("Size check: a forty character title {i}"));
        session.call(
            "create_task",
            json!({"title": &title[..40], "repository": "bench/sizes", "assignee_id": "me", "priority": "high"}),
        )?;
    }
    let answer = session.call("get_tasks", json!({}))?;
    let text = answer.frame["result"]["content"][0]["text"].as_str().map_or(0, str::len);
    Ok((answer.bytes, text))
}

/// Start-up targets: spawn → `initialize` answer at most this many times the line-echo floor's, and
/// an idle stdio process's resident memory at most this many MiB.
pub const STARTUP_RATIO_TARGET: f64 = 1.5;
pub const IDLE_RSS_TARGET_MIB: f64 = 8.0;

/// What section 1 measured, for the summary.
pub struct StartupFigures {
    /// The line-echo floor: spawn → answer, median.
    pub floor: Duration,
    /// spawn → `initialize` answer, median: with `TASK_MCP_USER` set, and with the identity left to
    /// git's `user.email`.
    pub with_user: Duration,
    pub from_git: Duration,
    /// Resident memory of an idle stdio process after `initialize` (the larger of the two), KiB.
    pub idle_rss_kib: u64,
}

/// spawn → the first answer to `initialize` of one fresh process; `task_mcp` checks who answered.
fn time_start(target: &Target, task_mcp: bool) -> Result<Duration> {
    let started = Instant::now();
    let mut session = Session::spawn(target)?;
    let answer = if task_mcp { session.initialize()? } else { session.request("initialize", initialize_params())? };
    session.close()?;
    Ok(answer.at - started)
}

/// Resident memory of a process idle after `initialize`, then after its first tool call (KiB).
fn idle_rss(target: &Target, plan: &Plan) -> Result<(u64, u64)> {
    let mut session = Session::spawn(target)?;
    session.initialize()?;
    std::thread::sleep(Duration::from_millis(if plan.smoke { 50 } else { 500 }));
    let idle = rss_kib(session.pid())?;
    session.call("get_tasks", json!({"limit": 1}))?;
    let after_call = rss_kib(session.pid())?;
    session.close()?;
    Ok((idle, after_call))
}

/// Section 1: spawn → `initialize` answer of fresh processes, against the floor of a std-only
/// program that reads a line and writes one; then idle memory.
pub fn startup(backend: &Backend, plan: &Plan, line_echo: &Path) -> Result<(Table, StartupFigures)> {
    // Started where the bench runs (a git repository, usually): the start-up measured includes
    // finding the session's default repository.
    let here = std::env::current_dir()?;
    let with_user = backend.target.in_dir(here.clone());
    // Without TASK_MCP_USER the identity is git's user.email: here from a ~/.gitconfig, as on a
    // developer's machine (HOME is the backend's temporary folder).
    let from_git = with_user.without("TASK_MCP_USER");
    let home = with_user.env.iter().find(|(k, _)| k == "HOME").map(|(_, v)| v.clone()).context("no HOME")?;
    std::fs::write(Path::new(&home).join(".gitconfig"), format!("[user]\n\tname = Bench\n\temail = {ACTOR}\n"))?;
    let floor = Target { bin: line_echo.to_path_buf(), env: Vec::new(), cwd: here };

    let (mut floor_samples, mut user_samples, mut git_samples) =
        (Samples::with_capacity(plan.starts), Samples::with_capacity(plan.starts), Samples::with_capacity(plan.starts));
    for _ in 0..plan.starts {
        // In turns, so that the three meet the same load on a shared machine.
        floor_samples.push(time_start(&floor, false)?);
        user_samples.push(time_start(&with_user, true)?);
        git_samples.push(time_start(&from_git, true)?);
    }
    let (idle_user, after_call) = idle_rss(&with_user, plan)?;
    let (idle_git, _) = idle_rss(&from_git, plan)?;

    let mut table = Table::new(
        format!("1. Start-up over stdio — {}", backend.label),
        &["measure", "median", "p95", "min", "runs", "median / floor", "target"],
    );
    let floor_median = floor_samples.median();
    let mut timed = |label: &str, samples: &mut Samples, target: &str| {
        let median = samples.median();
        table.row(vec![
            label.into(),
            ms(median),
            ms(samples.p95()),
            ms(samples.quantile(0.0)),
            samples.len().to_string(),
            ratio(median.as_secs_f64(), floor_median.as_secs_f64()),
            target.into(),
        ]);
        median
    };
    let target = format!("≤ {STARTUP_RATIO_TARGET}×");
    timed("line echo, std only (the floor): spawn → answer", &mut floor_samples, "");
    let with_user_median = timed("spawn → initialize answer, TASK_MCP_USER set", &mut user_samples, &target);
    let from_git_median = timed("spawn → initialize answer, identity from git", &mut git_samples, &target);
    let rss_target = format!("≤ {IDLE_RSS_TARGET_MIB} MiB");
    let one = |label: &str, kib: u64, target: &str| {
        vec![label.into(), mib(kib), "".into(), "".into(), "1".into(), "".into(), target.into()]
    };
    table.row(one("idle RSS after initialize, TASK_MCP_USER set", idle_user, &rss_target));
    table.row(one("idle RSS after initialize, identity from git", idle_git, &rss_target));
    table.row(one("RSS after the first tool call", after_call, ""));
    let figures = StartupFigures {
        floor: floor_median,
        with_user: with_user_median,
        from_git: from_git_median,
        idle_rss_kib: idle_user.max(idle_git),
    };
    Ok((table, figures))
}

/// Runs iterations `calls` of `op` in one session; returns the samples and the last answer's size.
fn run_op(
    session: &mut Session,
    op: Op,
    calls: std::ops::Range<usize>,
    ids: &mut Vec<String>,
    tag: &str,
) -> Result<(Samples, usize)> {
    let mut samples = Samples::with_capacity(calls.len());
    let mut bytes = 0;
    for i in calls {
        let (name, arguments) = op.call(i, ids, tag);
        let (elapsed, answer) = session.timed_call(name, arguments)?;
        if op == Op::Create {
            ids.push(task_id(&answer)?);
        }
        if matches!(op, Op::ListSummary | Op::ListFull) {
            let rows = answer.structured()?.get("tasks").and_then(Value::as_array).map_or(0, Vec::len);
            anyhow::ensure!(rows > 0, "get_tasks returned no task");
        }
        bytes = answer.bytes;
        samples.push(elapsed);
    }
    Ok((samples, bytes))
}

/// The floor of one backend, driven from a blocking thread (PostgreSQL's through the runtime).
enum Floor {
    Postgres(Box<PgFloor>, tokio::runtime::Handle),
    Sqlite(Box<SqliteFloor>),
}

impl Floor {
    fn run(&mut self, op: Op, i: usize, ids: &mut Vec<Uuid>) -> Result<()> {
        let id = |ids: &Vec<Uuid>| ids[i % ids.len()];
        match self {
            Floor::Postgres(floor, handle) => handle.block_on(async {
                match op {
                    Op::Create => ids.push(floor.create(&format!("floor task {i}"), REPOSITORY, ACTOR).await?),
                    Op::UpdateStatus => floor.update_status(id(ids), "in_progress", ACTOR).await?,
                    Op::Comment => floor.comment(id(ids), &format!("progress note {i}"), ACTOR).await?,
                    Op::ListSummary | Op::ListFull => drop(floor.list(50).await?),
                    Op::Get => drop(floor.get(id(ids)).await?),
                }
                Ok(())
            }),
            Floor::Sqlite(floor) => {
                match op {
                    Op::Create => ids.push(floor.create(&format!("floor task {i}"), REPOSITORY, ACTOR)?),
                    Op::UpdateStatus => floor.update_status(id(ids), "in_progress", ACTOR)?,
                    Op::Comment => floor.comment(id(ids), &format!("progress note {i}"), ACTOR)?,
                    Op::ListSummary | Op::ListFull => drop(floor.list(50)?),
                    Op::Get => drop(floor.get(id(ids))?),
                }
                Ok(())
            }
        }
    }
}

/// Rounds per operation: the tool and its floor take turns, so both meet the same load on a shared
/// machine and the ratio compares like with like.
const ROUNDS: usize = 10;

/// Sections 2, 3 and 6 for one backend.
pub async fn tools(backend: &Backend, plan: &Plan) -> Result<(Vec<Table>, ToolFigures)> {
    let target = backend.target.clone();
    let calls = plan.calls;
    let mut floor = match backend.kind {
        Kind::Postgres => {
            Floor::Postgres(Box::new(PgFloor::connect(&backend.database_url).await?), tokio::runtime::Handle::current())
        }
        Kind::Sqlite => {
            Floor::Sqlite(Box::new(SqliteFloor::open(backend.sqlite_path.as_deref().context("sqlite path")?)?))
        }
    };
    // One session, each tool in turn, interleaved with the floor.
    type Measured = (Vec<(Op, Samples, Samples)>, Vec<(String, usize)>, Samples);
    let (single, sizes, mut ping) = tokio::task::spawn_blocking(move || -> Result<Measured> {
        let mut session = Session::spawn(&target)?;
        session.initialize()?;
        let tools_list = session.request("tools/list", json!({}))?;
        // Warm: the pool connected, the identity resolved.
        session.call("get_tasks", json!({"limit": 1}))?;
        // The protocol alone (no store): what any tool call pays on top of its floor.
        let mut ping = Samples::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            let answer = session.request("ping", json!({}))?;
            ping.push(answer.at - started);
        }
        let (mut ids, mut floor_ids) = (Vec::new(), Vec::new());
        let mut results = Vec::new();
        let mut sizes = vec![("tools/list".to_owned(), tools_list.bytes)];
        let batch = calls.div_ceil(ROUNDS);
        for op in OPS {
            let (mut tool, mut base) = (Samples::with_capacity(calls), Samples::with_capacity(calls));
            let mut bytes = 0;
            let mut done = 0;
            while done < calls {
                let n = batch.min(calls - done);
                let (samples, last) = run_op(&mut session, op, done..done + n, &mut ids, "one")?;
                tool.extend(samples);
                bytes = last;
                for i in done..done + n {
                    let started = Instant::now();
                    floor.run(op, i, &mut floor_ids)?;
                    base.push(started.elapsed());
                }
                done += n;
            }
            if matches!(op, Op::ListSummary | Op::ListFull) {
                sizes.push((op.label().to_owned(), bytes));
            }
            results.push((op, tool, base));
        }
        let (frame, text) = listing_sizes(&mut session)?;
        sizes.push(("get_tasks (50 × 40-char titles): frame".to_owned(), frame));
        sizes.push(("get_tasks (50 × 40-char titles): text block".to_owned(), text));
        session.close()?;
        Ok((results, sizes, ping))
    })
    .await??;

    let concurrent = concurrent(&backend.target, plan).await?;

    let mut latency = Table::new(
        format!("2–3. Tool latency over raw stdio vs the floor — {}", backend.label),
        &["tool", "calls", "median", "p99", "floor median", "floor p99", "median / floor"],
    );
    latency.row(vec![
        "ping (the protocol alone)".into(),
        ping.len().to_string(),
        ms(ping.median()),
        ms(ping.p99()),
        "".into(),
        "".into(),
        "".into(),
    ]);
    let mut ratios = Vec::new();
    let mut create_median = Duration::ZERO;
    for (op, mut samples, mut floor) in single {
        let (median, floor_median) = (samples.median(), floor.median());
        if op == Op::Create {
            create_median = median;
        }
        let r = median.as_secs_f64() / floor_median.as_secs_f64().max(1e-9);
        ratios.push((op, r));
        latency.row(vec![
            op.label().into(),
            samples.len().to_string(),
            ms(median),
            ms(samples.p99()),
            ms(floor_median),
            ms(floor.p99()),
            ratio(median.as_secs_f64(), floor_median.as_secs_f64()),
        ]);
    }

    let mut parallel = Table::new(
        format!("2. {} stdio processes at once — {}", plan.processes, backend.label),
        &["tool", "calls", "throughput", "median", "p99"],
    );
    for (op, wall, mut samples) in concurrent {
        parallel.row(vec![
            op.label().into(),
            samples.len().to_string(),
            per_second(samples.len(), wall),
            ms(samples.median()),
            ms(samples.p99()),
        ]);
    }

    let mut size = Table::new(format!("6. Size of answers (JSON-RPC frame) — {}", backend.label), &["answer", "bytes"]);
    let tools_list_bytes = sizes[0].1;
    let listing_bytes = sizes.iter().rev().take(2).map(|(_, b)| *b).collect::<Vec<_>>();
    let (listing_text_bytes, listing_frame_bytes) = (listing_bytes[0], listing_bytes[1]);
    for (what, bytes) in sizes {
        size.row(vec![what, kib(bytes)]);
    }
    let figures = ToolFigures { create_median, ratios, tools_list_bytes, listing_frame_bytes, listing_text_bytes };
    Ok((vec![latency, parallel, size], figures))
}

/// `plan.processes` sessions, every tool in turn, all processes starting each tool together.
async fn concurrent(target: &Target, plan: &Plan) -> Result<Vec<(Op, Duration, Samples)>> {
    let target = target.clone();
    let plan = plan.clone();
    tokio::task::spawn_blocking(move || -> Result<_> {
        let parties = plan.processes + 1;
        let barrier = Arc::new(Barrier::new(parties));
        let collected: Arc<Mutex<Vec<Vec<Samples>>>> = Arc::new(Mutex::new(vec![Vec::new(); OPS.len()]));
        let failure: Arc<Mutex<Option<anyhow::Error>>> = Arc::new(Mutex::new(None));
        let mut walls = Vec::new();
        std::thread::scope(|scope| {
            for p in 0..plan.processes {
                let (barrier, collected, failure, target) =
                    (barrier.clone(), collected.clone(), failure.clone(), target.clone());
                let calls = plan.calls_per_process;
                scope.spawn(move || {
                    let mut session = Session::spawn(&target).and_then(|mut s| {
                        s.initialize()?;
                        s.call("get_tasks", json!({"limit": 1}))?;
                        Ok(s)
                    });
                    let mut ids = Vec::new();
                    for (k, op) in OPS.into_iter().enumerate() {
                        barrier.wait();
                        let outcome = match session.as_mut() {
                            Ok(session) => run_op(session, op, 0..calls, &mut ids, &format!("p{p}")),
                            Err(err) => Err(anyhow::anyhow!("{err:#}")),
                        };
                        match outcome {
                            Ok((samples, _)) => collected.lock().unwrap_or_else(|e| e.into_inner())[k].push(samples),
                            Err(err) => {
                                failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(err);
                            }
                        }
                        barrier.wait();
                    }
                    if let Ok(session) = session {
                        let _ = session.close();
                    }
                });
            }
            for _ in OPS {
                barrier.wait();
                let started = Instant::now();
                barrier.wait();
                walls.push(started.elapsed());
            }
        });
        if let Some(err) = failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(err.context("a concurrent stdio session failed"));
        }
        let collected = std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(OPS
            .into_iter()
            .zip(walls)
            .zip(collected)
            .map(|((op, wall), parts)| {
                let mut all = Samples::default();
                for part in parts {
                    all.extend(part);
                }
                (op, wall, all)
            })
            .collect())
    })
    .await?
}
