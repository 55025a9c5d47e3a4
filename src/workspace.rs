//! Which repository a folder belongs to, read from git's own files (no `git` process: it may be
//! missing, and spawning it costs milliseconds): the name in `remote.origin.url`, else the name of the
//! repository's top-level folder. A folder outside any git repository, a home directory and `/` belong
//! to none.

use std::path::{Path, PathBuf};

use crate::domain::RepoName;

/// A repository name found for a folder, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: RepoName,
    /// The repository's top-level folder (the one holding `.git`).
    pub top: PathBuf,
    pub how: How,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The last path segment of `remote.origin.url`.
    Remote,
    /// The top-level folder's name (no `origin` remote).
    Folder,
}

impl Found {
    /// Where the name came from, for people: never the remote's URL, which may carry a password.
    pub fn describe(&self) -> String {
        match self.how {
            How::Remote => format!("the origin remote of the git repository at {}", self.top.display()),
            How::Folder => {
                format!("the folder name of the git repository at {}, which has no origin remote", self.top.display())
            }
        }
    }
}

/// The repository `dir` belongs to; `home` is the user's home directory, which names none (nor does a
/// dotfiles repository kept there).
pub fn repository_of(dir: &Path, home: Option<&Path>) -> Option<Found> {
    if dir.parent().is_none() || Some(dir) == home {
        return None;
    }
    let (top, git_dir) =
        dir.ancestors().find_map(|folder| git_dir_of(folder).map(|git| (folder.to_path_buf(), git)))?;
    if top.parent().is_none() || Some(top.as_path()) == home {
        return None;
    }
    let remote = std::fs::read_to_string(common_dir(&git_dir).join("config"))
        .ok()
        .and_then(|config| origin_url(&config))
        .and_then(|url| name_from_url(&url));
    match remote {
        Some(name) => Some(Found { name, top, how: How::Remote }),
        None => {
            let name = top.file_name().and_then(|n| n.to_str()).and_then(sanitized)?;
            Some(Found { name, top, how: How::Folder })
        }
    }
}

/// The git directory of `folder` when it is a repository's top level: `.git` itself, or the folder a
/// `.git` file points to (`gitdir: …`, as in worktrees and submodules).
pub(crate) fn git_dir_of(folder: &Path) -> Option<PathBuf> {
    let dot_git = folder.join(".git");
    let meta = std::fs::metadata(&dot_git).ok()?;
    if meta.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let target = text.lines().find_map(|line| line.strip_prefix("gitdir:"))?.trim();
    Some(folder.join(target))
}

/// A worktree's git directory keeps its config in the common directory it names.
pub(crate) fn common_dir(git_dir: &Path) -> PathBuf {
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(text) if !text.trim().is_empty() => git_dir.join(text.trim()),
        _ => git_dir.to_path_buf(),
    }
}

/// `url` of `[remote "origin"]` in a git config file (the first one given).
fn origin_url(config: &str) -> Option<String> {
    let mut in_origin = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            let header: String = line.trim_start_matches('[').split(']').next().unwrap_or("").to_owned();
            let mut parts = header.splitn(2, char::is_whitespace);
            let section = parts.next().unwrap_or("");
            let sub = parts.next().unwrap_or("").trim().trim_matches('"');
            in_origin = section.eq_ignore_ascii_case("remote") && sub == "origin";
            continue;
        }
        if !in_origin || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("url")
        {
            let value = value.trim().trim_matches('"').trim();
            if !value.is_empty() {
                return Some(value.to_owned());
            }
        }
    }
    None
}

/// The repository's name in a remote URL: `git@github.com:acme/web-app.git` and
/// `https://github.com/acme/web-app` both give `web-app`.
fn name_from_url(url: &str) -> Option<RepoName> {
    let path = url.trim_end_matches('/');
    let last = path.rsplit(['/', ':', '\\']).next()?;
    let last = last.strip_suffix(".git").unwrap_or(last);
    sanitized(last)
}

/// A folder or remote name as a repository name: characters a name may not hold become `-`.
fn sanitized(raw: &str) -> Option<RepoName> {
    let cleaned: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.');
    if cleaned.is_empty() {
        return None;
    }
    RepoName::parse("repository", cleaned).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_and_https_remotes_give_the_last_path_segment() {
        for url in [
            "git@github.com:acme/web-app.git",
            "https://github.com/acme/web-app",
            "https://user:secret@example.com/acme/web-app.git/",
            "ssh://git@example.com:2222/acme/web-app.git",
            "/srv/git/web-app.git",
        ] {
            assert_eq!(name_from_url(url).map(|n| n.as_str().to_owned()).as_deref(), Some("web-app"), "{url}");
        }
    }

    #[test]
    fn the_origin_url_is_read_from_its_own_section_only() {
        let config = "[core]\n\turl = nope\n[remote \"upstream\"]\n\turl = git@x:a/up.git\n\
                      [remote \"origin\"]\n\tfetch = +refs/heads/*\n\tURL = \"git@x:a/mine.git\"\n";
        assert_eq!(origin_url(config).as_deref(), Some("git@x:a/mine.git"));
        assert_eq!(origin_url("[remote \"upstream\"]\nurl = a\n"), None);
    }

    #[test]
    fn folder_names_become_repository_names() {
        assert_eq!(sanitized("My Project").unwrap().as_str(), "My-Project");
        assert!(sanitized("   ").is_none());
    }
}
