//! The JSON Schemas of request fields, made from the domain's own limits and closed sets, so the
//! OpenAPI document states exactly what the parsers enforce (lengths, the one-line rule, enums, ranges).

use schemars::Schema;
use schemars::generate::SchemaGenerator;
use serde_json::{Value, json};

use crate::domain::{
    COMMENT_MAX_CHARS, Complexity, DESCRIPTION_MAX_CHARS, EMAIL_MAX_CHARS, IDEMPOTENCY_KEY_MAX_CHARS,
    LEASE_DEFAULT_SECONDS, LEASE_MAX_SECONDS, Priority, REPO_MAX_CHARS, SEARCH_MAX_CHARS, Status, TITLE_MAX_CHARS,
};
use crate::service::MAX_PAGE_SIZE;

/// What one-line text refuses: control characters, line and paragraph separators, text-direction controls.
const ONE_LINE_REFUSED: &str = r"\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c";
/// What multi-line text refuses: control characters other than tab and line breaks.
const MULTI_LINE_REFUSED: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";

/// Text of the allowed characters with at least one that is not blank (blank text is refused).
fn not_blank(refused: &str) -> String {
    format!(r"^[^{refused}]*[^\s{refused}][^{refused}]*$")
}

fn one_line(max_chars: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max_chars, "pattern": not_blank(ONE_LINE_REFUSED) })
}

fn closed(values: Vec<&'static str>) -> Value {
    json!({ "type": "string", "enum": values })
}

/// Also accepts `null` (a clearable field, or an optional one that may be sent as null).
fn or_null(mut schema: Value) -> Schema {
    if let Some(values) = schema.get_mut("enum").and_then(Value::as_array_mut) {
        values.push(Value::Null);
    }
    schema["type"] = json!([schema["type"].clone(), "null"]);
    Schema::try_from(schema).unwrap_or_default()
}

fn schema(value: Value) -> Schema {
    Schema::try_from(value).unwrap_or_default()
}

fn title_value() -> Value {
    let mut value = one_line(TITLE_MAX_CHARS);
    value["description"] = json!(format!("One line of 1 to {TITLE_MAX_CHARS} characters."));
    value
}

fn description_value() -> Value {
    json!({
        "type": "string",
        "maxLength": DESCRIPTION_MAX_CHARS,
        "pattern": format!("^[^{MULTI_LINE_REFUSED}]*$"),
        "description": format!("Up to {DESCRIPTION_MAX_CHARS} characters; tabs and line breaks allowed."),
    })
}

fn comment_value() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": COMMENT_MAX_CHARS,
        "pattern": not_blank(MULTI_LINE_REFUSED),
        "description": format!("Not blank, up to {COMMENT_MAX_CHARS} characters; tabs and line breaks allowed."),
    })
}

fn repository_value() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^[A-Za-z0-9._/-]{{1,{REPO_MAX_CHARS}}}$"),
        "description": "A repository name, e.g. \"org/api\": letters, digits, '-', '_', '.' and '/'.",
    })
}

fn user_value() -> Value {
    let uuid = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}";
    let part = format!(r#"[^@\s<>,;"{ONE_LINE_REFUSED}]"#);
    let half = EMAIL_MAX_CHARS / 2;
    json!({
        "type": "string",
        "pattern": format!("^(?:[Mm][Ee]|{uuid}|{part}{{1,{half}}}@{part}{{1,{half}}})$"),
        "description": "A user: \"me\", a user's UUID, or an email address.",
    })
}

