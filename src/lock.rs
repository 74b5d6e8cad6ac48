//! One run at a time per user: an advisory lock on a file in the state directory.
//!
//! The daily job, a Jamf policy and an admin at a terminal may start together; without the lock
//! two renewals could interleave and leave the store with a key Okta no longer knows. The lock
//! file sits in the user's home, so it is reached without following links and never opened
//! through one.

use crate::securefs::{Place, SecureFsError};
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another devicetrust run holds {}; gave up after {waited}s (try again later)", path.display())]
    Busy { path: PathBuf, waited: u64 },
    #[error("cannot take the run lock: {0}")]
    Fs(#[source] SecureFsError),
}

/// Held for the life of the value; the OS releases it if the process dies.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock on the file `name` in `dir` (created 0700, and the file 0600, for the
    /// owner of the home), waiting at most `timeout` for another run to finish.
    pub fn acquire(dir: &Place, name: &str, timeout: Duration) -> Result<RunLock, LockError> {
        let folder = dir.create(0o700).map_err(LockError::Fs)?;
        let owner = dir.owner().map_err(LockError::Fs)?;
        let start = Instant::now();
        loop {
            match folder.try_lock_file(name, Some(owner)) {
                Ok(Some(file)) => return Ok(RunLock { _file: file }),
                Ok(None) if start.elapsed() < timeout => {
                    // A renewal takes seconds; polling a few times a second is plenty.
                    std::thread::sleep(Duration::from_millis(200));
                }
                Ok(None) => {
                    return Err(LockError::Busy {
                        path: folder.path().join(name),
                        waited: start.elapsed().as_secs(),
                    })
                }
                Err(e) => return Err(LockError::Fs(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let place = Place::new(dir.path(), "state");
        let first = RunLock::acquire(&place, "lock", Duration::ZERO).unwrap();
        let second = RunLock::acquire(&place, "lock", Duration::ZERO);
        assert!(matches!(second, Err(LockError::Busy { .. })), "{second:?}");
        drop(first);
        RunLock::acquire(&place, "lock", Duration::ZERO).unwrap();
    }

    #[test]
    fn a_link_at_the_lock_or_its_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        std::os::unix::fs::symlink(outside.join("lock"), dir.path().join("state/lock")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.path().join("linked")).unwrap();
        for place in ["state", "linked"] {
            let err = RunLock::acquire(&Place::new(dir.path(), place), "lock", Duration::ZERO)
                .unwrap_err();
            assert!(err.to_string().contains("is a symbolic link"), "{err}");
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
