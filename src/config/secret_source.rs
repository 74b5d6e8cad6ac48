//! Where a secret (the org token, the SCEP challenge) comes from. Only its place is configured;
//! it is read when a request needs it, so commands that never talk to a CA never ask for it.

use super::{io_reason, ConfigError};
use crate::secret::Secret;
use std::path::{Path, PathBuf};

/// A token or challenge is one short line; a file far bigger is the wrong file (or `/dev/zero`).
pub const SECRET_FILE_MAX: u64 = 4 * 1024;

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
    pub fn read(&self, what: &'static str) -> Result<Secret, ConfigError> {
        let unreadable = |path: &Path, e: std::io::Error| ConfigError::Unreadable {
            what,
            path: path.to_owned(),
            reason: io_reason(&e),
        };
        let bytes = match self {
            SecretSource::Environment(_, s) => zeroize::Zeroizing::new(s.expose().as_bytes().to_vec()),
            SecretSource::Stdin => zeroize::Zeroizing::new(
                crate::fsutil::read_capped_stdin(SECRET_FILE_MAX)
                    .map_err(|e| unreadable(Path::new("-"), e))?,
            ),
            SecretSource::File(path) => {
                warn_if_readable_by_others(path, what);
                zeroize::Zeroizing::new(
                    crate::fsutil::read_capped(path, SECRET_FILE_MAX)
                        .map_err(|e| unreadable(path, e))?,
                )
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
        std::fs::write(&file, vec![b'a'; SECRET_FILE_MAX as usize + 1]).unwrap();
        let err = SecretSource::File(file).read("org token").unwrap_err().to_string();
        assert!(err.contains("4096"), "{err}");
    }
}
