//! Taking over from Okta's Python "Device Registration Task": find what it left in a home folder
//! and decide, without touching anything, what to adopt and what to remove.
//!
//! Okta issues at most five device-trust certificates per user and device, so an identity the
//! task already enrolled is adopted (its okta.keychain is the agent's store), not re-enrolled;
//! the task's files are removed only once the agent holds a valid identity, so a failed takeover
//! never leaves the device with neither. Acting on the plan is the chain's legacy link, with
//! [`remove_file`] and [`remove_folder`]. The home is the user's: nothing of the task is read or removed through a link.

use crate::paths::UserHome;
use crate::securefs::{FileKind, SecureDir, SecureFsError, DOCUMENT_MAX};
use std::path::{Path, PathBuf};

/// The task's LaunchAgent label (also its plist's file name).
pub const PYTHON_TASK_LABEL: &str = "com.okta.devicetrust";
/// The task's script files are small; anything bigger is not one of them.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;
const KEYCHAINS: &str = "Library/Keychains";
const LAUNCH_AGENTS: &str = "Library/LaunchAgents";
/// The task's script folder, `~/Library/Okta`.
const LIBRARY: &str = "Library";
const SCRIPT_DIR: &str = "Okta";

/// What of the Python task exists in one home folder (paths under the root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonTaskInstall {
    /// `~/Library/Keychains/okta.keychain-db` (or the pre-10.12 `okta.keychain`).
    pub keychain: Option<PathBuf>,
    /// `~/Library/Okta`, the task's script folder.
    pub script_dir: Option<PathBuf>,
    /// `~/Library/LaunchAgents/com.okta.devicetrust.plist`.
    pub launch_agent: Option<PathBuf>,
    /// The LaunchAgent's `Label` (the file name's when the plist does not say).
    pub launch_agent_label: Option<String>,
    /// The task's version, when a script in the folder declares one.
    pub version: Option<String>,
}

impl PythonTaskInstall {
    pub fn is_empty(&self) -> bool {
        self.keychain.is_none() && self.script_dir.is_none() && self.launch_agent.is_none()
    }
}

/// What the takeover should do, in order: adopt, then bootout, then remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationPlan {
    /// Keep okta.keychain and its identity as the agent's store.
    pub adopt_keychain: bool,
    /// The task's files to delete (never the keychain).
    pub remove: Vec<PathBuf>,
    /// The launchd label to boot out of the user's GUI domain before removing its plist.
    pub bootout_label: Option<String>,
    /// What the run should tell the admin (`INFO:` lines).
    pub notes: Vec<String>,
}

/// Looks for the Python task's artifacts in the user's home. Only real files and folders count:
/// a link at one of the task's names is neither followed nor taken for the task's.
pub fn detect(home: &UserHome) -> PythonTaskInstall {
    let open = |rel: &str| home.place(rel).open().ok().flatten();
    let kind = |dir: &SecureDir, name: &str| dir.metadata(name).ok().flatten().map(|m| m.kind);
    let keychain = open(KEYCHAINS).and_then(|dir| {
        ["okta.keychain-db", "okta.keychain"]
            .into_iter()
            .find(|name| kind(&dir, name) == Some(FileKind::File))
            .map(|name| dir.path().join(name))
    });
    let scripts = open(LIBRARY)
        .filter(|dir| kind(dir, SCRIPT_DIR) == Some(FileKind::Dir))
        .and_then(|dir| dir.open_dir(SCRIPT_DIR, None).ok());
    let plist_name = format!("{PYTHON_TASK_LABEL}.plist");
    let agents = open(LAUNCH_AGENTS).filter(|dir| kind(dir, &plist_name) == Some(FileKind::File));
    let launch_agent_label = agents.as_ref().map(|dir| {
        dir.read_file(&plist_name, DOCUMENT_MAX)
            .ok()
            .flatten()
            .and_then(|bytes| plist::Value::from_reader(std::io::Cursor::new(&bytes[..])).ok())
            .and_then(|v| {
                v.as_dictionary()?
                    .get("Label")?
                    .as_string()
                    .map(str::to_owned)
            })
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| PYTHON_TASK_LABEL.to_owned())
    });
    PythonTaskInstall {
        keychain,
        version: scripts.as_ref().and_then(version_in_dir),
        script_dir: scripts.map(|dir| dir.path().to_owned()),
        launch_agent: agents.map(|dir| dir.path().join(&plist_name)),
        launch_agent_label,
    }
}

