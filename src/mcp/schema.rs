//! The tools' JSON schemas, derived from the Rust types and then stripped of what costs a model
//! bytes without telling it anything (`$schema`, output field descriptions, integer formats), since
//! clients put `tools/list` into the model's context.

use std::sync::Arc;

use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input};
use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde_json::Value;

/// The input schema of an argument type. Its root is an object (every argument type is a struct,
/// which a test checks); the fallback only keeps a bad schema from panicking at start-up.
pub fn input_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    let schema = schema_for_input::<T>().unwrap_or_else(|err| {
        tracing::error!("bad input schema for {}: {err}", std::any::type_name::<T>());
        schema_for_empty_input()
    });
    Arc::new(compact(&schema, &["$schema", "format"]))
}

/// The output schema of a result type, shallow: the top-level fields that are always present, with
/// their types (arrays and objects as such, without their insides). Every result still validates
/// against it, and it costs a model a fraction of the bytes: with full schemas `tools/list` was
/// 11.9 KB, over the 8 KB budget. The README documents the full shapes.
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
            if required.contains(&name.as_str()) {
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
}
