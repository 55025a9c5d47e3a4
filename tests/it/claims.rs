//! Agents working together, through the real binary over stdio on both stores: claims raced by
//! eight processes, a lease that runs out, a holder killed mid-lease, a chain of blockers, two blockers
//! closed at once, a blocker deleted, a parent with an open subtask.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mcp::Server;
use crate::support::{Backend, TestStore};

/// One person: the processes differ only by session.
const USER: &str = "agent@example.com";

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(Backend::Postgres).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(Backend::Sqlite).await
            }
        }
    )*};
}

on_every_backend!(
    eight_processes_racing_claim_every_task_exactly_once,
    a_lease_that_runs_out_frees_the_task_and_the_system_records_it,
    a_chain_is_ready_one_link_at_a_time_and_a_cycle_is_refused,
    deleting_the_last_open_blocker_makes_the_task_ready_with_an_event,
    two_blockers_closed_at_once_announce_the_freed_task_exactly_once,
    a_holder_killed_mid_lease_keeps_the_task_until_the_lease_runs_out_then_another_process_takes_it,
    a_parent_with_an_open_subtask_cannot_be_completed,
    a_read_only_listing_of_ready_work_records_no_lapse,
    keys_name_tasks_in_links_claims_and_releases,
);

fn id_of(task: &Value) -> String {
    task["id"].as_str().unwrap_or_else(|| panic!("no id in {task}")).to_owned()
}

async fn create(mcp: &mut Server, arguments: Value) -> String {
    id_of(&mcp.ok("create_task", arguments).await)
}

/// The events of a task, oldest first, read from the store the processes share.
async fn events_of(url: &str, task: &str) -> Vec<task_mcp::domain::Event> {
    let store = task_mcp::store::open(url, 2).unwrap();
    let id: uuid::Uuid = task.parse().unwrap();
    store.events_after(0, 10_000).await.unwrap().into_iter().filter(|e| e.task_id == id).collect()
}

async fn eight_processes_racing_claim_every_task_exactly_once(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut setup = Server::connect(&db.url, USER).await;
    let mut created = HashSet::new();
    for n in 0..40 {
        created.insert(create(&mut setup, json!({"title": format!("work {n}")})).await);
    }
    setup.close().await;
    let racers = (0..8).map(|_| {
        let url = db.url.clone();
        tokio::spawn(async move {
            let mut mcp = Server::connect(&url, USER).await;
            let mut mine = Vec::new();
            loop {
                let claimed = mcp.ok("claim_task", json!({})).await;
                if claimed["task"].is_null() {
                    assert!(claimed["reason"].is_string(), "{claimed}");
                    break;
                }
                assert_eq!(claimed["task"]["status"], "in_progress");
                assert!(claimed["task"]["claim"]["holder"].is_string(), "{claimed}");
                mine.push(id_of(&claimed["task"]));
            }
            mcp.close().await;
            mine
        })
    });
    let mut claimed = Vec::new();
    for racer in racers {
        claimed.extend(racer.await.unwrap());
    }
    let unique: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), unique.len(), "a task was claimed twice");
    assert_eq!(unique, created, "every task claimed, none lost");
}

