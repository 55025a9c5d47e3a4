//! The secret tokens are signed with: `JWT_SECRET`, else (on loopback only) one generated once into an
//! owner-only file in the data directory. The one place that says how long a secret must be.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The shortest secret accepted: HS256 is only as strong as its key.
pub const MIN_SECRET_BYTES: usize = 32;
/// The generated secret's file in the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// Refuses a configured secret shorter than [`MIN_SECRET_BYTES`], saying how to make a good one.
pub fn check_secret_length(secret: &[u8]) -> anyhow::Result<()> {
    if secret.len() < MIN_SECRET_BYTES {
        anyhow::bail!(
            "JWT_SECRET is {} bytes long; at least {MIN_SECRET_BYTES} are required (generate one with \
             `openssl rand -base64 48`)",
            secret.len()
        );
    }
    Ok(())
}

/// Where the JWT secret came from (the banner says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `JWT_SECRET`.
    Configured,
    /// Generated (or read back) in the data directory: zero-config local use.
    Generated(PathBuf),
}

/// The secret `serve` signs with: `JWT_SECRET`, else (bound to loopback only) one generated in the data
/// directory; bound elsewhere without one, `serve` refuses to start.
pub fn resolve_secret(
    configured: Option<&str>,
    host: IpAddr,
    data_dir: &Path,
) -> anyhow::Result<(Vec<u8>, SecretSource)> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        check_secret_length(secret.as_bytes())?;
        return Ok((secret.as_bytes().to_vec(), SecretSource::Configured));
    }
    if !host.is_loopback() {
        anyhow::bail!(
            "JWT_SECRET is not set and serve is bound to {host}, which other machines can reach: set JWT_SECRET \
             to a secret of at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -base64 48`), the same for every \
             instance; only on 127.0.0.1 or ::1 does serve generate one by itself"
        );
    }
    let path = data_dir.join(SECRET_FILE);
    let secret = load_or_create_secret(&path)?;
    Ok((secret, SecretSource::Generated(path)))
}

/// Reads the secret file, or creates it (owner-only) with 48 random bytes.
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            restrict_to_owner(path)?;
            let secret = text.trim().as_bytes().to_vec();
            if secret.len() < MIN_SECRET_BYTES {
                anyhow::bail!(
                    "{} holds a secret shorter than {MIN_SECRET_BYTES} bytes: delete it to have a new one generated",
                    path.display()
                );
            }
            Ok(secret)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                create_owner_only_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 48]>());
            if !write_owner_only(path, secret.as_bytes())? {
                // Another process created it first: use theirs, so tokens work with both.
                return Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec());
            }
            tracing::info!("generated a JWT secret in {}", path.display());
            Ok(secret.into_bytes())
        }
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The data directory holds the database and this secret: readable by its owner only.
#[cfg(unix)]
fn create_owner_only_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_owner_only_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes a new file readable by its owner only; false when it already existed (left untouched).
#[cfg(unix)]
fn write_owner_only(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // create_new: two processes starting at once must not overwrite each other's secret.
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(err) => return Err(err).with_context(|| format!("cannot create {}", path.display())),
    };
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

#[cfg(not(unix))]
fn write_owner_only(path: &Path, bytes: &[u8]) -> anyhow::Result<bool> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "{} was readable by others (mode {:o}): restricting it to its owner",
            path.display(),
            mode & 0o777
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused() {
        assert!(check_secret_length(b"short").is_err());
        let err = resolve_secret(Some("short"), "127.0.0.1".parse().unwrap(), Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
    }

    #[test]
    fn without_a_secret_only_loopback_may_start() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_secret(None, "0.0.0.0".parse().unwrap(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET is not set"), "{err}");
        let (first, source) = resolve_secret(None, "127.0.0.1".parse().unwrap(), dir.path()).unwrap();
        assert!(matches!(source, SecretSource::Generated(_)));
        let (again, _) = resolve_secret(None, "::1".parse().unwrap(), dir.path()).unwrap();
        assert_eq!(first, again, "the generated secret is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
