//! The one mapping from `crate::error::Error` to MCP tool errors: a result with `isError: true`, a
//! clear text for the model, and `{"error": {"code", "message", "details"}}` as structured content.

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::domain::ValidationError;
use crate::error::Error;
use crate::json_keys::{backticked, strip_position};
use crate::wire::TaskJson;

/// A failed tool call. Every error a tool meets becomes one of these (never a protocol error), so
/// the model reads what went wrong and can correct its call.
#[derive(Debug)]
pub struct ToolError(pub Error);

impl From<Error> for ToolError {
    fn from(err: Error) -> Self {
        ToolError(err)
    }
}

impl From<ValidationError> for ToolError {
    fn from(err: ValidationError) -> Self {
        ToolError(Error::Invalid(err))
    }
}

impl ToolError {
    /// Arguments that do not deserialize into the tool's argument type: the message names the field.
    pub fn arguments(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // serde names a missing or unknown field only inside its message: lift it out.
        let field = if path == "." || path.is_empty() {
            backticked(&message).unwrap_or_else(|| "arguments".to_owned())
        } else {
            path
        };
        let message = strip_position(&message);
        ToolError(Error::Invalid(ValidationError::new(field, message)))
    }

    /// The text a model reads: what is wrong, what is accepted, and what to do next.
    pub fn text(&self) -> String {
        match &self.0 {
            Error::Invalid(v) => {
                let mut text = format!("Invalid argument {}: {}.", v.field, v.message.trim_end_matches('.'));
                if !v.accepted.is_empty() {
                    text.push_str(&format!(" Accepted values: {}.", v.accepted.join(", ")));
                }
                text.push_str(" Nothing was changed.");
                text
            }
            Error::Config(v) => format!(
                "The server is misconfigured: {v}. Retrying will not help: the setting must be fixed where the server \
                 is configured (the MCP client's configuration), then the server restarted. Nothing was changed."
            ),
            Error::NotFound { what, id } => {
                format!("No {what} with id {id} exists (or it was deleted). Nothing was changed.")
            }
            Error::Conflict { expected, current } => {
                let task = serde_json::to_string(&TaskJson::from(current.as_ref())).unwrap_or_default();
                format!(
                    "Version conflict: task {} is at version {}, not {expected}; someone changed it since you read it. \
                     Nothing was changed. Check the current task below, then retry with expected_version {} if \
                     your change still applies.\nCurrent task: {task}",
                    current.id, current.version, current.version
                )
            }
            Error::IdempotencyConflict { .. } => format!("{}. Nothing was changed.", self.0),
            Error::Refused(refusal) => format!("{} ({}). Nothing was changed.", refusal.message, refusal.code),
            Error::Unavailable(message) => {
                // Not "nothing was changed": a connection lost while a commit was being acknowledged may have
                // saved the change, so the model is told to look before it repeats one.
                format!(
                    "{message}. The server keeps running: retry once the database is back (a change cut off while \
                     it was being saved may have been saved: re-read the task before repeating it)."
                )
            }
            Error::Unauthorized(message) => message.clone(),
            Error::Forbidden(message) => format!("{message}. Nothing was changed."),
            Error::Internal(_) => INTERNAL_MESSAGE.to_owned(),
        }
    }

    /// `{"error": {"code", "message", "details"}}`: the same for every frontend.
    pub fn structured(&self) -> Value {
        let (message, details) = match &self.0 {
            Error::Invalid(v) => {
                let mut details = json!({ "field": v.field });
                if !v.accepted.is_empty() {
                    details["accepted"] = json!(v.accepted);
                }
                (self.0.to_string(), details)
            }
            Error::Config(v) => (self.0.to_string(), json!({ "setting": v.field, "accepted": v.accepted })),
            Error::NotFound { what, id } => (self.0.to_string(), json!({ "what": what, "id": id })),
            Error::Conflict { expected, current } => (
                self.0.to_string(),
                json!({
                    "expected_version": expected,
                    "current_version": current.version,
                    "current": TaskJson::from(current.as_ref()),
                }),
            ),
            Error::IdempotencyConflict { key, task_id } => {
                (self.0.to_string(), json!({ "idempotency_key": key, "task_id": task_id }))
            }
            Error::Refused(refusal) => (refusal.message.clone(), refusal.details.clone()),
            Error::Unavailable(message) | Error::Unauthorized(message) | Error::Forbidden(message) => {
                (message.clone(), Value::Null)
            }
            Error::Internal(_) => (INTERNAL_MESSAGE.to_owned(), Value::Null),
        };
        json!({ "error": { "code": self.0.code(), "message": message, "details": details } })
    }

