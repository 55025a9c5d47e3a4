//! The auth guard: the route layer that proves who calls (per [`Guard`]), the [`Caller`] extractor,
//! and reading a token from the `Authorization` header or the `access_token` query parameter. On
//! `/mcp` with OAuth, a bearer credential that is not an API key is an access token, and every 401
//! there points the client at the metadata (RFC 9728).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::api_key;
use super::oauth::{Refusal, ResourceServer, Verified};
use crate::domain::{Actor, Session};
use crate::http::AppState;
use crate::http::errors::ApiError;
use crate::service::api_keys::API_KEY_PREFIX;

/// How a route is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// No credential (health, metrics, the OpenAPI document).
    Public,
    /// `Authorization: Bearer <JWT>`.
    Jwt,
    /// A JWT or a stream ticket, in the header or (for EventSource, which cannot send headers) the
    /// `access_token` query parameter. The event stream only: elsewhere a ticket is refused.
    JwtOrQuery,
    /// An API key: `X-API-Key` or `Authorization: Bearer`; with OAuth, an access token too.
    ApiKey,
}

fn client_ip(parts_ext: &axum::http::Extensions) -> IpAddr {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

pub(super) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| "the Authorization header is not ASCII".to_owned())?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err("the Authorization header must be `Bearer <token>`".to_owned()),
    }
}

/// `access_token` from the query string, decoded as a form value (`+` is a space, `%XX` a byte).
fn query_token(query: Option<&str>) -> Option<String> {
    let query = query?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "access_token")
            .then(|| percent_encoding::percent_decode_str(&value.replace('+', " ")).decode_utf8_lossy().into_owned())
    })
}

