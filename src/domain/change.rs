//! What a change to a task is: the patch asked for, the field-by-field diff written to history,
//! and the event kind published for it.

use uuid::Uuid;

use super::{Complexity, Description, Priority, RepoName, Status, Task, Title, UserKey};

/// The fields a caller asked to change. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPatch {
    pub title: Option<Title>,
    pub description: Option<Option<Description>>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub complexity: Option<Complexity>,
    pub assignee: Option<Option<UserKey>>,
    pub repository: Option<Option<RepoName>>,
    /// The task this one becomes a step of (`Some(None)`: none).
    pub parent: Option<Option<Uuid>>,
    /// Tasks this one starts (or stops) waiting on.
    pub add_blocked_by: Vec<Uuid>,
    pub remove_blocked_by: Vec<Uuid>,
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        *self == TaskPatch::default()
    }
}

/// One field that changed, with values as text, as written to `task_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

/// The history rows for a change from `old` to `new`: one per field whose value differs.
/// The assignee is recorded by email, which people can read.
pub fn diff_tasks(old: &Task, new: &Task) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut push = |field: &'static str, old_value: Option<String>, new_value: Option<String>| {
        if old_value != new_value {
            changes.push(FieldChange { field, old_value, new_value });
        }
    };
    push("title", Some(old.title.clone()), Some(new.title.clone()));
    push("description", old.description.clone(), new.description.clone());
    push("status", Some(old.status.to_string()), Some(new.status.to_string()));
    push("priority", Some(old.priority.to_string()), Some(new.priority.to_string()));
    push("complexity", Some(old.complexity.to_string()), Some(new.complexity.to_string()));
    push("assignee", old.assignee_email.clone(), new.assignee_email.clone());
    push("repository", old.repository.clone(), new.repository.clone());
    push("parent", old.parent_id.map(|p| p.to_string()), new.parent_id.map(|p| p.to_string()));
    push("claim", old.claim.as_ref().map(|c| c.describe()), new.claim.as_ref().map(|c| c.describe()));
    changes
}

/// The kinds of event a change publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Created with no assignee.
    TaskCreated,
    /// Created with an assignee, or given a new one.
    TaskAssigned,
    TaskUpdated,
    /// The status became `completed`.
    TaskCompleted,
    TaskCommented,
    TaskDeleted,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::TaskCreated,
        EventKind::TaskAssigned,
        EventKind::TaskUpdated,
        EventKind::TaskCompleted,
        EventKind::TaskCommented,
        EventKind::TaskDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskCreated => "task_created",
            EventKind::TaskAssigned => "task_assigned",
            EventKind::TaskUpdated => "task_updated",
            EventKind::TaskCompleted => "task_completed",
            EventKind::TaskCommented => "task_commented",
            EventKind::TaskDeleted => "task_deleted",
        }
    }

    pub fn from_stored(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == raw)
    }

    /// The kind for a newly created task.
    pub fn for_creation(task: &Task) -> Self {
        if task.assignee_id.is_some() { EventKind::TaskAssigned } else { EventKind::TaskCreated }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind for an update: completion wins over reassignment, which wins over any other edit.
pub fn event_kind_for_update(old: &Task, new: &Task) -> EventKind {
    if new.status == Status::Completed && old.status != Status::Completed {
        EventKind::TaskCompleted
    } else if new.assignee_id.is_some() && new.assignee_id != old.assignee_id {
        EventKind::TaskAssigned
    } else {
        EventKind::TaskUpdated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn task() -> Task {
        Task {
            id: Uuid::nil(),
            key: "T-1".into(),
            title: "t".into(),
            description: None,
            status: Status::NotStarted,
            priority: Priority::Medium,
            complexity: Complexity::Medium,
            assignee_id: None,
            assignee_email: None,
            repository: None,
            created_by: "a".into(),
            updated_by: "a".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
            deleted_at: None,
            parent_id: None,
            claim: None,
            lapsed_holder: None,
            open_blockers: 0,
        }
    }

    #[test]
    fn a_diff_lists_only_the_fields_that_changed() {
        let old = task();
        let mut new = old.clone();
        new.status = Status::Completed;
        new.assignee_email = Some("b@x.io".into());
        let changes = diff_tasks(&old, &new);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].field, "status");
        assert_eq!(changes[0].new_value.as_deref(), Some("completed"));
        assert_eq!(changes[1].field, "assignee");
    }

    #[test]
    fn completion_wins_over_reassignment() {
        let old = task();
        let mut new = old.clone();
        new.status = Status::Completed;
        new.assignee_id = Some(Uuid::new_v4());
        assert_eq!(event_kind_for_update(&old, &new), EventKind::TaskCompleted);
        new.status = Status::InProgress;
        assert_eq!(event_kind_for_update(&old, &new), EventKind::TaskAssigned);
    }
}
