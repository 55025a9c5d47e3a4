//! REST handlers for tasks, their comments and history: parse into domain types, call `TaskService`,
//! answer with the `crate::wire` shapes. No rule lives here.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::AppState;
use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery, BodyRules, IdempotencyHeader, IfMatch, OptionalJson, TaskId};
use super::schema;
use crate::domain::{
    CommentText, Complexity, Description, Priority, RepoName, SearchText, Status, Task, Title, UserRef, given,
    parse_uuid,
};
use crate::service::{CreateTask, ListTasks, MAX_PAGE_SIZE, UpdateTask};
use crate::wire::{CommentJson, Detail, HistoryJson, TaskJson, TaskPageJson};

/// The `ETag` of a task at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A task as a response: the task JSON, its `ETag`.
pub(super) fn task_response(status: StatusCode, task: &Task) -> Response {
    let mut response = (status, Json(TaskJson::from(task))).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(task.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `null` and absent differ: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An integer (a version, a lease), also when written with a zero fraction (`3.0`), as JSON Schema's
/// `integer` allows.
pub(super) fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        // The bounds are exact in f64; inside them the cast is exact for whole numbers.
        Some(f) if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom(format!("{number} is not a whole number"))),
    }
}

pub(super) fn parse_opt<T, E: Into<ApiError>>(
    value: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> ApiResult<Option<T>> {
    value.map(|v| parse(&v)).transpose().map_err(Into::into)
}

/// A list of task ids.
pub(super) fn task_ids(field: &str, values: Option<Vec<String>>) -> ApiResult<Vec<uuid::Uuid>> {
    Ok(values.unwrap_or_default().iter().map(|raw| parse_uuid(field, raw)).collect::<Result<_, _>>()?)
}

/// `true` or `false`.
fn flag(field: &str, raw: &str) -> Result<bool, crate::domain::ValidationError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(crate::domain::ValidationError::new(field, format!("{raw:?} is not a flag"))
            .with_accepted(["true", "false"])),
    }
}

