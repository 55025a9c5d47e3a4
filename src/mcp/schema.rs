//! The tools' JSON schemas, derived from the Rust types and then stripped of what costs a model
//! bytes without telling it anything (`$schema`, output field descriptions, integer formats), since
//! clients put `tools/list` into the model's context; the arguments' schemas then gain the rules the
//! parsers enforce that cost a few bytes to state (closed sets, lengths, ranges), from the domain's
//! own constants.

use std::sync::Arc;

use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input};
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::domain::{
    COMMENT_MAX_CHARS, Complexity, DESCRIPTION_MAX_CHARS, IDEMPOTENCY_KEY_MAX_CHARS, LEASE_MAX_SECONDS, Priority,
    REPO_MAX_CHARS, SEARCH_MAX_CHARS, Status, TITLE_MAX_CHARS,
};
use crate::service::MAX_PAGE_SIZE;

/// The input schema of an argument type. Its root is an object (every argument type is a struct,
/// which a test checks); the fallback only keeps a bad schema from panicking at start-up.
pub fn input_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let schema = schema_for_input::<T>().unwrap_or_else(|err| {
        tracing::error!("bad input schema for {}: {err}", std::any::type_name::<T>());
        schema_for_empty_input()
    });
    let mut schema = compact(&schema, &["$schema", "format"]);
    constrain(&mut schema);
    Arc::new(schema)
}

/// What the parsers accept for an argument of this name, beyond its type. Every tool names a field
/// the same way, so one table serves them all.
fn rules(field: &str) -> Option<Value> {
    let closed = |values: Vec<&'static str>| json!({ "enum": values });
    Some(match field {
        "status" | "new_status" => closed(Status::accepted()),
        "priority" => closed(Priority::accepted()),
        "complexity" => closed(Complexity::accepted()),
        "detail" => closed(vec!["summary", "full"]),
        "limit" => json!({ "minimum": 1, "maximum": MAX_PAGE_SIZE }),
        "expected_version" => json!({ "minimum": 1 }),
        "lease_seconds" => json!({ "minimum": 1, "maximum": LEASE_MAX_SECONDS }),
        "title" => json!({ "minLength": 1, "maxLength": TITLE_MAX_CHARS }),
        "description" => json!({ "maxLength": DESCRIPTION_MAX_CHARS }),
        "comment" | "reason" => json!({ "maxLength": COMMENT_MAX_CHARS }),
        "repository" => json!({ "maxLength": REPO_MAX_CHARS }),
        "query" => json!({ "maxLength": SEARCH_MAX_CHARS }),
        "idempotency_key" => json!({ "maxLength": IDEMPOTENCY_KEY_MAX_CHARS }),
        _ => return None,
    })
}

/// Adds each argument's rules to its schema. An optional argument's closed set also admits `""`, which
/// the tools take as "not given"; a required comment must not be empty. Optional arguments are typed
/// without `null`: the tools take a null as "not given" too, but a model never needs to send one, and
/// saying so on every argument would cost `tools/list` hundreds of bytes.
fn constrain(schema: &mut JsonObject) {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    let Some(Value::Object(properties)) = schema.get_mut("properties") else { return };
    for (name, property) in properties.iter_mut() {
        let Value::Object(property) = property else { continue };
        if let Some(Value::Array(types)) = property.get("type") {
            let types: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
            let single = if types.len() == 1 { types[0].clone() } else { Value::Array(types) };
            property.insert("type".into(), single);
        }
        let Some(Value::Object(rules)) = rules(name) else { continue };
        let is_required = required.contains(name);
        for (keyword, value) in rules {
            let value = match (keyword.as_str(), value) {
                ("enum", Value::Array(mut values)) if !is_required => {
                    values.push(json!(""));
                    Value::Array(values)
                }
                (_, value) => value,
            };
            // A closed set the argument declares itself (narrower than its name's) stands.
            if keyword == "enum" && property.contains_key("enum") {
                continue;
            }
            property.insert(keyword, value);
        }
        if is_required && name == "comment" {
            property.insert("minLength".into(), json!(1));
        }
    }
}

/// `release_task`'s status: what a released task may become ("" or absent: not_started).
pub fn release_status(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "enum": ["not_started", "blocked", ""] })
}

/// The fields an output schema names: those a caller keys on (a task's identity, state and
/// version; a page's tasks; a detail's comments and history). The others are still returned.
const OUTPUT_FIELDS: &[&str] =
    &["id", "title", "status", "version", "tasks", "comments", "history", "comment", "task_version"];

/// The output schema of a result type, shallow: the top-level fields of [`OUTPUT_FIELDS`] that are
/// always present, with their types (arrays and objects as such, without their insides). Every
/// result still validates against it, and it costs a model a fraction of the bytes: with full
/// schemas `tools/list` was 11.9 KB, over the 8 KB budget. The README documents the full shapes.
pub fn output_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    Arc::new(shallow(&schema_for_output::<T>()))
}

