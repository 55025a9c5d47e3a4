//! Tidy checks over the source tree: every Rust file says what it owns in a leading `//!` line, and
//! only the commands whose output is their purpose write to stdout (in stdio mode stdout is the MCP
//! channel, so a stray `println!` anywhere else breaks every client).

use std::path::{Path, PathBuf};

/// Files allowed to print to stdout: the CLI commands that print a token, a key, the event feed or
/// the diagnosis as their result. None of them runs in stdio mode.
const STDOUT_WRITERS: [&str; 3] = ["src/app.rs", "src/doctor.rs", "src/events/tail.rs"];

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

/// The word the product never follows with a number: it names things by what they are, not by the
/// ticket that asked for them (readers of the code, docs and output have no tracker).
const TRACKER_WORD: &str = "issue";

/// The byte offsets where `text` refers to a ticket by number: the word, an optional plural `s`, spaces or `#`, digits.
fn ticket_references(text: &str) -> Vec<usize> {
    let lower = text.to_ascii_lowercase();
    lower
        .match_indices(TRACKER_WORD)
        .filter(|(at, _)| {
            let own_word = lower[..*at].chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric());
            let after = &lower[at + TRACKER_WORD.len()..];
            let after = after.strip_prefix('s').unwrap_or(after).trim_start_matches([' ', '#']);
            own_word && after.starts_with(|c: char| c.is_ascii_digit())
        })
        .map(|(at, _)| at)
        .collect()
}

#[test]
fn the_ticket_check_finds_numbered_references_only() {
    for text in ["{w} 7", "see {W} #12.", "({w}s 3 and 4)", "{W}#5"] {
        let text = text.replace("{w}", TRACKER_WORD).replace("{W}", &TRACKER_WORD.to_uppercase());
        assert_eq!(ticket_references(&text).len(), 1, "{text}");
    }
    for text in ["an {w} with the store", "reissue 7", "{w}d 3 times", "{w}: none"] {
        let text = text.replace("{w}", TRACKER_WORD);
        assert!(ticket_references(&text).is_empty(), "{text}");
    }
}

fn text_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else { return };
        for entry in entries {
            text_files(&entry.expect("directory entry").path(), found);
        }
    } else {
        found.push(path.to_path_buf());
    }
}

#[test]
fn code_docs_scripts_and_output_name_things_by_what_they_are_not_by_ticket_numbers() {
    let mut files = Vec::new();
    for top in ["src", "tests", "examples", "scripts", "docs", "README.md", "ARCHITECTURE.md"] {
        text_files(&root().join(top), &mut files);
    }
    files.sort();
    assert!(files.len() > 50, "expected the whole tree, found {} files", files.len());
    let mut found = Vec::new();
    for path in files {
        // Binary files (images, fonts) hold no prose.
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let relative = path.strip_prefix(root()).expect("under the root").display().to_string();
        for at in ticket_references(&text) {
            let line = text[..at].matches('\n').count() + 1;
            let shown = text[at..].lines().next().unwrap_or_default();
            found.push(format!("{relative}:{line}: {shown}"));
        }
    }
    assert!(found.is_empty(), "references to ticket numbers (name the thing instead):\n{}", found.join("\n"));
}
