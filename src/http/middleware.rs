//! The layers every request goes through: a request id (kept if the client sent a sane one) on the
//! response and in a tracing span around all of the request's logs (tower-http's request-id and trace
//! layers); the body size limit; the time limit; the Origin guard and CORS; a few security headers
//! (tower-http's set-header). The body and time limits are ours: they answer with the JSON error
//! body, where tower-http's answer with an empty or plain-text one.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestId, RequestId};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use std::sync::Arc;

use super::errors::ApiError;
use super::{AppState, Config, origins};
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client-sent id is kept only if it is short and plain, so it cannot forge log lines.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='));
    ok.then(|| text.to_owned())
}

/// Drops a client-sent `X-Request-ID` that is not sane, so the request gets a fresh one.
pub async fn drop_unsafe_request_id(mut req: Request) -> Request {
    if req.headers().get(&REQUEST_ID).is_some_and(|v| sane_request_id(v).is_none()) {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// A fresh request id: a random UUID, 32 hex digits.
#[derive(Debug, Clone, Copy)]
pub struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string()).ok().map(RequestId::new)
    }
}

/// The span around a request: its id, method and path (never the query string: it may hold a
/// token), and the user once known. Health checks and scrapes get a debug span, so they are quiet.
fn request_span(req: &axum::http::Request<Body>) -> Span {
    let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let (method, path) = (req.method(), req.uri().path());
    if matches!(path, "/health" | "/metrics") {
        tracing::debug_span!("request", request_id = %id, %method, %path, user = tracing::field::Empty)
    } else {
        tracing::info_span!("request", request_id = %id, %method, %path, user = tracing::field::Empty)
    }
}

/// One line when a request is answered, at its span's level.
fn log_answer(response: &Response, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    let elapsed_ms = latency.as_secs_f64() * 1000.0;
    if span.metadata().is_some_and(|m| *m.level() == tracing::Level::INFO) {
        tracing::info!(status, elapsed_ms, "answered");
    } else {
        tracing::debug!(status, elapsed_ms, "answered");
    }
}

pub type Trace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&axum::http::Request<Body>) -> Span,
    (),
    fn(&Response, Duration, &Span),
    (),
    (),
    (),
>;

/// The tracing layer: a span per request ([`request_span`]), one line per answer ([`log_answer`]);
/// failures are logged where they happen (a 500 once, by the error mapping), not again here.
pub fn trace() -> Trace {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&axum::http::Request<Body>) -> Span)
        .on_request(())
        .on_response(log_answer as fn(&Response, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
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

/// Refuses requests from browser pages of origins that are not allowed (403), preflights included,
/// so CORS is a refusal rather than a silent omission of headers.
pub async fn guard_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = super::hosts::request_host(&req);
        let allowed = origin.to_str().is_ok_and(|o| origins::allowed(&state.config, o, host));
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

/// CORS for the origins the Origin rule allows ([`origins::allowed`]): explicit methods and headers,
/// preflight cached 10 minutes.
pub fn cors(config: Arc<Config>) -> CorsLayer {
    let allow = move |origin: &HeaderValue, parts: &axum::http::request::Parts| {
        let host = match parts.headers.get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => parts.uri.authority().map(|a| a.as_str()),
        };
        origin.to_str().is_ok_and(|o| origins::allowed(&config, o, host))
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(allow))
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

/// Headers every response carries: no MIME sniffing; no referrer unless a route chose one.
pub fn security_headers() -> (SetResponseHeaderLayer<HeaderValue>, SetResponseHeaderLayer<HeaderValue>) {
    (
        SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    )
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
