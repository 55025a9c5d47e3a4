//! The accept loop of `serve`: each connection served by hyper and watched (a connection with no
//! request in progress, be it new, between requests, or sending its headers slowly, is closed after
//! the header timeout; one whose answer is still going out, such as an event stream, is not), at most
//! `max_connections` at once (beyond, a short 503 with `Retry-After`), and a graceful end (no new
//! connections; the ones open finish their answer and close).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::caps::RETRY_AFTER_SECS;
use super::errors::ApiError;

/// Connections over the cap being answered 503 at once; more are closed without a word.
const REFUSING_AT_ONCE: usize = 64;

/// How connections are served.
pub struct Serving {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts until `stop` is cancelled, then waits for the open connections to end (they are told to
/// close after their answer in flight). `tune` is applied to each accepted socket.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    serving: Serving,
    tune: impl Fn(&TcpStream),
    stop: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let places = Arc::new(Semaphore::new(serving.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSING_AT_ONCE));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, or a connection reset before it was accepted: the
                // listener itself is fine; a short pause keeps a descriptor shortage from spinning.
                tracing::debug!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tune(&tcp);
        let timeout = serving.header_timeout;
        match places.clone().try_acquire_owned() {
            Ok(place) => {
                tracker.spawn(serve_one(tcp, peer, router.clone(), timeout, stop.clone(), place));
            }
            Err(_) => match refusals.clone().try_acquire_owned() {
                Ok(place) => {
                    tracing::debug!("connection from {peer} refused: {} open", serving.max_connections);
                    tracker.spawn(refuse(tcp, timeout, place));
                }
                Err(_) => drop(tcp),
            },
        }
    }
    tracker.close();
    tracker.wait().await;
}

fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    // hyper's own header-read timer also fired on connections busy writing a long answer (an event
    // stream stalled after its first seconds under load): the connection is watched here instead.
    builder.timer(TokioTimer::new()).header_read_timeout(None);
    builder
}

/// What a connection is doing: requests begun, and answers not yet fully sent.
#[derive(Debug, Clone, Copy, Default)]
struct Activity {
    started: u64,
    in_flight: usize,
}

/// Held by an answer's body until it is sent (or dropped): the connection is busy meanwhile.
struct Busy(watch::Sender<Activity>);

impl Busy {
    fn begin(activity: &watch::Sender<Activity>) -> Busy {
        activity.send_modify(|a| {
            a.started += 1;
            a.in_flight += 1;
        });
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|a| a.in_flight = a.in_flight.saturating_sub(1));
    }
}

/// An answer's body, marking the connection busy until it is done.
struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B: hyper::body::Body + Unpin> hyper::body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Returns once the connection has had no request in progress for `timeout` (new, between
/// requests, or a request whose headers have not all come).
async fn idle_for(mut activity: watch::Receiver<Activity>, timeout: Duration) {
    loop {
        let now = *activity.borrow_and_update();
        if now.in_flight > 0 {
            if activity.changed().await.is_err() {
                return std::future::pending().await;
            }
            continue;
        }
        match tokio::time::timeout(timeout, activity.changed()).await {
            Err(_) => return,
            Ok(Err(_)) => return std::future::pending().await,
            Ok(Ok(())) => {}
        }
    }
}

async fn serve_one(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    stop: CancellationToken,
    _place: OwnedSemaphorePermit,
) {
    let (activity, watched) = watch::channel(Activity::default());
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let busy = Busy::begin(&activity);
        // What `into_make_service_with_connect_info` would give the handlers: the client's address.
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = router.clone().oneshot(request);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|inner| Tracked { inner, _busy: busy }))
        }
    });
    let connection = builder().serve_connection(TokioIo::new(tcp), service);
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = idle_for(watched, header_timeout) => {
            tracing::debug!("connection from {peer} closed: no request for {} ms", header_timeout.as_millis());
            return;
        }
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = ended {
        // Clients that went away: ordinary on the open internet.
        tracing::debug!("connection from {peer} ended: {err}");
    }
}

/// Answers the first request of a connection over the cap with 503, then closes it.
async fn refuse(tcp: TcpStream, header_timeout: Duration, _place: OwnedSemaphorePermit) {
    let service = hyper::service::service_fn(|_request: Request<Incoming>| async {
        let refusal = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "the server has as many connections open as it allows; retry later",
        )
        .with_details(serde_json::json!({ "retry_after_seconds": RETRY_AFTER_SECS }))
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS);
        Ok::<_, Infallible>(refusal.into_response())
    });
    let connection = builder().keep_alive(false).serve_connection(TokioIo::new(tcp), service);
    // A refused client gets as long as any to send its request, no longer.
    let _ = tokio::time::timeout(header_timeout, connection).await;
}
