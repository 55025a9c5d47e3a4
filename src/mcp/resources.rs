//! Tasks as MCP resources (what Claude Code's `@` and VS Code's attachments offer): the template
//! `task://{key}`, read as Markdown, and the list of the caller's open tasks. Rendering only: the
//! reads are `TaskService`'s.

use std::fmt::Write as _;

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};

use crate::domain::{Actor, Status, TaskRef, UserRef};
use crate::error::Error;
use crate::service::{ListTasks, TaskDetail, TaskService};

/// The scheme of a task's URI: `task://WEB-42`.
const SCHEME: &str = "task://";
const MARKDOWN: &str = "text/markdown";
/// At most this many tasks in `resources/list`.
const LISTED: u32 = 50;
/// The comments and history rows a task's Markdown ends with (the latest).
const LATEST: usize = 10;

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("task://{key}", "task")
            .with_title("A task by key (e.g. task://WEB-42)")
            .with_mime_type(MARKDOWN),
    ]
}

/// The caller's open tasks (assigned to them, not completed or cancelled), newest change first.
pub async fn list(service: &TaskService, actor: &Actor) -> Result<Vec<Resource>, Error> {
    let request = ListTasks { assignees: vec![UserRef::Me], limit: Some(LISTED * 2), ..ListTasks::default() };
    let page = service.list_tasks(actor, request).await?;
    Ok(page
        .tasks
        .iter()
        .filter(|t| !matches!(t.status, Status::Completed | Status::Cancelled))
        .take(LISTED as usize)
        .map(|t| {
            Resource::new(format!("{SCHEME}{}", t.key), format!("{} {}", t.key, t.title))
                .with_title(t.title.clone())
                .with_mime_type(MARKDOWN)
        })
        .collect())
}

/// `task://{key}` as Markdown; an unknown or malformed one is the protocol's not-found error.
pub async fn read(service: &TaskService, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let not_found =
        || ErrorData::resource_not_found(format!("no task at {uri}"), Some(serde_json::json!({"uri": uri})));
    let raw = uri.strip_prefix(SCHEME).ok_or_else(not_found)?;
    let task = TaskRef::parse("uri", raw).map_err(|_| not_found())?;
    let detail = match service.get_task_detail(task).await {
        Ok(detail) => detail,
        Err(Error::NotFound { .. }) => return Err(not_found()),
        Err(other) => return Err(ErrorData::internal_error(other.to_string(), None)),
    };
    Ok(ReadResourceResult::new(vec![ResourceContents::text(markdown(&detail), uri).with_mime_type(MARKDOWN)]))
}

/// A task for a model to read: its fields, description, and the latest comments and history.
pub fn markdown(detail: &TaskDetail) -> String {
    let t = &detail.task;
    let mut md = String::new();
    let _ = writeln!(md, "# {} {}\n", t.key, t.title);
    let _ = writeln!(md, "- status: {}\n- priority: {}\n- complexity: {}", t.status, t.priority, t.complexity);
    let _ = writeln!(md, "- assignee: {}", t.assignee_email.as_deref().unwrap_or("unassigned"));
    let _ = writeln!(md, "- repository: {}", t.repository.as_deref().unwrap_or("none"));
    let _ = writeln!(md, "- version: {} (id {})", t.version, t.id);
    let _ = writeln!(
        md,
        "- created by {} at {}; updated by {} at {}",
        t.created_by, t.created_at, t.updated_by, t.updated_at
    );
    if let Some(description) = &t.description {
        let _ = writeln!(md, "\n## Description\n\n{description}");
    }
    if !detail.comments.is_empty() {
        let _ = writeln!(md, "\n## Comments");
        let skip = detail.comments.len().saturating_sub(LATEST);
        for c in detail.comments.iter().skip(skip) {
            let _ = writeln!(md, "\n- {} ({}): {}", c.author, c.created_at, c.comment);
        }
    }
    if !detail.history.is_empty() {
        let _ = writeln!(md, "\n## History\n");
        let skip = detail.history.len().saturating_sub(LATEST);
        for h in detail.history.iter().skip(skip) {
            let change = match (&h.old_value, &h.new_value) {
                (Some(old), Some(new)) => format!("{old} → {new}"),
                (None, Some(new)) => new.clone(),
                _ => String::new(),
            };
            let _ = writeln!(md, "- {} {} {}: {change}", h.changed_at, h.changed_by, h.field_changed);
        }
    }
    md
}
