//! The store contract, written once and run against every backend: each test is an
//! `async fn name(backend: Backend)`, and `contract!` turns it into `store_contract::postgres::name`
//! and `store_contract::sqlite::name`.
//!
//! What the history holds, so both backends write the same audit trail:
//! - create: one row, `field_changed = "created"`, `new_value` = the title;
//! - update: one row per changed field (from `domain::diff_tasks`), each carrying the update's comment;
//! - comment: one row, `field_changed = "comment"`, `new_value` = the comment's text;
//! - delete: one row, `field_changed = "deleted"`, `new_value` = the deletion time (RFC 3339),
//!   `comment` = the reason.
//!
//! Adding a comment changes neither the task's version nor its `updated_at`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use task_mcp::domain::{
    Access, CommentText, Complexity, Description, Email, Event, EventKind, IdempotencyKey, PageCursor, Priority,
    RepoName, SearchText, Status, Task, TaskPatch, Title, UserKey,
};
use task_mcp::error::Error;
use task_mcp::store::{EventSink, NewComment, NewTask, Store, TaskDeletion, TaskQuery, TaskUpdate};
use task_mcp::wire;
use uuid::Uuid;

use crate::support::{Backend, TestStore};

/// One `#[tokio::test]` per backend for each contract test, in a module named after the backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Backend::Sqlite).await
                }
            )*
        }
    };
}

contract!(
    a_created_task_reads_back_with_every_field,
    a_task_created_with_only_a_title_gets_the_defaults,
    creating_a_task_writes_one_created_history_row,
    each_changed_field_writes_a_history_row_with_old_new_who_and_comment,
    an_update_that_changes_nothing_writes_nothing,
    every_change_bumps_the_version_by_one,
    a_stale_expected_version_is_a_conflict_carrying_the_current_task,
    a_stale_expected_version_on_delete_is_a_conflict,
    an_unknown_assignee_id_is_invalid_and_names_the_field,
    an_unknown_assignee_email_creates_the_user,
    users_are_found_by_id_or_email_without_being_created,
    a_repository_is_created_on_first_use_and_counts_its_open_tasks,
    a_retried_create_with_the_same_idempotency_key_returns_the_first_task,
    the_same_idempotency_key_from_another_actor_creates_another_task,
    two_users_under_one_label_with_one_key_get_two_tasks,
    one_user_under_two_labels_with_one_key_gets_one_task,
    a_key_replayed_with_another_request_is_an_idempotency_conflict_that_writes_nothing,
    concurrent_creates_with_one_idempotency_key_make_one_task,
    a_deleted_task_is_hidden_from_get_and_list_and_cannot_be_changed,
    changing_an_unknown_task_is_not_found,
    a_comment_is_stored_with_its_author_and_listed_oldest_first,
    history_since_a_moment_is_read_for_many_tasks_and_selects_the_tasks_it_holds,
    a_task_reads_back_with_its_comments_and_history_in_one_call,
    a_task_detail_read_during_concurrent_updates_shows_one_moment,
    listing_filters_by_assignee_repository_status_and_priority_together,
    the_query_filter_matches_title_and_description_case_insensitively,
    like_metacharacters_in_a_query_match_literally,
    keyset_pages_cover_every_task_once_newest_change_first,
    keyset_pages_cover_tasks_with_equal_timestamps_once,
    the_keyset_cursor_breaks_ties_by_id,
    timestamps_keep_microsecond_precision,
    updated_at_never_goes_backwards_when_the_clock_does,
    every_change_writes_one_event_of_the_right_kind_in_seq_order,
    failed_calls_write_no_event,
    a_reassignment_event_names_the_previous_assignee,
    a_failing_sink_leaves_every_event_unpublished,
    a_succeeding_sink_gets_each_event_once_in_seq_order,
    relay_pending_hands_over_at_most_the_limit,
    two_concurrent_relays_never_publish_an_event_twice_nor_skip_one,
    prune_events_deletes_old_published_events_in_batches,
    prune_events_keeps_unpublished_events_unless_asked,
    event_bounds_report_the_oldest_kept_and_the_latest_written_seq,
    events_after_returns_later_events_in_order_up_to_the_limit,
    watch_commits_fires_after_a_commit,
    watch_commits_sees_commits_made_through_another_store,
    an_api_key_is_found_by_its_hash_until_revoked,
    an_api_key_name_is_unique,
    migrate_is_idempotent_and_reports_the_schema_version,
);

// ---------------------------------------------------------------------------------------------
// Helpers: a new test case should be a few lines.

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";

fn title(raw: &str) -> Title {
    Title::parse("title", raw).expect("valid title")
}

fn email(raw: &str) -> Email {
    Email::parse("email", raw).expect("valid email")
}

fn key_name(raw: &str) -> task_mcp::domain::KeyName {
    task_mcp::domain::KeyName::parse("name", raw).expect("valid key name")
}

fn repo(raw: &str) -> RepoName {
    RepoName::parse("repository", raw).expect("valid repository")
}

fn comment(raw: &str) -> CommentText {
    CommentText::parse("comment", raw).expect("valid comment")
}

fn search(raw: &str) -> SearchText {
    SearchText::parse("query", raw).expect("valid query")
}

fn new_task(t: &str) -> NewTask {
    NewTask {
        title: title(t),
        description: None,
        status: Status::default(),
        priority: Priority::default(),
        complexity: Complexity::default(),
        assignee: None,
        repository: None,
        actor: ANN.to_owned(),
        idempotency_key: None,
        owner: ANN.to_owned(),
        parent_id: None,
        blocked_by: Vec::new(),
    }
}

fn update(task: &Task, patch: TaskPatch) -> TaskUpdate {
    TaskUpdate { task_id: task.id, patch, actor: BOB.to_owned(), comment: None, expected_version: None }
}

fn status_patch(status: Status) -> TaskPatch {
    TaskPatch { status: Some(status), ..TaskPatch::default() }
}

fn query(limit: u32) -> TaskQuery {
    TaskQuery { limit, ..TaskQuery::default() }
}

async fn create(store: &dyn Store, new: NewTask) -> Task {
    store.create_task(new).await.expect("create_task").task
}

async fn all_events(store: &dyn Store) -> Vec<Event> {
    store.events_after(0, 10_000).await.expect("events_after")
}

async fn ids(store: &dyn Store, q: &TaskQuery) -> Vec<Uuid> {
    store.list_tasks(q).await.expect("list_tasks").into_iter().map(|t| t.id).collect()
}

/// Every task, following the keyset cursor page by page.
async fn walk_pages(store: &dyn Store, page_size: u32) -> Vec<Task> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_tasks(&TaskQuery { limit: page_size, after, ..TaskQuery::default() }).await.unwrap();
        assert!(page.len() <= page_size as usize);
        let Some(last) = page.last() else { break };
        after = Some(PageCursor::after(last));
        let short = page.len() < page_size as usize;
        seen.extend(page);
        if short {
            break;
        }
    }
    seen
}

fn assert_newest_change_first(tasks: &[Task]) {
    for pair in tasks.windows(2) {
        assert!(
            (pair[0].updated_at, pair[0].id) > (pair[1].updated_at, pair[1].id),
            "not in (updated_at, id) descending order: {:?} then {:?}",
            (pair[0].updated_at, pair[0].id),
            (pair[1].updated_at, pair[1].id)
        );
    }
}

/// Records what it is handed; fails when asked to.
#[derive(Default)]
struct Sink {
    fail: bool,
    delay: Option<Duration>,
    seen: Mutex<Vec<i64>>,
}

#[async_trait]
impl EventSink for Sink {
    async fn publish(&self, events: &[Event]) -> task_mcp::error::Result<()> {
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        if self.fail {
            return Err(Error::Unavailable("the test sink is down".into()));
        }
        self.seen.lock().unwrap().extend(events.iter().map(|e| e.seq));
        Ok(())
    }
}

