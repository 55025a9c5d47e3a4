//! The commit watcher: one background task per store, started on the first `watch_commits`, holding a
//! dedicated connection (not from the pool: a LISTEN belongs to its session) that LISTENs on the
//! outbox channel and forwards each announced seq. When the connection drops it reconnects with
//! backoff and reads the current max(seq), so a commit made while it was away is still reported.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::task::AbortOnDropHandle;

use super::outbox::CHANNEL;
use super::{Inner, Outcome};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts the watcher once. Outside a tokio runtime there is nothing to run it on: the receiver
/// then only sees this process's own commits, and the next call inside a runtime tries again.
pub(super) fn start(inner: &Arc<Inner>) {
    if inner.listener_started.swap(true, Ordering::AcqRel) {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(run(inner.clone()));
        }
        Err(_) => {
            inner.listener_started.store(false, Ordering::Release);
            tracing::warn!("watch_commits called outside a tokio runtime: commits by other processes are not watched");
        }
    }
}

async fn run(inner: Arc<Inner>) {
    let stop = inner.stop.clone();
    let mut backoff = MIN_BACKOFF;
    // One warning per outage, not one per attempt.
    let mut outage = false;
    loop {
        let mut listening = false;
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = listen(&inner, &mut listening) => outcome,
        };
        if listening {
            backoff = MIN_BACKOFF;
            outage = false;
        }
        match outcome {
            Ok(()) => tracing::warn!(store = %inner.location, "the LISTEN connection closed; reconnecting"),
            Err(fail) => {
                let error = inner.error(fail);
                if outage {
                    tracing::debug!(store = %inner.location, "watching commits: {error}");
                } else {
                    tracing::warn!(store = %inner.location, "watching commits failed, retrying: {error}");
                    outage = true;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Listens until the connection drops. `listening` turns true once LISTEN is in place.
async fn listen(inner: &Inner, listening: &mut bool) -> Outcome<()> {
    inner.ensure_migrated().await?;
    let (client, mut connection) = inner.config.connect(NoTls).await?;
    let (seqs, mut announced) = mpsc::unbounded_channel::<String>();
    // The connection only delivers notifications to whoever polls it: a task of its own does, until
    // the connection ends (then `announced` closes) or this function returns (then it is aborted).
    let _driver = AbortOnDropHandle::new(tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if seqs.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("the LISTEN connection failed: {e}");
                    break;
                }
            }
        }
    }));
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Anything committed before the LISTEN took effect (or while disconnected) is covered here.
    let latest: i64 = client.query_one("SELECT coalesce(max(seq), 0) FROM events", &[]).await?.try_get(0)?;
    *listening = true;
    inner.committed(latest);
    while let Some(payload) = announced.recv().await {
        match payload.parse::<i64>() {
            Ok(seq) => inner.committed(seq),
            Err(_) => tracing::debug!("ignoring a notification that is not a seq: {payload:?}"),
        }
    }
    Ok(())
}
