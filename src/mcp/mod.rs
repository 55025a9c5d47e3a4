//! The MCP frontend (stub: being written).
pub mod stdio;
