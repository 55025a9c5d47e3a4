//! The authorization server's signing keys: its metadata found (RFC 8414, else OpenID discovery) for
//! the `jwks_uri`, the key set fetched with a timeout and cached, fetched again when a token names a
//! key the cache lacks, at most once per interval (a token with a made-up `kid` must not make every
//! request fetch). Only RS256 (RSA) and ES256 (EC P-256) signing keys are kept.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::Url;

/// A metadata document or key set larger than this is refused (real ones are a few KiB).
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// A key that verifies tokens, and the one algorithm it verifies.
#[derive(Clone)]
pub struct VerifyKey {
    pub key: DecodingKey,
    pub alg: Algorithm,
}

/// Why no key was found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key set (fresh enough) has no such key: the token proves nothing.
    Unknown(String),
    /// The key set cannot be had now: the token cannot be checked (503).
    Unavailable(String),
}

/// The keys in use, by `kid` (and those published without one).
#[derive(Default)]
struct KeyMap {
    by_kid: HashMap<String, VerifyKey>,
    without_kid: Vec<VerifyKey>,
}

impl KeyMap {
    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<VerifyKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid).filter(|k| k.alg == alg).cloned(),
            // A token that names no key: only unambiguous when one key of its algorithm is published.
            None => {
                let mut all = self.by_kid.values().chain(&self.without_kid).filter(|k| k.alg == alg);
                match (all.next(), all.next()) {
                    (Some(key), None) => Some(key.clone()),
                    _ => None,
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }
}

/// The last fetch and what it gave; held while fetching, so one request fetches and the others wait.
#[derive(Default)]
struct Fetching {
    jwks_uri: Option<Url>,
    last: Option<(Instant, Result<(), String>)>,
}

/// The signing keys of one issuer.
pub struct KeySource {
    issuer: String,
    http: reqwest::Client,
    timeout: Duration,
    refetch_after: Duration,
    /// Read by every request; replaced whole after a fetch.
    keys: RwLock<Arc<KeyMap>>,
    fetching: tokio::sync::Mutex<Fetching>,
}

impl KeySource {
    /// Keys of `issuer` (checked by [`check_url`]), each fetch bounded by `timeout`, a missing key
    /// fetched again at most every `refetch_after`.
    pub fn new(issuer: &str, timeout: Duration, refetch_after: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            http,
            timeout,
            refetch_after,
            keys: RwLock::new(Arc::default()),
            fetching: tokio::sync::Mutex::new(Fetching::default()),
        })
    }

    /// The key named `kid` for `alg`: from the cache, else from a fetch of the key set (at most one per
    /// interval; the others within it are answered from what the last fetch gave).
    pub async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<VerifyKey, KeyError> {
        if let Some(key) = self.cached().find(kid, alg) {
            return Ok(key);
        }
        let mut fetching = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached().find(kid, alg) {
            return Ok(key);
        }
        let recent = fetching.last.as_ref().filter(|(at, _)| at.elapsed() < self.refetch_after);
        match recent {
            Some((_, Err(why))) => return Err(KeyError::Unavailable(why.clone())),
            Some((at, Ok(()))) => return Err(unknown(kid, alg, Some(at.elapsed()))),
            None => {}
        }
        let fetched = self.fetch(&mut fetching).await;
        fetching.last = Some((Instant::now(), fetched.as_ref().map(|_| ()).map_err(Clone::clone)));
        match fetched {
            Ok(keys) => {
                let found = keys.find(kid, alg);
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                found.ok_or_else(|| unknown(kid, alg, None))
            }
            Err(why) => {
                tracing::warn!("cannot fetch the signing keys of the OAuth issuer {}: {why}", self.issuer);
                Err(KeyError::Unavailable(why))
            }
        }
    }

    fn cached(&self) -> Arc<KeyMap> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The key set, its `jwks_uri` discovered first if need be.
    async fn fetch(&self, fetching: &mut Fetching) -> Result<KeyMap, String> {
        let jwks_uri = match &fetching.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                fetching.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let response = self.send(&jwks_uri).await?;
        if !response.status().is_success() {
            return Err(format!("{jwks_uri} answered {}", response.status()));
        }
        let set: JwkSet = serde_json::from_value(self.read_json(&jwks_uri, response).await?)
            .map_err(|err| format!("the key set at {jwks_uri} is not a JWK set: {err}"))?;
        let keys = key_map(&set);
        if keys.len() == 0 {
            return Err(format!("the key set at {jwks_uri} holds no RS256 or ES256 signing key"));
        }
        tracing::info!("fetched {} signing keys of the OAuth issuer {} from {jwks_uri}", keys.len(), self.issuer);
        Ok(keys)
    }

    /// The issuer's `jwks_uri`, from its metadata: RFC 8414 first, then OpenID Connect discovery.
    async fn discover(&self) -> Result<Url, String> {
        let mut tried = Vec::new();
        for url in metadata_urls(&self.issuer)? {
            // A server that does not answer is not asked at the other places (each would wait too).
            let response = self.send(&url).await?;
            if !response.status().is_success() {
                tried.push(format!("{url} answered {}", response.status()));
                continue;
            }
            let metadata = self.read_json(&url, response).await?;
            let named = metadata["issuer"].as_str().unwrap_or_default();
            if named.trim_end_matches('/') != self.issuer {
                return Err(format!(
                    "the metadata at {url} is for the issuer {named:?}, not {:?} (OAUTH_ISSUER)",
                    self.issuer
                ));
            }
            let Some(jwks_uri) = metadata["jwks_uri"].as_str() else {
                return Err(format!("the metadata at {url} has no jwks_uri"));
            };
            return check_url("jwks_uri", jwks_uri).map_err(|why| format!("the metadata at {url}: {why}"));
        }
        Err(format!("no authorization server metadata found for {}: {}", self.issuer, tried.join("; ")))
    }

    async fn send(&self, url: &Url) -> Result<reqwest::Response, String> {
        self.http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|err| self.failed(url, err))
    }

    fn failed(&self, url: &Url, err: reqwest::Error) -> String {
        if err.is_timeout() {
            format!("{url} did not answer within {} s", self.timeout.as_secs_f32())
        } else {
            let err = err.without_url();
            let mut why = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(inner) = source {
                why = format!("{why}: {inner}");
                source = inner.source();
            }
            format!("cannot fetch {url}: {why}")
        }
    }

    /// The body of a successful answer, as JSON, at most [`MAX_DOCUMENT_BYTES`].
    async fn read_json(&self, url: &Url, mut response: reqwest::Response) -> Result<serde_json::Value, String> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.failed(url, err))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url} answered more than {MAX_DOCUMENT_BYTES} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|err| format!("{url} did not answer JSON: {err}"))
    }
}

