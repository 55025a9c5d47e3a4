//! The `task-mcp` binary: parse the command line, run the command, exit with its status.

use std::process::ExitCode;

fn main() -> ExitCode {
    task_mcp::app::main()
}
