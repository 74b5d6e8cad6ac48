//! File access for a root process inside a tree that a user controls, and bounded reads of the
//! files an admin names.
//!
//! **Threat model.** devicetrust runs as root (Jamf policies) but keeps its state, identity, run
//! lock and renewal job in the console user's home, where that user may rename, replace or turn
//! any entry into a symbolic link at any moment, also while a run is working there. A link
//! followed by root turns "write my state file" into "write any file on the machine". So a path
//! in a user's home is never handed to the kernel whole: a [`SecureDir`] is an open directory
//! handle, each step below it opens *one* component with `O_NOFOLLOW`, and every change is made
//! relative to a handle (`mkdirat`, `renameat`, `unlinkat`) or on a file descriptor this process
//! opened itself (`fchmod`, `fchown`), never by name after a check, which would be a race. New
//! files appear under unpredictable temporary names created exclusively, and what root creates
//! is given to the user whose home it is. Hard-linked files are refused for reading: a user may
//! hard-link a file they cannot read (macOS has no `protected_hardlinks`). A [`Place`] names a
//! folder as a trusted base (the root prefix, the home folder) plus a path walked this way, so
//! callers say where their folder is once and every run walks to it afresh.
//!
//! Files the *admin* names (the org token, the SCEP challenge, CA bundles, the configuration)
//! sit outside the user's reach, so [`read_capped`] follows links as the OS does; it accepts
//! regular files only and stops at a cap, so that `/dev/zero` cannot exhaust memory and a FIFO
//! cannot hang a run.
//!
//! Unix only (Linux and macOS).

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode, Stat};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

mod dir;
mod place;
mod read;
#[cfg(test)]
mod tests;

pub use dir::SecureDir;
pub use place::Place;
pub use read::{read_capped, read_capped_stdin, read_trusted};

/// Cap for a secret read from a file or standard input (org token, SCEP challenge).
pub const SECRET_MAX: u64 = 4 * 1024;
/// Cap for a document (the configuration file, a CA PEM bundle, state, job files).
pub const DOCUMENT_MAX: u64 = 1024 * 1024;

/// How deep [`SecureDir::remove_tree`] descends. The agent's own trees are two levels deep; the
/// limit stops a user-made chain of thousands of folders from exhausting descriptors or stack.
const MAX_DEPTH: usize = 32;
/// Temporary files are `.<name>.tmp-<32 hex digits>`; the name never ends in the target's
/// extension, so a directory scanner (Chrome reads `*.json`) never picks up a half-written file.
const TEMP_MARKER: &str = ".tmp-";

/// One directory component below a handle. `NOFOLLOW` refuses a link at this component (the
/// walk does this at every component, so no link anywhere is followed); `NONBLOCK` makes sure a
/// FIFO planted where a folder is expected cannot hang the open.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK);
/// Reading a file: a FIFO opens at once instead of waiting for a writer (and is then refused by
/// `fstat`); `NOCTTY` keeps a terminal from becoming root's controlling terminal.
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

pub type Result<T, E = SecureFsError> = std::result::Result<T, E>;