fn unknown(kid: Option<&str>, alg: Algorithm, fetched_ago: Option<Duration>) -> KeyError {
    let which = match kid {
        Some(kid) => format!("the key {kid:?} ({alg:?})"),
        None => format!("no key id (kid), and the issuer does not publish exactly one {alg:?} key"),
    };
    let when = match fetched_ago {
        Some(ago) => format!(" (fetched {} s ago; fetched again at most once a minute)", ago.as_secs()),
        None => String::new(),
    };
    KeyError::Unknown(format!("the access token names {which}, which the issuer's key set does not hold{when}"))
}

/// The usable keys of a set: RSA for RS256, EC P-256 for ES256; encryption keys, other curves and
/// symmetric keys (which would make the public set a shared secret) are left out, as is a key
/// whose declared `alg` is another.
fn key_map(set: &JwkSet) -> KeyMap {
    let mut map = KeyMap::default();
    for jwk in &set.keys {
        let Some(key) = verify_key(jwk) else { continue };
        match &jwk.common.key_id {
            Some(kid) => {
                map.by_kid.insert(kid.clone(), key);
            }
            None => map.without_kid.push(key),
        }
    }
    map
}

fn verify_key(jwk: &Jwk) -> Option<VerifyKey> {
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return None;
    }
    let (alg, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return None,
    };
    if jwk.common.key_algorithm.is_some_and(|a| a != declared) {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok().map(|key| VerifyKey { key, alg })
}

/// Where the metadata of `issuer` may be: RFC 8414's well-known path (inserted before the issuer's
/// path), then OpenID Connect discovery (inserted, then appended, as MCP clients look for it).
fn metadata_urls(issuer: &str) -> Result<Vec<Url>, String> {
    let url = check_url("OAUTH_ISSUER", issuer)?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    let candidates = if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    };
    candidates.iter().map(|c| Url::parse(c).map_err(|err| format!("{c}: {err}"))).collect()
}

/// An https URL (http only for a loopback host, as in tests and local set-ups), without query or
/// fragment; `setting` names what it is in the error.
pub fn check_url(setting: &str, raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|err| format!("{setting} {raw:?} is not a URL: {err}"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(format!("{setting} {raw:?} must be an https:// URL (http:// only on localhost)")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{setting} {raw:?} must have no query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_rfc_8414_and_openid_discovery_put_it() {
        let urls = |issuer| metadata_urls(issuer).unwrap().iter().map(Url::to_string).collect::<Vec<_>>();
        assert_eq!(
            urls("https://auth.example.com/"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            urls("https://auth.example.com/realms/team"),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/realms/team",
                "https://auth.example.com/.well-known/openid-configuration/realms/team",
                "https://auth.example.com/realms/team/.well-known/openid-configuration"
            ]
        );
    }

    #[test]
    fn issuers_must_be_https_except_on_loopback() {
        assert!(check_url("OAUTH_ISSUER", "https://auth.example.com").is_ok());
        assert!(check_url("OAUTH_ISSUER", "http://127.0.0.1:9000").is_ok());
        assert!(check_url("OAUTH_ISSUER", "http://localhost:9000/x").is_ok());
        for bad in ["http://auth.example.com", "ftp://x", "auth.example.com", "https://a.example?x=1", ""] {
            let err = check_url("OAUTH_ISSUER", bad).unwrap_err();
            assert!(err.contains("OAUTH_ISSUER"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_rsa_and_p256_signing_keys_are_kept() {
        let set: JwkSet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig", "n": "sXch", "e": "AQAB"},
            {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
        ]}))
        .unwrap();
        let map = key_map(&set);
        assert_eq!(map.by_kid.keys().collect::<Vec<_>>(), ["rsa"]);
        assert!(map.find(Some("rsa"), Algorithm::RS256).is_some());
        assert!(map.find(Some("rsa"), Algorithm::ES256).is_none(), "a key verifies its own algorithm only");
        assert!(map.find(None, Algorithm::RS256).is_some(), "one RS256 key: a token without kid may use it");
        assert!(map.find(Some("hmac"), Algorithm::HS256).is_none());
    }
}
