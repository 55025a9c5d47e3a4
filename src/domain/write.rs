//! The rules of every write, in one place for both stores: the version check, creating a task,
//! applying a patch, commenting, deleting, the `updated_at` rule, and what each write records (its
//! history rows and its event). A store reads rows, calls these, and writes what they return.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::{
    Comment, Complexity, Description, EventKind, FieldChange, Priority, RepoName, Status, Task, TaskPatch, Title, User,
    diff_tasks, event_kind_for_update,
};

/// `expected_version` was stale: someone else changed the task first. Carries the task as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConflict {
    pub expected: i64,
    pub current: Box<Task>,
}

/// The optimistic-concurrency check of a change to an existing task: with no expected version the
/// change always applies.
pub fn check_version(task: &Task, expected: Option<i64>) -> Result<(), VersionConflict> {
    match expected {
        Some(expected) if expected != task.version => {
            Err(VersionConflict { expected, current: Box::new(task.clone()) })
        }
        _ => Ok(()),
    }
}

/// A task's `updated_at` after a change made at `now`: never earlier than before, even when the
/// clock of the writer runs behind the one that made the previous change (another process, or a
/// PostgreSQL transaction that started earlier and commits later), so listings newest-first and
/// their cursors stay consistent.
pub fn updated_at(previous: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    now.max(previous)
}

/// What a write records beside the task row: its history rows and its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The task after the change: the row to write, and the event's payload.
    pub task: Task,
    pub kind: EventKind,
    /// Who made the change: the history rows' `changed_by` and the event's actor.
    pub actor: String,
    /// One history row each, in this order.
    pub history: Vec<FieldChange>,
    /// Written in each history row (an update's comment, a deletion's reason).
    pub comment: Option<String>,
    /// The assignee before a reassignment, so they hear that the task left them.
    pub previous_assignee_id: Option<Uuid>,
}

/// The fields a new task starts with, its assignee resolved to a user.
#[derive(Debug, Clone)]
pub struct TaskDraft<'a> {
    pub title: &'a Title,
    pub description: Option<&'a Description>,
    pub status: Status,
    pub priority: Priority,
    pub complexity: Complexity,
    pub assignee: Option<User>,
    pub repository: Option<&'a RepoName>,
    pub parent_id: Option<Uuid>,
}

impl TaskDraft<'_> {
    /// The task as created by `actor` at `now` (version 1), and its record: one `created` history
    /// row holding the title.
    pub fn create(self, id: Uuid, key: String, actor: &str, now: DateTime<Utc>) -> Record {
        let task = Task {
            id,
            key,
            title: self.title.as_str().to_owned(),
            description: self.description.map(|d| d.as_str().to_owned()),
            status: self.status,
            priority: self.priority,
            complexity: self.complexity,
            assignee_id: self.assignee.as_ref().map(|u| u.id),
            assignee_email: self.assignee.map(|u| u.email),
            repository: self.repository.map(|r| r.as_str().to_owned()),
            created_by: actor.to_owned(),
            updated_by: actor.to_owned(),
            created_at: now,
            updated_at: now,
            version: 1,
            deleted_at: None,
            parent_id: self.parent_id,
            claim: None,
            lapsed_holder: None,
            open_blockers: 0,
        };
        let created = FieldChange { field: "created", old_value: None, new_value: Some(task.title.clone()) };
        Record {
            kind: EventKind::for_creation(&task),
            actor: actor.to_owned(),
            history: vec![created],
            comment: None,
            previous_assignee_id: None,
            task,
        }
    }
}

