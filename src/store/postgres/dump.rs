//! Export and import of the PostgreSQL store: rows streamed from one repeatable-read snapshot, and
//! loaded in one transaction, a batch of rows per statement (`unnest` of one typed array per column).

use chrono::{DateTime, Utc};
use futures::{StreamExt, pin_mut};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::outbox::EVENT_ORDER_LOCK;
use super::{Fail, Inner, Outcome};
use crate::error::{Error, Result};
use crate::store::NumberedRow;
use crate::store::dump::{self, CONTENT_TABLES, DumpRow, Kind, TABLES, Table};

/// Rows per INSERT: large enough that round trips do not dominate, small enough to bound memory.
const BATCH: usize = 500;

pub(super) async fn export(inner: &Inner, rows: mpsc::Sender<DumpRow>) -> Result<u64> {
    export_rows(inner, rows).await.map_err(|fail| inner.error(fail))
}

async fn export_rows(inner: &Inner, rows: mpsc::Sender<DumpRow>) -> Outcome<u64> {
    let mut client = inner.conn().await?;
    // One snapshot for every table: a write committed during the export is either wholly in it or not.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let mut sent = 0u64;
    for table in TABLES {
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let sql = format!("SELECT {} FROM {} ORDER BY {}", columns.join(", "), table.name, table.postgres_order);
        let no_params: [&(dyn ToSql + Sync); 0] = [];
        let stream = tx.query_raw(&sql, no_params).await?;
        pin_mut!(stream);
        while let Some(row) = stream.next().await {
            let row = row?;
            let mut values = Vec::with_capacity(table.columns.len());
            for (i, column) in table.columns.iter().enumerate() {
                values.push(read_value(&row, i, column.kind)?);
            }
            if rows.send(DumpRow { table, values }).await.is_err() {
                return Err(Fail::Store(Error::Internal("the export's reader stopped".into())));
            }
            sent += 1;
        }
    }
    tx.commit().await?;
    Ok(sent)
}

fn read_value(row: &tokio_postgres::Row, i: usize, kind: Kind) -> Outcome<Value> {
    Ok(match kind {
        Kind::Uuid => row.try_get::<_, Option<Uuid>>(i)?.map_or(Value::Null, |id| Value::String(id.to_string())),
        Kind::Text => row.try_get::<_, Option<String>>(i)?.map_or(Value::Null, Value::String),
        Kind::Int => row.try_get::<_, Option<i64>>(i)?.map_or(Value::Null, Value::from),
        Kind::Time => row.try_get::<_, Option<DateTime<Utc>>>(i)?.map_or(Value::Null, dump::time_value),
        Kind::Json => row.try_get::<_, Option<Value>>(i)?.unwrap_or(Value::Null),
    })
}

pub(super) async fn import(inner: &Inner, rows: mpsc::Receiver<Result<NumberedRow>>, force: bool) -> Result<u64> {
    import_rows(inner, rows, force).await.map_err(|fail| inner.error(fail))
}

async fn import_rows(inner: &Inner, mut rows: mpsc::Receiver<Result<NumberedRow>>, force: bool) -> Outcome<u64> {
    let mut client = inner.conn().await?;
    let tx = client.transaction().await?;
    // Writers of events wait for this transaction: the imported seqs come before any new one.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENT_ORDER_LOCK]).await?;
    let counts = CONTENT_TABLES.iter().map(|(table, ..)| format!("(SELECT count(*) FROM {table})")).collect::<Vec<_>>();
    let row = tx.query_one(&format!("SELECT {}", counts.join(", ")), &[]).await?;
    let counts: Vec<i64> = (0..CONTENT_TABLES.len()).map(|i| row.get::<_, i64>(i)).collect();
    if let Some(found) = dump::describe_contents(&counts).filter(|_| !force) {
        return Err(Fail::Store(dump::target_not_empty(&found)));
    }
    let keep_seqs = dump::keeps_event_seqs(counts[1]);
    let own_keys: i64 = tx.query_one("SELECT count(*) FROM key_series", &[]).await?.try_get(0)?;
    let mut batch: Vec<NumberedRow> = Vec::with_capacity(BATCH);
    let mut loaded = 0u64;
    while let Some(next) = rows.recv().await {
        // An error from the reader (a damaged line) drops the transaction: nothing is written.
        let mut next = next?;
        if own_keys > 0 {
            let Some(row) = dump::without_keys(next.row) else { continue };
            next.row = row;
        }
        let same_table = batch.first().is_none_or(|first| std::ptr::eq(first.row.table, next.row.table));
        if !same_table || batch.len() == BATCH {
            loaded += write_batch(&tx, &batch, keep_seqs).await?;
            batch.clear();
        }
        batch.push(next);
    }
    loaded += write_batch(&tx, &batch, keep_seqs).await?;
    if own_keys > 0 {
        super::task_keys::number_pending(&tx).await?;
    }
    // New events continue after the highest imported seq.
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('events', 'seq'), m) FROM (SELECT max(seq) AS m FROM events) s \
         WHERE m IS NOT NULL",
        &[],
    )
    .await?;
    // New key series are numbered after the imported ones.
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('key_series', 'id'), m) FROM (SELECT max(id) AS m FROM key_series) s \
         WHERE m > 0",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(loaded)
}

