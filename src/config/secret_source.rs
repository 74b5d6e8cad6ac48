//! Where a secret (the org token, the SCEP challenge) comes from. Only its place is configured;
//! it is read when a request needs it, so commands that never talk to a CA never ask for it.

use super::ConfigError;
use crate::secret::Secret;
use crate::securefs::{self, SECRET_MAX};
use std::path::{Path, PathBuf};

/// Where a secret comes from. Reading is deferred to the moment it is needed.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Stdin,
    Environment(&'static str, Secret),
}

impl SecretSource {
    pub(super) fn from_path(path: PathBuf) -> Self {
        if path.as_os_str() == "-" {
            SecretSource::Stdin
        } else {
            SecretSource::File(path)
        }
    }

    fn describe(&self) -> String {
        match self {
            SecretSource::File(p) => p.display().to_string(),
            SecretSource::Stdin => "standard input".into(),
            SecretSource::Environment(var, _) => var.to_string(),
        }
    }

    /// Reads the secret. Only the first line counts, trimmed, so `echo token > file` works.
    /// A token or challenge is one short line: a file or stream bigger than
    /// [`SECRET_MAX`] is the wrong one (or `/dev/zero`), and only a regular file is read.
    pub fn read(&self, what: &'static str) -> Result<Secret, ConfigError> {
        let unreadable = |source| ConfigError::SecretUnreadable { what, source };
        let bytes = match self {
            SecretSource::Environment(_, s) => {
                zeroize::Zeroizing::new(s.expose().as_bytes().to_vec())
            }
            SecretSource::Stdin => securefs::read_capped_stdin(SECRET_MAX).map_err(unreadable)?,
            SecretSource::File(path) => {
                warn_if_readable_by_others(path, what);
                securefs::read_trusted(path, SECRET_MAX, "the secret file").map_err(unreadable)?
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let secret = Secret::new(text.lines().next().unwrap_or_default().trim());
        if let std::borrow::Cow::Owned(copy) = text {
            drop(zeroize::Zeroizing::new(copy));
        }
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret {
                what,
                source_name: self.describe(),
            });
        }
        Ok(secret)
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o044 != 0 {
            tracing::warn!(
                "{} is readable by other users; the {what} deserves mode 0600",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_read_to_its_first_line_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  tok-123  \nsecond line\n").unwrap();
        assert_eq!(
            SecretSource::File(file.clone())
                .read("org token")
                .unwrap()
                .expose(),
            "tok-123"
        );
        std::fs::write(&file, "\n").unwrap();
        let err = SecretSource::File(file).read("org token").unwrap_err();
        assert!(matches!(err, ConfigError::EmptySecret { .. }), "{err}");
    }

    #[test]
    fn an_endless_or_huge_token_file_is_refused_with_the_cap() {
        let err = SecretSource::File("/dev/zero".into())
            .read("org token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/zero"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, vec![b'a'; SECRET_MAX as usize + 1]).unwrap();
        let err = SecretSource::File(file)
            .read("org token")
            .unwrap_err()
            .to_string();
        assert!(err.contains("4096"), "{err}");
    }
}
