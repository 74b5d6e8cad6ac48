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
//! hard-link a file they cannot read (macOS has no `protected_hardlinks`).
//!
//! Files the *admin* names (the org token, the SCEP challenge, CA bundles, the configuration)
//! sit outside the user's reach, so [`read_capped`] follows links as the OS does; it accepts
//! regular files only and stops at a cap, so that `/dev/zero` cannot exhaust memory and a FIFO
//! cannot hang a run.
//!
//! Unix only (Linux and macOS).

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawMode, Stat};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use zeroize::Zeroizing;

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
            .map_err(|e| io_error("inspect", "the directory", &dir.path, e))?;
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
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
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

/// An open directory, the starting point of every operation below it, with its path for
/// messages. Operations take single names (no `/`, not `.` or `..`); [`SecureDir::open_dir`]
/// walks deeper.
#[derive(Debug)]
pub struct SecureDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl SecureDir {
    /// Opens a directory the admin controls (`/`, the `--root` prefix, or a home folder itself,
    /// whose entry lives in root-owned `/home` or `/Users`), following links as the OS does.
    pub fn open_trusted(path: impl AsRef<Path>) -> Result<SecureDir> {
        let path = path.as_ref();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::open(path, flags, Mode::empty())
            .map_err(|e| io_error("open", "the directory", path, e))?;
        Ok(SecureDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The path this directory was reached by, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the folder `rel` below this one, one component at a time, refusing any component
    /// that is a link or not a folder (and creating nothing beyond it). `canonicalize` and a
    /// later open by path would not do: the user can swap a component between the two, whereas
    /// each `openat` here is bound to the folder the previous one opened.
    ///
    /// With `create`, missing folders are made with its exact mode and owner; folders that
    /// exist are left as they are. `..` and absolute paths are refused.
    pub fn open_dir(&self, rel: impl AsRef<Path>, create: Option<Create>) -> Result<SecureDir> {
        let rel = rel.as_ref();
        let mut path = self.path.clone();
        let mut current: Option<OwnedFd> = None;
        for component in rel.components() {
            let name = match component {
                Component::Normal(name) => name,
                Component::CurDir => continue,
                Component::ParentDir => {
                    return Err(SecureFsError::BadName {
                        path: self.path.join(rel),
                        reason: "a path inside a user's home may not contain `..`",
                    })
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(SecureFsError::BadName {
                        path: rel.to_owned(),
                        reason: "expected a path relative to an open directory",
                    })
                }
            };
            path.push(name);
            let parent = current.as_ref().map_or(self.fd.as_fd(), |fd| fd.as_fd());
            current = Some(open_or_create_dir(parent, name, &path, create)?);
        }
        let fd = match current {
            Some(fd) => fd,
            None => self.fd.try_clone().map_err(|source| SecureFsError::Io {
                action: "open",
                what: "the directory",
                path: path.clone(),
                source,
            })?,
        };
        Ok(SecureDir { fd, path })
    }

    fn name<'a>(&self, name: &'a OsStr) -> Result<&'a OsStr> {
        let reason = if name.is_empty() {
            "an empty name"
        } else if name == "." || name == ".." {
            "`.` and `..` are not names of entries"
        } else if name.as_bytes().contains(&b'/') {
            "expected a single name, without `/`"
        } else if name.as_bytes().contains(&0) {
            "a name may not contain a NUL byte"
        } else {
            return Ok(name);
        };
        Err(SecureFsError::BadName {
            path: self.path.join(name),
            reason,
        })
    }

