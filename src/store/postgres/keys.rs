//! API keys: only the hash of a key is stored; a revoked key is never found again.

use uuid::Uuid;

use super::rows::{self, API_KEY_COLUMN_COUNT, API_KEY_COLUMNS};
use super::{Inner, Outcome};
use crate::domain::{Access, KeyName, User};
use crate::store::ApiKey;

pub(super) async fn create(
    inner: &Inner,
    user_id: Uuid,
    name: &KeyName,
    key_hash: &str,
    access: Access,
) -> Outcome<ApiKey> {
    let client = inner.conn().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH k AS (INSERT INTO api_keys (id, user_id, name, key_hash, scope) VALUES ($1, $2, $3, $4, $5) RETURNING *) \
             SELECT {API_KEY_COLUMNS} FROM k JOIN users u ON u.id = k.user_id"
        ))
        .await?;
    let row = match client
        .query_one(&statement, &[&Uuid::now_v7(), &user_id, &name.as_str(), &key_hash, &access.as_str()])
        .await
    {
        Err(err) if err.as_db_error().and_then(|db| db.constraint()) == Some("api_keys_name_key") => {
            return Err(crate::store::api_key_name_taken(name).into());
        }
        row => row?,
    };
    rows::api_key(&row)
}

pub(super) async fn list(inner: &Inner) -> Outcome<Vec<ApiKey>> {
    let client = inner.conn().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id ORDER BY k.created_at, k.name"
        ))
        .await?;
    client.query(&statement, &[]).await?.iter().map(rows::api_key).collect()
}

/// Revoking is idempotent: a key already revoked keeps its first revocation time (and counts as
/// matched).
pub(super) async fn revoke(inner: &Inner, id_or_name: &str) -> Outcome<bool> {
    if id_or_name.contains('\0') {
        // No name holds NUL (PostgreSQL text cannot), so nothing matches.
        return Ok(false);
    }
    let id = Uuid::parse_str(id_or_name.trim()).ok();
    let client = inner.conn().await?;
    let statement = client
        .prepare_cached("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 OR name = $2")
        .await?;
    Ok(client.execute(&statement, &[&id, &id_or_name]).await? > 0)
}

/// The user's columns after the key's in [`find`] ([`super::rows::USER_COLUMNS`] order).
const FIND_USER_COLUMNS: &str = "u.id, u.email, u.name, u.created_at";

/// The live key with this hash, and its user. Its use is recorded at most once a minute, so a busy
/// client does not turn every request into a write.
pub(super) async fn find(inner: &Inner, key_hash: &str) -> Outcome<Option<(ApiKey, User)>> {
    let client = inner.conn().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH live AS (SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL), \
             touched AS ( \
                 UPDATE api_keys SET last_used_at = now() \
                 WHERE id IN (SELECT id FROM live) \
                   AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute') \
                 RETURNING id, last_used_at) \
             SELECT k.id, k.user_id, u.email, k.name, k.created_at, coalesce(t.last_used_at, k.last_used_at), \
                    k.revoked_at, k.scope, {FIND_USER_COLUMNS} \
             FROM api_keys k JOIN live ON live.id = k.id JOIN users u ON u.id = k.user_id \
             LEFT JOIN touched t ON t.id = k.id"
        ))
        .await?;
    match client.query_opt(&statement, &[&key_hash]).await? {
        Some(row) => Ok(Some((rows::api_key(&row)?, rows::user(&row, API_KEY_COLUMN_COUNT)?))),
        None => Ok(None),
    }
}
