//! The MCP tools (rmcp): each parses its arguments into domain types, calls `TaskService` once and
//! returns a `crate::wire` shape as structured output. No rule lives here. The same server serves
//! stdio and Streamable HTTP; only its [`ActorSource`] differs.

use rmcp::handler::server::prompt::PromptContext;
use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Extensions, GetPromptRequestParams, GetPromptResponse, Implementation,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, tool, tool_handler, tool_router};

use super::args::{
    AddTaskCommentArgs, Args, ClaimTaskArgs, CreateTaskArgs, DeleteTaskArgs, GetTaskArgs, GetTasksArgs,
    ReleaseTaskArgs, UpdateTaskArgs, UpdateTaskStatusArgs,
};
use super::default_repo::{DefaultRepository, Resolved};
use super::errors::ToolError;
use super::identity::ActorSource;
use super::output::{Structured, StructuredWithText, page_text};
use super::resources;
use super::schema::{input_schema, output_schema};
use crate::domain::{
    CommentText, Complexity, Description, IdempotencyKey, Lease, Priority, RepoName, SearchText, Status, TaskRef,
    Title, UserRef, ValidationError, given,
};
use crate::service::{ClaimTask, CreateTask, ListTasks, MAX_PAGE_SIZE, TaskService, UpdateTask};
use crate::wire::{
    ClaimedJson, CommentAddedJson, CommentJson, DefaultRepositoryJson, Detail, TaskDetailJson, TaskJson, TaskPageJson,
};

/// What the server tells the model about the workflow, once, at connection.
pub const INSTRUCTIONS: &str = "A task list shared by agents and people. Typical flow: get_tasks \
(e.g. assignee \"me\", status \"not_started\") to find work; get_task for its comments and history; \
update_task_status to in_progress when you start and completed (or blocked, with a comment) when you stop; \
add_task_comment to report progress; create_task for new work. Pass the task's version as expected_version \
when changing it: on a version_conflict error, re-read and decide again. Users are a UUID, an email or \"me\" (you). \
With other agents: claim_task (no task_id) takes the next ready task for you alone; call it again with the task_id \
before the lease ends to keep it, release_task to give it back.";

/// The `repository` value that means every repository, whatever the default.
pub const ALL_REPOSITORIES: &str = "*";

/// The MCP server: the tools over one [`TaskService`], acting as its [`ActorSource`] says.
#[derive(Clone)]
pub struct TaskServer {
    pub(super) service: TaskService,
    pub(super) actors: ActorSource,
    /// stdio only: the repository a call without `repository` works in (HTTP callers name it).
    default_repository: Option<Arc<DefaultRepository>>,
}

/// The tools and the prompts, built once per process on first use: their schemas cost more than all the
/// rest of start-up, and `initialize` is answered without them; every HTTP session shares them.
static TOOLS: OnceLock<ToolRouter<TaskServer>> = OnceLock::new();
static PROMPTS: OnceLock<PromptRouter<TaskServer>> = OnceLock::new();

impl TaskServer {
    /// A task named by id or key, as its id (an unknown key is `not_found`, naming it).
    async fn resolve_opt(&self, task: Option<TaskRef>) -> crate::error::Result<Option<uuid::Uuid>> {
        match task {
            Some(task) => self.service.resolve(&task).await.map(Some),
            None => Ok(None),
        }
    }

    async fn resolve_all(&self, tasks: Vec<TaskRef>) -> crate::error::Result<Vec<uuid::Uuid>> {
        let mut ids = Vec::with_capacity(tasks.len());
        for task in &tasks {
            ids.push(self.service.resolve(task).await?);
        }
        Ok(ids)
    }
}

impl TaskServer {
    pub fn new(service: TaskService, actors: ActorSource) -> Self {
        Self { service, actors, default_repository: None }
    }

