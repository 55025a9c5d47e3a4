//! `GET /api/tasks/stream`: the live feed as Server-Sent Events. `id:` is the event's seq, `event:` its
//! type, `data:` the event JSON. A reconnect with `Last-Event-ID` first gets exactly what it missed
//! (the feed replays it from the store), then the live events. Heartbeats are comments.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::extract::ApiQuery;
use crate::domain::{Actor, RepoName, UserKey, UserRef};
use crate::events::feed::{self, EventFilter, FeedItem};
use crate::wire::EventJson;

/// How long the client is told to wait before reconnecting.
const RETRY_HINT: Duration = Duration::from_secs(3);
/// Events queued for a client between the feed and the socket.
const CLIENT_BUFFER: usize = 64;

/// The filters of the stream.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Only events of tasks assigned (or formerly assigned) to this user: "me", a UUID or an email.
    pub user_id: Option<String>,
    /// Only events of these repositories, comma-separated. With user_id, the union of both.
    pub repositories: Option<String>,
    /// The token, for EventSource (which cannot send headers). Prefer the Authorization header.
    pub access_token: Option<String>,
    /// Where to resume, when the Last-Event-ID header cannot be sent (the header wins).
    pub last_event_id: Option<String>,
}

pub async fn stream(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> ApiResult<Response> {
    let filter = filter(&state, &actor, &query).await?;
    let last_event_id = match headers.get("last-event-id") {
        // Not ASCII is not an id: refused like any other, not read as "no id" (a fresh stream).
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ApiError::invalid("Last-Event-ID", "is not ASCII: send the id: of the last event, a number")
                })?
                .to_owned(),
        ),
        None => query.last_event_id.clone(),
    };
    let last_event_id = match last_event_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            ApiError::invalid("Last-Event-ID", format!("{raw:?} is not an event id: send the id: of the last event"))
        })?),
    };
    state.metrics.sse_stream_opened();
    // Awaited before the response is sent: the feed's starting point is fixed now.
    let items = feed::subscribe(&state.hub, &state.service, filter, last_event_id).await;
    let events = guard_slow_client(items, state.config.limits.slow_client).map({
        let state = state.clone();
        move |item| {
            state.metrics.sse_event_sent();
            Ok::<_, Infallible>(to_sse(item))
        }
    });
    // The first frame tells the client how soon to come back after a drop.
    let hello = futures::stream::once(async { Ok(SseEvent::default().retry(RETRY_HINT).comment("connected")) });
    let shutdown = state.shutdown.clone();
    let body = hello.chain(events).take_until(async move { shutdown.cancelled().await });
    let keep_alive = KeepAlive::new().interval(state.config.limits.sse_heartbeat).text("heartbeat");
    let mut response = Sse::new(body).keep_alive(keep_alive).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The feed's filter: `user_id` resolved to a user id (`me` is the caller), `repositories` split.
async fn filter(state: &AppState, actor: &Actor, query: &StreamQuery) -> ApiResult<EventFilter> {
    let mut filter = EventFilter::default();
    if let Some(raw) = query.user_id.as_deref().filter(|s| !s.trim().is_empty()) {
        let user = match UserRef::parse("user_id", raw)? {
            UserRef::Me => state.service.me(actor).await?,
            UserRef::Id(id) => state
                .service
                .store()
                .find_user(&UserKey::Id(id))
                .await?
                .ok_or_else(|| ApiError::invalid("user_id", format!("no user has the id {id}")))?,
            UserRef::Email(email) => state.service.store().resolve_user("user_id", &UserKey::Email(email)).await?,
        };
        filter.assignee_id = Some(user.id);
    }
    if let Some(raw) = query.repositories.as_deref() {
        for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            filter.repositories.push(RepoName::parse("repositories", name)?.into_inner());
        }
    }
    Ok(filter)
}

fn to_sse(item: FeedItem) -> SseEvent {
    match item {
        FeedItem::Event(event) => {
            let json = EventJson::from(event.as_ref());
            SseEvent::default()
                .id(event.seq.to_string())
                .event(json.kind.as_str())
                .json_data(&json)
                .unwrap_or_else(|_| SseEvent::default().comment("unserialisable event"))
        }
        FeedItem::Resync { latest_seq } => SseEvent::default()
            .id(latest_seq.to_string())
            .event("resync")
            .data(serde_json::json!({ "type": "resync", "seq": latest_seq }).to_string()),
    }
}

/// Forwards the feed to the client through a small buffer; a client that has not taken an event for
/// `patience` is dropped (its feed subscription ends), so it never holds anything up. It reconnects
/// with `Last-Event-ID` and loses nothing.
fn guard_slow_client(
    items: impl Stream<Item = FeedItem> + Send + 'static,
    patience: Duration,
) -> impl Stream<Item = FeedItem> + Send + 'static {
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(async move {
        let mut items = std::pin::pin!(items);
        while let Some(item) = items.next().await {
            match tokio::time::timeout(patience, tx.send(item)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return, // the client went away
                Err(_) => {
                    tracing::info!("dropped an SSE client that stopped reading");
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
