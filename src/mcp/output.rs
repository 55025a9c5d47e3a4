//! A tool's structured result: the text block written straight from the typed value, beside the same
//! value as `structuredContent`. rmcp's `Json` builds the `Value` tree and then renders the text from
//! that tree, which costs more than rendering the typed value (for 50 tasks, a fifth of the call).
//! The output schema is declared on each tool.

use rmcp::ErrorData;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock};
use serde::Serialize;

/// The structured result of a successful tool call.
pub struct Structured<T>(pub T);

impl<T: Serialize> IntoCallToolResult for Structured<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        let failed = |e: serde_json::Error| ErrorData::internal_error(format!("cannot render the result: {e}"), None);
        let text = serde_json::to_string(&self.0).map_err(failed)?;
        let value = serde_json::to_value(&self.0).map_err(failed)?;
        let mut result = CallToolResult::structured(serde_json::Value::Null);
        result.content = vec![ContentBlock::text(text)];
        result.structured_content = Some(value);
        Ok(result.into())
    }
}

/// A structured result whose text block is written for a model rather than copied from the JSON.
pub struct StructuredWithText<T>(pub T, pub String);

impl<T: Serialize> IntoCallToolResult for StructuredWithText<T> {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        let failed = |e: serde_json::Error| ErrorData::internal_error(format!("cannot render the result: {e}"), None);
        let value = serde_json::to_value(&self.0).map_err(failed)?;
        let mut result = CallToolResult::structured(serde_json::Value::Null);
        result.content = vec![ContentBlock::text(self.1)];
        result.structured_content = Some(value);
        Ok(result.into())
    }
}

/// A listing page as a model reads it: one line a task (`KEY status priority assignee [repository]
/// title`), the shared repository and the next cursor said once. Full pages are their JSON.
pub fn page_text(page: &crate::wire::TaskPageJson) -> String {
    use std::fmt::Write as _;

    use crate::wire::TaskItemJson;
    if page.tasks.iter().any(|t| matches!(t, TaskItemJson::Full(_))) {
        return serde_json::to_string(page).unwrap_or_default();
    }
    let mut text = String::with_capacity(64 + page.tasks.len() * 96);
    let _ = write!(text, "{} tasks, newest change first", page.tasks.len());
    if let Some(repository) = &page.repository {
        let _ = write!(text, ", all in {repository}");
    }
    text.push_str(". Columns: key status priority assignee");
    if page.repository.is_none() {
        text.push_str(" repository");
    }
    text.push_str(" title\n");
    for item in &page.tasks {
        let TaskItemJson::Summary(t) = item else { continue };
        let _ = write!(text, "{} {} {} {}", t.key, t.status, t.priority, t.assignee.as_deref().unwrap_or("-"));
        if page.repository.is_none() {
            let _ = write!(text, " {}", t.repository.as_deref().unwrap_or("-"));
        }
        let _ = writeln!(text, " {}", t.title);
    }
    if let Some(scope) = &page.default_repository {
        let _ = writeln!(text, "{}", scope.note);
    }
    if let Some(cursor) = &page.next_cursor {
        let _ = write!(text, "More: cursor={cursor}");
    }
    text
}
