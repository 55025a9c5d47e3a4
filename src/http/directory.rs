//! REST handlers for who and what exists: `/api/me`, `/api/users`, `/api/repositories` (and a
//! repository's task key prefix).

use axum::Json;
use axum::extract::{Path, State};
use schemars::JsonSchema;
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::extract::{ApiJson, BodyRules};
use crate::domain::{KeyPrefix, RepoName};
use crate::wire::{RepositoryJson, UserJson};

/// The caller, as the store knows them (created on first use).
pub async fn me(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<UserJson>> {
    let user = state.service.me(&actor).await?;
    Ok(Json(UserJson::from(&user)))
}

pub async fn users(State(state): State<AppState>, Caller(_): Caller) -> ApiResult<Json<Vec<UserJson>>> {
    let users = state.service.list_users().await?;
    Ok(Json(users.iter().map(UserJson::from).collect()))
}

pub async fn repositories(State(state): State<AppState>, Caller(_): Caller) -> ApiResult<Json<Vec<RepositoryJson>>> {
    let repositories = state.service.list_repositories().await?;
    Ok(Json(repositories.iter().map(RepositoryJson::from).collect()))
}

/// The body of `PATCH /api/repositories/{name}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepositoryBody {
    /// The new prefix of its task keys: 2 to 6 letters or digits (upper-cased).
    #[schemars(length(min = 2, max = 6), regex(pattern = r"^[A-Za-z0-9]{2,6}$"))]
    pub key_prefix: String,
}

impl BodyRules for RepositoryBody {}

pub async fn update_repository(
    State(state): State<AppState>,
    Caller(_): Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RepositoryBody>,
) -> ApiResult<Json<RepositoryJson>> {
    let name = RepoName::parse("name", &name).map_err(ApiError::from)?;
    let prefix = KeyPrefix::parse("key_prefix", &body.key_prefix)?;
    let repository = state.service.set_key_prefix(&name, &prefix).await?;
    Ok(Json(RepositoryJson::from(&repository)))
}