impl TaskPatch {
    /// Applies the patch to `old`, a change by `actor` at `now`. `assignee` is the patch's assignee
    /// resolved to a user (`None` when the patch leaves the assignee alone). A patch that changes no
    /// field changes nothing: `None`, and nothing is to be written. Otherwise the version goes up by
    /// one, and the record holds one history row per changed field, each with `comment`.
    pub fn apply(
        &self,
        old: &Task,
        assignee: Option<Option<User>>,
        actor: &str,
        comment: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Record> {
        let mut new = old.clone();
        if let Some(title) = &self.title {
            new.title = title.as_str().to_owned();
        }
        if let Some(description) = &self.description {
            new.description = description.as_ref().map(|d| d.as_str().to_owned());
        }
        if let Some(status) = self.status {
            new.status = status;
        }
        if let Some(priority) = self.priority {
            new.priority = priority;
        }
        if let Some(complexity) = self.complexity {
            new.complexity = complexity;
        }
        if let Some(user) = assignee {
            new.assignee_id = user.as_ref().map(|u| u.id);
            new.assignee_email = user.map(|u| u.email);
        }
        if let Some(repository) = &self.repository {
            new.repository = repository.as_ref().map(|r| r.as_str().to_owned());
        }
        if let Some(parent) = self.parent {
            new.parent_id = parent;
        }
        // A claim means someone works on it: a task set to any other status is nobody's work any more.
        if new.status != Status::InProgress {
            new.claim = None;
            new.lapsed_holder = None;
        }
        let mut history = diff_tasks(old, &new);
        history.extend(super::work::link_changes(&self.add_blocked_by, &self.remove_blocked_by));
        if history.is_empty() {
            return None;
        }
        new.version = old.version + 1;
        new.updated_at = updated_at(old.updated_at, now);
        new.updated_by = actor.to_owned();
        let previous_assignee_id = if old.assignee_id != new.assignee_id { old.assignee_id } else { None };
        Some(Record {
            kind: event_kind_for_update(old, &new),
            actor: actor.to_owned(),
            history,
            comment: comment.map(str::to_owned),
            previous_assignee_id,
            task: new,
        })
    }
}

/// The record of a comment on `task`: one `comment` history row holding its text. The task itself
/// is unchanged (neither its version nor its `updated_at` moves).
pub fn commented(task: &Task, comment: &Comment) -> Record {
    let change = FieldChange { field: "comment", old_value: None, new_value: Some(comment.comment.clone()) };
    Record {
        task: task.clone(),
        kind: EventKind::TaskCommented,
        actor: comment.author.clone(),
        history: vec![change],
        comment: None,
        previous_assignee_id: None,
    }
}

/// Deletes `old` (softly: the row stays, marked), by `actor` at `now`. The record holds one
/// `deleted` history row with the deletion time, and the reason as its comment.
pub fn deleted(old: &Task, actor: &str, reason: Option<&str>, now: DateTime<Utc>) -> Record {
    let mut task = old.clone();
    task.deleted_at = Some(now);
    task.updated_at = updated_at(old.updated_at, now);
    task.updated_by = actor.to_owned();
    task.version = old.version + 1;
    // The time as the public contract writes times (RFC 3339, UTC, microseconds).
    let at = now.to_rfc3339_opts(SecondsFormat::Micros, true);
    Record {
        task,
        kind: EventKind::TaskDeleted,
        actor: actor.to_owned(),
        history: vec![FieldChange { field: "deleted", old_value: None, new_value: Some(at) }],
        comment: reason.map(str::to_owned),
        previous_assignee_id: None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::{Email, UserKey};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn task() -> Task {
        let title = Title::parse("title", "write the rules once").unwrap();
        let draft = TaskDraft {
            title: &title,
            description: None,
            status: Status::NotStarted,
            priority: Priority::Medium,
            complexity: Complexity::Medium,
            assignee: None,
            repository: None,
            parent_id: None,
        };
        draft.create(Uuid::nil(), "T-1".into(), "ann@example.com", at(0)).task
    }

    fn user(email: &str) -> User {
        User { id: Uuid::new_v4(), email: email.into(), name: None, created_at: at(0) }
    }

    #[test]
    fn a_created_task_is_at_version_one_and_records_its_title() {
        let title = Title::parse("title", "new").unwrap();
        let bob = user("bob@example.com");
        let draft = TaskDraft {
            title: &title,
            description: None,
            status: Status::InProgress,
            priority: Priority::High,
            complexity: Complexity::Low,
            assignee: Some(bob.clone()),
            repository: None,
            parent_id: None,
        };
        let record = draft.create(Uuid::nil(), "T-1".into(), "ann@example.com", at(5));
        assert_eq!(record.task.version, 1);
        assert_eq!((record.task.created_at, record.task.updated_at), (at(5), at(5)));
        assert_eq!(record.task.assignee_id, Some(bob.id));
        assert_eq!(record.kind, EventKind::TaskAssigned);
        assert_eq!(record.history[0].field, "created");
        assert_eq!(record.history[0].new_value.as_deref(), Some("new"));
    }

    #[test]
    fn a_stale_expected_version_is_a_conflict_carrying_the_current_task() {
        let task = task();
        assert_eq!(check_version(&task, None), Ok(()));
        assert_eq!(check_version(&task, Some(1)), Ok(()));
        assert_eq!(
            check_version(&task, Some(2)),
            Err(VersionConflict { expected: 2, current: Box::new(task.clone()) })
        );
    }

    #[test]
    fn a_patch_that_changes_no_field_records_nothing() {
        let old = task();
        let same = TaskPatch {
            status: Some(old.status),
            title: Some(Title::parse("t", &old.title).unwrap()),
            ..TaskPatch::default()
        };
        assert_eq!(same.apply(&old, None, "bob@example.com", None, at(9)), None);
        assert_eq!(TaskPatch::default().apply(&old, None, "bob@example.com", None, at(9)), None);
    }

    #[test]
    fn a_patch_bumps_the_version_and_records_each_changed_field_with_the_comment() {
        let old = task();
        let patch =
            TaskPatch { status: Some(Status::Blocked), priority: Some(Priority::Urgent), ..TaskPatch::default() };
        let record = patch.apply(&old, None, "bob@example.com", Some("waiting"), at(9)).unwrap();
        assert_eq!(record.task.version, 2);
        assert_eq!(record.task.updated_by, "bob@example.com");
        assert_eq!(record.task.updated_at, at(9));
        assert_eq!(record.actor, "bob@example.com");
        let fields: Vec<_> = record.history.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["status", "priority"]);
        assert_eq!(record.comment.as_deref(), Some("waiting"));
        assert_eq!(record.kind, EventKind::TaskUpdated);
    }

    #[test]
    fn updated_at_never_goes_backwards_when_the_clock_does() {
        let old = task();
        let patch = TaskPatch { status: Some(Status::InProgress), ..TaskPatch::default() };
        let record = patch.apply(&old, None, "bob@example.com", None, at(0) - TimeDelta::hours(1)).unwrap();
        assert_eq!(record.task.updated_at, old.updated_at);
        let gone = deleted(&old, "bob@example.com", None, at(-60));
        assert_eq!(gone.task.updated_at, old.updated_at);
        assert_eq!(gone.task.deleted_at, Some(at(-60)));
    }

    #[test]
    fn a_reassignment_names_the_previous_assignee() {
        let ann = user("ann@example.com");
        let bob = user("bob@example.com");
        let patch = TaskPatch {
            assignee: Some(Some(UserKey::Email(Email::parse("a", "ann@example.com").unwrap()))),
            ..TaskPatch::default()
        };
        let first = patch.apply(&task(), Some(Some(ann.clone())), "x", None, at(1)).unwrap();
        assert_eq!(first.previous_assignee_id, None);
        assert_eq!(first.kind, EventKind::TaskAssigned);
        let second = patch.apply(&first.task, Some(Some(bob)), "x", None, at(2)).unwrap();
        assert_eq!(second.previous_assignee_id, Some(ann.id));
        let dropped = patch.apply(&second.task, Some(None), "x", None, at(3)).unwrap();
        assert_eq!(dropped.task.assignee_id, None);
        assert_eq!(dropped.kind, EventKind::TaskUpdated);
    }

    #[test]
    fn a_deletion_records_its_time_and_reason() {
        let old = task();
        let record = deleted(&old, "bob@example.com", Some("duplicate"), at(30));
        assert_eq!(record.task.version, 2);
        assert_eq!(record.kind, EventKind::TaskDeleted);
        assert_eq!(record.history[0].field, "deleted");
        assert_eq!(record.history[0].new_value.as_deref(), Some("2027-01-15T08:00:30.000000Z"));
        assert_eq!(record.comment.as_deref(), Some("duplicate"));
    }

    #[test]
    fn a_comment_leaves_the_task_as_it_was() {
        let task = task();
        let comment = Comment {
            id: Uuid::nil(),
            task_id: task.id,
            comment: "hi".into(),
            author: "bob".into(),
            created_at: at(4),
        };
        let record = commented(&task, &comment);
        assert_eq!(record.task, task);
        assert_eq!(record.actor, "bob");
        assert_eq!(record.history[0].new_value.as_deref(), Some("hi"));
    }
}
