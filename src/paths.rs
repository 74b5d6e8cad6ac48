//! Where the agent keeps things, per platform, always under the `--root` prefix.
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

/// The system-wide configuration file, before the root prefix.
pub fn system_config_file() -> PathBuf {
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/devicetrust/config.toml")
    } else {
        PathBuf::from("/etc/devicetrust/config.toml")
    }
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
    pub fn new(root: &Path, home: &Path) -> Self {
        let home = rooted(root, home);
        let state_dir = if cfg!(target_os = "macos") {
            home.join("Library/Application Support/devicetrust")
        } else {
            home.join(".local/state/devicetrust")
        };
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

    /// What Okta's Python "Device Registration Task" left in the home folder: its script
    /// folder and its LaunchAgent. `uninstall` removes them too.
    pub fn python_task_leftovers(&self) -> [PathBuf; 2] {
        [
            self.home.join("Library/Okta"),
            self.home
                .join("Library/LaunchAgents/com.okta.devicetrust.plist"),
        ]
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
}
