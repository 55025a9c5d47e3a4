//! Tidy checks over the source tree: every Rust file says what it owns in a leading `//!` line; only
//! the commands whose output is their purpose write to stdout (in stdio mode stdout is the MCP
//! channel, so a stray `println!` anywhere else breaks every client); and the layering holds: `domain`
//! imports no store, frontend or I/O crate, nothing below the commands imports them or the top module,
//! only `mcp/` and `http/mcp.rs` know rmcp, and no module imports another that imports it back.

use std::path::{Path, PathBuf};

/// Files allowed to print to stdout: the CLI commands that print a token, a key, the event feed or
/// the diagnosis as their result. None of them runs in stdio mode.
const STDOUT_WRITERS: [&str; 7] = [
    "src/commands/api_key.rs",
    "src/commands/doctor.rs",
    "src/commands/events_tail.rs",
    "src/commands/health.rs",
    "src/commands/tasks.rs",
    "src/commands/token.rs",
    "src/commands/transfer.rs",
];

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

/// The code of a line: `None` for a comment line (comments may name anything).
fn code(line: &str) -> Option<&str> {
    let code = line.trim_start();
    (!code.starts_with("//")).then_some(code)
}

/// Whether `code` names the path `name::…` (a whole name: `tokio::` is not found in `my_tokio::`).
fn names_path(code: &str, name: &str) -> bool {
    let pattern = format!("{name}::");
    code.match_indices(&pattern).any(|(at, _)| {
        !code[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':')
    })
}

/// The top-level module a source file belongs to (`src/http/auth/jwt.rs` → `http`); `None` for the
/// crate roots.
fn top_module(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("src/")?;
    let first = rest.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then_some(name)
}

