//! REST handlers for who and what exists: `/api/me`, `/api/users`, `/api/repositories`.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::auth::Caller;
use super::errors::ApiResult;
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
