//! The event side of the outbox: the Redis Streams publisher and its entries (`entry`), the relay that
//! publishes committed events, the live hub that puts them back in `seq` order for SSE clients, and `events tail`.

pub mod bus;
pub mod entry;
pub mod feed;
pub mod hub;
pub mod publisher;
pub mod relay;

use std::sync::atomic::{AtomicU64, Ordering};

/// Events this process has published to Redis (for `/metrics`).
static EVENTS_RELAYED: AtomicU64 = AtomicU64::new(0);

pub fn events_relayed() -> u64 {
    EVENTS_RELAYED.load(Ordering::Relaxed)
}

fn count_relayed(n: usize) {
    EVENTS_RELAYED.fetch_add(n as u64, Ordering::Relaxed);
}

/// Stream entries not written because their stream refused them (a key of another type), while the
/// event went to its other streams (for `/metrics`).
static ENTRIES_SET_ASIDE: AtomicU64 = AtomicU64::new(0);

pub fn stream_entries_set_aside() -> u64 {
    ENTRIES_SET_ASIDE.load(Ordering::Relaxed)
}

fn count_set_aside(n: usize) {
    ENTRIES_SET_ASIDE.fetch_add(n as u64, Ordering::Relaxed);
}