/// A field that may be changed but not cleared: `null` is refused.
fn required<T>(field: &str, value: Option<Option<T>>) -> ApiResult<Option<T>> {
    match value {
        Some(None) => Err(ApiError::invalid(field, "cannot be null: leave it out to keep it")),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}

/// Two ways to say which version was read must agree; `If-Match` wins the status code (412).
fn expected_version(if_match: IfMatch, body: Option<i64>) -> ApiResult<(Option<i64>, bool)> {
    if let Some(version) = body.filter(|v| *v < 1) {
        return Err(ApiError::invalid(
            "expected_version",
            format!("{version} is not a version: versions start at 1 (send the version you read)"),
        ));
    }
    match (if_match.0, body) {
        // Two versions read that disagree: at least one precondition fails.
        (Some(a), Some(b)) if a != b => {
            Err(ApiError::invalid("expected_version", format!("is {b} but If-Match says {a}: send one of them")))
        }
        (Some(a), _) => Ok((Some(a), true)),
        (None, b) => Ok((b, false)),
    }
}

fn conflict_status(from_if_match: bool) -> impl FnOnce(crate::error::Error) -> ApiError {
    move |err| {
        let err = ApiError::from(err);
        if from_if_match { err.precondition_failed() } else { err }
    }
}

/// Filters of `GET /api/tasks` (the same as the `get_tasks` tool).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only tasks assigned to this user: UUID, email, or "me".
    #[schemars(schema_with = "schema::user")]
    #[serde(default)]
    pub user_id: Option<String>,
    /// Only tasks of this repository.
    #[schemars(schema_with = "schema::repository")]
    #[serde(default)]
    pub repository: Option<String>,
    /// not_started | in_progress | blocked | completed | cancelled
    #[schemars(schema_with = "schema::status")]
    #[serde(default)]
    pub status: Option<String>,
    /// Same as user_id (both must name the same user).
    #[schemars(schema_with = "schema::user")]
    #[serde(default)]
    pub assignee: Option<String>,
    /// low | medium | high | urgent
    #[schemars(schema_with = "schema::priority")]
    #[serde(default)]
    pub priority: Option<String>,
    /// Text found in the title or description, matched literally.
    #[schemars(schema_with = "schema::search")]
    #[serde(default)]
    pub q: Option<String>,
    /// Page size, 1-200 (default 50).
    #[schemars(schema_with = "schema::page_size")]
    #[serde(default)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// "full" (default here) or "summary".
    #[schemars(schema_with = "schema::detail")]
    #[serde(default)]
    pub detail: Option<String>,
    /// "true": only tasks the caller could claim now.
    #[schemars(schema_with = "schema::flag")]
    #[serde(default)]
    pub ready: Option<String>,
    /// Only the subtasks of this task.
    #[schemars(schema_with = "schema::task_id_or_null")]
    #[serde(default)]
    pub parent_id: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<TaskPageJson>> {
    let mut assignees = Vec::new();
    for (field, raw) in [("user_id", query.user_id), ("assignee", query.assignee)] {
        if let Some(raw) = given(raw) {
            assignees.push(UserRef::parse(field, &raw)?);
        }
    }
    let limit = parse_opt(given(query.limit), |raw| {
        raw.trim().parse::<u32>().map_err(|_| {
            ApiError::invalid("limit", format!("{raw:?} is not a page size: give a number from 1 to {MAX_PAGE_SIZE}"))
        })
    })?;
    let detail = parse_opt(given(query.detail), |raw| Detail::parse("detail", raw))?.unwrap_or(Detail::Full);
    let request = ListTasks {
        assignees,
        repository: parse_opt(given(query.repository), |raw| RepoName::parse("repository", raw))?,
        status: parse_opt(given(query.status), |raw| Status::parse("status", raw))?,
        priority: parse_opt(given(query.priority), |raw| Priority::parse("priority", raw))?,
        query: parse_opt(given(query.q), |raw| SearchText::parse("q", raw))?,
        limit,
        cursor: given(query.cursor),
        ready: parse_opt(given(query.ready), |raw| flag("ready", raw))?.unwrap_or(false),
        parent_id: parse_opt(given(query.parent_id), |raw| parse_uuid("parent_id", raw))?,
    };
    let page = state.service.list_tasks(&actor, request).await?;
    Ok(Json(TaskPageJson::new(&page.tasks, page.next_cursor, detail)))
}

pub async fn get(State(state): State<AppState>, Caller(_): Caller, TaskId(id): TaskId) -> ApiResult<Response> {
    let task = state.service.get_task(&id).await?;
    Ok(task_response(StatusCode::OK, &task))
}

/// The body of `POST /api/tasks`. Who creates it is taken from the credentials.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskBody {
    /// One line, at most 500 characters.
    #[schemars(schema_with = "schema::title")]
    pub title: String,
    /// Up to 65,536 characters.
    #[schemars(schema_with = "schema::description")]
    #[serde(default)]
    pub description: Option<String>,
    /// not_started (default) | in_progress | blocked | completed | cancelled
    #[schemars(schema_with = "schema::status_or_null")]
    #[serde(default)]
    pub status: Option<String>,
    /// low | medium (default) | high | urgent
    #[schemars(schema_with = "schema::priority_or_null")]
    #[serde(default)]
    pub priority: Option<String>,
    /// low | medium (default) | high
    #[schemars(schema_with = "schema::complexity_or_null")]
    #[serde(default)]
    pub complexity: Option<String>,
    /// UUID, email (new users are created), or "me".
    #[schemars(schema_with = "schema::user_or_null")]
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// Repository name, e.g. "org/api" (created on first use).
    #[schemars(schema_with = "schema::repository_or_null")]
    #[serde(default)]
    pub repository: Option<String>,
    /// Tasks it waits on.
    #[schemars(schema_with = "schema::task_ids_or_null")]
    #[serde(default)]
    pub blocked_by: Option<Vec<String>>,
    /// The task it is a step of.
    #[schemars(schema_with = "schema::task_id_or_null")]
    #[serde(default)]
    pub parent_id: Option<String>,
}

impl BodyRules for CreateTaskBody {}