impl Sink {
    fn failing() -> Self {
        Sink { fail: true, ..Sink::default() }
    }

    fn seen(&self) -> Vec<i64> {
        self.seen.lock().unwrap().clone()
    }
}

/// Gives every task the same `updated_at`, behind the store's back (its API cannot), so that
/// pagination must break ties by id.
async fn give_every_task_the_same_updated_at(ts: &TestStore, backend: Backend) {
    const SQL: &str = "UPDATE tasks SET updated_at = (SELECT max(updated_at) FROM tasks)";
    match backend {
        // Replica mode skips triggers: the value written is the value kept.
        Backend::Postgres => {
            crate::support::pg::execute(&ts.url, &format!("SET session_replication_role = replica; {SQL}")).await
        }
        Backend::Sqlite => {
            let path = ts.url.strip_prefix("sqlite://").expect("a sqlite:// URL").to_owned();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
                conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
                conn.execute(SQL, []).expect("equalise updated_at");
            })
            .await
            .expect("join");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tasks: create, read, update.

async fn a_created_task_reads_back_with_every_field(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let created = store
        .create_task(NewTask {
            title: title("  Fix the login redirect  "),
            description: Some(Description::parse("description", "Users land on /404.\nSee the logs.").unwrap()),
            status: Status::InProgress,
            priority: Priority::Urgent,
            complexity: Complexity::High,
            assignee: Some(UserKey::Email(email("Carol@Example.COM"))),
            repository: Some(repo("org/auth-service")),
            actor: "agent-7".to_owned(),
            idempotency_key: Some(IdempotencyKey::parse("idempotency_key", "k-1").unwrap()),
            owner: ANN.to_owned(),
            parent_id: None,
            blocked_by: Vec::new(),
        })
        .await
        .unwrap();
    assert!(!created.replayed);
    let task = created.task;
    assert_eq!(task.title, "Fix the login redirect");
    assert_eq!(task.description.as_deref(), Some("Users land on /404.\nSee the logs."));
    assert_eq!(task.status, Status::InProgress);
    assert_eq!(task.priority, Priority::Urgent);
    assert_eq!(task.complexity, Complexity::High);
    assert_eq!(task.assignee_email.as_deref(), Some("carol@example.com"));
    let carol = store.find_user(&UserKey::Email(email("carol@example.com"))).await.unwrap().expect("carol exists");
    assert_eq!(task.assignee_id, Some(carol.id));
    assert_eq!(task.repository.as_deref(), Some("org/auth-service"));
    assert_eq!(task.created_by, "agent-7");
    assert_eq!(task.updated_by, "agent-7");
    assert_eq!(task.version, 1);
    assert_eq!(task.created_at, task.updated_at);
    assert!(task.deleted_at.is_none());
    assert!((Utc::now() - task.created_at).abs() < TimeDelta::seconds(60), "created_at is now-ish");

    let read = store.get_task(task.id).await.unwrap().expect("the task is found");
    assert_eq!(read, task, "get_task returns exactly what create_task returned");
    assert_eq!(store.list_tasks(&query(10)).await.unwrap(), vec![task]);
}

async fn a_task_created_with_only_a_title_gets_the_defaults(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let task = create(ts.store.as_ref(), new_task("Write docs")).await;
    assert_eq!(task.status, Status::NotStarted);
    assert_eq!(task.priority, Priority::Medium);
    assert_eq!(task.complexity, Complexity::Medium);
    assert_eq!(task.description, None);
    assert_eq!(task.assignee_id, None);
    assert_eq!(task.assignee_email, None);
    assert_eq!(task.repository, None);
    assert_eq!(task.created_by, ANN);
    assert_eq!(task.updated_by, ANN);
    assert_eq!(task.version, 1);
}

async fn creating_a_task_writes_one_created_history_row(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("Write docs")).await;
    let history = store.list_history(task.id).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    let row = &history[0];
    assert_eq!(row.task_id, task.id);
    assert_eq!(row.field_changed, "created");
    assert_eq!(row.old_value, None);
    assert_eq!(row.new_value.as_deref(), Some("Write docs"));
    assert_eq!(row.changed_by, ANN);
    assert_eq!(row.changed_at, task.created_at);
}

async fn each_changed_field_writes_a_history_row_with_old_new_who_and_comment(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(
        store,
        NewTask {
            assignee: Some(UserKey::Email(email(ANN))),
            repository: Some(repo("old-repo")),
            description: Some(Description::parse("description", "old text").unwrap()),
            ..new_task("Old title")
        },
    )
    .await;
    let patch = TaskPatch {
        title: Some(title("New title")),
        description: Some(None),
        status: Some(Status::Blocked),
        priority: Some(Priority::High),
        complexity: Some(Complexity::Low),
        assignee: Some(Some(UserKey::Email(email(BOB)))),
        repository: Some(Some(repo("new-repo"))),
        ..TaskPatch::default()
    };
    let updated = store
        .update_task(TaskUpdate { comment: Some(comment("waiting on infra")), ..update(&task, patch) })
        .await
        .unwrap();
    assert_eq!(updated.updated_by, BOB);
    assert_eq!(updated.created_by, ANN);
    assert_eq!(updated.assignee_email.as_deref(), Some(BOB));

    let history = store.list_history(task.id).await.unwrap();
    let rows: Vec<_> = history
        .iter()
        .skip(1)
        .map(|h| (h.field_changed.as_str(), h.old_value.as_deref(), h.new_value.as_deref()))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("title", Some("Old title"), Some("New title")),
            ("description", Some("old text"), None),
            ("status", Some("not_started"), Some("blocked")),
            ("priority", Some("medium"), Some("high")),
            ("complexity", Some("medium"), Some("low")),
            ("assignee", Some(ANN), Some(BOB)),
            ("repository", Some("old-repo"), Some("new-repo")),
        ]
    );
    for row in &history[1..] {
        assert_eq!(row.changed_by, BOB);
        assert_eq!(row.comment.as_deref(), Some("waiting on infra"));
        assert_eq!(row.changed_at, updated.updated_at);
    }

    // Clearing a field is a change too.
    store
        .update_task(update(
            &updated,
            TaskPatch { assignee: Some(None), repository: Some(None), ..TaskPatch::default() },
        ))
        .await
        .unwrap();
    let history = store.list_history(task.id).await.unwrap();
    let last: Vec<_> = history[8..]
        .iter()
        .map(|h| (h.field_changed.as_str(), h.old_value.as_deref(), h.new_value.as_deref()))
        .collect();
    assert_eq!(last, vec![("assignee", Some(BOB), None), ("repository", Some("new-repo"), None)]);
    assert_eq!(history[8].comment, None);
}

async fn an_update_that_changes_nothing_writes_nothing(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(
        store,
        NewTask { assignee: Some(UserKey::Email(email(BOB))), repository: Some(repo("r")), ..new_task("Same") },
    )
    .await;
    let events_before = all_events(store).await.len();

    let empty = store.update_task(update(&task, TaskPatch::default())).await.unwrap();
    assert_eq!(empty, task);
    let same = TaskPatch {
        title: Some(title("Same")),
        status: Some(Status::NotStarted),
        assignee: Some(Some(UserKey::Email(email(BOB)))),
        repository: Some(Some(repo("r"))),
        ..TaskPatch::default()
    };
    let unchanged = store
        .update_task(TaskUpdate { comment: Some(comment("no-op")), expected_version: Some(1), ..update(&task, same) })
        .await
        .unwrap();
    assert_eq!(unchanged, task, "version, updated_at and updated_by stay as they were");
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap(), task);
    assert_eq!(store.list_history(task.id).await.unwrap().len(), 1);
    assert_eq!(all_events(store).await.len(), events_before);
}

