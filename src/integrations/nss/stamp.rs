//! What a check of the database is worth later: a [`Vouch`] records that a certificate was
//! found usable in a database whose files held exactly certain bytes. While they still do, a
//! read-only run (`ea`, `status`) can take the check as true instead of running the tools
//! again: each look costs four `certutil` runs, most of an `ea`'s time.
//!
//! The files are compared by content (SHA-256), not by size and times: a change made in the
//! same clock tick as the check can leave every timestamp as it was, the bytes cannot. The
//! database is a few hundred KiB; hashing it takes well under a millisecond.
//!
//! The folder is the user's, and root reads these files: it reaches them through `securefs`,
//! one component at a time from the home folder, so a link anywhere on the way (at `~/.pki`,
//! at `~/.pki/nssdb`, swapped in while a tool runs) means no vouch, never a digest of a file
//! the link points to.

use super::format::fingerprint;
use crate::securefs::{Place, SecureDir};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// The vouch for `cert_der` in the database folder `place` as it is now; `None` when a
    /// file cannot be read. Take it only right after a check found the identity usable.
    pub fn now(place: &Place, cert_der: &[u8]) -> Option<Vouch> {
        Some(Vouch {
            certificate_sha256: fingerprint(cert_der),
            database: place.path(),
            files: digests(&place.open().ok()??)?,
        })
    }

    /// Whether this vouch still answers for `cert_der` in `place`: same certificate, same
    /// database folder, every file byte for byte as it was.
    pub fn holds(&self, place: &Place, cert_der: &[u8]) -> bool {
        self.database == place.path()
            && self.certificate_sha256 == fingerprint(cert_der)
            // Without the certificate database there is nothing to vouch for.
            && self.files.first().is_some_and(Option::is_some)
            && place
                .open()
                .ok()
                .flatten()
                .and_then(|dir| digests(&dir))
                .is_some_and(|files| files == self.files)
    }
}

fn digests(dir: &SecureDir) -> Option<Vec<Option<String>>> {
    FILES.iter().map(|name| digest(dir, name)).collect()
}

