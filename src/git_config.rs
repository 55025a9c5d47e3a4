//! git's `user.email` read from git's own configuration files, without a `git` process (spawning one
//! costs milliseconds): the value `git config --get user.email` prints, found in the same files in the
//! same order (system, global, the repository's), `[include]`s followed. Whatever this reader does
//! not model exactly (conditional includes, `git -c` settings in the environment, a repository owned
//! by someone else, a git installed where its system file cannot be told) is answered "ask git", and
//! the caller runs `git config` as before: the answer is always the one git gives.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::workspace::{common_dir, git_dir_of};

/// The key read: section `user`, name `email`.
const SECTION: &str = "user";
const NAME: &str = "email";

/// git's limit on nested includes (deeper is an error for git).
const MAX_INCLUDE_DEPTH: usize = 10;

/// Why the files alone cannot give git's answer: run `git config` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskGit(pub String);

fn ask(why: impl Into<String>) -> AskGit {
    AskGit(why.into())
}

/// What git's configuration depends on, read from the process (or given by a test).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The working directory (`None`: unknown, no repository).
    pub cwd: Option<PathBuf>,
    /// `PATH`, where `git` is looked for (no `git`: no answer, as when it cannot be run).
    pub path: Option<OsString>,
    /// The environment variables git reads (`HOME`, `XDG_CONFIG_HOME`, `GIT_*`), by name.
    pub vars: Vec<(String, OsString)>,
}

impl Context {
    /// This process's.
    pub fn of_process() -> Context {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
            .filter(|(k, _)| k == "HOME" || k == "XDG_CONFIG_HOME" || k.starts_with("GIT_") || k == "SUDO_UID")
            .collect();
        Context { cwd: std::env::current_dir().ok(), path: std::env::var_os("PATH"), vars }
    }

