//! Where the agent keeps things, per platform layout, always under the `--root` prefix.
//!
//! Tests and the demo point `--root` at a temporary directory, so every default location the
//! agent reads or writes must be built here and nowhere else.

use crate::securefs::Place;
use std::path::{Component, Path, PathBuf};

/// `path` (absolute) placed under `root`.
pub fn rooted(root: &Path, path: &Path) -> PathBuf {
    let relative: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    root.join(relative)
}

/// The file-system conventions of one platform: where configuration, state and jobs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `/Library/Application Support`, `~/Library/...`, LaunchAgents.
    Mac,
    /// `/etc`, `~/.local/state`, systemd user units.
    Linux,
}

impl Layout {
    /// The layout of the OS this binary runs on.
    pub fn native() -> Layout {
        if cfg!(target_os = "macos") {
            Layout::Mac
        } else {
            Layout::Linux
        }
    }

    /// The system-wide configuration file, before the root prefix.
    pub fn config_file(self) -> PathBuf {
        match self {
            Layout::Mac => PathBuf::from("/Library/Application Support/devicetrust/config.toml"),
            Layout::Linux => PathBuf::from("/etc/devicetrust/config.toml"),
        }
    }

    /// The agent's device-level state, root's alone: the root-owned enrollment records.
    pub fn device_state_dir(self) -> PathBuf {
        match self {
            Layout::Mac => PathBuf::from("/Library/Application Support/devicetrust"),
            Layout::Linux => PathBuf::from("/var/lib/devicetrust"),
        }
    }

    /// The agent's per-user state directory, relative to the home folder.
    fn state_dir(self) -> &'static str {
        match self {
            Layout::Mac => "Library/Application Support/devicetrust",
            Layout::Linux => ".local/state/devicetrust",
        }
    }
}

/// The system-wide configuration file of this OS, before the root prefix.
pub fn system_config_file() -> PathBuf {
    Layout::native().config_file()
}

/// The enrollment record's file name in the state directory.
pub const STATE_FILE: &str = "state.json";
/// The run lock's file name in the state directory.
pub const LOCK_FILE: &str = "lock";
/// The default file store's folder name in the state directory.
pub const STORE_DIR: &str = "identity";

/// The per-user locations of one run, as paths: for messages, and for what other programs
/// are told. The agent itself reaches them through [`UserHome::place`].
#[derive(Debug, Clone)]
pub struct UserPaths {
    /// The user's home folder, under the root.
    pub home: PathBuf,
    /// The agent's state directory for this user: state file, lock, default file store.
    pub state_dir: PathBuf,
}

impl UserPaths {
    pub fn new(root: &Path, home: &Path, layout: Layout) -> Self {
        let home = rooted(root, home);
        let state_dir = home.join(layout.state_dir());
        UserPaths { home, state_dir }
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join(STATE_FILE)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join(LOCK_FILE)
    }

    pub fn default_file_store(&self) -> PathBuf {
        self.state_dir.join(STORE_DIR)
    }
}

/// The user the agent acts for, and where their things are.
///
/// Everything below the home folder is the user's to rename or replace, also while a run works
/// there, so the agent never hands such a path to the OS whole: [`UserHome::place`] starts at
/// the home folder (whose entry lives in root-owned `/home` or `/Users`) and walks the rest
/// without following links.
#[derive(Debug, Clone)]
pub struct UserHome {
    pub user: String,
    /// The home folder as the OS sees it (what goes *inside* job definitions).
    pub home: PathBuf,
    /// The same places under the `--root` prefix (where the files are written).
    pub paths: UserPaths,
    pub root: PathBuf,
    pub layout: Layout,
}

impl UserHome {
    pub fn new(user: impl Into<String>, home: &Path, root: &Path, layout: Layout) -> UserHome {
        UserHome {
            user: user.into(),
            home: home.to_owned(),
            paths: UserPaths::new(root, home, layout),
            root: root.to_owned(),
            layout,
        }
    }

    /// The folder `rel` below the home folder. What is created there belongs to the owner of
    /// the home folder. A home missing under a test or demo root is created (the root prefix is
    /// the admin's); at the real root a missing home is an error, not something to invent.
    pub fn place(&self, rel: impl AsRef<Path>) -> Place {
        let place = Place::new(&self.paths.home, rel.as_ref());
        if self.root == Path::new("/") {
            place
        } else {
            place.creating_base()
        }
    }

    /// The agent's state directory: the record, the run lock, the default file store.
    pub fn state_place(&self) -> Place {
        self.place(self.layout.state_dir())
    }

    /// The default file store's folder.
    pub fn default_store_place(&self) -> Place {
        self.state_place().join(STORE_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooted_places_absolute_paths_under_the_root() {
        assert_eq!(
            rooted(
                Path::new("/tmp/r"),
                Path::new("/etc/devicetrust/config.toml")
            ),
            PathBuf::from("/tmp/r/etc/devicetrust/config.toml")
        );
        assert_eq!(
            rooted(Path::new("/"), Path::new("/etc/x")),
            PathBuf::from("/etc/x")
        );
    }

    #[test]
    fn each_layout_keeps_state_in_its_own_place() {
        let mac = UserPaths::new(Path::new("/r"), Path::new("/Users/a"), Layout::Mac);
        assert_eq!(
            mac.state_file(),
            Path::new("/r/Users/a/Library/Application Support/devicetrust/state.json")
        );
        let linux = UserPaths::new(Path::new("/"), Path::new("/home/a"), Layout::Linux);
        assert_eq!(
            linux.default_file_store(),
            Path::new("/home/a/.local/state/devicetrust/identity")
        );
    }

    #[test]
    fn a_users_places_start_at_the_home_folder_under_the_root() {
        let home = UserHome::new("a", Path::new("/home/a"), Path::new("/r"), Layout::Linux);
        let store = home.default_store_place();
        assert_eq!(store.base(), Path::new("/r/home/a"));
        assert_eq!(store.rel(), Path::new(".local/state/devicetrust/identity"));
        assert_eq!(store.path(), home.paths.default_file_store());
        assert_eq!(home.state_place().path(), home.paths.state_dir);
    }
}
