//! The default repository of a stdio session: `--repository` / `TASK_MCP_REPOSITORY`, else the one
//! folder the client announces as its root, else the working directory's git repository, else none.
//! The working directory is read once (when `initialize`'s instructions name the default, for a client
//! without roots, else in the background after that answer), the roots are asked once the client says
//! it is initialized, and a tool call that needs the answer waits for it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::service::Peer;
use tokio::sync::watch;

use crate::domain::{RepoName, ValidationError};
use crate::workspace::{Found, repository_of};

/// The setting that names the default repository, as errors and the doctor call it.
pub const SETTING: &str = "TASK_MCP_REPOSITORY";

/// How long a tool call waits for the client to list its roots before the working directory counts.
const ROOTS_WAIT: Duration = Duration::from_secs(5);

/// The default repository and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub name: RepoName,
    pub from: String,
}

/// What the client's roots said.
#[derive(Debug, Clone)]
enum Roots {
    /// The client has no roots (or has not said yet): the working directory counts.
    NotAnnounced,
    /// The client supports roots and they are being asked: wait.
    Asking,
    /// Exactly one folder, and what it belongs to (perhaps none).
    OneFolder(PathBuf, Option<Found>),
    /// None, several, or not folders: the working directory counts.
    NoSingleFolder,
}

/// One stdio session's default repository.
pub struct DefaultRepository {
    setting: Option<String>,
    cwd: Option<PathBuf>,
    home: Option<PathBuf>,
    from_cwd: OnceLock<Option<Found>>,
    roots: watch::Sender<Roots>,
}

impl DefaultRepository {
    /// For a process started in `cwd` (`None`: unknown) by a user whose home is `home`.
    pub fn new(setting: Option<String>, cwd: Option<PathBuf>, home: Option<PathBuf>) -> Arc<Self> {
        let setting = setting.filter(|s| !s.trim().is_empty());
        Arc::new(Self { setting, cwd, home, from_cwd: OnceLock::new(), roots: watch::Sender::new(Roots::NotAnnounced) })
    }

    /// This process's: its working directory and `$HOME`.
    pub fn for_process(setting: Option<String>) -> Arc<Self> {
        Self::new(setting, std::env::current_dir().ok(), dirs::home_dir())
    }

