//! A store that could not be opened (a malformed `DATABASE_URL`): every call answers with the reason
//! (a configuration error naming the setting, not an outage that retrying would outlast),
//! so the stdio server keeps running and tells the agent what is wrong instead of exiting.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dump::DumpRow;
use super::{
    ApiKey, CreatedTask, EventBounds, EventSink, NewComment, NewTask, NumberedRow, Store, StoreInfo, TaskDeletion,
    TaskQuery, TaskUpdate,
};
use crate::domain::{Access, KeyName};
use crate::domain::{
    Comment, Event, HistoryEntry, KeyPrefix, RepoName, Repository, Task, TaskKey, User, UserKey, ValidationError,
};
use crate::error::{Error, Result};

pub struct FailedStore {
    location: String,
    reason: Reason,
}

enum Reason {
    /// A setting that cannot be right: every call says which, as a configuration error.
    Config(ValidationError),
    Other(String),
}

impl FailedStore {
    pub fn new(location: String, error: &Error) -> Self {
        let reason = match error {
            Error::Config(setting) | Error::Invalid(setting) => Reason::Config(setting.clone()),
            other => Reason::Other(other.to_string()),
        };
        Self { location, reason }
    }

    fn error(&self) -> Error {
        match &self.reason {
            Reason::Config(setting) => Error::Config(setting.clone()),
            Reason::Other(reason) => Error::Unavailable(format!("the store cannot be opened: {reason}")),
        }
    }
}

#[async_trait]
impl Store for FailedStore {
    fn info(&self) -> StoreInfo {
        StoreInfo { kind: "unavailable", location: self.location.clone() }
    }

    async fn migrate(&self) -> Result<i64> {
        Err(self.error())
    }

    async fn schema_version(&self) -> Result<i64> {
        Err(self.error())
    }

    async fn resolve_user(&self, _field: &str, _key: &UserKey) -> Result<User> {
        Err(self.error())
    }

    async fn find_user(&self, _key: &UserKey) -> Result<Option<User>> {
        Err(self.error())
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        Err(self.error())
    }

    async fn list_repositories(&self) -> Result<Vec<Repository>> {
        Err(self.error())
    }

    async fn find_task_id(&self, _key: &TaskKey) -> Result<Option<Uuid>> {
        Err(self.error())
    }

    async fn set_key_prefix(&self, _repository: &RepoName, _prefix: &KeyPrefix) -> Result<Repository> {
        Err(self.error())
    }

    async fn create_task(&self, _new: NewTask) -> Result<CreatedTask> {
        Err(self.error())
    }

    async fn update_task(&self, _update: TaskUpdate) -> Result<Task> {
        Err(self.error())
    }

    async fn add_comment(&self, _new: NewComment) -> Result<(Comment, Task)> {
        Err(self.error())
    }

    async fn delete_task(&self, _deletion: TaskDeletion) -> Result<Task> {
        Err(self.error())
    }

    async fn get_task(&self, _id: Uuid) -> Result<Option<Task>> {
        Err(self.error())
    }

    async fn list_comments(&self, _task_id: Uuid) -> Result<Vec<Comment>> {
        Err(self.error())
    }

    async fn list_history(&self, _task_id: Uuid) -> Result<Vec<HistoryEntry>> {
        Err(self.error())
    }

    async fn history_since(&self, _task_ids: &[Uuid], _since: DateTime<Utc>) -> Result<Vec<HistoryEntry>> {
        Err(self.error())
    }

    async fn list_tasks(&self, _query: &TaskQuery) -> Result<Vec<Task>> {
        Err(self.error())
    }

    async fn claim_task(&self, _request: super::ClaimRequest) -> Result<super::ClaimOutcome> {
        Err(self.error())
    }

    async fn release_task(&self, _release: super::Release) -> Result<Task> {
        Err(self.error())
    }

    async fn expire_claims(&self, _limit: u32) -> Result<usize> {
        Err(self.error())
    }

    async fn task_links(&self, _id: Uuid) -> Result<crate::domain::TaskLinks> {
        Err(self.error())
    }

    async fn events_after(&self, _after_seq: i64, _limit: u32) -> Result<Vec<Event>> {
        Err(self.error())
    }

    async fn event_bounds(&self) -> Result<EventBounds> {
        Err(self.error())
    }

    async fn relay_pending(&self, _limit: u32, _sink: &dyn EventSink) -> Result<usize> {
        Err(self.error())
    }

    async fn prune_events(&self, _before: DateTime<Utc>, _include_unpublished: bool, _batch: u32) -> Result<u64> {
        Err(self.error())
    }

    fn watch_commits(&self) -> tokio::sync::watch::Receiver<i64> {
        // Nothing will ever be committed: a receiver whose sender is gone.
        tokio::sync::watch::channel(0).1
    }

    async fn create_api_key(
        &self,
        _user_id: Uuid,
        _name: &KeyName,
        _key_hash: &str,
        _access: Access,
    ) -> Result<ApiKey> {
        Err(self.error())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        Err(self.error())
    }

    async fn revoke_api_key(&self, _id_or_name: &str) -> Result<bool> {
        Err(self.error())
    }

    async fn find_api_key(&self, _key_hash: &str) -> Result<Option<(ApiKey, User)>> {
        Err(self.error())
    }

    async fn export(&self, _rows: tokio::sync::mpsc::Sender<DumpRow>) -> Result<u64> {
        Err(self.error())
    }

    async fn import(&self, _rows: tokio::sync::mpsc::Receiver<Result<NumberedRow>>, _force: bool) -> Result<u64> {
        Err(self.error())
    }
}
