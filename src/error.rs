//! The one error type of the service and stores: callers branch on its variants, and each frontend
//! maps it once (to an MCP tool error, to an HTTP status and body).

use crate::domain::{Task, ValidationError, VersionConflict};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input was refused; nothing was written.
    #[error("{0}")]
    Invalid(ValidationError),

    /// A setting of the process (an environment variable or flag, named in the error) that cannot be
    /// right, such as a `DATABASE_URL` of an unknown scheme: retrying will not help, the setting must
    /// change. Not the caller's input, and not an outage.
    #[error("{0}")]
    Config(ValidationError),

    /// The thing named does not exist (or was deleted).
    #[error("{what} {id} was not found")]
    NotFound { what: &'static str, id: String },

    /// `expected_version` was stale: someone else changed the task first. Carries the task as it is now.
    #[error("version conflict: task {} is at version {}, not {expected}", current.id, current.version)]
    Conflict { expected: i64, current: Box<Task> },

    /// An idempotency key this user already used, sent again with a different request: a retry must
    /// repeat the first request, a new task needs a new key. Names the key and the task it made.
    #[error(
        "the idempotency key {key:?} was already used by you for a different request (it made task {task_id}): \
         a retry must repeat the same fields; send a new key for a new task"
    )]
    IdempotencyConflict { key: String, task_id: String },

    /// A backend (the database, Redis) cannot be reached. The message says which, and where
    /// (never with a password).
    /// The work's state forbids the change (a claim held by another session, a lost claim, a cycle,
    /// open subtasks): `code` names which, `details` what the caller needs to act.
    #[error("{}", .0.message)]
    Refused(crate::domain::Refusal),

    #[error("{0}")]
    Unavailable(String),

    /// The credential given does not prove who the caller is.
    #[error("{0}")]
    Unauthorized(String),

    /// The caller is known but may not do this (a read-only key asking for a change).
    #[error("{0}")]
    Forbidden(String),

    /// A bug or an unexpected backend answer. Logged in full; callers see only a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(ValidationError::new(field, message))
    }

    pub fn task_not_found(id: impl std::fmt::Display) -> Self {
        Error::NotFound { what: "task", id: id.to_string() }
    }

    /// A stable machine-readable code for the error's kind.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid_argument",
            Error::Config(_) => "configuration_error",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "version_conflict",
            Error::IdempotencyConflict { .. } => "idempotency_conflict",
            Error::Refused(refusal) => refusal.code,
            Error::Unavailable(_) => "unavailable",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "read_only",
            Error::Internal(_) => "internal",
        }
    }
}

impl From<ValidationError> for Error {
    fn from(err: ValidationError) -> Self {
        Error::Invalid(err)
    }
}

impl From<crate::domain::Refusal> for Error {
    fn from(refusal: crate::domain::Refusal) -> Self {
        Error::Refused(refusal)
    }
}

impl From<crate::domain::WorkError> for Error {
    fn from(err: crate::domain::WorkError) -> Self {
        match err {
            crate::domain::WorkError::Invalid(v) => Error::Invalid(v),
            crate::domain::WorkError::Refused(r) => Error::Refused(r),
        }
    }
}

impl From<VersionConflict> for Error {
    fn from(conflict: VersionConflict) -> Self {
        Error::Conflict { expected: conflict.expected, current: conflict.current }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
