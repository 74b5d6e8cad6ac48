//! The agent runs as root in a home its user controls: links the user planted where the agent
//! keeps its things are refused with one error, and nothing they point to is touched.
//!
//! Each case plants a link (at a folder or file of the agent's, or at a temporary name an
//! older agent would have used) and aims it at a folder outside the home, a 0751 folder with
//! a 0640 file and a subfolder; after the run that folder must be exactly as it was. The home
//! belongs to uid 4242, as a user's home does, so these tests need root (CI runs as root) and
//! skip otherwise.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user whose home it is: no password-database entry needed.
const UID: u32 = 4242;
const GID: u32 = 4242;

const UNIT_DIR: &str = ".config/systemd/user";
const STATE_DIR: &str = ".local/state/devicetrust";
const STORE_DIR: &str = ".local/state/devicetrust/identity";
const LOCK: &str = ".local/state/devicetrust/lock";
const RECORD: &str = ".local/state/devicetrust/state.json";

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A configured root whose home folder belongs to `UID`, and a folder outside the home.
struct Scene {
    env: Env,
    home: PathBuf,
    outside: PathBuf,
}

/// `None` (and a note) when not root: the home must belong to someone else than the agent.
fn scene() -> Option<Scene> {
    if !running_as_root() {
        println!("skipped: a user's home owned by another uid needs root");
        return None;
    }
    let env = Env::new(365);
    // As `/` is: the user (whose NSS tools the agent runs as them) can reach their home.
    std::fs::set_permissions(env.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.root.path().join("home").join(USER);
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(UID), Some(GID)).unwrap();
    let outside = env.root.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("notes.txt"), b"precious").unwrap();
    std::fs::write(outside.join("sub/inner.txt"), b"also precious").unwrap();
    std::fs::set_permissions(
        outside.join("notes.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o751)).unwrap();
    Some(Scene { env, home, outside })
}

/// Every entry below `dir` and `dir` itself: type and mode, owner, and content (a link's
/// target), links never followed.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            Vec::new()
        } else if meta.is_file() {
            std::fs::read(&path).unwrap()
        } else {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        };
        out.insert(path, (meta.mode(), meta.uid(), meta.gid(), content));
    }
    out
}

impl Scene {
    /// Replaces whatever is at `rel` in the home with a link to `target`, as the user would.
    fn plant(&self, rel: &str, target: &Path) -> PathBuf {
        let path = self.home.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path).unwrap(),
            Ok(_) => std::fs::remove_file(&path).unwrap(),
            Err(_) => {}
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, &path).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Run {
        self.env.run_with_token(args)
    }
}

