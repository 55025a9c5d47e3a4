//! The one Origin rule, for REST, the event stream and `/mcp` alike: a browser page may call this
//! server when it is the server's own origin (`PUBLIC_URL`, default `http://HOST:PORT`, or the very
//! name the request was sent to, which the Host guard has already vetted), is in `CORS_ORIGINS`, or —
//! when the server is bound to a loopback address — is a loopback page on any port (`localhost`,
//! `127.0.0.1`, `[::1]`), as the MCP SDKs allow. Every other origin gets 403.

use axum::http::uri::Authority;

use super::Config;

/// The origins named by the settings: `CORS_ORIGINS` and the server's own (`PUBLIC_URL`, else
/// `http://HOST:PORT` for a specific address and port).
pub fn listed(config: &Config) -> Vec<String> {
    let mut origins = config.cors_origins.clone();
    match config.public_url.as_deref().and_then(origin_of) {
        Some(public) => origins.push(public),
        None if !config.host.is_unspecified() && config.port != 0 => {
            let host = match config.host {
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            };
            origins.push(format!("http://{host}:{}", config.port));
        }
        None => {}
    }
    origins
}

/// `scheme://authority` of a URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// Whether a page of `origin` may call this server, for a request sent to `host` (its Host header).
pub fn allowed(config: &Config, origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim_end_matches('/');
    if listed(config).iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return false;
    }
    // The page was served by this server under the name the request uses (the Host guard vetted it).
    if host.is_some_and(|h| h.eq_ignore_ascii_case(authority)) {
        return true;
    }
    config.host.is_loopback() && is_loopback_authority(authority)
}

/// `localhost`, `127.0.0.1` or `[::1]`, with any port or none (nothing else: no path, no user).
fn is_loopback_authority(authority: &str) -> bool {
    let Ok(parsed) = authority.parse::<Authority>() else { return false };
    if parsed.as_str().contains('@') {
        return false;
    }
    let name = parsed.host().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ServeArgs;
    use clap::Parser;

    fn config(args: &[&str]) -> Config {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        Config::from_args(Wrap::parse_from(all).serve)
    }

    #[test]
    fn on_loopback_any_loopback_page_and_the_own_origin_are_allowed() {
        let c = config(&["--host", "127.0.0.1", "--port", "8000"]);
        for origin in [
            "http://127.0.0.1:8000",
            "http://localhost:5173",
            "http://[::1]:3000",
            "https://localhost",
            "http://LOCALHOST:1/",
        ] {
            assert!(allowed(&c, origin, Some("127.0.0.1:8000")), "{origin}");
        }
        for origin in [
            "null",
            "http://localhost.attacker.example",
            "http://127.0.0.2:8000",
            "file://localhost",
            "http://a@localhost:1",
            "https://evil.example",
        ] {
            assert!(!allowed(&c, origin, Some("127.0.0.1:8000")), "{origin}");
        }
    }

    #[test]
    fn off_loopback_only_the_own_origin_and_the_listed_ones() {
        let c = config(&[
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--public-url",
            "https://tasks.example.com/",
            "--cors-origins",
            "https://app.example.com",
        ]);
        assert!(allowed(&c, "https://tasks.example.com", Some("10.0.0.5:8000")));
        assert!(allowed(&c, "https://app.example.com", None));
        assert!(allowed(&c, "http://10.0.0.5:8000", Some("10.0.0.5:8000")));
        assert!(!allowed(&c, "http://localhost:5173", Some("10.0.0.5:8000")));
        assert!(!allowed(&c, "http://127.0.0.1:8000", Some("10.0.0.5:8000")));
    }
}