async fn every_change_bumps_the_version_by_one(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("Count")).await;
    let v2 = store.update_task(update(&task, status_patch(Status::InProgress))).await.unwrap();
    assert_eq!(v2.version, 2);
    assert!(v2.updated_at >= task.updated_at);
    let v3 = store
        .update_task(update(&v2, TaskPatch { priority: Some(Priority::Low), ..TaskPatch::default() }))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let (_, after_comment) = store
        .add_comment(NewComment { task_id: task.id, comment: comment("hello"), author: BOB.into() })
        .await
        .unwrap();
    assert_eq!(after_comment.version, 3, "a comment does not change the task");
    assert_eq!(after_comment.updated_at, v3.updated_at);
    let deleted = store
        .delete_task(TaskDeletion { task_id: task.id, actor: BOB.into(), reason: None, expected_version: Some(3) })
        .await
        .unwrap();
    assert_eq!(deleted.version, 4);
}

async fn a_stale_expected_version_is_a_conflict_carrying_the_current_task(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("Race")).await;
    let first = store
        .update_task(TaskUpdate { expected_version: Some(1), ..update(&task, status_patch(Status::InProgress)) })
        .await
        .expect("the first writer wins");
    let history_before = store.list_history(task.id).await.unwrap().len();
    let events_before = all_events(store).await.len();

    let err = store
        .update_task(TaskUpdate { expected_version: Some(1), ..update(&task, status_patch(Status::Completed)) })
        .await
        .expect_err("the second writer loses");
    match err {
        Error::Conflict { expected, current } => {
            assert_eq!(expected, 1);
            assert_eq!(current.version, 2);
            assert_eq!(*current, first, "the conflict carries the task as it is now");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap(), first, "nothing changed");
    assert_eq!(store.list_history(task.id).await.unwrap().len(), history_before);
    assert_eq!(all_events(store).await.len(), events_before);
}

async fn a_stale_expected_version_on_delete_is_a_conflict(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("Keep me")).await;
    let err = store
        .delete_task(TaskDeletion { task_id: task.id, actor: BOB.into(), reason: None, expected_version: Some(7) })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { expected: 7, ref current } if current.version == 1), "{err:?}");
    assert!(store.get_task(task.id).await.unwrap().is_some());
}

async fn an_unknown_assignee_id_is_invalid_and_names_the_field(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let nobody = UserKey::Id(Uuid::new_v4());
    let err = store
        .create_task(NewTask { assignee: Some(nobody.clone()), repository: Some(repo("never")), ..new_task("x") })
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Invalid(v) if v.field == "assignee_id"), "{err:?}");
    assert!(store.list_tasks(&query(10)).await.unwrap().is_empty(), "nothing was created");
    assert!(store.list_repositories().await.unwrap().is_empty(), "not even the repository");

    let task = create(store, new_task("y")).await;
    let err = store
        .update_task(update(&task, TaskPatch { assignee: Some(Some(nobody)), ..TaskPatch::default() }))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Invalid(v) if v.field == "assignee_id"), "{err:?}");
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap(), task);
}

async fn an_unknown_assignee_email_creates_the_user(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let dan = UserKey::Email(email("dan@example.com"));
    assert_eq!(store.find_user(&dan).await.unwrap(), None);
    let task = create(store, NewTask { assignee: Some(dan.clone()), ..new_task("For Dan") }).await;
    let user = store.find_user(&dan).await.unwrap().expect("dan was created");
    assert_eq!(user.email, "dan@example.com");
    assert_eq!(task.assignee_id, Some(user.id));
    assert_eq!(store.list_users().await.unwrap(), vec![user.clone()]);

    // The same email, however it is spelled, is the same user.
    let again = store.resolve_user("assignee", &UserKey::Email(email("DAN@example.com"))).await.unwrap();
    assert_eq!(again, user);
    let other = create(store, NewTask { assignee: Some(UserKey::Id(user.id)), ..new_task("Also Dan") }).await;
    assert_eq!(other.assignee_email.as_deref(), Some("dan@example.com"));
    assert_eq!(store.list_users().await.unwrap().len(), 1);
}

async fn users_are_found_by_id_or_email_without_being_created(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let ann = store.resolve_user("user", &UserKey::Email(email(ANN))).await.unwrap();
    assert_eq!(store.find_user(&UserKey::Id(ann.id)).await.unwrap(), Some(ann.clone()));
    assert_eq!(store.find_user(&UserKey::Email(email(ANN))).await.unwrap(), Some(ann.clone()));
    assert_eq!(store.find_user(&UserKey::Id(Uuid::new_v4())).await.unwrap(), None);
    assert_eq!(store.find_user(&UserKey::Email(email("nobody@example.com"))).await.unwrap(), None);
    let err = store.resolve_user("user_id", &UserKey::Id(Uuid::new_v4())).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(v) if v.field == "user_id"), "{err:?}");
    let bob = store.resolve_user("user", &UserKey::Email(email(BOB))).await.unwrap();
    let emails: Vec<_> = store.list_users().await.unwrap().into_iter().map(|u| u.email).collect();
    assert_eq!(emails, vec![ANN.to_owned(), bob.email]);
}

async fn a_repository_is_created_on_first_use_and_counts_its_open_tasks(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    assert!(store.list_repositories().await.unwrap().is_empty());
    let first = create(store, NewTask { repository: Some(repo("web")), ..new_task("a") }).await;
    create(store, NewTask { repository: Some(repo("web")), ..new_task("b") }).await;
    let moved = create(store, new_task("c")).await;
    store
        .update_task(update(&moved, TaskPatch { repository: Some(Some(repo("api"))), ..TaskPatch::default() }))
        .await
        .unwrap();
    let repos = store.list_repositories().await.unwrap();
    let counts: Vec<_> = repos.iter().map(|r| (r.name.as_str(), r.open_task_count)).collect();
    assert_eq!(counts, vec![("api", 1), ("web", 2)]);

    store
        .delete_task(TaskDeletion { task_id: first.id, actor: ANN.into(), reason: None, expected_version: None })
        .await
        .unwrap();
    let counts: Vec<_> =
        store.list_repositories().await.unwrap().into_iter().map(|r| (r.name, r.open_task_count)).collect();
    assert_eq!(counts, vec![("api".to_owned(), 1), ("web".to_owned(), 1)]);
}

async fn a_retried_create_with_the_same_idempotency_key_returns_the_first_task(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let keyed = |t: &str| NewTask {
        idempotency_key: Some(IdempotencyKey::parse("idempotency_key", "retry-1").unwrap()),
        assignee: Some(UserKey::Email(email("first-use@example.com"))),
        ..new_task(t)
    };
    let first = store.create_task(keyed("Once")).await.unwrap();
    assert!(!first.replayed);
    let second = store.create_task(keyed("Once")).await.unwrap();
    assert!(second.replayed);
    assert_eq!(second.task, first.task);
    assert_eq!(store.list_tasks(&query(10)).await.unwrap().len(), 1);
    assert_eq!(all_events(store).await.len(), 1);
    assert_eq!(store.list_history(first.task.id).await.unwrap().len(), 1);
}

async fn the_same_idempotency_key_from_another_actor_creates_another_task(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let key = IdempotencyKey::parse("idempotency_key", "shared").unwrap();
    let a = store.create_task(NewTask { idempotency_key: Some(key.clone()), ..new_task("A") }).await.unwrap();
    let b = store
        .create_task(NewTask { idempotency_key: Some(key), owner: BOB.into(), actor: BOB.into(), ..new_task("B") })
        .await
        .unwrap();
    assert!(!b.replayed);
    assert_ne!(a.task.id, b.task.id);
}

