//! Where the agent keeps things, per platform layout, always under the `--root` prefix.
//!
//! Tests and the demo point `--root` at a temporary directory, so every default location the
//! agent reads or writes must be built here and nowhere else.

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

/// The per-user locations of one run.
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
        self.state_dir.join("state.json")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join("lock")
    }

    pub fn default_file_store(&self) -> PathBuf {
        self.state_dir.join("identity")
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
}
