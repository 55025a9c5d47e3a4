//! The logical dump both stores write and read: which tables and columns a copy carries, in which
//! order, and each value's portable JSON form (UUIDs and timestamps as text, JSON as JSON), so a dump
//! of SQLite and a dump of PostgreSQL holding the same tasks are the same lines.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The `format` field of a dump's header line.
pub const FORMAT: &str = "task-mcp-dump";
/// The version of the format this build writes and the newest it reads.
pub const FORMAT_VERSION: u64 = 1;

/// Nullable columns added after dumps of format 1 were first written: a line without them reads as
/// null, so an older dump still imports.
const ADDED_SINCE_FORMAT_1: &[(&str, &str)] = &[
    ("tasks", "parent_id"),
    ("tasks", "claim_holder"),
    ("tasks", "claim_agent"),
    ("tasks", "claim_expires_at"),
    ("tasks", "claim_lapsed_holder"),
];

/// The type of a column, as far as a copy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Uuid,
    Text,
    Int,
    /// A point in time, microsecond precision (both stores keep that much).
    Time,
    Json,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// One table of the dump. `singleton` tables hold exactly one row, which the migrations create: an
/// import updates it rather than inserting.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// The order rows are written in on PostgreSQL, and on SQLite: the order they were written, so
    /// rows that share a timestamp (history, comments) keep their order through a copy.
    pub postgres_order: &'static str,
    pub sqlite_order: &'static str,
    pub singleton: bool,
}

macro_rules! columns {
    ($($name:literal: $kind:ident),* $(,)?) => {
        &[$(Column { name: $name, kind: Kind::$kind }),*]
    };
}

/// Every table a copy carries, parents before children (the order an import inserts in).
pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: columns!["id": Uuid, "email": Text, "name": Text, "github_username": Text, "created_at": Time],
        postgres_order: "created_at, id",
        sqlite_order: "created_at, id",
        singleton: false,
    },
    Table {
        name: "repositories",
        columns: columns!["id": Uuid, "name": Text, "url": Text, "created_at": Time],
        postgres_order: "created_at, id",
        sqlite_order: "created_at, id",
        singleton: false,
    },
    Table {
        name: "key_series",
        columns: columns!["id": Int, "prefix": Text, "repository_id": Uuid, "last_number": Int],
        postgres_order: "id",
        sqlite_order: "id",
        singleton: false,
    },
    Table {
        name: "key_prefixes",
        columns: columns!["prefix": Text, "series_id": Int],
        postgres_order: "series_id, prefix",
        sqlite_order: "series_id, prefix",
        singleton: false,
    },
    Table {
        name: "tasks",
        columns: columns![
            "id": Uuid, "title": Text, "description": Text, "status": Text, "priority": Text,
            "complexity": Text, "assignee_id": Uuid, "repository_id": Uuid, "created_by": Text,
            "updated_by": Text, "created_at": Time, "updated_at": Time, "version": Int, "deleted_at": Time,
            "idempotency_key": Text, "idempotency_owner": Text, "idempotency_fingerprint": Text,
            "parent_id": Uuid, "claim_holder": Text, "claim_agent": Text, "claim_expires_at": Time,
            "claim_lapsed_holder": Text,
            "key_series_id": Int, "key_number": Int,
        ],
        postgres_order: "created_at, id",
        sqlite_order: "created_at, id",
        singleton: false,
    },
    Table {
        name: "task_links",
        columns: columns!["task_id": Uuid, "blocked_by": Uuid, "created_at": Time],
        postgres_order: "created_at, task_id, blocked_by",
        sqlite_order: "created_at, task_id, blocked_by",
        singleton: false,
    },
    Table {
        name: "task_history",
        columns: columns![
            "id": Uuid, "task_id": Uuid, "field_changed": Text, "old_value": Text, "new_value": Text,
            "changed_by": Text, "comment": Text, "changed_at": Time,
        ],
        postgres_order: "n",
        sqlite_order: "rowid",
        singleton: false,
    },
    Table {
        name: "task_comments",
        columns: columns!["id": Uuid, "task_id": Uuid, "comment": Text, "author": Text, "created_at": Time],
        postgres_order: "n",
        sqlite_order: "rowid",
        singleton: false,
    },
    Table {
        name: "events",
        columns: columns![
            "seq": Int, "event_type": Text, "task_id": Uuid, "actor": Text, "task": Json, "assignee_id": Uuid,
            "previous_assignee_id": Uuid, "repository": Text, "created_at": Time, "published_at": Time,
        ],
        postgres_order: "seq",
        sqlite_order: "seq",
        singleton: false,
    },
    Table {
        name: "api_keys",
        columns: columns![
            "id": Uuid, "user_id": Uuid, "name": Text, "key_hash": Text, "created_at": Time,
            "last_used_at": Time, "revoked_at": Time, "scope": Text,
        ],
        postgres_order: "created_at, id",
        sqlite_order: "created_at, id",
        singleton: false,
    },
    Table {
        name: "event_log_state",
        columns: columns!["pruned_through": Int],
        postgres_order: "id",
        sqlite_order: "id",
        singleton: true,
    },
];