async fn concurrent_creates_with_one_idempotency_key_make_one_task(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let calls = (0..8).map(|i| {
        let store = ts.store.clone();
        tokio::spawn(async move {
            store
                .create_task(NewTask {
                    idempotency_key: Some(IdempotencyKey::parse("idempotency_key", "race").unwrap()),
                    repository: Some(repo(&format!("repo-{i}"))),
                    ..new_task(&format!("Racer {i}"))
                })
                .await
        })
    });
    // Each racer asks for another repository: the one that wins creates the task, the others are told
    // their key already made it (a different request under one key is a conflict, not a replay).
    let outcomes: Vec<_> = futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap()).collect();
    let results: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
    let ids: BTreeSet<_> = results.iter().map(|c| c.task.id).collect();
    assert_eq!(ids.len(), 1, "every call returned the same task");
    assert_eq!(results.iter().filter(|c| !c.replayed).count(), 1, "exactly one call created it");
    for refused in outcomes.iter().filter_map(|r| r.as_ref().err()) {
        match refused {
            Error::IdempotencyConflict { key, task_id } => {
                assert_eq!((key.as_str(), task_id.as_str()), ("race", results[0].task.id.to_string().as_str()))
            }
            other => panic!("a racer failed otherwise: {other:?}"),
        }
    }
    assert_eq!(ts.store.list_tasks(&query(50)).await.unwrap().len(), 1);
    assert_eq!(all_events(ts.store.as_ref()).await.len(), 1);
    let winner = &results.iter().find(|c| !c.replayed).unwrap().task;
    let repos: Vec<_> = ts.store.list_repositories().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(repos, vec![winner.repository.clone().unwrap()], "the losers wrote nothing, not even a repository");
}

async fn a_deleted_task_is_hidden_from_get_and_list_and_cannot_be_changed(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let keep = create(store, new_task("Keep")).await;
    let task = create(store, new_task("Remove")).await;
    let deleted = store
        .delete_task(TaskDeletion {
            task_id: task.id,
            actor: BOB.into(),
            reason: Some(comment("duplicate of another task")),
            expected_version: Some(1),
        })
        .await
        .unwrap();
    let deleted_at = deleted.deleted_at.expect("deleted_at is set");
    assert_eq!(deleted.version, 2);
    assert_eq!(deleted.updated_by, BOB);

    assert_eq!(store.get_task(task.id).await.unwrap(), None);
    assert_eq!(ids(store, &query(10)).await, vec![keep.id]);
    let history = store.list_history(task.id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.field_changed, "deleted");
    assert_eq!(last.changed_by, BOB);
    assert_eq!(last.comment.as_deref(), Some("duplicate of another task"));
    assert_eq!(last.new_value.as_deref(), Some(wire::timestamp(deleted_at).as_str()));

    let not_found = |e: Error| matches!(e, Error::NotFound { .. });
    assert!(not_found(store.update_task(update(&task, status_patch(Status::Completed))).await.unwrap_err()));
    assert!(not_found(
        store
            .add_comment(NewComment { task_id: task.id, comment: comment("hi"), author: BOB.into() })
            .await
            .unwrap_err()
    ));
    assert!(not_found(
        store
            .delete_task(TaskDeletion { task_id: task.id, actor: BOB.into(), reason: None, expected_version: None })
            .await
            .unwrap_err()
    ));
}

async fn changing_an_unknown_task_is_not_found(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let id = Uuid::new_v4();
    let err = store
        .update_task(TaskUpdate {
            task_id: id,
            patch: status_patch(Status::Completed),
            actor: ANN.into(),
            comment: None,
            expected_version: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::NotFound { id: missing, .. } if *missing == id.to_string()), "{err:?}");
    let err = store.add_comment(NewComment { task_id: id, comment: comment("hi"), author: ANN.into() }).await;
    assert!(matches!(err, Err(Error::NotFound { .. })));
    let err = store.delete_task(TaskDeletion { task_id: id, actor: ANN.into(), reason: None, expected_version: None });
    assert!(matches!(err.await, Err(Error::NotFound { .. })));
    assert_eq!(store.get_task(id).await.unwrap(), None);
}

async fn a_comment_is_stored_with_its_author_and_listed_oldest_first(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("Discuss")).await;
    let (first, after) = store
        .add_comment(NewComment { task_id: task.id, comment: comment("first\nwith two lines"), author: BOB.into() })
        .await
        .unwrap();
    assert_eq!(after, task);
    assert_eq!(first.task_id, task.id);
    assert_eq!(first.comment, "first\nwith two lines");
    assert_eq!(first.author, BOB);
    let (second, _) = store
        .add_comment(NewComment { task_id: task.id, comment: comment("second"), author: ANN.into() })
        .await
        .unwrap();
    assert_eq!(store.list_comments(task.id).await.unwrap(), vec![first.clone(), second]);

    let history = store.list_history(task.id).await.unwrap();
    let row = &history[1];
    assert_eq!(row.field_changed, "comment");
    assert_eq!(row.new_value.as_deref(), Some("first\nwith two lines"));
    assert_eq!(row.changed_by, BOB);
    assert_eq!(row.changed_at, first.created_at);
    assert_eq!(history.len(), 3);
}

async fn history_since_a_moment_is_read_for_many_tasks_and_selects_the_tasks_it_holds(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let old = create(store, new_task("Old")).await;
    let talked = create(store, new_task("Talked about")).await;
    let untouched = create(store, new_task("Untouched")).await;
    let (said, _) = store
        .add_comment(NewComment { task_id: talked.id, comment: comment("a word"), author: BOB.into() })
        .await
        .unwrap();
    let since = said.created_at;
    assert!(since > untouched.created_at && since > old.created_at, "the comment comes after every create");
    let (later, _) = store
        .add_comment(NewComment { task_id: old.id, comment: comment("another"), author: ANN.into() })
        .await
        .unwrap();

    let rows = store.history_since(&[old.id, talked.id, untouched.id], since).await.unwrap();
    let seen: Vec<(Uuid, Option<&str>)> = rows.iter().map(|h| (h.task_id, h.new_value.as_deref())).collect();
    assert_eq!(seen, vec![(talked.id, Some("a word")), (old.id, Some("another"))], "written order, from `since` on");
    assert_eq!(rows[1].changed_at, later.created_at);
    assert!(store.history_since(&[], since).await.unwrap().is_empty());
    assert!(store.history_since(&[untouched.id], since).await.unwrap().is_empty());

    // A comment leaves updated_at alone; the listing still finds the task by its history.
    let changed = TaskQuery { changed_since: Some(since), ..query(50) };
    let found: BTreeSet<Uuid> = store.list_tasks(&changed).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(found, BTreeSet::from([old.id, talked.id]));
}

// ---------------------------------------------------------------------------------------------
// Listing.

async fn listing_filters_by_assignee_repository_status_and_priority_together(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let ann = UserKey::Email(email(ANN));
    let bob = UserKey::Email(email(BOB));
    let target = create(
        store,
        NewTask {
            assignee: Some(ann.clone()),
            repository: Some(repo("web")),
            status: Status::Blocked,
            priority: Priority::High,
            ..new_task("target")
        },
    )
    .await;
    let other_assignee = create(
        store,
        NewTask {
            assignee: Some(bob),
            repository: Some(repo("web")),
            status: Status::Blocked,
            priority: Priority::High,
            ..new_task("bob's")
        },
    )
    .await;
    let other_repo = create(
        store,
        NewTask {
            assignee: Some(ann.clone()),
            repository: Some(repo("api")),
            status: Status::Blocked,
            priority: Priority::High,
            ..new_task("api")
        },
    )
    .await;
    let other_status = create(
        store,
        NewTask {
            assignee: Some(ann.clone()),
            repository: Some(repo("web")),
            priority: Priority::High,
            ..new_task("new")
        },
    )
    .await;
    let other_priority = create(
        store,
        NewTask { assignee: Some(ann), repository: Some(repo("web")), status: Status::Blocked, ..new_task("medium") },
    )
    .await;
    let ann_id = target.assignee_id;

    let all = TaskQuery {
        assignee_id: ann_id,
        repository: Some(repo("web")),
        status: Some(Status::Blocked),
        priority: Some(Priority::High),
        ..query(50)
    };
    assert_eq!(store.list_tasks(&all).await.unwrap(), vec![target.clone()]);

    let set = |q: TaskQuery| async move { ids(store, &q).await.into_iter().collect::<BTreeSet<_>>() };
    let expect = |tasks: &[&Task]| tasks.iter().map(|t| t.id).collect::<BTreeSet<_>>();
    assert_eq!(
        set(TaskQuery { assignee_id: ann_id, ..query(50) }).await,
        expect(&[&target, &other_repo, &other_status, &other_priority])
    );
    assert_eq!(
        set(TaskQuery { repository: Some(repo("web")), ..query(50) }).await,
        expect(&[&target, &other_assignee, &other_status, &other_priority])
    );
    assert_eq!(
        set(TaskQuery { status: Some(Status::Blocked), ..query(50) }).await,
        expect(&[&target, &other_assignee, &other_repo, &other_priority])
    );
    assert_eq!(
        set(TaskQuery { priority: Some(Priority::High), ..query(50) }).await,
        expect(&[&target, &other_assignee, &other_repo, &other_status])
    );
    assert!(set(TaskQuery { repository: Some(repo("nowhere")), ..query(50) }).await.is_empty());
    assert!(set(TaskQuery { assignee_id: Some(Uuid::new_v4()), ..query(50) }).await.is_empty());
    assert_eq!(store.list_tasks(&query(2)).await.unwrap().len(), 2, "the limit holds");
}