/// What went wrong, as one line suitable after `ERROR: ` (control characters in names that came
/// from a user's home are escaped, so a crafted name cannot forge further lines).
#[derive(Debug, thiserror::Error)]
pub enum SecureFsError {
    #[error(
        "{} is a symbolic link; devicetrust does not follow links in a user's home",
        Shown(path)
    )]
    Symlink { path: PathBuf },
    #[error("{} is {kind}, not a directory", Shown(path))]
    NotDirectory { path: PathBuf, kind: &'static str },
    #[error("{} is a directory, where a file was expected", Shown(path))]
    IsDirectory { path: PathBuf },
    #[error("{} is {kind}, not a symbolic link", Shown(path))]
    NotSymlink { path: PathBuf, kind: &'static str },
    #[error("{what} {} is {kind}, not a regular file", Shown(path))]
    NotRegular {
        what: &'static str,
        path: PathBuf,
        kind: &'static str,
    },
    #[error(
        "{} has other hard links; devicetrust does not use hard-linked files in a user's home",
        Shown(path)
    )]
    HardLinked { path: PathBuf },
    /// A private file whose owner is not its folder's: a file another user (root included)
    /// owns, linked or moved into a user's folder, is as planted as a link.
    #[error(
        "{} belongs to another user than its folder; devicetrust does not use such a file in \
         a user's home",
        Shown(path)
    )]
    OtherOwner { path: PathBuf },
    #[error("{what} {} is larger than {max} bytes", Shown(path))]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        max: u64,
    },
    #[error("standard input holds more than {max} bytes")]
    StdinTooLarge { max: u64 },
    #[error(
        "{} is nested more than {MAX_DEPTH} folders deep; not removing it",
        Shown(path)
    )]
    TooDeep { path: PathBuf },
    #[error(
        "{} is not root's alone (another owner, or writable by others); devicetrust does not \
         take settings from it",
        Shown(path)
    )]
    NotRootsAlone { path: PathBuf },
    #[error("refusing {}: {reason}", Shown(path))]
    BadName { path: PathBuf, reason: &'static str },
    #[error("cannot {action} {what} {}: {source}", Shown(path))]
    Io {
        action: &'static str,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read standard input: {source}")]
    Stdin {
        #[source]
        source: std::io::Error,
    },
}

impl SecureFsError {
    /// True when the error only says that something does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SecureFsError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// True when something was planted where the agent expects its own file or folder: a
    /// symbolic link, or a file with other hard links. Not a fault to work around but a run to
    /// stop: the caller reports it as the run's error.
    pub fn is_planted(&self) -> bool {
        matches!(
            self,
            SecureFsError::Symlink { .. }
                | SecureFsError::HardLinked { .. }
                | SecureFsError::OtherOwner { .. }
        )
    }
}

/// The first planted link or hard link ([`SecureFsError::is_planted`]) among `error` and its
/// sources, however deep the wrapping.
pub fn planted_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a SecureFsError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(fs) = e.downcast_ref::<SecureFsError>() {
            if fs.is_planted() {
                return Some(fs);
            }
        }
        current = e.source();
    }
    None
}

/// The name a temporary file of [`SecureDir::write_file_atomic`] stands in for, if `name` is
/// one (`.<name>.tmp-<32 hex digits>`): what an interrupted write leaves behind, for the owner
/// of the folder to sweep.
pub fn temp_target(name: &OsStr) -> Option<&OsStr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    let rest = bytes.strip_prefix(b".")?;
    let (target, random) = rest.split_at(rest.len().checked_sub(TEMP_MARKER.len() + 32)?);
    let digits = random.strip_prefix(TEMP_MARKER.as_bytes())?;
    let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (!target.is_empty() && digits.iter().all(lower_hex)).then(|| OsStr::from_bytes(target))
}

/// A path for a message: lossy UTF-8 with control characters escaped.
struct Shown<'a>(&'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.to_string_lossy().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

fn io_error(action: &'static str, what: &'static str, path: &Path, e: Errno) -> SecureFsError {
    SecureFsError::Io {
        action,
        what,
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Who should own what root creates: the user whose home it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The owner of an open directory. The owner of a home folder is the user whose home it is,
    /// also under a test root where no such user exists in the password database.
    pub fn of_dir(dir: &SecureDir) -> Result<Owner> {
        let stat = rustix::fs::fstat(&dir.fd)
            .map_err(|e| io_error("inspect", "the directory", dir.path(), e))?;
        Ok(Owner {
            uid: stat.st_uid,
            gid: stat.st_gid,
        })
    }
}

/// How [`SecureDir::open_dir`] creates missing folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Create {
    /// Exact permission bits (the umask does not apply); e.g. `0o700`.
    pub mode: u32,
    /// Given the new folders when the process runs as root; otherwise they are the caller's.
    pub owner: Option<Owner>,
}

/// The type of an entry as `lstat` sees it (a link is a link, whatever it points to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl FileKind {
    fn of(file_type: FileType) -> FileKind {
        match file_type {
            FileType::RegularFile => FileKind::File,
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }
}

