//! task-mcp: one binary that lets AI agents and people share one task list in real time.
//!
//! The crate map (dependencies point one way: `domain` ← `service` ← `mcp` / `http`):
//! - [`domain`]: pure types and rules (statuses, validated text, diffs, event kinds). No I/O.
//! - [`error`]: the one error enum; each frontend maps it once.
//! - [`wire`]: the JSON shapes of the public contract (tasks, pages, events), shared by all frontends;
//!   [`json_keys`]: what is wrong with JSON input (duplicate keys, the field a serde message names),
//!   read once for both frontends.
//! - [`store`]: the storage trait and its PostgreSQL and SQLite backends (change + history + event
//!   in one transaction).
//! - [`service`]: every use case, called by both frontends.
//! - [`events`]: the outbox relay, the Redis Streams publisher and the live feed.
//! - [`mcp`]: the MCP tools (rmcp), served over stdio or HTTP.
//! - [`http`]: `serve`: REST, SSE, `/mcp`, auth, the dashboard (axum).
//! - [`wiring`]: the wired parts (settings, store, service, publisher) every command is built from.
//! - [`commands`]: `token`, `api-key`, `events tail`, `doctor`, `migrate`.
//! - [`app`]: the top: parses the command line and dispatches (only `main.rs` imports it);
//!   [`cli`], [`config`], [`telemetry`], [`capacity`]: the process around them; [`workspace`]: which
//!   repository a folder belongs to (git's files, read directly); [`git_config`]: git's `user.email`,
//!   read from git's configuration files.

pub mod app;
pub mod capacity;
pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod git_config;
pub mod http;
pub mod json_keys;
pub mod mcp;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod wire;
pub mod wiring;
pub mod workspace;
