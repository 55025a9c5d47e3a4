//! The one HTTP error type: every failure of `serve` becomes `{"error": {"code", "message", "details"}}`
//! with the right status. `crate::error::Error` is mapped here once; a 500 is logged here, once, and
//! its detail never reaches the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::domain::ValidationError;
use crate::error::Error;
use crate::wire::TaskJson;

const INTERNAL_MESSAGE: &str = "the server met an internal error (the details are in its log); nothing was changed";
const UNAVAILABLE_MESSAGE: &str = "the service is unavailable for now; retry later";

/// An HTTP error response. Build it from a service [`Error`] or with one of the constructors.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// Extra headers (`Retry-After`, `WWW-Authenticate`, `ETag` of the current task, …).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Value::Null, headers: Vec::new() }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl ToString) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            self.headers.push((name, value));
        }
        self
    }

    /// The last value given for the header `name`, if any (the one the response carries).
    pub fn header(&self, name: &header::HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A value the caller sent was refused; `field` names it.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::from(Error::Invalid(ValidationError::new(field, message)))
    }

    /// The request itself could not be read (not JSON, a query string that does not parse, …).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"task-mcp\"")
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn too_many_attempts(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed authentication attempts from this address; retry in {retry_after_secs} s"),
        )
        .with_details(json!({ "retry_after_seconds": retry_after_secs }))
        .with_header(header::RETRY_AFTER, retry_after_secs)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit }))
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message)
    }

    pub fn route_not_found(method: &str, path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "route_not_found", format!("no route for {method} {path}"))
            .with_details(json!({ "see": "/api/openapi.json" }))
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
            .with_details(json!({ "see": "/api/openapi.json" }))
    }

    pub fn timeout() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", "the request took too long and was abandoned")
            .with_header(header::RETRY_AFTER, 1)
    }

    /// `err` met before the caller is proven: an unavailable store is said without its detail (which
    /// may name the database's host and name, or the SQLite path), and the detail is logged instead.
    pub fn before_authentication(err: Error) -> Self {
        match err {
            Error::Unavailable(detail) => {
                tracing::warn!("cannot check a credential: {detail}");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", UNAVAILABLE_MESSAGE)
                    .with_header(header::RETRY_AFTER, 1)
            }
            other => ApiError::from(other),
        }
    }

    /// A version conflict detected through `If-Match`: 412 rather than 409, with the current task.
    pub fn precondition_failed(self) -> Self {
        if self.code == "version_conflict" { Self { status: StatusCode::PRECONDITION_FAILED, ..self } } else { self }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let code = err.code();
        match err {
            Error::Invalid(v) => {
                let mut details = json!({ "field": v.field });
                if !v.accepted.is_empty() {
                    details["accepted"] = json!(v.accepted);
                }
                let message = ValidationError::to_string(&v);
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_details(details)
            }
            Error::Config(v) => {
                // The server's own setting, not the request: a 500 that says which setting (never a
                // secret: the messages carry redacted URLs), with no Retry-After.
                tracing::error!("configuration error: {v}");
                let details = json!({ "setting": v.field, "accepted": v.accepted });
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, ValidationError::to_string(&v))
                    .with_details(details)
            }
            Error::NotFound { what, ref id } => {
                let details = json!({ "what": what, "id": id });
                ApiError::new(StatusCode::NOT_FOUND, code, err.to_string()).with_details(details)
            }
            Error::Conflict { expected, ref current } => {
                let details = json!({
                    "expected_version": expected,
                    "current_version": current.version,
                    "current": TaskJson::from(current.as_ref()),
                });
                ApiError::new(StatusCode::CONFLICT, code, err.to_string())
                    .with_details(details)
                    .with_header(header::ETAG, super::tasks::etag(current.version))
            }
            Error::IdempotencyConflict { ref key, ref task_id } => {
                let details = json!({ "idempotency_key": key, "task_id": task_id });
                ApiError::new(StatusCode::CONFLICT, code, err.to_string()).with_details(details)
            }
            Error::Refused(refusal) => {
                ApiError::new(StatusCode::CONFLICT, code, refusal.message).with_details(refusal.details)
            }
            Error::Unavailable(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with_header(header::RETRY_AFTER, 1)
            }
            Error::Unauthorized(message) => ApiError::unauthorized(message),
            Error::Forbidden(message) => ApiError::forbidden(code, message),
            Error::Internal(detail) => {
                // Logged here, once, inside the request's span (which carries the request id).
                tracing::error!("internal error: {detail}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, INTERNAL_MESSAGE)
            }
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        ApiError::from(Error::Invalid(err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "details": self.details } });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The router's answer for a path it does not serve.
pub async fn fallback(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::route_not_found(method.as_str(), uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let err = ApiError::from(Error::Internal("pool poisoned at 0xdead".into()));
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!err.message.contains("0xdead"));
    }

    #[test]
    fn validation_errors_name_the_field_and_the_accepted_values() {
        let err = ApiError::from(crate::domain::Status::parse("status", "done").unwrap_err());
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.details["field"], "status");
        assert_eq!(err.details["accepted"][0], "not_started");
    }

    #[test]
    fn unavailable_is_503_with_retry_after() {
        let response =
            ApiError::from(Error::Unavailable("PostgreSQL at postgres://h/db does not answer".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn before_authentication_unavailable_names_no_database() {
        let err =
            ApiError::before_authentication(Error::Unavailable("PostgreSQL at db.internal/tasks: refused".into()));
        assert_eq!((err.status, err.code), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        assert!(!err.message.contains("db.internal") && !err.message.contains("tasks"), "{}", err.message);
    }
}
