//! The layers every request goes through: a request id (kept if the client sent a sane one) on the
//! response and in a tracing span around all of the request's logs; the body size limit; the time
//! limit; the Origin guard and CORS; a few security headers.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use super::AppState;
use super::errors::ApiError;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served (in the request's extensions).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A client-sent id is kept only if it is short and plain, so it cannot forge log lines.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='));
    ok.then(|| text.to_owned())
}

/// Gives the request an id, runs it inside a span carrying that id, logs one line when it ends, and
/// returns the id in `X-Request-ID`. The span records the path only: a query string may hold a token.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        user = tracing::field::Empty,
    );
    let quiet = matches!(req.uri().path(), "/health" | "/metrics");
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if quiet {
            tracing::debug!(status, elapsed_ms, "answered");
        } else {
            tracing::info!(status, elapsed_ms, "answered");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Refuses a body announced larger than the limit at once (413 with the JSON error), before reading
/// it. Bodies without a length are cut at the same limit where they are read.
pub async fn limit_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config.limits.body_bytes;
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        // The body is left unread, so the connection cannot carry another request: say so, or the
        // client would send its next request into a connection the server is closing.
        let mut response = ApiError::payload_too_large(limit).into_response();
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(req).await
}

/// Abandons a request that has not produced its response head in time (streams are not cut: their
/// head comes at once).
pub async fn time_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config.limits.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout().into_response(),
    }
}

/// Whether a browser page of `origin` may call this server: it is in `CORS_ORIGINS` (or is
/// `PUBLIC_URL`), or — outside `/mcp` — it is this very server (the dashboard's own origin).
pub fn origin_allowed(state: &AppState, origin: &str, host: Option<&str>, strict: bool) -> bool {
    let origin = origin.trim_end_matches('/');
    if state.config.allowed_origins().iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return true;
    }
    if strict {
        return false;
    }
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Refuses requests from browser pages of origins that are not allowed (403), preflights included,
/// so CORS is a refusal rather than a silent omission of headers.
pub async fn guard_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let strict = req.uri().path() == "/mcp" || req.uri().path().starts_with("/mcp/");
        let allowed = origin.to_str().is_ok_and(|o| origin_allowed(&state, o, host, strict));
        if !allowed {
            let shown = origin.to_str().unwrap_or("(not text)");
            tracing::info!(origin = shown, "refused a request from an origin that is not allowed");
            return ApiError::forbidden(
                "origin_not_allowed",
                format!("requests from the origin {shown:?} are not allowed: add it to CORS_ORIGINS"),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// CORS for the origins in `CORS_ORIGINS`: explicit methods and headers, preflight cached 10 minutes.
pub fn cors(origins: &[String]) -> CorsLayer {
    let values: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(values))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
            REQUEST_ID,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            REQUEST_ID,
            HeaderName::from_static("idempotent-replayed"),
            HeaderName::from_static("mcp-session-id"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Headers every response carries.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_request_ids_are_kept() {
        assert_eq!(sane_request_id(&HeaderValue::from_static("abc-123")).as_deref(), Some("abc-123"));
        assert!(sane_request_id(&HeaderValue::from_static("a b")).is_none());
        assert!(sane_request_id(&HeaderValue::from_str(&"x".repeat(129)).unwrap()).is_none());
        assert!(sane_request_id(&HeaderValue::from_static("")).is_none());
    }
}