    /// The tool router (built on first use).
    pub(crate) fn tools() -> &'static ToolRouter<Self> {
        TOOLS.get_or_init(Self::tool_router)
    }

    /// The prompt router (built on first use).
    pub(crate) fn prompts() -> &'static PromptRouter<Self> {
        PROMPTS.get_or_init(Self::prompt_router)
    }

    /// Calls without `repository` work in this session's default repository.
    pub fn with_default_repository(mut self, default: Arc<DefaultRepository>) -> Self {
        self.default_repository = Some(default);
        self
    }

    /// The session's default repository, when it has one (waits for the client's roots if asked).
    pub(super) async fn default_repository(&self) -> Result<Option<Resolved>, ValidationError> {
        match &self.default_repository {
            Some(default) => default.get().await,
            None => Ok(None),
        }
    }

    /// The instructions, with the default repository named when this session has one.
    fn instructions(&self) -> String {
        let Some(default) = &self.default_repository else { return INSTRUCTIONS.to_owned() };
        if default.awaiting_roots() {
            return format!(
                "{INSTRUCTIONS} Default repository: the one of your workspace root folder (else of the working \
                 directory): create_task files into it and get_tasks lists it when no repository is given, and \
                 names it; repository \"{ALL_REPOSITORIES}\" lists every repository."
            );
        }
        let scope = match default.now() {
            Ok(Some(resolved)) => format!(
                " Default repository: {} (from {}): create_task files into it and get_tasks lists it when no \
                 repository is given; repository \"{ALL_REPOSITORIES}\" lists every repository.",
                resolved.name, resolved.from
            ),
            Ok(None) => {
                format!(" No default repository ({}): pass repository to file or filter by one.", default.why_none())
            }
            Err(err) => format!(" The default repository setting is wrong: {err}."),
        };
        format!("{INSTRUCTIONS}{scope}")
    }
}

/// `get_tasks`'s repository filter: `"*"` is every repository, a name is that one, nothing is the
/// default repository (when there is one).
pub(super) enum RepoFilter {
    All,
    Named(RepoName),
    Default,
}

pub(super) fn repo_filter(value: Option<String>) -> Result<RepoFilter, ValidationError> {
    match given(value) {
        Some(raw) if raw.trim() == ALL_REPOSITORIES => Ok(RepoFilter::All),
        Some(raw) => RepoName::parse("repository", &raw).map(RepoFilter::Named),
        None => Ok(RepoFilter::Default),
    }
}

/// An optional argument parsed when given (blank counts as not given).
fn optional<T>(
    field: &str,
    value: Option<String>,
    parse: impl Fn(&str, &str) -> Result<T, ValidationError>,
) -> Result<Option<T>, ValidationError> {
    given(value).map(|raw| parse(field, &raw)).transpose()
}

/// A field `update_task` can clear: absent leaves it alone, blank clears it, anything else sets it.
fn clearable<T>(
    field: &str,
    value: Option<String>,
    parse: impl Fn(&str, &str) -> Result<T, ValidationError>,
) -> Result<Option<Option<T>>, ValidationError> {
    match value {
        None => Ok(None),
        Some(raw) if raw.trim().is_empty() => Ok(Some(None)),
        Some(raw) => parse(field, &raw).map(|v| Some(Some(v))),
    }
}

/// A list of tasks, each by id or key (blank entries refused, as anywhere a task is expected).
fn task_refs(field: &str, values: Option<Vec<String>>) -> Result<Vec<TaskRef>, ValidationError> {
    values.unwrap_or_default().iter().map(|raw| TaskRef::parse(field, raw)).collect()
}

/// The client's name from its handshake (`claude-code`, `cursor`, …), if it gave one.
fn agent(peer: &Peer<RoleServer>) -> Option<String> {
    peer.peer_info().map(|info| info.client_info.name.clone()).filter(|name| !name.trim().is_empty())
}

fn limit(value: Option<i64>) -> Result<Option<u32>, ValidationError> {
    value
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| ValidationError::new("limit", format!("must be between 1 and {MAX_PAGE_SIZE} (got {n})")))
        })
        .transpose()
}

impl TaskServer {
    /// The tools that may change something (not annotated read-only): what a read-only credential
    /// may not call.
    pub fn writing_tools() -> Vec<String> {
        Self::tools()
            .list_all()
            .into_iter()
            .filter(|tool| tool.annotations.as_ref().and_then(|a| a.read_only_hint) != Some(true))
            .map(|tool| tool.name.to_string())
            .collect()
    }
}

