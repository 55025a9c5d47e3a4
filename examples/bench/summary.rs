//! The machine the figures come from, and the performance targets against what this run measured.

use std::path::Path;
use std::time::Duration;

use crate::feed::FeedFigures;
use crate::setup::{Backend, Kind};
use crate::stats::{Table, mib, ms, ms_signed};
use crate::tools::{IDLE_RSS_TARGET_MIB, STARTUP_RATIO_TARGET, StartupFigures, ToolFigures};

/// Cores, CPU model, server versions, the binary and the file limit.
pub async fn machine(bin: &Path, file_limit: u64) -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown".into());
    let postgres = match crate::floor_pg::connect_client(&crate::setup::admin_url()).await {
        Ok(client) => match client.query_one("SHOW server_version", &[]).await {
            Ok(row) => row.get::<_, String>(0),
            Err(err) => format!("unknown ({err})"),
        },
        Err(err) => format!("unreachable ({err:#})"),
    };
    let redis = redis_version().await.unwrap_or_else(|err| format!("unreachable ({err:#})"));
    format!(
        "## task-mcp benchmark\n\nmachine: {cores} cores, {cpu}; PostgreSQL {postgres}; Redis {redis}; \
         open-file limit {file_limit}\nbinary: {}\n",
        bin.display()
    )
}

async fn redis_version() -> anyhow::Result<String> {
    let client = redis::Client::open(crate::setup::redis_url())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
    Ok(info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_owned())
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Vec<String>>,
}

fn verdict(met: bool) -> String {
    if met { "met".into() } else { "NOT met".into() }
}

impl Report {
    pub fn add_startup(&mut self, backend: &Backend, startup: StartupFigures) {
        let label = backend.label;
        self.rows.push(vec![
            label.into(),
            "start-up to initialize ≤ 10 ms (median)".into(),
            ms(startup.with_user),
            verdict(startup.with_user <= Duration::from_millis(10)),
        ]);
        for (how, median) in [("TASK_MCP_USER set", startup.with_user), ("identity from git", startup.from_git)] {
            let ratio = median.as_secs_f64() / startup.floor.as_secs_f64().max(f64::EPSILON);
            self.rows.push(vec![
                label.into(),
                format!("start-up ≤ {STARTUP_RATIO_TARGET}× line-echo floor ({how})"),
                format!("{ratio:.2}× ({} vs {})", ms(median), ms(startup.floor)),
                verdict(ratio <= STARTUP_RATIO_TARGET),
            ]);
        }
        self.rows.push(vec![
            label.into(),
            format!("idle stdio RSS ≤ {IDLE_RSS_TARGET_MIB} MiB"),
            mib(startup.idle_rss_kib),
            verdict(startup.idle_rss_kib as f64 / 1024.0 <= IDLE_RSS_TARGET_MIB),
        ]);
    }

    pub fn add_tools(&mut self, backend: &Backend, tools: ToolFigures) {
        let label = backend.label;
        let worst =
            tools.ratios.iter().cloned().fold(None, |worst: Option<(crate::tools::Op, f64)>, (op, r)| match worst {
                Some((_, w)) if w >= r => worst,
                _ => Some((op, r)),
            });
        if let Some((op, r)) = worst {
            let over = tools.ratios.iter().filter(|(_, r)| *r > 1.3).count();
            self.rows.push(vec![
                label.into(),
                "tool latency ≤ 1.3× floor (median)".into(),
                format!("worst {:.2}× ({}); {over} of {} tools over", r, op.label(), tools.ratios.len()),
                verdict(over == 0),
            ]);
        }
        if backend.kind == Kind::Postgres {
            self.rows.push(vec![
                label.into(),
                "median create_task ≤ 1 ms".into(),
                ms(tools.create_median),
                verdict(tools.create_median <= Duration::from_millis(1)),
            ]);
        }
        self.rows.push(vec![
            label.into(),
            "tools/list ≤ 8 KB".into(),
            format!("{} B", tools.tools_list_bytes),
            verdict(tools.tools_list_bytes <= 8 * 1024),
        ]);
        self.rows.push(vec![
            label.into(),
            "get_tasks 50 summaries: text ≤ 6,000 B".into(),
            format!("{} B", tools.listing_text_bytes),
            verdict(tools.listing_text_bytes <= 6000),
        ]);
        self.rows.push(vec![
            label.into(),
            "get_tasks 50 summaries: frame ≤ 12 KB".into(),
            format!("{} B", tools.listing_frame_bytes),
            verdict(tools.listing_frame_bytes <= 12 * 1024),
        ]);
    }

    pub fn add_claims(&mut self, backend: &Backend, claims: crate::claims::ClaimFigures) {
        let label = backend.label;
        self.rows.push(vec![
            label.into(),
            "claim_task (next) ≤ 1.3× floor (median)".into(),
            format!("{:.2}×", claims.ratio),
            verdict(claims.ratio <= 1.3),
        ]);
        let share = claims.claims_per_second / claims.creates_per_second;
        self.rows.push(vec![
            label.into(),
            format!("{} racers' claims/s ≥ 70% of one writer's creates/s", claims.racers),
            format!("{:.0}/s vs {:.0}/s ({:.0} %)", claims.claims_per_second, claims.creates_per_second, 100.0 * share),
            verdict(share >= 0.7),
        ]);
    }

    pub fn add_feed(&mut self, backend: &Backend, feed: FeedFigures) {
        let label = backend.label;
        if let Some(&(clients, p99)) = feed.p99_by_clients.last() {
            self.rows.push(vec![
                label.into(),
                format!("commit → SSE p99 ≤ 20 ms at {clients} clients"),
                ms_signed(p99),
                verdict(p99 <= 20_000),
            ]);
        }
        if let Some((n, rss)) = feed.idle_rss_kib {
            self.rows.push(vec![
                label.into(),
                format!("{n} idle SSE streams ≤ 200 MB RSS"),
                format!("{:.1} MB", rss as f64 * 1024.0 / 1e6),
                verdict(rss as f64 * 1024.0 <= 200e6),
            ]);
        }
    }

    /// The performance targets, what this run measured and whether each was met.
    pub fn targets(&self) -> Table {
        let mut table = Table::new("Performance targets", &["store", "target", "measured", ""]);
        for row in &self.rows {
            table.row(row.clone());
        }
        table
    }

    /// The same figures without verdicts: a smoke run (a debug build, tiny counts) checks that every
    /// section runs, and its numbers say nothing about the targets.
    pub fn figures_only(&self) -> Table {
        let mut table =
            Table::new("Figures of this smoke run (not compared with the targets)", &["store", "target", "measured"]);
        for row in &self.rows {
            table.row(row.iter().take(3).cloned().collect());
        }
        table
    }
}