    fn var(&self, name: &str) -> Option<&OsString> {
        self.vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A variable that is set and not empty.
    fn non_empty(&self, name: &str) -> Option<PathBuf> {
        self.var(name).filter(|v| !v.is_empty()).map(PathBuf::from)
    }
}

/// The `user.email` git would print in `context` (`Ok(None)`: git prints none, or there is no git),
/// or why only git can tell.
pub fn user_email(context: &Context) -> Result<Option<String>, AskGit> {
    // Variables that change what git reads, or where it finds the repository: git alone knows them.
    for (name, _) in &context.vars {
        let modelled = matches!(
            name.as_str(),
            "GIT_CONFIG_GLOBAL" | "GIT_CONFIG_SYSTEM" | "GIT_CONFIG_NOSYSTEM" | "GIT_CEILING_DIRECTORIES"
        );
        let relevant = name.starts_with("GIT_CONFIG")
            || matches!(name.as_str(), "GIT_DIR" | "GIT_COMMON_DIR" | "GIT_DISCOVERY_ACROSS_FILESYSTEM");
        if relevant && !modelled {
            return Err(ask(format!("{name} is set")));
        }
    }
    if context.var("GIT_CEILING_DIRECTORIES").is_some_and(|v| !v.is_empty()) {
        return Err(ask("GIT_CEILING_DIRECTORIES is set"));
    }
    let Some(git) = find_git(context.path.as_deref()) else { return Ok(None) };
    let mut reader = Reader { home: context.non_empty("HOME"), value: None };

    // System: the file of the `git` found, unless switched off.
    let no_system = match context.var("GIT_CONFIG_NOSYSTEM") {
        Some(v) => env_bool(v).ok_or_else(|| ask("GIT_CONFIG_NOSYSTEM is not a boolean"))?,
        None => false,
    };
    if !no_system {
        match context.var("GIT_CONFIG_SYSTEM") {
            Some(path) if path.is_empty() => return Err(ask("GIT_CONFIG_SYSTEM is empty")),
            Some(path) => reader.file(Path::new(path), 0)?,
            None => system_config(&git, &mut reader)?,
        }
    }

    // Global: $GIT_CONFIG_GLOBAL alone, else the XDG file then ~/.gitconfig.
    match context.var("GIT_CONFIG_GLOBAL") {
        Some(path) if path.is_empty() => return Err(ask("GIT_CONFIG_GLOBAL is empty")),
        Some(path) => reader.file(Path::new(path), 0)?,
        None => {
            let xdg = context
                .non_empty("XDG_CONFIG_HOME")
                .or_else(|| reader.home.as_ref().map(|home| home.join(".config")))
                .map(|dir| dir.join("git").join("config"));
            if let Some(xdg) = xdg {
                reader.file(&xdg, 0)?;
            }
            if let Some(home) = reader.home.clone() {
                reader.file(&home.join(".gitconfig"), 0)?;
            }
        }
    }

    // The repository's own, when the working directory is in one.
    if let Some(cwd) = context.cwd.as_deref()
        && let Some(config) = repository_config(cwd, context)?
    {
        reader.file(&config, 0)?;
    }
    Ok(reader.value)
}

/// git's reading of a boolean environment variable (`GIT_CONFIG_NOSYSTEM`); `None`: not a boolean.
fn env_bool(value: &OsString) -> Option<bool> {
    let text = value.to_str()?.trim().to_ascii_lowercase();
    match text.as_str() {
        "" | "false" | "no" | "off" => Some(false),
        "true" | "yes" | "on" => Some(true),
        number => number.parse::<i64>().ok().map(|n| n != 0),
    }
}

/// The `git` a `Command::new("git")` would run: the first executable `git` on `PATH`.
fn find_git(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?).map(|dir| dir.join("git")).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

/// Reads git's system file. git looks in `$(prefix)/etc/gitconfig`, or `/etc/gitconfig` when
/// installed under `/usr`; a `git` elsewhere may have been built to look in `/etc` too. So for a
/// `git` under `/usr` the file is known; for any other, both candidates are looked at and must say
/// nothing about `user.email` (nor include anything), else git is asked.
fn system_config(git: &Path, reader: &mut Reader) -> Result<(), AskGit> {
    let real = std::fs::canonicalize(git).map_err(|e| ask(format!("cannot resolve {}: {e}", git.display())))?;
    let is_binary = std::fs::File::open(&real)
        .and_then(|mut f| {
            let mut magic = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut magic).map(|()| magic == *b"\x7fELF")
        })
        .unwrap_or(false);
    let prefix = real
        .parent()
        .filter(|bin| bin.file_name().is_some_and(|n| n == "bin") && real.file_name().is_some_and(|n| n == "git"))
        .and_then(Path::parent);
    let (Some(prefix), true) = (prefix, is_binary) else {
        return Err(ask(format!("{} is not a git program installed in a bin folder", real.display())));
    };
    if prefix == Path::new("/usr") {
        return reader.file(Path::new("/etc/gitconfig"), 0);
    }
    for candidate in [prefix.join("etc/gitconfig"), PathBuf::from("/etc/gitconfig")] {
        let mut probe = Reader { home: reader.home.clone(), value: None };
        let text = match read(&candidate)? {
            Some(text) => text,
            None => continue,
        };
        let mentions = probe.parse(&text, &candidate, 0)?;
        if probe.value.is_some() || mentions {
            return Err(ask(format!("{} may be git's system file and sets user.email", candidate.display())));
        }
    }
    Ok(())
}

