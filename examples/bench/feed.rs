//! Section 5: the live feed. Commit → SSE latency at 1, 100 and 1,000 connected clients (a tool call
//! over stdio commits; every client must receive it before the next call); events per second while
//! several stdio processes write at once; memory of `serve` holding 10,000 idle streams.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use task_mcp::events::bus::BusConnection;

use crate::cluster::PrivateCluster;
use crate::plan::Plan;
use crate::proc::rss_kib;
use crate::serve::Serve;
use crate::setup::Backend;
use crate::sse::{Receipt, SseStream};
use crate::stats::{Table, mib, ms_signed, per_second};
use crate::stdio::{Session, task_id};

/// Quantiles of signed microsecond differences (nearest rank).
fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Opens `n` streams, at most 200 connecting at a time.
async fn open_streams(serve: &Serve, n: usize) -> Result<Vec<SseStream>> {
    let (addr, token) = (serve.addr, serve.token.clone());
    let streams: Vec<Result<SseStream>> = futures::stream::iter(0..n)
        .map(|_| {
            let token = token.clone();
            async move { SseStream::open(addr, &token).await }
        })
        .buffer_unordered(200)
        .collect()
        .await;
    streams.into_iter().collect()
}

pub struct FeedFigures {
    /// (clients, p99 from the answer) per fan-out.
    pub p99_by_clients: Vec<(usize, i64)>,
    pub idle_rss_kib: Option<(usize, u64)>,
}

pub async fn feed(backend: &Backend, plan: &Plan) -> Result<(Vec<Table>, FeedFigures)> {
    let serve = Serve::start(&backend.target, plan.pool_size)?;
    let http = reqwest::Client::new();
    serve.ready(&http).await?;

    let mut latency = Table::new(
        format!("5. Commit → SSE receipt — {}", backend.label),
        &["clients", "events", "receipts", "p50 from answer", "p99 from answer", "p50 from call", "p99 from call"],
    );
    let mut p99_by_clients = Vec::new();
    let mut writer = Session::spawn(&backend.target)?;
    writer.initialize()?;
    writer.call("get_tasks", json!({"limit": 1}))?;
    for &(clients, events) in &plan.fanout {
        let streams = open_streams(&serve, clients).await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Receipt>();
        let readers: Vec<_> = streams.into_iter().map(|s| tokio::spawn(s.follow(tx.clone()))).collect();
        drop(tx);
        let (mut from_answer, mut from_call) = (Vec::new(), Vec::new());
        let mut missing = 0usize;
        for k in 0..events {
            let called = Instant::now();
            let answer = tokio::task::block_in_place(|| {
                writer.call("create_task", json!({"title": format!("feed {clients}-{k}"), "repository": "bench/feed"}))
            })?;
            let id = task_id(&answer)?;
            let mut seen = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while seen < clients {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(receipt)) if receipt.task_id == id => {
                        seen += 1;
                        from_answer.push(signed_micros(receipt.at, answer.at));
                        from_call.push(signed_micros(receipt.at, called));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => bail!("every SSE stream ended"),
                    Err(_) => break,
                }
            }
            missing += clients - seen;
        }
        for reader in readers {
            reader.abort();
        }
        if missing > 0 {
            eprintln!("bench: {missing} receipts missing at {clients} clients (waited 10 s per event)");
        }
        from_answer.sort_unstable();
        from_call.sort_unstable();
        let p99 = quantile(&from_answer, 0.99);
        p99_by_clients.push((clients, p99));
        latency.row(vec![
            clients.to_string(),
            events.to_string(),
            from_answer.len().to_string(),
            ms_signed(quantile(&from_answer, 0.5)),
            ms_signed(p99),
            ms_signed(quantile(&from_call, 0.5)),
            ms_signed(quantile(&from_call, 0.99)),
        ]);
    }
    writer.close()?;

    let throughput = throughput(backend, plan, &serve).await?;
    serve.stop()?;
    let mut tables = vec![latency, throughput];
    if backend.redis_url.is_some() {
        tables.push(relay_drain(backend, plan, None).await?);
        // The same backlog published to a 3-master Redis Cluster (one pipeline per hash slot, each
        // confirmed by a replica).
        let cluster = tokio::task::spawn_blocking(PrivateCluster::start).await??;
        tables.push(relay_drain(backend, plan, Some(&cluster)).await?);
    }
    let (idle, idle_rss_kib) = idle_streams(backend, plan).await?;
    tables.push(idle);
    Ok((tables, FeedFigures { p99_by_clients, idle_rss_kib }))
}

