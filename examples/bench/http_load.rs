//! Section 4: `serve` under load — `GET /api/tasks` and `POST /api/tasks` from 64 keep-alive
//! connections for a bounded time — against the same queries sent straight to the database by as
//! many concurrent workers over as many database connections as `serve` pools.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;

use crate::floor_pg::PgFloor;
use crate::floor_sqlite::SqliteFloor;
use crate::plan::Plan;
use crate::serve::Serve;
use crate::setup::{Backend, Kind};
use crate::stats::{Samples, Table, ms, per_second, ratio};

/// What a load run saw.
pub struct Load {
    pub ok: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub samples: Samples,
}

impl Load {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `work` on `workers` concurrent loops for `duration` (after a short warm-up that is not counted).
async fn drive<F, Fut>(workers: usize, duration: Duration, work: F) -> Load
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let work = Arc::new(work);
    let warm_up = (duration / 10).min(Duration::from_millis(500));
    let started = Instant::now();
    let measure_from = started + warm_up;
    let until = measure_from + duration;
    let mut handles = Vec::new();
    for w in 0..workers {
        let work = work.clone();
        handles.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            let (mut ok, mut errors, mut i) = (0, 0, 0);
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let outcome = work(w, i).await;
                i += 1;
                let t1 = Instant::now();
                if t0 < measure_from || t1 > until {
                    continue;
                }
                match outcome {
                    Ok(()) => {
                        ok += 1;
                        samples.push(t1 - t0);
                    }
                    Err(_) => errors += 1,
                }
            }
            (ok, errors, samples)
        }));
    }
    let mut load = Load { ok: 0, errors: 0, elapsed: duration, samples: Samples::default() };
    for handle in handles {
        if let Ok((ok, errors, samples)) = handle.await {
            load.ok += ok;
            load.errors += errors;
            load.samples.extend(samples);
        }
    }
    load
}

fn client(connections: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
        .context("HTTP client")
}

pub async fn http(backend: &Backend, plan: &Plan) -> Result<Table> {
    let workers = plan.http_connections;
    // The raw queries first, so their connections are closed before serve opens its own.
    let (raw_get, raw_post) = match backend.kind {
        Kind::Postgres => raw_postgres(&backend.database_url, plan).await?,
        Kind::Sqlite => raw_sqlite(backend.sqlite_path.clone().context("sqlite path")?, plan).await?,
    };

    let serve = Serve::start(&backend.target, plan.pool_size)?;
    let http = client(workers)?;
    serve.ready(&http).await?;
    let auth = format!("Bearer {}", serve.token);
    let list_url = format!("{}/api/tasks", serve.base);
    let get = {
        let (http, auth, url) = (http.clone(), auth.clone(), list_url.clone());
        drive(workers, plan.http_duration, move |_, _| {
            let request = http.get(&url).header("authorization", &auth);
            async move {
                let response = request.send().await?.error_for_status()?;
                response.bytes().await?;
                Ok(())
            }
        })
        .await
    };
    let post = {
        let (http, auth, url) = (http.clone(), auth.clone(), list_url.clone());
        drive(workers, plan.http_duration, move |w, i| {
            let body = json!({"title": format!("http task {w}-{i}"), "repository": "bench/http", "priority": "low"});
            let request = http.post(&url).header("authorization", &auth).json(&body);
            async move {
                let response = request.send().await?.error_for_status()?;
                response.bytes().await?;
                Ok(())
            }
        })
        .await
    };
    serve.stop()?;

    let db_conns = match backend.kind {
        Kind::Postgres => format!("{} PostgreSQL connections", plan.pool_size),
        Kind::Sqlite => "1 writer, one reader per worker thread".to_owned(),
    };
    let mut table = Table::new(
        format!("4. serve at {workers} connections vs the raw query ({db_conns}) — {}", backend.label),
        &["request", "ok", "errors", "throughput", "median", "p99", "raw throughput", "serve / raw"],
    );
    for (label, mut load, raw) in [("GET /api/tasks (50, full)", get, raw_get), ("POST /api/tasks", post, raw_post)] {
        table.row(vec![
            label.into(),
            load.ok.to_string(),
            load.errors.to_string(),
            per_second(load.ok, load.elapsed),
            ms(load.samples.median()),
            ms(load.samples.p99()),
            per_second(raw.ok, raw.elapsed),
            ratio(load.throughput(), raw.throughput()),
        ]);
    }
    Ok(table)
}

