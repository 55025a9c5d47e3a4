//! The one integration-test binary: real PostgreSQL, real Redis, real SQLite files, the real binary.

mod support;

pub(crate) mod bad_input;
mod claims;
mod cli;
mod cli_tasks;
mod default_repo;
mod deploy;
mod events_outbox;
mod events_redis;
mod faults;
mod http_auth;
mod http_e2e;
mod http_limits;
mod http_mcp;
mod http_oauth;
mod http_origins;
mod http_rest;
mod http_server;
mod http_sse;
mod read_replica;
mod redis_cluster;
mod secrets;
mod sqlite_store;
mod stdio_mcp;
mod store_contract;
mod task_keys;
mod tidy;
mod transfer;
mod zero_config;
