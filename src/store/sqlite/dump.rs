//! Export and import of the SQLite store: rows read from one read transaction (a WAL snapshot) on a
//! connection of their own, and loaded in one write transaction on the writer. Blocking: run on
//! tokio's blocking pool by the store.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Transaction, TransactionBehavior, params_from_iter};
use serde_json::Value;
use tokio::sync::mpsc;

use super::conn::{Fail, Outcome};
use super::rows;
use crate::error::{Error, Result};
use crate::store::NumberedRow;
use crate::store::dump::{self, CONTENT_TABLES, DumpRow, Kind, TABLES, Table};

pub(super) fn export(conn: &mut Connection, rows: &mpsc::Sender<DumpRow>) -> Outcome<u64> {
    // A deferred transaction's first read fixes the snapshot every later read sees.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let mut sent = 0u64;
    for table in TABLES {
        let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let sql = format!("SELECT {} FROM {} ORDER BY {}", columns.join(", "), table.name, table.sqlite_order);
        let mut statement = tx.prepare(&sql)?;
        let mut found = statement.query([])?;
        while let Some(row) = found.next()? {
            let mut values = Vec::with_capacity(table.columns.len());
            for (i, column) in table.columns.iter().enumerate() {
                values.push(read_value(row.get_ref(i)?, column.kind).map_err(|why| {
                    Fail::App(Error::Internal(format!("{}.{} holds {why}", table.name, column.name)))
                })?);
            }
            if rows.blocking_send(DumpRow { table, values }).is_err() {
                return Err(Fail::App(Error::Internal("the export's reader stopped".into())));
            }
            sent += 1;
        }
    }
    Ok(sent)
}

fn read_value(value: ValueRef<'_>, kind: Kind) -> std::result::Result<Value, String> {
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| "text that is not UTF-8".to_string());
    Ok(match (kind, value) {
        (_, ValueRef::Null) => Value::Null,
        (Kind::Uuid | Kind::Text, ValueRef::Text(bytes)) => Value::String(text(bytes)?),
        (Kind::Int, ValueRef::Integer(n)) => Value::from(n),
        (Kind::Time, ValueRef::Integer(micros)) => {
            dump::time_value(chrono::DateTime::from_timestamp_micros(micros).ok_or(format!("{micros}, not a time"))?)
        }
        (Kind::Json, ValueRef::Text(bytes)) => {
            serde_json::from_slice(bytes).map_err(|e| format!("JSON that does not parse: {e}"))?
        }
        (kind, other) => return Err(format!("a {:?} value where {kind:?} belongs", other.data_type())),
    })
}

pub(super) fn import(
    conn: &mut Connection,
    mut rows: mpsc::Receiver<Result<NumberedRow>>,
    force: bool,
) -> Outcome<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut counts = Vec::new();
    for (table, ..) in CONTENT_TABLES {
        counts.push(tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get::<_, i64>(0))?);
    }
    if let Some(found) = dump::describe_contents(&counts).filter(|_| !force) {
        return Err(Fail::App(dump::target_not_empty(&found)));
    }
    let keep_seqs = dump::keeps_event_seqs(counts[1]);
    let own_keys: i64 = tx.query_row("SELECT count(*) FROM key_series", [], |row| row.get(0))?;
    let mut loaded = 0u64;
    while let Some(next) = rows.blocking_recv() {
        // An error from the reader (a damaged line) drops the transaction: nothing is written.
        let NumberedRow { line, row } = next?;
        let row = if own_keys > 0 {
            match dump::without_keys(row) {
                Some(row) => row,
                None => continue,
            }
        } else {
            row
        };
        insert(&tx, row.table, &row, keep_seqs)
            .map_err(|e| Fail::App(crate::store::import_refused(line, row.table.name, e)))?;
        loaded += 1;
    }
    if own_keys > 0 {
        super::task_keys::number_existing(&tx)?;
    }
    tx.commit()?;
    Ok(loaded)
}

fn insert(tx: &Transaction<'_>, table: &Table, row: &DumpRow, keep_seqs: bool) -> rusqlite::Result<()> {
    // An event's seq, when not kept, is left to AUTOINCREMENT (after the target's own).
    let written = |name: &str| keep_seqs || table.name != "events" || name != "seq";
    let mut values: Vec<rusqlite::types::Value> = table
        .columns
        .iter()
        .zip(&row.values)
        .filter(|(column, _)| written(column.name))
        .map(|(column, value)| stored_value(column.kind, value))
        .collect();
    if table.singleton {
        let sql = "UPDATE event_log_state SET pruned_through = max(pruned_through, ?1)";
        tx.prepare_cached(sql)?.execute(params_from_iter(values))?;
        return Ok(());
    }
    let mut columns: Vec<&str> = table.columns.iter().map(|c| c.name).filter(|name| written(name)).collect();
    if table.name == "tasks" {
        // The one derived column: the lower-cased text `query` searches.
        let title = row.get("title").and_then(Value::as_str).unwrap_or_default();
        let description = row.get("description").and_then(Value::as_str);
        values.push(rows::search_text(title, description).into());
        columns.push("search_text");
    }
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO {} ({}) VALUES ({})", table.name, columns.join(", "), placeholders.join(", "));
    tx.prepare_cached(&sql)?.execute(params_from_iter(values))?;
    Ok(())
}

/// A dump value as SQLite stores it (the value was checked against its kind when its line was read).
fn stored_value(kind: Kind, value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Stored;
    match (kind, value) {
        (_, Value::Null) => Stored::Null,
        (Kind::Time, Value::String(text)) => {
            dump::parse_time(text).map_or(Stored::Null, |time| Stored::Integer(rows::micros(time)))
        }
        (Kind::Json, json) => Stored::Text(json.to_string()),
        (_, Value::String(text)) => Stored::Text(text.clone()),
        (_, Value::Number(n)) => n.as_i64().map_or(Stored::Null, Stored::Integer),
        (_, other) => Stored::Text(other.to_string()),
    }
}