/// The list query and the create transaction on a pool of `plan.pool_size` connections, from as many
/// concurrent workers as the HTTP load has connections.
async fn raw_postgres(url: &str, plan: &Plan) -> Result<(Load, Load)> {
    let mut floors = Vec::new();
    for _ in 0..plan.pool_size {
        floors.push(PgFloor::connect(url).await?);
    }
    let pool =
        Arc::new(FloorPool { permits: tokio::sync::Semaphore::new(floors.len()), idle: std::sync::Mutex::new(floors) });
    let get = {
        let pool = pool.clone();
        drive(plan.http_connections, plan.http_duration, move |_, _| {
            let pool = pool.clone();
            async move {
                let (permit, floor) = pool.take().await?;
                let outcome = floor.list(50).await.map(|_| ());
                pool.give_back(floor, permit);
                outcome
            }
        })
        .await
    };
    let post = {
        let pool = pool.clone();
        drive(plan.http_connections, plan.http_duration, move |w, i| {
            let pool = pool.clone();
            async move {
                let (permit, mut floor) = pool.take().await?;
                let outcome = floor
                    .create(&format!("raw task {w}-{i}"), crate::tools::REPOSITORY, "bench@example.com")
                    .await
                    .map(|_| ());
                pool.give_back(floor, permit);
                outcome
            }
        })
        .await
    };
    Ok((get, post))
}

/// Connections handed out one caller at a time, waiting (not spinning) when all are in use.
struct FloorPool {
    permits: tokio::sync::Semaphore,
    idle: std::sync::Mutex<Vec<PgFloor>>,
}

impl FloorPool {
    async fn take(&self) -> Result<(tokio::sync::SemaphorePermit<'_>, PgFloor)> {
        let permit = self.permits.acquire().await?;
        let floor =
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop().context("a permit without a connection")?;
        Ok((permit, floor))
    }

    fn give_back(&self, floor: PgFloor, permit: tokio::sync::SemaphorePermit<'_>) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(floor);
        drop(permit);
    }
}

/// SQLite: reads on one connection per worker thread (the blocking pool's threads), writes through
/// one connection at a time (SQLite has one writer).
async fn raw_sqlite(path: std::path::PathBuf, plan: &Plan) -> Result<(Load, Load)> {
    let readers = plan.pool_size.clamp(1, 4);
    let mut floors = Vec::new();
    for _ in 0..readers {
        floors.push(std::sync::Mutex::new(SqliteFloor::open(&path)?));
    }
    let floors = Arc::new(floors);
    let writer = Arc::new(std::sync::Mutex::new(SqliteFloor::open(&path)?));
    let get = {
        let floors = floors.clone();
        drive(plan.http_connections, plan.http_duration, move |w, _| {
            let floors = floors.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let floor = floors[w % floors.len()].lock().unwrap_or_else(|e| e.into_inner());
                    floor.list(50).map(|_| ())
                })
                .await?
            }
        })
        .await
    };
    let post = {
        let writer = writer.clone();
        drive(plan.http_connections, plan.http_duration, move |w, i| {
            let writer = writer.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let mut floor = writer.lock().unwrap_or_else(|e| e.into_inner());
                    floor
                        .create(&format!("raw task {w}-{i}"), crate::tools::REPOSITORY, "bench@example.com")
                        .map(|_| ())
                })
                .await?
            }
        })
        .await
    };
    Ok((get, post))
}
