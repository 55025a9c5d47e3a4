//! `/mcp`: the same MCP tools as stdio, over Streamable HTTP (rmcp's service, nested in the router),
//! acting as the user whose API key (or, with OAuth, access token) the request carries; a token without
//! `tasks:write` calling a tool that writes gets 403 `insufficient_scope` here. Host and Origin are validated by the layers
//! every route has (DNS rebinding, cross-site pages); sessions are off, so any instance behind a load balancer can answer
//! any request. A JSON body that is not a message the server can serve is answered here, before
//! rmcp (which would say a plain-text 415, or "method not found"): a JSON-RPC error, 400 when no
//! request could be read.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::AppState;
use super::auth::oauth::WRITE_SCOPE;
use super::auth::{Guard, authenticate};
use super::errors::ApiError;
use super::hosts;
use crate::domain::{Access, Actor, Session};
use crate::error::Error;
use crate::mcp::framing::{self, Inbound};
use crate::mcp::{ActorSource, TaskServer};

/// The `/mcp` route, behind the API-key (and access-token) guard.
pub fn routes(state: &AppState) -> Router<AppState> {
    let actors = ActorSource::from_request(
        |extensions| {
            // rmcp puts the HTTP request's parts in the call's extensions; the auth layer put the actor
            // in theirs. Without one the call is refused (the layer makes that impossible in practice).
            extensions
                .get::<Parts>()
                .and_then(|parts| parts.extensions.get::<Actor>().cloned())
                .ok_or_else(|| Error::Unauthorized("no API key was verified for this request".to_owned()))
        },
        |extensions| extensions.get::<Parts>().and_then(|parts| parts.extensions.get::<Session>().cloned()),
    );
    let server = TaskServer::new(state.service.clone(), actors);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts::allowed(&state.config))
        // Origins are judged by the one rule of every route (`origins`), in the layer before this.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(Some(state.config.limits.sse_heartbeat))
        .with_max_request_body_bytes(state.config.limits.body_bytes)
        .with_cancellation_token(state.shutdown.child_token());
    let service =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::new(NeverSessionManager::default()), config);
    let guard = from_fn_with_state((state.clone(), Guard::ApiKey), authenticate);
    Router::new()
        .route_service("/mcp", service)
        .route_layer(from_fn_with_state((state.clone(), Arc::from(TaskServer::writing_tools())), check_message))
        .route_layer(guard)
}

/// A call of a tool that writes, by an OAuth access token without `tasks:write`: 403
/// `insufficient_scope` before the call, so the client can ask for the scope (the service would refuse
/// the change too, as a tool error).
fn scope_refusal(state: &AppState, parts: &Parts, bytes: &[u8], writing_tools: &[String]) -> Option<Response> {
    let oauth = state.auth.oauth.as_ref()?;
    if parts.extensions.get::<Actor>()?.access != Access::ReadScope {
        return None;
    }
    let message: serde_json::Value = serde_json::from_slice(bytes.strip_prefix(framing::BOM).unwrap_or(bytes)).ok()?;
    let tool = message.get("params")?.get("name")?.as_str()?;
    if message.get("method")?.as_str()? != "tools/call" || !writing_tools.iter().any(|t| t == tool) {
        return None;
    }
    let error = ApiError::forbidden(
        "insufficient_scope",
        format!(
            "{tool} changes tasks: it needs the scope {WRITE_SCOPE}, which this access token was not granted (sign \
             in again granting it)"
        ),
    )
    .with_header(header::WWW_AUTHENTICATE, oauth.scope_challenge(WRITE_SCOPE));
    Some(error.into_response())
}

/// Reads a POSTed JSON body once and answers the messages rmcp would refuse without saying why;
/// the rest goes on to rmcp unchanged. Other content types are left to rmcp (415).
async fn check_message(
    State((state, writing_tools)): State<(AppState, Arc<[String]>)>,
    req: Request,
    next: Next,
) -> Response {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"));
    if req.method() != Method::POST || !json {
        return next.run(req).await;
    }
    let limit = state.config.limits.body_bytes;
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let mut response = ApiError::payload_too_large(limit).into_response();
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    match framing::classify(&bytes) {
        Inbound::Message(_) if let Some(refusal) = scope_refusal(&state, &parts, &bytes, &writing_tools) => refusal,
        Inbound::Message(_) => {
            // rmcp's own parser does not forgive a byte order mark.
            let bytes = if bytes.starts_with(framing::BOM) { bytes.slice(framing::BOM.len()..) } else { bytes };
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        // A notification is accepted even when it cannot be read (JSON-RPC never answers one).
        Inbound::Ignored => StatusCode::ACCEPTED.into_response(),
        Inbound::Refused(refusal) => {
            let status = if refusal.unreadable() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
            (status, Json(refusal.to_json())).into_response()
        }
    }
}