#[tool_router]
impl TaskServer {
    /// List tasks, newest change first; filters combine (all must match).
    /// Pass next_cursor back as cursor for the next page.
    #[tool(
        title = "List tasks",
        input_schema = input_schema::<GetTasksArgs>(),
        output_schema = output_schema::<TaskPageJson>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_tasks(
        &self,
        Args(args): Args<GetTasksArgs>,
        ext: Extensions,
    ) -> Result<StructuredWithText<TaskPageJson>, ToolError> {
        let args = args?;
        let detail = optional("detail", args.detail, Detail::parse)?.unwrap_or_default();
        let filter = repo_filter(args.repository)?;
        let mut assignees = Vec::new();
        assignees.extend(optional("user_id", args.user_id, UserRef::parse)?);
        assignees.extend(optional("assignee", args.assignee, UserRef::parse)?);
        let request = ListTasks {
            assignees,
            repository: None,
            status: optional("status", args.status, Status::parse)?,
            priority: optional("priority", args.priority, Priority::parse)?,
            query: optional("query", args.query, SearchText::parse)?,
            limit: limit(args.limit)?,
            cursor: given(args.cursor),
            ready: args.ready.unwrap_or(false),
            parent_id: self.resolve_opt(optional("parent_id", args.parent_id, TaskRef::parse)?).await?,
        };
        let mut request = request;
        let mut scope = None;
        match filter {
            RepoFilter::All => {}
            RepoFilter::Named(name) => request.repository = Some(name),
            RepoFilter::Default => {
                if let Some(resolved) = self.default_repository().await? {
                    request.repository = Some(resolved.name.clone());
                    scope = Some(DefaultRepositoryJson::new(resolved.name.as_str(), &resolved.from, ALL_REPOSITORIES));
                }
            }
        }
        let actor = self.actors.actor(&ext, None).await?;
        let page = self.service.list_tasks(&actor, request).await?;
        let mut json = TaskPageJson::new(&page.tasks, page.next_cursor, detail);
        json.default_repository = scope;
        let text = page_text(&json);
        Ok(StructuredWithText(json, text))
    }