async fn the_query_filter_matches_title_and_description_case_insensitively(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let in_title = create(store, new_task("Refactor the PAYMENT module")).await;
    let in_description = create(
        store,
        NewTask {
            description: Some(Description::parse("description", "touches\nPayment retries").unwrap()),
            ..new_task("Retries")
        },
    )
    .await;
    create(store, new_task("Unrelated")).await;
    let found: BTreeSet<_> =
        ids(store, &TaskQuery { query: Some(search("payment")), ..query(50) }).await.into_iter().collect();
    assert_eq!(found, BTreeSet::from([in_title.id, in_description.id]));
    let found = ids(store, &TaskQuery { query: Some(search("PAYMENT RETRIES")), ..query(50) }).await;
    assert_eq!(found, vec![in_description.id]);
    let found = ids(store, &TaskQuery { query: Some(search("touches payment")), ..query(50) }).await;
    assert!(found.is_empty(), "a line break is not a space");
    let found = ids(store, &TaskQuery { query: Some(search("ment mod")), ..query(50) }).await;
    assert_eq!(found, vec![in_title.id]);
}

async fn like_metacharacters_in_a_query_match_literally(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let percent = create(store, new_task("50% off")).await;
    create(store, new_task("50 percent off")).await;
    let underscore = create(store, new_task("snake_case")).await;
    create(store, new_task("snakeXcase")).await;
    let backslash = create(store, new_task(r"C:\temp")).await;
    create(store, new_task("C:temp")).await;
    let quote = create(store, new_task("it's 'quoted'")).await;

    let find = |q: &'static str| async move { ids(store, &TaskQuery { query: Some(search(q)), ..query(50) }).await };
    assert_eq!(find("50%").await, vec![percent.id]);
    assert_eq!(find("%").await, vec![percent.id]);
    assert_eq!(find("e_c").await, vec![underscore.id]);
    assert_eq!(find("_").await, vec![underscore.id]);
    assert_eq!(find(r"\").await, vec![backslash.id]);
    assert_eq!(find(r"C:\T").await, vec![backslash.id]);
    assert_eq!(find("'quoted'").await, vec![quote.id]);
}

async fn keyset_pages_cover_every_task_once_newest_change_first(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(create(store, new_task(&format!("task {i}"))).await);
    }
    // Touch one in the middle: it becomes the most recently changed.
    let touched = store.update_task(update(&created[5], status_patch(Status::InProgress))).await.unwrap();

    let seen = walk_pages(store, 5).await;
    assert_newest_change_first(&seen);
    let seen_ids: Vec<_> = seen.iter().map(|t| t.id).collect();
    let unique: BTreeSet<_> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "no task twice");
    assert_eq!(unique, created.iter().map(|t| t.id).collect(), "no task missing");
    assert_eq!(seen[0], touched);

    let one_page = store.list_tasks(&query(100)).await.unwrap();
    assert_eq!(one_page, seen, "pages join up to the single big page");
}

async fn keyset_pages_cover_tasks_with_equal_timestamps_once(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let mut created = BTreeSet::new();
    for i in 0..10 {
        created.insert(create(store, new_task(&format!("tie {i}"))).await.id);
    }
    give_every_task_the_same_updated_at(&ts, backend).await;
    let all = store.list_tasks(&query(100)).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].updated_at == w[1].updated_at), "the test set up a tie");

    for page_size in [1, 3, 4, 10, 11] {
        let seen = walk_pages(store, page_size).await;
        assert_newest_change_first(&seen);
        assert_eq!(seen.len(), 10, "page size {page_size}: no duplicate, no gap");
        assert_eq!(seen.iter().map(|t| t.id).collect::<BTreeSet<_>>(), created);
    }
}

async fn the_keyset_cursor_breaks_ties_by_id(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("only")).await;
    let at = |id: Uuid| TaskQuery { after: Some(PageCursor { updated_at: task.updated_at, id }), ..query(10) };
    assert_eq!(ids(store, &at(Uuid::max())).await, vec![task.id], "a larger id at the same time comes first");
    assert!(ids(store, &at(task.id)).await.is_empty(), "the cursor's own row is excluded");
    assert!(ids(store, &at(Uuid::nil())).await.is_empty());
    let later = TaskQuery {
        after: Some(PageCursor { updated_at: task.updated_at + TimeDelta::microseconds(1), id: Uuid::nil() }),
        ..query(10)
    };
    assert_eq!(ids(store, &later).await, vec![task.id]);
}

async fn timestamps_keep_microsecond_precision(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("precise")).await;
    assert_eq!(task.created_at.timestamp_subsec_nanos() % 1_000, 0, "no finer than microseconds");
    let listed = store.list_tasks(&query(1)).await.unwrap();
    assert_eq!(listed[0].updated_at, task.updated_at);
    let event = &all_events(store).await[0];
    assert_eq!(wire::task_value(&event.task)["updated_at"], wire::timestamp(task.updated_at));
    // A cursor carrying the exact microsecond excludes the row (and only it).
    let after = TaskQuery { after: Some(PageCursor::after(&task)), ..query(10) };
    assert!(store.list_tasks(&after).await.unwrap().is_empty());
}

async fn updated_at_never_goes_backwards_when_the_clock_does(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("from the future")).await;
    // As if the task was last changed by a writer whose clock ran an hour ahead.
    let ahead = (Utc::now() + TimeDelta::hours(1)).timestamp_micros();
    match backend {
        Backend::Postgres => {
            let sql = format!("UPDATE tasks SET updated_at = to_timestamp(0) + interval '{ahead} microseconds'");
            crate::support::pg::execute(&ts.url, &sql).await
        }
        Backend::Sqlite => {
            let path = ts.url.strip_prefix("sqlite://").expect("a sqlite:// URL").to_owned();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).expect("open the SQLite file");
                conn.busy_timeout(Duration::from_secs(5)).expect("busy timeout");
                conn.execute("UPDATE tasks SET updated_at = ?1", [ahead]).expect("move updated_at ahead");
            })
            .await
            .expect("join");
        }
    }
    let updated = store.update_task(update(&task, status_patch(Status::InProgress))).await.unwrap();
    assert_eq!(updated.updated_at.timestamp_micros(), ahead, "an update keeps the later time");
    assert_eq!(store.get_task(task.id).await.unwrap().unwrap(), updated);
    let deleted = store
        .delete_task(TaskDeletion { task_id: task.id, actor: ANN.into(), reason: None, expected_version: None })
        .await
        .unwrap();
    assert_eq!(deleted.updated_at.timestamp_micros(), ahead, "so does a deletion");
    assert!(deleted.deleted_at.unwrap() < deleted.updated_at, "deleted now, by this writer's clock");
    let events = all_events(store).await;
    assert_eq!(wire::task_value(&events[2].task)["updated_at"], wire::timestamp(deleted.updated_at));
}

