//! Working together: claims with leases (who holds a task and until when), giving a task back, a
//! lease running out, and the rules of links between tasks (no cycle among blockers or parents, no
//! completing a parent whose subtasks are open). Pure: the stores read rows, call these, and write
//! what they return.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{EventKind, FieldChange, Record, Status, Task, User, ValidationError, diff_tasks, updated_at};

/// A lease's length when the caller names none: long enough for a piece of work, short enough that a
/// crashed agent's task comes back the same half hour.
pub const LEASE_DEFAULT_SECONDS: i64 = 1_800;
/// The longest lease: one day.
pub const LEASE_MAX_SECONDS: i64 = 86_400;

/// How long a claim holds before it must be renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(i64);

impl Lease {
    pub fn parse(field: &str, seconds: i64) -> Result<Self, ValidationError> {
        if (1..=LEASE_MAX_SECONDS).contains(&seconds) {
            Ok(Lease(seconds))
        } else {
            Err(ValidationError::new(
                field,
                format!("must be a number of seconds between 1 and {LEASE_MAX_SECONDS} (got {seconds})"),
            ))
        }
    }

    pub fn seconds(self) -> i64 {
        self.0
    }
}

impl Default for Lease {
    fn default() -> Self {
        Lease(LEASE_DEFAULT_SECONDS)
    }
}

/// Who claims: one agent session (a stdio process, or one credential over HTTP), and the client's
/// name when it gave one. Two windows of the same person are two sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub holder: String,
    pub agent: Option<String>,
}

/// A task's claim: its holder works on it until `expires_at`, unless they renew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub holder: String,
    pub agent: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl Claim {
    /// Whether the claim still holds at `now`.
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }

    /// As history records it.
    pub fn describe(&self) -> String {
        format!("{} until {}", self.holder, rfc3339(self.expires_at))
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A task as another task's detail names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: Uuid,
    pub title: String,
    pub status: Status,
}

/// The tasks around one task: what it waits on, what waits on it, its steps and what it is a step of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLinks {
    pub blocked_by: Vec<Link>,
    pub blocking: Vec<Link>,
    pub subtasks: Vec<Link>,
    pub parent: Option<Link>,
}

/// A change refused because of the work's state (not the input's form): a conflict with a code the
/// caller can act on (`already_claimed`, `claim_lost`, `dependency_cycle`, `open_subtasks`).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

impl Refusal {
    fn already_claimed(task: &Task, claim: &Claim) -> Self {
        Refusal {
            code: "already_claimed",
            message: format!("task {} is claimed by {} until {}", task.id, claim.holder, rfc3339(claim.expires_at)),
            details: json!({ "task_id": task.id, "holder": claim.holder, "agent": claim.agent,
                             "expires_at": rfc3339(claim.expires_at) }),
        }
    }

    fn claim_lost(task: &Task, why: String) -> Self {
        Refusal {
            code: "claim_lost",
            message: format!("you do not hold task {}: {why}", task.id),
            details: json!({ "task_id": task.id, "holder": task.claim.as_ref().map(|c| &c.holder) }),
        }
    }
}

/// Why a claim or a release did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkError {
    Invalid(ValidationError),
    Refused(Refusal),
}

impl From<Refusal> for WorkError {
    fn from(refusal: Refusal) -> Self {
        WorkError::Refused(refusal)
    }
}

/// The change a write makes from `old` to `new`: the version up by one, `updated_at` moved on.
fn record(old: &Task, mut new: Task, actor: &str, comment: Option<String>, now: DateTime<Utc>) -> Record {
    let history = diff_tasks(old, &new);
    new.version = old.version + 1;
    new.updated_at = updated_at(old.updated_at, now);
    new.updated_by = actor.to_owned();
    let previous_assignee_id = if old.assignee_id != new.assignee_id { old.assignee_id } else { None };
    Record {
        kind: super::event_kind_for_update(old, &new),
        actor: actor.to_owned(),
        history,
        comment,
        previous_assignee_id,
        task: new,
    }
}

