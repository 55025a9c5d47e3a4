//! Task keys through the service, on both stores: creation order per prefix, no duplicate under
//! concurrent creators, lookup in any case, renamed prefixes that keep old keys resolving, and the
//! numbering of tasks that had no key (as the migration leaves a database of before).

use std::collections::BTreeSet;
use std::time::Duration;

use task_mcp::domain::{Actor, Email, KeyPrefix, RepoName, TaskRef, Title};
use task_mcp::error::Error;
use task_mcp::service::{CreateTask, TaskService};

use crate::support::{Backend, TestStore};

macro_rules! both_stores {
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

both_stores!(
    keys_count_up_per_prefix_in_creation_order,
    eight_concurrent_creators_never_share_a_key,
    a_key_resolves_in_any_case_and_an_unknown_one_is_not_found,
    a_renamed_prefix_keeps_old_keys_resolving_and_a_taken_one_is_refused,
    a_moved_task_keeps_its_key,
    tasks_without_keys_are_numbered_in_creation_order_when_migrating,
);

fn actor() -> Actor {
    Actor::new(Email::parse("email", "ann@example.com").unwrap())
}

fn create(title: &str, repository: Option<&str>) -> CreateTask {
    CreateTask {
        title: Title::parse("title", title).unwrap(),
        description: None,
        assignee: None,
        repository: repository.map(|r| RepoName::parse("repository", r).unwrap()),
        status: None,
        priority: None,
        complexity: None,
        idempotency_key: None,
        parent_id: None,
        blocked_by: Vec::new(),
    }
}

async fn key_of(service: &TaskService, title: &str, repository: Option<&str>) -> String {
    service.create_task(&actor(), create(title, repository)).await.unwrap().task.key
}

fn by(raw: &str) -> TaskRef {
    TaskRef::parse("task_id", raw).unwrap()
}

async fn keys_count_up_per_prefix_in_creation_order(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let service = TaskService::new(ts.store.clone());
    let mut keys = Vec::new();
    for (title, repository) in [
        ("a", Some("web-app")),
        ("b", None),
        ("c", Some("web-app")),
        ("d", Some("org/web-site")),
        ("e", None),
        ("f", Some("web-app")),
    ] {
        keys.push(key_of(&service, title, repository).await);
    }
    // `web-site` cannot have WEB (taken): it gets its initials.
    assert_eq!(keys, ["WEB-1", "T-1", "WEB-2", "WS-1", "T-2", "WEB-3"]);
    let repositories = service.list_repositories().await.unwrap();
    let prefixes: Vec<_> = repositories.iter().map(|r| (r.name.as_str(), r.key_prefix.as_deref())).collect();
    assert_eq!(prefixes, [("org/web-site", Some("WS")), ("web-app", Some("WEB"))]);
    // The key is in the task as read, and in its event.
    let task = service.get_task(&by("WEB-2")).await.unwrap();
    assert_eq!((task.title.as_str(), task.key.as_str()), ("c", "WEB-2"));
    let events = service.events_after(0, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.task.key.as_str()).collect::<Vec<_>>(), keys);
}

async fn eight_concurrent_creators_never_share_a_key(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let service = TaskService::new(ts.store.clone());
    let creators = (0..8).map(|i| {
        let service = service.clone();
        tokio::spawn(async move {
            let mut keys = Vec::new();
            for n in 0..4 {
                // Half in one new repository (whose series the racers create together), half without.
                let repository = (n % 2 == 0).then_some("race");
                keys.push(key_of(&service, &format!("creator {i} task {n}"), repository).await);
            }
            keys
        })
    });
    let keys: Vec<String> =
        futures::future::join_all(creators).await.into_iter().flat_map(|r| r.expect("a creator panicked")).collect();
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), 32, "a key was given twice: {keys:?}");
    let expected: BTreeSet<String> = (1..=16).flat_map(|n| [format!("RACE-{n}"), format!("T-{n}")]).collect();
    assert_eq!(keys.iter().cloned().collect::<BTreeSet<_>>(), expected, "numbers 1..=16 in each series, no gap");
}

async fn a_key_resolves_in_any_case_and_an_unknown_one_is_not_found(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let service = TaskService::new(ts.store.clone());
    key_of(&service, "first", Some("api")).await;
    let id = service.create_task(&actor(), create("second", Some("api"))).await.unwrap().task.id;
    for raw in ["API-2", "api-2", "Api-2", " api-2 "] {
        assert_eq!(service.get_task(&by(raw)).await.unwrap().id, id, "{raw}");
    }
    assert_eq!(service.get_task(&TaskRef::Id(id)).await.unwrap().key, "API-2");
    match service.get_task(&by("api-3")).await {
        Err(Error::NotFound { id, .. }) => assert_eq!(id, "API-3"),
        other => panic!("expected not found, got {other:?}"),
    }
    // Writes take keys too.
    let started = service.update_status(&actor(), &by("api-2"), task_mcp::domain::Status::InProgress, None, None).await;
    assert_eq!(started.unwrap().id, id);
}