    /// Reads the working directory's repository on a blocking thread from now on (unless read
    /// already), so that the first call does not wait on the file system (call it inside the runtime).
    pub fn warm_up(self: &Arc<Self>) {
        if self.setting.is_some() || self.from_cwd.get().is_some() {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.working_directory();
        });
    }

    fn working_directory(&self) -> Option<&Found> {
        self.from_cwd
            .get_or_init(|| self.cwd.as_deref().and_then(|cwd| repository_of(cwd, self.home.as_deref())))
            .as_ref()
    }

    /// The answer as known now, without waiting for the client's roots.
    pub fn now(&self) -> Result<Option<Resolved>, ValidationError> {
        if let Some(raw) = &self.setting {
            let name = RepoName::parse(SETTING, raw)?;
            return Ok(Some(Resolved { name, from: format!("{SETTING} / --repository") }));
        }
        if let Roots::OneFolder(folder, found) = &*self.roots.borrow() {
            return Ok(found.as_ref().map(|found| Resolved {
                name: found.name.clone(),
                from: format!("{}, the client's root {}", found.describe(), folder.display()),
            }));
        }
        Ok(self.working_directory().map(|found| Resolved {
            name: found.name.clone(),
            from: format!("{}, the working directory", found.describe()),
        }))
    }

    /// The answer for a tool call: waits (a few seconds at most) while the client's roots are asked.
    pub async fn get(&self) -> Result<Option<Resolved>, ValidationError> {
        if self.setting.is_none() {
            let mut roots = self.roots.subscribe();
            let answered = roots.wait_for(|r| !matches!(r, Roots::Asking));
            if tokio::time::timeout(ROOTS_WAIT, answered).await.is_err() {
                tracing::warn!("the client did not list its roots in time: the working directory counts");
                self.roots.send_replace(Roots::NoSingleFolder);
            }
        }
        self.now()
    }

    /// Whether the client's roots are being asked (at `initialize`, before the answer).
    pub fn awaiting_roots(&self) -> bool {
        self.setting.is_none() && matches!(*self.roots.borrow(), Roots::Asking)
    }

    /// Says why there is none, for people (the doctor, the instructions).
    pub fn why_none(&self) -> String {
        match (&*self.roots.borrow(), &self.cwd) {
            (Roots::OneFolder(folder, _), _) => {
                format!("the client's root {} is in no git repository", folder.display())
            }
            (_, Some(cwd)) if cwd.parent().is_none() || Some(cwd) == self.home.as_ref() => {
                format!("the working directory {} is the filesystem root or the home directory", cwd.display())
            }
            (_, Some(cwd)) => format!("the working directory {} is in no git repository", cwd.display()),
            (_, None) => "the working directory is unknown".to_owned(),
        }
    }

    /// At `initialize`: a client that supports roots will be asked for them; until it answers, tool
    /// calls that need the default wait (so the first call cannot race the answer).
    pub fn client_has_roots(&self) {
        if self.setting.is_none() {
            self.roots.send_replace(Roots::Asking);
        }
    }

    /// Asks the client for its roots (once initialized, and again when they change).
    // Roots are deprecated in the newest protocol; the 2025-11-25 clients that announce them still count.
    #[allow(deprecated)]
    pub async fn ask_roots(&self, peer: &Peer<RoleServer>) {
        if self.setting.is_none() && !matches!(*self.roots.borrow(), Roots::NotAnnounced) {
            self.roots.send_replace(Roots::Asking);
            let answer = tokio::time::timeout(ROOTS_WAIT, peer.list_roots()).await;
            let state = match answer {
                Ok(Ok(listed)) => match listed.roots.as_slice() {
                    [root] => match folder_of_uri(&root.uri) {
                        Some(folder) => {
                            let home = self.home.clone();
                            let looked = folder.clone();
                            let found = tokio::task::spawn_blocking(move || repository_of(&looked, home.as_deref()))
                                .await
                                .ok()
                                .flatten();
                            Roots::OneFolder(folder, found)
                        }
                        None => Roots::NoSingleFolder,
                    },
                    _ => Roots::NoSingleFolder,
                },
                Ok(Err(err)) => {
                    tracing::warn!("the client's roots could not be read ({err}): the working directory counts");
                    Roots::NoSingleFolder
                }
                Err(_) => {
                    tracing::warn!("the client did not list its roots in time: the working directory counts");
                    Roots::NoSingleFolder
                }
            };
            self.roots.send_replace(state);
        }
    }
}

/// The folder of a `file://` URI (`file:///home/ann/web%20app` → `/home/ann/web app`).
fn folder_of_uri(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            decoded.push(byte);
            i += 3;
            continue;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let text = String::from_utf8(decoded).ok()?;
    let folder = Path::new(&text);
    Some(folder.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_become_folders() {
        assert_eq!(folder_of_uri("file:///home/ann/web%20app"), Some(PathBuf::from("/home/ann/web app")));
        assert_eq!(folder_of_uri("file://localhost/srv/x"), Some(PathBuf::from("/srv/x")));
        assert_eq!(folder_of_uri("https://example.com/x"), None);
    }

    #[test]
    fn the_setting_wins_and_a_bad_one_names_the_variable() {
        let set = DefaultRepository::new(Some("web-app".into()), Some("/".into()), None);
        assert_eq!(set.now().unwrap().unwrap().name.as_str(), "web-app");
        let bad = DefaultRepository::new(Some("a b".into()), None, None);
        assert!(bad.now().unwrap_err().to_string().contains(SETTING));
        let root = DefaultRepository::new(None, Some("/".into()), None);
        assert_eq!(root.now().unwrap(), None);
    }
}
