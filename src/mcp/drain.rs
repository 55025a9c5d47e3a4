//! The stdio transport's end of input: when stdin closes, report the end to rmcp only once every call
//! in flight has been answered. rmcp itself waits 5 s for them and then cancels the handlers, so a
//! call that was waiting on the database (a SQLite lock held by another process, a busy pool) was
//! dropped unanswered, or committed without its answer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{ClientNotification, JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long, after stdin closed, the calls in flight may take to answer (longer than any store
/// wait: SQLite retries a locked file for 30 s, the pool waits 5 s for a connection).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Wraps a transport, tracking the requests it delivered until their answers are sent.
pub struct DrainOnEof<T> {
    inner: T,
    in_flight: Arc<InFlight>,
    /// When the input ended (then `receive` only waits for the calls in flight).
    ended_at: Option<Instant>,
}

#[derive(Default)]
struct InFlight {
    /// A std mutex: held for an insert or a remove, never across an await.
    ids: Mutex<HashSet<RequestId>>,
    answered: Notify,
}

impl InFlight {
    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<RequestId>> {
        // A poisoned set only means a thread panicked between two set operations: the set is whole.
        self.ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn started(&self, id: RequestId) {
        self.ids().insert(id);
    }

    fn finished(&self, id: &RequestId) {
        if self.ids().remove(id) {
            self.answered.notify_waiters();
        }
    }

    /// Waits until nothing is in flight, or `deadline`; false when the deadline came first.
    async fn drained(&self, deadline: Instant) -> bool {
        loop {
            // Register before checking, so an answer sent in between is not missed.
            let answered = self.answered.notified();
            if self.ids().is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return self.ids().is_empty();
            }
        }
    }
}

impl<T> DrainOnEof<T> {
    pub fn new(inner: T) -> Self {
        Self { inner, in_flight: Arc::default(), ended_at: None }
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for DrainOnEof<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let answered = match &item {
            JsonRpcMessage::Response(response) => Some(response.id.clone()),
            JsonRpcMessage::Error(error) => error.id.clone(),
            _ => None,
        };
        let sending = self.inner.send(item);
        let in_flight = self.in_flight.clone();
        async move {
            let sent = sending.await;
            if let Some(id) = answered {
                in_flight.finished(&id);
            }
            sent
        }
    }

    /// Cancel-safe, as rmcp needs (it polls `receive` in a `select!` with its other work): once the
    /// input has ended, a new call goes straight back to waiting for the calls in flight.
    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        if self.ended_at.is_none() {
            match self.inner.receive().await {
                Some(message) => {
                    match &message {
                        JsonRpcMessage::Request(request) => self.in_flight.started(request.id.clone()),
                        // A cancelled call is never answered: stop waiting for it.
                        JsonRpcMessage::Notification(notification) => {
                            if let ClientNotification::CancelledNotification(cancelled) = &notification.notification
                                && let Some(id) = &cancelled.params.request_id
                            {
                                self.in_flight.finished(id);
                            }
                        }
                        _ => {}
                    }
                    return Some(message);
                }
                None => self.ended_at = Some(Instant::now()),
            }
        }
        let deadline = self.ended_at.unwrap_or_else(Instant::now) + DRAIN_LIMIT;
        if !self.in_flight.drained(deadline).await {
            tracing::warn!("stdin closed; calls still unanswered after {} s are abandoned", DRAIN_LIMIT.as_secs());
        }
        None
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