fn signed_micros(later: Instant, earlier: Instant) -> i64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_micros() as i64,
        None => -(earlier.duration_since(later).as_micros() as i64),
    }
}

/// `plan.processes` stdio writers create `plan.feed_events` tasks as fast as they can; one SSE client
/// counts what arrives.
async fn throughput(backend: &Backend, plan: &Plan, serve: &Serve) -> Result<Table> {
    let stream = SseStream::open(serve.addr, &serve.token).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Receipt>();
    let reader = tokio::spawn(stream.follow(tx));
    let per_writer = plan.feed_events.div_ceil(plan.processes);
    let total = per_writer * plan.processes;
    let target = backend.target.clone();
    let processes = plan.processes;
    let writers = tokio::task::spawn_blocking(move || -> Result<Duration> {
        let mut sessions = Vec::new();
        for _ in 0..processes {
            let mut session = Session::spawn(&target)?;
            session.initialize()?;
            session.call("get_tasks", json!({"limit": 1}))?;
            sessions.push(session);
        }
        let started = Instant::now();
        let outcomes: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = sessions
                .iter_mut()
                .enumerate()
                .map(|(w, session)| {
                    scope.spawn(move || -> Result<()> {
                        for i in 0..per_writer {
                            session.call(
                                "create_task",
                                json!({"title": format!("burst {w}-{i}"), "repository": "bench/burst"}),
                            )?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a writer panicked"))))
                .collect()
        });
        let elapsed = started.elapsed();
        for outcome in outcomes {
            outcome?;
        }
        for session in sessions {
            session.close()?;
        }
        Ok(elapsed)
    });
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut received = 0usize;
    while received < total {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(receipt)) => {
                first.get_or_insert(receipt.at);
                last = receipt.at;
                received += 1;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let writing = writers.await??;
    reader.abort();
    let span = first.map(|f| last - f).unwrap_or_default();
    let mut table = Table::new(
        format!("5. Feed throughput, {} stdio writers → SSE — {}", plan.processes, backend.label),
        &["events written", "received by SSE", "writers' commit rate", "SSE receipt rate (first → last)"],
    );
    table.row(vec![
        total.to_string(),
        received.to_string(),
        per_second(total, writing),
        per_second(received.saturating_sub(1), span),
    ]);
    Ok(table)
}

/// The outbox → Redis leg alone: `plan.feed_events` events written while no process publishes (no
/// `REDIS_URL`), then one stdio process with Redis (or, given `cluster`, that Redis Cluster) starts and
/// its relay publishes the backlog; timed from its spawn until the notifications stream holds them all.
async fn relay_drain(backend: &Backend, plan: &Plan, cluster: Option<&PrivateCluster>) -> Result<Table> {
    let Some(url) = &backend.redis_url else { bail!("the relay needs Redis") };
    // Streams of their own (under the bench's prefix, so the clean-up removes them), empty at start.
    let prefix = format!("{}:relay{}", backend.prefix, if cluster.is_some() { "-cluster" } else { "" });
    let stream = format!("{prefix}:notifications");
    let publishing = match cluster {
        Some(cluster) => backend.target.with("REDIS_URL", "").with("REDIS_CLUSTER_URLS", &cluster.urls()),
        None => backend.target.clone(),
    }
    .with("TASK_MCP_STREAM_PREFIX", &prefix);
    let total = plan.feed_events;
    let quiet = backend.target.with("REDIS_URL", "");
    let writers = plan.processes;
    tokio::task::spawn_blocking(move || -> Result<()> {
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let quiet = &quiet;
                    scope.spawn(move || -> Result<()> {
                        let mut session = Session::spawn(quiet)?;
                        session.initialize()?;
                        for i in (w..total).step_by(writers) {
                            session.call(
                                "create_task",
                                json!({"title": format!("backlog {i}"), "repository": "bench/relay"}),
                            )?;
                        }
                        session.close()
                    })
                })
                .collect();
            for handle in handles {
                handle.join().map_err(|_| anyhow::anyhow!("a writer panicked"))??;
            }
            Ok(())
        })
    })
    .await??;
    let mut conn = match cluster {
        Some(cluster) => {
            let seeds: Vec<String> = cluster.urls().split(',').map(str::to_owned).collect();
            BusConnection::Cluster(redis::cluster::ClusterClient::new(seeds)?.get_async_connection().await?)
        }
        None => BusConnection::Plain(redis::Client::open(url.as_str())?.get_multiplexed_async_connection().await?),
    };
    let before: usize = redis::cmd("XLEN").arg(&stream).query_async(&mut conn).await?;
    let started = Instant::now();
    let mut relay = Session::spawn(&publishing)?;
    let deadline = started + Duration::from_secs(60);
    let mut published = 0;
    while Instant::now() < deadline {
        let now: usize = redis::cmd("XLEN").arg(&stream).query_async(&mut conn).await?;
        published = now.saturating_sub(before);
        if published >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    tokio::task::block_in_place(|| -> Result<()> {
        relay.initialize()?;
        relay.close()
    })?;
    let mut table = Table::new(
        format!(
            "5. Relay: a backlog in the outbox → {} — {}",
            if cluster.is_some() { "a Redis Cluster (3 masters, 3 replicas)" } else { "one Redis" },
            backend.label
        ),
        &["events waiting", "published", "time (process start included)", "rate"],
    );
    table.row(vec![
        total.to_string(),
        published.to_string(),
        format!("{:.1} ms", elapsed.as_secs_f64() * 1000.0),
        per_second(published, elapsed),
    ]);
    Ok(table)
}

/// A fresh `serve`: memory before and while holding `plan.idle_connections` idle streams.
async fn idle_streams(backend: &Backend, plan: &Plan) -> Result<(Table, Option<(usize, u64)>)> {
    let serve = Serve::start(&backend.target, plan.pool_size)?;
    let http = reqwest::Client::new();
    serve.ready(&http).await?;
    // One stream first, so the hub and its followers are running before the baseline.
    let warm = SseStream::open(serve.addr, &serve.token).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(serve.pid())?;
    let opened_at = Instant::now();
    let streams = open_streams(&serve, plan.idle_connections).await.context("open idle SSE streams")?;
    let opening = opened_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(serve.pid())?;
    let clients: HashMap<&str, String> = HashMap::from([("sse_clients", metric(&http, &serve, "sse_clients").await)]);
    drop(streams);
    drop(warm);
    serve.stop()?;
    let n = plan.idle_connections;
    let mut table = Table::new(
        format!("5. serve holding {n} idle SSE streams — {}", backend.label),
        &["streams", "RSS before", "RSS with the streams", "per stream", "sse_clients metric", "time to open all"],
    );
    table.row(vec![
        n.to_string(),
        mib(before),
        mib(after),
        format!("{:.1} KiB", after.saturating_sub(before) as f64 / n.max(1) as f64),
        clients["sse_clients"].clone(),
        format!("{:.2} s", opening.as_secs_f64()),
    ]);
    Ok((table, Some((n, after))))
}

/// One gauge of `/metrics`, as text.
async fn metric(http: &reqwest::Client, serve: &Serve, name: &str) -> String {
    let Ok(response) = http.get(format!("{}/metrics", serve.base)).send().await else { return "-".into() };
    let Ok(text) = response.text().await else { return "-".into() };
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("-")
        .to_owned()
}