fn shallow(schema: &JsonObject) -> JsonObject {
    let required: Vec<&str> =
        schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    let mut properties = serde_json::Map::new();
    if let Some(Value::Object(fields)) = schema.get("properties") {
        for (name, field) in fields {
            // A field that may be null or absent says little in a shallow schema: leave it out.
            let Some(kind) = field.get("type").and_then(Value::as_str).or_else(|| field.get("$ref").map(|_| "object"))
            else {
                continue;
            };
            if required.contains(&name.as_str()) && OUTPUT_FIELDS.contains(&name.as_str()) {
                properties.insert(name.clone(), serde_json::json!({ "type": kind }));
            }
        }
    }
    let mut out = JsonObject::new();
    out.insert("type".into(), "object".into());
    out.insert("properties".into(), Value::Object(properties));
    out
}

fn compact(schema: &JsonObject, drop: &[&str]) -> JsonObject {
    schema
        .iter()
        .filter(|(key, _)| !drop.contains(&key.as_str()))
        .map(|(key, value)| {
            // Keys under `properties` and `$defs` are names, not keywords: keep them all.
            let value = if key == "properties" || key == "$defs" {
                match value {
                    Value::Object(names) => Value::Object(
                        names.iter().map(|(name, sub)| (name.clone(), compact_value(sub, drop))).collect(),
                    ),
                    other => other.clone(),
                }
            } else {
                compact_value(value, drop)
            };
            (key.clone(), value)
        })
        .collect()
}

fn compact_value(value: &Value, drop: &[&str]) -> Value {
    match value {
        Value::Object(object) => Value::Object(compact(object, drop)),
        Value::Array(items) => Value::Array(items.iter().map(|v| compact_value(v, drop)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::args::*;
    use crate::wire::{TaskDetailJson, TaskJson, TaskPageJson};

    #[test]
    fn every_argument_schema_is_an_object_with_its_properties() {
        for (schema, field) in [
            (input_schema::<GetTasksArgs>(), "cursor"),
            (input_schema::<GetTaskArgs>(), "task_id"),
            (input_schema::<CreateTaskArgs>(), "idempotency_key"),
            (input_schema::<UpdateTaskStatusArgs>(), "new_status"),
            (input_schema::<UpdateTaskArgs>(), "expected_version"),
            (input_schema::<AddTaskCommentArgs>(), "author"),
            (input_schema::<DeleteTaskArgs>(), "deleted_by"),
        ] {
            assert_eq!(schema["type"], "object");
            assert!(schema["properties"][field].is_object(), "{field}");
            assert!(!schema.contains_key("$schema"));
        }
    }

    #[test]
    fn output_schemas_are_shallow_and_keep_the_fields_always_present() {
        let task = output_schema::<TaskJson>();
        assert_eq!(task["type"], "object");
        assert_eq!(task["properties"]["version"]["type"], "integer");
        assert_eq!(task["properties"]["id"]["type"], "string");
        // Nullable fields are left out, so a null never fails validation.
        assert!(task["properties"].get("assignee_id").is_none());
        let page = output_schema::<TaskPageJson>();
        assert_eq!(page["properties"]["tasks"]["type"], "array");
        let detail = output_schema::<TaskDetailJson>();
        assert_eq!(detail["properties"]["comments"]["type"], "array");
        assert_eq!(detail["properties"]["title"]["type"], "string");
    }

    #[test]
    fn argument_schemas_state_what_the_parsers_accept() {
        let list = input_schema::<GetTasksArgs>();
        let status = &list["properties"]["status"];
        assert_eq!(status["type"], "string", "optional arguments are typed without null");
        let values: Vec<&str> = status["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for value in &values {
            // "" is "not given"; everything else the parser accepts as it is.
            assert!(value.is_empty() || Status::parse("status", value).is_ok(), "{value}");
        }
        assert_eq!(values.len(), Status::ALL.len() + 1);
        assert_eq!(list["properties"]["limit"]["maximum"], MAX_PAGE_SIZE);
        assert_eq!(list["properties"]["limit"]["minimum"], 1);

        let create = input_schema::<CreateTaskArgs>();
        let title = &create["properties"]["title"];
        let max = title["maxLength"].as_u64().unwrap() as usize;
        assert!(crate::domain::Title::parse("title", &"é".repeat(max)).is_ok());
        assert!(crate::domain::Title::parse("title", &"é".repeat(max + 1)).is_err());
        let description_max = create["properties"]["description"]["maxLength"].as_u64().unwrap() as usize;
        assert!(crate::domain::Description::parse("description", &"é".repeat(description_max)).is_ok());
        assert!(crate::domain::Description::parse("description", &"é".repeat(description_max + 1)).is_err());

        // A required closed set admits no blank; a required comment must not be empty.
        let status = input_schema::<UpdateTaskStatusArgs>();
        assert!(!status["properties"]["new_status"]["enum"].as_array().unwrap().contains(&Value::from("")));
        let comment = input_schema::<AddTaskCommentArgs>();
        assert_eq!(comment["properties"]["comment"]["minLength"], 1);
        assert_eq!(comment["properties"]["comment"]["maxLength"], COMMENT_MAX_CHARS);
    }
}
