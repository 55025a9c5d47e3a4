//! The SQLite store (stub: being written).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::*;
use crate::error::{Error, Result};

pub struct SqliteStore {}

impl SqliteStore {
    pub fn open(_a: &std::path::Path) -> Result<Self> {
        Ok(Self {})
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn info(&self) -> StoreInfo {
        StoreInfo { kind: "sqlite", location: String::new() }
    }
    async fn migrate(&self) -> Result<i64> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn schema_version(&self) -> Result<i64> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn resolve_user(&self, field: &str, key: &UserKey) -> Result<User> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn find_user(&self, key: &UserKey) -> Result<Option<User>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn list_users(&self) -> Result<Vec<User>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn list_repositories(&self) -> Result<Vec<Repository>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn create_task(&self, new: NewTask) -> Result<CreatedTask> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn update_task(&self, update: TaskUpdate) -> Result<Task> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn add_comment(&self, new: NewComment) -> Result<(Comment, Task)> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn delete_task(&self, deletion: TaskDeletion) -> Result<Task> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn list_comments(&self, task_id: Uuid) -> Result<Vec<Comment>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn list_history(&self, task_id: Uuid) -> Result<Vec<HistoryEntry>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn events_after(&self, after_seq: i64, limit: u32) -> Result<Vec<Event>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn event_bounds(&self) -> Result<EventBounds> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn relay_pending(&self, limit: u32, sink: &dyn EventSink) -> Result<usize> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn prune_events(&self, before: DateTime<Utc>, include_unpublished: bool, batch: u32) -> Result<u64> {
        Err(Error::Internal("not implemented".into()))
    }
    fn watch_commits(&self) -> tokio::sync::watch::Receiver<i64> {
        tokio::sync::watch::channel(0).1
    }
    async fn create_api_key(&self, user_id: Uuid, name: &str, key_hash: &str) -> Result<ApiKey> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn revoke_api_key(&self, id_or_name: &str) -> Result<bool> {
        Err(Error::Internal("not implemented".into()))
    }
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<(ApiKey, User)>> {
        Err(Error::Internal("not implemented".into()))
    }
}
