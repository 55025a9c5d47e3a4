//! `task-mcp list|show|add|start|done|comment`: the task list for a person at a terminal, through the
//! same service (and so the same rules, history and event feed) as the agents. Exit codes a script can
//! test: 0 done, 1 not found or refused, 2 bad usage (a value the command cannot accept).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use crate::domain::TaskRef;

use super::task_view::{Style, render_detail, render_table, render_task_line};
use crate::cli::{AddArgs, CommentArgs, ListArgs, TaskArgs};
use crate::domain::{
    Actor, CommentText, Complexity, Description, Priority, RepoName, SearchText, Status, Title, UserRef, parse_uuid,
};
use crate::error::Error;
use crate::service::{CreateTask, ListTasks, UpdateTask};
use crate::wire::{CommentAddedJson, CommentJson, Detail, TaskDetailJson, TaskJson, TaskPageJson};
use crate::wiring::Parts;

/// One of the terminal task commands.
pub enum TaskCommand {
    List(ListArgs),
    Show(TaskArgs),
    Add(AddArgs),
    Start(TaskArgs),
    Done(TaskArgs),
    Comment(CommentArgs),
}

/// How long a command waits for Redis to take its event before leaving it in the outbox (a running
/// `serve` publishes what is left there within a second).
const PUBLISH_PATIENCE: Duration = Duration::from_secs(5);

/// Runs the command, prints its result on stdout and any error on stderr, and says how it ended.
pub async fn run(parts: Parts, command: TaskCommand) -> ExitCode {
    match execute(&parts, command).await {
        Ok(output) => {
            publish_pending(&parts).await;
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 2 for input the command cannot accept (as clap answers bad flags), 1 for everything else: the task
/// is not there, the change was refused, or the store cannot be reached.
pub fn exit_code(err: &Error) -> u8 {
    match err {
        Error::Invalid(_) | Error::Config(_) => 2,
        _ => 1,
    }
}

async fn execute(parts: &Parts, command: TaskCommand) -> Result<String, Error> {
    let actor = acting(parts).await?;
    let service = &parts.service;
    let style = Style::new(std::io::stdout().is_terminal());
    match command {
        TaskCommand::List(args) => {
            let repository = optional(args.repository.as_deref(), |raw| RepoName::parse("--repository", raw))?;
            let request = ListTasks {
                assignees: if args.mine { vec![UserRef::Me] } else { Vec::new() },
                repository: repository.clone(),
                status: optional(args.status.as_deref(), |raw| Status::parse("--status", raw))?,
                priority: optional(args.priority.as_deref(), |raw| Priority::parse("--priority", raw))?,
                query: optional(args.search.as_deref(), |raw| SearchText::parse("--search", raw))?,
                limit: Some(args.limit),
                cursor: None,
                ready: args.ready,
                parent_id: None,
            };
            let page = service.list_tasks(&actor, request).await.map_err(rename("limit", "--limit"))?;
            if args.json {
                return Ok(json(&TaskPageJson::new(&page.tasks, page.next_cursor, Detail::Full)));
            }
            Ok(render_table(&page.tasks, repository.is_none(), page.next_cursor.is_some(), style))
        }
        TaskCommand::Show(args) => {
            let id = task_id(&args.task)?;
            let detail = service.get_task_detail(&id).await?;
            if args.json {
                return Ok(json(&TaskDetailJson::new(&detail.task, &detail.comments, &detail.history, &detail.links)));
            }
            Ok(render_detail(&detail, style))
        }
        TaskCommand::Add(args) => {
            let request = CreateTask {
                title: Title::parse("TITLE", &args.title)?,
                description: optional(args.description.as_deref(), |raw| Description::parse("--description", raw))?,
                assignee: optional(args.assignee.as_deref(), |raw| UserRef::parse("--assignee", raw))?,
                repository: optional(args.repository.as_deref(), |raw| RepoName::parse("--repository", raw))?,
                status: None,
                priority: optional(args.priority.as_deref(), |raw| Priority::parse("--priority", raw))?,
                complexity: optional(args.complexity.as_deref(), |raw| Complexity::parse("--complexity", raw))?,
                idempotency_key: None,
                parent_id: optional(args.parent.as_deref(), |raw| parse_uuid("--parent", raw))?,
                blocked_by: args
                    .blocked_by
                    .iter()
                    .map(|raw| parse_uuid("--blocked-by", raw))
                    .collect::<Result<_, _>>()?,
            };
            let created = service.create_task(&actor, request).await?;
            finish_task(&created.task, args.json, style)
        }
        TaskCommand::Start(args) => {
            let id = task_id(&args.task)?;
            let request = UpdateTask {
                status: Some(Status::InProgress),
                assignee: Some(Some(UserRef::Me)),
                ..UpdateTask::default()
            };
            let task = service.update_task(&actor, &id, request).await?;
            finish_task(&task, args.json, style)
        }
        TaskCommand::Done(args) => {
            let id = task_id(&args.task)?;
            let task = service.update_status(&actor, &id, Status::Completed, None, None).await?;
            finish_task(&task, args.json, style)
        }
        TaskCommand::Comment(args) => {
            let id = task_id(&args.task)?;
            let text = CommentText::parse("TEXT", &args.text)?;
            let (comment, task) = service.add_comment(&actor, &id, text).await?;
            if args.json {
                return Ok(json(&CommentAddedJson {
                    comment: CommentJson::from(&comment),
                    task_version: task.version,
                }));
            }
            Ok(render_task_line(&task, style))
        }
    }
}

fn finish_task(task: &crate::domain::Task, as_json: bool, style: Style) -> Result<String, Error> {
    if as_json {
        return Ok(json(&TaskJson::from(task)));
    }
    Ok(render_task_line(task, style))
}

/// The identity the command acts as: `--user`, else git's `user.email`, else `$USER@localhost`.
async fn acting(parts: &Parts) -> Result<Actor, Error> {
    super::acting_user(&parts.settings).await.map_err(|err| match err.downcast::<Error>() {
        Ok(err) => err,
        Err(err) => Error::Config(crate::domain::ValidationError::new("--user", format!("{err:#}"))),
    })
}

/// A task named on the command line.
fn task_id(raw: &str) -> Result<TaskRef, Error> {
    Ok(TaskRef::parse("TASK", raw)?)
}

fn optional<T, E: Into<Error>>(
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, Error> {
    raw.map(parse).transpose().map_err(Into::into)
}

/// An error about a service field reported under the flag that gave it.
fn rename(field: &'static str, flag: &'static str) -> impl Fn(Error) -> Error {
    move |err| match err {
        Error::Invalid(invalid) if invalid.field == field => Error::Invalid(invalid.renamed(flag)),
        other => other,
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("the public JSON always serializes")
}

/// Hands the command's events to Redis when one is configured, so watchers see them now; if Redis does
/// not answer in time they stay in the outbox, where the next running task-mcp publishes them.
async fn publish_pending(parts: &Parts) {
    let Some(publisher) = parts.publisher.as_deref() else { return };
    match tokio::time::timeout(PUBLISH_PATIENCE, crate::events::relay::drain(parts.store.as_ref(), publisher)).await {
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::warn!("the change is saved; its event waits in the outbox: {err}"),
        Err(_) => tracing::warn!("the change is saved; its event waits in the outbox (Redis did not answer in time)"),
    }
}