/// Runs `command` on an enrolled device (`enroll`: on a fresh one) after planting a link at
/// `rel` pointing to `target` (a path in the outside folder): one `ERROR:` naming the link,
/// exit 1, the outside folder unchanged.
fn refused(rel: &str, target: &str, command: &[&str]) {
    let Some(scene) = scene() else {
        return;
    };
    if command[0] != "enroll" {
        let run = scene.run(&["enroll"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let link = scene.plant(rel, &scene.outside.join(target));
    let before = snapshot(&scene.outside);
    let run = scene.run(command);
    assert_eq!(run.code, 1, "{command:?} with a link at {rel}: {run:?}");
    let error = run.error();
    assert!(
        error.contains(&format!("{} is a symbolic link", link.display())),
        "{command:?} with a link at {rel}: {error}"
    );
    assert_eq!(
        snapshot(&scene.outside),
        before,
        "{command:?} with a link at {rel} reached the folder it points to"
    );
    assert!(
        std::fs::symlink_metadata(&link).unwrap().is_symlink(),
        "the link itself stays for the admin to see"
    );
}

const COMMANDS: [&[&str]; 4] = [
    &["enroll"],
    &["renew", "--force"],
    &["repair"],
    &["uninstall"],
];

#[test]
fn a_link_at_the_systemd_unit_folder_is_refused() {
    for command in COMMANDS {
        refused(UNIT_DIR, "", command);
    }
}

#[test]
fn a_link_at_the_state_folder_is_refused() {
    for command in COMMANDS {
        refused(STATE_DIR, "", command);
    }
}

#[test]
fn a_link_at_the_identity_folder_is_refused() {
    for command in COMMANDS {
        refused(STORE_DIR, "", command);
    }
}

#[test]
fn a_link_at_the_run_lock_is_refused() {
    for command in COMMANDS {
        // Aimed at a name that does not exist yet: creating it would show.
        refused(LOCK, "lock", command);
    }
}

#[test]
fn a_link_at_the_enrollment_record_is_refused() {
    for command in COMMANDS {
        refused(RECORD, "notes.txt", command);
    }
}

/// A shell that plants links at `<dir>/<prefix><its own pid>`, then becomes the agent (same
/// pid): the temporary names an older agent derived from its pid, taken before it starts.
fn planting_pid_names(inner: Command, plants: &[(PathBuf, &str, PathBuf)]) -> Command {
    let mut script = String::new();
    for (dir, prefix, target) in plants {
        script.push_str(&format!(
            "ln -s '{}' '{}/{prefix}'\"$$\" || exit 99\n",
            target.display(),
            dir.display()
        ));
    }
    script.push_str("exec \"$0\" \"$@\"\n");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .arg(inner.get_program())
        .args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

#[test]
fn links_at_the_old_predictable_temporary_names_are_not_written_through() {
    let Some(scene) = scene() else {
        return;
    };
    let chown = |path: &Path| std::os::unix::fs::chown(path, Some(UID), Some(GID)).unwrap();
    for rel in [
        ".local",
        ".local/state",
        STATE_DIR,
        ".config",
        ".config/systemd",
        UNIT_DIR,
    ] {
        std::fs::create_dir(scene.home.join(rel)).unwrap();
        chown(&scene.home.join(rel));
    }
    let target = scene.outside.join("notes.txt");
    let plants = [
        (
            scene.home.join(STATE_DIR),
            ".state.json.tmp-",
            target.clone(),
        ),
        (
            scene.home.join(UNIT_DIR),
            ".devicetrust-renew.service.tmp-",
            target.clone(),
        ),
    ];
    let before = snapshot(&scene.outside);
    let mut enroll = scene.env.command(&["enroll"]);
    enroll.arg("--org-token-file").arg(scene.env.token_file());
    let run = Run::from(planting_pid_names(enroll, &plants).output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        snapshot(&scene.outside),
        before,
        "a link at an old temporary name was written through"
    );
    assert!(std::fs::symlink_metadata(scene.home.join(RECORD))
        .unwrap()
        .is_file());
    // The record's leftovers are swept; a link is removed itself, never what it points to.
    let state: Vec<_> = std::fs::read_dir(scene.home.join(STATE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(state.is_empty(), "{state:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

#[test]
fn what_enroll_creates_in_the_home_belongs_to_its_user() {
    let Some(scene) = scene() else {
        return;
    };
    let run = scene.run(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    let mut checked = Vec::new();
    let mut pending = vec![scene.home.clone()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        // Links included: the timer's link in `timers.target.wants` is made in a private
        // folder of root's, given its owner there, and renamed into place.
        assert_eq!(
            (meta.uid(), meta.gid()),
            (UID, GID),
            "{} is not the user's",
            path.display()
        );
        checked.push(path);
    }
    for rel in [
        STATE_DIR,
        RECORD,
        LOCK,
        STORE_DIR,
        ".local",
        UNIT_DIR,
        ".config/systemd/user/devicetrust-renew.service",
        ".config/systemd/user/timers.target.wants",
        TIMER_LINK,
    ] {
        assert!(checked.contains(&scene.home.join(rel)), "{rel} not created");
    }
}

/// The link `systemctl --user enable` would make for the renewal timer.
const TIMER_LINK: &str = ".config/systemd/user/timers.target.wants/devicetrust-renew.timer";

#[test]
fn a_timer_link_of_roots_is_made_again_as_the_users() {
    let Some(scene) = scene() else {
        return;
    };
    assert_eq!(scene.run(&["enroll"]).code, 0);
    let link = scene.home.join(TIMER_LINK);
    let target = std::fs::read_link(&link).unwrap();
    // An older agent's link: the same target, made by root and left root's.
    std::fs::remove_file(&link).unwrap();
    symlink(&target, &link).unwrap();
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));

    let run = scene.run(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!((meta.uid(), meta.gid()), (UID, GID), "{run:?}");
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    // Nothing of the private folder it was made in is left beside it.
    let names: Vec<_> = std::fs::read_dir(link.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["devicetrust-renew.timer"]);
}

#[test]
fn an_explicit_store_folder_holding_other_files_is_refused_and_left_alone() {
    let Some(scene) = scene() else {
        return;
    };
    let folder = scene.env.root.path().join("srv/documents");
    std::fs::create_dir_all(folder.join("photos")).unwrap();
    std::fs::write(folder.join("thesis.txt"), b"mine").unwrap();
    std::fs::write(folder.join("photos/cat.jpg"), b"meow").unwrap();
    let store = format!("file:{}", folder.display());
    let before = snapshot(&folder);

    let run = scene.run(&["enroll", "--store", &store]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.error()
            .contains("already holds files devicetrust did not create"),
        "{run:?}"
    );
    assert_eq!(snapshot(&folder), before);

    let run = scene.run(&["uninstall", "--store", &store]);
    assert_eq!(snapshot(&folder), before, "{run:?}");

    // The store folder itself as a link: refused, whatever it points to.
    let link = scene.env.root.path().join("srv/linked");
    symlink(&scene.outside, &link).unwrap();
    let before = snapshot(&scene.outside);
    let run = scene.run(&["enroll", "--store", &format!("file:{}", link.display())]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.error()
            .contains(&format!("{} is a symbolic link", link.display())),
        "{run:?}"
    );
    assert_eq!(snapshot(&scene.outside), before);
}
