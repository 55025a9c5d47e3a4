//! Authentication, one story: REST and SSE take a JWT (HS256 only, `exp` required), `/mcp` takes an API
//! key (stored as its SHA-256). Who acts is whoever the credential names; failed attempts are limited
//! per client address. Also the `token` and `api-key` commands, and the JWT secret's loading.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AppState;
use super::errors::ApiError;
use crate::app::App;
use crate::domain::{Actor, Email};

/// The shortest secret accepted: HS256 is only as strong as its key.
pub const MIN_SECRET_BYTES: usize = 32;
/// The generated secret's file in the data directory.
pub const SECRET_FILE: &str = "jwt-secret";
/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;
/// The issuer written into and required from every token, so a token minted for another service
/// with the same secret is not accepted here.
const ISSUER: &str = "task-mcp";
/// API keys start with this, so a leaked one is recognisable (and secret scanners can find it).
const API_KEY_PREFIX: &str = "tmk_";

/// The claims of a token: who (`sub`, an email), and when it is valid.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Signs and checks tokens with one HS256 secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> anyhow::Result<Self> {
        if secret.len() < MIN_SECRET_BYTES {
            anyhow::bail!(
                "JWT_SECRET is {} bytes long; at least {MIN_SECRET_BYTES} are required (generate one with \
                 `openssl rand -base64 48`)",
                secret.len()
            );
        }
        // HS256 pinned: a token signed with anything else (`none`, HS512, RS256 …) is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[ISSUER]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation })
    }

    /// A token for `email`, valid for `ttl` from now.
    pub fn issue(&self, email: &Email, ttl: Duration) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims =
            Claims { sub: email.to_string(), iss: ISSUER.to_owned(), iat: now, exp: now + ttl.as_secs(), nbf: None };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).context("cannot sign the token")
    }

    /// The actor a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Actor, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(format!("the token is longer than {MAX_TOKEN_BYTES} bytes"));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| match err
            .kind()
        {
            ErrorKind::ExpiredSignature => "the token has expired: get a new one with `task-mcp token`".to_owned(),
            ErrorKind::ImmatureSignature => "the token is not valid yet (nbf is in the future)".to_owned(),
            ErrorKind::InvalidSignature => "the token's signature does not match this server's secret".to_owned(),
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm | ErrorKind::InvalidAlgorithmName => {
                "the token must be signed with HS256".to_owned()
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim:?} claim"),
            ErrorKind::InvalidIssuer => format!("the token was not issued for {ISSUER}"),
            _ => "the token is malformed".to_owned(),
        })?;
        let email =
            Email::parse("sub", &data.claims.sub).map_err(|_| "the token's subject is not an email".to_owned())?;
        Ok(Actor::new(email))
    }
}

/// Where the JWT secret came from (the banner says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `JWT_SECRET`.
    Configured,
    /// Generated (or read back) in the data directory: zero-config local use.
    Generated(PathBuf),
}

/// The secret `serve` signs with: `JWT_SECRET`, else (bound to loopback only) one generated in the data
/// directory; bound elsewhere without one, `serve` refuses to start.
pub fn resolve_secret(
    configured: Option<&str>,
    host: IpAddr,
    data_dir: &Path,
) -> anyhow::Result<(Vec<u8>, SecretSource)> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        if secret.len() < MIN_SECRET_BYTES {
            anyhow::bail!(
                "JWT_SECRET is {} bytes long; at least {MIN_SECRET_BYTES} are required (generate one with \
                 `openssl rand -base64 48`)",
                secret.len()
            );
        }
        return Ok((secret.as_bytes().to_vec(), SecretSource::Configured));
    }
    if !host.is_loopback() {
        anyhow::bail!(
            "JWT_SECRET is not set and serve is bound to {host}, which other machines can reach: set JWT_SECRET \
             to a secret of at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`), the same for every \
             instance; only on 127.0.0.1 or ::1 does serve generate one by itself"
        );
    }
    let path = data_dir.join(SECRET_FILE);
    let secret = load_or_create_secret(&path)?;
    Ok((secret, SecretSource::Generated(path)))
}

