//! Logging: tracing to stderr only (stdout belongs to the MCP protocol), no colours unless a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call once; later calls are ignored.
pub fn init(filter: &str) {
    // rmcp reports every session and refinery every migration step at INFO: noise in an agent's log
    // unless asked for by name.
    let mut filter = filter.to_owned();
    for noisy in ["rmcp", "refinery_core"] {
        if !filter.contains(noisy) {
            filter.push_str(&format!(",{noisy}=warn"));
        }
    }
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn,refinery_core=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
