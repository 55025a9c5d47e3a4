//! What only the SQLite store must prove: many store instances (as separate processes would be) sharing
//! one file, owner-only files, migrations racing on a new file, commits seen across instances, a lock
//! held by another process, and the behaviour of the store on its own file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use task_mcp::domain::{Email, PageCursor, RepoName, SearchText, Status, TaskPatch, Title, UserKey};
use task_mcp::error::Error;
use task_mcp::store::sqlite::SqliteStore;
use task_mcp::store::{NewTask, Store, TaskQuery, TaskUpdate};
use uuid::Uuid;

use crate::support::sqlite::TestFile;

fn store_at(path: &Path) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(path).expect("open sqlite store"))
}

fn new_task(title: &str) -> NewTask {
    NewTask {
        title: Title::parse("title", title).unwrap(),
        description: None,
        status: Status::NotStarted,
        priority: Default::default(),
        complexity: Default::default(),
        assignee: None,
        repository: None,
        actor: "tester@example.com".into(),
        idempotency_key: None,
        owner: "tester@example.com".into(),
        parent_id: None,
        blocked_by: Vec::new(),
    }
}

fn email(raw: &str) -> UserKey {
    UserKey::Email(Email::parse("email", raw).unwrap())
}

fn page(limit: u32) -> TaskQuery {
    TaskQuery { limit, ..TaskQuery::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_store_instances_writing_one_file_at_once_lose_no_update_and_log_every_event_in_order() {
    let file = TestFile::create();
    let path = file.path.clone();
    // Four instances: four sets of connections, as four processes would have.
    let stores: Vec<Arc<SqliteStore>> = (0..4).map(|_| store_at(&path)).collect();
    let task = stores[0].create_task(new_task("counter")).await.unwrap().task;

    const WORKERS_PER_STORE: usize = 3;
    const UPDATES_PER_WORKER: usize = 15;
    let mut workers = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for w in 0..WORKERS_PER_STORE {
            let store = store.clone();
            workers.push(tokio::spawn(async move {
                let mut conflicts = 0;
                for i in 0..UPDATES_PER_WORKER {
                    loop {
                        let current = store.get_task(task.id).await.expect("read").expect("task exists");
                        let update = TaskUpdate {
                            task_id: task.id,
                            patch: TaskPatch {
                                title: Some(
                                    Title::parse("title", &format!("store {s} worker {w} update {i}")).unwrap(),
                                ),
                                ..TaskPatch::default()
                            },
                            actor: format!("worker-{s}-{w}"),
                            comment: None,
                            expected_version: Some(current.version),
                        };
                        match store.update_task(update).await {
                            Ok(_) => break,
                            Err(Error::Conflict { .. }) => conflicts += 1,
                            Err(other) => panic!("an update failed: {other:?}"),
                        }
                    }
                }
                conflicts
            }));
        }
    }
    let mut conflicts = 0;
    for worker in workers {
        conflicts += worker.await.expect("worker");
    }

    let total = 4 * WORKERS_PER_STORE * UPDATES_PER_WORKER;
    let last = stores[1].get_task(task.id).await.unwrap().unwrap();
    assert_eq!(last.version, 1 + total as i64, "every update applied exactly once ({conflicts} conflicts retried)");
    assert_eq!(stores[2].list_history(task.id).await.unwrap().len(), 1 + total, "created + one row per update");

    let events = stores[3].events_after(0, 10_000).await.unwrap();
    assert_eq!(events.len(), 1 + total, "one event per change");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as i64 + 1, "seqs are contiguous and in order");
        // Seq order is commit order: the task in event N is at version N.
        assert_eq!(event.task.version, i as i64 + 1);
    }
    assert_eq!(stores[0].event_bounds().await.unwrap().latest, 1 + total as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_from_several_instances_all_succeed() {
    let file = TestFile::create();
    let path = file.path.clone();
    let stores: Vec<Arc<SqliteStore>> = (0..4).map(|_| store_at(&path)).collect();
    let mut jobs = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for i in 0..25 {
            let store = store.clone();
            jobs.push(tokio::spawn(async move {
                let mut new = new_task(&format!("task {s}-{i}"));
                new.assignee = Some(email(&format!("user{}@example.com", i % 3)));
                new.repository = Some(RepoName::parse("repository", &format!("repo-{}", i % 2)).unwrap());
                store.create_task(new).await
            }));
        }
    }
    for job in jobs {
        job.await.unwrap().expect("create succeeds under contention");
    }
    assert_eq!(stores[0].list_tasks(&page(200)).await.unwrap().len(), 100);
    assert_eq!(stores[0].list_users().await.unwrap().len(), 3, "each email created one user");
    let repos = stores[0].list_repositories().await.unwrap();
    assert_eq!(repos.iter().map(|r| r.open_task_count).collect::<Vec<_>>(), vec![52, 48], "13 and 12 per instance");
    let events = stores[1].events_after(0, 1000).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_file_and_its_directory_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let file = TestFile::create();
    let dir = file.dir.path().join("data").join("task-mcp");
    let path = dir.join("tasks.db");
    let store = store_at(&path);
    assert!(!dir.exists(), "opening touches nothing");
    store.create_task(new_task("first")).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the directory");
    assert_eq!(mode(dir.parent().unwrap()), 0o700, "a parent it had to create");
    assert_eq!(mode(&path), 0o600, "the file");
    let wal = dir.join("tasks.db-wal");
    assert!(wal.exists(), "WAL mode is on");
    assert_eq!(mode(&wal), 0o600, "the write-ahead log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_instances_migrating_a_new_file_at_once_all_succeed() {
    for _ in 0..3 {
        let file = TestFile::create();
        let path = file.path.clone();
        let stores: Vec<Arc<SqliteStore>> = (0..16).map(|_| store_at(&path)).collect();
        let jobs: Vec<_> = stores.iter().cloned().map(|s| tokio::spawn(async move { s.migrate().await })).collect();
        let mut versions = Vec::new();
        for job in jobs {
            versions.push(job.await.unwrap().expect("migration succeeds"));
        }
        assert!(versions.iter().all(|v| *v == versions[0] && *v >= 1), "{versions:?}");
        assert_eq!(stores[3].schema_version().await.unwrap(), versions[0]);
        // And every instance can write right after.
        for store in &stores {
            store.create_task(new_task("after migration")).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_commits_sees_a_commit_made_through_another_store_instance() {
    let file = TestFile::create();
    let path = file.path.clone();
    let watcher = store_at(&path);
    let writer = store_at(&path);
    writer.migrate().await.unwrap();
    let mut commits = watcher.watch_commits();
    // Let the poller take its first look at the file.
    tokio::time::sleep(Duration::from_millis(60)).await;
    commits.borrow_and_update();

    writer.create_task(new_task("seen elsewhere")).await.unwrap();
    // A generous bound against a hang; how fast the poller notices is measured by the benchmark.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            commits.changed().await.expect("watcher alive");
            if *commits.borrow_and_update() >= 1 {
                break;
            }
        }
    })
    .await
    .expect("the commit is noticed");

    // A commit through the same instance is announced too.
    watcher.create_task(new_task("seen here")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), commits.wait_for(|seq| *seq >= 2)).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_a_lock_held_longer_than_the_busy_timeout_instead_of_failing() {
    let file = TestFile::create();
    let path = file.path.clone();
    let store = store_at(&path);
    store.migrate().await.unwrap();
    // Another "process" holds the write lock for longer than SQLite's own 5 s wait.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder_path = path.clone();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&holder_path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(5_600));
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let started = Instant::now();
    let created = store.create_task(new_task("patient")).await;
    holder.join().unwrap();
    assert!(created.is_ok(), "{created:?}");
    assert!(started.elapsed() >= Duration::from_secs(5), "it did wait for the lock");
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_is_unavailable_and_names_the_path() {
    let file = TestFile::create();
    let blocker = file.dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    let path = blocker.join("tasks.db");
    let store = store_at(&path);
    match store.list_tasks(&page(10)).await {
        Err(Error::Unavailable(message)) => {
            assert!(message.contains(&path.display().to_string()), "{message}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // Not a database at all.
    let junk = file.dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'j'; 8192]).unwrap();
    match store_at(&junk).get_task(Uuid::new_v4()).await {
        Err(Error::Unavailable(message)) => assert!(message.contains("junk.db"), "{message}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn keyset_pages_break_ties_on_updated_at_by_id_as_postgres_compares_uuids() {
    let file = TestFile::create();
    let path = file.path.clone();
    let store = store_at(&path);
    for i in 0..40 {
        store.create_task(new_task(&format!("tie {i}"))).await.unwrap();
    }
    // Give every task the same updated_at, so only the id orders them, and random (v4) ids, whose first
    // digits run over 0-9 and a-f: text order must match the byte order PostgreSQL uses for uuids.
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    let tx = conn.transaction().unwrap();
    let old_ids: Vec<String> =
        tx.prepare("SELECT id FROM tasks").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    let mut ids = Vec::new();
    for old in old_ids {
        let id = Uuid::new_v4();
        tx.execute("UPDATE tasks SET id = ?1, updated_at = 1700000000000000 WHERE id = ?2", [id.to_string(), old])
            .unwrap();
        ids.push(id);
    }
    tx.commit().unwrap();
    drop(conn);
    let mut expected = ids.clone();
    expected.sort(); // Uuid's Ord compares bytes, as PostgreSQL does.
    expected.reverse();

    let mut seen = Vec::new();
    let mut query = page(7);
    loop {
        let tasks = store.list_tasks(&query).await.unwrap();
        if tasks.is_empty() {
            break;
        }
        query.after = Some(PageCursor::after(tasks.last().unwrap()));
        seen.extend(tasks.iter().map(|t| t.id));
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn search_is_literal_and_ignores_case_beyond_ascii() {
    let file = TestFile::create();
    let store = store_at(&file.path);
    let mut accented = new_task("Réviser l'ÉCOLE");
    accented.description = Some(task_mcp::domain::Description::parse("description", "Ünïcode body").unwrap());
    store.create_task(accented).await.unwrap();
    store.create_task(new_task("50% off_sale")).await.unwrap();
    store.create_task(new_task("500 offXsale")).await.unwrap();
    let search = |text: &str| TaskQuery { query: Some(SearchText::parse("query", text).unwrap()), ..page(50) };
    let titles = |tasks: Vec<task_mcp::domain::Task>| tasks.into_iter().map(|t| t.title).collect::<Vec<_>>();
    assert_eq!(titles(store.list_tasks(&search("école")).await.unwrap()), vec!["Réviser l'ÉCOLE"]);
    assert_eq!(titles(store.list_tasks(&search("üNÏCODE")).await.unwrap()), vec!["Réviser l'ÉCOLE"]);
    assert_eq!(titles(store.list_tasks(&search("0% OFF_")).await.unwrap()), vec!["50% off_sale"]);
    assert!(store.list_tasks(&search("l'école body")).await.unwrap().is_empty(), "title and body are not joined");
}

#[tokio::test]
async fn a_seq_is_never_reused_even_after_the_newest_events_are_pruned() {
    struct Accept;
    #[async_trait::async_trait]
    impl task_mcp::store::EventSink for Accept {
        async fn publish(&self, _: &[task_mcp::domain::Event]) -> task_mcp::error::Result<()> {
            Ok(())
        }
    }
    let file = TestFile::create();
    let store = store_at(&file.path);
    for i in 0..5 {
        store.create_task(new_task(&format!("t{i}"))).await.unwrap();
    }
    assert_eq!(store.relay_pending(10, &Accept).await.unwrap(), 5);
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(store.prune_events(future, false, 10).await.unwrap(), 5);
    assert_eq!(
        store.event_bounds().await.unwrap(),
        task_mcp::store::EventBounds { oldest: None, latest: 5, pruned_through: 5 }
    );
    // A new instance (a restarted process) continues after 5 too.
    let restarted = store_at(&file.path);
    restarted.create_task(new_task("after pruning")).await.unwrap();
    assert_eq!(restarted.events_after(0, 10).await.unwrap()[0].seq, 6);
}

/// Set in the environment of the child processes of
/// `several_processes_writing_one_file_at_once_lose_no_update_and_log_every_event_in_order`:
/// `path|task_id|worker|updates`, or `path|migrate|worker`.
const WORKER_ENV: &str = "TASK_MCP_TEST_SQLITE_WORKER";

/// Updates the task named in `spec` `updates` times, with `expected_version` and retries on conflict.
async fn bump(store: &dyn Store, task_id: Uuid, worker: &str, updates: usize) {
    for i in 0..updates {
        loop {
            let current = store.get_task(task_id).await.expect("read").expect("task exists");
            let update = TaskUpdate {
                task_id,
                patch: TaskPatch {
                    title: Some(Title::parse("title", &format!("{worker} update {i}")).unwrap()),
                    ..TaskPatch::default()
                },
                actor: worker.to_owned(),
                comment: None,
                expected_version: Some(current.version),
            };
            match store.update_task(update).await {
                Ok(_) => break,
                Err(Error::Conflict { .. }) => continue,
                Err(other) => panic!("{worker}: an update failed: {other:?}"),
            }
        }
        // A second kind of write from every process, into the same tables.
        store.create_task(new_task(&format!("{worker} side task {i}"))).await.expect("create");
    }
}

/// Not a test on its own: the body of each child process started by the test below (the test binary
/// runs itself). Without the variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_worker_process_body() {
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let store = store_at(Path::new(parts[0]));
    if parts[1] == "migrate" {
        store.migrate().await.expect("migrate");
        store.create_task(new_task(&format!("{} was here", parts[2]))).await.expect("create after migrating");
        return;
    }
    let task_id = Uuid::parse_str(parts[1]).unwrap();
    bump(store.as_ref(), task_id, parts[2], parts[3].parse().unwrap()).await;
}

/// Starts the test binary again as a worker process running `sqlite_worker_process_body` with `spec`.
fn spawn_worker(spec: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["sqlite_store::sqlite_worker_process_body", "--exact", "--nocapture", "--test-threads=1"])
        .env(WORKER_ENV, spec)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start a worker process")
}

async fn expect_success(child: std::process::Child) {
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(
        output.status.success(),
        "a worker process failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_processes_starting_at_once_on_a_new_file_all_migrate_it_and_write() {
    const PROCESSES: usize = 6;
    let file = TestFile::create();
    let path = file.path.clone();
    let children: Vec<_> =
        (0..PROCESSES).map(|p| spawn_worker(&format!("{}|migrate|process-{p}", path.display()))).collect();
    for child in children {
        expect_success(child).await;
    }
    let store = store_at(&path);
    assert_eq!(store.schema_version().await.unwrap(), store.migrate().await.unwrap());
    assert_eq!(store.list_tasks(&page(50)).await.unwrap().len(), PROCESSES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_processes_writing_one_file_at_once_lose_no_update_and_log_every_event_in_order() {
    const PROCESSES: usize = 4;
    const UPDATES: usize = 15;
    let file = TestFile::create();
    let path = file.path.clone();
    let store = store_at(&path);
    let task = store.create_task(new_task("shared counter")).await.unwrap().task;
    let mut commits = store.watch_commits();

    let children: Vec<_> = (0..PROCESSES)
        .map(|p| spawn_worker(&format!("{}|{}|process-{p}|{UPDATES}", path.display(), task.id)))
        .collect();
    // This process writes at the same time.
    bump(store.as_ref(), task.id, "parent", UPDATES).await;
    for child in children {
        expect_success(child).await;
    }

    let writers = PROCESSES + 1;
    let last = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(last.version, 1 + (writers * UPDATES) as i64, "no update was lost");
    let events = store.events_after(0, 10_000).await.unwrap();
    let expected = 1 + 2 * writers * UPDATES;
    assert_eq!(events.len(), expected, "one event per change");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=expected as i64).collect::<Vec<_>>());
    let versions: Vec<i64> = events.iter().filter(|e| e.task_id == task.id).map(|e| e.task.version).collect();
    assert_eq!(versions, (1..=last.version).collect::<Vec<_>>(), "seq order is commit order");
    // The other processes' commits reached this process's watcher.
    tokio::time::timeout(Duration::from_secs(2), commits.wait_for(|seq| *seq >= expected as i64))
        .await
        .expect("the watcher saw every commit")
        .unwrap();
}

#[tokio::test]
async fn updated_at_never_goes_backwards_when_the_clock_does() {
    let file = TestFile::create();
    let store = store_at(&file.path);
    let task = store.create_task(new_task("from the future")).await.unwrap().task;
    // As if the task was last changed by a process whose clock ran an hour ahead.
    let ahead = chrono::Utc::now() + chrono::Duration::hours(1);
    let conn = rusqlite::Connection::open(&file.path).unwrap();
    conn.execute("UPDATE tasks SET updated_at = ?1", [ahead.timestamp_micros()]).unwrap();
    drop(conn);
    let update = TaskUpdate {
        task_id: task.id,
        patch: TaskPatch { status: Some(Status::InProgress), ..TaskPatch::default() },
        actor: "late@example.com".into(),
        comment: None,
        expected_version: None,
    };
    let updated = store.update_task(update).await.unwrap();
    assert_eq!(updated.updated_at.timestamp_micros(), ahead.timestamp_micros());
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap(), updated);
}