/// The route layer that proves who calls, per [`Guard`], and puts the [`Actor`] in the request.
pub async fn authenticate(State((state, guard)): State<(AppState, Guard)>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    // Only Sync parts of the request are held across the store lookup (the body is not Sync).
    let (headers, query) = (req.headers().clone(), req.uri().query().map(str::to_owned));
    match identify(&state, guard, &headers, query.as_deref(), ip).await {
        Ok(Some((actor, session))) => {
            tracing::Span::current().record("user", actor.email.as_str());
            // On REST a read-only key is refused any change before its body is read (the service
            // refuses it too); opening a stream ticket is a read. On `/mcp` every call is a POST: the
            // tools decide.
            let reads = guard == Guard::ApiKey
                || matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
                || req.uri().path() == "/api/tasks/stream/ticket";
            if !reads && let Err(err) = crate::service::may_change(&actor, "change anything") {
                return axum::response::IntoResponse::into_response(ApiError::from(err));
            }
            req.extensions_mut().insert(session);
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Ok(None) => next.run(req).await,
        Err(err) => {
            let err = match &state.auth.oauth {
                // Whatever was wrong, the client learns where to sign in.
                Some(oauth)
                    if guard == Guard::ApiKey
                        && err.status == StatusCode::UNAUTHORIZED
                        && !err
                            .header(&header::WWW_AUTHENTICATE)
                            .is_some_and(|v| v.as_bytes().windows(17).any(|w| w == b"resource_metadata")) =>
                {
                    let challenge = oauth.challenge(None);
                    err.with_header(header::WWW_AUTHENTICATE, challenge)
                }
                _ => err,
            };
            axum::response::IntoResponse::into_response(err)
        }
    }
}

async fn identify(
    state: &AppState,
    guard: Guard,
    headers: &HeaderMap,
    query: Option<&str>,
    ip: IpAddr,
) -> Result<Option<(Actor, Session)>, ApiError> {
    if guard == Guard::Public {
        return Ok(None);
    }
    if guard == Guard::JwtOrQuery && is_cross_site_no_cors(headers) {
        // An `<img>` or `<script>` on another site pointing here: never an EventSource of ours (that is
        // same-origin or CORS). Refused before it counts, so no web page can lock an address out.
        return Err(ApiError::forbidden(
            "cross_site_request",
            "the event stream is not served to cross-site no-cors requests (open it with EventSource or fetch)",
        ));
    }
    // REST takes an API key in the headers too (never in the query string, which logs keep), so a
    // read-only key can read there; whether it may change anything is the service's to say.
    let rest_key = matches!(guard, Guard::Jwt | Guard::JwtOrQuery) && api_key_header(headers);
    let presented: Result<Option<String>, String> = match guard {
        Guard::Public => Ok(None),
        _ if rest_key => api_key::presented(headers),
        Guard::Jwt => bearer(headers).map(|t| t.map(str::to_owned)),
        Guard::JwtOrQuery => match bearer(headers) {
            Ok(Some(token)) => Ok(Some(token.to_owned())),
            Ok(None) => Ok(query_token(query)),
            Err(e) => Err(e),
        },
        Guard::ApiKey => api_key::presented(headers),
    };
    let credential = match presented {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            let what = match guard {
                Guard::ApiKey if state.auth.oauth.is_some() => {
                    "sign in (OAuth: see the resource_metadata of WWW-Authenticate) or send an API key as X-API-Key"
                }
                Guard::ApiKey => "an API key is required: send X-API-Key (create one with `task-mcp api-key create`)",
                Guard::JwtOrQuery => "a token is required: send Authorization: Bearer <token> or ?access_token=<token>",
                _ => "a token is required: send Authorization: Bearer <token> (get one with `task-mcp token`)",
            };
            return Err(ApiError::unauthorized(what));
        }
        Err(message) => return Err(failed(state, ip, message)),
    };
    if guard == Guard::ApiKey
        && let Some(oauth) = &state.auth.oauth
        && !credential.starts_with(API_KEY_PREFIX)
        && !headers.contains_key("x-api-key")
    {
        return access_token(state, oauth, &credential, ip).await.map(Some);
    }
    // The credential is checked first: a valid one is served even while its address is locked out
    // (others' failures from behind the same proxy must not lock it out); only failures count.
    let verified = match guard {
        Guard::ApiKey => api_key::verify(&state.service, &credential).await?,
        _ if rest_key => api_key::verify(&state.service, &credential).await?,
        Guard::JwtOrQuery => state.auth.jwt.verify_scoped(&credential).map(|(actor, _)| actor),
        _ => state.auth.jwt.verify(&credential),
    };
    match verified {
        Ok(actor) => {
            let session = session_of(&actor, &credential);
            Ok(Some((actor, session)))
        }
        Err(message) => {
            tracing::info!(%ip, "authentication failed: {message}");
            Err(failed(state, ip, message))
        }
    }
}

/// What an OAuth access token proves on `/mcp`: 401 with the challenge when nothing, 403 when it grants
/// no scope of ours, 503 when the issuer's keys cannot be had (not counted as a failed attempt: the
/// caller may have done nothing wrong).
async fn access_token(
    state: &AppState,
    oauth: &ResourceServer,
    token: &str,
    ip: IpAddr,
) -> Result<(Actor, Session), ApiError> {
    match oauth.verify(token).await {
        Ok(Verified { actor, client }) => {
            // The claims an agent holds outlive its token (refreshed every hour or so): the session is
            // the user and the OAuth client, not the token.
            let session = match client {
                Some(client) => Session {
                    holder: format!(
                        "{} (OAuth client {})",
                        actor.email.as_str(),
                        client.chars().take(80).collect::<String>()
                    ),
                    agent: None,
                },
                None => session_of(&actor, token),
            };
            Ok((actor, session))
        }
        Err(Refusal::Invalid(why)) => {
            tracing::info!(%ip, "authentication failed: {why}");
            let challenge = oauth.challenge(Some(&why));
            Err(failed(state, ip, why).with_header(header::WWW_AUTHENTICATE, challenge))
        }
        Err(Refusal::Scope(why)) => Err(ApiError::forbidden("insufficient_scope", why)
            .with_header(header::WWW_AUTHENTICATE, oauth.scope_challenge(super::oauth::ALL_SCOPES))),
        Err(Refusal::Unavailable(why)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "authorization_server_unavailable",
            format!(
                "the access token is signed with a key this server does not have yet, and the authorization \
                 server's keys cannot be fetched now ({why}); retry later"
            ),
        )
        .with_header(header::RETRY_AFTER, 30)),
    }
}

