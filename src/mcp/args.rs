//! The tools' arguments as the model sees them (names from the spec; doc comments become the JSON
//! schema's descriptions, which models pay for in context: keep them short), and the extractor that
//! turns arguments that do not deserialize into a clear tool error naming the field.

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::errors::ToolError;

/// A tool's arguments, deserialized; a failure is kept as a tool error for the tool to return, so
/// a mistyped argument reads "limit: invalid type …" instead of a protocol error.
pub struct Args<T>(pub Result<T, ToolError>);

impl<S, T: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Args<T> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, rmcp::ErrorData> {
        let arguments = serde_json::Value::Object(context.arguments.take().unwrap_or_default());
        Ok(Args(serde_path_to_error::deserialize(arguments).map_err(ToolError::arguments)))
    }
}

/// Arguments of `get_tasks`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetTasksArgs {
    /// Assignee: UUID, email, or "me".
    pub user_id: Option<String>,
    /// Repository name.
    pub repository: Option<String>,
    pub status: Option<String>,
    /// Same as user_id.
    pub assignee: Option<String>,
    pub priority: Option<String>,
    /// Text in title or description.
    pub query: Option<String>,
    /// Page size (default 50).
    pub limit: Option<i64>,
    /// next_cursor of the previous page.
    pub cursor: Option<String>,
    /// summary (default) or full (every field).
    pub detail: Option<String>,
    /// Only tasks you could claim now.
    pub ready: Option<bool>,
    /// Only subtasks of this task.
    pub parent_id: Option<String>,
}

/// Arguments of `get_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetTaskArgs {
    pub task_id: String,
}

/// Arguments of `create_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskArgs {
    /// One line.
    pub title: String,
    /// Details.
    pub description: Option<String>,
    /// UUID, email (new users are created), or "me".
    pub assignee_id: Option<String>,
    /// Repository name, e.g. "org/api" (created on first use).
    pub repository: Option<String>,
    /// Default medium.
    pub priority: Option<String>,
    /// Default medium.
    pub complexity: Option<String>,
    /// Default: you.
    pub created_by: Option<String>,
    /// A retry with the same key returns the first task, not a duplicate.
    pub idempotency_key: Option<String>,
    /// Task ids it waits on.
    pub blocked_by: Option<Vec<String>>,
    /// The task it is a step of.
    pub parent_id: Option<String>,
}

/// Arguments of `update_task_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskStatusArgs {
    pub task_id: String,
    pub new_status: String,
    /// Default: you.
    pub updated_by: Option<String>,
    /// Why, kept in the task's history.
    pub comment: Option<String>,
    /// The version you read; refused if the task changed since.
    pub expected_version: Option<i64>,
}

/// Arguments of `update_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskArgs {
    pub task_id: String,
    pub title: Option<String>,
    /// "" clears it.
    pub description: Option<String>,
    pub priority: Option<String>,
    pub complexity: Option<String>,
    /// UUID, email, or "me"; "" unassigns.
    pub assignee_id: Option<String>,
    /// Repository name; "" clears it.
    pub repository: Option<String>,
    /// Default: you.
    pub updated_by: Option<String>,
    /// The version you read; refused if the task changed since.
    pub expected_version: Option<i64>,
    pub add_blocked_by: Option<Vec<String>>,
    pub remove_blocked_by: Option<Vec<String>>,
    /// "" clears it.
    pub parent_id: Option<String>,
}

/// Arguments of `claim_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimTaskArgs {
    pub task_id: Option<String>,
    pub repository: Option<String>,
    /// Default 1800.
    pub lease_seconds: Option<i64>,
}

/// Arguments of `release_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseTaskArgs {
    pub task_id: String,
    #[schemars(schema_with = "super::schema::release_status")]
    #[serde(default)]
    pub status: Option<String>,
    pub comment: Option<String>,
}

/// Arguments of `add_task_comment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTaskCommentArgs {
    pub task_id: String,
    pub comment: String,
    /// Default: you.
    pub author: Option<String>,
}

/// Arguments of `delete_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteTaskArgs {
    pub task_id: String,
    /// Default: you.
    pub deleted_by: Option<String>,
    /// Why, kept in the task's history.
    pub reason: Option<String>,
}
