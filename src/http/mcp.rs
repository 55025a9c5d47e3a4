//! `/mcp`: the same MCP tools as stdio, over Streamable HTTP (rmcp's service, nested in the router),
//! acting as the user whose API key the request carries. Host and Origin are validated (DNS
//! rebinding, cross-site pages); sessions are off, so any instance behind a load balancer can answer
//! any request.

use std::sync::Arc;

use axum::Router;
use axum::http::request::Parts;
use axum::middleware::from_fn_with_state;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::AppState;
use super::auth::{Guard, authenticate};
use crate::domain::Actor;
use crate::error::Error;
use crate::mcp::{ActorSource, TaskServer};

/// The `/mcp` route, behind the API-key guard.
pub fn routes(state: &AppState) -> Router<AppState> {
    let actors = ActorSource::from_request(|extensions| {
        // rmcp puts the HTTP request's parts in the call's extensions; the auth layer put the actor
        // in theirs. Without one the call is refused (the layer makes that impossible in practice).
        extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Actor>().cloned())
            .ok_or_else(|| Error::Unauthorized("no API key was verified for this request".to_owned()))
    });
    let server = TaskServer::new(state.service.clone(), actors);
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(state))
        .with_allowed_origins(state.config.allowed_origins())
        .enforce_origin_validation()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(Some(state.config.limits.sse_heartbeat))
        .with_max_request_body_bytes(state.config.limits.body_bytes)
        .with_cancellation_token(state.shutdown.child_token());
    let service =
        StreamableHttpService::new(move || Ok(server.clone()), Arc::new(NeverSessionManager::default()), config);
    let guard = from_fn_with_state((state.clone(), Guard::ApiKey), authenticate);
    Router::new().route_service("/mcp", service).route_layer(guard)
}

/// Host headers `/mcp` answers to: loopback names, the bound address, `ALLOWED_HOSTS`, and the host of
/// `PUBLIC_URL`. Anything else may be a DNS-rebinding page and gets 403.
fn allowed_hosts(state: &AppState) -> Vec<String> {
    let config = &state.config;
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !config.host.is_unspecified() {
        hosts.push(config.host.to_string());
    }
    hosts.extend(config.allowed_hosts.iter().cloned());
    if let Some(public) = config.public_url.as_deref()
        && let Some((_, rest)) = public.split_once("://")
        && let Some(authority) = rest.split('/').next().filter(|a| !a.is_empty())
    {
        hosts.push(authority.to_owned());
    }
    hosts
}
