//! `/mcp` as an OAuth 2.1 protected resource (RFC 9728): its metadata document, the challenges of a
//! 401 and a 403, and the check of an access token: a JWT signed RS256 or ES256 by a key of the
//! configured issuer (`keys`), issued by it, for this resource (`aud`), in its validity window, naming
//! a user by email, with the scopes `tasks:read` / `tasks:write`.

pub mod keys;

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::json;

use crate::domain::{Access, Actor, Email};
use crate::http::AppState;
use keys::{KeyError, KeySource};

/// The scope that lets a token list and read tasks.
pub const READ_SCOPE: &str = "tasks:read";
/// The scope that lets a token change tasks (it reads too).
pub const WRITE_SCOPE: &str = "tasks:write";
/// Both scopes, as a challenge's `scope` lists them.
pub const ALL_SCOPES: &str = "tasks:read tasks:write";
/// The path of the metadata document (RFC 9728), and the one suffixed with `/mcp`'s path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
pub const METADATA_PATH_MCP: &str = "/.well-known/oauth-protected-resource/mcp";
/// Access tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

/// What `serve` is told about OAuth.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `OAUTH_ISSUER`: the authorization server's issuer identifier.
    pub issuer: String,
    /// `OAUTH_AUDIENCE` [default: the resource, `<base>/mcp`].
    pub audience: Option<String>,
    /// The base URL clients reach this server at: `PUBLIC_URL`, else set from the bound address.
    pub base_url: Option<String>,
}

/// Why an access token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It proves nothing (401, `invalid_token`).
    Invalid(String),
    /// It proves a user but grants neither scope (403, `insufficient_scope`).
    Scope(String),
    /// It cannot be checked now: the issuer's keys cannot be fetched (503).
    Unavailable(String),
}

/// What a valid access token proves: the user (limited to what its scopes allow), and the OAuth
/// client it was issued to, if it says.
#[derive(Debug, Clone)]
pub struct Verified {
    pub actor: Actor,
    pub client: Option<String>,
}

/// The protected resource: its identity and the keys that verify its tokens.
pub struct ResourceServer {
    issuer: String,
    /// The issuer with and without a final `/` (providers differ in which they write as `iss`).
    accepted_issuers: [String; 2],
    audience: String,
    resource: String,
    metadata_url: String,
    keys: KeySource,
}

impl ResourceServer {
    /// `base_url` is where clients reach this server when `config.base_url` is not set.
    pub fn new(
        config: &OAuthConfig,
        base_url: &str,
        timeout: Duration,
        refetch_after: Duration,
    ) -> anyhow::Result<Self> {
        keys::check_url("OAUTH_ISSUER", &config.issuer).map_err(anyhow::Error::msg)?;
        let issuer = config.issuer.trim().to_owned();
        let bare = issuer.trim_end_matches('/').to_owned();
        let base = config.base_url.as_deref().unwrap_or(base_url).trim_end_matches('/');
        let resource = format!("{base}/mcp");
        let audience = match config.audience.as_deref().map(str::trim) {
            Some("") => anyhow::bail!("OAUTH_AUDIENCE is empty: leave it unset for the default ({resource})"),
            Some(audience) => audience.to_owned(),
            None => resource.clone(),
        };
        Ok(Self {
            keys: KeySource::new(&issuer, timeout, refetch_after)?,
            accepted_issuers: [format!("{bare}/"), bare],
            issuer,
            audience,
            metadata_url: format!("{base}{METADATA_PATH_MCP}"),
            resource,
        })
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The RFC 9728 metadata document.
    pub fn metadata(&self) -> serde_json::Value {
        json!({
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": [READ_SCOPE, WRITE_SCOPE],
            "bearer_methods_supported": ["header"],
            "resource_name": "task-mcp",
        })
    }

    /// `WWW-Authenticate` of a 401: where the metadata is and which scopes to ask for; with
    /// `invalid_token` and why, when a token was sent.
    pub fn challenge(&self, why: Option<&str>) -> String {
        let mut value = format!("Bearer resource_metadata=\"{}\", scope=\"{ALL_SCOPES}\"", self.metadata_url);
        if let Some(why) = why {
            value.push_str(&format!(", error=\"invalid_token\", error_description=\"{}\"", quotable(why)));
        }
        value
    }

    /// `WWW-Authenticate` of a 403 for a token without the scope `scope`.
    pub fn scope_challenge(&self, scope: &str) -> String {
        format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\"", self.metadata_url)
    }