/// Removes the task's script folder as [`detect`] found it (`install.script_dir`), with
/// everything in it and nothing any link in it points to. `Ok(false)` when already gone.
pub fn remove_folder(home: &UserHome, path: &Path) -> Result<bool, SecureFsError> {
    match parent_of(home, path)? {
        Some((dir, name)) => dir.remove_tree(name),
        None => Ok(false),
    }
}

/// Removes one of the task's files as [`detect`] found it (its LaunchAgent); a link there goes
/// itself, a folder there stays. `Ok(false)` when already gone.
pub fn remove_file(home: &UserHome, path: &Path) -> Result<bool, SecureFsError> {
    match parent_of(home, path)? {
        Some((dir, name)) => dir.remove_file(name),
        None => Ok(false),
    }
}

/// The folder holding `path` (a path in the home under the root), opened without following
/// links, and the name in it; `None` when the folder is gone.
fn parent_of<'a>(
    home: &UserHome,
    path: &'a Path,
) -> Result<Option<(SecureDir, &'a std::ffi::OsStr)>, SecureFsError> {
    let bad = |reason| SecureFsError::BadName {
        path: path.to_owned(),
        reason,
    };
    let rel = path
        .strip_prefix(&home.paths.home)
        .map_err(|_| bad("not in the user's home folder"))?;
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(bad("not a file or folder in the user's home folder"));
    };
    Ok(home.place(parent).open()?.map(|dir| (dir, name)))
}

/// Decides the takeover. `store_has_valid_identity`: the agent's store (okta.keychain on macOS)
/// holds an identity that is present, matches its key and has not expired.
pub fn plan(install: &PythonTaskInstall, store_has_valid_identity: bool) -> MigrationPlan {
    let mut plan = MigrationPlan::default();
    if install.is_empty() {
        plan.notes
            .push("no trace of Okta's Python Device Registration Task".into());
        return plan;
    }
    let version = install
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    plan.notes.push(format!(
        "found Okta's Python Device Registration Task{version}"
    ));

    if !store_has_valid_identity {
        // Removing the task first could leave the device with no way back to a certificate
        // if our enrollment then fails; its files go once the agent holds an identity.
        plan.notes.push(match &install.keychain {
            Some(_) => "okta.keychain holds no valid identity to adopt: enroll first \
                        (this uses one of the user's five Okta certificates); the task's \
                        files are removed on the next run"
                .into(),
            None => "no okta.keychain to adopt: enroll first; the task's files are removed \
                     on the next run"
                .into(),
        });
        return plan;
    }

    if install.keychain.is_some() {
        plan.adopt_keychain = true;
        plan.notes.push(
            "adopting the task's okta.keychain and its certificate instead of enrolling again"
                .into(),
        );
    }
    // The job first: launchd would otherwise keep running a script that is gone.
    if install.launch_agent.is_some() {
        plan.bootout_label = Some(
            install
                .launch_agent_label
                .clone()
                .unwrap_or_else(|| PYTHON_TASK_LABEL.to_owned()),
        );
    }
    plan.remove.extend(install.launch_agent.iter().cloned());
    plan.remove.extend(install.script_dir.iter().cloned());
    if !plan.remove.is_empty() {
        plan.notes
            .push("removing the task's LaunchAgent and script folder".into());
    }
    plan
}

/// The first version a regular file directly in `dir` declares, files in name order. Links,
/// hard-linked and oversized files are skipped.
fn version_in_dir(dir: &SecureDir) -> Option<String> {
    dir.entries()
        .ok()?
        .into_iter()
        .filter(|entry| entry.kind == FileKind::File)
        .find_map(|entry| {
            let bytes = dir.read_file(&entry.name, MAX_SCRIPT_BYTES).ok()??;
            String::from_utf8_lossy(&bytes)
                .lines()
                .find_map(parse_version)
        })
}

