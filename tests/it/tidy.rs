//! Tidy checks over the source tree: every Rust file says what it owns in a leading `//!` line, and
//! only the commands whose output is their purpose write to stdout (in stdio mode stdout is the MCP
//! channel, so a stray `println!` anywhere else breaks every client).

use std::path::{Path, PathBuf};

/// Files allowed to print to stdout: the CLI commands that print a token, a key, the event feed or
/// the diagnosis as their result. None of them runs in stdio mode.
const STDOUT_WRITERS: [&str; 4] =
    ["src/commands/api_key.rs", "src/commands/doctor.rs", "src/commands/events_tail.rs", "src/commands/token.rs"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn sources(top: &[&str]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in top {
        rust_files(&root().join(dir), &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read source");
            let relative = path.strip_prefix(root()).expect("under the root").to_string_lossy().into_owned();
            (relative, text)
        })
        .collect()
}

#[test]
fn every_rust_file_starts_with_a_line_saying_what_it_owns() {
    let files = sources(&["src", "tests", "examples", "benches"]);
    assert!(files.len() > 50, "expected the whole tree, found {} files", files.len());
    let undocumented: Vec<&str> =
        files.iter().filter(|(_, text)| !text.starts_with("//!")).map(|(path, _)| path.as_str()).collect();
    assert!(undocumented.is_empty(), "files without a leading //! line: {undocumented:?}");
}

/// Whether a line of code writes to stdout (`eprintln!` and friends write to stderr and are fine).
fn writes_to_stdout(code: &str) -> bool {
    ["println!", "print!(", "dbg!(", "io::stdout("]
        .iter()
        .any(|macro_name| code.match_indices(macro_name).any(|(at, _)| !code[..at].ends_with('e')))
}

#[test]
fn the_stdout_check_tells_stdout_from_stderr() {
    assert!(writes_to_stdout(r#"println!("{x}");"#));
    assert!(writes_to_stdout("let out = std::io::stdout();"));
    assert!(!writes_to_stdout(r#"eprintln!("{x}");"#));
    assert!(!writes_to_stdout(r#"eprint!("{x}");"#));
}

#[test]
fn only_the_cli_output_commands_write_to_stdout() {
    let mut offenders = Vec::new();
    for (path, text) in sources(&["src"]) {
        if STDOUT_WRITERS.contains(&path.as_str()) {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if writes_to_stdout(code) {
                offenders.push(format!("{path}:{}: {}", number + 1, code));
            }
        }
    }
    assert!(offenders.is_empty(), "stdout writes outside {STDOUT_WRITERS:?}:\n{}", offenders.join("\n"));
}