// ---------------------------------------------------------------------------------------------
// The outbox.

async fn every_change_writes_one_event_of_the_right_kind_in_seq_order(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let unassigned = create(store, NewTask { repository: Some(repo("web")), ..new_task("free") }).await;
    let assigned = create(store, NewTask { assignee: Some(UserKey::Email(email(BOB))), ..new_task("bob's") }).await;
    let edited = store
        .update_task(update(&unassigned, TaskPatch { priority: Some(Priority::Urgent), ..TaskPatch::default() }))
        .await
        .unwrap();
    let given = store
        .update_task(update(
            &edited,
            TaskPatch { assignee: Some(Some(UserKey::Email(email(ANN)))), ..TaskPatch::default() },
        ))
        .await
        .unwrap();
    let done = store.update_task(update(&assigned, status_patch(Status::Completed))).await.unwrap();
    let (_, commented) =
        store.add_comment(NewComment { task_id: done.id, comment: comment("nice"), author: ANN.into() }).await.unwrap();
    let deleted = store
        .delete_task(TaskDeletion { task_id: given.id, actor: ANN.into(), reason: None, expected_version: None })
        .await
        .unwrap();

    let events = all_events(store).await;
    let got: Vec<_> = events.iter().map(|e| (e.kind, e.task_id)).collect();
    assert_eq!(
        got,
        vec![
            (EventKind::TaskCreated, unassigned.id),
            (EventKind::TaskAssigned, assigned.id),
            (EventKind::TaskUpdated, unassigned.id),
            (EventKind::TaskAssigned, unassigned.id),
            (EventKind::TaskCompleted, assigned.id),
            (EventKind::TaskCommented, assigned.id),
            (EventKind::TaskDeleted, unassigned.id),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "seq increases");
    let after = [&unassigned, &assigned, &edited, &given, &done, &commented, &deleted];
    for (event, task) in events.iter().zip(after) {
        assert_eq!(
            wire::task_value(&event.task),
            wire::task_value(task),
            "{:?} carries the task after the change",
            event.kind
        );
        assert_eq!(event.assignee_id, task.assignee_id);
        assert_eq!(event.repository, task.repository);
    }
    assert_eq!(events[0].actor, ANN);
    assert_eq!(events[2].actor, BOB);
    assert_eq!(events[5].actor, ANN);
    assert_eq!(wire::task_value(&events[6].task)["deleted_at"], wire::timestamp(deleted.deleted_at.unwrap()));
}

async fn failed_calls_write_no_event(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("stable")).await;
    let stale = TaskUpdate { expected_version: Some(9), ..update(&task, status_patch(Status::Blocked)) };
    assert!(store.update_task(stale).await.is_err());
    let unknown = TaskUpdate { task_id: Uuid::new_v4(), ..update(&task, status_patch(Status::Blocked)) };
    assert!(store.update_task(unknown).await.is_err());
    let nobody = TaskPatch { assignee: Some(Some(UserKey::Id(Uuid::new_v4()))), ..TaskPatch::default() };
    assert!(store.update_task(update(&task, nobody)).await.is_err());
    assert!(store.create_task(NewTask { assignee: Some(UserKey::Id(Uuid::new_v4())), ..new_task("x") }).await.is_err());
    let stale_delete = TaskDeletion { task_id: task.id, actor: ANN.into(), reason: None, expected_version: Some(2) };
    assert!(store.delete_task(stale_delete).await.is_err());
    store.update_task(update(&task, status_patch(Status::NotStarted))).await.unwrap();
    let events = all_events(store).await;
    assert_eq!(events.len(), 1, "only the create: {events:?}");
}

async fn a_reassignment_event_names_the_previous_assignee(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, NewTask { assignee: Some(UserKey::Email(email(ANN))), ..new_task("handover") }).await;
    let moved = store
        .update_task(update(
            &task,
            TaskPatch { assignee: Some(Some(UserKey::Email(email(BOB)))), ..TaskPatch::default() },
        ))
        .await
        .unwrap();
    let dropped =
        store.update_task(update(&moved, TaskPatch { assignee: Some(None), ..TaskPatch::default() })).await.unwrap();
    let renamed = store
        .update_task(update(&dropped, TaskPatch { title: Some(title("handover 2")), ..TaskPatch::default() }))
        .await
        .unwrap();
    assert_eq!(renamed.assignee_id, None);

    let events = all_events(store).await;
    assert_eq!(events[0].previous_assignee_id, None, "a create has no previous assignee");
    assert_eq!(events[1].kind, EventKind::TaskAssigned);
    assert_eq!(events[1].assignee_id, moved.assignee_id);
    assert_eq!(events[1].previous_assignee_id, task.assignee_id);
    assert_eq!(events[2].kind, EventKind::TaskUpdated, "unassigning is an update");
    assert_eq!(events[2].assignee_id, None);
    assert_eq!(events[2].previous_assignee_id, moved.assignee_id, "the old assignee hears it left them");
    assert_eq!(events[3].previous_assignee_id, None, "no reassignment, no previous assignee");
}

async fn a_failing_sink_leaves_every_event_unpublished(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    for i in 0..3 {
        create(store, new_task(&format!("e{i}"))).await;
    }
    let err = store.relay_pending(10, &Sink::failing()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "the sink's error comes back: {err:?}");
    let sink = Sink::default();
    assert_eq!(store.relay_pending(10, &sink).await.unwrap(), 3, "all three are still pending");
    assert_eq!(sink.seen().len(), 3);
}

async fn a_succeeding_sink_gets_each_event_once_in_seq_order(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    assert_eq!(store.relay_pending(10, &Sink::default()).await.unwrap(), 0, "nothing to publish yet");
    for i in 0..4 {
        create(store, new_task(&format!("e{i}"))).await;
    }
    let sink = Sink::default();
    assert_eq!(store.relay_pending(100, &sink).await.unwrap(), 4);
    assert_eq!(store.relay_pending(100, &sink).await.unwrap(), 0, "published events are not handed over again");
    let all: Vec<_> = all_events(store).await.into_iter().map(|e| e.seq).collect();
    assert_eq!(sink.seen(), all);

    create(store, new_task("later")).await;
    assert_eq!(store.relay_pending(100, &sink).await.unwrap(), 1);
    assert_eq!(sink.seen().len(), 5);
}

async fn relay_pending_hands_over_at_most_the_limit(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    for i in 0..5 {
        create(store, new_task(&format!("e{i}"))).await;
    }
    let sink = Sink::default();
    assert_eq!(store.relay_pending(2, &sink).await.unwrap(), 2);
    assert_eq!(store.relay_pending(2, &sink).await.unwrap(), 2);
    assert_eq!(store.relay_pending(2, &sink).await.unwrap(), 1);
    let all: Vec<_> = all_events(store).await.into_iter().map(|e| e.seq).collect();
    assert_eq!(sink.seen(), all, "oldest first, across passes");
}

async fn two_concurrent_relays_never_publish_an_event_twice_nor_skip_one(backend: Backend) {
    let ts = TestStore::new(backend).await;
    for i in 0..30 {
        create(ts.store.as_ref(), new_task(&format!("e{i}"))).await;
    }
    let sink = Arc::new(Sink { delay: Some(Duration::from_millis(20)), ..Sink::default() });
    let relay = |store: Arc<dyn Store>, sink: Arc<Sink>| async move {
        let mut passes = Vec::new();
        loop {
            let before = sink.seen().len();
            let n = store.relay_pending(4, sink.as_ref()).await.expect("relay_pending");
            passes.push(n);
            if n == 0 {
                break;
            }
            assert!(sink.seen().len() >= before + n);
        }
        passes
    };
    let (a, b) = tokio::join!(
        tokio::spawn(relay(ts.store.clone(), sink.clone())),
        tokio::spawn(relay(ts.store.clone(), sink.clone()))
    );
    let total: usize = a.unwrap().iter().chain(b.unwrap().iter()).sum();
    assert_eq!(total, 30);
    let mut seen = sink.seen();
    let published = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), published, "no event was published twice");
    let all: Vec<_> = all_events(ts.store.as_ref()).await.into_iter().map(|e| e.seq).collect();
    assert_eq!(seen, all, "no event was skipped");
}

