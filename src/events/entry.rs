//! The Redis stream entry of an event, written by the publisher and read back by the hub: its fields
//! (`event_type`, `task_id`, `task_data` — the public task JSON —, `timestamp`, `seq`, `actor`, and
//! `previous_assignee_id` on a reassignment). Encoded and decoded here only, so the two cannot drift.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Event, EventKind};
use crate::wire::{self, TaskJson};

/// The fields of the entry for an event, in the order written.
pub fn fields(event: &Event) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("event_type", event.kind.to_string()),
        ("task_id", event.task_id.to_string()),
        ("task_data", wire::task_value(&event.task).to_string()),
        ("timestamp", wire::timestamp(event.created_at)),
        ("seq", event.seq.to_string()),
        ("actor", event.actor.clone()),
    ];
    if let Some(previous) = event.previous_assignee_id {
        fields.push(("previous_assignee_id", previous.to_string()));
    }
    fields
}

/// Rebuilds an event from an entry's fields; `None` for an entry this code cannot read (the hub then
/// fills the gap from the store). The assignee and repository the filters use are the task's.
pub fn parse(map: &HashMap<String, redis::Value>) -> Option<Event> {
    let text = |name: &str| -> Option<String> { map.get(name).and_then(|v| redis::from_redis_value_ref(v).ok()) };
    let seq: i64 = text("seq")?.parse().ok()?;
    let kind = EventKind::from_stored(&text("event_type")?)?;
    let task_id = Uuid::parse_str(&text("task_id")?).ok()?;
    let task = serde_json::from_str::<TaskJson>(&text("task_data")?).ok()?.to_task()?;
    let created_at: DateTime<Utc> = DateTime::parse_from_rfc3339(&text("timestamp")?).ok()?.with_timezone(&Utc);
    let previous_assignee_id = text("previous_assignee_id").and_then(|s| Uuid::parse_str(&s).ok());
    Some(Event {
        seq,
        kind,
        task_id,
        actor: text("actor").unwrap_or_default(),
        assignee_id: task.assignee_id,
        repository: task.repository.clone(),
        task,
        previous_assignee_id,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Complexity, Priority, Status, Task};

    fn event(previous_assignee_id: Option<Uuid>, deleted: bool) -> Event {
        let at = |micros| DateTime::from_timestamp_micros(micros).unwrap();
        let assignee_id = Some(Uuid::now_v7());
        let task = Task {
            id: Uuid::now_v7(),
            key: "WEB-7".into(),
            title: "a \"quoted\" title, ünïcode".into(),
            description: None,
            status: Status::InProgress,
            priority: Priority::High,
            complexity: Complexity::Low,
            assignee_id,
            assignee_email: Some("bob@example.com".into()),
            repository: Some("web".into()),
            created_by: "ann@example.com".into(),
            updated_by: "bob@example.com".into(),
            created_at: at(1_800_000_000_000_001),
            updated_at: at(1_800_000_000_123_456),
            version: 3,
            deleted_at: deleted.then(|| at(1_800_000_000_999_999)),
            parent_id: Some(Uuid::now_v7()),
            claim: Some(crate::domain::Claim {
                holder: "bob@example.com (process 7 1a2b3c4d)".into(),
                agent: Some("claude-code".into()),
                expires_at: at(1_800_000_100_000_000),
            }),
            lapsed_holder: None,
            open_blockers: 2,
        };
        Event {
            seq: 42,
            kind: EventKind::TaskAssigned,
            task_id: task.id,
            actor: "bob@example.com".into(),
            assignee_id,
            previous_assignee_id,
            repository: task.repository.clone(),
            task,
            created_at: at(1_800_000_000_123_456),
        }
    }

    /// The entry as Redis hands it back: every value a bulk string.
    fn as_read(fields: &[(&'static str, String)]) -> HashMap<String, redis::Value> {
        fields.iter().map(|(k, v)| ((*k).to_owned(), redis::Value::BulkString(v.as_bytes().to_vec()))).collect()
    }

    #[test]
    fn an_entry_reads_back_as_the_event_it_was_written_from() {
        for event in [event(None, false), event(Some(Uuid::now_v7()), false), event(None, true)] {
            assert_eq!(parse(&as_read(&fields(&event))), Some(event));
        }
    }

    #[test]
    fn task_data_is_the_public_task_json() {
        let event = event(None, false);
        let fields = fields(&event);
        let data = &fields.iter().find(|(k, _)| *k == "task_data").unwrap().1;
        assert_eq!(data, &serde_json::to_value(TaskJson::from(&event.task)).unwrap().to_string());
    }

    #[test]
    fn an_entry_missing_a_field_or_with_an_unknown_value_is_not_read() {
        let event = event(None, false);
        for (broken, value) in [("seq", "x"), ("event_type", "task_exploded"), ("task_data", "{}"), ("timestamp", "")] {
            let mut map = as_read(&fields(&event));
            map.insert(broken.to_owned(), redis::Value::BulkString(value.as_bytes().to_vec()));
            assert_eq!(parse(&map), None, "{broken}");
        }
    }
}