/// One entry of [`SecureDir::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub kind: FileKind,
}

/// What [`SecureDir::metadata`] reports about an entry (never about a link's target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    pub kind: FileKind,
    /// Permission bits (`0o777` and the set-id and sticky bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub len: u64,
}

impl Metadata {
    /// Owned by root, and writable by root alone (no write permission for group or others).
    pub fn is_roots_alone(&self) -> bool {
        self.uid == 0 && self.mode & 0o022 == 0
    }

    /// Owned by root, and no access at all for group or others: what a folder root has just
    /// made with `0700` still is, and what a folder a user swapped in under its name is not.
    pub fn is_private_to_root(&self) -> bool {
        self.uid == 0 && self.mode & 0o077 == 0
    }

    // `st_mode` is 16 bits on macOS: the conversion is only useless on Linux.
    #[allow(clippy::useless_conversion)]
    fn from_stat(stat: &Stat) -> Metadata {
        Metadata {
            kind: FileKind::of(FileType::from_raw_mode(stat.st_mode)),
            mode: u32::from(stat.st_mode) & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
            len: u64::try_from(stat.st_size).unwrap_or(0),
        }
    }
}

fn kind_name(stat: &Stat) -> &'static str {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Permission bits only: a set-id or sticky bit never goes into a user's home, and `0o777` fits
/// every platform's `mode_t` (16 bits on macOS).
fn mode_bits(mode: u32) -> Mode {
    Mode::from_bits_truncate(RawMode::try_from(mode & 0o777).unwrap_or(0))
}

/// Gives a file or folder this process has just created its owner and exact mode. By
/// descriptor, never by name: a name may point elsewhere by the time a second call looks it up.
/// Ownership first, because `chown` may clear mode bits.
fn adopt(fd: BorrowedFd<'_>, mode: u32, owner: Option<Owner>) -> rustix::io::Result<()> {
    if let Some(owner) = owner.filter(|_| running_as_root()) {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(owner.uid)),
            Some(rustix::fs::Gid::from_raw(owner.gid)),
        )?;
    }
    rustix::fs::fchmod(fd, mode_bits(mode))
}

/// What an operation expects to find at a name, for [`explain`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Dir,
    /// A regular file.
    File,
    /// Anything to unlink: a file, link, FIFO or socket.
    NotDir,
}

/// Turns a failed open or removal into the error that says what is really there: a link, a
/// folder where a file was expected, and so on. The `lstat` is for the message only; nothing
/// is decided on it.
fn explain(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    errno: Errno,
    (action, what, expect): (&'static str, &'static str, Expect),
) -> SecureFsError {
    if errno != Errno::NOENT {
        if let Ok(stat) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            let path = path.to_owned();
            let kind = kind_name(&stat);
            match (FileType::from_raw_mode(stat.st_mode), expect) {
                (FileType::Directory, Expect::File | Expect::NotDir) => {
                    return SecureFsError::IsDirectory { path }
                }
                (_, Expect::NotDir) => {}
                (FileType::Symlink, _) => return SecureFsError::Symlink { path },
                (FileType::Directory, Expect::Dir) | (FileType::RegularFile, Expect::File) => {}
                (_, Expect::Dir) => return SecureFsError::NotDirectory { path, kind },
                (_, Expect::File) => return SecureFsError::NotRegular { what, path, kind },
            }
        }
    }
    io_error(action, what, path, errno)
}

/// A regular file with no other hard link, or the error saying why not.
// `st_nlink` is 16 bits on macOS: the conversion is only useless on 64-bit Linux.
#[allow(clippy::useless_conversion)]
fn check_private_file(fd: &OwnedFd, path: &Path, what: &'static str) -> Result<Stat> {
    let stat = rustix::fs::fstat(fd).map_err(|e| io_error("inspect", what, path, e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(SecureFsError::NotRegular {
            what,
            path: path.to_owned(),
            kind: kind_name(&stat),
        });
    }
    if u64::from(stat.st_nlink) > 1 {
        return Err(SecureFsError::HardLinked {
            path: path.to_owned(),
        });
    }
    Ok(stat)
}
