//! JWTs: the claims, the HS256 keys that issue and verify them (sign-in tokens and short-lived
//! stream tickets), and token lifetimes (`--ttl`).

use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::secret::check_secret_length;
use crate::domain::{Actor, Email};

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;
/// The issuer written into and required from every token, so a token minted for another service
/// with the same secret is not accepted here.
const ISSUER: &str = "task-mcp";
/// The longest lifetime a token may claim unless the server is told otherwise: a token that leaks (in
/// a proxy's access log, say) must not work forever.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(400 * 86_400);
/// The `scope` of a stream ticket: a token that opens the event stream and nothing else, so the one
/// that ends up in a URL (and so in access logs) is worth little.
pub const STREAM_SCOPE: &str = "stream";
/// How long a stream ticket is valid: enough to open the stream with it.
pub const STREAM_TICKET_LIFETIME: Duration = Duration::from_secs(60);

/// The claims of a token: who (`sub`, an email), and when it is valid.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// What the token may do: absent for a sign-in token (everything), [`STREAM_SCOPE`] for a ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// What a verified token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A sign-in token: every route.
    Full,
    /// A stream ticket: the event stream only.
    Stream,
}

/// Signs and checks tokens with one HS256 secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The longest `exp - iat` (and `exp - now`) accepted, in seconds.
    max_lifetime: u64,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> anyhow::Result<Self> {
        check_secret_length(secret)?;
        // HS256 pinned: a token signed with anything else (`none`, HS512, RS256 …) is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.set_issuer(&[ISSUER]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            max_lifetime: DEFAULT_MAX_LIFETIME.as_secs(),
        })
    }

    /// Refuses tokens that claim to be valid for longer than `max` (from their `iat`, or from now).
    pub fn with_max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max.as_secs();
        self
    }

    /// A token for `email`, valid for `ttl` from now.
    pub fn issue(&self, email: &Email, ttl: Duration) -> anyhow::Result<String> {
        self.sign(email, ttl, None).map(|(token, _)| token)
    }

    /// A stream ticket for `email`: valid for [`STREAM_TICKET_LIFETIME`], on the event stream only.
    /// Returns the ticket and when it expires (seconds since the epoch).
    pub fn issue_stream_ticket(&self, email: &Email) -> anyhow::Result<(String, u64)> {
        self.sign(email, STREAM_TICKET_LIFETIME, Some(STREAM_SCOPE))
    }

    fn sign(&self, email: &Email, ttl: Duration, scope: Option<&str>) -> anyhow::Result<(String, u64)> {
        let now = jsonwebtoken::get_current_timestamp();
        let exp = now + ttl.as_secs();
        let claims = Claims {
            sub: email.to_string(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp,
            nbf: None,
            scope: scope.map(str::to_owned),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .context("cannot sign the token")?;
        Ok((token, exp))
    }

    /// The actor a sign-in token proves, or why it proves nothing. A stream ticket proves nothing here.
    pub fn verify(&self, token: &str) -> Result<Actor, String> {
        match self.verify_scoped(token)? {
            (actor, Scope::Full) => Ok(actor),
            (_, Scope::Stream) => Err("a stream ticket opens only the event stream (GET /api/tasks/stream): send the \
                 sign-in token here"
                .to_owned()),
        }
    }

    /// The actor a sign-in token or a stream ticket proves, and what it may do.
    pub fn verify_scoped(&self, token: &str) -> Result<(Actor, Scope), String> {
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
        let (claims, now) = (&data.claims, jsonwebtoken::get_current_timestamp());
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime
            || claims.exp.saturating_sub(now) > self.max_lifetime
        {
            return Err(format!(
                "the token claims a lifetime longer than the {} days this server accepts: get a new one with \
                 `task-mcp token`",
                self.max_lifetime / 86_400
            ));
        }
        let scope = match claims.scope.as_deref() {
            None => Scope::Full,
            // A ticket ends up in URLs: one that claims to outlive what this server issues is refused.
            Some(STREAM_SCOPE)
                if claims.exp.saturating_sub(claims.iat) > STREAM_TICKET_LIFETIME.as_secs()
                    || claims.exp.saturating_sub(now) > STREAM_TICKET_LIFETIME.as_secs() =>
            {
                return Err(format!(
                    "the stream ticket claims a lifetime longer than {} s: get a new one from POST \
                     /api/tasks/stream/ticket",
                    STREAM_TICKET_LIFETIME.as_secs()
                ));
            }
            Some(STREAM_SCOPE) => Scope::Stream,
            Some(other) => {
                return Err(format!("the token's scope {other:?} is not one this server knows ({STREAM_SCOPE:?})"));
            }
        };
        let email =
            Email::parse("sub", &data.claims.sub).map_err(|_| "the token's subject is not an email".to_owned())?;
        Ok((Actor::new(email), scope))
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

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
    fn tokens_claiming_more_than_the_maximum_lifetime_are_refused() {
        let keys = JwtKeys::new(SECRET).unwrap().with_max_lifetime(Duration::from_secs(3600));
        let claims = |iat: u64, exp: u64| serde_json::json!({"sub": "a@b.c", "iss": ISSUER, "iat": iat, "exp": exp});
        assert!(keys.verify(&sign(claims(now(), now() + 3000), Algorithm::HS256, SECRET)).is_ok());
        for (name, iat, exp) in [
            ("from now", now(), now() + 7200),
            ("from long ago", now() - 7200, now() + 60),
            ("the end of time", now(), u64::MAX),
        ] {
            let err = keys.verify(&sign(claims(iat, exp), Algorithm::HS256, SECRET)).unwrap_err();
            assert!(err.contains("lifetime"), "{name}: {err}");
        }
        let issued = keys.issue(&Email::parse("e", "a@b.c").unwrap(), Duration::from_secs(7200)).unwrap();
        assert!(keys.verify(&issued).is_err(), "what this server would issue is held to the same cap");
    }

    #[test]
    fn a_stream_ticket_proves_its_user_only_for_the_stream() {
        let keys = JwtKeys::new(SECRET).unwrap();
        let email = Email::parse("e", "ann@example.com").unwrap();
        let (ticket, exp) = keys.issue_stream_ticket(&email).unwrap();
        assert!(exp <= now() + STREAM_TICKET_LIFETIME.as_secs());
        let (actor, scope) = keys.verify_scoped(&ticket).unwrap();
        assert_eq!((actor.email, scope), (email.clone(), Scope::Stream));
        assert!(keys.verify(&ticket).unwrap_err().contains("stream ticket"));
        let token = keys.issue(&email, Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify_scoped(&token).unwrap().1, Scope::Full);
        let odd = serde_json::json!({"sub": "a@b.c", "iss": ISSUER, "iat": now(), "exp": now() + 60, "scope": "admin"});
        assert!(keys.verify_scoped(&sign(odd, Algorithm::HS256, SECRET)).unwrap_err().contains("scope"));
        let long =
            serde_json::json!({"sub": "a@b.c", "iss": ISSUER, "iat": now(), "exp": now() + 3600, "scope": "stream"});
        assert!(keys.verify_scoped(&sign(long, Algorithm::HS256, SECRET)).unwrap_err().contains("lifetime"));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(b"short").is_err());
    }

    #[test]
    fn ttls_parse() {
        assert_eq!(parse_ttl("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_ttl("45m").unwrap(), Duration::from_secs(2_700));
        assert!(parse_ttl("0h").is_err());
        assert!(parse_ttl("3w").is_err());
        assert!(parse_ttl("999d").is_err());
    }

    /// Property tests of token parsing (proptest; `PROPTEST_CASES` raises the 256 cases): no string
    /// proves anything but a token this server signed, and parsing never panics.
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