/// `session` (acting as `user`, recorded as `actor`) claims `task` at `now` for `lease`: the task
/// becomes theirs and `in_progress` until the lease ends. Renewing one's own live claim moves its end.
/// Refused: a closed task, a live claim of another session (`already_claimed`), a claim of this
/// session that ran out when the task is `named` (a renewal: `claim_lost`), open blockers.
pub fn claimed(
    task: &Task,
    session: &Session,
    user: &User,
    actor: &str,
    lease: Lease,
    now: DateTime<Utc>,
    named: bool,
) -> Result<Record, WorkError> {
    if matches!(task.status, Status::Completed | Status::Cancelled) {
        return Err(WorkError::Invalid(ValidationError::new(
            "task_id",
            format!("task {} is {}: only open tasks can be claimed", task.id, task.status),
        )));
    }
    match &task.claim {
        Some(claim) if claim.live_at(now) && claim.holder != session.holder => {
            return Err(Refusal::already_claimed(task, claim).into());
        }
        Some(claim) if named && !claim.live_at(now) && claim.holder == session.holder => {
            let why = format!("your lease ran out at {}", rfc3339(claim.expires_at));
            return Err(Refusal::claim_lost(task, why).into());
        }
        None if named && task.lapsed_holder.as_deref() == Some(session.holder.as_str()) => {
            let why =
                "your lease ran out and the task was released; claim_task without task_id takes ready work".to_owned();
            return Err(Refusal::claim_lost(task, why).into());
        }
        _ => {}
    }
    if task.open_blockers > 0 && task.claim.is_none() {
        return Err(WorkError::Invalid(ValidationError::new(
            "task_id",
            format!("task {} waits on {} open blocker(s): finish those first", task.id, task.open_blockers),
        )));
    }
    let mut new = task.clone();
    new.status = Status::InProgress;
    new.assignee_id = Some(user.id);
    new.assignee_email = Some(user.email.clone());
    new.claim = Some(Claim {
        holder: session.holder.clone(),
        agent: session.agent.clone(),
        expires_at: now + TimeDelta::seconds(lease.seconds()),
    });
    new.lapsed_holder = None;
    Ok(record(task, new, actor, None, now))
}

