//! The outbox: appending an event inside a change's transaction, reading the log, relaying unpublished
//! events to a sink, and pruning old ones.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::Json;

use super::rows::{self, EVENT_COLUMNS};
use super::{Inner, Outcome};
use crate::domain::{Event, Record};
use crate::store::payload::Payload;
use crate::store::{EventBounds, EventSink};

/// The advisory lock key that makes seq order commit order ("tmcp-evt" in ASCII).
pub(super) const EVENT_ORDER_LOCK: i64 = 0x746d_6370_2d65_7674;

/// The channel every commit is announced on; the payload is the event's seq.
macro_rules! channel {
    () => {
        "task_mcp_events"
    };
}
pub(super) const CHANNEL: &str = channel!();

/// Appends the event for a change, as the last write of its transaction; returns its seq.
///
/// The transaction-scoped advisory lock is taken in the same statement, before the identity default
/// draws the seq (the insert's row is built from the lock's row), and held until commit. So a
/// transaction that draws a seq commits before any other can draw the next one: seq order is commit
/// order, and a reader that has seen seq N has seen every committed event below N. The NOTIFY is
/// delivered at commit, in commit order.
pub(super) async fn append(tx: &Transaction<'_>, record: &Record) -> Outcome<i64> {
    let statement = tx
        .prepare_cached(concat!(
            "WITH ordered AS (SELECT pg_advisory_xact_lock($1)), ",
            "appended AS (",
            "INSERT INTO events (event_type, task_id, actor, task, assignee_id, previous_assignee_id, repository) ",
            "SELECT $2::text, $3::uuid, $4::text, $5::jsonb, $6::uuid, $7::uuid, $8::text FROM ordered RETURNING seq) ",
            "SELECT seq, pg_notify('",
            channel!(),
            "', seq::text) FROM appended"
        ))
        .await?;
    let task = &record.task;
    let row = tx
        .query_one(
            &statement,
            &[
                &EVENT_ORDER_LOCK,
                &record.kind.as_str(),
                &task.id,
                &record.actor,
                &Json(Payload::of(task)),
                &task.assignee_id,
                &record.previous_assignee_id,
                &task.repository,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

pub(super) async fn events_after(client: deadpool_postgres::Object, after_seq: i64, limit: u32) -> Outcome<Vec<Event>> {
    let statement = client
        .prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"))
        .await?;
    client.query(&statement, &[&after_seq, &i64::from(limit)]).await?.iter().map(rows::event).collect()
}

/// The oldest seq kept, and the latest written. With every row pruned, the identity sequence still
/// remembers the latest (a seq drawn by a transaction that then rolled back may show there: the
/// latest is a bound, and nothing will ever be written at or below it).
pub(super) async fn bounds(inner: &Inner) -> Outcome<EventBounds> {
    let client = inner.conn().await?;
    let statement = client
        .prepare_cached(
            "SELECT min(seq), coalesce(max(seq), \
                 pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0), \
                 coalesce((SELECT pruned_through FROM event_log_state), 0) \
             FROM events",
        )
        .await?;
    let row = client.query_one(&statement, &[]).await?;
    Ok(EventBounds { oldest: row.try_get(0)?, latest: row.try_get(1)?, pruned_through: row.try_get(2)? })
}

/// Claims the oldest unpublished events that no other relay holds (`SKIP LOCKED`: relays never wait
/// on each other and never take the same row), hands them to the sink in seq order, and marks them
/// published in the same transaction. A sink error rolls back: they stay pending.
///
/// The mark's commit does not wait for the disk (`synchronous_commit` off for this transaction only):
/// a mark lost in a crash only means the event is published again, which consumers drop by `seq`;
/// waiting would put a second disk flush behind every change (the relay runs after each commit).
pub(super) async fn relay_pending(inner: &Inner, limit: u32, sink: &dyn EventSink) -> Outcome<usize> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    let claim = tx
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"
        ))
        .await?;
    let no_wait = tx.prepare_cached("SELECT set_config('synchronous_commit', 'off', true)").await?;
    // Pipelined: the setting and the claim go out together.
    let (_, claimed) =
        futures::future::try_join(tx.query_one(&no_wait, &[]), tx.query(&claim, &[&i64::from(limit)])).await?;
    let events = claimed.iter().map(rows::event).collect::<Outcome<Vec<_>>>()?;
    if events.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    if let Err(e) = sink.publish(&events).await {
        tx.rollback().await?;
        return Err(e.into());
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let mark = tx.prepare_cached("UPDATE events SET published_at = now() WHERE seq = ANY($1)").await?;
    tx.execute(&mark, &[&seqs]).await?;
    tx.commit().await?;
    Ok(events.len())
}

/// Deletes at most `batch` old events, oldest first, skipping rows a relay holds right now, and
/// raises the pruning watermark to the largest seq deleted, in the same statement.
pub(super) async fn prune(inner: &Inner, before: DateTime<Utc>, include_unpublished: bool, batch: u32) -> Outcome<u64> {
    let client = inner.conn().await?;
    let statement = client
        .prepare_cached(
            "WITH doomed AS ( \
                 SELECT seq FROM events \
                 WHERE created_at < $1 AND ($2 OR published_at IS NOT NULL) \
                 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED), \
             gone AS (DELETE FROM events e USING doomed WHERE e.seq = doomed.seq RETURNING e.seq), \
             mark AS (UPDATE event_log_state SET pruned_through = greatest(pruned_through, (SELECT max(seq) FROM gone)) \
                      WHERE EXISTS (SELECT 1 FROM gone)) \
             SELECT count(*) FROM gone",
        )
        .await?;
    let deleted: i64 =
        client.query_one(&statement, &[&before, &include_unpublished, &i64::from(batch)]).await?.try_get(0)?;
    Ok(deleted.max(0) as u64)
}
