//! The benchmark: how fast task-mcp answers, how many streams it holds, at what cost, measured
//! against the database itself. It starts what it needs on 127.0.0.1 (its own PostgreSQL database,
//! Redis key prefix and SQLite file, all removed at the end), spawns the real binary, and prints one
//! table per section.
//!
//! ```sh
//! cargo run --release --example bench                      # everything, on PostgreSQL+Redis and SQLite
//! cargo run --example bench -- --smoke --bin target/debug/task-mcp   # a few seconds: does it still run?
//! ```
//! Options: `--bin PATH` (default: `target/release/task-mcp`, built first), `--smoke`,
//! `--backend postgres|sqlite|both`. `BENCH_DATABASE_URL` / `BENCH_REDIS_URL` (else `TEST_DATABASE_URL` /
//! `TEST_REDIS_URL`, else 127.0.0.1 defaults) name the servers.
//!
//! Modules: `plan` (counts), `setup` (database, prefix, file), `proc` (children, RSS, file limit),
//! `stdio` (raw JSON-RPC), `floor_pg` / `floor_sqlite` (the same SQL, direct), `tools` (sections 1–3, 6),
//! `serve` (the HTTP child), `http_load` (section 4), `sse` (raw SSE client), `feed` (section 5),
//! `stats` (quantiles, tables), `summary` (the targets), `cluster` (a private Redis Cluster for the relay).
//! The start-up section measures against `examples/line_echo.rs` (std only: one line read, one written),
//! compiled by the bench with the release profile's settings.

mod claims;
mod cluster;
mod feed;
mod floor_pg;
mod floor_sqlite;
mod http_load;
mod plan;
mod proc;
mod serve;
mod setup;
mod sse;
mod stats;
mod stdio;
mod summary;
mod tools;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};

use setup::Backend;

/// The parts of a run, in the order they run (`--sections` picks some).
const SECTIONS: [&str; 5] = ["startup", "tools", "claims", "http", "feed"];

struct Options {
    smoke: bool,
    sections: Vec<String>,
    bin: Option<PathBuf>,
    postgres: bool,
    sqlite: bool,
}

fn options() -> Result<Options> {
    let mut options = Options {
        smoke: false,
        sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
        bin: None,
        postgres: true,
        sqlite: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => options.smoke = true,
            "--bin" => options.bin = args.next().map(PathBuf::from),
            "--sections" => {
                let list = args.next().unwrap_or_default();
                options.sections = list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                if let Some(unknown) = options.sections.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    bail!("--sections: {unknown:?} is not one of {}", SECTIONS.join(","));
                }
            }
            "--backend" => match args.next().as_deref() {
                Some("postgres") => options.sqlite = false,
                Some("sqlite") => options.postgres = false,
                Some("both") => {}
                other => bail!("--backend {other:?}: give postgres, sqlite or both"),
            },
            "-h" | "--help" => {
                eprintln!(
                    "usage: bench [--smoke] [--bin PATH] [--backend postgres|sqlite|both] [--sections {}]",
                    SECTIONS.join(",")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = options()?;
    let plan = if options.smoke { plan::Plan::smoke() } else { plan::Plan::full() };
    let bin = proc::resolve_binary(options.bin.as_deref())?;
    let line_echo = if options.sections.iter().any(|s| s == "startup") { Some(proc::build_line_echo()?) } else { None };
    let mut plan = plan;
    let limit = proc::raise_file_limit()?;
    // Each idle stream is a socket here and one in serve; leave room for everything else.
    let fits = (limit as usize).saturating_sub(200);
    if plan.idle_connections > fits {
        eprintln!("bench: the open-file limit is {limit}: holding {fits} idle streams, not {}", plan.idle_connections);
        plan.idle_connections = fits;
    }
    println!("{}", summary::machine(&bin, limit).await);
    let started = Instant::now();
    let mut report = summary::Report::default();
    if options.postgres {
        let backend = Backend::postgres(bin.clone()).await?;
        let outcome = run(&backend, &plan, &options.sections, line_echo.as_deref(), &mut report).await;
        backend.clean_up().await;
        outcome?;
    }
    if options.sqlite {
        let backend = Backend::sqlite(bin.clone())?;
        let outcome = run(&backend, &plan, &options.sections, line_echo.as_deref(), &mut report).await;
        backend.clean_up().await;
        outcome?;
    }
    if plan.smoke {
        println!("smoke run: checks that every section runs and prints figures; their values are not checked");
        println!("(a debug build at tiny counts: the targets are judged by the full run only)\n");
        println!("{}", report.figures_only().render());
    } else {
        println!("{}", report.targets().render());
    }
    println!("bench finished in {:.1} s{}", started.elapsed().as_secs_f64(), if plan.smoke { " (smoke)" } else { "" });
    Ok(())
}

async fn run(
    backend: &Backend,
    plan: &plan::Plan,
    sections: &[String],
    line_echo: Option<&std::path::Path>,
    report: &mut summary::Report,
) -> Result<()> {
    let wanted = |name: &str| sections.iter().any(|s| s == name);
    // Every section needs the schema; start-up is measured on a migrated store.
    backend.target.run(&["migrate"])?;
    if let Some(line_echo) = line_echo.filter(|_| wanted("startup")) {
        eprintln!("bench: {} — start-up", backend.label);
        let (table, startup) = tokio::task::block_in_place(|| tools::startup(backend, plan, line_echo))?;
        println!("{}", table.render());
        report.add_startup(backend, startup);
    }
    if wanted("tools") {
        eprintln!("bench: {} — tool latency and floor", backend.label);
        let (tables, figures) = tools::tools(backend, plan).await?;
        for table in tables {
            println!("{}", table.render());
        }
        report.add_tools(backend, figures);
    }
    if wanted("claims") {
        eprintln!("bench: {} — claims", backend.label);
        let (tables, figures) = claims::claims(backend, plan).await?;
        for table in tables {
            println!("{}", table.render());
        }
        report.add_claims(backend, figures);
    }
    if wanted("http") {
        eprintln!("bench: {} — serve under load", backend.label);
        println!("{}", http_load::http(backend, plan).await?.render());
    }
    if wanted("feed") {
        eprintln!("bench: {} — live feed", backend.label);
        let (tables, feed) = feed::feed(backend, plan).await?;
        for table in tables {
            println!("{}", table.render());
        }
        report.add_feed(backend, feed);
    }
    Ok(())
}