pub fn title(_: &mut SchemaGenerator) -> Schema {
    schema(title_value())
}
pub fn description(_: &mut SchemaGenerator) -> Schema {
    or_null(description_value())
}
pub fn comment(_: &mut SchemaGenerator) -> Schema {
    schema(comment_value())
}
pub fn comment_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(comment_value())
}
pub fn status(_: &mut SchemaGenerator) -> Schema {
    schema(closed(Status::accepted()))
}
pub fn status_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(closed(Status::accepted()))
}
pub fn priority(_: &mut SchemaGenerator) -> Schema {
    schema(closed(Priority::accepted()))
}
pub fn priority_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(closed(Priority::accepted()))
}
pub fn complexity(_: &mut SchemaGenerator) -> Schema {
    schema(closed(Complexity::accepted()))
}
pub fn complexity_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(closed(Complexity::accepted()))
}
pub fn repository(_: &mut SchemaGenerator) -> Schema {
    schema(repository_value())
}
pub fn repository_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(repository_value())
}
pub fn user(_: &mut SchemaGenerator) -> Schema {
    schema(user_value())
}
pub fn user_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(user_value())
}
pub fn search(_: &mut SchemaGenerator) -> Schema {
    schema(one_line(SEARCH_MAX_CHARS))
}
pub fn detail(_: &mut SchemaGenerator) -> Schema {
    schema(closed(vec!["summary", "full"]))
}
pub fn page_size(_: &mut SchemaGenerator) -> Schema {
    schema(json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE }))
}
/// A version read earlier: versions start at 1.
pub fn version_or_null(_: &mut SchemaGenerator) -> Schema {
    schema(json!({ "type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX }))
}
const UUID_PATTERN: &str = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$";

fn task_id_value() -> Value {
    json!({ "type": "string", "pattern": UUID_PATTERN, "description": "A task's UUID." })
}
pub fn task_id_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(task_id_value())
}
/// A list of task ids, each a UUID.
pub fn task_ids_or_null(_: &mut SchemaGenerator) -> Schema {
    schema(json!({ "type": ["array", "null"], "items": task_id_value() }))
}
/// A lease in seconds, from the domain's bounds.
pub fn lease_or_null(_: &mut SchemaGenerator) -> Schema {
    schema(json!({ "type": ["integer", "null"], "minimum": 1, "maximum": LEASE_MAX_SECONDS,
                   "description": format!("Seconds, 1 to {LEASE_MAX_SECONDS} (default {LEASE_DEFAULT_SECONDS}).") }))
}
/// What a released task becomes.
pub fn release_status_or_null(_: &mut SchemaGenerator) -> Schema {
    or_null(closed(vec!["not_started", "blocked"]))
}
/// `true` or `false`, as a query parameter.
pub fn flag(_: &mut SchemaGenerator) -> Schema {
    schema(closed(vec!["true", "false"]))
}

/// Comma-separated repository names.
pub fn repositories(_: &mut SchemaGenerator) -> Schema {
    let name = format!("[A-Za-z0-9._/-]{{1,{REPO_MAX_CHARS}}}");
    schema(json!({ "type": "string", "pattern": format!("^{name}(,{name})*$") }))
}

/// The `If-Match` header: an ETag this API gave (a quoted version) or `*`.
pub fn if_match() -> Value {
    json!({ "type": "string", "pattern": "^(\\*|\"[0-9]{1,18}\"|[0-9]{1,18})$" })
}

/// An event id to resume after, as the query parameter `last_event_id` takes it: the `id:` of an
/// event, an integer of at most 19 digits (spaces or tabs around it are ignored; one beyond the
/// retained log, or beyond i64, gets a resync).
pub fn event_id(_: &mut SchemaGenerator) -> Schema {
    schema(json!({ "type": "string", "pattern": "^[ \\t]*[+-]?[0-9]{1,19}[ \\t]*$" }))
}

/// The `Last-Event-ID` header: an event id, or blank (a fresh stream).
pub fn last_event_id() -> Value {
    json!({ "type": "string", "pattern": "^[ \\t]*([+-]?[0-9]{1,19})?[ \\t]*$" })
}

/// One event of the event stream, as a Server-Sent Events reader parses it: `id` the event's seq,
/// `event` its type (or `resync`), `data` one line of JSON.
pub fn stream_event() -> Value {
    let mut types: Vec<&str> = crate::domain::EventKind::ALL.iter().map(|kind| kind.as_str()).collect();
    types.push("resync");
    json!({
        "type": "object",
        "properties": {
            "id": { "type": "string", "pattern": "^-?[0-9]{1,19}$" },
            "event": { "type": "string", "enum": types },
            "data": { "type": "string", "contentMediaType": "application/json" },
        },
        "required": ["id", "event", "data"],
    })
}

/// The `Idempotency-Key` header.
pub fn idempotency_key() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_CHARS, "pattern": format!("^[!-~]{{1,{IDEMPOTENCY_KEY_MAX_CHARS}}}$") })
}