    /// Reads the regular file `name` (not a link, FIFO, device or socket, not hard-linked),
    /// at most `max_bytes` of it; `Ok(None)` when there is no such entry.
    pub fn read_file(
        &self,
        name: impl AsRef<OsStr>,
        max_bytes: u64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let name = self.name(name.as_ref())?;
        let path = self.path.join(name);
        let what = "the file";
        let flags = READ_FLAGS | OFlags::NOFOLLOW;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => {
                return Err(explain(
                    self.fd.as_fd(),
                    name,
                    &path,
                    e,
                    ("open", what, Expect::File),
                ))
            }
        };
        let stat = check_private_file(&fd, &path, what)?;
        read_fd(fd, &stat, &path, max_bytes, what).map(Some)
    }

    /// Replaces `name` with `bytes` atomically: a reader sees the old file or the new one.
    ///
    /// The new file is created exclusively under an unpredictable name in this directory, so
    /// nothing planted can be opened in its place; it gets exactly `mode` and (as root) `owner`,
    /// is synced, and is renamed over `name`. A link at `name` is replaced, never followed. On
    /// failure the temporary file is removed.
    pub fn write_file_atomic(
        &self,
        name: impl AsRef<OsStr>,
        bytes: &[u8],
        mode: u32,
        owner: Option<Owner>,
    ) -> Result<()> {
        let name = self.name(name.as_ref())?;
        let path = self.path.join(name);
        let what = "the file";
        let (temp, fd) = self.create_temp(name, &path)?;
        let mut renamed = false;
        let result = (|| -> std::io::Result<()> {
            adopt(fd.as_fd(), mode, owner)?;
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            // std uses F_FULLFSYNC on macOS, which a plain fsync is not.
            file.sync_all()?;
            drop(file);
            rustix::fs::renameat(&self.fd, &temp, &self.fd, name)?;
            renamed = true;
            rustix::fs::fsync(&self.fd)?;
            Ok(())
        })();
        result.map_err(|source| {
            if !renamed {
                let _ = rustix::fs::unlinkat(&self.fd, &temp, AtFlags::empty());
            }
            SecureFsError::Io {
                action: "write",
                what,
                path,
                source,
            }
        })
    }

    fn create_temp(&self, name: &OsStr, path: &Path) -> Result<(OsString, OwnedFd)> {
        let flags = OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::EXCL
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY;
        let mut last = Errno::EXIST;
        // 128 random bits: a collision means someone is planting names; try a few fresh ones.
        for _ in 0..4 {
            let mut random = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
            let mut temp = b".".to_vec();
            temp.extend_from_slice(name.as_bytes());
            temp.extend_from_slice(TEMP_MARKER.as_bytes());
            temp.extend_from_slice(crate::fsutil::hex(&random).as_bytes());
            let temp = OsString::from_vec(temp);
            // 0600 until `adopt` sets the final mode, so the content is never briefly readable.
            match rustix::fs::openat(&self.fd, &temp, flags, Mode::from_bits_truncate(0o600)) {
                Ok(fd) => {
                    #[cfg(test)]
                    tests::record_temp(&temp);
                    return Ok((temp, fd));
                }
                Err(Errno::EXIST) => last = Errno::EXIST,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(io_error(
            "create a temporary file for",
            "the file",
            path,
            last,
        ))
    }

    /// Removes the entry `name` if it is not a directory (a link goes, its target stays);
    /// `Ok(false)` when there was none.
    pub fn remove_file(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = self.name(name.as_ref())?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(explain(
                self.fd.as_fd(),
                name,
                &self.path.join(name),
                e,
                ("remove", "the file", Expect::NotDir),
            )),
        }
    }

    /// Removes the empty folder `name`; `Ok(false)` when there was none.
    pub fn remove_empty_dir(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = self.name(name.as_ref())?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(explain(
                self.fd.as_fd(),
                name,
                &self.path.join(name),
                e,
                ("remove", "the directory", Expect::Dir),
            )),
        }
    }

    /// Removes `name` and, if it is a folder, everything in it, without following links: a
    /// link, here or anywhere below, is removed itself and what it points to is left alone.
    /// `Ok(false)` when there was nothing.
    pub fn remove_tree(&self, name: impl AsRef<OsStr>) -> Result<bool> {
        let name = self.name(name.as_ref())?;
        remove_tree_at(self.fd.as_fd(), name, &self.path.join(name), 0)
    }

    /// The entries of this directory (without `.` and `..`), sorted by name, each with its
    /// type as `lstat` sees it.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        list(self.fd.as_fd(), &self.path)
    }

    /// What `lstat` says about `name`; `Ok(None)` when there is no such entry.
    pub fn metadata(&self, name: impl AsRef<OsStr>) -> Result<Option<Metadata>> {
        let name = self.name(name.as_ref())?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(Metadata::from_stat(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_error("inspect", "the entry", &self.path.join(name), e)),
        }
    }

    /// Creates the link `name` pointing to `target` (which is stored, not resolved). The link
    /// stays owned by this process: changing a link's owner means `lchown` by name, and the
    /// name may be something else by then; the user, owning the folder, may still remove it.
    pub fn symlink(&self, target: impl AsRef<Path>, name: impl AsRef<OsStr>) -> Result<()> {
        let name = self.name(name.as_ref())?;
        rustix::fs::symlinkat(target.as_ref(), &self.fd, name)
            .map_err(|e| io_error("create", "the link", &self.path.join(name), e))
    }

    /// Where the link `name` points; `Ok(None)` when there is no such entry.
    pub fn read_link(&self, name: impl AsRef<OsStr>) -> Result<Option<PathBuf>> {
        let name = self.name(name.as_ref())?;
        let path = self.path.join(name);
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(target) => Ok(Some(PathBuf::from(OsString::from_vec(target.into_bytes())))),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::INVAL) => {
                let kind = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|stat| kind_name(&stat))
                    .unwrap_or("something else");
                Err(SecureFsError::NotSymlink { path, kind })
            }
            Err(e) => Err(io_error("read", "the link", &path, e)),
        }
    }

    /// Renames the entry `from` to `to` within this directory, replacing a file or link (never
    /// followed) or an empty folder at `to`.
    pub fn rename(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        let from = self.name(from.as_ref())?;
        let to = self.name(to.as_ref())?;
        rustix::fs::renameat(&self.fd, from, &self.fd, to)
            .and_then(|()| rustix::fs::fsync(&self.fd))
            .map_err(|e| io_error("rename", "the entry", &self.path.join(from), e))
    }

    /// Opens (creating it `0o600` and, as root, giving it to `owner` if missing) the lock file
    /// `name` and takes an exclusive advisory lock on it without waiting: `Ok(None)` when
    /// another process holds it. The lock lasts as long as the returned file is open.
    pub fn try_lock_file(
        &self,
        name: impl AsRef<OsStr>,
        owner: Option<Owner>,
    ) -> Result<Option<File>> {
        let name = self.name(name.as_ref())?;
        let path = self.path.join(name);
        let what = "the lock file";
        let base = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
        let create = base | OFlags::CREATE | OFlags::EXCL;
        // Created exclusively, so ours to give away; an existing one is opened as it is.
        let fd = match rustix::fs::openat(&self.fd, name, create, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => {
                adopt(fd.as_fd(), 0o600, owner).map_err(|e| io_error("create", what, &path, e))?;
                fd
            }
            Err(Errno::EXIST) => {
                rustix::fs::openat(&self.fd, name, base | OFlags::NONBLOCK, Mode::empty()).map_err(
                    |e| {
                        explain(
                            self.fd.as_fd(),
                            name,
                            &path,
                            e,
                            ("open", what, Expect::File),
                        )
                    },
                )?
            }
            Err(e) => {
                return Err(explain(
                    self.fd.as_fd(),
                    name,
                    &path,
                    e,
                    ("create", what, Expect::File),
                ))
            }
        };
        check_private_file(&fd, &path, what)?;
        let file = File::from(fd);
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(SecureFsError::Io {
                action: "lock",
                what,
                path,
                source,
            }),
        }
    }
}

