//! Property tests of the HTTP edge without a server (proptest, this crate's fuzzing): JSON bodies,
//! query strings and the `If-Match` / `Idempotency-Key` headers. Nothing panics; a refusal is a 4xx
//! that names the field (or says the body is not JSON); valid input is accepted.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000 cargo nextest run -E
//! 'test(/properties/)'` runs longer. Failures are saved under `proptest-regressions/`.

use axum::extract::FromRequestParts;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::errors::ApiError;
use super::extract::{ApiQuery, BodyRules, IdempotencyHeader, IfMatch, check_query_utf8, parse_json_body};
use super::sse::StreamQuery;
use super::tasks::{CommentBody, CreateTaskBody, DeleteBody, ListQuery, PatchTaskBody, StatusBody};
use crate::domain::properties::{any_json, tricky_text};

const CREATE: &[&str] = &["title", "description", "status", "priority", "complexity", "assignee_id", "repository"];
const READ_ONLY: &[&str] = &[
    "id",
    "version",
    "created_at",
    "updated_at",
    "deleted_at",
    "created_by",
    "updated_by",
    "author",
    "deleted_by",
    "assignee_email",
];

/// A body object: known fields, read-only ones and strangers, with any values.
fn any_body() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        4 => prop::sample::select(CREATE).prop_map(str::to_owned),
        1 => prop::sample::select(READ_ONLY).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["comment", "reason", "expected_version"]).prop_map(str::to_owned),
        1 => tricky_text(8),
    ];
    prop::collection::btree_map(key, any_json(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// A refused body is a 400 that says the body is not JSON, or a 422 that names a field.
fn refusal_is_clear(err: &ApiError) -> Result<(), TestCaseError> {
    match err.status {
        StatusCode::BAD_REQUEST => prop_assert_eq!(err.code, "malformed_json"),
        StatusCode::UNPROCESSABLE_ENTITY => {
            let field = err.details["field"].as_str().unwrap_or("");
            prop_assert!(!field.is_empty(), "a 422 that names no field: {}", err.message);
        }
        other => prop_assert!(false, "a body refused with {}: {}", other, err.message),
    }
    prop_assert!(!err.message.is_empty());
    Ok(())
}

fn check_body<T: serde::de::DeserializeOwned + BodyRules>(bytes: &[u8]) -> Result<bool, TestCaseError> {
    match parse_json_body::<T>(bytes) {
        Ok(_) => Ok(true),
        Err(err) => refusal_is_clear(&err).map(|_| false),
    }
}

/// Runs a header or query extractor on a request with `name: value` (or the query `query`).
fn parts(query: &str, header: Option<(&str, &[u8])>) -> Option<axum::http::request::Parts> {
    let mut builder = Request::builder().uri(format!("/api/tasks?{query}"));
    if let Some((name, value)) = header {
        builder = builder.header(name, axum::http::HeaderValue::from_bytes(value).ok()?);
    }
    builder.body(()).ok().map(|r| r.into_parts().0)
}

fn extract<T: FromRequestParts<()>>(mut parts: axum::http::request::Parts) -> Result<T, T::Rejection> {
    futures::executor::block_on(T::from_request_parts(&mut parts, &()))
}

proptest! {
    #[test]
    fn any_bytes_as_a_body_are_accepted_or_refused_clearly(bytes in prop::collection::vec(any::<u8>(), 0..120), text in tricky_text(60)) {
        for input in [bytes, text.into_bytes()] {
            check_body::<CreateTaskBody>(&input)?;
            check_body::<PatchTaskBody>(&input)?;
            check_body::<StatusBody>(&input)?;
        }
    }

    #[test]
    fn any_body_object_is_accepted_or_refused_naming_a_field(body in any_body()) {
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        check_body::<CreateTaskBody>(&bytes)?;
        check_body::<PatchTaskBody>(&bytes)?;
        check_body::<StatusBody>(&bytes)?;
        check_body::<CommentBody>(&bytes)?;
        check_body::<DeleteBody>(&bytes)?;
        // A field the server keeps is refused by name, whatever else the body holds.
        if let Some(field) = READ_ONLY.iter().find(|f| body.contains_key(**f))
            && let Err(err) = parse_json_body::<PatchTaskBody>(&bytes)
        {
            let named = err.details["field"].as_str().unwrap_or("");
            prop_assert!(READ_ONLY.contains(&named), "{} in the body, but the refusal names {:?}", field, named);
        }
    }

    #[test]
    fn a_create_body_of_strings_is_accepted(values in prop::collection::vec((tricky_text(20), any::<bool>()), CREATE.len())) {
        let mut body = Map::new();
        for (field, (text, present)) in CREATE.iter().zip(values) {
            if present || *field == "title" {
                body.insert((*field).to_owned(), json!(text));
            }
        }
        // The body parses; the values themselves are the domain's to judge.
        prop_assert!(check_body::<CreateTaskBody>(&serde_json::to_vec(&body).unwrap_or_default())?, "{:?}", body);
    }

    #[test]
    fn any_query_string_is_accepted_or_refused_naming_a_parameter(query in "[ -~]{0,60}", pairs in prop::collection::vec((prop::sample::select(vec!["status", "q", "limit", "cursor", "user_id", "detail", "last_event_id", "colour"]), tricky_text(12)), 0..4)) {
        let encoded = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
            .collect::<Vec<_>>()
            .join("&");
        // Whatever UTF-8 text is encoded passes the UTF-8 check.
        prop_assert!(check_query_utf8(&encoded).is_ok(), "{}", encoded);
        for query in [query.replace('#', ""), encoded] {
            let Some(request) = parts(&query, None) else { continue };
            for result in [
                extract::<ApiQuery<ListQuery>>(request.clone()).map(|_| ()),
                extract::<ApiQuery<StreamQuery>>(request).map(|_| ()),
            ] {
                if let Err(err) = result {
                    prop_assert!(err.status.is_client_error());
                    prop_assert!(
                        err.details["field"].as_str().is_some_and(|f| !f.is_empty()) || err.code == "malformed_query",
                        "{}: {}", query, err.message
                    );
                }
            }
        }
    }

    #[test]
    fn if_match_takes_every_version_and_refuses_the_rest_by_name(version in any::<i64>(), raw in prop::collection::vec(any::<u8>(), 0..24)) {
        for (value, expected) in [(format!("\"{version}\""), version), (version.to_string(), version)] {
            let Some(request) = parts("", Some(("if-match", value.as_bytes()))) else { continue };
            match extract::<IfMatch>(request) {
                Ok(IfMatch(got)) => prop_assert_eq!(got, Some(expected)),
                Err(err) => {
                    prop_assert!(expected < 0, "{} refused", value);
                    prop_assert_eq!(&err.details["field"], "If-Match");
                }
            }
        }
        if let Some(request) = parts("", Some(("if-match", &raw)))
            && let Err(err) = extract::<IfMatch>(request)
        {
            prop_assert_eq!(&err.details["field"], "If-Match");
        }
        if let Some(request) = parts("", Some(("idempotency-key", &raw)))
            && let Err(err) = extract::<IdempotencyHeader>(request)
        {
            prop_assert_eq!(&err.details["field"], "Idempotency-Key");
        }
    }
}
