//! The MCP frontend: the tools (rmcp) over `TaskService`, served over stdio here and over Streamable
//! HTTP by `http/`. Only this module knows rmcp; the tools translate, the service decides.
//!
//! - [`tools`]: the server and its tools; [`args`]: their arguments; [`errors`]: `Error` → tool error.
//! - [`default_repo`]: a stdio session's default repository (setting, client root, working directory).
//! - [`identity`]: who acts (the process over stdio, the credentials over HTTP); [`schema`]: the
//!   tools' JSON schemas, compacted; [`output`]: their structured results.
//! - [`stdio`]: `task-mcp` / `task-mcp stdio`, over [`transport`] (lines, capped, every bad line
//!   answered) wrapped in [`drain`] (at end of input, answer the calls in flight first); [`framing`]:
//!   what an incoming message is, for both transports.

pub mod args;
pub mod default_repo;
pub mod drain;
pub mod errors;
pub mod framing;
pub mod identity;
pub mod output;
pub mod prompts;
#[cfg(test)]
mod properties;
pub mod resources;
pub mod schema;
pub mod stdio;
pub mod tools;
pub mod transport;

pub use identity::ActorSource;
pub use tools::TaskServer;
