//! The start-up floor of the benchmark: the least a Rust program spawned over stdio can do, read one
//! line from stdin and write one to stdout, with std alone. `task-mcp`'s spawn → `initialize` answer
//! is measured against this program's spawn → answer.

use std::io::{BufRead, Write};

fn main() {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n");
    let _ = out.flush();
}
