//! REST handlers of working together: claiming a task (named, or the next ready one), giving it
//! back, and the tasks linked to a task. Who holds a claim is the request's credential (see the
//! auth guard's session); the rules are the service's.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use schemars::JsonSchema;
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::extract::{BodyRules, OptionalJson, TaskId};
use super::schema;
use super::tasks::{parse_opt, task_response, whole_number};
use crate::domain::{CommentText, Lease, RepoName, Session, Status};
use crate::service::ClaimTask;
use crate::wire::{ClaimedJson, LinkJson, TaskJson};

/// The session the auth layer proved (the credential): who holds the claims this request makes.
pub struct Holder(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for Holder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .map(Holder)
            .ok_or_else(|| ApiError::unauthorized("not authenticated"))
    }
}

/// The optional body of the claim routes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Only a task of this repository (claiming the next one).
    #[schemars(schema_with = "schema::repository_or_null")]
    #[serde(default)]
    pub repository: Option<String>,
    /// How long the claim holds unless renewed.
    #[schemars(schema_with = "schema::lease_or_null")]
    #[serde(default, deserialize_with = "whole_number")]
    pub lease_seconds: Option<i64>,
}

impl BodyRules for ClaimBody {}

/// The optional body of claiming a named task: only the lease (the task names its repository).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimOneBody {
    /// How long the claim holds unless renewed.
    #[schemars(schema_with = "schema::lease_or_null")]
    #[serde(default, deserialize_with = "whole_number")]
    pub lease_seconds: Option<i64>,
}

impl BodyRules for ClaimOneBody {}

fn lease(seconds: Option<i64>) -> ApiResult<Lease> {
    Ok(seconds.map(|s| Lease::parse("lease_seconds", s)).transpose()?.unwrap_or_default())
}

fn claim_request(body: ClaimBody, task_id: Option<uuid::Uuid>) -> ApiResult<ClaimTask> {
    Ok(ClaimTask {
        task_id,
        repository: parse_opt(body.repository, |raw| RepoName::parse("repository", raw))?,
        lease: lease(body.lease_seconds)?,
    })
}

/// `POST /api/tasks/claim`: the next ready task, or `task: null` and why.
pub async fn claim_next(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Holder(session): Holder,
    OptionalJson(body): OptionalJson<ClaimBody>,
) -> ApiResult<Json<ClaimedJson>> {
    let request = claim_request(body.unwrap_or_default(), None)?;
    let claimed = state.service.claim_task(&actor, &session, request).await?;
    Ok(Json(ClaimedJson { task: claimed.task.as_ref().map(TaskJson::from), reason: claimed.reason }))
}

/// `POST /api/tasks/{id}/claim`: that task (409 `already_claimed` when another session holds it).
pub async fn claim(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Holder(session): Holder,
    TaskId(id): TaskId,
    OptionalJson(body): OptionalJson<ClaimOneBody>,
) -> ApiResult<Response> {
    let id = state.service.resolve(&id).await?;
    let request =
        ClaimTask { task_id: Some(id), repository: None, lease: lease(body.unwrap_or_default().lease_seconds)? };
    let claimed = state.service.claim_task(&actor, &session, request).await?;
    let task = claimed.task.ok_or_else(|| ApiError::from(crate::error::Error::task_not_found(id)))?;
    Ok(task_response(StatusCode::OK, &task))
}

/// The optional body of `POST /api/tasks/{id}/release`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// not_started (default: anyone may claim it at once) or blocked.
    #[schemars(schema_with = "schema::release_status_or_null")]
    #[serde(default)]
    pub status: Option<String>,
    /// Why, kept in the task's history.
    #[schemars(schema_with = "schema::comment_or_null")]
    #[serde(default)]
    pub comment: Option<String>,
}

impl BodyRules for ReleaseBody {}

/// `POST /api/tasks/{id}/release`: the holder gives the task back (409 `claim_lost` otherwise).
pub async fn release(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Holder(session): Holder,
    TaskId(id): TaskId,
    OptionalJson(body): OptionalJson<ReleaseBody>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    let status = parse_opt(body.status, |raw| Status::parse("status", raw))?;
    let comment = parse_opt(body.comment, |raw| CommentText::parse("comment", raw))?;
    let id = state.service.resolve(&id).await?;
    let task = state.service.release_task(&actor, &session, id, status, comment).await?;
    Ok(task_response(StatusCode::OK, &task))
}

/// The tasks linked to one task.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct LinksJson {
    pub blocked_by: Vec<LinkJson>,
    pub blocking: Vec<LinkJson>,
    pub subtasks: Vec<LinkJson>,
    pub parent: Option<LinkJson>,
}

/// `GET /api/tasks/{id}/links`.
pub async fn links(State(state): State<AppState>, Caller(_): Caller, TaskId(id): TaskId) -> ApiResult<Json<LinksJson>> {
    let id = state.service.resolve(&id).await?;
    let links = state.service.task_links(id).await?;
    let list = |links: &[crate::domain::Link]| links.iter().map(LinkJson::from).collect();
    Ok(Json(LinksJson {
        blocked_by: list(&links.blocked_by),
        blocking: list(&links.blocking),
        subtasks: list(&links.subtasks),
        parent: links.parent.as_ref().map(LinkJson::from),
    }))
}
