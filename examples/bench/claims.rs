//! Claims: `claim_task` without a task id over raw stdio against the same statements sent directly
//! (the floor), and claims per second with several processes racing for one pool of ready tasks,
//! beside the rate one writer creates tasks at.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::floor_pg::PgFloor;
use crate::floor_sqlite::SqliteFloor;
use crate::plan::Plan;
use crate::setup::{Backend, Kind};
use crate::stats::{Samples, Table, ms, per_second, ratio};
use crate::stdio::Session;

const ACTOR: &str = "bench@example.com";
/// The section's own repository: both sides claim only what it created, not the other sections' tasks.
const REPOSITORY: &str = "bench/claims";
/// Turns the tool and its floor take, so both meet the same load.
const ROUNDS: usize = 10;

pub struct ClaimFigures {
    /// Median claim over stdio / median floor claim.
    pub ratio: f64,
    pub racers: usize,
    pub claims_per_second: f64,
    pub creates_per_second: f64,
}

enum Floor {
    Postgres(Box<PgFloor>, tokio::runtime::Handle),
    Sqlite(Box<SqliteFloor>),
}

impl Floor {
    fn claim(&mut self) -> Result<bool> {
        let holder = "bench floor";
        Ok(match self {
            Floor::Postgres(floor, handle) => {
                handle.block_on(floor.claim_next(ACTOR, holder, ACTOR, Some(REPOSITORY)))?.is_some()
            }
            Floor::Sqlite(floor) => floor.claim_next(ACTOR, holder, ACTOR, Some(REPOSITORY))?.is_some(),
        })
    }

    fn create(&mut self, i: usize) -> Result<()> {
        let title = format!("ready work {i}");
        match self {
            Floor::Postgres(floor, handle) => drop(handle.block_on(floor.create(&title, REPOSITORY, ACTOR))?),
            Floor::Sqlite(floor) => drop(floor.create(&title, REPOSITORY, ACTOR)?),
        }
        Ok(())
    }
}

pub async fn claims(backend: &Backend, plan: &Plan) -> Result<(Vec<Table>, ClaimFigures)> {
    let mut floor = match backend.kind {
        Kind::Postgres => {
            Floor::Postgres(Box::new(PgFloor::connect(&backend.database_url).await?), tokio::runtime::Handle::current())
        }
        Kind::Sqlite => {
            Floor::Sqlite(Box::new(SqliteFloor::open(backend.sqlite_path.as_deref().context("sqlite path")?)?))
        }
    };
    let target = backend.target.clone();
    let plan = plan.clone();
    let label = backend.label;
    tokio::task::spawn_blocking(move || -> Result<(Vec<Table>, ClaimFigures)> {
        let calls = plan.calls;
        let mut session = Session::spawn(&target)?;
        session.initialize()?;
        // Warm: the pool connected, the identity resolved, the user and the repository created (the
        // floor looks both up).
        session.call("create_task", json!({"title": "warm", "repository": REPOSITORY}))?;
        session.call("claim_task", json!({"repository": REPOSITORY}))?;
        // One writer creating the pool both sides claim from: the rate racers are compared with.
        let started = Instant::now();
        for i in 0..2 * calls {
            session.call("create_task", json!({"title": format!("claimable {i}"), "repository": REPOSITORY}))?;
        }
        let creates_per_second = (2 * calls) as f64 / started.elapsed().as_secs_f64();
        let (mut tool, mut base) = (Samples::with_capacity(calls), Samples::with_capacity(calls));
        let batch = calls.div_ceil(ROUNDS);
        for _ in 0..ROUNDS {
            for _ in 0..batch {
                let (took, answer) = session.timed_call("claim_task", json!({"repository": REPOSITORY}))?;
                if answer.structured()?["task"].is_null() {
                    bail!("claim_task found nothing ready: {}", answer.frame);
                }
                tool.push(took);
            }
            for _ in 0..batch {
                let started = Instant::now();
                if !floor.claim()? {
                    bail!("the floor found nothing ready");
                }
                base.push(started.elapsed());
            }
        }
        session.close()?;
        // The race: a pool of ready tasks, every process claiming until none is left.
        let racers = plan.processes;
        let pool = racers * plan.calls_per_process;
        for i in 0..pool {
            floor.create(i)?;
        }
        let barrier = Arc::new(Barrier::new(racers + 1));
        let mut sessions = Vec::new();
        for _ in 0..racers {
            let mut session = Session::spawn(&target)?;
            session.initialize()?;
            sessions.push(session);
        }
        let (claimed, elapsed) = std::thread::scope(|scope| -> Result<(usize, Duration)> {
            let handles: Vec<_> = sessions
                .into_iter()
                .map(|mut session| {
                    let barrier = barrier.clone();
                    scope.spawn(move || -> Result<usize> {
                        barrier.wait();
                        let mut n = 0;
                        while !session.call("claim_task", json!({"repository": REPOSITORY}))?.structured()?["task"]
                            .is_null()
                        {
                            n += 1;
                        }
                        session.close()?;
                        Ok(n)
                    })
                })
                .collect();
            barrier.wait();
            let started = Instant::now();
            let mut claimed = 0;
            for handle in handles {
                claimed += handle.join().map_err(|_| anyhow::anyhow!("a racer panicked"))??;
            }
            Ok((claimed, started.elapsed()))
        })?;
        if claimed != pool {
            bail!("the racers claimed {claimed} of {pool} ready tasks");
        }
        let claims_per_second = claimed as f64 / elapsed.as_secs_f64();
        let (median, floor_median) = (tool.median(), base.median());
        let r = median.as_secs_f64() / floor_median.as_secs_f64().max(1e-9);
        let mut latency = Table::new(
            format!("Claims: claim_task (next) over raw stdio vs the floor — {label}"),
            &["calls", "median", "p99", "floor median", "floor p99", "median / floor"],
        );
        latency.row(vec![
            tool.len().to_string(),
            ms(median),
            ms(tool.p99()),
            ms(floor_median),
            ms(base.p99()),
            ratio(median.as_secs_f64(), floor_median.as_secs_f64()),
        ]);
        let mut race = Table::new(
            format!("Claims: {racers} processes racing for {pool} ready tasks — {label}"),
            &["claims", "wall", "claims/s", "one writer's creates/s", "claims/s / creates/s"],
        );
        race.row(vec![
            claimed.to_string(),
            ms(elapsed),
            per_second(claimed, elapsed),
            format!("{creates_per_second:.0}"),
            format!("{:.0} %", 100.0 * claims_per_second / creates_per_second),
        ]);
        Ok((vec![latency, race], ClaimFigures { ratio: r, racers, claims_per_second, creates_per_second }))
    })
    .await?
}
