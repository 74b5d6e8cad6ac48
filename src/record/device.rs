//! The root-owned enrollment record: what unattended runs rely on (method, org or SCEP URL,
//! pinned CA, extra CA file, certAuthDomain, cell, store), kept where only root can write.
//!
//! `/var/lib/devicetrust/users/<user>.json` on Linux, `/Library/Application
//! Support/devicetrust/users/<user>.json` on a Mac (under the `--root` prefix), mode 0644, one
//! per user. Root runs write it and take their settings from it; the user's renewal job reads
//! it. The copy in the user's home is that user's to edit, so a root run never takes a URL, a
//! CA, a host, a store or a fingerprint from there (docs/architecture.md, "trust boundary").

use super::{EnrollmentRecord, RecordError, RECORD_MAX};
use crate::paths::{rooted, Layout};
use crate::securefs::{Create, SecureDir, SecureFsError};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The folder below the device state directory that holds one record per user.
const USERS_DIR: &str = "users";

/// One user's root-owned record.
#[derive(Debug, Clone)]
pub struct DeviceRecordFile {
    root: PathBuf,
    /// The users folder, relative to the root.
    rel: PathBuf,
    name: OsString,
}

impl DeviceRecordFile {
    pub fn for_user(root: &Path, layout: Layout, user: &str) -> DeviceRecordFile {
        let dir = layout.device_state_dir().join(USERS_DIR);
        DeviceRecordFile {
            root: root.to_owned(),
            rel: rooted(Path::new(""), &dir),
            name: OsString::from(format!("{}.json", file_name_of(user))),
        }
    }

    /// Where the record is, for messages.
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.rel).join(&self.name)
    }

    /// The users folder, walked from the root without following links, and refused unless it
    /// and the device folder above it are root's and writable by root alone: a record anyone
    /// else could have written is no better than the user's copy.
    fn open(&self, create: bool) -> Result<Option<SecureDir>, SecureFsError> {
        let root = SecureDir::open_trusted(&self.root)?;
        let create = create.then_some(Create {
            mode: 0o755,
            owner: None,
        });
        let device_rel = self.rel.parent().unwrap_or(Path::new(""));
        let device = match root.open_dir(device_rel, create) {
            Ok(dir) => dir,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        check_roots_alone(&device)?;
        let users = match device.open_dir(USERS_DIR, create) {
            Ok(dir) => dir,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        check_roots_alone(&users)?;
        Ok(Some(users))
    }

    /// The record, `None` when there is none. One that does not parse is set aside (never
    /// overwritten) and the run goes on as if there were none.
    pub fn load(&self) -> Result<Option<EnrollmentRecord>, RecordError> {
        self.read(true)
    }

    /// Reads the record as [`DeviceRecordFile::load`] does, but leaves one that does not parse
    /// where it is. For runs that change nothing.
    pub fn peek(&self) -> Result<Option<EnrollmentRecord>, RecordError> {
        self.read(false)
    }

    fn read(&self, set_aside: bool) -> Result<Option<EnrollmentRecord>, RecordError> {
        let read = |source| RecordError::Fs {
            action: "read",
            source,
        };
        let Some(dir) = self.open(false).map_err(read)? else {
            return Ok(None);
        };
        let Some(bytes) = dir.read_file(&self.name, RECORD_MAX).map_err(read)? else {
            return Ok(None);
        };
        let meta = dir.metadata(&self.name).map_err(read)?;
        if meta.is_some_and(|m| !m.is_roots_alone()) {
            return Err(read(SecureFsError::NotRootsAlone { path: self.path() }));
        }
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Some(record)),
            Err(e) if !set_aside => {
                tracing::warn!(
                    "the enrollment record {} does not parse ({e}); a run that changes the \
                     device keeps it aside",
                    self.path().display()
                );
                Ok(None)
            }
            Err(e) => {
                let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
                let mut aside = self.name.clone();
                aside.push(format!(".damaged-{stamp}"));
                dir.rename(&self.name, &aside)
                    .map_err(|source| RecordError::Fs {
                        action: "set aside",
                        source,
                    })?;
                tracing::warn!(
                    "the enrollment record {} did not parse ({e}); it was kept as {}",
                    self.path().display(),
                    dir.path().join(&aside).display()
                );
                Ok(None)
            }
        }
    }

    /// Whether `save` could write here now: the folders, where they exist, are root's alone.
    pub fn check(&self) -> Result<(), RecordError> {
        self.open(false)
            .map(drop)
            .map_err(|source| RecordError::Fs {
                action: "write",
                source,
            })
    }

    /// Writes the record (root runs only), 0644 so the user's renewal job can read it.
    pub fn save(&self, record: &EnrollmentRecord) -> Result<(), RecordError> {
        let write = |source| RecordError::Fs {
            action: "write",
            source,
        };
        let json = serde_json::to_vec_pretty(record).map_err(RecordError::Encode)?;
        let dir = self.open(true).map_err(write)?.ok_or_else(|| {
            write(SecureFsError::Io {
                action: "create",
                what: "the directory",
                path: self.root.join(&self.rel),
                source: std::io::ErrorKind::NotFound.into(),
            })
        })?;
        dir.write_file_atomic(&self.name, &json, 0o644, None)
            .map_err(write)
    }

    /// Removes the record (uninstall); absent is fine.
    pub fn remove(&self) -> Result<bool, RecordError> {
        let remove = |source| RecordError::Fs {
            action: "remove",
            source,
        };
        match self.open(false).map_err(remove)? {
            Some(dir) => dir.remove_file(&self.name).map_err(remove),
            None => Ok(false),
        }
    }
}

