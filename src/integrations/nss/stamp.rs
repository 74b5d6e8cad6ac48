//! What a check of the database is worth later: a [`Vouch`] records that a certificate was
//! found usable in a database whose files held exactly certain bytes. While they still do, a
//! read-only run (`ea`, `status`) can take the check as true instead of running the tools
//! again: each look costs four `certutil` runs, most of an `ea`'s time.
//!
//! The files are compared by content (SHA-256), not by size and times: a change made in the
//! same clock tick as the check can leave every timestamp as it was, the bytes cannot. The
//! database is a few hundred KiB; hashing it takes well under a millisecond.

use super::format::fingerprint;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The files NSS's SQL database keeps certificates and keys in, and SQLite's write-ahead logs
/// of them, should a program have opened the database in that mode.
const FILES: [&str; 4] = ["cert9.db", "key4.db", "cert9.db-wal", "key4.db-wal"];

/// Beyond this a database file is not hashed (no vouch; the tools look instead).
const FILE_MAX: u64 = 32 * 1024 * 1024;

/// A certificate found usable in the database at `database` while its files had the SHA-256
/// digests `files` (in the order of [`FILES`]; `None` for one that did not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vouch {
    certificate_sha256: String,
    database: PathBuf,
    files: Vec<Option<String>>,
}

impl Vouch {
    /// The vouch for `cert_der` in the database folder `dir` as it is now; `None` when a file
    /// cannot be read. Take it only right after a check found the identity usable.
    pub fn now(dir: &Path, cert_der: &[u8]) -> Option<Vouch> {
        Some(Vouch {
            certificate_sha256: fingerprint(cert_der),
            database: dir.to_owned(),
            files: digests(dir)?,
        })
    }

    /// Whether this vouch still answers for `cert_der` in `dir`: same certificate, same
    /// database folder, every file byte for byte as it was.
    pub fn holds(&self, dir: &Path, cert_der: &[u8]) -> bool {
        self.database == dir
            && self.certificate_sha256 == fingerprint(cert_der)
            // Without the certificate database there is nothing to vouch for.
            && self.files.first().is_some_and(Option::is_some)
            && digests(dir).is_some_and(|files| files == self.files)
    }
}

fn digests(dir: &Path) -> Option<Vec<Option<String>>> {
    FILES.iter().map(|name| digest(&dir.join(name))).collect()
}

/// `Some(None)` for a missing file, `None` for one that cannot be read as a regular file
/// (a link, a FIFO, too large): the folder is the user's, and root only reads what it should.
fn digest(path: &Path) -> Option<Option<String>> {
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(None),
        Err(_) => return None,
    };
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > FILE_MAX {
        return None;
    }
    let mut bytes = Vec::new();
    file.take(FILE_MAX + 1).read_to_end(&mut bytes).ok()?;
    Some(Some(fingerprint(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert9.db"), b"certificates").unwrap();
        std::fs::write(dir.path().join("key4.db"), b"keys").unwrap();
        dir
    }

    #[test]
    fn holds_while_nothing_changed() {
        let db = database();
        let vouch = Vouch::now(db.path(), b"cert").unwrap();
        assert!(vouch.holds(db.path(), b"cert"));
        // It survives being written and read back, as the state folder keeps it.
        let json = serde_json::to_vec(&vouch).unwrap();
        let back: Vouch = serde_json::from_slice(&json).unwrap();
        assert!(back.holds(db.path(), b"cert"));
    }

    #[test]
    fn not_for_another_certificate_or_database() {
        let db = database();
        let other = database();
        let vouch = Vouch::now(db.path(), b"cert").unwrap();
        assert!(!vouch.holds(db.path(), b"other cert"));
        assert!(!vouch.holds(other.path(), b"cert"));
    }

    #[test]
    fn a_change_of_one_byte_in_either_file_ends_it() {
        for name in ["cert9.db", "key4.db"] {
            let db = database();
            let vouch = Vouch::now(db.path(), b"cert").unwrap();
            let path = db.path().join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[0] ^= 1;
            std::fs::write(&path, bytes).unwrap();
            assert!(!vouch.holds(db.path(), b"cert"), "{name}");
        }
    }

    #[test]
    fn a_write_ahead_log_appearing_ends_it() {
        let db = database();
        let vouch = Vouch::now(db.path(), b"cert").unwrap();
        std::fs::write(db.path().join("key4.db-wal"), b"pending").unwrap();
        assert!(!vouch.holds(db.path(), b"cert"));
    }

    #[test]
    fn a_link_in_place_of_a_file_is_not_read() {
        let db = database();
        let vouch = Vouch::now(db.path(), b"cert").unwrap();
        let elsewhere = db.path().join("elsewhere");
        std::fs::rename(db.path().join("key4.db"), &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, db.path().join("key4.db")).unwrap();
        assert!(Vouch::now(db.path(), b"cert").is_none());
        assert!(!vouch.holds(db.path(), b"cert"));
    }

    #[test]
    fn nothing_is_vouched_for_without_a_database() {
        let empty = tempfile::tempdir().unwrap();
        let vouch = Vouch::now(empty.path(), b"cert").unwrap();
        assert!(!vouch.holds(empty.path(), b"cert"));
    }
}