async fn prune_events_deletes_old_published_events_in_batches(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    for i in 0..5 {
        create(store, new_task(&format!("e{i}"))).await;
    }
    store.relay_pending(100, &Sink::default()).await.unwrap();
    let past = Utc::now() - TimeDelta::hours(1);
    assert_eq!(store.prune_events(past, false, 100).await.unwrap(), 0, "nothing is that old");
    let future = Utc::now() + TimeDelta::minutes(1);
    assert_eq!(store.prune_events(future, false, 2).await.unwrap(), 2);
    assert_eq!(store.prune_events(future, false, 2).await.unwrap(), 2);
    assert_eq!(store.prune_events(future, false, 2).await.unwrap(), 1);
    assert_eq!(store.prune_events(future, false, 2).await.unwrap(), 0);
    assert!(all_events(store).await.is_empty());
}

async fn prune_events_keeps_unpublished_events_unless_asked(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    create(store, new_task("published")).await;
    store.relay_pending(100, &Sink::default()).await.unwrap();
    let pending = create(store, new_task("pending")).await;
    let future = Utc::now() + TimeDelta::minutes(1);
    assert_eq!(store.prune_events(future, false, 100).await.unwrap(), 1);
    let left = all_events(store).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].task_id, pending.id);
    assert_eq!(store.prune_events(future, true, 100).await.unwrap(), 1);
    assert!(all_events(store).await.is_empty());
}

async fn event_bounds_report_the_oldest_kept_and_the_latest_written_seq(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let empty = store.event_bounds().await.unwrap();
    assert_eq!((empty.oldest, empty.latest), (None, 0));
    for i in 0..3 {
        create(store, new_task(&format!("e{i}"))).await;
    }
    let seqs: Vec<_> = all_events(store).await.into_iter().map(|e| e.seq).collect();
    let bounds = store.event_bounds().await.unwrap();
    assert_eq!(bounds.oldest, Some(seqs[0]));
    assert_eq!(bounds.latest, seqs[2]);

    store.prune_events(Utc::now() + TimeDelta::minutes(1), true, 100).await.unwrap();
    let pruned = store.event_bounds().await.unwrap();
    assert_eq!(pruned.oldest, None);
    assert_eq!(pruned.latest, seqs[2], "the latest seq written is remembered after pruning");
    create(store, new_task("after the prune")).await;
    let next = store.event_bounds().await.unwrap();
    assert!(next.latest > seqs[2], "seqs are never reused");
    assert_eq!(next.oldest, Some(next.latest));
}

async fn events_after_returns_later_events_in_order_up_to_the_limit(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    for i in 0..5 {
        create(store, new_task(&format!("e{i}"))).await;
    }
    let all: Vec<_> = all_events(store).await.into_iter().map(|e| e.seq).collect();
    assert_eq!(all.len(), 5);
    let page: Vec<_> = store.events_after(all[1], 2).await.unwrap().into_iter().map(|e| e.seq).collect();
    assert_eq!(page, vec![all[2], all[3]]);
    assert!(store.events_after(all[4], 10).await.unwrap().is_empty());
    let first = &store.events_after(0, 1).await.unwrap()[0];
    assert_eq!(first.kind, EventKind::TaskCreated);
    assert_eq!(first.actor, ANN);
}

async fn watch_commits_fires_after_a_commit(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let mut rx = store.watch_commits();
    create(store, new_task("wake up")).await;
    let seq = all_events(store).await[0].seq;
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|latest| *latest >= seq))
        .await
        .expect("watch_commits fired within 10 s")
        .expect("the sender is alive");
}

async fn watch_commits_sees_commits_made_through_another_store(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let mut rx = ts.store.watch_commits();
    // Another process, as far as the store can tell: its own pool on the same database.
    let other = task_mcp::store::open(&ts.url, 2).expect("open a second store");
    for i in 0..3 {
        create(other.as_ref(), new_task(&format!("elsewhere {i}"))).await;
        let seq = all_events(other.as_ref()).await.last().unwrap().seq;
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|latest| *latest >= seq))
            .await
            .expect("a commit by another store is seen within 10 s")
            .expect("the sender is alive");
    }
}

// ---------------------------------------------------------------------------------------------
// API keys and migrations.

async fn an_api_key_is_found_by_its_hash_until_revoked(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let ann = store.resolve_user("user", &UserKey::Email(email(ANN))).await.unwrap();
    let key = store.create_api_key(ann.id, &key_name("laptop"), "hash-1", Access::ReadWrite).await.unwrap();
    assert_eq!((key.user_id, key.user_email.as_str(), key.name.as_str()), (ann.id, ANN, "laptop"));
    assert_eq!((key.last_used_at, key.revoked_at), (None, None));
    let other = store.create_api_key(ann.id, &key_name("ci"), "hash-2", Access::ReadWrite).await.unwrap();
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed.iter().map(|k| k.id).collect::<BTreeSet<_>>(), BTreeSet::from([key.id, other.id]));

    let (found, user) = store.find_api_key("hash-1").await.unwrap().expect("found by hash");
    assert_eq!(found.id, key.id);
    assert_eq!(user, ann);
    assert!(found.last_used_at.is_some(), "its use is recorded");
    let listed = store.list_api_keys().await.unwrap();
    assert!(listed.iter().find(|k| k.id == key.id).unwrap().last_used_at.is_some());
    assert_eq!(store.find_api_key("no-such-hash").await.unwrap(), None);

    assert!(store.revoke_api_key("laptop").await.unwrap(), "revoked by name");
    assert_eq!(store.find_api_key("hash-1").await.unwrap(), None, "a revoked key is never found");
    assert!(store.revoke_api_key(&other.id.to_string()).await.unwrap(), "revoked by id");
    assert_eq!(store.find_api_key("hash-2").await.unwrap(), None);
    assert!(!store.revoke_api_key("no-such-key").await.unwrap());
    assert!(!store.revoke_api_key(&Uuid::new_v4().to_string()).await.unwrap());
    let listed = store.list_api_keys().await.unwrap();
    assert!(listed.iter().all(|k| k.revoked_at.is_some()), "revoked keys are still listed, as revoked");
    assert!(listed.iter().all(|k| k.access == Access::ReadWrite));

    // A read-only key keeps its scope through creation, listing and look-up.
    let reader = store.create_api_key(ann.id, &key_name("reader"), "hash-3", Access::ReadOnly).await.unwrap();
    assert_eq!(reader.access, Access::ReadOnly);
    let (found, _) = store.find_api_key("hash-3").await.unwrap().expect("found by hash");
    assert_eq!(found.access, Access::ReadOnly);
    let listed = store.list_api_keys().await.unwrap();
    assert_eq!(listed.iter().find(|k| k.name == "reader").unwrap().access, Access::ReadOnly);
}

async fn an_api_key_name_is_unique(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let ann = store.resolve_user("user", &UserKey::Email(email(ANN))).await.unwrap();
    store.create_api_key(ann.id, &key_name("laptop"), "hash-1", Access::ReadWrite).await.unwrap();
    let err = store.create_api_key(ann.id, &key_name("laptop"), "hash-2", Access::ReadWrite).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(v) if v.field == "name"), "{err:?}");
    let err = store.create_api_key(Uuid::new_v4(), &key_name("orphan"), "hash-3", Access::ReadWrite).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(v) if v.field == "user_id"), "{err:?}");
    assert_eq!(store.list_api_keys().await.unwrap().len(), 1);
}

