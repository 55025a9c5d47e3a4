//! Request parsing at the edge: JSON bodies (content type, size, syntax, unknown, duplicate and read-only fields),
//! query strings, path ids, `If-Match` and `Idempotency-Key`. Each refusal names what was wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::errors::ApiError;
use crate::domain::{IdempotencyKey, TaskRef};
use crate::json_keys::{backticked, strip_position};

/// Fields of a body that a client may not set, and why. Checked before deserializing, so the
/// answer says why rather than only "unknown field".
pub trait BodyRules {
    const READ_ONLY: &'static [(&'static str, &'static str)] = &[
        ("id", "is assigned by the server"),
        ("version", "is kept by the server: send If-Match (or expected_version) to guard a change"),
        ("created_at", "is kept by the server"),
        ("updated_at", "is kept by the server"),
        ("deleted_at", "is kept by the server: DELETE the task instead"),
        ("created_by", "is taken from your credentials"),
        ("updated_by", "is taken from your credentials"),
        ("author", "is taken from your credentials"),
        ("deleted_by", "is taken from your credentials"),
        ("assignee_email", "is derived from assignee_id (which takes a UUID, an email or \"me\")"),
    ];
}

/// A JSON body: `Content-Type: application/json`, at most the body limit, an object whose fields all
/// belong to `T`.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + BodyRules,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        parse_json_body(&bytes).map(ApiJson)
    }
}

/// An optional JSON body (for DELETE): empty means `None`; otherwise as [`ApiJson`].
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + BodyRules,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !has_type {
            return Err(ApiError::unsupported_media_type("a body must be sent with Content-Type: application/json"));
        }
        parse_json_body(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

fn require_json_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::unsupported_media_type("send the body as JSON with Content-Type: application/json"));
    };
    let mime = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let json = mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
    if !json {
        return Err(ApiError::unsupported_media_type(format!(
            "Content-Type {mime:?} is not accepted: send application/json"
        )));
    }
    Ok(())
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // The rest of the body is unread: the connection must not be reused.
        ApiError::payload_too_large(super::BODY_LIMIT_BYTES).with_header(header::CONNECTION, "close")
    } else {
        ApiError::bad_request("unreadable_body", format!("the request body could not be read: {rejection}"))
    }
}

/// Parses and checks a JSON object body into `T`, naming the field of any refusal.
pub fn parse_json_body<T: DeserializeOwned + BodyRules>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = &value else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    if let Some(key) = crate::json_keys::first_duplicate(bytes) {
        return Err(ApiError::invalid(key, "is given twice in one object: send each field once"));
    }
    for (field, why) in T::READ_ONLY {
        if map.contains_key(*field) {
            return Err(ApiError::invalid(*field, format!("cannot be set: it {why}")));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = strip_position(&err.into_inner().to_string());
        let field = if path == "." || path.is_empty() {
            backticked(&message).unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        ApiError::invalid(field, message)
    })
}

/// Query parameters into `T` (whose fields are all optional strings, parsed afterwards by the domain
/// so each refusal names its parameter).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check_query_utf8(parts.uri.query().unwrap_or(""))?;
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(err)) => {
                let message = err.body_text();
                let message = message.strip_prefix("Failed to deserialize query string: ").unwrap_or(&message);
                let field = backticked(message).unwrap_or_else(|| "query".to_owned());
                Err(ApiError::invalid(field, message.to_owned()))
            }
            Err(other) => Err(ApiError::bad_request("malformed_query", other.body_text())),
        }
    }
}

/// Refuses a query parameter whose percent-decoded bytes are not UTF-8: the query-string parser
/// would turn them into U+FFFD and search for that, silently.
pub fn check_query_utf8(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name_text = percent_encoding::percent_decode_str(name).decode_utf8();
        let Ok(name_text) = name_text else {
            return Err(ApiError::invalid("query", format!("the parameter name {name:?} is not UTF-8 once decoded")));
        };
        if percent_encoding::percent_decode_str(value).decode_utf8().is_err() {
            return Err(ApiError::invalid(
                name_text.into_owned(),
                format!("{value:?} is not UTF-8 once percent-decoded: encode the text as UTF-8"),
            ));
        }
    }
    Ok(())
}

/// The `{id}` of a task route: a UUID or a key (`WEB-42`, any case).
pub struct TaskId(pub TaskRef);

impl<S: Send + Sync> FromRequestParts<S> for TaskId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::invalid("id", e.body_text()))?;
        Ok(TaskId(TaskRef::parse("id", &raw)?))
    }
}

/// `If-Match: "7"`: the version the client read. `*` (or no header) means no condition.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else { return Ok(IfMatch(None)) };
        let raw = value.to_str().unwrap_or("").trim();
        if raw == "*" {
            return Ok(IfMatch(None));
        }
        let unquoted = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
        match unquoted.parse::<i64>() {
            Ok(version) if version >= 0 => Ok(IfMatch(Some(version))),
            _ => Err(ApiError::invalid(
                "If-Match",
                format!("{raw:?} is not an ETag of this API: send back the ETag of the task you read, e.g. \"3\""),
            )),
        }
    }
}

/// `Idempotency-Key`: a retried create with the same key returns the first task.
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyHeader(None)) };
        let raw = value.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?;
        Ok(IdempotencyHeader(Some(IdempotencyKey::parse("Idempotency-Key", raw)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        limit: Option<i64>,
    }
    impl BodyRules for Body {}

    #[test]
    fn body_errors_name_the_field() {
        let cases: [(&str, &str, &str); 5] = [
            (r#"{"limit": 5}"#, "title", "missing field"),
            (r#"{"title": "x", "limit": "ten"}"#, "limit", "invalid type"),
            (r#"{"title": "x", "colour": 1}"#, "colour", "unknown field"),
            (r#"{"title": "x", "version": 9}"#, "version", "cannot be set"),
            (r#"[1, 2]"#, "body", "JSON object"),
        ];
        for (input, field, message) in cases {
            let err = parse_json_body::<Body>(input.as_bytes()).unwrap_err();
            assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY, "{input}");
            assert_eq!(err.details["field"], field, "{input}");
            assert!(err.message.contains(message), "{input}: {}", err.message);
        }
    }

    #[test]
    fn a_query_value_that_is_not_utf8_names_its_parameter() {
        let err = check_query_utf8("limit=5&q=%FF%FE").unwrap_err();
        assert_eq!(err.details["field"], "q");
        assert!(check_query_utf8("q=caf%C3%A9&status=").is_ok());
        assert!(check_query_utf8("").is_ok());
    }

    #[test]
    fn an_unknown_field_is_named_even_when_empty_or_holding_a_backtick() {
        // Found by the property tests: `{"": 1}` was refused naming the field "".
        let err = parse_json_body::<Body>(br#"{"title": "x", "": 1}"#).unwrap_err();
        assert_eq!(err.details["field"], "body");
        let err = parse_json_body::<Body>(br#"{"title": "x", "a`b": 1}"#).unwrap_err();
        assert_eq!(err.details["field"], "a`b");
    }

    #[test]
    fn malformed_json_is_a_400() {
        for input in [&b"{"[..], b"{\"title\": \"\\ud800\"", b"\xff\xfe", b""] {
            let err = parse_json_body::<Body>(input).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.code, "malformed_json");
        }
    }
}