/// One step of [`SecureDir::open_dir`].
fn open_or_create_dir(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    create: Option<Create>,
) -> Result<OwnedFd> {
    let what = "the directory";
    // A second round covers a folder that appears between a failed open and our `mkdirat`.
    for _ in 0..2 {
        let errno = match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(e) => e,
        };
        let Some(create) = create.filter(|_| errno == Errno::NOENT) else {
            return Err(explain(
                parent,
                name,
                path,
                errno,
                ("open", what, Expect::Dir),
            ));
        };
        match rustix::fs::mkdirat(parent, name, mode_bits(create.mode)) {
            Ok(()) => {}
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(io_error("create", what, path, e)),
        }
        // Opened again with NOFOLLOW: whatever was swapped in since `mkdirat` is refused or,
        // being a folder the user could move here, is theirs anyway.
        let fd = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| explain(parent, name, path, e, ("open", what, Expect::Dir)))?;
        adopt(fd.as_fd(), create.mode, create.owner)
            .and_then(|()| rustix::fs::fsync(parent))
            .map_err(|e| io_error("create", what, path, e))?;
        return Ok(fd);
    }
    Err(io_error("create", what, path, Errno::EXIST))
}

fn list(fd: BorrowedFd<'_>, path: &Path) -> Result<Vec<Entry>> {
    let err = |e| io_error("list", "the directory", path, e);
    let dir = rustix::fs::Dir::read_from(fd).map_err(err)?;
    let mut entries = Vec::new();
    for entry in dir {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsString::from_vec(name.to_vec());
        // Some file systems do not report the type while listing; ask `lstat` then.
        let kind = match entry.file_type() {
            FileType::Unknown => {
                match rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => FileKind::of(FileType::from_raw_mode(stat.st_mode)),
                    // Gone since it was listed.
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(io_error("inspect", "the entry", &path.join(&name), e)),
                }
            }
            file_type => FileKind::of(file_type),
        };
        entries.push(Entry { name, kind });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr, path: &Path, depth: usize) -> Result<bool> {
    // Opening as a folder without following is the test of what `name` is: a listing's type or
    // an `lstat` could be stale by the time we act on it.
    let dir = match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(dir) => dir,
        Err(Errno::NOENT) => return Ok(false),
        // Not a folder (a file, a FIFO, or a link to anything): the name itself goes.
        Err(Errno::NOTDIR | Errno::LOOP | Errno::MLINK) => {
            return match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
                Ok(()) => Ok(true),
                Err(Errno::NOENT) => Ok(false),
                Err(e) => Err(explain(
                    parent,
                    name,
                    path,
                    e,
                    ("remove", "the entry", Expect::NotDir),
                )),
            };
        }
        Err(e) => return Err(io_error("open", "the directory", path, e)),
    };
    if depth >= MAX_DEPTH {
        return Err(SecureFsError::TooDeep {
            path: path.to_owned(),
        });
    }
    for entry in list(dir.as_fd(), path)? {
        remove_tree_at(dir.as_fd(), &entry.name, &path.join(&entry.name), depth + 1)?;
    }
    drop(dir);
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(e) => Err(io_error("remove", "the directory", path, e)),
    }
}

/// Reads a file the admin names (org token, SCEP challenge, CA PEM, configuration), following
/// links, refusing anything but a regular file and anything over `max_bytes`. `what` names the
/// file in messages, e.g. "the org token file".
pub fn read_capped(
    path: impl AsRef<Path>,
    max_bytes: u64,
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>> {
    let path = path.as_ref();
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
    read_fd(fd, &stat, path, max_bytes, what)
}

/// Reads standard input (`--org-token-file -`) up to `max_bytes`; more is an error.
pub fn read_capped_stdin(max_bytes: u64) -> Result<Zeroizing<Vec<u8>>> {
    match read_bounded(&mut std::io::stdin().lock(), max_bytes, 0) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(SecureFsError::StdinTooLarge { max: max_bytes }),
        Err(source) => Err(SecureFsError::Stdin { source }),
    }
}

fn read_fd(
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
fn read_bounded(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        static TEMPS: RefCell<Vec<OsString>> = const { RefCell::new(Vec::new()) };
    }

    /// Remembers the temporary names this thread's writes used.
    pub(super) fn record_temp(name: &OsStr) {
        TEMPS.with(|t| t.borrow_mut().push(name.to_owned()));
    }
}