/// Reads the secret file, or creates it (owner-only) with 48 random bytes.
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            restrict_to_owner(path)?;
            let secret = text.trim().as_bytes().to_vec();
            if secret.len() < MIN_SECRET_BYTES {
                anyhow::bail!(
                    "{} holds a secret shorter than {MIN_SECRET_BYTES} bytes: delete it to have a new one generated",
                    path.display()
                );
            }
            Ok(secret)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                create_owner_only_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 48]>());
            if !write_owner_only(path, secret.as_bytes())? {
                // Another process created it first: use theirs, so tokens work with both.
                return Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec());
            }
            tracing::info!("generated a JWT secret in {}", path.display());
            Ok(secret.into_bytes())
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The data directory holds the database and this secret: readable by its owner only.
#[cfg(unix)]
fn create_owner_only_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_owner_only_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes a new file readable by its owner only; false when it already existed (left untouched).
#[cfg(unix)]
fn write_owner_only(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // create_new: two processes starting at once must not overwrite each other's secret.
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(err) => return Err(err).with_context(|| format!("cannot create {}", path.display())),
    };
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

#[cfg(not(unix))]
fn write_owner_only(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "{} was readable by others (mode {:o}): restricting it to its owner",
            path.display(),
            mode & 0o777
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// A new API key: high-entropy, shown once, stored only as its hash.
pub fn generate_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
}

/// What the store keeps of a key: SHA-256 in hex. A fast hash is enough because the key is 256
/// random bits, not a password.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Counts failed authentications per client address in fixed windows; past the limit, the address
/// is refused (429) until its window ends, whatever it sends.
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// The table size at which ended windows are next swept (changed under the `windows` lock).
    sweep_at: AtomicUsize,
}

/// Addresses tracked before old windows are first swept, so a flood of addresses cannot grow the map
/// forever.
const LIMITER_SWEEP_AT: usize = 10_000;

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max_failures, window, windows: Mutex::new(HashMap::new()), sweep_at: AtomicUsize::new(LIMITER_SWEEP_AT) }
    }

    /// `Err(seconds)` when `ip` must wait before trying again.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(&ip) {
            Some((start, failures)) if *failures >= self.max_failures => {
                let left = self.window.saturating_sub(start.elapsed());
                if left.is_zero() { Ok(()) } else { Err(left.as_secs().max(1)) }
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        // A sweep runs when the table has doubled since the last one left it (and holds at least
        // LIMITER_SWEEP_AT), so each sweep's cost is paid by the inserts before it: O(1) amortised
        // per failure, however many addresses are live.
        if windows.len() >= self.sweep_at.load(Ordering::Relaxed) {
            let window = self.window;
            windows.retain(|_, (start, _)| start.elapsed() < window);
            self.sweep_at.store((windows.len() * 2).max(LIMITER_SWEEP_AT), Ordering::Relaxed);
        }
        let entry = windows.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// How a route is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// No credential (health, metrics, the OpenAPI document).
    Public,
    /// `Authorization: Bearer <JWT>`.
    Jwt,
    /// A JWT, in the header or (for EventSource, which cannot send headers) the `access_token` query
    /// parameter.
    JwtOrQuery,
    /// An API key: `X-API-Key` or `Authorization: Bearer`.
    ApiKey,
}

fn client_ip(parts_ext: &axum::http::Extensions) -> IpAddr {
    parts_ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| "the Authorization header is not ASCII".to_owned())?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err("the Authorization header must be `Bearer <token>`".to_owned()),
    }
}

/// `access_token` from the query string (percent-decoded).
fn query_token(query: Option<&str>) -> Option<String> {
    let query = query?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "access_token").then(|| percent_decode(value))
    })
}

fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The route layer that proves who calls, per [`Guard`], and puts the [`Actor`] in the request.
pub async fn authenticate(State((state, guard)): State<(AppState, Guard)>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(req.extensions());
    // Only Sync parts of the request are held across the store lookup (the body is not Sync).
    let (headers, query) = (req.headers().clone(), req.uri().query().map(str::to_owned));
    match identify(&state, guard, &headers, query.as_deref(), ip).await {
        Ok(Some(actor)) => {
            tracing::Span::current().record("user", actor.email.as_str());
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Ok(None) => next.run(req).await,
        Err(err) => axum::response::IntoResponse::into_response(err),
    }
}

async fn identify(
    state: &AppState,
    guard: Guard,
    headers: &HeaderMap,
    query: Option<&str>,
    ip: IpAddr,
) -> Result<Option<Actor>, ApiError> {
    if guard == Guard::Public {
        return Ok(None);
    }
    state.auth.limiter.check(ip).map_err(ApiError::too_many_attempts)?;
    let presented: Result<Option<String>, String> = match guard {
        Guard::Public => Ok(None),
        Guard::Jwt => bearer(headers).map(|t| t.map(str::to_owned)),
        Guard::JwtOrQuery => match bearer(headers) {
            Ok(Some(token)) => Ok(Some(token.to_owned())),
            Ok(None) => Ok(query_token(query)),
            Err(e) => Err(e),
        },
        Guard::ApiKey => match headers.get("x-api-key") {
            Some(value) => value
                .to_str()
                .map(|v| Some(v.trim().to_owned()))
                .map_err(|_| "the X-API-Key header is not ASCII".to_owned()),
            None => bearer(headers).map(|t| t.map(str::to_owned)),
        },
    };
    let credential = match presented {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            let what = match guard {
                Guard::ApiKey => "an API key is required: send X-API-Key (create one with `task-mcp api-key create`)",
                Guard::JwtOrQuery => "a token is required: send Authorization: Bearer <token> or ?access_token=<token>",
                _ => "a token is required: send Authorization: Bearer <token> (get one with `task-mcp token`)",
            };
            return Err(ApiError::unauthorized(what));
        }
        Err(message) => {
            state.auth.limiter.record_failure(ip);
            return Err(ApiError::unauthorized(message));
        }
    };
    let verified = match guard {
        Guard::ApiKey => verify_api_key(state, &credential).await?,
        _ => state.auth.jwt.verify(&credential),
    };
    match verified {
        Ok(actor) => Ok(Some(actor)),
        Err(message) => {
            state.auth.limiter.record_failure(ip);
            tracing::info!(%ip, "authentication failed: {message}");
            Err(ApiError::unauthorized(message))
        }
    }
}

/// `Ok(Err(why))` for a key that proves nothing; `Err` when the store cannot answer (503, not 401).
async fn verify_api_key(state: &AppState, key: &str) -> Result<Result<Actor, String>, ApiError> {
    if key.len() > MAX_TOKEN_BYTES || !key.starts_with(API_KEY_PREFIX) {
        return Ok(Err("not an API key of this server (they start with tmk_)".to_owned()));
    }
    match state.app.store.find_api_key(&hash_api_key(key)).await.map_err(ApiError::before_authentication)? {
        Some((_, user)) => match Email::parse("user", &user.email) {
            Ok(email) => Ok(Ok(Actor::new(email))),
            Err(_) => Ok(Err("the API key's user has no valid email".to_owned())),
        },
        None => Ok(Err("the API key is unknown or revoked".to_owned())),
    }
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

/// Parses `30d`, `12h`, `45m`, `90s`.
pub fn parse_ttl(raw: &str) -> anyhow::Result<Duration> {
    let raw = raw.trim();
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = number.parse().with_context(|| format!("--ttl {raw:?}: expected e.g. 30d, 12h, 45m"))?;
    let seconds = match unit {
        "d" => n.saturating_mul(86_400),
        "h" => n.saturating_mul(3_600),
        "m" => n.saturating_mul(60),
        "s" | "" => n,
        _ => anyhow::bail!("--ttl {raw:?}: the unit must be d, h, m or s"),
    };
    if seconds == 0 || seconds > 366 * 86_400 {
        anyhow::bail!("--ttl {raw:?}: must be between 1 second and 366 days");
    }
    Ok(Duration::from_secs(seconds))
}

/// The identity a command speaks for: `--user`, else the process identity (git, then the OS user).
async fn command_user(app: &App) -> anyhow::Result<Actor> {
    let user = app.settings.user.clone();
    let actor = tokio::task::spawn_blocking(move || crate::config::resolve_actor(user.as_deref())).await??;
    Ok(actor)
}

/// `task-mcp token [--user EMAIL] [--ttl 30d]`: a token signed with `JWT_SECRET` (or the generated one).
pub async fn issue_token_command(app: &App, args: &crate::cli::TokenArgs) -> anyhow::Result<String> {
    let ttl = parse_ttl(&args.ttl)?;
    let secret = match args.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
        Some(secret) => secret.as_bytes().to_vec(),
        None => load_or_create_secret(&app.settings.data_dir.join(SECRET_FILE))?,
    };
    let keys = JwtKeys::new(&secret)?;
    let actor = command_user(app).await?;
    tracing::info!("token for {} valid for {}", actor.email, args.ttl);
    keys.issue(&actor.email, ttl)
}