/// `Some(None)` for a missing file, `None` for one that cannot be read as a regular file (a
/// link, a FIFO, a hard link, too large): the folder is the user's, and root reads only what
/// it should.
fn digest(dir: &SecureDir, name: &str) -> Option<Option<String>> {
    match dir.read_file(name, FILE_MAX) {
        Ok(Some(bytes)) => Some(Some(fingerprint(&bytes))),
        Ok(None) => Some(None),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// A home folder with a database in `.pki/nssdb`, and a folder outside it with files of
    /// the same names (what a link could lead root to).
    struct Home {
        home: tempfile::TempDir,
        place: Place,
    }

    fn database() -> Home {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".pki/nssdb");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert9.db"), b"certificates").unwrap();
        std::fs::write(dir.join("key4.db"), b"keys").unwrap();
        let place = Place::new(home.path(), ".pki/nssdb");
        Home { home, place }
    }

    impl Home {
        fn dir(&self) -> PathBuf {
            self.place.path()
        }

        /// A folder outside the database holding `cert9.db` and `key4.db` of its own.
        fn elsewhere(&self) -> PathBuf {
            let other = self.home.path().join("elsewhere");
            std::fs::create_dir_all(&other).unwrap();
            std::fs::write(other.join("cert9.db"), b"root's secret").unwrap();
            std::fs::write(other.join("key4.db"), b"root's other secret").unwrap();
            other
        }

        /// Puts a link to `target` where `rel` (below the home) is.
        fn link(&self, rel: &str, target: &Path) {
            let path = self.home.path().join(rel);
            std::fs::rename(&path, self.home.path().join(format!("{rel}.moved"))).unwrap();
            symlink(target, &path).unwrap();
        }
    }

    /// A FIFO at `path` with `mode`, as `mkfifo` makes it.
    fn make_fifo(path: &std::path::Path, mode: libc::mode_t) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
        let made = unsafe { libc::mkfifo(c_path.as_ptr(), mode) };
        assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
    }

    #[test]
    fn holds_while_nothing_changed() {
        let db = database();
        let vouch = Vouch::now(&db.place, b"cert").unwrap();
        assert!(vouch.holds(&db.place, b"cert"));
        // It survives being written and read back, as the state folder keeps it.
        let json = serde_json::to_vec(&vouch).unwrap();
        let back: Vouch = serde_json::from_slice(&json).unwrap();
        assert!(back.holds(&db.place, b"cert"));
    }

    #[test]
    fn not_for_another_certificate_or_database() {
        let db = database();
        let other = database();
        let vouch = Vouch::now(&db.place, b"cert").unwrap();
        assert!(!vouch.holds(&db.place, b"other cert"));
        assert!(!vouch.holds(&other.place, b"cert"));
    }

    #[test]
    fn a_change_of_one_byte_in_either_file_ends_it() {
        for name in ["cert9.db", "key4.db"] {
            let db = database();
            let vouch = Vouch::now(&db.place, b"cert").unwrap();
            let path = db.dir().join(name);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[0] ^= 1;
            std::fs::write(&path, bytes).unwrap();
            assert!(!vouch.holds(&db.place, b"cert"), "{name}");
        }
    }

    #[test]
    fn a_write_ahead_log_appearing_ends_it() {
        let db = database();
        let vouch = Vouch::now(&db.place, b"cert").unwrap();
        std::fs::write(db.dir().join("key4.db-wal"), b"pending").unwrap();
        assert!(!vouch.holds(&db.place, b"cert"));
    }

    #[test]
    fn a_link_in_place_of_a_file_is_not_read() {
        let db = database();
        let vouch = Vouch::now(&db.place, b"cert").unwrap();
        let elsewhere = db.elsewhere();
        db.link(".pki/nssdb/key4.db", &elsewhere.join("key4.db"));
        assert!(Vouch::now(&db.place, b"cert").is_none());
        assert!(!vouch.holds(&db.place, b"cert"));
    }

    #[test]
    fn a_link_at_either_folder_on_the_way_is_not_followed() {
        for rel in [".pki", ".pki/nssdb"] {
            let db = database();
            let vouch = Vouch::now(&db.place, b"cert").unwrap();
            let elsewhere = db.elsewhere();
            let target = if rel == ".pki" {
                // A `.pki` of the attacker's making whose `nssdb` is the folder of secrets.
                let fake = db.home.path().join("fake-pki");
                std::fs::create_dir_all(&fake).unwrap();
                symlink(&elsewhere, fake.join("nssdb")).unwrap();
                fake
            } else {
                elsewhere.clone()
            };
            db.link(rel, &target);
            assert!(Vouch::now(&db.place, b"cert").is_none(), "{rel}");
            assert!(!vouch.holds(&db.place, b"cert"), "{rel}");
        }
    }

    #[test]
    fn a_fifo_or_a_hard_link_is_not_read() {
        let db = database();
        let cert = db.dir().join("cert9.db");
        std::fs::remove_file(&cert).unwrap();
        make_fifo(&cert, 0o600);
        // Opened without waiting for a writer, then refused.
        assert!(Vouch::now(&db.place, b"cert").is_none());
        std::fs::remove_file(&cert).unwrap();
        std::fs::hard_link(db.elsewhere().join("cert9.db"), &cert).unwrap();
        assert!(Vouch::now(&db.place, b"cert").is_none());
    }

    #[test]
    fn nothing_is_vouched_for_without_a_database() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".pki/nssdb")).unwrap();
        let place = Place::new(home.path(), ".pki/nssdb");
        let vouch = Vouch::now(&place, b"cert").unwrap();
        assert!(!vouch.holds(&place, b"cert"));
    }
}
