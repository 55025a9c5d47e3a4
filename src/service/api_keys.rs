//! The API-key use cases (create for a user, list, revoke, verify a presented key) and what a key is:
//! `tmk_` and 256 random bits, shown once, stored only as its SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::TaskService;
use crate::domain::{Access, Actor, Email, KeyName, UserKey};
use crate::error::{Error, Result};
use crate::store::ApiKey;

/// API keys start with this, so a leaked one is recognisable (and secret scanners can find it).
pub const API_KEY_PREFIX: &str = "tmk_";
/// Presented keys longer than this are refused before any look-up.
const MAX_KEY_BYTES: usize = 4096;

/// A new API key: high-entropy, shown once, stored only as its hash.
pub fn generate_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
}

/// What the store keeps of a key: SHA-256 in hex. A fast hash is enough because the key is 256
/// random bits, not a password.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key just created: as listed, and the secret itself (shown once, never stored).
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: String,
}

impl TaskService {
    /// Creates a key for `owner` (the user is created on first use) that may do what `access` allows.
    pub async fn create_api_key(&self, owner: &Actor, name: KeyName, access: Access) -> Result<CreatedApiKey> {
        let user = self.store.resolve_user("user", &UserKey::Email(owner.email.clone())).await?;
        let secret = generate_api_key();
        let key = self.store.create_api_key(user.id, &name, &hash_api_key(&secret), access).await?;
        Ok(CreatedApiKey { key, secret })
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.store.list_api_keys().await
    }

    /// Revokes the key with this id or name; false when none matched.
    pub async fn revoke_api_key(&self, id_or_name: &str) -> Result<bool> {
        self.store.revoke_api_key(id_or_name).await
    }

    /// Who a presented key speaks for. `Unauthorized` says why a key proves nothing; other errors
    /// mean the store cannot answer.
    pub async fn verify_api_key(&self, presented: &str) -> Result<Actor> {
        if presented.len() > MAX_KEY_BYTES || !presented.starts_with(API_KEY_PREFIX) {
            return Err(Error::Unauthorized(format!(
                "not an API key of this server (they start with {API_KEY_PREFIX})"
            )));
        }
        match self.store.find_api_key(&hash_api_key(presented)).await? {
            Some((key, user)) => match Email::parse("user", &user.email) {
                Ok(email) => Ok(Actor::new(email).with_access(key.access)),
                Err(_) => Err(Error::Unauthorized("the API key's user has no valid email".to_owned())),
            },
            None => Err(Error::Unauthorized("the API key is unknown or revoked".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_are_random_and_hashed() {
        let (a, b) = (generate_api_key(), generate_api_key());
        assert_ne!(a, b);
        assert!(a.starts_with(API_KEY_PREFIX) && a.len() > 40);
        assert_eq!(hash_api_key(&a).len(), 64);
        assert_ne!(hash_api_key(&a), a);
    }
}