/// A version declared on one line: `VERSION = '1.3.3'`, `__version__ = "1.3"`,
/// `version: 1.2.0`, `SCRIPT_VERSION="1.3.3"  # comment`. Case and spacing do not matter; the
/// value must start with a digit and hold only version characters.
pub fn parse_version(line: &str) -> Option<String> {
    let line = line.trim();
    let (name, rest) = line.split_once(['=', ':'])?;
    let name = name.trim().trim_matches('_').to_ascii_lowercase();
    if !(name == "version" || name.ends_with("_version")) || name.contains(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start().trim_start_matches('=').trim_start();
    let value = rest
        .trim_start_matches(['\'', '"'])
        .split(['\'', '"', '#', ' ', '\t', ',', ';'])
        .next()?;
    let ok = value.starts_with(|c: char| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    ok.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::{rooted, Layout};

    const HOME: &str = "/Users/alice";

    fn user(root: &Path) -> UserHome {
        UserHome::new("alice", Path::new(HOME), root, Layout::Mac)
    }

    /// A fixture home folder under a fresh root with the chosen artifacts of the task.
    fn fixture(keychain: bool, scripts: bool, agent: bool) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let home = rooted(root.path(), Path::new(HOME));
        if keychain {
            std::fs::create_dir_all(home.join("Library/Keychains")).unwrap();
            std::fs::write(home.join("Library/Keychains/okta.keychain-db"), b"kych").unwrap();
        }
        if scripts {
            std::fs::create_dir_all(home.join("Library/Okta")).unwrap();
            std::fs::write(
                home.join("Library/Okta/okta_device_trust.py"),
                "#!/usr/bin/python\nimport os\nVERSION = '1.3.3'\n",
            )
            .unwrap();
        }
        if agent {
            std::fs::create_dir_all(home.join("Library/LaunchAgents")).unwrap();
            let mut dict = plist::Dictionary::new();
            dict.insert("Label".into(), "com.okta.devicetrust".into());
            plist::Value::Dictionary(dict)
                .to_file_xml(home.join("Library/LaunchAgents/com.okta.devicetrust.plist"))
                .unwrap();
        }
        root
    }

    fn home(root: &tempfile::TempDir) -> PathBuf {
        rooted(root.path(), Path::new(HOME))
    }

    #[test]
    fn detect_finds_each_artifact_and_the_version() {
        let root = fixture(true, true, true);
        let h = home(&root);
        let found = detect(&user(root.path()));
        assert_eq!(
            found,
            PythonTaskInstall {
                keychain: Some(h.join("Library/Keychains/okta.keychain-db")),
                script_dir: Some(h.join("Library/Okta")),
                launch_agent: Some(h.join("Library/LaunchAgents/com.okta.devicetrust.plist")),
                launch_agent_label: Some("com.okta.devicetrust".into()),
                version: Some("1.3.3".into()),
            }
        );
        let nothing = fixture(false, false, false);
        assert!(detect(&user(nothing.path())).is_empty());
    }

    #[test]
    fn detect_tolerates_odd_files() {
        let root = fixture(false, true, false);
        let h = home(&root);
        // No version anywhere, a subfolder, binary junk, and an unparsable LaunchAgent.
        std::fs::write(h.join("Library/Okta/okta_device_trust.py"), "print('hi')\n").unwrap();
        std::fs::create_dir(h.join("Library/Okta/sub")).unwrap();
        std::fs::write(h.join("Library/Okta/blob"), [0xff, 0xfe, 0, 1]).unwrap();
        std::fs::create_dir_all(h.join("Library/LaunchAgents")).unwrap();
        std::fs::write(
            h.join("Library/LaunchAgents/com.okta.devicetrust.plist"),
            "garbage",
        )
        .unwrap();
        let found = detect(&user(root.path()));
        assert_eq!(found.version, None);
        assert_eq!(found.launch_agent_label.as_deref(), Some(PYTHON_TASK_LABEL));
        // The legacy keychain name counts too.
        std::fs::create_dir_all(h.join("Library/Keychains")).unwrap();
        std::fs::write(h.join("Library/Keychains/okta.keychain"), b"k").unwrap();
        assert!(detect(&user(root.path())).keychain.is_some());
    }

    #[test]
    fn versions_parse_tolerantly() {
        for (line, want) in [
            ("VERSION = '1.3.3'", Some("1.3.3")),
            ("  __version__ = \"1.3\"", Some("1.3")),
            (
                "SCRIPT_VERSION=\"2.0.1-beta\"  # released",
                Some("2.0.1-beta"),
            ),
            ("version: 1.2.0", Some("1.2.0")),
            ("Version = 4", Some("4")),
            ("version = get_version()", None),
            ("# the version = 1 thing", None),
            ("VERSION = ''", None),
            ("conversion = '1.0'", None),
            ("url = 'http://x'", None),
        ] {
            assert_eq!(parse_version(line).as_deref(), want, "{line}");
        }
    }

    #[test]
    fn a_valid_identity_in_okta_keychain_is_adopted_then_the_task_removed() {
        let root = fixture(true, true, true);
        let h = home(&root);
        let plan = plan(&detect(&user(root.path())), true);
        assert!(plan.adopt_keychain);
        assert_eq!(plan.bootout_label.as_deref(), Some("com.okta.devicetrust"));
        assert_eq!(
            plan.remove,
            vec![
                h.join("Library/LaunchAgents/com.okta.devicetrust.plist"),
                h.join("Library/Okta"),
            ]
        );
        assert!(plan.notes.iter().any(|n| n.contains("1.3.3")));
    }

    #[test]
    fn nothing_is_removed_while_the_agent_has_no_valid_identity() {
        for (keychain, scripts, agent) in [
            (true, true, true),
            (true, false, false),
            (false, true, true),
            (false, false, true),
        ] {
            let root = fixture(keychain, scripts, agent);
            let plan = plan(&detect(&user(root.path())), false);
            assert!(!plan.adopt_keychain);
            assert!(plan.remove.is_empty() && plan.bootout_label.is_none());
            assert!(
                plan.notes.iter().any(|n| n.contains("enroll first")),
                "{plan:?}"
            );
        }
    }

    #[test]
    fn leftovers_without_a_keychain_go_once_the_agent_has_its_own_identity() {
        let root = fixture(false, true, true);
        let plan = plan(&detect(&user(root.path())), true);
        assert!(!plan.adopt_keychain);
        assert_eq!(plan.remove.len(), 2);
        assert!(plan.bootout_label.is_some());
    }

    #[test]
    fn partial_installs_remove_only_what_exists() {
        // Keychain and script folder, no LaunchAgent: nothing to boot out.
        let root = fixture(true, true, false);
        let plan1 = plan(&detect(&user(root.path())), true);
        assert!(plan1.adopt_keychain && plan1.bootout_label.is_none());
        assert_eq!(plan1.remove, vec![home(&root).join("Library/Okta")]);
        // Only the keychain (the agent's own store looks the same): adopt, remove nothing.
        let root = fixture(true, false, false);
        let plan2 = plan(&detect(&user(root.path())), true);
        assert!(plan2.adopt_keychain && plan2.remove.is_empty());
    }

    #[test]
    fn no_task_is_an_empty_plan() {
        let root = fixture(false, false, false);
        for valid in [false, true] {
            let plan = plan(&detect(&user(root.path())), valid);
            assert!(!plan.adopt_keychain && plan.remove.is_empty());
            assert!(plan.bootout_label.is_none());
            assert_eq!(plan.notes.len(), 1);
        }
    }

    #[test]
    fn the_tasks_files_are_found_and_removed_without_following_links() {
        use std::os::unix::fs::symlink;
        let root = fixture(false, true, true);
        let h = home(&root);
        let outside = root.path().join("outside");
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("VERSION.py"), "VERSION = '9.9'\n").unwrap();
        // A link inside the task's folder, and one in place of a script.
        symlink(&outside, h.join("Library/Okta/linked")).unwrap();
        std::fs::remove_file(h.join("Library/Okta/okta_device_trust.py")).unwrap();
        symlink(
            outside.join("VERSION.py"),
            h.join("Library/Okta/okta_device_trust.py"),
        )
        .unwrap();
        let found = detect(&user(root.path()));
        assert_eq!(found.version, None, "a linked script is not read");
        let plan = plan(&found, true);
        assert_eq!(plan.remove.len(), 2);
        assert_eq!(
            plan.remove,
            [
                found.launch_agent.clone().unwrap(),
                found.script_dir.clone().unwrap()
            ]
        );
        assert!(remove_file(&user(root.path()), &plan.remove[0]).unwrap());
        assert!(remove_folder(&user(root.path()), &plan.remove[1]).unwrap());
        assert!(!h.join("Library/Okta").exists());
        assert!(!h
            .join("Library/LaunchAgents/com.okta.devicetrust.plist")
            .exists());
        assert!(outside.join("sub").is_dir());
        assert_eq!(
            std::fs::read_to_string(outside.join("VERSION.py")).unwrap(),
            "VERSION = '9.9'\n"
        );
        assert!(
            !remove_folder(&user(root.path()), &plan.remove[1]).unwrap(),
            "already gone"
        );
        assert!(remove_file(&user(root.path()), Path::new("/etc/passwd")).is_err());

        // The task's folder as a link is not the task's folder: neither detected nor removed.
        symlink(&outside, h.join("Library/Okta")).unwrap();
        assert_eq!(detect(&user(root.path())).script_dir, None);
        assert!(outside.join("sub").is_dir());
    }
}
