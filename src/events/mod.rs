//! The event side: the outbox relay, the Redis Streams publisher, the live feed and `events tail`.
pub mod publisher;
pub mod tail;
