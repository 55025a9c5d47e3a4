//! How a client such as the VS Code extension follows `serve`'s live feed: load the tasks, open the
//! event stream, apply each event, and after a drop reconnect with `Last-Event-ID` so that nothing is
//! missed and nothing is applied twice; on `resync`, reload the list.
//!
//! ```sh
//! TASK_MCP_URL=http://127.0.0.1:8000 TASK_MCP_TOKEN=$(task-mcp token) cargo run --example sse_client
//! ```
//! Optional: `TASK_MCP_FILTER="user_id=me"` or `"repositories=web,api"`.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::var("TASK_MCP_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let token = std::env::var("TASK_MCP_TOKEN").map_err(|_| "set TASK_MCP_TOKEN (see `task-mcp token`)")?;
    let filter = std::env::var("TASK_MCP_FILTER").unwrap_or_default();
    let client = reqwest::Client::new();

    let mut tasks = load(&client, &base, &token).await?;
    println!("loaded {} tasks", tasks.len());
    // The position in the feed: the `id:` of the last event applied.
    let mut last_event_id: Option<String> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut request = client.get(format!("{base}/api/tasks/stream?{filter}")).bearer_auth(&token);
        if let Some(id) = &last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = match request.send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) if response.status() == 401 => return Err("the token was refused".into()),
            Ok(response) => {
                eprintln!("stream refused: {}", response.status());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(err) => {
                eprintln!("cannot connect ({err}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        println!("connected (resuming after {})", last_event_id.as_deref().unwrap_or("now"));
        backoff = Duration::from_millis(500);
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
            // Events are separated by a blank line; lines starting with ':' are heartbeats.
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                let Some(kind) = kind else { continue };
                if kind == "resync" {
                    // Too far behind for the log: start again from a fresh list.
                    tasks = load(&client, &base, &token).await?;
                    println!("resync: reloaded {} tasks", tasks.len());
                } else if let Ok(event) = serde_json::from_str::<Value>(&data) {
                    apply(&mut tasks, &kind, &event);
                }
                if id.is_some() {
                    last_event_id = id;
                }
            }
        }
        // The server ended the stream (restart, shutdown, or we were too slow): come back and resume.
        eprintln!("stream ended; reconnecting");
        tokio::time::sleep(backoff).await;
    }
}

/// Every task, following `next_cursor`.
async fn load(client: &reqwest::Client, base: &str, token: &str) -> Result<HashMap<String, Value>, reqwest::Error> {
    let mut tasks = HashMap::new();
    let mut url = format!("{base}/api/tasks?limit=200");
    loop {
        let page: Value = client.get(&url).bearer_auth(token).send().await?.error_for_status()?.json().await?;
        for task in page["tasks"].as_array().into_iter().flatten() {
            tasks.insert(task["id"].as_str().unwrap_or_default().to_owned(), task.clone());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{base}/api/tasks?limit=200&cursor={cursor}"),
            None => return Ok(tasks),
        }
    }
}

fn apply(tasks: &mut HashMap<String, Value>, kind: &str, event: &Value) {
    let id = event["task_id"].as_str().unwrap_or_default().to_owned();
    let title = event["task"]["title"].as_str().unwrap_or("?");
    println!("#{} {kind}: {title} (by {})", event["seq"], event["actor"].as_str().unwrap_or("?"));
    if kind == "task_deleted" {
        tasks.remove(&id);
    } else {
        tasks.insert(id, event["task"].clone());
    }
}
