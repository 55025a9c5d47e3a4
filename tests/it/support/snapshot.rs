//! What a store holds, in one comparable value: every task row (with its version), its comment and
//! history counts, the latest event seq, the users and the repositories. A rejected call must leave
//! it equal.

use task_mcp::domain::Task;
use task_mcp::store::{Store, TaskQuery};

/// Tasks read per snapshot at most: test stores hold a few dozen.
const MAX_TASKS: u32 = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub task: Task,
    pub comments: usize,
    pub history: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoreSnapshot {
    /// Tasks that are not deleted, by id.
    pub tasks: Vec<TaskRow>,
    pub latest_seq: i64,
    /// `(email, id)`, sorted.
    pub users: Vec<(String, uuid::Uuid)>,
    /// `(name, open task count)`, sorted.
    pub repositories: Vec<(String, i64)>,
}

impl StoreSnapshot {
    pub async fn take(store: &dyn Store) -> StoreSnapshot {
        let query = TaskQuery { limit: MAX_TASKS, ..TaskQuery::default() };
        let mut tasks = Vec::new();
        for task in store.list_tasks(&query).await.expect("list tasks for a snapshot") {
            let comments = store.list_comments(task.id).await.expect("list comments").len();
            let history = store.list_history(task.id).await.expect("list history").len();
            tasks.push(TaskRow { task, comments, history });
        }
        tasks.sort_by_key(|row| row.task.id);
        let mut users: Vec<_> =
            store.list_users().await.expect("list users").into_iter().map(|u| (u.email, u.id)).collect();
        users.sort();
        let mut repositories: Vec<_> = store
            .list_repositories()
            .await
            .expect("list repositories")
            .into_iter()
            .map(|r| (r.name, r.open_task_count))
            .collect();
        repositories.sort();
        let latest_seq = store.event_bounds().await.expect("event bounds").latest;
        StoreSnapshot { tasks, latest_seq, users, repositories }
    }

    /// What differs from `other`, in a few words per difference (empty when equal).
    pub fn differences(&self, other: &StoreSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        if self.latest_seq != other.latest_seq {
            out.push(format!("latest event seq {} -> {}", self.latest_seq, other.latest_seq));
        }
        if self.users != other.users {
            out.push(format!("users {:?} -> {:?}", self.users, other.users));
        }
        if self.repositories != other.repositories {
            out.push(format!("repositories {:?} -> {:?}", self.repositories, other.repositories));
        }
        if self.tasks.len() != other.tasks.len() {
            out.push(format!("{} tasks -> {}", self.tasks.len(), other.tasks.len()));
        }
        for (a, b) in self.tasks.iter().zip(&other.tasks) {
            if a != b {
                out.push(format!("task {} changed: {a:?} -> {b:?}", a.task.id));
            }
        }
        out
    }
}
