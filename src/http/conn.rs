//! The accept loop of `serve`: each connection served by hyper with a timer (a client that does not
//! send its request headers in time, on a new or an idle connection, is closed), at most
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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

fn builder(header_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder
}

async fn serve_one(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    stop: CancellationToken,
    _place: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // What `into_make_service_with_connect_info` would give the handlers: the client's address.
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let connection = builder(header_timeout).serve_connection(TokioIo::new(tcp), service);
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = ended {
        // Timeouts and clients that went away: ordinary on the open internet.
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
    let connection = builder(header_timeout).keep_alive(false).serve_connection(TokioIo::new(tcp), service);
    let _ = connection.await;
}