/// The holder gives `task` back with `status` (`not_started`, for anyone to take at once, or
/// `blocked`). Refused (`claim_lost`) when `session` holds no live claim on it.
pub fn released(
    task: &Task,
    session: &Session,
    actor: &str,
    status: Status,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Record, WorkError> {
    if !matches!(status, Status::NotStarted | Status::Blocked) {
        return Err(WorkError::Invalid(
            ValidationError::new("status", format!("a released task cannot be {status}"))
                .with_accepted(["not_started", "blocked"]),
        ));
    }
    match &task.claim {
        Some(claim) if claim.holder == session.holder && claim.live_at(now) => {}
        Some(claim) if claim.holder == session.holder => {
            return Err(
                Refusal::claim_lost(task, format!("your lease ran out at {}", rfc3339(claim.expires_at))).into()
            );
        }
        Some(claim) if claim.live_at(now) => {
            return Err(Refusal::claim_lost(task, format!("it is claimed by {}", claim.holder)).into());
        }
        _ if task.lapsed_holder.as_deref() == Some(session.holder.as_str()) => {
            return Err(Refusal::claim_lost(task, "your lease ran out and the task was released".to_owned()).into());
        }
        _ => return Err(Refusal::claim_lost(task, "it is not claimed".to_owned()).into()),
    }
    let mut new = task.clone();
    new.status = status;
    new.claim = None;
    if status == Status::NotStarted {
        new.assignee_id = None;
        new.assignee_email = None;
    }
    Ok(record(task, new, actor, comment.map(str::to_owned), now))
}

/// The actor the system records its own changes under (a lease running out).
pub const SYSTEM_ACTOR: &str = "system";

/// `task`'s lease ran out by `now`: it is ready again (not started, nobody's), recorded by the
/// system; its holder's next renewal or release is told the claim was lost. `None` when its claim
/// still holds (or it has none).
pub fn lapsed(task: &Task, now: DateTime<Utc>) -> Option<Record> {
    let claim = task.claim.as_ref().filter(|c| !c.live_at(now))?;
    let mut new = task.clone();
    new.claim = None;
    new.lapsed_holder = Some(claim.holder.clone());
    new.status = Status::NotStarted;
    new.assignee_id = None;
    new.assignee_email = None;
    let comment = format!("the lease of {} ran out at {}", claim.holder, rfc3339(claim.expires_at));
    Some(record(task, new, SYSTEM_ACTOR, Some(comment), now))
}

/// The event for a task whose last open blocker just closed (or was deleted): it is ready now. Nothing of the task
/// changes, so no history row.
pub fn unblocked(task: &Task, actor: &str) -> Record {
    Record {
        task: task.clone(),
        kind: EventKind::TaskUpdated,
        actor: actor.to_owned(),
        history: Vec::new(),
        comment: None,
        previous_assignee_id: None,
    }
}

/// The history rows of links added to and removed from `blocked_by`.
pub fn link_changes(added: &[Uuid], removed: &[Uuid]) -> Vec<FieldChange> {
    let added =
        added.iter().map(|id| FieldChange { field: "blocked_by", old_value: None, new_value: Some(id.to_string()) });
    let removed =
        removed.iter().map(|id| FieldChange { field: "blocked_by", old_value: Some(id.to_string()), new_value: None });
    added.chain(removed).collect()
}

fn cycle_refusal(kind: &str, path: &[Uuid]) -> Refusal {
    let names: Vec<String> = path.iter().map(Uuid::to_string).collect();
    Refusal {
        code: "dependency_cycle",
        message: format!("that {kind} would make a cycle: {}", names.join(" → ")),
        details: json!({ "cycle": names }),
    }
}

/// Refuses making `task` wait on `blockers` when one of them already waits (directly or not) on
/// `task`: the cycle, task first and last. `edges` are the known links (task, blocked_by) reachable
/// from the blockers.
pub fn dependency_cycle(task: Uuid, blockers: &[Uuid], edges: &[(Uuid, Uuid)]) -> Result<(), Refusal> {
    let mut next: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (from, to) in edges {
        next.entry(*from).or_default().push(*to);
    }
    for &start in blockers {
        // Breadth first from the blocker, remembering how each task was reached.
        let mut came_from: HashMap<Uuid, Uuid> = HashMap::new();
        let mut seen: HashSet<Uuid> = HashSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            if at == task {
                // Walked back from the task to the blocker, then read forwards: task → blocker → … → task.
                let mut back = vec![at];
                let mut step = at;
                while step != start {
                    step = came_from[&step];
                    back.push(step);
                }
                back.reverse();
                let path: Vec<Uuid> = std::iter::once(task).chain(back).collect();
                return Err(cycle_refusal("link", &path));
            }
            for &to in next.get(&at).into_iter().flatten() {
                if seen.insert(to) {
                    came_from.insert(to, at);
                    queue.push_back(to);
                }
            }
        }
    }
    Ok(())
}

/// Refuses making `parent` the parent of `task` when `task` is `parent` or one of its ancestors
/// (`ancestors`: the parent's parent, its parent, …).
pub fn parent_cycle(task: Uuid, parent: Uuid, ancestors: &[Uuid]) -> Result<(), Refusal> {
    if parent == task {
        return Err(cycle_refusal("parent", &[task, task]));
    }
    if let Some(at) = ancestors.iter().position(|a| *a == task) {
        let mut path = vec![task, parent];
        path.extend_from_slice(&ancestors[..=at]);
        return Err(cycle_refusal("parent", &path));
    }
    Ok(())
}

