//! Logging: tracing to stderr only (stdout belongs to the MCP protocol), no colours unless a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once; later calls are ignored.
pub fn init(filter: &str) {
    // rmcp reports every session at INFO; that is noise in an agent's log unless asked for.
    let filter = if filter.contains("rmcp") { filter.to_owned() } else { format!("{filter},rmcp=warn") };
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
