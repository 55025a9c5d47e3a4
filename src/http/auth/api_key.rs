//! The API key a request presents (`X-API-Key`, or `Authorization: Bearer`), and what it proves,
//! asked of the service (which owns the key format and the look-up).

use axum::http::HeaderMap;

use super::guard::bearer;
use crate::domain::Actor;
use crate::error::Error;
use crate::http::errors::ApiError;
use crate::service::TaskService;

/// The key sent with a request: `X-API-Key` wins over `Authorization: Bearer`; `Err` says why a
/// header cannot be read.
pub(super) fn presented(headers: &HeaderMap) -> Result<Option<String>, String> {
    match headers.get("x-api-key") {
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim().to_owned()))
            .map_err(|_| "the X-API-Key header is not ASCII".to_owned()),
        None => bearer(headers).map(|t| t.map(str::to_owned)),
    }
}

/// `Ok(Err(why))` for a key that proves nothing; `Err` when the store cannot answer (503, not 401).
pub(super) async fn verify(service: &TaskService, key: &str) -> Result<Result<Actor, String>, ApiError> {
    match service.verify_api_key(key).await {
        Ok(actor) => Ok(Ok(actor)),
        Err(Error::Unauthorized(why)) => Ok(Err(why)),
        // Before authentication the caller learns only that the store is unavailable, not which.
        Err(err) => Err(ApiError::before_authentication(err)),
    }
}
