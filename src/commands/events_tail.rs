//! `task-mcp events tail`: the live feed as JSON lines on stdout, for people debugging a deployment.

use std::io::Write;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::domain::{RepoName, UserKey, UserRef};
use crate::events::feed::{self, EventFilter, FeedItem};
use crate::wire::EventJson;
use crate::wiring::Parts;

pub async fn run(
    app: Parts,
    assignee: Option<String>,
    repository: Option<String>,
    after: Option<i64>,
) -> anyhow::Result<()> {
    let mut filter = EventFilter::default();
    if let Some(raw) = assignee {
        let key = match UserRef::parse("--user", &raw)? {
            UserRef::Id(id) => UserKey::Id(id),
            UserRef::Email(email) => UserKey::Email(email),
            UserRef::Me => anyhow::bail!("--user: give an email or a UUID"),
        };
        let user = app.service.known_user("--user", key).await?;
        filter.assignee_id = Some(user.id);
    }
    if let Some(raw) = repository {
        filter.repositories.push(RepoName::parse("--repository", &raw)?.into_inner());
    }

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let hub = app.start_hub(shutdown.clone());
    let source = if app.publisher.is_some() { "Redis" } else { "the store's event log" };
    tracing::info!("following {source}; Ctrl-C to stop");
    // A terminal that stops reading holds nobody up but this process: wait for it.
    let mut items = Box::pin(feed::subscribe(&hub, &app.service, filter, after, None).await);
    let mut out = std::io::stdout().lock();
    while let Some(item) = items.next().await {
        let line = match item {
            FeedItem::Event(live) => match &live.json {
                Some(json) => json.clone(),
                None => serde_json::to_string(&EventJson::from(&live.event))?,
            },
            FeedItem::Resync { latest_seq } => crate::wire::resync_text(latest_seq),
        };
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}