/// The config file of the repository `cwd` is in, found the way git finds it: `.git` (a folder, or
/// a file naming one) in `cwd` or the nearest parent, not across a file-system boundary.
fn repository_config(cwd: &Path, context: &Context) -> Result<Option<PathBuf>, AskGit> {
    use std::os::unix::fs::MetadataExt;
    let device = |dir: &Path| std::fs::metadata(dir).map(|m| m.dev()).ok();
    let start = device(cwd);
    for dir in cwd.ancestors() {
        if device(dir) != start {
            // git stops at a mount point (unless told otherwise, which is asked above).
            return Ok(None);
        }
        let dot_git = dir.join(".git");
        let Ok(meta) = std::fs::symlink_metadata(&dot_git) else {
            if is_git_directory(dir) {
                return Err(ask(format!("{} is itself a git directory", dir.display())));
            }
            continue;
        };
        let git_dir = if meta.is_dir() {
            if !is_git_directory(&dot_git) {
                continue;
            }
            dot_git.clone()
        } else {
            match git_dir_of(dir) {
                Some(git_dir) if is_git_directory(&git_dir) => git_dir,
                _ => return Err(ask(format!("{} is not a git directory git can use", dot_git.display()))),
            }
        };
        owned_by_me(&[dir, &git_dir, &dot_git], context)?;
        let common = common_dir(&git_dir);
        return Ok(Some(common.join("config")));
    }
    Ok(None)
}

/// What git requires of a git directory: `HEAD`, and `objects` and `refs` (in the common directory
/// for a worktree's).
fn is_git_directory(dir: &Path) -> bool {
    let common = common_dir(dir);
    dir.join("HEAD").exists() && common.join("objects").is_dir() && common.join("refs").is_dir()
}

/// git ignores a repository owned by another user (unless `safe.directory` says otherwise): let git
/// decide those.
fn owned_by_me(paths: &[&Path], context: &Context) -> Result<(), AskGit> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    let me = unsafe { libc::geteuid() };
    if me == 0 && context.var("SUDO_UID").is_some() {
        return Err(ask("running under sudo"));
    }
    for path in paths {
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && meta.uid() != me
        {
            return Err(ask(format!("{} belongs to another user", path.display())));
        }
    }
    Ok(())
}

/// A config file's text; `None` when there is none (git skips a missing file).
fn read(path: &Path) -> Result<Option<String>, AskGit> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| ask(format!("{} is not UTF-8", path.display()))),
        Err(err) if matches!(err.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => Ok(None),
        Err(err) => Err(ask(format!("cannot read {}: {err}", path.display()))),
    }
}

/// The files read so far: the last `user.email` given wins, as with `git config --get`.
struct Reader {
    home: Option<PathBuf>,
    value: Option<String>,
}

impl Reader {
    fn file(&mut self, path: &Path, depth: usize) -> Result<(), AskGit> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(ask("includes nested too deep"));
        }
        match read(path)? {
            Some(text) => self.parse(&text, path, depth).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Parses one file as git does, following its includes; returns whether it includes anything.
    fn parse(&mut self, text: &str, path: &Path, depth: usize) -> Result<bool, AskGit> {
        let bad = |what: &str| ask(format!("{} has {what} this reader does not follow", path.display()));
        let text = text.strip_prefix('\u{feff}').unwrap_or(text).replace("\r\n", "\n");
        let mut chars = text.chars().peekable();
        // The current section, lower-cased, with its subsection when it has one.
        let mut section: Option<(String, Option<String>)> = None;
        let mut includes = false;
        while let Some(c) = chars.next() {
            if c == '\n' || c.is_whitespace() {
                continue;
            }
            if c == '#' || c == ';' {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            if c == '[' {
                let header = section_header(&mut chars).ok_or_else(|| bad("a section header"))?;
                if header.0 == "includeif" {
                    return Err(bad("a conditional include"));
                }
                section = Some(header);
                continue;
            }
            if !c.is_ascii_alphabetic() {
                return Err(bad("a line"));
            }
            let mut name = String::from(c.to_ascii_lowercase());
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '-' {
                    name.push(c.to_ascii_lowercase());
                    chars.next();
                } else {
                    break;
                }
            }
            while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
            let value = match chars.next() {
                None | Some('\n') => None,
                Some('=') => Some(value(&mut chars).ok_or_else(|| bad("a value"))?),
                Some(_) => return Err(bad("a line")),
            };
            let Some((section_name, subsection)) = &section else {
                return Err(bad("a key outside any section"));
            };
            match (section_name.as_str(), subsection, name.as_str()) {
                (SECTION, None, NAME) => self.value = Some(value.unwrap_or_default()),
                ("include", None, "path") => {
                    includes = true;
                    let target = value.ok_or_else(|| bad("an include without a path"))?;
                    let target = self.include_target(&target, path).ok_or_else(|| bad("an include path"))?;
                    self.file(&target, depth + 1)?;
                }
                ("extensions", None, "worktreeconfig") => return Err(bad("per-worktree configuration")),
                _ => {}
            }
        }
        Ok(includes)
    }

    /// Where an include points: `~/` is the home directory, a relative path is beside the file.
    fn include_target(&self, target: &str, from: &Path) -> Option<PathBuf> {
        if target.is_empty() {
            return None;
        }
        if let Some(rest) = target.strip_prefix("~/") {
            return self.home.as_ref().map(|home| home.join(rest));
        }
        if target.starts_with('~') {
            return None;
        }
        let target = Path::new(target);
        if target.is_absolute() { Some(target.to_path_buf()) } else { Some(from.parent()?.join(target)) }
    }
}

