//! Commit detection for the live feed: a background thread, started by the first `watch_commits` and
//! stopped when the last receiver is gone, that notices commits made by any process on the file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::watch;

use super::conn;
use super::ops::LATEST_SEQ;

/// How often the file is checked. `PRAGMA data_version` (a prepared statement) reads one counter, so
/// 200 checks a second cost about 0.2 % of a core, and a commit made by another process reaches the
/// feed within 5 ms (it was 20 ms: the commit → SSE latency of SQLite, measured by the bench).
const POLL_EVERY: Duration = Duration::from_millis(5);

#[derive(Default)]
pub(super) struct CommitWatch {
    /// Kept across poller runs so the last seq seen is not forgotten.
    sender: Option<watch::Sender<i64>>,
    polling: bool,
}

impl CommitWatch {
    /// Tells receivers about a commit this process made (sooner than the poller would).
    pub(super) fn committed(state: &Mutex<CommitWatch>, seq: i64) {
        let guard = state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = &guard.sender {
            sender.send_if_modified(|latest| {
                let newer = seq > *latest;
                if newer {
                    *latest = seq;
                }
                newer
            });
        }
    }

    /// A new receiver; starts the poller if it is not running.
    pub(super) fn subscribe(state: &Arc<Mutex<CommitWatch>>, path: &std::path::Path) -> watch::Receiver<i64> {
        let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
        let sender = guard.sender.get_or_insert_with(|| watch::channel(0).0).clone();
        let receiver = sender.subscribe();
        if !guard.polling {
            guard.polling = true;
            let state = state.clone();
            let path = path.to_path_buf();
            let spawned = std::thread::Builder::new()
                .name("sqlite-commit-watch".into())
                .spawn(move || poll(&state, &path, &sender));
            if let Err(err) = spawned {
                // Receivers then hear only of this process's own commits; the feed still works, more slowly
                // for other processes' changes (SSE resumes from the log). Tried again by the next subscriber.
                tracing::warn!("cannot start the SQLite commit watcher: {err}");
                guard.polling = false;
            }
        }
        receiver
    }
}

fn poll(state: &Mutex<CommitWatch>, path: &std::path::Path, sender: &watch::Sender<i64>) {
    let mut connection: Option<Connection> = None;
    let mut last_data_version: Option<i64> = None;
    loop {
        {
            // Checked under the lock `subscribe` takes, so a subscriber arriving now either is counted
            // here or finds `polling` false and starts a new poller.
            let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
            if sender.receiver_count() == 0 {
                guard.polling = false;
                return;
            }
        }
        if connection.is_none() {
            // Only an existing file is watched: the store creates it (owner-only) on first use.
            if path.exists() {
                connection = conn::connect(path).ok();
            }
        }
        if let Some(db) = &connection {
            match check(db, &mut last_data_version) {
                Ok(Some(seq)) => {
                    sender.send_if_modified(|latest| {
                        let newer = seq > *latest;
                        if newer {
                            *latest = seq;
                        }
                        newer
                    });
                }
                Ok(None) => {}
                Err(err) if conn::is_busy(&err) => {}
                Err(err) => {
                    tracing::debug!("SQLite commit watcher: {err}; reconnecting");
                    connection = None;
                    last_data_version = None;
                }
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// The latest seq when the file changed since the last check (any connection, any process).
fn check(db: &Connection, last_data_version: &mut Option<i64>) -> rusqlite::Result<Option<i64>> {
    let data_version: i64 = db.prepare_cached("PRAGMA data_version")?.query_row([], |row| row.get(0))?;
    if *last_data_version == Some(data_version) {
        return Ok(None);
    }
    // Before the first migration there is no `sqlite_sequence` yet: nothing to report.
    let latest = match db.prepare_cached(LATEST_SEQ).and_then(|mut s| s.query_row([], |row| row.get::<_, i64>(0))) {
        Ok(latest) => latest,
        Err(rusqlite::Error::SqliteFailure(_, Some(msg))) if msg.contains("no such table") => 0,
        Err(err) => return Err(err),
    };
    *last_data_version = Some(data_version);
    Ok(Some(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polling(state: &Mutex<CommitWatch>) -> bool {
        state.lock().unwrap().polling
    }

    /// Whether the poller reaches `expected` within two seconds (a loaded machine may be slow to run it).
    fn settles_to(state: &Mutex<CommitWatch>, expected: bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while polling(state) != expected && std::time::Instant::now() < deadline {
            std::thread::sleep(POLL_EVERY);
        }
        polling(state) == expected
    }

    #[test]
    fn the_poller_stops_when_the_last_receiver_is_dropped_and_restarts_for_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.db");
        let state = Arc::new(Mutex::new(CommitWatch::default()));
        let first = CommitWatch::subscribe(&state, &path);
        let second = CommitWatch::subscribe(&state, &path);
        assert!(polling(&state));
        drop(first);
        std::thread::sleep(POLL_EVERY * 4);
        assert!(polling(&state), "one receiver is left");
        drop(second);
        assert!(settles_to(&state, false), "no receiver is left");
        CommitWatch::committed(&state, 7);
        let third = CommitWatch::subscribe(&state, &path);
        assert!(polling(&state));
        assert_eq!(*third.borrow(), 7, "the last seq known is kept");
        assert!(!path.exists(), "the watcher never creates the file");
    }
}
