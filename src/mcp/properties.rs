//! Property tests of what reaches the MCP frontend (proptest, this crate's fuzzing): the tools'
//! argument structs, the classification of incoming messages, and the stdio line framing. Nothing
//! panics; a refusal names a field (arguments) or answers with a JSON-RPC error (messages); valid
//! input is accepted; every line gets either served or answered, and no line bleeds into the next.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000 cargo nextest run -E
//! 'test(/properties/)'` runs longer. Failures are saved under `proptest-regressions/`.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::args::{
    AddTaskCommentArgs, CreateTaskArgs, DeleteTaskArgs, GetTaskArgs, GetTasksArgs, UpdateTaskArgs, UpdateTaskStatusArgs,
};
use super::errors::ToolError;
use super::framing::{self, Inbound};
use crate::domain::properties::{any_json, tricky_text};
use crate::error::Error;

/// An arguments object: some of the struct's fields (with any values) and maybe strangers.
fn any_arguments(fields: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![4 => prop::sample::select(fields).prop_map(str::to_owned), 1 => tricky_text(10)];
    prop::collection::btree_map(key, any_json(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// Valid arguments: the struct's fields only, each of its type (`numbers` are the integer ones);
/// optional ones may be null.
fn valid_arguments(
    fields: &'static [&'static str],
    numbers: &'static [&'static str],
    required: &'static [&'static str],
) -> impl Strategy<Value = Map<String, Value>> {
    let values = prop::collection::vec((tricky_text(20), any::<i64>(), any::<bool>()), fields.len());
    (values, prop::collection::vec(any::<bool>(), fields.len())).prop_map(move |(values, present)| {
        let mut map = Map::new();
        for ((field, (text, number, null)), present) in fields.iter().zip(values).zip(present) {
            if present {
                let value = if numbers.contains(field) { json!(number) } else { json!(text) };
                map.insert((*field).to_owned(), if null && !required.contains(field) { Value::Null } else { value });
            }
        }
        map
    })
}

/// Deserializes arguments as the tools do; a refusal must name a field of the struct or of the input.
fn check_arguments<T: serde::de::DeserializeOwned>(
    fields: &[&str],
    arguments: &Map<String, Value>,
) -> Result<bool, TestCaseError> {
    match serde_path_to_error::deserialize::<_, T>(Value::Object(arguments.clone())) {
        Ok(_) => Ok(true),
        Err(err) => {
            let ToolError(Error::Invalid(refusal)) = ToolError::arguments(err) else {
                return Err(TestCaseError::fail("an argument error that is not invalid_argument"));
            };
            // An argument with an empty name cannot be named: the refusal is of the arguments then.
            let unnamed = refusal.field == "arguments" && arguments.contains_key("");
            let named = fields.contains(&refusal.field.as_str())
                || (!refusal.field.is_empty() && arguments.contains_key(&refusal.field))
                || unnamed;
            prop_assert!(named, "{:?} names neither a field nor an argument given: {}", refusal.field, refusal.message);
            prop_assert!(!refusal.message.is_empty());
            Ok(false)
        }
    }
}

macro_rules! argument_properties {
    ($($name:ident: $ty:ty, [$($field:literal),*], numbers [$($number:literal),*], required [$($required:literal),*];)*) => {$(
        mod $name {
            use super::*;

            const FIELDS: &[&str] = &[$($field),*];
            const NUMBERS: &[&str] = &[$($number),*];
            const REQUIRED: &[&str] = &[$($required),*];

            proptest! {
                #[test]
                fn any_arguments_are_accepted_or_refused_naming_a_field(arguments in any_arguments(FIELDS)) {
                    check_arguments::<$ty>(FIELDS, &arguments)?;
                }

                #[test]
                fn arguments_of_the_right_types_are_accepted(arguments in valid_arguments(FIELDS, NUMBERS, REQUIRED)) {
                    let complete = REQUIRED.iter().all(|f| arguments.contains_key(*f));
                    prop_assert_eq!(check_arguments::<$ty>(FIELDS, &arguments)?, complete, "{:?}", arguments);
                }
            }
        }
    )*};
}