    /// One task with every field, its comments and its change history (oldest first).
    #[tool(
        title = "Get a task",
        input_schema = input_schema::<GetTaskArgs>(),
        output_schema = output_schema::<TaskDetailJson>(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_task(&self, Args(args): Args<GetTaskArgs>) -> Result<Structured<TaskDetailJson>, ToolError> {
        let args = args?;
        let id = TaskRef::parse("task_id", &args.task_id)?;
        let d = self.service.get_task_detail(&id).await?;
        Ok(Structured(TaskDetailJson::new(&d.task, &d.comments, &d.history, &d.links)))
    }

    /// Create a task (status not_started).
    #[tool(
        title = "Create a task",
        input_schema = input_schema::<CreateTaskArgs>(),
        output_schema = output_schema::<TaskJson>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_task(
        &self,
        Args(args): Args<CreateTaskArgs>,
        ext: Extensions,
    ) -> Result<Structured<TaskJson>, ToolError> {
        let args = args?;
        let title = Title::parse("title", &args.title)?;
        let repository = match optional("repository", args.repository, RepoName::parse)? {
            Some(named) => Some(named),
            None => self.default_repository().await?.map(|resolved| resolved.name),
        };
        let request = CreateTask {
            title,
            description: optional("description", args.description, Description::parse)?,
            assignee: optional("assignee_id", args.assignee_id, UserRef::parse)?,
            repository,
            status: None,
            priority: optional("priority", args.priority, Priority::parse)?,
            complexity: optional("complexity", args.complexity, Complexity::parse)?,
            idempotency_key: optional("idempotency_key", args.idempotency_key, IdempotencyKey::parse)?,
            parent_id: self.resolve_opt(optional("parent_id", args.parent_id, TaskRef::parse)?).await?,
            blocked_by: self.resolve_all(task_refs("blocked_by", args.blocked_by)?).await?,
        };
        let label = args.created_by.as_deref().map(|raw| ("created_by", raw));
        let actor = self.actors.actor(&ext, label).await?;
        let created = self.service.create_task(&actor, request).await?;
        Ok(Structured(TaskJson::from(&created.task)))
    }

    /// Set a task's status (comment: why).
    #[tool(
        title = "Change a task's status",
        input_schema = input_schema::<UpdateTaskStatusArgs>(),
        output_schema = output_schema::<TaskJson>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_task_status(
        &self,
        Args(args): Args<UpdateTaskStatusArgs>,
        ext: Extensions,
    ) -> Result<Structured<TaskJson>, ToolError> {
        let args = args?;
        let id = TaskRef::parse("task_id", &args.task_id)?;
        let status = Status::parse("new_status", &args.new_status)?;
        let comment = optional("comment", args.comment, CommentText::parse)?;
        let label = args.updated_by.as_deref().map(|raw| ("updated_by", raw));
        let actor = self.actors.actor(&ext, label).await?;
        let task = self.service.update_status(&actor, &id, status, comment, args.expected_version).await?;
        Ok(Structured(TaskJson::from(&task)))
    }

    /// Change a task's fields; omitted ones stay as they are.
    #[tool(
        title = "Edit a task",
        input_schema = input_schema::<UpdateTaskArgs>(),
        output_schema = output_schema::<TaskJson>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_task(
        &self,
        Args(args): Args<UpdateTaskArgs>,
        ext: Extensions,
    ) -> Result<Structured<TaskJson>, ToolError> {
        let args = args?;
        let id = TaskRef::parse("task_id", &args.task_id)?;
        let request = UpdateTask {
            title: args.title.map(|raw| Title::parse("title", &raw)).transpose()?,
            description: clearable("description", args.description, Description::parse)?,
            status: None,
            priority: optional("priority", args.priority, Priority::parse)?,
            complexity: optional("complexity", args.complexity, Complexity::parse)?,
            assignee: clearable("assignee_id", args.assignee_id, UserRef::parse)?,
            repository: clearable("repository", args.repository, RepoName::parse)?,
            comment: None,
            expected_version: args.expected_version,
            parent: match clearable("parent_id", args.parent_id, TaskRef::parse)? {
                Some(parent) => Some(self.resolve_opt(parent).await?),
                None => None,
            },
            add_blocked_by: self.resolve_all(task_refs("add_blocked_by", args.add_blocked_by)?).await?,
            remove_blocked_by: self.resolve_all(task_refs("remove_blocked_by", args.remove_blocked_by)?).await?,
        };
        let label = args.updated_by.as_deref().map(|raw| ("updated_by", raw));
        let actor = self.actors.actor(&ext, label).await?;
        let task = self.service.update_task(&actor, &id, request).await?;
        Ok(Structured(TaskJson::from(&task)))
    }

    /// Comment on a task (progress, questions, hand-over notes).
    #[tool(
        title = "Comment on a task",
        input_schema = input_schema::<AddTaskCommentArgs>(),
        output_schema = output_schema::<CommentAddedJson>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn add_task_comment(
        &self,
        Args(args): Args<AddTaskCommentArgs>,
        ext: Extensions,
    ) -> Result<Structured<CommentAddedJson>, ToolError> {
        let args = args?;
        let id = TaskRef::parse("task_id", &args.task_id)?;
        let comment = CommentText::parse("comment", &args.comment)?;
        let label = args.author.as_deref().map(|raw| ("author", raw));
        let actor = self.actors.actor(&ext, label).await?;
        let (comment, task) = self.service.add_comment(&actor, &id, comment).await?;
        Ok(Structured(CommentAddedJson { comment: CommentJson::from(&comment), task_version: task.version }))
    }

    /// Claim a task for this session (yours, in_progress, until the lease ends); no task_id: the
    /// next ready one, or task null and a reason. Claim it again to renew.
    #[tool(
        title = "Claim a task",
        input_schema = input_schema::<ClaimTaskArgs>(),
        output_schema = output_schema::<ClaimedJson>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn claim_task(
        &self,
        Args(args): Args<ClaimTaskArgs>,
        ext: Extensions,
        peer: Peer<RoleServer>,
    ) -> Result<Structured<ClaimedJson>, ToolError> {
        let args = args?;
        let task_id = self.resolve_opt(optional("task_id", args.task_id, TaskRef::parse)?).await?;
        // The next task comes from the session's default repository unless one (or "*") is named.
        let repository = match repo_filter(args.repository)? {
            RepoFilter::All => None,
            RepoFilter::Named(name) => Some(name),
            RepoFilter::Default if task_id.is_none() => self.default_repository().await?.map(|r| r.name),
            RepoFilter::Default => None,
        };
        let request = ClaimTask {
            task_id,
            repository,
            lease: args.lease_seconds.map(|s| Lease::parse("lease_seconds", s)).transpose()?.unwrap_or_default(),
        };
        let actor = self.actors.actor(&ext, None).await?;
        let session = self.actors.session(&ext, agent(&peer)).await?;
        let claimed = self.service.claim_task(&actor, &session, request).await?;
        Ok(Structured(ClaimedJson { task: claimed.task.as_ref().map(TaskJson::from), reason: claimed.reason }))
    }

    /// Give back a task you hold (not_started, for anyone to claim, or blocked).
    #[tool(
        title = "Release a task",
        input_schema = input_schema::<ReleaseTaskArgs>(),
        output_schema = output_schema::<TaskJson>(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn release_task(
        &self,
        Args(args): Args<ReleaseTaskArgs>,
        ext: Extensions,
        peer: Peer<RoleServer>,
    ) -> Result<Structured<TaskJson>, ToolError> {
        let args = args?;
        let id = self.service.resolve(&TaskRef::parse("task_id", &args.task_id)?).await?;
        let status = optional("status", args.status, Status::parse)?;
        let comment = optional("comment", args.comment, CommentText::parse)?;
        let actor = self.actors.actor(&ext, None).await?;
        let session = self.actors.session(&ext, agent(&peer)).await?;
        let task = self.service.release_task(&actor, &session, id, status, comment).await?;
        Ok(Structured(TaskJson::from(&task)))
    }

    /// Delete a task (soft: it leaves listings, its history is kept).
    #[tool(
        title = "Delete a task",
        input_schema = input_schema::<DeleteTaskArgs>(),
        output_schema = output_schema::<TaskJson>(),
        annotations(read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_task(
        &self,
        Args(args): Args<DeleteTaskArgs>,
        ext: Extensions,
    ) -> Result<Structured<TaskJson>, ToolError> {
        let args = args?;
        let id = TaskRef::parse("task_id", &args.task_id)?;
        let reason = optional("reason", args.reason, CommentText::parse)?;
        let label = args.deleted_by.as_deref().map(|raw| ("deleted_by", raw));
        let actor = self.actors.actor(&ext, label).await?;
        let task = self.service.delete_task(&actor, &id, reason, None).await?;
        Ok(Structured(TaskJson::from(&task)))
    }
}

#[tool_handler(router = Self::tools())]
impl ServerHandler for TaskServer {
    /// As the macro's, but a tool that does not exist is named in the error, with the ones that do
    /// (rmcp says only "tool not found").
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !Self::tools().has_route(&request.name) {
            let tools: Vec<String> = Self::tools().list_all().into_iter().map(|t| t.name.to_string()).collect();
            let message = format!("no tool is named {:?}; the tools are {}", request.name, tools.join(", "));
            return Err(ErrorData::invalid_params(message, Some(serde_json::json!({ "tools": tools }))));
        }
        Self::tools().call(ToolCallContext::new(self, request, context)).await
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(Self::prompts().list_all()))
    }

    /// As rmcp's router, but a prompt that does not exist is named in the error, with the ones that do.
    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if !Self::prompts().has_route(&request.name) {
            let prompts: Vec<String> = Self::prompts().list_all().into_iter().map(|p| p.name).collect();
            let message = format!("no prompt is named {:?}; the prompts are {}", request.name, prompts.join(", "));
            return Err(ErrorData::invalid_params(message, Some(serde_json::json!({ "prompts": prompts }))));
        }
        let context = PromptContext::new(self, request.name, request.arguments, context);
        Self::prompts().get_prompt(context).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(resources::templates()))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let listed = async {
            let actor = self.actors.actor(&context.extensions, None).await?;
            resources::list(&self.service, &actor).await
        };
        let items = listed.await.map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(ListResourcesResult::with_all_items(items))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        resources::read(&self.service, &request.uri).await.map(Into::into)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().enable_prompts().build())
            .with_server_info(
                Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")).with_title("Shared task list"),
            )
            .with_instructions(self.instructions())
    }

    /// As rmcp's, and a client that supports roots is noted before the answer goes out, so that no
    /// tool call can start before the session knows to wait for them.
    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        #[allow(deprecated)] // roots are deprecated in the newest protocol; 2025-11-25 clients use them
        let has_roots = request.capabilities.roots.is_some();
        if let Some(default) = &self.default_repository
            && has_roots
        {
            default.client_has_roots();
        }
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Some(default) = &self.default_repository {
            default.ask_roots(&context.peer).await;
        }
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        if let Some(default) = &self.default_repository {
            default.ask_roots(&context.peer).await;
        }
    }
}
