//! The `Host` names the server answers to, on every route: loopback names, the bound address,
//! `ALLOWED_HOSTS` and the host of `PUBLIC_URL`. Anything else may be a DNS-rebinding page (a name the
//! attacker controls, now resolving to this server) and gets 403 before any route reads it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::http::uri::Authority;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Config;
use super::errors::ApiError;

/// The names (with an optional port) a request's Host may carry.
pub fn allowed(config: &Config) -> Vec<String> {
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

/// `host[:port]` lower-cased, brackets off; `None` when it is not an authority.
fn normal(authority: &str) -> Option<(String, Option<u16>)> {
    let authority: Authority = authority.trim().parse().ok()?;
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    Some((host, authority.port_u16()))
}

/// Whether `host` (a Host header's value) is one of `hosts`; an entry without a port allows any port.
/// `/mcp` is judged the same way by rmcp (this is as strict or stricter).
pub fn host_allowed(host: Option<&str>, hosts: &[String]) -> bool {
    let Some((host, port)) = host.and_then(normal) else {
        return false;
    };
    hosts.iter().any(|allowed| {
        // A bare IPv6 address ("::1") is not an authority until bracketed.
        let allowed = if allowed.matches(':').count() > 1 && !allowed.starts_with('[') {
            format!("[{allowed}]")
        } else {
            allowed.clone()
        };
        normal(&allowed).is_some_and(|(h, p)| h == host && p.is_none_or(|p| Some(p) == port))
    })
}

/// The Host a request names: its `Host` header, or (HTTP/2) the authority of its URI.
pub fn request_host(req: &Request) -> Option<&str> {
    match req.headers().get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => req.uri().authority().map(Authority::as_str),
    }
}

/// The layer: a request whose Host is not allowed gets 403 (`host_not_allowed`).
pub async fn guard(State(hosts): State<Arc<[String]>>, req: Request, next: Next) -> Response {
    let host = request_host(&req);
    if host_allowed(host, &hosts) {
        return next.run(req).await;
    }
    // Shown in the message only when it is plain and short: it is whatever the client sent.
    let shown = host.filter(|h| h.len() <= 255).unwrap_or("(none)").to_owned();
    tracing::info!(host = shown, "refused a request for a Host this server does not answer to");
    ApiError::forbidden(
        "host_not_allowed",
        format!("this server does not answer to the Host {shown:?}: add it to ALLOWED_HOSTS (or PUBLIC_URL)"),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_as_rmcp_matches_them_or_stricter() {
        let hosts: Vec<String> = ["localhost", "127.0.0.1", "::1", "example.com:8080"].map(String::from).to_vec();
        let allowed = |host: &str| host_allowed(Some(host), &hosts);
        for host in ["localhost:1234", "LOCALHOST", "127.0.0.1:80", "[::1]:3000", "example.com:8080"] {
            assert!(allowed(host), "{host}");
        }
        for host in ["example.com:9090", "example.com", "attacker.example", "localhost.attacker.example", "", "a b"] {
            assert!(!allowed(host), "{host}");
        }
        assert!(!host_allowed(None, &hosts));
    }
}