/// `task-mcp api-key create --user EMAIL --name NAME`: creates a key and returns it (shown once).
pub async fn create_api_key_command(app: &App, name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        anyhow::bail!("--name: give a name of 1 to 100 printable characters");
    }
    let actor = command_user(app).await?;
    let user = app.store.resolve_user("--user", &crate::domain::UserKey::Email(actor.email.clone())).await?;
    let key = generate_api_key();
    let created = app.store.create_api_key(user.id, name, &hash_api_key(&key)).await?;
    tracing::info!("API key {} ({}) created for {}", created.name, created.id, user.email);
    Ok(key)
}

/// `task-mcp api-key list`: one line per key, never the secret.
pub async fn list_api_keys_command(app: &App) -> anyhow::Result<Vec<String>> {
    let keys = app.store.list_api_keys().await?;
    let mut lines = vec!["id\tname\tuser\tcreated\tlast used\tstate".to_owned()];
    for key in keys {
        let when =
            |t: Option<chrono::DateTime<chrono::Utc>>| t.map(crate::wire::timestamp).unwrap_or_else(|| "-".into());
        let state = match key.revoked_at {
            Some(t) => format!("revoked {}", crate::wire::timestamp(t)),
            None => "active".to_owned(),
        };
        lines.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            key.id,
            key.name,
            key.user_email,
            crate::wire::timestamp(key.created_at),
            when(key.last_used_at),
            state
        ));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn sign(claims: serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn a_token_issued_here_proves_its_user() {
        let keys = JwtKeys::new(SECRET).unwrap();
        let token = keys.issue(&Email::parse("e", "Ann@Example.com").unwrap(), Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().email.as_str(), "ann@example.com");
    }

    #[test]
    fn bad_tokens_prove_nothing() {
        let keys = JwtKeys::new(SECRET).unwrap();
        let ok = serde_json::json!({"sub": "a@b.c", "iss": ISSUER, "iat": now(), "exp": now() + 600});
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(ok.to_string())
        );
        let cases = [
            (
                "expired",
                sign(
                    serde_json::json!({"sub": "a@b.c", "iss": ISSUER, "iat": 1, "exp": now() - 3600}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            (
                "no exp",
                sign(serde_json::json!({"sub": "a@b.c", "iss": ISSUER, "iat": now()}), Algorithm::HS256, SECRET),
            ),
            (
                "not yet valid",
                sign(
                    serde_json::json!({"sub": "a@b.c", "iss": ISSUER, "exp": now() + 7200, "nbf": now() + 3600}),
                    Algorithm::HS256,
                    SECRET,
                ),
            ),
            ("wrong secret", sign(ok.clone(), Algorithm::HS256, b"another-secret-another-secret-another")),
            ("HS512", sign(ok.clone(), Algorithm::HS512, SECRET)),
            ("alg none", none_alg),
            (
                "other issuer",
                sign(serde_json::json!({"sub": "a@b.c", "iss": "x", "exp": now() + 600}), Algorithm::HS256, SECRET),
            ),
            (
                "not an email",
                sign(serde_json::json!({"sub": "root", "iss": ISSUER, "exp": now() + 600}), Algorithm::HS256, SECRET),
            ),
            ("garbage", "abc.def.ghi".to_owned()),
            ("oversized", "a".repeat(MAX_TOKEN_BYTES + 1)),
        ];
        for (name, token) in cases {
            assert!(keys.verify(&token).is_err(), "{name} was accepted");
        }
        assert!(keys.verify(&sign(ok, Algorithm::HS256, SECRET)).is_ok());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(b"short").is_err());
        let err = resolve_secret(Some("short"), "127.0.0.1".parse().unwrap(), Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
    }

    #[test]
    fn without_a_secret_only_loopback_may_start() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_secret(None, "0.0.0.0".parse().unwrap(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET is not set"), "{err}");
        let (first, source) = resolve_secret(None, "127.0.0.1".parse().unwrap(), dir.path()).unwrap();
        assert!(matches!(source, SecretSource::Generated(_)));
        let (again, _) = resolve_secret(None, "::1".parse().unwrap(), dir.path()).unwrap();
        assert_eq!(first, again, "the generated secret is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_limiter_blocks_an_address_after_too_many_failures() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(ip).is_ok());
            limiter.record_failure(ip);
        }
        let wait = limiter.check(ip).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limiter.check("10.0.0.2".parse().unwrap()).is_ok(), "other addresses are not affected");
    }

    #[test]
    fn the_limiter_sweeps_ended_windows_and_keeps_live_ones_without_a_sweep_per_failure() {
        let ended = FailureLimiter::new(3, Duration::ZERO);
        for i in 0..25_000u32 {
            ended.record_failure(IpAddr::from(i.to_be_bytes()));
        }
        assert!(ended.windows.lock().unwrap().len() <= LIMITER_SWEEP_AT, "ended windows are swept");
        let live = FailureLimiter::new(1, Duration::from_secs(60));
        for i in 0..25_000u32 {
            live.record_failure(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(live.windows.lock().unwrap().len(), 25_000, "live windows are kept");
        // Swept at 10,000 and 20,000 entries: the next sweep waits for the table to double.
        assert_eq!(live.sweep_at.load(Ordering::Relaxed), 40_000);
        assert!(live.check(IpAddr::from(7u32.to_be_bytes())).is_err());
    }

    #[test]
    fn api_keys_are_random_and_hashed() {
        let (a, b) = (generate_api_key(), generate_api_key());
        assert_ne!(a, b);
        assert!(a.starts_with(API_KEY_PREFIX) && a.len() > 40);
        assert_eq!(hash_api_key(&a).len(), 64);
        assert_ne!(hash_api_key(&a), a);
    }

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_ttl("45m").unwrap(), Duration::from_secs(2_700));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("3w").is_err());
        assert!(parse_ttl("999d").is_err());
    }

    #[test]
    fn the_query_token_is_percent_decoded() {
        assert_eq!(query_token(Some("user_id=me&access_token=a%2Eb.c")).as_deref(), Some("a.b.c"));
        assert_eq!(query_token(Some("user_id=me")), None);
    }

    /// Property tests of credential parsing (proptest; `PROPTEST_CASES` raises the 256 cases): no
    /// string proves anything but a token this server signed, and parsing never panics.
    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::domain::properties::tricky_text;

        const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        fn keys() -> JwtKeys {
            JwtKeys::new(SECRET).expect("a long enough secret")
        }

        proptest! {
            #[test]
            fn no_made_up_token_is_accepted(
                raw in tricky_text(80),
                segments in prop::collection::vec("[A-Za-z0-9_-]{0,60}", 1..5),
            ) {
                let keys = keys();
                prop_assert!(keys.verify(&raw).is_err());
                prop_assert!(keys.verify(&segments.join(".")).is_err());
            }

            #[test]
            fn an_issued_token_proves_its_email_and_any_changed_character_breaks_it(
                local in "[a-z0-9._-]{1,20}",
                at in any::<prop::sample::Index>(),
                with in any::<prop::sample::Index>(),
            ) {
                let keys = keys();
                let email = Email::parse("email", &format!("{local}@example.com")).expect("a plain email");
                let token = keys.issue(&email, Duration::from_secs(600)).expect("a token");
                prop_assert_eq!(keys.verify(&token).map(|a| a.email), Ok(email));
                let mut bytes = token.clone().into_bytes();
                let i = at.index(bytes.len());
                let replacement = *with.get(BASE64URL);
                prop_assume!(bytes[i] != replacement && bytes[i] != b'.');
                bytes[i] = replacement;
                let forged = String::from_utf8(bytes).expect("ASCII");
                prop_assert!(keys.verify(&forged).is_err(), "{} accepted after changing byte {}", forged, i);
            }

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

            #[test]
            fn ttls_are_bounded_whatever_is_typed(raw in "[ -~]{0,12}", n in 1u64..=366, unit in prop::sample::select(vec!["d", "h", "m", "s", ""])) {
                if let Ok(ttl) = parse_ttl(&raw) {
                    prop_assert!((1..=366 * 86_400).contains(&ttl.as_secs()));
                }
                let seconds = n * match unit { "d" => 86_400, "h" => 3_600, "m" => 60, _ => 1 };
                prop_assert_eq!(parse_ttl(&format!("{n}{unit}")).ok(), Some(Duration::from_secs(seconds)));
            }
        }
    }
}