/// After `[`: `name]`, `name "subsection"]` or the old `name.subsection]`; the name lower-cased.
fn section_header(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<(String, Option<String>)> {
    let mut name = String::new();
    loop {
        match chars.next()? {
            ']' => return Some((name, None)),
            c if c == ' ' || c == '\t' => break,
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => name.push(c.to_ascii_lowercase()),
            _ => return None,
        }
    }
    while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
    if chars.next()? != '"' {
        return None;
    }
    let mut subsection = String::new();
    loop {
        match chars.next()? {
            '"' => break,
            '\n' => return None,
            '\\' => match chars.next()? {
                '\n' => return None,
                c => subsection.push(c),
            },
            c => subsection.push(c),
        }
    }
    (chars.next()? == ']').then_some((name, Some(subsection)))
}

/// After `=`: the value up to the end of the line, as git reads it (quotes, escapes, comments,
/// continued lines; whitespace trimmed at both ends, runs inside kept as spaces). `None`: malformed.
fn value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    let mut value = String::new();
    let (mut quoted, mut comment, mut spaces) = (false, false, 0usize);
    loop {
        let c = chars.next().unwrap_or('\n');
        if c == '\n' {
            return (!quoted).then_some(value);
        }
        if comment {
            continue;
        }
        if c.is_ascii_whitespace() && !quoted {
            if !value.is_empty() {
                spaces += 1;
            }
            continue;
        }
        if !quoted && (c == ';' || c == '#') {
            comment = true;
            continue;
        }
        value.extend(std::iter::repeat_n(' ', spaces));
        spaces = 0;
        match c {
            '\\' => match chars.next().unwrap_or('\n') {
                '\n' => {}
                't' => value.push('\t'),
                'b' => value.push('\u{8}'),
                'n' => value.push('\n'),
                c @ ('\\' | '"') => value.push(c),
                _ => return None,
            },
            '"' => quoted = !quoted,
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A home directory and a working directory of their own; git's system file switched off unless
    /// a case asks for it.
    struct Case {
        home: tempfile::TempDir,
        vars: Vec<(String, OsString)>,
    }

    impl Case {
        fn new() -> Case {
            let home = tempfile::tempdir().unwrap();
            let vars = vec![
                ("HOME".to_owned(), home.path().as_os_str().to_owned()),
                ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".into()),
            ];
            Case { home, vars }
        }

        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.home.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }

        fn git(&self, cwd: &Path, args: &[&str]) -> std::process::Output {
            std::process::Command::new("git")
                .args(args)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(self.vars.iter().map(|(k, v)| (k, v)))
                .current_dir(cwd)
                .output()
                .unwrap()
        }

        /// A repository at `relative` (created by git itself).
        fn repo(&self, relative: &str) -> PathBuf {
            let dir = self.home.path().join(relative);
            std::fs::create_dir_all(&dir).unwrap();
            assert!(self.git(&dir, &["init", "-q"]).status.success());
            dir
        }

        /// What this reader says in `cwd`, checked against what `git config --get user.email` prints.
        fn check(&self, cwd: &Path) -> Option<String> {
            let context =
                Context { cwd: Some(cwd.to_path_buf()), path: std::env::var_os("PATH"), vars: self.vars.clone() };
            let ours = user_email(&context).expect("read without git").map(|e| e.trim().to_owned());
            let output = self.git(cwd, &["config", "--get", "user.email"]);
            let git = output.status.success().then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned());
            assert_eq!(ours, git, "in {}", cwd.display());
            ours
        }

        fn asks_git(&self, cwd: &Path) -> String {
            let context =
                Context { cwd: Some(cwd.to_path_buf()), path: std::env::var_os("PATH"), vars: self.vars.clone() };
            user_email(&context).expect_err("only git can tell").0
        }
    }

    #[test]
    fn the_home_file_gives_the_email_and_a_repository_of_its_own_overrides_it() {
        let case = Case::new();
        case.write(".gitconfig", "[user]\n\tname = Ann\n\temail = ann@home.example\n");
        let outside = case.home.path().join("notes");
        std::fs::create_dir_all(&outside).unwrap();
        assert_eq!(case.check(&outside).as_deref(), Some("ann@home.example"));

        let repo = case.repo("work/app");
        assert_eq!(case.check(&repo).as_deref(), Some("ann@home.example"));
        assert!(case.git(&repo, &["config", "user.email", "ann@work.example"]).status.success());
        let deep = repo.join("src/deep");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(case.check(&repo).as_deref(), Some("ann@work.example"));
        assert_eq!(case.check(&deep).as_deref(), Some("ann@work.example"));
    }

    #[test]
    fn a_linked_worktree_reads_its_main_repository_config() {
        let case = Case::new();
        case.write(".gitconfig", "[user]\nname = Ann\nemail = ann@home.example\n[init]\ndefaultBranch = main\n");
        let repo = case.repo("app");
        assert!(case.git(&repo, &["config", "user.email", "ann@work.example"]).status.success());
        assert!(case.git(&repo, &["commit", "-q", "--allow-empty", "-m", "first"]).status.success());
        let linked = case.home.path().join("app-linked");
        let added = case.git(&repo, &["worktree", "add", "-q", "-b", "side", linked.to_str().unwrap()]);
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
        assert_eq!(case.check(&linked).as_deref(), Some("ann@work.example"));
    }

    #[test]
    fn the_xdg_file_comes_before_the_home_file_and_git_config_global_replaces_both() {
        let mut case = Case::new();
        case.write(".config/git/config", "[user]\nemail = xdg@example.com\n");
        assert_eq!(case.check(case.home.path()).as_deref(), Some("xdg@example.com"));
        case.write(".gitconfig", "[user]\nemail = home@example.com\n");
        assert_eq!(case.check(case.home.path()).as_deref(), Some("home@example.com"));
        let xdg = case.home.path().join("elsewhere");
        case.write("elsewhere/git/config", "[user]\nemail = other-xdg@example.com\n");
        case.write(".gitconfig", "[core]\nautocrlf = false\n");
        case.vars.push(("XDG_CONFIG_HOME".into(), xdg.into_os_string()));
        assert_eq!(case.check(case.home.path()).as_deref(), Some("other-xdg@example.com"));
        let global = case.write("global.ini", "[user]\nemail = global@example.com\n");
        case.vars.push(("GIT_CONFIG_GLOBAL".into(), global.into_os_string()));
        assert_eq!(case.check(case.home.path()).as_deref(), Some("global@example.com"));
    }

    #[test]
    fn includes_are_followed_in_place_and_the_last_value_wins() {
        let case = Case::new();
        case.write("conf/identity", "[user]\n\temail = included@example.com\n");
        case.write("conf/nested", "[include]\n\tpath = identity\n");
        case.write(".gitconfig", "[user]\nemail = first@example.com\n[include]\npath = conf/nested\n");
        assert_eq!(case.check(case.home.path()).as_deref(), Some("included@example.com"));
        case.write(".gitconfig", "[include]\npath = ~/conf/identity\n[user]\nemail = after@example.com\n");
        assert_eq!(case.check(case.home.path()).as_deref(), Some("after@example.com"));
        case.write(".gitconfig", "[include]\npath = missing\n[user]\nemail = kept@example.com\n");
        assert_eq!(case.check(case.home.path()).as_deref(), Some("kept@example.com"));
    }

    #[test]
    fn values_are_read_as_git_reads_them() {
        let case = Case::new();
        for (text, _) in [
            ("[User]\n\tEMAIL = ann@example.com ; a comment\n", "keys and sections in any case"),
            ("[user] email=ann@example.com\n", "a key on the header's line"),
            ("[user]\n email = \"ann@example.com\" # quoted\n", "quotes"),
            ("[user]\n email = \"a \\\"b\\\" c\"@x # quoted\n", "escapes"),
            ("[user]\n email = ann@\\\nexample.com\n", "a continued line"),
            ("[user]\n email = ann   two  words \n", "inner spaces"),
            ("[user]\n email\n", "no value"),
            ("[user]\n email =\n", "an empty value"),
            ("[user \"work\"]\n email = sub@example.com\n[user.x]\n email = old@example.com\n", "subsections"),
            ("\u{feff}[user]\r\n email = bom@example.com\r\n", "a byte-order mark and CRLF"),
            ("[user]\n email = one@example.com\n email = two@example.com\n", "two values"),
            ("# [user]\n; email = no@example.com\n", "comments"),
        ] {
            case.write(".gitconfig", text);
            case.check(case.home.path());
        }
    }

    #[test]
    fn what_this_reader_does_not_follow_is_left_to_git() {
        let mut case = Case::new();
        case.write(".gitconfig", "[includeIf \"gitdir:~/work/\"]\n\tpath = work.inc\n");
        assert!(case.asks_git(case.home.path()).contains("conditional include"));
        case.write(".gitconfig", "[user]\n email = \"unterminated\n");
        assert!(case.asks_git(case.home.path()).contains("value"));
        case.write(".gitconfig", "[user]\n email = ann@example.com\n");
        case.vars.push(("GIT_CONFIG_COUNT".into(), "1".into()));
        assert!(case.asks_git(case.home.path()).contains("GIT_CONFIG_COUNT"));
    }

    #[test]
    fn without_git_there_is_no_email() {
        let case = Case::new();
        case.write(".gitconfig", "[user]\n email = ann@example.com\n");
        let empty = tempfile::tempdir().unwrap();
        let context = Context {
            cwd: Some(case.home.path().to_path_buf()),
            path: Some(empty.path().as_os_str().to_owned()),
            vars: case.vars.clone(),
        };
        assert_eq!(user_email(&context), Ok(None));
    }

    #[test]
    fn the_system_file_counts_unless_switched_off() {
        let mut case = Case::new();
        case.vars.retain(|(k, _)| k != "GIT_CONFIG_NOSYSTEM");
        let system = case.write("system.ini", "[user]\n email = system@example.com\n");
        case.vars.push(("GIT_CONFIG_SYSTEM".into(), system.into_os_string()));
        assert_eq!(case.check(case.home.path()).as_deref(), Some("system@example.com"));
        case.write(".gitconfig", "[user]\n email = home@example.com\n");
        assert_eq!(case.check(case.home.path()).as_deref(), Some("home@example.com"));
        case.vars.retain(|(k, _)| k != "GIT_CONFIG_SYSTEM");
        // This machine's own system file, wherever its git looks: the same answer, or git asked.
        let context = Context {
            cwd: Some(case.home.path().to_path_buf()),
            path: std::env::var_os("PATH"),
            vars: case.vars.clone(),
        };
        if user_email(&context).is_ok() {
            case.check(case.home.path());
        }
    }
}