async fn a_renamed_prefix_keeps_old_keys_resolving_and_a_taken_one_is_refused(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let service = TaskService::new(ts.store.clone());
    let repo = |raw: &str| RepoName::parse("repository", raw).unwrap();
    let prefix = |raw: &str| KeyPrefix::parse("key_prefix", raw).unwrap();
    assert_eq!(key_of(&service, "one", Some("web-app")).await, "WEB-1");
    assert_eq!(key_of(&service, "two", Some("web-app")).await, "WEB-2");
    assert_eq!(key_of(&service, "other", Some("mobile")).await, "MOBI-1");

    let renamed = service.set_key_prefix(&repo("web-app"), &prefix("api")).await.unwrap();
    assert_eq!(renamed.key_prefix.as_deref(), Some("API"));
    let old = service.get_task(&by("WEB-2")).await.unwrap();
    let new = service.get_task(&by("api-2")).await.unwrap();
    assert_eq!((old.id, old.key.as_str()), (new.id, "API-2"), "the old key names the same task, shown by its new key");
    assert_eq!(key_of(&service, "three", Some("web-app")).await, "API-3", "the series goes on counting");

    service.set_key_prefix(&repo("mobile"), &prefix("mobi")).await.expect("its own prefix again is no change");
    // Taken now (API) or before (WEB, which still names web-app's tasks): refused, naming the field.
    for taken in ["api", "WEB"] {
        match service.set_key_prefix(&repo("mobile"), &prefix(taken)).await {
            Err(Error::Invalid(invalid)) => assert_eq!(invalid.field, "key_prefix", "{taken}"),
            other => panic!("{taken}: expected a refusal, got {other:?}"),
        }
    }
    // A repository may go back to a prefix it had.
    service.set_key_prefix(&repo("web-app"), &prefix("WEB")).await.unwrap();
    assert_eq!(service.get_task(&by("api-1")).await.unwrap().key, "WEB-1");
    match service.set_key_prefix(&repo("nowhere"), &prefix("NW")).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("an unknown repository: {other:?}"),
    }
    assert!(KeyPrefix::parse("key_prefix", "T").is_err(), "T belongs to tasks without a repository");
}

async fn a_moved_task_keeps_its_key(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let service = TaskService::new(ts.store.clone());
    assert_eq!(key_of(&service, "one", Some("web")).await, "WEB-1");
    let request = task_mcp::service::UpdateTask {
        repository: Some(Some(RepoName::parse("repository", "api").unwrap())),
        ..Default::default()
    };
    let moved = service.update_task(&actor(), &by("web-1"), request).await.unwrap();
    assert_eq!((moved.key.as_str(), moved.repository.as_deref()), ("WEB-1", Some("api")));
    assert_eq!(key_of(&service, "two", Some("web")).await, "WEB-2");
}

async fn tasks_without_keys_are_numbered_in_creation_order_when_migrating(backend: Backend) {
    let ts = TestStore::new(backend).await;
    let service = TaskService::new(ts.store.clone());
    let mut made = Vec::new();
    for (title, repository) in [("a", Some("web")), ("b", None), ("c", Some("web")), ("d", Some("api")), ("e", None)] {
        made.push(service.create_task(&actor(), create(title, repository)).await.unwrap().task.id);
    }
    // As a database of before keys: no task has one, no repository has a series, nothing counted.
    let forget = "UPDATE tasks SET key_series_id = NULL, key_number = NULL; \
                  DELETE FROM key_prefixes WHERE series_id <> 0; DELETE FROM key_series WHERE id <> 0; \
                  UPDATE key_series SET last_number = 0";
    match backend {
        Backend::Postgres => crate::support::pg::execute(&ts.url, forget).await,
        Backend::Sqlite => {
            let path = ts.url.strip_prefix("sqlite://").unwrap().to_owned();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                conn.execute_batch(forget).unwrap();
            })
            .await
            .unwrap();
        }
    }
    // A new process migrates the database on first use.
    let store = task_mcp::store::open(&ts.url, 2).unwrap();
    store.migrate().await.unwrap();
    let service = TaskService::new(store);
    let mut keys = Vec::new();
    for id in made {
        keys.push(service.get_task(&TaskRef::Id(id)).await.unwrap().key);
    }
    assert_eq!(keys, ["WEB-1", "T-1", "WEB-2", "API-1", "T-2"]);
    assert_eq!(key_of(&service, "f", Some("web")).await, "WEB-3");
}