    /// The user an access token proves, and what it may do.
    pub async fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Invalid(format!("the access token is longer than {MAX_TOKEN_BYTES} bytes")));
        }
        let (alg, kid) = header_of(token)?;
        let key = self.keys.key(kid.as_deref(), alg).await.map_err(|err| match err {
            KeyError::Unknown(why) => Refusal::Invalid(why),
            KeyError::Unavailable(why) => Refusal::Unavailable(why),
        })?;
        let mut validation = Validation::new(key.alg);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&self.accepted_issuers);
        validation.set_audience(&[&self.audience]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation).map_err(|err| {
            Refusal::Invalid(match err.kind() {
                ErrorKind::ExpiredSignature => "the access token has expired: sign in again".to_owned(),
                ErrorKind::ImmatureSignature => "the access token is not valid yet (nbf is in the future)".to_owned(),
                ErrorKind::InvalidSignature => {
                    "the access token's signature does not match the issuer's key".to_owned()
                }
                ErrorKind::InvalidAudience => {
                    format!("the access token is for another resource: its aud must be {:?}", self.audience)
                }
                ErrorKind::InvalidIssuer => format!("the access token was not issued by {:?}", self.issuer),
                ErrorKind::MissingRequiredClaim(claim) => format!("the access token has no {claim:?} claim"),
                ErrorKind::InvalidAlgorithm => "the access token's algorithm does not match its key".to_owned(),
                _ => "the access token is malformed".to_owned(),
            })
        })?;
        let claims = data.claims;
        let email = claims.email()?;
        let scopes = claims.scopes();
        let access = if scopes.contains(&WRITE_SCOPE) {
            Access::ReadWrite
        } else if scopes.contains(&READ_SCOPE) {
            Access::ReadScope
        } else {
            return Err(Refusal::Scope(format!(
                "the access token grants neither {READ_SCOPE} nor {WRITE_SCOPE}: sign in again granting them"
            )));
        };
        let client = claims.client_id.or(claims.azp).filter(|c| !c.is_empty());
        Ok(Verified { actor: Actor::new(email).with_access(access), client })
    }
}

/// The claims of an access token this server reads (`iss`, `aud`, `exp`, `nbf` are checked by the
/// validation).
#[derive(Deserialize)]
struct AccessClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    /// RFC 9068 / RFC 8693: space-separated.
    #[serde(default)]
    scope: Option<String>,
    /// What some providers write instead: a space-separated string or a list.
    #[serde(default)]
    scp: Option<ScopeList>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeList {
    Text(String),
    List(Vec<String>),
}

impl AccessClaims {
    /// The user: `email`, else `sub` when it is an email. An email its provider says is not
    /// verified proves nobody.
    fn email(&self) -> Result<Email, Refusal> {
        if matches!(&self.email_verified, Some(v) if *v == json!(false) || *v == json!("false")) {
            return Err(Refusal::Invalid("the access token's email is not verified (email_verified is false)".into()));
        }
        if let Some(email) = self.email.as_deref() {
            return Email::parse("email", email)
                .map_err(|_| Refusal::Invalid("the access token's email claim is not an email".to_owned()));
        }
        self.sub.as_deref().and_then(|sub| Email::parse("sub", sub).ok()).ok_or_else(|| {
            Refusal::Invalid(
                "the access token names no user: it needs an email claim (or a sub that is an email)".to_owned(),
            )
        })
    }

    fn scopes(&self) -> Vec<&str> {
        let mut scopes: Vec<&str> = self.scope.as_deref().unwrap_or_default().split_whitespace().collect();
        match &self.scp {
            Some(ScopeList::Text(text)) => scopes.extend(text.split_whitespace()),
            Some(ScopeList::List(list)) => scopes.extend(list.iter().map(String::as_str)),
            None => {}
        }
        scopes
    }
}

