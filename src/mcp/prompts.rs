//! The prompts (what Claude Code offers as `/mcp__task-mcp__next_task`, …): `next_task`, `plan_work`
//! and `standup`. Each parses its arguments (a bad one is the protocol's invalid-params error naming
//! it), reads through `TaskService` and renders one user message. No rule lives here.

use std::cmp::Reverse;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::prompt::{PromptContext, cached_arguments_from_schema};
use rmcp::model::{Extensions, GetPromptResult, PromptArgument, PromptMessage, Role};
use rmcp::{ErrorData, prompt, prompt_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::errors::{ToolError, protocol_error};
use super::tools::{ALL_REPOSITORIES, RepoFilter, TaskServer, repo_filter};
use crate::domain::{CommentText, HistoryEntry, RepoName, Since, given};
use crate::service::{ListTasks, TaskActivity};

/// At most this many ready tasks are listed by `next_task` (the most urgent).
const NEXT_LISTED: usize = 10;
/// Ready tasks read to choose them from.
const NEXT_READ: u32 = 50;

/// A prompt's arguments, deserialized; one that does not fit is the protocol's invalid-params error
/// naming it (`since: invalid type …`, `colour: unknown field …`).
pub struct PromptArgs<T>(pub T);

impl<S, T: DeserializeOwned> FromContextPart<PromptContext<'_, S>> for PromptArgs<T> {
    fn from_context_part(context: &mut PromptContext<'_, S>) -> Result<Self, ErrorData> {
        let arguments = serde_json::Value::Object(context.arguments.take().unwrap_or_default());
        serde_path_to_error::deserialize(arguments)
            .map(PromptArgs)
            .map_err(|e| protocol_error(ToolError::arguments(e).0))
    }
}

/// Arguments of `next_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NextTaskArgs {
    /// Repository name, or "*" for all (default: this workspace's).
    pub repository: Option<String>,
}

/// Arguments of `plan_work`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanWorkArgs {
    /// What to achieve.
    pub goal: String,
    /// Repository to file the tasks in (default: this workspace's).
    pub repository: Option<String>,
}

/// Arguments of `standup`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StandupArgs {
    /// A span back (90m, 24h, 3d, 2w) or an RFC 3339 time; default 24h.
    pub since: Option<String>,
}

fn arguments<T: JsonSchema + 'static>() -> Option<Vec<PromptArgument>> {
    cached_arguments_from_schema::<T>()
}

fn user_message(description: &str, text: String) -> GetPromptResult {
    GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]).with_description(description)
}

#[prompt_router(vis = "pub(super)")]
impl TaskServer {
    /// The ready tasks worth taking, and how to work one.
    #[prompt(title = "Next task", arguments = arguments::<NextTaskArgs>())]
    async fn next_task(
        &self,
        PromptArgs(args): PromptArgs<NextTaskArgs>,
        ext: Extensions,
    ) -> Result<GetPromptResult, ErrorData> {
        let ready = async {
            let repository = match repo_filter(args.repository)? {
                RepoFilter::All => None,
                RepoFilter::Named(name) => Some(name),
                RepoFilter::Default => self.default_repository().await?.map(|r| r.name),
            };
            let actor = self.actors.actor(&ext, None).await?;
            let request = ListTasks {
                repository: repository.clone(),
                ready: true,
                limit: Some(NEXT_READ),
                ..ListTasks::default()
            };
            let page = self.service.list_tasks(&actor, request).await?;
            Ok::<_, crate::error::Error>((repository, page))
        };
        let (repository, page) = ready.await.map_err(protocol_error)?;
        let mut tasks = page.tasks;
        // Most urgent first; among equals, the listing's order (most recent change first).
        tasks.sort_by_key(|t| Reverse(t.priority));
        let scope = match &repository {
            Some(name) => format!("in {name}"),
            None => "in every repository".to_owned(),
        };
        let mut text = String::new();
        if tasks.is_empty() {
            let _ = writeln!(
                text,
                "No task is ready {scope} (ready: not started, no open blocker, unassigned or assigned to you). \
                 get_tasks shows what waits on blockers or is claimed; create_task files new work."
            );
        } else {
            let more = if page.next_cursor.is_some() || tasks.len() > NEXT_LISTED { " (the most urgent)" } else { "" };
            let _ = writeln!(
                text,
                "Ready tasks {scope}{more}: not started, no open blocker, unassigned or assigned to you. \
                 Key, priority, title:"
            );
            for t in tasks.iter().take(NEXT_LISTED) {
                let _ = writeln!(text, "- {} {} {}", t.key, t.priority, t.title);
            }
        }
        let _ = write!(
            text,
            "\nTo work one: claim_task with its task_id (the key; no task_id takes the next ready one{}) makes it \
             yours and in_progress for a lease (claim it again to renew); get_task reads its description and \
             comments; add_task_comment with task_id and comment reports progress; update_task_status with \
             new_status \"completed\" when it is done, or release_task (status \"blocked\" and a comment if it is \
             stuck) to give it back.\nPick the task to take, say why in one line, and claim it.",
            repository.as_ref().map(|r| format!(" in {r}")).unwrap_or_default()
        );
        Ok(user_message("Ready tasks and how to take one", text))
    }

