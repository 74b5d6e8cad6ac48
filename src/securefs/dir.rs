//! [`SecureDir`]: every operation relative to an open directory, one component at a time.

use super::{
    adopt, check_private_file, explain, io_error, kind_name, mode_bits, Create, Entry, Expect,
    FileKind, Metadata, Owner, Result, SecureFsError, DIR_FLAGS, MAX_DEPTH, READ_FLAGS,
    TEMP_MARKER,
};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use zeroize::Zeroizing;

/// An open directory, the starting point of every operation below it, with its path for
/// messages. Operations take single names (no `/`, not `.` or `..`); [`SecureDir::open_dir`]
/// walks deeper.
#[derive(Debug)]
pub struct SecureDir {
    pub(super) fd: OwnedFd,
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
        // Every component is checked before the first is opened, so a refused path creates
        // nothing on its way to the refusal.
        let mut names = Vec::new();
        for component in rel.components() {
            match component {
                Component::Normal(name) => names.push(name),
                Component::CurDir => {}
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
            }
        }
        let mut path = self.path.clone();
        let mut current: Option<OwnedFd> = None;
        for name in names {
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

    /// Creates the folder `name`, which must not exist yet (anything there, a link included,
    /// is an error), with exactly `mode` and (as root) `owner`, and opens it. For a folder
    /// this process fills itself, so that nothing anyone put there beforehand ends up in it.
    pub fn create_dir(
        &self,
        name: impl AsRef<OsStr>,
        mode: u32,
        owner: Option<Owner>,
    ) -> Result<SecureDir> {
        let name = self.name(name.as_ref())?;
        let path = self.path.join(name);
        let what = "the directory";
        rustix::fs::mkdirat(&self.fd, name, mode_bits(mode))
            .map_err(|e| io_error("create", what, &path, e))?;
        // Opened without following: a link swapped in since `mkdirat` is refused.
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| explain(self.fd.as_fd(), name, &path, e, ("open", what, Expect::Dir)))?;
        adopt(fd.as_fd(), mode, owner)
            .and_then(|()| rustix::fs::fsync(&self.fd))
            .map_err(|e| io_error("create", what, &path, e))?;
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
        self.read(name.as_ref(), max_bytes, false)
    }

    /// Reads `name` as [`SecureDir::read_file`] does, and only when this folder's owner owns
    /// it: a store's private files (its key above all) are the owner's own, never a file of
    /// someone else's that was linked or moved in. Refused as [`SecureFsError::OtherOwner`].
    pub fn read_owned_file(
        &self,
        name: impl AsRef<OsStr>,
        max_bytes: u64,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        self.read(name.as_ref(), max_bytes, true)
    }

    fn read(
        &self,
        name: &OsStr,
        max_bytes: u64,
        owners_only: bool,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let name = self.name(name)?;
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
        if owners_only && stat.st_uid != self.own_metadata()?.uid {
            return Err(SecureFsError::OtherOwner { path });
        }
        super::read::read_fd(fd, &stat, &path, max_bytes, what).map(Some)
    }

    /// Replaces `name` with `bytes` atomically: a reader sees the old file or the new one.
    ///
    /// The new file is created exclusively under an unpredictable name in this directory, so
    /// nothing planted can be opened in its place; it is written, given exactly `mode` and (as
    /// root) `owner`, synced, and renamed over `name`. A link at `name` is replaced, never followed. On
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
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            // Given away only once complete: until then only root may write to it, so what is
            // renamed into place is exactly `bytes`.
            adopt(file.as_fd(), mode, owner)?;
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
            let temp = temp_name(name);
            #[cfg(test)]
            let temp = super::tests::planted_or(temp);
            // 0600 until `adopt` sets the final mode, so the content is never briefly readable.
            match rustix::fs::openat(&self.fd, &temp, flags, Mode::from_bits_truncate(0o600)) {
                Ok(fd) => {
                    #[cfg(test)]
                    super::tests::record_temp(&temp);
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

    /// What `fstat` says about this directory itself.
    pub fn own_metadata(&self) -> Result<Metadata> {
        rustix::fs::fstat(&self.fd)
            .map(|stat| Metadata::from_stat(&stat))
            .map_err(|e| io_error("inspect", "the directory", &self.path, e))
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

    /// Creates (or replaces) the link `name` pointing to `target`, owned by `owner` when this
    /// process is root, so that nothing root-owned is left in a user's folder.
    ///
    /// A link's owner can only be changed by name, and in the user's folder the name may be
    /// something else by then (a hard link to a file of root's, say). So the link is made in
    /// a private folder of root's created inside this one, given its owner there, where nobody
    /// else can touch the name, and then renamed into place.
    pub fn symlink_owned(
        &self,
        target: impl AsRef<Path>,
        name: impl AsRef<OsStr>,
        owner: Option<Owner>,
    ) -> Result<()> {
        let name = self.name(name.as_ref())?;
        let path = self.path.join(name);
        let fail = |e: Errno| io_error("create", "the link", &path, e);
        let Some(owner) = owner.filter(|_| super::running_as_root()) else {
            // Ours by creation: made under a fresh name and renamed over `name`.
            let temp = temp_name(name);
            rustix::fs::symlinkat(target.as_ref(), &self.fd, &temp).map_err(fail)?;
            return rustix::fs::renameat(&self.fd, &temp, &self.fd, name)
                .and_then(|()| rustix::fs::fsync(&self.fd))
                .map_err(|e| {
                    let _ = rustix::fs::unlinkat(&self.fd, &temp, AtFlags::empty());
                    fail(e)
                });
        };
        let private = temp_name(name);
        rustix::fs::mkdirat(&self.fd, &private, Mode::from_bits_truncate(0o700)).map_err(fail)?;
        #[cfg(test)]
        super::tests::between_mkdir_and_open(&self.path.join(&private));
        let opened =
            rustix::fs::openat(&self.fd, &private, DIR_FLAGS, Mode::empty()).and_then(|dir| {
                // The user owns this folder and may have swapped the name since `mkdirat`:
                // only a folder of root's that nobody else may write is the one just made.
                let stat = rustix::fs::fstat(&dir)?;
                if !super::Metadata::from_stat(&stat).is_private_to_root() {
                    return Err(Errno::PERM);
                }
                Ok(dir)
            });
        let result = opened.and_then(|dir| {
            let linked = rustix::fs::symlinkat(target.as_ref(), &dir, name)
                .and_then(|()| {
                    rustix::fs::chownat(
                        &dir,
                        name,
                        Some(rustix::fs::Uid::from_raw(owner.uid)),
                        Some(rustix::fs::Gid::from_raw(owner.gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                })
                .and_then(|()| rustix::fs::renameat(&dir, name, &self.fd, name));
            if linked.is_err() {
                let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
            }
            linked
        });
        // Empty now. Removed by name: a folder swapped in there goes only if it is empty.
        let _ = rustix::fs::unlinkat(&self.fd, &private, AtFlags::REMOVEDIR);
        result
            .and_then(|()| rustix::fs::fsync(&self.fd))
            .map_err(fail)
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

/// `.<name>.tmp-<32 hex digits>`: an unpredictable name beside `name` that the sweeps
/// recognise as a leftover ([`super::temp_target`]).
fn temp_name(name: &OsStr) -> OsString {
    let mut random = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    let mut temp = b".".to_vec();
    temp.extend_from_slice(name.as_bytes());
    temp.extend_from_slice(TEMP_MARKER.as_bytes());
    temp.extend_from_slice(crate::fsutil::hex(&random).as_bytes());
    OsString::from_vec(temp)
}