/// Refuses completing `task` while the listed subtasks of it are open.
pub fn unfinished_subtasks(task: &Task, open: &[Link]) -> Result<(), Refusal> {
    if open.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = open.iter().map(|l| format!("{} ({}, {})", l.id, l.title, l.status)).collect();
    Err(Refusal {
        code: "open_subtasks",
        message: format!(
            "task {} cannot be completed while {} subtask(s) are open: {}",
            task.id,
            open.len(),
            names.join("; ")
        ),
        details: json!({ "task_id": task.id, "open_subtasks": open.iter().map(|l| l.id).collect::<Vec<_>>() }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Complexity, Priority, TaskDraft, Title};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn task() -> Task {
        let title = Title::parse("title", "work").unwrap();
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
        draft.create(Uuid::now_v7(), "T-1".into(), "ann@example.com", at(0)).task
    }

    fn session(name: &str) -> Session {
        Session { holder: name.into(), agent: Some("claude-code".into()) }
    }

    fn ann() -> User {
        User { id: Uuid::now_v7(), email: "ann@example.com".into(), name: None, created_at: at(0) }
    }

    #[test]
    fn a_claim_holds_until_its_lease_ends_and_the_holder_may_renew() {
        let t = task();
        let one = claimed(&t, &session("one"), &ann(), "ann", Lease::parse("l", 60).unwrap(), at(1), true).unwrap();
        assert_eq!(one.task.status, Status::InProgress);
        assert_eq!(one.task.claim.as_ref().unwrap().expires_at, at(61));
        let Err(WorkError::Refused(r)) =
            claimed(&one.task, &session("two"), &ann(), "ann", Lease::default(), at(30), true)
        else {
            panic!("a second session took a held task")
        };
        assert_eq!(r.code, "already_claimed");
        assert!(r.message.contains("one"), "{}", r.message);
        let renewed =
            claimed(&one.task, &session("one"), &ann(), "ann", Lease::parse("l", 60).unwrap(), at(30), true).unwrap();
        assert_eq!(renewed.task.claim.unwrap().expires_at, at(90));
    }

    #[test]
    fn a_lapsed_lease_frees_the_task_and_its_holder_learns_it_was_lost() {
        let t = task();
        let one = claimed(&t, &session("one"), &ann(), "ann", Lease::parse("l", 1).unwrap(), at(0), true).unwrap().task;
        assert!(lapsed(&one, at(0)).is_none());
        let gone = lapsed(&one, at(2)).unwrap();
        assert_eq!(gone.actor, SYSTEM_ACTOR);
        assert_eq!(gone.task.status, Status::NotStarted);
        assert_eq!(gone.task.claim, None);
        for result in [
            released(&gone.task, &session("one"), "ann", Status::NotStarted, None, at(3)).map(|_| ()),
            claimed(&gone.task, &session("one"), &ann(), "ann", Lease::default(), at(3), true).map(|_| ()),
        ] {
            let Err(WorkError::Refused(r)) = result else { panic!("{result:?}") };
            assert_eq!(r.code, "claim_lost");
        }
        assert!(claimed(&gone.task, &session("two"), &ann(), "ann", Lease::default(), at(3), true).is_ok());
    }

    #[test]
    fn leases_are_between_one_second_and_a_day() {
        assert!(Lease::parse("lease_seconds", 0).is_err());
        assert!(Lease::parse("lease_seconds", 1_000_000_000).is_err());
        assert_eq!(Lease::parse("lease_seconds", 86_400).unwrap().seconds(), 86_400);
    }

    #[test]
    fn cycles_are_found_and_named_in_order() {
        let [a, b, c] = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        // b waits on a, c waits on b: a waiting on c closes the circle.
        let edges = [(b, a), (c, b)];
        let refusal = dependency_cycle(a, &[c], &edges).unwrap_err();
        assert_eq!(refusal.details["cycle"], json!([a, c, b, a].map(|i| i.to_string())));
        assert!(dependency_cycle(c, &[a], &edges).is_ok());
        assert!(dependency_cycle(a, &[a], &[]).is_err());
        assert!(parent_cycle(a, a, &[]).is_err());
        assert!(parent_cycle(a, b, &[c, a]).is_err());
        assert!(parent_cycle(a, b, &[c]).is_ok());
    }
}