    /// Break a goal into linked tasks.
    #[prompt(title = "Plan work", arguments = arguments::<PlanWorkArgs>())]
    async fn plan_work(&self, PromptArgs(args): PromptArgs<PlanWorkArgs>) -> Result<GetPromptResult, ErrorData> {
        let planned = async {
            let goal = CommentText::parse("goal", &args.goal)?;
            let repository = match given(args.repository) {
                Some(raw) if raw.trim() == ALL_REPOSITORIES => {
                    return Err(crate::domain::ValidationError::new(
                        "repository",
                        "names the one repository the tasks go to (\"*\" is every repository, for listings only)",
                    )
                    .into());
                }
                Some(raw) => Some(RepoName::parse("repository", &raw)?),
                None => self.default_repository().await?.map(|r| r.name),
            };
            Ok::<_, crate::error::Error>((goal, repository))
        };
        let (goal, repository) = planned.await.map_err(protocol_error)?;
        let repo_arg = match &repository {
            Some(name) => format!(", repository \"{name}\""),
            None => String::new(),
        };
        let text = format!(
            "Plan this goal as tasks on the shared task list{in_repo}.\n\nGoal:\n{goal}\n\n\
             1. get_tasks with query (a few words of the goal) first: do not file what already exists.\n\
             2. create_task for the goal itself (title, description saying what done means{repo_arg}).\n\
             3. create_task for each step, with parent_id set to the goal task's key{repo_arg}: a one-line \
             title, a description with what done means, priority (low, medium, high, urgent) and complexity \
             (low, medium, high). Keep each step small enough for one working session.\n\
             4. A step that cannot start before others end gets blocked_by: [their keys] (create those first; \
             a cycle is refused). To link tasks that exist: update_task with add_blocked_by or parent_id.\n\
             5. End with the keys you created, in an order they can be done, and what can run in parallel.",
            in_repo = repository.as_ref().map(|r| format!(" in {r}")).unwrap_or_default(),
            goal = goal.as_ref(),
        );
        Ok(user_message("Break a goal into linked tasks", text))
    }

    /// What your tasks did since a time (default 24h).
    #[prompt(title = "Standup", arguments = arguments::<StandupArgs>())]
    async fn standup(
        &self,
        PromptArgs(args): PromptArgs<StandupArgs>,
        ext: Extensions,
    ) -> Result<GetPromptResult, ErrorData> {
        let now = Utc::now();
        let report = async {
            let since = match given(args.since) {
                Some(raw) => Since::parse("since", &raw, now)?,
                None => Since::default_at(now),
            };
            let actor = self.actors.actor(&ext, None).await?;
            let activity = self.service.activity_since(&actor, since).await?;
            Ok::<_, crate::error::Error>((since, actor.email, activity))
        };
        let (since, who, activity) = report.await.map_err(protocol_error)?;
        let mut text = format!("What happened to the tasks assigned to {who} since {}:\n", time(since.at()));
        if activity.is_empty() {
            text.push_str("\nNothing: none of them changed.\n");
        }
        for TaskActivity { task: t, history } in &activity {
            let _ = writeln!(text, "\n{} {} ({}, {})", t.key, t.title, t.status, t.priority);
            for h in history {
                let _ = writeln!(text, "- {} {}", time(h.changed_at), change(h));
            }
        }
        text.push_str(
            "\nWrite a short standup from this: done, in progress, blocked (and what would unblock it), and what \
             comes next. get_task gives a task's full history and comments.",
        );
        Ok(user_message("Your tasks' changes since a time", text))
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// One history row as a line: who changed what.
fn change(h: &HistoryEntry) -> String {
    let what = match (h.field_changed.as_str(), &h.old_value, &h.new_value) {
        ("comment", _, Some(text)) => format!("commented: {}", one_line(text)),
        ("created", _, _) => "created".to_owned(),
        ("deleted", _, _) => "deleted".to_owned(),
        (field, Some(old), Some(new)) => format!("{field}: {} → {}", one_line(old), one_line(new)),
        (field, None, Some(new)) => format!("{field}: {}", one_line(new)),
        (field, Some(old), None) => format!("{field}: {} → none", one_line(old)),
        (field, None, None) => field.to_owned(),
    };
    let why = h.comment.as_deref().map(|c| format!(" ({})", one_line(c))).unwrap_or_default();
    format!("{} {what}{why}", h.changed_by)
}

/// Text on one line, cut to a length a summary can afford.
fn one_line(text: &str) -> String {
    const MAX: usize = 200;
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