async fn migrate_is_idempotent_and_reports_the_schema_version(backend: Backend) {
    let ts = TestStore::new(backend).await;
    // Ten agent sessions starting at once on a fresh database all end up on the same schema.
    let mut stores: Vec<_> = (0..9).map(|_| task_mcp::store::open(&ts.url, 1).unwrap()).collect();
    stores.push(ts.store.clone());
    let versions = futures::future::join_all(stores.iter().map(|s| s.migrate())).await;
    let version = *versions[0].as_ref().unwrap();
    assert!(version >= 1);
    for result in versions {
        assert_eq!(result.unwrap(), version);
    }
    let store = ts.store.as_ref();
    assert_eq!(store.migrate().await.unwrap(), version, "a second run changes nothing");
    assert_eq!(store.schema_version().await.unwrap(), version);
    assert_eq!(store.info().kind, format!("{backend:?}").to_lowercase());
}

// ---------------------------------------------------------------------------------------------
// Only the PostgreSQL backend has a server to lose.

mod postgres_server {
    use std::time::{Duration, Instant};

    use task_mcp::error::Error;

    use super::{new_task, query};

    fn assert_unavailable(err: Error, must_mention: &str) {
        match err {
            Error::Unavailable(message) => {
                assert!(message.contains(must_mention), "{message:?} should mention {must_mention:?}");
                assert!(!message.contains("s3cret"), "the password leaked: {message:?}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_at_once_and_its_password_is_never_shown() {
        // Nothing listens on port 1: opening succeeds (it never connects), every call fails fast.
        let store = task_mcp::store::open("postgres://tm:s3cret@127.0.0.1:1/tasks", 2).expect("open is lazy");
        for _ in 0..2 {
            let started = Instant::now();
            assert_unavailable(store.list_tasks(&query(10)).await.unwrap_err(), "postgres://tm:***@127.0.0.1:1/tasks");
            assert_unavailable(store.create_task(new_task("x")).await.unwrap_err(), "127.0.0.1:1");
            assert_unavailable(store.migrate().await.unwrap_err(), "127.0.0.1:1");
            assert_unavailable(store.schema_version().await.unwrap_err(), "127.0.0.1:1");
            assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        }
    }

    #[tokio::test]
    async fn a_missing_database_is_unavailable_and_says_why() {
        let admin = crate::support::pg::admin_url();
        let (base, _) = admin.rsplit_once('/').expect("a URL with a database");
        let store = task_mcp::store::open(&format!("{base}/tm_missing_{}", uuid::Uuid::new_v4().simple()), 1).unwrap();
        assert_unavailable(store.list_users().await.unwrap_err(), "does not exist");
    }
}

async fn a_task_reads_back_with_its_comments_and_history_in_one_call(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let task = create(store, new_task("Detailed")).await;
    let other = create(store, new_task("Elsewhere")).await;
    for text in ["first", "second"] {
        store.add_comment(NewComment { task_id: task.id, comment: comment(text), author: BOB.into() }).await.unwrap();
    }
    store
        .add_comment(NewComment { task_id: other.id, comment: comment("not this one"), author: BOB.into() })
        .await
        .unwrap();
    let updated = store.update_task(update(&task, status_patch(Status::Blocked))).await.unwrap();

    let detail = store.get_task_detail(task.id).await.unwrap().expect("the task is there");
    assert_eq!(detail.task, store.get_task(task.id).await.unwrap().unwrap());
    assert_eq!(detail.task.version, updated.version);
    assert_eq!(detail.comments, store.list_comments(task.id).await.unwrap());
    assert_eq!(detail.comments.iter().map(|c| c.comment.as_str()).collect::<Vec<_>>(), ["first", "second"]);
    assert_eq!(detail.history, store.list_history(task.id).await.unwrap());
    let fields: Vec<&str> = detail.history.iter().map(|h| h.field_changed.as_str()).collect();
    assert_eq!(fields, ["created", "comment", "comment", "status"]);

    store
        .delete_task(TaskDeletion { task_id: task.id, actor: BOB.into(), reason: None, expected_version: None })
        .await
        .unwrap();
    assert_eq!(store.get_task_detail(task.id).await.unwrap(), None, "a deleted task has no detail");
    assert_eq!(store.get_task_detail(Uuid::now_v7()).await.unwrap(), None, "nor has an unknown id");
}

async fn a_task_detail_read_during_concurrent_updates_shows_one_moment(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.clone();
    let task = create(store.as_ref(), new_task("t0")).await;
    let writer = tokio::spawn({
        let (store, task) = (store.clone(), task.clone());
        async move {
            for i in 1..=150 {
                let patch = TaskPatch { title: Some(title(&format!("t{i}"))), ..TaskPatch::default() };
                store.update_task(update(&task, patch)).await.unwrap();
            }
        }
    });
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let detail = store.get_task_detail(task.id).await.unwrap().expect("the task is there");
        // Each update is one version and one title row: the history read with a task is exactly
        // that task's (never a later change's).
        let titles: Vec<&str> = detail
            .history
            .iter()
            .filter(|h| h.field_changed == "title")
            .filter_map(|h| h.new_value.as_deref())
            .collect();
        assert_eq!(titles.len() as i64, detail.task.version - 1, "read {reads}: {titles:?} with {:?}", detail.task);
        assert_eq!(titles.last().copied().unwrap_or("t0"), detail.task.title.as_str(), "read {reads}");
        reads += 1;
    }
    writer.await.unwrap();
}

fn keyed(key: &str, new: NewTask) -> NewTask {
    NewTask { idempotency_key: Some(IdempotencyKey::parse("idempotency_key", key).unwrap()), ..new }
}

async fn two_users_under_one_label_with_one_key_get_two_tasks(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let as_ann = NewTask { actor: "Planner Bot".into(), owner: ANN.into(), ..new_task("Plan") };
    let as_bob = NewTask { actor: "Planner Bot".into(), owner: BOB.into(), ..new_task("Plan") };
    let a = store.create_task(keyed("plan-1", as_ann)).await.unwrap();
    let b = store.create_task(keyed("plan-1", as_bob)).await.unwrap();
    assert!(!a.replayed && !b.replayed, "neither user gets the other's task");
    assert_ne!(a.task.id, b.task.id);
    assert_eq!(store.list_tasks(&query(10)).await.unwrap().len(), 2);
}

async fn one_user_under_two_labels_with_one_key_gets_one_task(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let first = store.create_task(keyed("plan-2", NewTask { actor: "Planner".into(), ..new_task("Plan") })).await;
    let again = store.create_task(keyed("plan-2", NewTask { actor: "Reviewer".into(), ..new_task("Plan") })).await;
    let (first, again) = (first.unwrap(), again.unwrap());
    assert!(again.replayed);
    assert_eq!(again.task, first.task);
    assert_eq!(store.list_tasks(&query(10)).await.unwrap().len(), 1);
}

async fn a_key_replayed_with_another_request_is_an_idempotency_conflict_that_writes_nothing(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let store = ts.store.as_ref();
    let first = store.create_task(keyed("plan-3", new_task("Plan"))).await.unwrap();
    let events_before = all_events(store).await.len();
    for other in [
        new_task("Another plan"),
        NewTask { priority: Priority::High, ..new_task("Plan") },
        NewTask { repository: Some(repo("elsewhere")), ..new_task("Plan") },
    ] {
        match store.create_task(keyed("plan-3", other)).await {
            Err(Error::IdempotencyConflict { key, task_id }) => {
                assert_eq!((key.as_str(), task_id), ("plan-3", first.task.id.to_string()))
            }
            other => panic!("not an idempotency conflict: {other:?}"),
        }
    }
    assert_eq!(store.list_tasks(&query(10)).await.unwrap().len(), 1);
    assert_eq!(all_events(store).await.len(), events_before);
    assert!(store.list_repositories().await.unwrap().is_empty(), "no repository was created");
}