/// Columns a store has that a dump leaves out, because the target derives them: PostgreSQL's row
/// counters (`n`, regenerated in the same order), SQLite's lower-cased search text, the one-row key.
pub const DERIVED_COLUMNS: &[(&str, &str)] =
    &[("task_history", "n"), ("task_comments", "n"), ("tasks", "search_text"), ("event_log_state", "id")];

/// One row of one table, its values in the table's column order, each in its portable form.
#[derive(Debug, Clone)]
pub struct DumpRow {
    pub table: &'static Table,
    pub values: Vec<Value>,
}

impl DumpRow {
    /// Reads `{"table": …, "row": {…}}`: a known table, every column once, each value of its kind.
    pub fn from_json(line: &Value) -> Result<Self, String> {
        let object = line.as_object().ok_or("a row line must be a JSON object")?;
        if let Some(extra) = object.keys().find(|key| *key != "table" && *key != "row") {
            return Err(format!("unknown field \"{extra}\" (a row line has \"table\" and \"row\")"));
        }
        let name = object.get("table").and_then(Value::as_str).ok_or("\"table\" must be a table's name")?;
        let table = table_named(name).ok_or_else(|| {
            let known: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
            format!("unknown table \"{name}\" (known: {})", known.join(", "))
        })?;
        let row = object.get("row").and_then(Value::as_object).ok_or("\"row\" must be an object")?;
        if let Some(extra) = row.keys().find(|key| !table.columns.iter().any(|c| c.name == key.as_str())) {
            return Err(format!("{name} has no column \"{extra}\""));
        }
        let mut values = Vec::with_capacity(table.columns.len());
        for column in table.columns {
            let value = match row.get(column.name) {
                Some(value) => value,
                // A dump made before the column existed: it was empty then.
                None if ADDED_SINCE_FORMAT_1.contains(&(name, column.name)) => &Value::Null,
                None => return Err(format!("{name}.{} is missing", column.name)),
            };
            values.push(portable(column.kind, value).map_err(|why| format!("{name}.{}: {why}", column.name))?);
        }
        Ok(Self { table, values })
    }

    pub fn to_json(&self) -> Value {
        let row: Map<String, Value> =
            self.table.columns.iter().zip(&self.values).map(|(c, v)| (c.name.to_string(), v.clone())).collect();
        serde_json::json!({ "table": self.table.name, "row": row })
    }

    /// The value of `column` (by name; the tables are small).
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.table.columns.iter().position(|c| c.name == column).map(|i| &self.values[i])
    }
}

impl PartialEq for DumpRow {
    fn eq(&self, other: &Self) -> bool {
        self.table.name == other.table.name && self.values == other.values
    }
}

pub fn table_named(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// Checks a value against its kind and returns it in the one form dumps use.
fn portable(kind: Kind, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        Kind::Uuid => {
            let text = value.as_str().ok_or("must be a UUID string or null")?;
            let id = Uuid::parse_str(text).map_err(|_| format!("\"{text}\" is not a UUID"))?;
            Ok(Value::String(id.hyphenated().to_string()))
        }
        Kind::Text => value.as_str().map(|_| value.clone()).ok_or_else(|| "must be a string or null".into()),
        Kind::Int => value.as_i64().map(Value::from).ok_or_else(|| "must be an integer or null".into()),
        Kind::Time => {
            let text = value.as_str().ok_or("must be an RFC 3339 timestamp or null")?;
            let time = parse_time(text)?;
            Ok(time_value(time))
        }
        Kind::Json => Ok(value.clone()),
    }
}

pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("\"{text}\" is not an RFC 3339 timestamp"))
}

/// A timestamp in its dump form: UTC, microseconds, `Z`.
pub fn time_value(time: DateTime<Utc>) -> Value {
    Value::String(time.to_rfc3339_opts(SecondsFormat::Micros, true))
}

/// What a target held when an import was asked for, in words (`1 task, 12 events`), or `None` when
/// empty. `counts` follows [`CONTENT_TABLES`].
pub fn describe_contents(counts: &[i64]) -> Option<String> {
    let found: Vec<String> = CONTENT_TABLES
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|((_, one, many), n)| format!("{n} {}", if *n == 1 { one } else { many }))
        .collect();
    (!found.is_empty()).then(|| found.join(", "))
}

/// The tables an import checks for emptiness, with the words for one row and for several.
pub const CONTENT_TABLES: &[(&str, &str, &str)] = &[
    ("tasks", "task", "tasks"),
    ("events", "event", "events"),
    ("users", "user", "users"),
    ("api_keys", "API key", "API keys"),
];

/// Whether an import keeps the dump's event seqs: into a log that holds none it does (so a client
/// resumes across a move); added to a log that has its own, the events follow them in their order.
pub fn keeps_event_seqs(target_events: i64) -> bool {
    target_events == 0
}

/// The tables of task keys: an import into a store that has keys of its own leaves the dump's out
/// and numbers the imported tasks in the target's series instead (as its events follow the target's).
pub const KEY_TABLES: &[&str] = &["key_series", "key_prefixes"];

/// A row as a forced import into a store with keys of its own writes it: `None` for the dump's key
/// tables; a task without its key (numbered after the import).
pub fn without_keys(mut row: DumpRow) -> Option<DumpRow> {
    if KEY_TABLES.contains(&row.table.name) {
        return None;
    }
    if row.table.name == "tasks" {
        for (column, value) in row.table.columns.iter().zip(row.values.iter_mut()) {
            if column.name == "key_series_id" || column.name == "key_number" {
                *value = Value::Null;
            }
        }
    }
    Some(row)
}

/// The error for an import into a store that already holds something.
pub fn target_not_empty(found: &str) -> crate::error::Error {
    crate::error::Error::invalid(
        "target",
        format!(
            "the target store already holds {found}: import only into an empty store, or pass --force to add to \
             it (its events then follow the target's own; a row whose id or unique name is taken fails the whole \
             import, which changes nothing)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_line_is_read_back_as_written() {
        let line = serde_json::json!({"table": "users", "row": {
            "id": "6F9619FF-8B86-D011-B42D-00CF4FC964FF", "email": "a@b.c", "name": null,
            "github_username": null, "created_at": "2026-01-02T03:04:05.123456+01:00"}});
        let row = DumpRow::from_json(&line).unwrap();
        assert_eq!(row.get("id").unwrap(), "6f9619ff-8b86-d011-b42d-00cf4fc964ff");
        assert_eq!(row.get("created_at").unwrap(), "2026-01-02T02:04:05.123456Z");
        assert_eq!(DumpRow::from_json(&row.to_json()).unwrap(), row);
    }

    #[test]
    fn a_row_of_the_wrong_shape_is_refused_naming_what_is_wrong() {
        let cases = [
            (serde_json::json!({"table": "nope", "row": {}}), "unknown table \"nope\""),
            (serde_json::json!({"table": "repositories", "row": {"id": null}}), "repositories.name is missing"),
            (serde_json::json!({"table": "event_log_state", "row": {"pruned_through": 1, "x": 2}}), "no column \"x\""),
            (serde_json::json!({"table": "event_log_state", "row": {"pruned_through": "1"}}), "must be an integer"),
            (serde_json::json!([1]), "must be a JSON object"),
        ];
        for (line, expected) in cases {
            let err = DumpRow::from_json(&line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }
}
