//! The caps of `serve`: how many event streams may be open at once, in all and per user. A stream
//! holds a [`StreamPermit`] for as long as it is open; beyond a cap the request is answered 503 with
//! `Retry-After`, so one credential (or a crowd) cannot hold every file descriptor of the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, header};
use serde_json::json;

use super::errors::ApiError;

/// How long a refused client is told to wait.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The open event streams, counted in all and per user.
#[derive(Debug)]
pub struct StreamCaps {
    total: usize,
    per_user: usize,
    // A std mutex: held for a counter update, never across an await.
    open: Arc<Mutex<Open>>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_user: HashMap<String, usize>,
}

impl StreamCaps {
    pub fn new(total: usize, per_user: usize) -> Self {
        Self { total, per_user, open: Arc::default() }
    }

    /// A permit for one more stream of `user`, or the 503 that says which cap is reached.
    pub fn open(&self, user: &str) -> Result<StreamPermit, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.total {
            return Err(refused("the server has as many event streams open as it allows", self.total, "total"));
        }
        let mine = open.by_user.get(user).copied().unwrap_or(0);
        if mine >= self.per_user {
            return Err(refused(
                "this user has as many event streams open as one user may: close one (e.g. another tab)",
                self.per_user,
                "per_user",
            ));
        }
        open.total += 1;
        open.by_user.insert(user.to_owned(), mine + 1);
        Ok(StreamPermit { open: self.open.clone(), user: user.to_owned() })
    }
}

fn refused(message: &str, limit: usize, which: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", format!("{message} ({limit})"))
        .with_details(json!({ "limit": limit, "cap": which, "retry_after_seconds": RETRY_AFTER_SECS }))
        .with_header(header::RETRY_AFTER, RETRY_AFTER_SECS)
}

/// One open stream; dropping it (the stream ends or the client goes) gives its place back.
#[derive(Debug)]
pub struct StreamPermit {
    open: Arc<Mutex<Open>>,
    user: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(mine) = open.by_user.get_mut(&self.user) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_at_the_cap_is_refused_while_another_is_served_and_a_closed_stream_frees_its_place() {
        let caps = StreamCaps::new(3, 2);
        let a1 = caps.open("a").unwrap();
        let _a2 = caps.open("a").unwrap();
        let refused = caps.open("a").unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.details["cap"], "per_user");
        let _b1 = caps.open("b").unwrap();
        assert_eq!(caps.open("c").unwrap_err().details["cap"], "total");
        drop(a1);
        assert!(caps.open("a").is_ok());
    }
}