argument_properties! {
    get_tasks: GetTasksArgs, ["user_id", "repository", "status", "assignee", "priority", "query", "limit", "cursor", "detail"], numbers ["limit"], required [];
    get_task: GetTaskArgs, ["task_id"], numbers [], required ["task_id"];
    create_task: CreateTaskArgs, ["title", "description", "assignee_id", "repository", "priority", "complexity", "created_by", "idempotency_key"], numbers [], required ["title"];
    update_task_status: UpdateTaskStatusArgs, ["task_id", "new_status", "updated_by", "comment", "expected_version"], numbers ["expected_version"], required ["task_id", "new_status"];
    update_task: UpdateTaskArgs, ["task_id", "title", "description", "priority", "complexity", "assignee_id", "repository", "updated_by", "expected_version"], numbers ["expected_version"], required ["task_id"];
    add_task_comment: AddTaskCommentArgs, ["task_id", "comment", "author"], numbers [], required ["task_id", "comment"];
    delete_task: DeleteTaskArgs, ["task_id", "deleted_by", "reason"], numbers [], required ["task_id"];
}

/// A request id as clients send them: an integer or a string.
fn any_id() -> impl Strategy<Value = Value> {
    prop_oneof![any::<i64>().prop_map(|n| json!(n)), tricky_text(10).prop_map(Value::String)]
}

proptest! {
    #[test]
    fn any_bytes_are_served_ignored_or_answered_with_a_json_rpc_error(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        text in tricky_text(60),
        value in any_json(),
    ) {
        for input in [bytes, text.into_bytes(), serde_json::to_vec(&value).unwrap_or_default()] {
            if let Inbound::Refused(refusal) = framing::classify(&input) {
                let codes = [framing::PARSE_ERROR, framing::INVALID_REQUEST, framing::INVALID_PARAMS];
                prop_assert!(codes.contains(&refusal.code));
                prop_assert!(!refusal.message.is_empty());
                let answer = refusal.to_json();
                prop_assert_eq!(&answer["jsonrpc"], "2.0");
                prop_assert!(answer["id"].is_null() || answer["id"].is_string() || answer["id"].is_i64());
            }
        }
    }

    #[test]
    fn every_well_formed_request_is_served(
        id in any_id(),
        tool in tricky_text(12),
        arguments in any_arguments(&["title", "task_id", "limit"]),
        method in prop::sample::select(vec!["ping", "tools/list", "tools/call"]),
    ) {
        let params = match method {
            "tools/call" => json!({"name": tool, "arguments": arguments}),
            _ => json!({}),
        };
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        prop_assert!(matches!(framing::classify(&bytes), Inbound::Message(_)), "{}", request);
    }

    #[test]
    fn a_request_that_is_refused_is_answered_under_its_id(id in any::<i64>(), junk in any_json()) {
        // Well-formed envelope, params that fit no method: the answer carries the request's id.
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"arguments": junk}});
        let bytes = serde_json::to_vec(&request).unwrap_or_default();
        match framing::classify(&bytes) {
            Inbound::Refused(refusal) => prop_assert_eq!(refusal.id, json!(id)),
            other => prop_assert!(false, "{} was {:?}", request, other),
        }
    }

    #[test]
    fn every_line_is_served_or_answered_whatever_the_chunks(
        lines in prop::collection::vec(prop_oneof![
            any::<bool>().prop_map(|_| None),
            prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 1..40).prop_map(Some),
        ], 1..12),
        chunk in 1usize..64,
    ) {
        // Each line: a ping (None) or junk bytes; the expected count of each comes from `classify`.
        let mut input = Vec::new();
        let (mut served, mut answered) = (0, 0);
        for (n, line) in lines.iter().enumerate() {
            let bytes = match line {
                None => serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": n, "method": "ping"})).unwrap_or_default(),
                Some(junk) => junk.clone(),
            };
            let body = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
            if !body.iter().all(u8::is_ascii_whitespace) {
                match framing::classify(body) {
                    Inbound::Message(_) => served += 1,
                    Inbound::Refused(_) => answered += 1,
                    Inbound::Ignored => {}
                }
            }
            input.extend_from_slice(&bytes);
            input.push(b'\n');
        }
        let (received, answers) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .block_on(super::transport::tests::run_chunked(input, chunk));
        prop_assert_eq!(received.len(), served);
        prop_assert_eq!(answers.len(), answered, "{:?}", answers);
        for answer in answers {
            prop_assert!(answer["error"]["code"].is_i64(), "{}", answer);
        }
    }
}
