//! Users and repositories: found by key, or created on first use. Creation is race-safe: the insert
//! does nothing on conflict and the row is read again, so two writers naming a new email (or
//! repository) at once end up with one row.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::rows::{self, USER_COLUMNS};
use super::{Inner, Outcome};
use crate::domain::{RepoName, Repository, User, UserKey};
use crate::error::Error;

pub(super) async fn find_user(client: &impl GenericClient, key: &UserKey) -> Outcome<Option<User>> {
    let row = match key {
        UserKey::Id(id) => {
            let statement = client.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).await?;
            client.query_opt(&statement, &[id]).await?
        }
        UserKey::Email(email) => {
            let statement =
                client.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1")).await?;
            client.query_opt(&statement, &[&email.as_str()]).await?
        }
    };
    row.map(|row| rows::user(&row, 0)).transpose()
}

/// A user by id (an unknown id is `Invalid` for `field`) or by email (created on first use).
pub(super) async fn resolve_user(client: &impl GenericClient, field: &str, key: &UserKey) -> Outcome<User> {
    if let Some(user) = find_user(client, key).await? {
        return Ok(user);
    }
    let email = match key {
        UserKey::Id(id) => return Err(Error::invalid(field, format!("no user has the id {id}")).into()),
        UserKey::Email(email) => email.as_str(),
    };
    let insert = client
        .prepare_cached(&format!(
            "INSERT INTO users (id, email) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING RETURNING {USER_COLUMNS}"
        ))
        .await?;
    if let Some(row) = client.query_opt(&insert, &[&Uuid::now_v7(), &email]).await? {
        return rows::user(&row, 0);
    }
    // Someone else created it between our read and our insert: it is committed now.
    find_user(client, key)
        .await?
        .ok_or_else(|| Error::Internal(format!("the user {email} was neither found nor created")).into())
}

/// The id of a repository, created on first use.
pub(super) async fn repository_id(client: &impl GenericClient, name: &RepoName) -> Outcome<Uuid> {
    let select = client.prepare_cached("SELECT id FROM repositories WHERE name = $1").await?;
    if let Some(row) = client.query_opt(&select, &[&name.as_str()]).await? {
        return Ok(row.try_get(0)?);
    }
    let insert = client
        .prepare_cached(
            "INSERT INTO repositories (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .await?;
    if let Some(row) = client.query_opt(&insert, &[&Uuid::now_v7(), &name.as_str()]).await? {
        return Ok(row.try_get(0)?);
    }
    match client.query_opt(&select, &[&name.as_str()]).await? {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(Error::Internal(format!("the repository {name} was neither found nor created")).into()),
    }
}

pub(super) async fn list_users(inner: &Inner) -> Outcome<Vec<User>> {
    let client = inner.conn().await?;
    let statement = client.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email")).await?;
    client.query(&statement, &[]).await?.iter().map(|row| rows::user(row, 0)).collect()
}

/// `id, name, url, created_at, open_task_count, key_prefix` of the repositories `r`.
const REPOSITORY_SELECT: &str = "SELECT r.id, r.name, r.url, r.created_at, \
     (SELECT count(*) FROM tasks t WHERE t.repository_id = r.id AND t.deleted_at IS NULL), \
     (SELECT ks.prefix FROM key_series ks WHERE ks.repository_id = r.id) FROM repositories r";

pub(super) async fn list_repositories(inner: &Inner) -> Outcome<Vec<Repository>> {
    let client = inner.conn().await?;
    let statement = client.prepare_cached(&format!("{REPOSITORY_SELECT} ORDER BY r.name")).await?;
    client.query(&statement, &[]).await?.iter().map(rows::repository).collect()
}

/// One repository by name.
pub(super) async fn repository(client: &impl GenericClient, name: &RepoName) -> Outcome<Repository> {
    let statement = client.prepare_cached(&format!("{REPOSITORY_SELECT} WHERE r.name = $1")).await?;
    match client.query_opt(&statement, &[&name.as_str()]).await? {
        Some(row) => rows::repository(&row),
        None => Err(Error::NotFound { what: "repository", id: name.as_str().to_owned() }.into()),
    }
}

/// The id of a repository that exists (an unknown name is `NotFound`; nothing is created).
pub(super) async fn existing_repository_id(client: &impl GenericClient, name: &RepoName) -> Outcome<Uuid> {
    let select = client.prepare_cached("SELECT id FROM repositories WHERE name = $1").await?;
    match client.query_opt(&select, &[&name.as_str()]).await? {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(Error::NotFound { what: "repository", id: name.as_str().to_owned() }.into()),
    }
}