pub async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    IdempotencyHeader(idempotency_key): IdempotencyHeader,
    ApiJson(body): ApiJson<CreateTaskBody>,
) -> ApiResult<Response> {
    let request = CreateTask {
        title: Title::parse("title", &body.title)?,
        description: parse_opt(body.description, |raw| Description::parse("description", raw))?,
        assignee: parse_opt(body.assignee_id, |raw| UserRef::parse("assignee_id", raw))?,
        repository: parse_opt(body.repository, |raw| RepoName::parse("repository", raw))?,
        status: parse_opt(body.status, |raw| Status::parse("status", raw))?,
        priority: parse_opt(body.priority, |raw| Priority::parse("priority", raw))?,
        complexity: parse_opt(body.complexity, |raw| Complexity::parse("complexity", raw))?,
        idempotency_key,
        parent_id: parse_opt(body.parent_id, |raw| parse_uuid("parent_id", raw))?,
        blocked_by: task_ids("blocked_by", body.blocked_by)?,
    };
    let created = state.service.create_task(&actor, request).await?;
    let mut response = task_response(StatusCode::CREATED, &created.task);
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/tasks/{}", created.task.id)) {
        headers.insert(header::LOCATION, location);
    }
    if created.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The body of `PATCH /api/tasks/{id}`: only the fields given change; `null` clears a nullable field.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTaskBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::title")]
    pub title: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::description")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::status")]
    pub status: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::priority")]
    pub priority: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::complexity")]
    pub complexity: Option<Option<String>>,
    /// UUID, email, or "me"; `null` unassigns.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::user_or_null")]
    pub assignee_id: Option<Option<String>>,
    /// Repository name; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::repository_or_null")]
    pub repository: Option<Option<String>>,
    /// Why, kept in the task's history.
    #[schemars(schema_with = "schema::comment_or_null")]
    #[serde(default)]
    pub comment: Option<String>,
    /// The version read (the same as `If-Match`).
    #[schemars(schema_with = "schema::version_or_null")]
    #[serde(default, deserialize_with = "whole_number")]
    pub expected_version: Option<i64>,
    /// Tasks it starts waiting on.
    #[schemars(schema_with = "schema::task_ids_or_null")]
    #[serde(default)]
    pub add_blocked_by: Option<Vec<String>>,
    /// Tasks it stops waiting on.
    #[schemars(schema_with = "schema::task_ids_or_null")]
    #[serde(default)]
    pub remove_blocked_by: Option<Vec<String>>,
    /// The task it is a step of; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(schema_with = "schema::task_id_or_null")]
    pub parent_id: Option<Option<String>>,
}

impl BodyRules for PatchTaskBody {}

pub async fn patch(
    State(state): State<AppState>,
    Caller(actor): Caller,
    TaskId(id): TaskId,
    if_match: IfMatch,
    ApiJson(body): ApiJson<PatchTaskBody>,
) -> ApiResult<Response> {
    let (expected, from_if_match) = expected_version(if_match, body.expected_version)?;
    let request = UpdateTask {
        title: parse_opt(required("title", body.title)?, |raw| Title::parse("title", raw))?,
        description: body
            .description
            .map(|d| parse_opt(d, |raw| Description::parse("description", raw)))
            .transpose()?,
        status: parse_opt(required("status", body.status)?, |raw| Status::parse("status", raw))?,
        priority: parse_opt(required("priority", body.priority)?, |raw| Priority::parse("priority", raw))?,
        complexity: parse_opt(required("complexity", body.complexity)?, |raw| Complexity::parse("complexity", raw))?,
        assignee: body.assignee_id.map(|a| parse_opt(a, |raw| UserRef::parse("assignee_id", raw))).transpose()?,
        repository: body.repository.map(|r| parse_opt(r, |raw| RepoName::parse("repository", raw))).transpose()?,
        comment: parse_opt(body.comment, |raw| CommentText::parse("comment", raw))?,
        expected_version: expected,
        parent: body.parent_id.map(|p| parse_opt(p, |raw| parse_uuid("parent_id", raw))).transpose()?,
        add_blocked_by: task_ids("add_blocked_by", body.add_blocked_by)?,
        remove_blocked_by: task_ids("remove_blocked_by", body.remove_blocked_by)?,
    };
    let task = state.service.update_task(&actor, &id, request).await.map_err(conflict_status(from_if_match))?;
    Ok(task_response(StatusCode::OK, &task))
}

