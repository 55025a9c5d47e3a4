//! A test authorization server on a free port: its metadata (RFC 8414) and its key set (JWKS), with
//! keys published, rotated and taken down at will, fetches counted; and access tokens signed with its
//! test keys (`tests/fixtures/oauth/`).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::http::now;

/// The test keys, each with its `kid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    Rsa1,
    Ec1,
    Ec2,
}

impl TestKey {
    pub fn kid(self) -> &'static str {
        match self {
            TestKey::Rsa1 => "rsa-1",
            TestKey::Ec1 => "ec-1",
            TestKey::Ec2 => "ec-2",
        }
    }

    pub fn alg(self) -> Algorithm {
        match self {
            TestKey::Rsa1 => Algorithm::RS256,
            TestKey::Ec1 | TestKey::Ec2 => Algorithm::ES256,
        }
    }

    fn pem(self) -> &'static [u8] {
        match self {
            TestKey::Rsa1 => include_bytes!("../../fixtures/oauth/rsa-1.pem"),
            TestKey::Ec1 => include_bytes!("../../fixtures/oauth/ec-1.pem"),
            TestKey::Ec2 => include_bytes!("../../fixtures/oauth/ec-2.pem"),
        }
    }

    pub fn encoding_key(self) -> EncodingKey {
        match self {
            TestKey::Rsa1 => EncodingKey::from_rsa_pem(self.pem()).expect("the RSA test key"),
            TestKey::Ec1 | TestKey::Ec2 => EncodingKey::from_ec_pem(self.pem()).expect("an EC test key"),
        }
    }

    /// The public key as the key set publishes it.
    pub fn jwk(self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.alg()).expect("a JWK");
        jwk.common.key_id = Some(self.kid().to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk
    }
}

/// The public half of [`TestKey::Rsa1`], as PEM text.
pub const RSA_1_PUBLIC_PEM: &str = include_str!("../../fixtures/oauth/rsa-1.pub.pem");

#[derive(Default)]
struct Published {
    keys: Vec<TestKey>,
    jwks_down: bool,
    jwks_fetches: usize,
}

#[derive(Clone)]
struct FixtureState {
    issuer: String,
    /// Metadata at the OpenID discovery path only (RFC 8414's answers 404).
    openid_only: bool,
    published: Arc<Mutex<Published>>,
}

/// The authorization server, serving until dropped.
pub struct AuthServer {
    pub issuer: String,
    published: Arc<Mutex<Published>>,
    shutdown: CancellationToken,
}

impl AuthServer {
    /// Starts on 127.0.0.1:0, publishing `keys`, its metadata at RFC 8414's path.
    pub async fn start(keys: &[TestKey]) -> AuthServer {
        AuthServer::start_with(keys, false).await
    }

    /// Like [`AuthServer::start`]; with `openid_only`, the metadata is at the OpenID discovery path only.
    pub async fn start_with(keys: &[TestKey], openid_only: bool) -> AuthServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let published = Arc::new(Mutex::new(Published { keys: keys.to_vec(), ..Published::default() }));
        let state = FixtureState { issuer: issuer.clone(), openid_only, published: published.clone() };
        let app = axum::Router::new()
            .route("/.well-known/oauth-authorization-server", get(metadata))
            .route("/.well-known/openid-configuration", get(openid_metadata))
            .route("/jwks", get(jwks))
            .with_state(state);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        AuthServer { issuer, published, shutdown }
    }

    /// Publishes `keys` instead of the keys published so far (a rotation).
    pub fn publish(&self, keys: &[TestKey]) {
        self.published.lock().unwrap().keys = keys.to_vec();
    }

    /// Makes the key set answer 503 (`true`) or serve again.
    pub fn set_jwks_down(&self, down: bool) {
        self.published.lock().unwrap().jwks_down = down;
    }

    /// How many times the key set was asked for.
    pub fn jwks_fetches(&self) -> usize {
        self.published.lock().unwrap().jwks_fetches
    }

    /// Claims of a valid token for `email` on `audience`, granting `scope`.
    pub fn claims(&self, email: &str, audience: &str, scope: &str) -> Value {
        json!({
            "iss": self.issuer,
            "sub": "user-1234",
            "aud": audience,
            "email": email,
            "scope": scope,
            "client_id": "test-client",
            "iat": now(),
            "exp": now() + 600,
        })
    }

    /// `claims` signed by `key`, its header naming `key`'s kid.
    pub fn sign(&self, key: TestKey, claims: &Value) -> String {
        let mut header = Header::new(key.alg());
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding_key()).expect("a signed token")
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn metadata(State(state): State<FixtureState>) -> Response {
    if state.openid_only {
        return StatusCode::NOT_FOUND.into_response();
    }
    document(&state).into_response()
}

async fn openid_metadata(State(state): State<FixtureState>) -> Json<Value> {
    document(&state)
}

fn document(state: &FixtureState) -> Json<Value> {
    let issuer = &state.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["tasks:read", "tasks:write"],
    }))
}

async fn jwks(State(state): State<FixtureState>) -> Response {
    let mut published = state.published.lock().unwrap();
    published.jwks_fetches += 1;
    if published.jwks_down {
        return (StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response();
    }
    Json(JwkSet { keys: published.keys.iter().map(|k| k.jwk()).collect() }).into_response()
}
