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

/// The output schema of a result type: what it serializes to, with types, nullability and required
/// fields kept, descriptions dropped (the tool descriptions say what matters).
pub fn output_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    Arc::new(compact(&schema_for_output::<T>(), &["$schema", "format", "description", "title"]))
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
    fn output_schemas_keep_types_and_required_fields_but_not_descriptions() {
        let task = output_schema::<TaskJson>();
        assert_eq!(task["type"], "object");
        assert_eq!(task["properties"]["version"]["type"], "integer");
        assert!(task["required"].as_array().is_some_and(|r| r.contains(&Value::from("version"))));
        assert!(!Value::Object(task.as_ref().clone()).to_string().contains("description\":\"Increases"));
        // A property named `description` is a name, not a keyword: it stays.
        assert!(task["properties"]["description"].is_object());
        assert_eq!(output_schema::<TaskDetailJson>()["type"], "object");
        assert!(output_schema::<TaskPageJson>()["$defs"]["TaskJson"].is_object());
    }
}
