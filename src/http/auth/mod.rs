//! Authentication, one story: REST and SSE take a JWT (HS256 only, `exp` required; the stream also
//! takes a short-lived stream ticket, a JWT scoped to it), `/mcp` takes an API
//! key (stored as its SHA-256) or, with `OAUTH_ISSUER`, an OAuth access token of that issuer. Who acts is whoever the credential names; failed attempts are limited
//! per client address. One job a file: `jwt` (claims, keys, issue and verify, token lifetimes),
//! `secret` (the signing secret and its generated file), `api_key` (the key a request presents),
//! `limiter` (failed attempts per address), `oauth` (`/mcp` as a protected resource: metadata,
//! challenges, access tokens checked against the issuer's keys), `guard` (the route layer and [`Caller`]).

pub mod api_key;
pub mod guard;
pub mod jwt;
pub mod limiter;
pub mod oauth;
pub mod secret;

pub use guard::{Caller, Guard, authenticate};
pub use jwt::{Claims, JwtKeys, Scope, parse_ttl};
pub use limiter::FailureLimiter;
pub use secret::{MIN_SECRET_BYTES, SECRET_FILE, SecretSource, load_or_create_secret, resolve_secret};