/// The body of `PUT /api/tasks/{id}/status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    /// not_started | in_progress | blocked | completed | cancelled
    #[schemars(schema_with = "schema::status")]
    pub status: String,
    /// Why, kept in the task's history.
    #[schemars(schema_with = "schema::comment_or_null")]
    #[serde(default)]
    pub comment: Option<String>,
    /// The version read (the same as `If-Match`).
    #[schemars(schema_with = "schema::version_or_null")]
    #[serde(default, deserialize_with = "whole_number")]
    pub expected_version: Option<i64>,
}

impl BodyRules for StatusBody {}

pub async fn put_status(
    State(state): State<AppState>,
    Caller(actor): Caller,
    TaskId(id): TaskId,
    if_match: IfMatch,
    ApiJson(body): ApiJson<StatusBody>,
) -> ApiResult<Response> {
    let (expected, from_if_match) = expected_version(if_match, body.expected_version)?;
    let status = Status::parse("status", &body.status)?;
    let comment = parse_opt(body.comment, |raw| CommentText::parse("comment", raw))?;
    let task = state
        .service
        .update_status(&actor, &id, status, comment, expected)
        .await
        .map_err(conflict_status(from_if_match))?;
    Ok(task_response(StatusCode::OK, &task))
}

/// The optional body of `DELETE /api/tasks/{id}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Why, kept in the task's history.
    #[schemars(schema_with = "schema::comment_or_null")]
    #[serde(default)]
    pub reason: Option<String>,
    /// The version read (the same as `If-Match`).
    #[schemars(schema_with = "schema::version_or_null")]
    #[serde(default, deserialize_with = "whole_number")]
    pub expected_version: Option<i64>,
}

impl BodyRules for DeleteBody {}

pub async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    TaskId(id): TaskId,
    if_match: IfMatch,
    OptionalJson(body): OptionalJson<DeleteBody>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    let (expected, from_if_match) = expected_version(if_match, body.expected_version)?;
    let reason = parse_opt(body.reason, |raw| CommentText::parse("reason", raw))?;
    let task =
        state.service.delete_task(&actor, &id, reason, expected).await.map_err(conflict_status(from_if_match))?;
    Ok((StatusCode::OK, Json(TaskJson::from(&task))).into_response())
}

pub async fn list_comments(
    State(state): State<AppState>,
    Caller(_): Caller,
    TaskId(id): TaskId,
) -> ApiResult<Json<Vec<CommentJson>>> {
    let comments = state.service.list_comments(&id).await?;
    Ok(Json(comments.iter().map(CommentJson::from).collect()))
}

/// The body of `POST /api/tasks/{id}/comments`. The author is taken from the credentials.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// Up to 16,384 characters, line breaks allowed.
    #[schemars(schema_with = "schema::comment")]
    pub comment: String,
}

impl BodyRules for CommentBody {}

pub async fn add_comment(
    State(state): State<AppState>,
    Caller(actor): Caller,
    TaskId(id): TaskId,
    ApiJson(body): ApiJson<CommentBody>,
) -> ApiResult<Response> {
    let text = CommentText::parse("comment", &body.comment)?;
    let (comment, task) = state.service.add_comment(&actor, &id, text).await?;
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&etag(task.version)) {
        headers.insert(header::ETAG, value);
    }
    Ok((StatusCode::CREATED, headers, Json(CommentJson::from(&comment))).into_response())
}

pub async fn history(
    State(state): State<AppState>,
    Caller(_): Caller,
    TaskId(id): TaskId,
) -> ApiResult<Json<Vec<HistoryJson>>> {
    let history = state.service.list_history(&id).await?;
    Ok(Json(history.iter().map(HistoryJson::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extract::parse_json_body;

    #[test]
    fn a_patch_tells_null_from_absent() {
        let body: PatchTaskBody = parse_json_body(br#"{"description": null, "title": "x"}"#).unwrap();
        assert_eq!(body.description, Some(None));
        assert_eq!(body.title, Some(Some("x".to_owned())));
        assert_eq!(body.repository, None);
        assert!(required("title", Some(None::<String>)).is_err());
    }

    #[test]
    fn impersonation_fields_are_refused() {
        for field in ["updated_by", "created_by", "author"] {
            let body = format!(r#"{{"title": "x", "{field}": "boss@example.com"}}"#);
            let err = parse_json_body::<CreateTaskBody>(body.as_bytes()).unwrap_err();
            assert_eq!(err.details["field"], field);
            assert!(err.message.contains("credentials"), "{}", err.message);
        }
    }
}
