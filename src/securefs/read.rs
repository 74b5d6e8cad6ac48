//! Bounded reads: of files the admin names, of standard input, and the shared reading loop.

use super::{io_error, kind_name, Result, SecureFsError, READ_FLAGS};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{FileType, Mode, Stat};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Reads a file the admin names (org token, SCEP challenge, CA PEM, configuration), following
/// links, refusing anything but a regular file and anything over `max_bytes`. `what` names the
/// file in messages, e.g. "the org token file".
pub fn read_capped(
    path: impl AsRef<Path>,
    max_bytes: u64,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let path = path.as_ref();
    let (fd, stat) = open_regular(path, what)?;
    read_fd(fd, &stat, path, max_bytes, what)
}

/// Opens `path` as the OS resolves it and refuses anything but a regular file.
fn open_regular(path: &Path, what: &'static str) -> Result<(OwnedFd, Stat)> {
    let fd = rustix::fs::open(path, READ_FLAGS, Mode::empty())
        .map_err(|e| io_error("open", what, path, e))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| io_error("inspect", what, path, e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(SecureFsError::NotRegular {
            what,
            path: path.to_owned(),
            kind: kind_name(&stat),
        });
    }
    Ok((fd, stat))
}

/// Reads a file whose content a root run trusts (the configuration, the org token, the
/// SCEP challenge, extra CA anchors) as [`read_capped`] does; as root, the file read must be
/// root's and writable by root alone. The check is on the descriptor read from, so a name
/// swapped meanwhile changes nothing: nobody else can make a file of root's.
pub fn read_trusted(
    path: impl AsRef<Path>,
    max_bytes: u64,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let path = path.as_ref();
    let (fd, stat) = open_regular(path, what)?;
    if super::running_as_root() && !super::Metadata::from_stat(&stat).is_roots_alone() {
        return Err(SecureFsError::NotRootsAlone {
            path: path.to_owned(),
        });
    }
    read_fd(fd, &stat, path, max_bytes, what)
}

/// Reads standard input (`--org-token-file -`) up to `max_bytes`; more is an error.
pub fn read_capped_stdin(max_bytes: u64) -> Result<Zeroizing<Vec<u8>>> {
    // Read through a duplicate of descriptor 0 rather than `Stdin`, whose buffer would keep a
    // copy of the secret that is never zeroed. Nothing else in the process reads stdin.
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| SecureFsError::Stdin { source })?;
    match read_bounded(&mut File::from(fd), max_bytes, 0) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(SecureFsError::StdinTooLarge { max: max_bytes }),
        Err(source) => Err(SecureFsError::Stdin { source }),
    }
}

pub(super) fn read_fd(
    fd: OwnedFd,
    stat: &Stat,
    path: &Path,
    max: u64,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let too_large = || SecureFsError::TooLarge {
        what,
        path: path.to_owned(),
        max,
    };
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > max {
        return Err(too_large());
    }
    // The size is a hint only: the file may grow while it is read, and the cap still holds.
    match read_bounded(&mut File::from(fd), max, size) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(too_large()),
        Err(source) => Err(SecureFsError::Io {
            action: "read",
            what,
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads to the end, but never more than `max + 1` bytes (one more than allowed tells "too
/// large" from "exactly at the cap"): `Ok(None)` when there was more than `max`. Outgrown
/// buffers are zeroed, so a secret leaves no copy behind.
pub(super) fn read_bounded(
    reader: &mut impl Read,
    max: u64,
    size_hint: u64,
) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let limit = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    let first = usize::try_from(size_hint.saturating_add(1))
        .unwrap_or(usize::MAX)
        .max(8192)
        .min(limit);
    let mut buf = Zeroizing::new(vec![0u8; first]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len >= limit {
                return Ok(None);
            }
            let mut bigger = Zeroizing::new(vec![0u8; len.saturating_mul(2).min(limit)]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(Some(buf))
}
