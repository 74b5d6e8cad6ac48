//! Small file-system primitives with the durability and privacy the agent promises.
//!
//! Private files are created 0600 (never briefly world-readable), and a replacement is a write
//! to a temporary name, a sync and a rename, so a reader sees the old file or the new, never half.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `dir` (and parents) readable only by its owner.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir)
}

/// Writes a new file (0600 from its creation, so no window where others may read it) and syncs.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` atomically with `contents` (mode 0600), creating the parent (0700) if needed.
pub fn atomic_write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no parent"))?;
    if !parent.exists() {
        create_private_dir(parent)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_private_file(&tmp, contents)
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| sync_dir(parent));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