async fn a_lease_that_runs_out_frees_the_task_and_the_system_records_it(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut first = Server::connect(&db.url, USER).await;
    let mut second = Server::connect(&db.url, USER).await;
    let id = create(&mut first, json!({"title": "short lease"})).await;
    let held = first.ok("claim_task", json!({"task_id": id, "lease_seconds": 1})).await;
    assert_eq!(held["task"]["assignee_email"], USER);
    // Another session of the same person is refused while the lease holds.
    let refused = second.fail("claim_task", json!({"task_id": id})).await;
    assert_eq!(refused.code(), "already_claimed");
    assert!(refused.text.contains("(process "), "names the holder: {}", refused.text);
    // Once the lease has passed, the other process gets it as the next ready task.
    let deadline = Instant::now() + Duration::from_secs(15);
    let taken = loop {
        let claimed = second.ok("claim_task", json!({})).await;
        if !claimed["task"].is_null() {
            break claimed;
        }
        assert!(Instant::now() < deadline, "the lease never ran out: {claimed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(id_of(&taken["task"]), id);
    assert_ne!(taken["task"]["claim"]["holder"], held["task"]["claim"]["holder"]);
    // The first holder learns that its claim is gone.
    assert_eq!(first.fail("release_task", json!({"task_id": id})).await.code(), "claim_lost");
    assert_eq!(first.fail("claim_task", json!({"task_id": id})).await.code(), "already_claimed");
    // History and the event log show the system giving the task back.
    let detail = second.ok("get_task", json!({"task_id": id})).await;
    let by_system: Vec<&Value> =
        detail["history"].as_array().unwrap().iter().filter(|h| h["changed_by"] == "system").collect();
    assert!(by_system.iter().any(|h| h["field_changed"] == "claim" && h["new_value"].is_null()), "{detail}");
    let events = events_of(&db.url, &id).await;
    assert!(events.iter().any(|e| e.actor == "system" && e.task.claim.is_none()), "{events:?}");
    // The holder gives it back; anyone may take it at once.
    let released = second.ok("release_task", json!({"task_id": id, "comment": "handing over"})).await;
    assert_eq!(released["status"], "not_started");
    assert!(released["claim"].is_null());
    assert_eq!(id_of(&first.ok("claim_task", json!({})).await["task"]), id);
    first.close().await;
    second.close().await;
}

async fn a_chain_is_ready_one_link_at_a_time_and_a_cycle_is_refused(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    let a = create(&mut mcp, json!({"title": "A"})).await;
    let b = create(&mut mcp, json!({"title": "B", "blocked_by": [a]})).await;
    let c = create(&mut mcp, json!({"title": "C", "blocked_by": [b], "priority": "urgent"})).await;
    let ready = |page: Value| -> Vec<String> { page["tasks"].as_array().unwrap().iter().map(id_of).collect() };
    assert_eq!(ready(mcp.ok("get_tasks", json!({"ready": true, "detail": "full"})).await), vec![a.clone()]);
    let listed = mcp.ok("get_tasks", json!({})).await;
    // Summaries name tasks by key, not id: C is the one titled so.
    let summary_c = listed["tasks"].as_array().unwrap().iter().find(|t| t["title"] == "C").unwrap().clone();
    assert_eq!(summary_c["open_blockers"], 1, "{summary_c}");
    // A cycle of two and of three, and a self-link, are refused naming the tasks.
    let cycle = mcp.fail("update_task", json!({"task_id": a, "add_blocked_by": [b]})).await;
    assert_eq!(cycle.code(), "dependency_cycle");
    assert!(cycle.text.contains(&a) && cycle.text.contains(&b), "{}", cycle.text);
    let longer = mcp.fail("update_task", json!({"task_id": a, "add_blocked_by": [c]})).await;
    assert_eq!(longer.structured["error"]["details"]["cycle"].as_array().unwrap().len(), 4);
    assert_eq!(mcp.fail("update_task", json!({"task_id": a, "add_blocked_by": [a]})).await.code(), "dependency_cycle");
    // The detail names what waits on what.
    let detail_b = mcp.ok("get_task", json!({"task_id": b})).await;
    assert_eq!(detail_b["blocked_by"][0]["id"], a.as_str());
    assert_eq!(detail_b["blocking"][0]["id"], c.as_str());
    // Only A can be claimed; completing it makes B ready, with an event for B.
    let claimed = mcp.ok("claim_task", json!({})).await;
    assert_eq!(id_of(&claimed["task"]), a);
    let none = mcp.ok("claim_task", json!({})).await;
    assert!(none["task"].is_null());
    assert!(none["reason"].as_str().unwrap().contains("2 wait on blockers"), "{none}");
    mcp.ok("update_task_status", json!({"task_id": a, "new_status": "completed"})).await;
    assert_eq!(ready(mcp.ok("get_tasks", json!({"ready": true, "detail": "full"})).await), vec![b.clone()]);
    let events = events_of(&db.url, &b).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind.as_str(), "task_updated");
    assert_eq!(last.task.open_blockers, 0);
    mcp.close().await;
}

async fn deleting_the_last_open_blocker_makes_the_task_ready_with_an_event(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    let a = create(&mut mcp, json!({"title": "A"})).await;
    let b = create(&mut mcp, json!({"title": "B"})).await;
    let c = create(&mut mcp, json!({"title": "C", "blocked_by": [a, b], "priority": "urgent"})).await;
    let before = events_of(&db.url, &c).await.len();
    // One of two blockers deleted: C still waits on B, and nothing is announced for it.
    mcp.ok("delete_task", json!({"task_id": a})).await;
    assert_eq!(events_of(&db.url, &c).await.len(), before, "C is not ready yet");
    let next = mcp.ok("claim_task", json!({})).await;
    assert_eq!(id_of(&next["task"]), b, "only B is ready: {next}");
    // The last open blocker deleted (claimed, in progress): C is ready, and the feed says so.
    mcp.ok("delete_task", json!({"task_id": b, "reason": "not needed after all"})).await;
    let events = events_of(&db.url, &c).await;
    assert_eq!(events.len(), before + 1, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last.kind.as_str(), "task_updated");
    assert_eq!(last.task.open_blockers, 0);
    assert_eq!(last.actor, USER);
    let ready = mcp.ok("get_tasks", json!({"ready": true, "detail": "full"})).await;
    assert_eq!(ready["tasks"].as_array().unwrap().iter().map(id_of).collect::<Vec<_>>(), vec![c.clone()]);
    assert_eq!(id_of(&mcp.ok("claim_task", json!({})).await["task"]), c);
    // A blocker already completed frees nothing more when it is deleted: no second event.
    let d = create(&mut mcp, json!({"title": "D"})).await;
    let e = create(&mut mcp, json!({"title": "E", "blocked_by": [d]})).await;
    mcp.ok("update_task_status", json!({"task_id": d, "new_status": "completed"})).await;
    let announced = events_of(&db.url, &e).await.len();
    mcp.ok("delete_task", json!({"task_id": d})).await;
    assert_eq!(events_of(&db.url, &e).await.len(), announced);
    mcp.close().await;
}

/// Two blockers of one task completed at the same moment (each pair sent back to back, every request
/// in flight at once, so the pair runs on two connections in parallel): whichever commits last must see
/// the other's completion and announce the freed task, so each task gets exactly one event saying it
/// is ready, never none and never two.
async fn two_blockers_closed_at_once_announce_the_freed_task_exactly_once(backend: Backend) {
    const PAIRS: usize = 24;
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    let mut trios = Vec::new();
    for n in 0..PAIRS {
        let a = create(&mut mcp, json!({"title": format!("first half {n}")})).await;
        let b = create(&mut mcp, json!({"title": format!("second half {n}")})).await;
        let c = create(&mut mcp, json!({"title": format!("after both {n}"), "blocked_by": [a, b]})).await;
        trios.push((a, b, c));
    }
    let mut pending = Vec::new();
    for blocker in trios.iter().flat_map(|(a, b, _)| [a, b]) {
        let arguments = json!({"task_id": blocker, "new_status": "completed"});
        pending
            .push(mcp.start_request("tools/call", json!({"name": "update_task_status", "arguments": arguments})).await);
    }
    for id in pending {
        let answer = mcp.answer(id).await;
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
    mcp.close().await;
    for (_, _, c) in &trios {
        let announced: Vec<_> = events_of(&db.url, c)
            .await
            .into_iter()
            .filter(|e| e.kind.as_str() == "task_updated" && e.task.open_blockers == 0)
            .collect();
        assert_eq!(announced.len(), 1, "task {c} freed by two concurrent completions: {announced:?}");
    }
}

/// Listing ready work records a lease that ran out (a write) for a caller who may write; a read-only
/// credential gets the listing and changes nothing. No `serve` runs here, so nothing else sweeps.
async fn a_read_only_listing_of_ready_work_records_no_lapse(backend: Backend) {
    use task_mcp::domain::{Access, Actor, Email, UserKey};
    use task_mcp::service::{ListTasks, TaskService};

    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    let task = create(&mut mcp, json!({"title": "held briefly"})).await;
    let claimed = mcp.ok("claim_task", json!({"task_id": task, "lease_seconds": 1})).await;
    mcp.close().await;
    let expires: chrono::DateTime<chrono::Utc> =
        claimed["task"]["claim"]["expires_at"].as_str().unwrap().parse().unwrap();
    // Waiting for the lease's end itself, plus a margin for the clocks' rounding.
    let left = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left + Duration::from_millis(50)).await;

    let store = task_mcp::store::open(&db.url, 2).unwrap();
    let service = TaskService::new(store.clone());
    let events = || async { store.events_after(0, 10_000).await.unwrap().len() };
    let before = events().await;
    let ready = ListTasks { ready: true, ..ListTasks::default() };
    let reader = Actor::new(Email::parse("email", "reader@example.com").unwrap()).with_access(Access::ReadOnly);
    let page = service.list_tasks(&reader, ready.clone()).await.unwrap();
    assert!(page.tasks.is_empty(), "the lapse is not recorded, so the task is still in progress: {:?}", page.tasks);
    assert_eq!(events().await, before, "a read-only listing wrote an event");
    let reader_key = UserKey::Email(Email::parse("email", "reader@example.com").unwrap());
    assert!(store.find_user(&reader_key).await.unwrap().is_none(), "a read-only listing created a user");
    let writer = Actor::new(Email::parse("email", USER).unwrap());
    let page = service.list_tasks(&writer, ready).await.unwrap();
    assert_eq!(page.tasks.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(), vec![task]);
    assert_eq!(events().await, before + 1, "the lapse is recorded by a caller who may write");
}

/// A stdio agent killed (SIGKILL: no goodbye, no release) while it holds a claim: its task stays
/// held for the rest of the lease, then the next claimer gets it, and the history tells the story.
async fn a_holder_killed_mid_lease_keeps_the_task_until_the_lease_runs_out_then_another_process_takes_it(
    backend: Backend,
) {
    const LEASE_SECONDS: i64 = 3;
    let db = TestStore::new(backend).await;
    let mut doomed = Server::connect(&db.url, USER).await;
    let mut other = Server::connect(&db.url, USER).await;
    let id = create(&mut doomed, json!({"title": "held by an agent that dies"})).await;
    let held = doomed.ok("claim_task", json!({"lease_seconds": LEASE_SECONDS})).await;
    assert_eq!(id_of(&held["task"]), id);
    let holder = held["task"]["claim"]["holder"].as_str().unwrap().to_owned();
    let expires_at: chrono::DateTime<chrono::Utc> =
        held["task"]["claim"]["expires_at"].as_str().unwrap().parse().unwrap();
    let status = doomed.kill().await;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    // While the lease lives, the other process is told nothing is ready (the task is held). On a
    // machine so slow that the lease ran out before the call was answered, taking it is right too.
    let asked = other.ok("claim_task", json!({})).await;
    if asked["task"].is_null() {
        assert!(asked["reason"].as_str().unwrap().contains("claimed"), "{asked}");
    } else {
        assert!(chrono::Utc::now() >= expires_at, "taken before the lease ran out: {asked}");
    }
    // Once the lease has run out, the other process's next claim takes it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let taken = if asked["task"].is_null() {
        loop {
            let claimed = other.ok("claim_task", json!({})).await;
            if !claimed["task"].is_null() {
                break claimed;
            }
            assert!(Instant::now() < deadline, "the dead holder's lease never ran out: {claimed}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        asked
    };
    assert_eq!(id_of(&taken["task"]), id);
    assert!(chrono::Utc::now() >= expires_at, "taken before the lease ran out: {taken}");
    let new_holder = taken["task"]["claim"]["holder"].as_str().unwrap().to_owned();
    assert_ne!(new_holder, holder);
    // The history: claimed by the dead process, given back by the system, claimed by the other.
    let detail = other.ok("get_task", json!({"task_id": id})).await;
    let claims: Vec<(String, Value, Value)> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["field_changed"] == "claim")
        .map(|h| (h["changed_by"].as_str().unwrap().to_owned(), h["old_value"].clone(), h["new_value"].clone()))
        .collect();
    let starts_with = |v: &Value, who: &str| v.as_str().is_some_and(|v| v.starts_with(&format!("{who} until ")));
    assert_eq!(claims.len(), 3, "{detail}");
    assert!(claims[0].1.is_null() && starts_with(&claims[0].2, &holder), "{claims:?}");
    assert!(claims[1].0 == "system" && starts_with(&claims[1].1, &holder) && claims[1].2.is_null(), "{claims:?}");
    assert!(claims[2].1.is_null() && starts_with(&claims[2].2, &new_holder), "{claims:?}");
    other.close().await;
}

async fn a_parent_with_an_open_subtask_cannot_be_completed(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    let parent = create(&mut mcp, json!({"title": "feature"})).await;
    let step = create(&mut mcp, json!({"title": "step one", "parent_id": parent})).await;
    let refused = mcp.fail("update_task_status", json!({"task_id": parent, "new_status": "completed"})).await;
    assert_eq!(refused.code(), "open_subtasks");
    assert!(refused.text.contains(&step), "{}", refused.text);
    // A parent cannot be its own ancestor.
    assert_eq!(mcp.fail("update_task", json!({"task_id": parent, "parent_id": step})).await.code(), "dependency_cycle");
    let detail = mcp.ok("get_task", json!({"task_id": parent})).await;
    assert_eq!(detail["subtasks"][0]["id"], step.as_str());
    let subtasks = mcp.ok("get_tasks", json!({"parent_id": parent})).await;
    assert_eq!(subtasks["tasks"].as_array().unwrap().len(), 1);
    mcp.ok("update_task_status", json!({"task_id": step, "new_status": "completed"})).await;
    let done = mcp.ok("update_task_status", json!({"task_id": parent, "new_status": "completed"})).await;
    assert_eq!(done["status"], "completed");
    // A link to a missing task is refused naming it.
    let missing = uuid::Uuid::now_v7().to_string();
    let unknown = mcp.fail("create_task", json!({"title": "x", "blocked_by": [missing]})).await;
    assert_eq!(unknown.structured["error"]["details"]["field"], "blocked_by");
    assert!(unknown.text.contains(&missing), "{}", unknown.text);
    mcp.close().await;
}

/// The same race over REST: eight agents, each with its own credential, against two `serve`
/// instances on one PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_agents_racing_over_rest_on_two_servers_claim_every_task_exactly_once() {
    use crate::support::http::TestServer;
    let db = TestStore::new(Backend::Postgres).await;
    let servers = [
        std::sync::Arc::new(TestServer::start(crate::support::app(&db.url, None)).await),
        std::sync::Arc::new(TestServer::start(crate::support::app(&db.url, None)).await),
    ];
    let mut created = HashSet::new();
    for n in 0..40 {
        let response = servers[0].post("/api/tasks", json!({"title": format!("rest work {n}")})).send().await.unwrap();
        assert_eq!(response.status(), 201);
        created.insert(id_of(&response.json::<Value>().await.unwrap()));
    }
    let racers = (0..8).map(|n| {
        let server = servers[n % 2].clone();
        tokio::spawn(async move {
            let agent = format!("agent{n}@example.com");
            let mut mine = Vec::new();
            loop {
                let response = server
                    .as_user(reqwest::Method::POST, "/api/tasks/claim", &agent)
                    .json(&json!({"lease_seconds": 600}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let claimed: Value = response.json().await.unwrap();
                if claimed["task"].is_null() {
                    break;
                }
                assert_eq!(claimed["task"]["assignee_email"], agent.as_str());
                mine.push(id_of(&claimed["task"]));
            }
            mine
        })
    });
    let mut claimed = Vec::new();
    for racer in racers {
        claimed.extend(racer.await.unwrap());
    }
    let unique: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), unique.len(), "a task was claimed twice");
    assert_eq!(unique, created, "every task claimed, none lost");
    // Another agent's claim is a 409 naming the holder; the holder's release frees the task.
    let id = claimed[0].clone();
    let holder = servers[0].get(&format!("/api/tasks/{id}")).send().await.unwrap().json::<Value>().await.unwrap();
    let intruder = servers[1]
        .as_user(reqwest::Method::POST, &format!("/api/tasks/{id}/claim"), "intruder@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(intruder.status(), 409);
    let body: Value = intruder.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_claimed");
    assert_eq!(body["error"]["details"]["holder"], holder["claim"]["holder"]);
}

/// A task's key (in any case) works wherever these tools take a task: links, parents, claims, releases.
async fn keys_name_tasks_in_links_claims_and_releases(backend: Backend) {
    let db = TestStore::new(backend).await;
    let mut mcp = Server::connect(&db.url, USER).await;
    let a = mcp.ok("create_task", json!({"title": "A", "repository": "web-app"})).await;
    let a_key = a["key"].as_str().expect("a key").to_lowercase();
    let b = mcp
        .ok("create_task", json!({"title": "B", "repository": "web-app", "blocked_by": [a_key], "parent_id": a_key}))
        .await;
    let detail = mcp.ok("get_task", json!({"task_id": b["key"]})).await;
    assert_eq!(detail["blocked_by"][0]["id"], a["id"], "{detail}");
    let claimed = mcp.ok("claim_task", json!({"task_id": a["key"]})).await;
    assert_eq!(claimed["task"]["id"], a["id"], "{claimed}");
    let released = mcp.ok("release_task", json!({"task_id": a_key})).await;
    assert_eq!(released["id"], a["id"], "{released}");
    mcp.ok("update_task", json!({"task_id": b["key"], "remove_blocked_by": [a["key"]], "parent_id": ""})).await;
    let unknown = mcp.fail("update_task", json!({"task_id": b["id"], "add_blocked_by": ["WEB-999"]})).await;
    assert_eq!(unknown.code(), "not_found", "{}", unknown.text);
    assert!(unknown.text.contains("WEB-999"), "{}", unknown.text);
    mcp.close().await;
}
