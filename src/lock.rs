//! One run at a time per user: an advisory lock on a file in the state directory.
//!
//! The daily job, a Jamf policy and an admin at a terminal may start together; without the lock
//! two renewals could interleave and leave the store with a key Okta no longer knows.

use crate::fsutil;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another devicetrust run holds {path}; gave up after {waited}s (try again later)")]
    Busy { path: PathBuf, waited: u64 },
    #[error("cannot open the lock file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// Held for the life of the value; the OS releases it if the process dies.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock, waiting at most `timeout` for another run to finish.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<RunLock, LockError> {
        let io = |e: std::io::Error| LockError::Io {
            path: path.to_owned(),
            reason: crate::fsutil::io_reason(&e),
        };
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                fsutil::create_private_dir(parent).map_err(io)?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { _file: file }),
                Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    // A renewal takes seconds; polling a few times a second is plenty.
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Busy {
                        path: path.to_owned(),
                        waited: start.elapsed().as_secs(),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
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
        let path = dir.path().join("state/lock");
        let first = RunLock::acquire(&path, Duration::ZERO).unwrap();
        let second = RunLock::acquire(&path, Duration::ZERO);
        assert!(matches!(second, Err(LockError::Busy { .. })), "{second:?}");
        drop(first);
        RunLock::acquire(&path, Duration::ZERO).unwrap();
    }
}