/// Whether the request carries an API key in its headers (`X-API-Key`, or a bearer credential with
/// the key prefix), as opposed to a token or a query parameter.
fn api_key_header(headers: &HeaderMap) -> bool {
    headers.contains_key("x-api-key") || bearer(headers).ok().flatten().is_some_and(|t| t.starts_with(API_KEY_PREFIX))
}

/// Who holds the claims a request makes: its credential (one API key per agent), named by the user
/// and a digest of the credential (never the credential itself).
fn session_of(actor: &Actor, credential: &str) -> Session {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(&Sha256::digest(credential.as_bytes())[..4]);
    Session { holder: format!("{} (credential {digest})", actor.email.as_str()), agent: None }
}

/// A credential that proves nothing: 429 while the address is locked out, else counted and 401.
fn failed(state: &AppState, ip: IpAddr, message: String) -> ApiError {
    if let Err(wait) = state.auth.limiter.check(ip) {
        return ApiError::too_many_attempts(wait);
    }
    state.auth.limiter.record_failure(ip);
    ApiError::unauthorized(message)
}

/// `Sec-Fetch-Site: cross-site` with `Sec-Fetch-Mode: no-cors`: a request another site's page made
/// the browser send (an image, a script), not one of our clients.
fn is_cross_site_no_cors(headers: &HeaderMap) -> bool {
    let is = |name: &str, value: &str| {
        headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    is("sec-fetch-site", "cross-site") && is("sec-fetch-mode", "no-cors")
}

/// The authenticated caller of a route. Refuses (401) if the route's layer did not prove one, so a
/// handler that asks for a caller can never run anonymously.
pub struct Caller(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Actor>().cloned().map(Caller).ok_or_else(|| ApiError::unauthorized("not authenticated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_token_is_percent_decoded() {
        assert_eq!(query_token(Some("user_id=me&access_token=a%2Eb.c")).as_deref(), Some("a.b.c"));
        assert_eq!(query_token(Some("access_token=a+b%2Bc")).as_deref(), Some("a b+c"));
        assert_eq!(query_token(Some("user_id=me")), None);
    }

    /// Property tests of credential extraction (proptest; `PROPTEST_CASES` raises the 256 cases):
    /// parsing never panics and gives back what was sent.
    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::domain::properties::tricky_text;

        proptest! {
            #[test]
            fn authorization_headers_give_a_token_or_say_why(raw in prop::collection::vec(any::<u8>(), 0..60), token in "[!-~]{1,40}") {
                let mut headers = HeaderMap::new();
                if let Ok(value) = axum::http::HeaderValue::from_bytes(&raw) {
                    headers.insert(header::AUTHORIZATION, value);
                    if let Err(message) = bearer(&headers) {
                        prop_assert!(!message.is_empty());
                    }
                }
                let value = axum::http::HeaderValue::from_str(&format!("Bearer  {token} ")).expect("visible ASCII");
                headers.insert(header::AUTHORIZATION, value);
                prop_assert_eq!(bearer(&headers), Ok(Some(token.as_str())));
            }

            #[test]
            fn a_query_token_survives_percent_encoding(token in tricky_text(40), junk in "[ -~]{0,40}") {
                let _ = query_token(Some(&junk));
                let encoded = percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC);
                let query = format!("user_id=me&access_token={encoded}");
                prop_assert_eq!(query_token(Some(&query)), Some(token));
            }
        }
    }
}