/// The algorithm and key id a token's header names; only RS256 and ES256 go on to a key.
fn header_of(token: &str) -> Result<(Algorithm, Option<String>), Refusal> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }
    let malformed = || Refusal::Invalid("the access token is not a JWT".to_owned());
    let mut segments = token.split('.');
    let (Some(head), Some(_), Some(_), None) = (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(malformed());
    };
    let bytes = URL_SAFE_NO_PAD.decode(head).map_err(|_| malformed())?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    let alg = match header.alg.as_str() {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        other => {
            return Err(Refusal::Invalid(format!(
                "access tokens must be signed with RS256 or ES256, not {:?}",
                other.chars().take(20).collect::<String>()
            )));
        }
    };
    Ok((alg, header.kid))
}

/// `text` fit for a quoted-string of a header: no quotes, backslashes or control characters.
fn quotable(text: &str) -> String {
    text.chars().map(|c| if c == '"' || c == '\\' || !(' '..='~').contains(&c) { '\'' } else { c }).collect()
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the metadata document (404 without OAuth: the
/// routes are not added then).
pub async fn metadata(State(state): State<AppState>) -> Response {
    match &state.auth.oauth {
        Some(oauth) => {
            let mut response = Json(oauth.metadata()).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
            response
        }
        None => crate::http::errors::ApiError::route_not_found("GET", METADATA_PATH).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_with_header(header: &str) -> String {
        format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn only_rs256_and_es256_headers_go_on_to_a_key() {
        assert_eq!(
            header_of(&token_with_header(r#"{"alg":"RS256","kid":"a"}"#)).unwrap(),
            (Algorithm::RS256, Some("a".into()))
        );
        assert_eq!(header_of(&token_with_header(r#"{"alg":"ES256"}"#)).unwrap(), (Algorithm::ES256, None));
        for alg in ["none", "HS256", "RS512", "PS256", "EdDSA", "rs256"] {
            let err = header_of(&token_with_header(&format!(r#"{{"alg":"{alg}"}}"#))).unwrap_err();
            assert!(matches!(&err, Refusal::Invalid(why) if why.contains("RS256 or ES256")), "{alg}: {err:?}");
        }
        for junk in ["", "a.b", "a.b.c.d", "!!.e30.x", &token_with_header("{}")] {
            assert!(header_of(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_user_is_the_email_claim_else_an_email_subject() {
        let claims = |value: serde_json::Value| serde_json::from_value::<AccessClaims>(value).unwrap();
        let email = |value| claims(value).email().map(|e| e.to_string());
        assert_eq!(email(json!({"email": "Ann@Example.com", "sub": "x"})).unwrap(), "ann@example.com");
        assert_eq!(email(json!({"sub": "bob@example.com"})).unwrap(), "bob@example.com");
        assert!(email(json!({"sub": "auth0|1234"})).is_err());
        assert!(email(json!({"email": "not an email", "sub": "bob@example.com"})).is_err());
        assert!(email(json!({"email": "ann@example.com", "email_verified": false})).is_err());
        assert!(email(json!({"email": "ann@example.com", "email_verified": true})).is_ok());
    }

    #[test]
    fn scopes_are_read_from_scope_and_scp() {
        let claims = |value: serde_json::Value| serde_json::from_value::<AccessClaims>(value).unwrap();
        assert_eq!(claims(json!({"scope": "openid tasks:read"})).scopes(), ["openid", "tasks:read"]);
        assert_eq!(claims(json!({"scp": ["tasks:write"]})).scopes(), ["tasks:write"]);
        assert_eq!(claims(json!({"scp": "tasks:read tasks:write"})).scopes(), ["tasks:read", "tasks:write"]);
    }

    #[test]
    fn challenge_descriptions_stay_inside_their_quotes() {
        assert_eq!(quotable("a \"b\" \\ c\nd"), "a 'b' ' c'd");
    }
}