fn check_roots_alone(dir: &SecureDir) -> Result<(), SecureFsError> {
    if !dir.own_metadata()?.is_roots_alone() {
        return Err(SecureFsError::NotRootsAlone {
            path: dir.path().to_owned(),
        });
    }
    Ok(())
}

/// A user name as a file name: letters, digits, `.`, `_` and `-` as they are, anything else
/// (and a leading dot) as `%XX`, so no name can climb out of the folder or collide.
fn file_name_of(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for (i, b) in user.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Method;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn user_names_become_plain_file_names() {
        assert_eq!(file_name_of("alice"), "alice");
        assert_eq!(file_name_of("a.b-c_d"), "a.b-c_d");
        assert_eq!(file_name_of("../x"), "%2E.%2Fx");
        assert_eq!(file_name_of(".hidden"), "%2Ehidden");
        assert_eq!(file_name_of("DOM\\bob"), "DOM%5Cbob");
    }

    #[test]
    fn each_layout_keeps_records_in_its_device_folder() {
        let linux = DeviceRecordFile::for_user(Path::new("/r"), Layout::Linux, "alice");
        assert_eq!(
            linux.path(),
            Path::new("/r/var/lib/devicetrust/users/alice.json")
        );
        let mac = DeviceRecordFile::for_user(Path::new("/"), Layout::Mac, "alice");
        assert_eq!(
            mac.path(),
            Path::new("/Library/Application Support/devicetrust/users/alice.json")
        );
    }

    /// Root writes it 0644 in 0755 folders; anyone may read it, a record others could write is
    /// refused. Needs root (the owner must be uid 0); CI runs as root.
    #[test]
    fn a_saved_record_is_roots_and_one_others_could_write_is_refused() {
        if !crate::platform::is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let file = DeviceRecordFile::for_user(root.path(), Layout::Linux, "alice");
        assert!(file.load().unwrap().is_none());
        let record = EnrollmentRecord {
            method: Some(Method::Okta),
            org_url: Some("https://acme.okta.com".into()),
            ..Default::default()
        };
        file.save(&record).unwrap();
        let meta = std::fs::metadata(file.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        let users = file.path().parent().unwrap().to_owned();
        assert_eq!(
            std::fs::metadata(&users).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(file.load().unwrap(), Some(record.clone()));

        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = file.load().unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();

        std::os::unix::fs::chown(file.path(), Some(4242), None).unwrap();
        assert!(file.load().is_err());
        std::os::unix::fs::chown(file.path(), Some(0), None).unwrap();

        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(file.load().is_err());
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o755)).unwrap();

        assert!(file.remove().unwrap());
        assert!(file.load().unwrap().is_none());
    }
}
