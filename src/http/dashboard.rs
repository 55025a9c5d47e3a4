//! The web dashboard: static assets embedded in the binary, served at `/` and `/assets/{name}` with their
//! content types, a strict Content-Security-Policy (no inline script or style) and caching headers.
//!
//! The page itself (`src/http/dashboard/`) is plain JavaScript and CSS with no build step; it talks only to
//! the REST API and the SSE stream, with the token the user signed in with. Nothing here needs a request's
//! identity: the assets are public, the data behind them is not.

use std::sync::LazyLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Every dashboard response carries it: script and style only from this origin (no inline code, no
/// `eval`), requests and the event stream only to this origin, no plug-ins, no framing by other sites.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// Versioned asset URLs (`?v=` the current [`VERSION`]) never change content: browsers keep them a year.
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page and unversioned URLs: the browser keeps a copy but asks first (a 304 costs almost nothing),
/// so a new binary is picked up on the next load.
const CACHE_REVALIDATE: &str = "no-cache";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("dashboard/app.js") },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("dashboard/app.css") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: include_bytes!("dashboard/icon.svg") },
];

const INDEX_TEMPLATE: &str = include_str!("dashboard/index.html");

fn short_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// A hash of every asset: it changes whenever one of them does, so the page's asset URLs change with it.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let bodies: Vec<&[u8]> = ASSETS.iter().map(|a| a.body).collect();
    short_hash(&bodies)
});

/// The page with its asset URLs versioned.
static INDEX: LazyLock<String> = LazyLock::new(|| INDEX_TEMPLATE.replace("{{version}}", &VERSION));

static INDEX_ETAG: LazyLock<String> = LazyLock::new(|| format!("\"{}\"", short_hash(&[INDEX.as_bytes()])));

static ASSET_ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| format!("\"{}\"", short_hash(&[a.body]))).collect());

/// The dashboard's routes, to merge into the `serve` router (they need no state and no authentication).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/assets/{name}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    let page: &'static str = INDEX.as_str();
    respond(&headers, page.as_bytes(), "text/html; charset=utf-8", &INDEX_ETAG, CACHE_REVALIDATE)
}

async fn asset(Path(name): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        let mut response = Response::new(Body::from("not found\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        set_common_headers(&mut response, "text/plain; charset=utf-8", CACHE_REVALIDATE);
        return response;
    };
    let versioned = query.as_deref().and_then(|q| q.strip_prefix("v=")) == Some(VERSION.as_str());
    let cache = if versioned { CACHE_IMMUTABLE } else { CACHE_REVALIDATE };
    respond(&headers, ASSETS[i].body, ASSETS[i].content_type, &ASSET_ETAGS[i], cache)
}

fn respond(
    request: &HeaderMap,
    body: &'static [u8],
    content_type: &'static str,
    etag: &str,
    cache: &'static str,
) -> Response {
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == etag || t == "*"));
    let mut response = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(Bytes::from_static(body)))
    };
    set_common_headers(&mut response, content_type, cache);
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn set_common_headers(response: &mut Response, content_type: &'static str, cache: &'static str) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The sign-in link carries the token in the fragment (never sent), and nothing leaks in a Referer.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(uri: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::builder().uri(uri);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let request = request.body(Body::empty()).unwrap();
        routes::<()>().oneshot(request).await.unwrap()
    }

    fn header_of(response: &Response, name: impl axum::http::header::AsHeaderName) -> &str {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_page_is_html_with_a_strict_csp_and_is_revalidated() {
        let response = get("/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        assert_eq!(header_of(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let csp = header_of(&response, header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "no unsafe-inline or unsafe-eval: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let body = body_of(response).await;
        assert!(body.contains(&format!("/assets/app.js?v={}", *VERSION)), "asset URLs are versioned");
        assert!(!body.contains("{{version}}"));
    }

    #[test]
    fn the_page_has_no_inline_script_style_or_handler() {
        let page = INDEX_TEMPLATE.to_ascii_lowercase();
        for (i, _) in page.match_indices("<script") {
            let tag = &page[i..i + page[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!page.contains("<style"), "inline <style>");
        assert!(!page.contains(" style="), "inline style attribute");
        for handler in [" onclick=", " onload=", " onsubmit=", " oninput=", " onchange=", "javascript:"] {
            assert!(!page.contains(handler), "inline handler {handler}");
        }
    }

    #[test]
    fn the_script_never_writes_markup_from_strings() {
        let script = std::str::from_utf8(ASSETS[0].body).unwrap();
        for sink in [".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            assert!(!script.contains(sink), "app.js uses {sink}: task text could become markup");
        }
        // An inline style attribute would be refused by the CSP; CSSOM writes (`el.style.x = …`) are fine.
        assert!(!script.contains("setAttribute('style'"), "inline style attribute");
    }

    #[tokio::test]
    async fn every_asset_the_page_names_is_served_with_its_type_and_cached_for_a_year() {
        for (name, content_type) in [
            ("app.js", "text/javascript; charset=utf-8"),
            ("app.css", "text/css; charset=utf-8"),
            ("icon.svg", "image/svg+xml"),
        ] {
            assert!(INDEX.contains(&format!("/assets/{name}?v=")), "{name} is linked from the page");
            let response = get(&format!("/assets/{name}?v={}", *VERSION), None).await;
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert_eq!(header_of(&response, header::CONTENT_TYPE), content_type);
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "public, max-age=31536000, immutable");
            assert!(!header_of(&response, header::CONTENT_SECURITY_POLICY).is_empty());
        }
    }

    #[tokio::test]
    async fn an_asset_url_with_another_version_is_revalidated_not_cached_for_a_year() {
        let response = get("/assets/app.js?v=0000", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_without_a_body() {
        let first = get("/assets/app.css", None).await;
        let etag = header_of(&first, header::ETAG).to_owned();
        assert!(etag.starts_with('"'), "{etag}");
        let second = get("/assets/app.css", Some(&format!("W/\"x\", {etag}"))).await;
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&second, header::ETAG), etag);
        assert!(body_of(second).await.is_empty());
        let page = get("/", None).await;
        let page_etag = header_of(&page, header::ETAG).to_owned();
        assert_eq!(get("/", Some(&page_etag)).await.status(), StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn an_unknown_asset_is_404() {
        let response = get("/assets/../../etc/passwd", None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(get("/assets/nope.js", None).await.status(), StatusCode::NOT_FOUND);
    }
}
