//! [`Place`]: a folder named by a trusted base and a path below it that is walked without
//! following links, so callers say *where* once and every operation starts from a fresh walk.

use super::{Create, Owner, Result, SecureDir, SecureFsError};
use rustix::io::Errno;
use std::path::{Path, PathBuf};

/// A folder below a trusted base. The base (the `--root` prefix, a home folder, the parent of
/// a folder the admin named) is opened as the OS resolves it: whoever controls it controls the
/// machine anyway. Every component of `rel` below it is opened with `O_NOFOLLOW`, so a link the
/// user planted there is refused, never followed.
///
/// A `Place` holds no descriptor: each call walks again, so a long run never acts on a folder
/// that was swapped out since an earlier step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    base: PathBuf,
    rel: PathBuf,
    create_base: bool,
}

impl Place {
    /// The folder `rel` (relative; `..` is refused when it is walked) below `base`.
    pub fn new(base: impl Into<PathBuf>, rel: impl Into<PathBuf>) -> Place {
        Place {
            base: base.into(),
            rel: rel.into(),
            create_base: false,
        }
    }

    /// Lets [`Place::create`] make a missing base and its parents as the OS would (default
    /// mode, this process's owner). Only for a base inside an admin-controlled tree: a home
    /// folder under a test or demo root, the parent of a folder the admin named.
    pub fn creating_base(mut self) -> Place {
        self.create_base = true;
        self
    }

    /// The folder `rel` below this one, with the same base.
    pub fn join(&self, rel: impl AsRef<Path>) -> Place {
        Place {
            base: self.base.clone(),
            rel: self.rel.join(rel),
            create_base: self.create_base,
        }
    }

    /// The whole path, for messages and for what other programs are told.
    pub fn path(&self) -> PathBuf {
        self.base.join(&self.rel)
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    pub fn rel(&self) -> &Path {
        &self.rel
    }

    fn open_base(&self) -> Result<Option<SecureDir>> {
        match SecureDir::open_trusted(&self.base) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the folder; `Ok(None)` when it (or anything on the way) does not exist.
    pub fn open(&self) -> Result<Option<SecureDir>> {
        let Some(base) = self.open_base()? else {
            return Ok(None);
        };
        match base.open_dir(&self.rel, None) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Who gets what is created here: the owner of the base (for a home folder, the user whose
    /// home it is, also under a test root where the password database does not know them).
    pub fn owner(&self) -> Result<Owner> {
        Owner::of_dir(&self.trusted_base()?)
    }

    fn trusted_base(&self) -> Result<SecureDir> {
        match SecureDir::open_trusted(&self.base) {
            Err(e) if e.is_not_found() && self.create_base => {
                std::fs::create_dir_all(&self.base).map_err(|source| SecureFsError::Io {
                    action: "create",
                    what: "the directory",
                    path: self.base.clone(),
                    source,
                })?;
                SecureDir::open_trusted(&self.base)
            }
            opened => opened,
        }
    }

    /// Opens the folder, creating what is missing below the base with exactly `mode`, owned
    /// (when this process is root) by the owner of the base. Folders that exist are left as
    /// they are.
    pub fn create(&self, mode: u32) -> Result<SecureDir> {
        let base = self.trusted_base()?;
        let owner = Owner::of_dir(&base)?;
        base.open_dir(
            &self.rel,
            Some(Create {
                mode,
                owner: Some(owner),
            }),
        )
    }

    /// Removes the folder itself if it is empty: `Ok(false)` when it is absent or still holds
    /// something (someone else's file keeps it, and them, in place). The base is never removed.
    pub fn remove_if_empty(&self) -> Result<bool> {
        let (Some(parent), Some(name)) = (self.rel.parent(), self.rel.file_name()) else {
            return Ok(false);
        };
        let Some(parent) = self.join_parent(parent).open()? else {
            return Ok(false);
        };
        match parent.remove_empty_dir(name) {
            Ok(removed) => Ok(removed),
            Err(SecureFsError::Io { source, .. })
                if source.raw_os_error() == Some(Errno::NOTEMPTY.raw_os_error())
                    || source.raw_os_error() == Some(Errno::EXIST.raw_os_error()) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn join_parent(&self, parent: &Path) -> Place {
        Place {
            base: self.base.clone(),
            rel: parent.to_owned(),
            create_base: self.create_base,
        }
    }
}
