//! `GET /api/tasks/stream`: the live feed as Server-Sent Events. `id:` is the event's seq, `event:` its
//! type, `data:` the event JSON. A reconnect with `Last-Event-ID` first gets exactly what it missed
//! (the feed replays it from the store), then the live events. Heartbeats are comments.
//! `POST /api/tasks/stream/ticket` exchanges a sign-in token for a short-lived stream ticket, which is
//! what a browser puts in the stream's URL (EventSource cannot send headers) instead of its token.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use super::errors::{ApiError, ApiResult};
use super::extract::ApiQuery;
use super::schema;
use crate::domain::{Actor, RepoName, UserKey, UserRef};
use crate::events::feed::{self, EventFilter, FeedItem};

/// A stream ticket: a token that opens `GET /api/tasks/stream` (as `access_token`) and nothing else.
#[derive(Debug, Serialize, JsonSchema)]
pub struct StreamTicketJson {
    /// The ticket, valid for a minute, on the event stream only.
    pub ticket: String,
    /// When the ticket expires (RFC 3339).
    pub expires_at: String,
}

/// Issues a stream ticket for the caller (who proved themselves with a sign-in token).
pub async fn ticket(State(state): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<StreamTicketJson>> {
    let (ticket, exp) = state
        .auth
        .jwt
        .issue_stream_ticket(&actor.email)
        .map_err(|err| crate::error::Error::Internal(format!("cannot issue a stream ticket: {err:#}")))?;
    let expires_at = i64::try_from(exp)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(Json(StreamTicketJson { ticket, expires_at }))
}

/// How long the client is told to wait before reconnecting.
const RETRY_HINT: Duration = Duration::from_secs(3);

/// The filters of the stream.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Only events of tasks assigned (or formerly assigned) to this user: "me", a UUID or an email.
    #[schemars(schema_with = "schema::user")]
    #[serde(default)]
    pub user_id: Option<String>,
    /// Only events of these repositories, comma-separated. With user_id, the union of both.
    #[schemars(schema_with = "schema::repositories")]
    #[serde(default)]
    pub repositories: Option<String>,
    /// The token, for EventSource (which cannot send headers). Prefer the Authorization header.
    pub access_token: Option<String>,
    /// Where to resume, when the Last-Event-ID header cannot be sent (the header wins).
    #[schemars(schema_with = "schema::event_id")]
    #[serde(default)]
    pub last_event_id: Option<String>,
}

/// An event id as the document states it: an optional sign and 1 to 19 ASCII digits. One beyond i64
/// is as absurd as any id past the log, so it is held at i64's bounds and gets the same resync.
fn parse_event_id(raw: &str) -> Option<i64> {
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wide: i128 = raw.parse().ok()?;
    Some(wide.clamp(i64::MIN.into(), i64::MAX.into()) as i64)
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
        // A blank query value means "not given", as for every query parameter.
        None => crate::domain::given(query.last_event_id.clone()),
    };
    let last_event_id = match last_event_id.as_deref().map(|raw| raw.trim_matches([' ', '\t'])) {
        None | Some("") => None,
        Some(raw) => Some(parse_event_id(raw).ok_or_else(|| {
            ApiError::invalid(
                "Last-Event-ID",
                format!("{raw:?} is not an event id: send the id: of the last event, an integer of at most 19 digits"),
            )
        })?),
    };
    // Held by the stream for as long as it is open: beyond the caps, 503 with Retry-After.
    let permit = state.streams.open(actor.email.as_str())?;
    state.metrics.sse_stream_opened();
    // A client that stops reading is dropped after `slow_client`, by the feed itself.
    let patience = Some(state.config.limits.slow_client);
    let events = feed::subscribe(&state.hub, &state.service, filter, last_event_id, patience).await.map({
        let state = state.clone();
        move |item| {
            state.metrics.sse_event_sent();
            Ok::<_, Infallible>(to_sse(item))
        }
    });
    // The first frame tells the client how soon to come back after a drop.
    let hello = futures::stream::once(async { Ok(SseEvent::default().retry(RETRY_HINT).comment("connected")) });
    let shutdown = state.shutdown.clone();
    let body = hello.chain(events).take_until(async move { shutdown.cancelled().await }).map(move |frame| {
        let _open = &permit;
        frame
    });
    let keep_alive = KeepAlive::new().interval(state.config.limits.sse_heartbeat).text("heartbeat");
    let mut response = Sse::new(body).keep_alive(keep_alive).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The feed's filter: `user_id` looked up to a user id (`me` is the caller), `repositories` split.
async fn filter(state: &AppState, actor: &Actor, query: &StreamQuery) -> ApiResult<EventFilter> {
    let mut filter = EventFilter::default();
    if let Some(raw) = query.user_id.as_deref().filter(|s| !s.trim().is_empty()) {
        // Looked up only: naming a user nobody has seen is a mistake (422), not a way to create one.
        let user = match UserRef::parse("user_id", raw)? {
            UserRef::Me => state.service.me(actor).await?,
            UserRef::Id(id) => state.service.known_user("user_id", UserKey::Id(id)).await?,
            UserRef::Email(email) => state.service.known_user("user_id", UserKey::Email(email)).await?,
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
        FeedItem::Event(live) => match &live.json {
            // Rendered once by the hub for every subscriber.
            Some(json) => SseEvent::default().id(live.event.seq.to_string()).event(live.event.kind.as_str()).data(json),
            None => SseEvent::default().comment("unserialisable event"),
        },
        FeedItem::Resync { latest_seq } => {
            SseEvent::default().id(latest_seq.to_string()).event("resync").data(crate::wire::resync_text(latest_seq))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_event_id;

    #[test]
    fn an_event_id_is_a_signed_integer_of_at_most_19_digits_held_at_i64s_bounds() {
        assert_eq!(parse_event_id("42"), Some(42));
        assert_eq!(parse_event_id("+7"), Some(7));
        assert_eq!(parse_event_id("-5"), Some(-5));
        assert_eq!(parse_event_id("9999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_event_id("-9999999999999999999"), Some(i64::MIN));
        for refused in ["", "+", "-", "10000000000000000000", "1e3", "٣", " 1", "1-0"] {
            assert_eq!(parse_event_id(refused), None, "{refused:?}");
        }
    }
}