/// The top-level modules a line of code names as `crate::<module>`.
fn crate_modules(code: &str) -> Vec<String> {
    code.match_indices("crate::")
        .filter(|(at, _)| !code[..*at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$'))
        .map(|(at, found)| {
            code[at + found.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// `file:line: code` for each code line of the files `applies` selects that names one of `forbidden`.
fn offending_lines(files: &[(String, String)], applies: impl Fn(&str) -> bool, forbidden: &[&str]) -> Vec<String> {
    let mut offenders = Vec::new();
    for (path, text) in files.iter().filter(|(path, _)| applies(path)) {
        for (number, line) in text.lines().enumerate() {
            let Some(code) = code(line) else { continue };
            let named = |name: &&str| match name.strip_prefix("crate::") {
                Some(module) => crate_modules(code).iter().any(|m| m == module),
                None => names_path(code, name),
            };
            if forbidden.iter().any(named) {
                offenders.push(format!("{path}:{}: {code}", number + 1));
            }
        }
    }
    offenders
}

/// `domain` is pure: it names no other layer and no I/O crate.
fn domain_impurities(files: &[(String, String)]) -> Vec<String> {
    const FORBIDDEN: &[&str] = &[
        "crate::store",
        "crate::service",
        "crate::http",
        "crate::mcp",
        "crate::events",
        "crate::wiring",
        "crate::commands",
        "crate::app",
        "crate::config",
        "tokio",
        "tokio_postgres",
        "deadpool_postgres",
        "rusqlite",
        "refinery",
        "redis",
        "axum",
        "tower",
        "tower_http",
        "rmcp",
        "std::fs",
        "std::net",
        "std::process",
    ];
    offending_lines(files, |path| path.starts_with("src/domain/"), FORBIDDEN)
}

/// Only the top (`app.rs`) names the commands, and nothing names the top (only `main.rs` calls it,
/// as `task_mcp::app`).
fn imports_of_the_top(files: &[(String, String)]) -> Vec<String> {
    let mut offenders = offending_lines(files, |path| path.starts_with("src/"), &["crate::app"]);
    offenders.extend(offending_lines(
        files,
        |path| path.starts_with("src/") && path != "src/app.rs" && !path.starts_with("src/commands/"),
        &["crate::commands"],
    ));
    offenders
}

/// rmcp is known to the MCP frontend alone: `src/mcp/` and `/mcp` over HTTP (`src/http/mcp.rs`).
fn rmcp_outside_mcp(files: &[(String, String)]) -> Vec<String> {
    offending_lines(
        files,
        |path| path.starts_with("src/") && !path.starts_with("src/mcp/") && path != "src/http/mcp.rs",
        &["rmcp"],
    )
}

/// A cycle in the graph of `crate::<module>` references between top-level modules, as
/// `a -> b -> a`, or `None`.
fn import_cycle(files: &[(String, String)]) -> Option<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, text) in files {
        let Some(from) = top_module(path) else { continue };
        let edges = graph.entry(from.to_owned()).or_default();
        for code in text.lines().filter_map(code) {
            edges.extend(crate_modules(code).into_iter().filter(|to| to != from));
        }
    }
    // Depth-first search; a module met again while on the current path closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle.join(" -> "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|start| visit(start, &graph, &mut Vec::new(), &mut done))
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect()
}

#[test]
fn the_layering_checks_find_what_they_look_for_in_a_broken_tree() {
    let broken = tree(&[
        ("src/domain/task.rs", "//! t\nuse tokio::sync::Mutex;\nuse crate::store::Store;\n// tokio:: in a comment"),
        ("src/http/tasks.rs", "//! t\nuse rmcp::model::Tool;\nuse crate::app::App;\nuse crate::commands::token;"),
        ("src/store/mod.rs", "//! t\nuse crate::service::TaskService;"),
        ("src/service/mod.rs", "//! t\nuse crate::store;"),
    ]);
    assert_eq!(domain_impurities(&broken).len(), 2, "{:?}", domain_impurities(&broken));
    assert_eq!(rmcp_outside_mcp(&broken).len(), 1);
    assert_eq!(imports_of_the_top(&broken).len(), 2, "{:?}", imports_of_the_top(&broken));
    let cycle = import_cycle(&broken).expect("store and service name each other");
    assert!(cycle == "service -> store -> service" || cycle == "store -> service -> store", "{cycle}");

    let fixed = tree(&[
        ("src/domain/task.rs", "//! t\nuse super::Email;\nuse my_tokio::x;"),
        ("src/mcp/tools.rs", "//! t\nuse rmcp::model::Tool;\nuse crate::wiring::Parts;"),
        ("src/http/mcp.rs", "//! t\nuse rmcp::transport::StreamableHttpService;"),
        ("src/app.rs", "//! t\nuse crate::commands;"),
        ("src/commands/token.rs", "//! t\nuse crate::http::auth::JwtKeys;"),
        ("src/service/mod.rs", "//! t\nuse crate::store::Store;"),
    ]);
    assert_eq!(domain_impurities(&fixed), Vec::<String>::new());
    assert_eq!(rmcp_outside_mcp(&fixed), Vec::<String>::new());
    assert_eq!(imports_of_the_top(&fixed), Vec::<String>::new());
    assert_eq!(import_cycle(&fixed), None);
}

#[test]
fn the_domain_imports_no_store_frontend_or_io_crate() {
    let offenders = domain_impurities(&sources(&["src"]));
    assert!(offenders.is_empty(), "the domain must stay pure:\n{}", offenders.join("\n"));
}

#[test]
fn nothing_below_the_commands_imports_them_or_the_top_module() {
    let offenders = imports_of_the_top(&sources(&["src"]));
    assert!(offenders.is_empty(), "imports pointing up at the command layer:\n{}", offenders.join("\n"));
}

#[test]
fn only_the_mcp_frontend_names_rmcp() {
    let offenders = rmcp_outside_mcp(&sources(&["src"]));
    assert!(offenders.is_empty(), "rmcp outside src/mcp/ and src/http/mcp.rs:\n{}", offenders.join("\n"));
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let files = sources(&["src"]);
    assert!(files.len() > 50, "expected the whole tree, found {} files", files.len());
    if let Some(cycle) = import_cycle(&files) {
        panic!("an import cycle between top-level modules: {cycle}");
    }
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

/// Folders that hold what tools installed or built (browser packages, build output, virtualenvs),
/// not the project's own words.
const GENERATED_DIRS: [&str; 4] = ["node_modules", "target", ".venv", "__pycache__"];

fn text_files(path: &Path, found: &mut Vec<PathBuf>) {
    if path.is_dir() {
        if path.file_name().is_some_and(|name| GENERATED_DIRS.iter().any(|dir| name == *dir)) {
            return;
        }
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