/// Writes rows of one table in one statement; a refusal names the lines of the batch.
async fn write_batch(tx: &tokio_postgres::Transaction<'_>, batch: &[NumberedRow], keep_seqs: bool) -> Outcome<u64> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else { return Ok(0) };
    let table = first.row.table;
    // A row the database refuses is named by its lines; a server that stops answering is an outage,
    // reported as the store reports every other.
    let refused = |e: tokio_postgres::Error| match e.as_db_error() {
        Some(db) if !super::is_unavailable(db.code()) => {
            let lines = if first.line == last.line {
                first.line.to_string()
            } else {
                format!("{}–{}", first.line, last.line)
            };
            Fail::Store(Error::invalid(
                format!("lines {lines}"),
                format!("the target refused these {} rows: {}", table.name, db.message()),
            ))
        }
        _ => Fail::Pg(e),
    };
    if table.singleton {
        for numbered in batch {
            let pruned = numbered.row.values[0].as_i64();
            tx.execute("UPDATE event_log_state SET pruned_through = GREATEST(pruned_through, $1)", &[&pruned])
                .await
                .map_err(refused)?;
        }
        return Ok(batch.len() as u64);
    }
    let columns = written_columns(table, keep_seqs);
    let arrays: Vec<ColumnArray> =
        columns.iter().map(|&i| ColumnArray::collect(table.columns[i].kind, batch, i)).collect::<Result<_>>()?;
    let params: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(ColumnArray::as_param).collect();
    tx.execute(&insert_sql(table, &columns), &params).await.map_err(refused)?;
    Ok(batch.len() as u64)
}

/// The indexes of the columns an insert writes: all of them, but an event's seq only when kept.
fn written_columns(table: &Table, keep_seqs: bool) -> Vec<usize> {
    let renumbered = |name: &str| table.name == "events" && name == "seq" && !keep_seqs;
    (0..table.columns.len()).filter(|&i| !renumbered(table.columns[i].name)).collect()
}

fn insert_sql(table: &Table, written: &[usize]) -> String {
    let columns: Vec<&str> = written.iter().map(|&i| table.columns[i].name).collect();
    let arrays: Vec<String> = written
        .iter()
        .enumerate()
        .map(|(i, &column)| {
            let sql_type = match table.columns[column].kind {
                Kind::Uuid => "uuid",
                Kind::Text => "text",
                Kind::Int => "bigint",
                Kind::Time => "timestamptz",
                Kind::Json => "jsonb",
            };
            format!("${}::{sql_type}[]", i + 1)
        })
        .collect();
    // events.seq is an identity column: imported seqs, when kept, override it.
    let overriding = if columns.contains(&"seq") { " OVERRIDING SYSTEM VALUE" } else { "" };
    format!(
        "INSERT INTO {} ({}){overriding} SELECT * FROM unnest({})",
        table.name,
        columns.join(", "),
        arrays.join(", ")
    )
}

/// One column of a batch, as the typed array its `unnest` parameter takes.
enum ColumnArray {
    Uuid(Vec<Option<Uuid>>),
    Text(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Time(Vec<Option<DateTime<Utc>>>),
    Json(Vec<Option<Value>>),
}

impl ColumnArray {
    fn collect(kind: Kind, batch: &[NumberedRow], i: usize) -> Result<Self> {
        let values = batch.iter().map(|numbered| &numbered.row.values[i]);
        // The values were checked against their kinds when the line was read.
        let bad = || Error::Internal("a dump value of the wrong kind reached the store".into());
        Ok(match kind {
            Kind::Uuid => Self::Uuid(
                values
                    .map(|v| v.as_str().map(Uuid::parse_str).transpose().map_err(|_| bad()))
                    .collect::<Result<_>>()?,
            ),
            Kind::Text => Self::Text(values.map(|v| v.as_str().map(str::to_owned)).collect()),
            Kind::Int => Self::Int(values.map(Value::as_i64).collect()),
            Kind::Time => Self::Time(
                values
                    .map(|v| v.as_str().map(dump::parse_time).transpose().map_err(|_| bad()))
                    .collect::<Result<_>>()?,
            ),
            Kind::Json => Self::Json(values.map(|v| (!v.is_null()).then(|| v.clone())).collect()),
        })
    }

    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Uuid(v) => v,
            Self::Text(v) => v,
            Self::Int(v) => v,
            Self::Time(v) => v,
            Self::Json(v) => v,
        }
    }
}
