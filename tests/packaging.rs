//! The installer pieces in `pkg/`: the global LaunchAgent, the postinstall script (run with bash
//! against fake `stat`, `id` and `launchctl` that record their calls) and build-pkg.sh's refusals.

use devicetrust::integrations::schedule;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn pkg(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pkg").join(rel)
}

const GLOBAL_PLIST: &str = "payload/Library/LaunchAgents/com.devicetrust.renew.plist";

/// A directory of fake commands, each a bash script; calls are appended to `calls`.
struct Fakes {
    dir: tempfile::TempDir,
}

impl Fakes {
    fn new() -> Fakes {
        Fakes {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn add(&self, name: &str, body: &str) {
        let path = self.dir.path().join(name);
        let log = self.calls_file();
        std::fs::write(
            &path,
            format!(
                "#!/bin/bash\nprintf '%s\\n' \"{name} $*\" >> {log:?}\n{body}\n",
                log = log.display().to_string()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn calls_file(&self) -> PathBuf {
        self.dir.path().join("calls")
    }

    /// The recorded calls of `name`, without the name.
    fn calls(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.calls_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{name} ")))
            .map(str::to_owned)
            .collect()
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

/// A payload root as the installer leaves it, with modes the postinstall must correct.
fn payload_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("usr/local/bin/devicetrust");
    let plist = root
        .path()
        .join("Library/LaunchAgents/com.devicetrust.renew.plist");
    for (path, mode) in [(&bin, 0o700), (&plist, 0o666)] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    root
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs the postinstall with the console owned by `console_user`; `bootstrap_code` is what the
/// fake `launchctl bootstrap` exits with (bootout always fails: nothing was loaded).
fn postinstall(console_user: &str, bootstrap_code: i32) -> (i32, String, Fakes, tempfile::TempDir) {
    let fakes = Fakes::new();
    fakes.add("stat", &format!("echo {console_user}"));
    fakes.add(
        "id",
        "if [[ $1 == -u && $2 == alice ]]; then echo 501; exit 0; fi\nexec /usr/bin/env -i PATH=/usr/bin:/bin id \"$@\"",
    );
    fakes.add(
        "launchctl",
        &format!("case $1 in bootout) exit 3 ;; bootstrap) exit {bootstrap_code} ;; esac"),
    );
    let root = payload_root();
    let owner = format!(
        "{}:{}",
        // SAFETY: getuid/getgid have no preconditions.
        unsafe { libc::getuid() },
        unsafe { libc::getgid() }
    );
    let out = Command::new("bash")
        .arg(pkg("scripts/postinstall"))
        // Installer's arguments: package path, install location, target volume.
        .args(["/tmp/devicetrust.pkg", "/", "/"])
        .env("PATH", fakes.path_env())
        .env("DEVICETRUST_PKG_ROOT", root.path())
        .env("DEVICETRUST_PKG_OWNER", owner)
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stdout =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (code, stdout, fakes, root)
}

#[test]
fn postinstall_loads_the_job_into_the_console_users_gui_domain() {
    let (code, out, fakes, root) = postinstall("alice", 0);
    assert_eq!(code, 0, "{out}");
    let plist = root
        .path()
        .join("Library/LaunchAgents/com.devicetrust.renew.plist");
    assert_eq!(
        fakes.calls("launchctl"),
        [
            "bootout gui/501/com.devicetrust.renew".to_owned(),
            format!("bootstrap gui/501 {}", plist.display()),
        ]
    );
    assert_eq!(fakes.calls("stat"), ["-f %Su /dev/console"]);
    assert_eq!(mode(&root.path().join("usr/local/bin/devicetrust")), 0o755);
    assert_eq!(mode(&plist), 0o644);
    assert!(
        out.contains("INFO: loaded com.devicetrust.renew for alice"),
        "{out}"
    );
}

#[test]
fn postinstall_loads_nothing_at_the_login_window() {
    for user in ["loginwindow", "root", "_mbsetupuser", ""] {
        let (code, out, fakes, root) = postinstall(user, 0);
        assert_eq!(code, 0, "{user}: {out}");
        assert!(fakes.calls("launchctl").is_empty(), "{user}");
        assert!(out.contains("next login"), "{user}: {out}");
        // The modes are fixed whoever is logged in.
        assert_eq!(mode(&root.path().join("usr/local/bin/devicetrust")), 0o755);
    }
}

#[test]
fn a_failed_bootstrap_warns_but_does_not_fail_the_install() {
    let (code, out, fakes, _root) = postinstall("alice", 5);
    assert_eq!(code, 0, "{out}");
    assert_eq!(fakes.calls("launchctl").len(), 2);
    assert!(out.contains("WARN: could not load"), "{out}");
}

#[test]
fn postinstall_refuses_an_incomplete_payload() {
    let fakes = Fakes::new();
    fakes.add("launchctl", "exit 0");
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(pkg("scripts/postinstall"))
        .env("PATH", fakes.path_env())
        .env("DEVICETRUST_PKG_ROOT", root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ERROR: "));
    assert!(fakes.calls("launchctl").is_empty());
}

#[test]
fn the_global_launch_agent_renews_daily_in_the_background() {
    let value = plist::Value::from_file(pkg(GLOBAL_PLIST)).unwrap();
    let d = value.as_dictionary().unwrap();
    let s = |k: &str| d.get(k).and_then(|v| v.as_string()).unwrap_or_default();
    let n = |k: &str| d.get(k).and_then(|v| v.as_signed_integer());
    let b = |k: &str| d.get(k).and_then(|v| v.as_boolean());
    assert_eq!(s("Label"), schedule::LABEL);
    let args: Vec<&str> = d
        .get("ProgramArguments")
        .and_then(|v| v.as_array())
        .unwrap()
        .iter()
        .map(|v| v.as_string().unwrap())
        .collect();
    assert_eq!(args, [schedule::DEFAULT_PROGRAM, "renew"]);
    assert_eq!(b("RunAtLoad"), Some(true));
    // Hourly: `renew` itself waits for the device's day and minute.
    assert_eq!(n("StartInterval"), Some(3600));
    assert_eq!(s("ProcessType"), "Background");
    assert_eq!(b("LowPriorityIO"), Some(true));
    let nice = n("Nice").unwrap();
    assert!(nice >= 0, "a background job must not outrank the user");
    assert_eq!(nice, schedule::NICE);
    // No log paths: a global plist has no ~ to put them under.
    assert!(d.get("StandardOutPath").is_none() && d.get("StandardErrorPath").is_none());
}

/// Runs build-pkg.sh with `uname -s` answering `os`; returns (exit code, stderr, fakes).
fn build_pkg(os: &str, env: &[(&str, &str)]) -> (i32, String, Fakes) {
    let fakes = Fakes::new();
    fakes.add("uname", &format!("echo {os}"));
    for tool in [
        "cargo",
        "lipo",
        "codesign",
        "pkgbuild",
        "productbuild",
        "xcrun",
    ] {
        fakes.add(tool, "exit 0");
    }
    let mut cmd = Command::new("bash");
    cmd.arg(pkg("build-pkg.sh")).env("PATH", fakes.path_env());
    for var in ["APP_IDENTITY", "INSTALLER_IDENTITY", "NOTARY_PROFILE"] {
        cmd.env_remove(var);
    }
    let out = cmd.envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        fakes,
    )
}

#[test]
fn build_pkg_refuses_to_run_off_macos() {
    let (code, err, fakes) = build_pkg("Linux", &[]);
    assert_eq!(code, 1);
    assert!(err.starts_with("ERROR: ") && err.contains("macOS"), "{err}");
    assert!(fakes.calls("cargo").is_empty());
}

#[test]
fn build_pkg_names_every_missing_identity_before_building() {
    let (code, err, fakes) =
        build_pkg("Darwin", &[("APP_IDENTITY", "Developer ID Application: X")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("INSTALLER_IDENTITY") && err.contains("NOTARY_PROFILE"),
        "{err}"
    );
    assert!(!err.contains("APP_IDENTITY "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(fakes.calls("cargo").is_empty() && fakes.calls("codesign").is_empty());
}

#[test]
fn the_package_builds_the_agent_without_the_simulator() {
    let (_, _, fakes) = build_pkg(
        "Darwin",
        &[
            ("APP_IDENTITY", "Developer ID Application: X"),
            ("INSTALLER_IDENTITY", "Developer ID Installer: X"),
            ("NOTARY_PROFILE", "profile"),
        ],
    );
    let builds = fakes.calls("cargo");
    assert_eq!(builds.len(), 2, "{builds:?}");
    for call in builds {
        assert!(
            call.contains("build --release --locked --no-default-features"),
            "{call}"
        );
    }
}