    pub fn into_result(self) -> CallToolResult {
        if let Error::Internal(detail) = &self.0 {
            // Logged here, once; the caller sees only the generic message.
            tracing::error!("tool call failed: internal error: {detail}");
        }
        let mut result = CallToolResult::error(vec![ContentBlock::text(self.text())]);
        result.structured_content = Some(self.structured());
        result
    }
}

/// A failure where the protocol has no tool result to carry it (a prompt): bad arguments are the
/// protocol's invalid-params error (-32602), naming the argument and what is accepted in its message
/// and in `data`; anything else an internal error (-32603) saying what the model would read in a tool
/// error (an internal detail logged once, not shown).
pub fn protocol_error(err: Error) -> rmcp::ErrorData {
    match &err {
        Error::Invalid(v) => {
            let mut message = format!("Invalid argument {}: {}.", v.field, v.message.trim_end_matches('.'));
            let mut data = json!({ "field": v.field });
            if !v.accepted.is_empty() {
                message.push_str(&format!(" Accepted: {}.", v.accepted.join(", ")));
                data["accepted"] = json!(v.accepted);
            }
            rmcp::ErrorData::invalid_params(message, Some(data))
        }
        Error::Internal(detail) => {
            tracing::error!("prompt failed: internal error: {detail}");
            rmcp::ErrorData::internal_error(INTERNAL_MESSAGE, None)
        }
        _ => {
            let tool = ToolError(err);
            rmcp::ErrorData::internal_error(tool.text(), Some(tool.structured()))
        }
    }
}

const INTERNAL_MESSAGE: &str =
    "The server met an internal error (the details are in its log). Nothing was changed; retry, or report it.";

impl IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<CallToolResponse, rmcp::ErrorData> {
        Ok(self.into_result().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;

    #[test]
    fn an_unknown_status_names_the_field_and_lists_the_values() {
        let err = ToolError::from(Status::parse("new_status", "done").unwrap_err());
        let text = err.text();
        assert!(text.contains("new_status"), "{text}");
        assert!(text.contains("not_started, in_progress, blocked, completed, cancelled"), "{text}");
        let value = err.structured();
        assert_eq!(value["error"]["code"], "invalid_argument");
        assert_eq!(value["error"]["details"]["field"], "new_status");
        assert_eq!(value["error"]["details"]["accepted"][3], "completed");
    }

    #[test]
    fn internal_errors_hide_their_detail() {
        let err = ToolError(Error::Internal("connection pool poisoned at 0xdead".into()));
        assert!(!err.text().contains("0xdead"));
        assert!(!err.structured().to_string().contains("0xdead"));
    }

    #[test]
    fn an_argument_with_an_empty_name_is_refused_as_the_arguments() {
        // Found by the property tests: the refusal named the field "".
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Args {
            title: Option<String>,
        }
        let err = serde_path_to_error::deserialize::<_, Args>(json!({"": 1})).unwrap_err();
        let ToolError(Error::Invalid(v)) = ToolError::arguments(err) else { panic!("not invalid") };
        assert_eq!(v.field, "arguments");
        assert!(v.message.contains("unknown field"), "{}", v.message);
    }

    #[test]
    fn argument_errors_name_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Args {
            task_id: String,
            limit: Option<i64>,
        }
        let cases = [
            (json!({"limit": 5}), "task_id", "missing field"),
            (json!({"task_id": "x", "limit": "ten"}), "limit", "invalid type"),
            (json!({"task_id": "x", "colour": 1}), "colour", "unknown field"),
        ];
        for (input, field, message) in cases {
            let err = serde_path_to_error::deserialize::<_, Args>(input).unwrap_err();
            let ToolError(Error::Invalid(v)) = ToolError::arguments(err) else { panic!("not invalid") };
            assert_eq!(v.field, field);
            assert!(v.message.contains(message), "{}", v.message);
            assert!(!v.message.contains("line 1"), "{}", v.message);
        }
    }
}
