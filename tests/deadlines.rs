//! A local user against root's read-only runs: whatever the user makes the NSS tools do (they
//! run under the user's uid), root's `ea` prints one `<result>` line and exits 0 within its
//! deadline, `status` names the tool that hung (exit 75), and nothing the agent started is
//! left running.
//!
//! The user is the real unprivileged account `devicetrust-user` (scripts/test.sh makes it),
//! enrolled by root as a Jamf policy would; the traps are what that user can set in their own
//! home: a FIFO where NSS expects its certificate database, a PKCS#11 module in `pkcs11.txt`
//! that blocks (and leaves a helper process behind). Needs root and NSS's tools; CI has both.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ACCOUNT: &str = "devicetrust-user";
/// `network.status_deadline_secs` for these runs: short, so the tests stay fast.
const DEADLINE: Duration = Duration::from_secs(3);
/// What the test itself adds to a run: starting the process, the machine's load.
const SLACK: Duration = Duration::from_secs(2);

/// An enrolled account's home with its NSS database, as root left it.
struct Scene {
    env: Env,
    home: PathBuf,
    uid: u32,
    gid: u32,
}

/// `None` (and a note) without root, the account or NSS's tools; under CI those are there.
fn enrolled() -> Option<Scene> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let account = Command::new("getent")
        .args(["passwd", ACCOUNT])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let tools = Path::new("/usr/bin/certutil").exists();
    let (true, Some(line), true) = (root, account, tools) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with {ACCOUNT} and libnss3-tools (scripts/test.sh)"
        );
        eprintln!("skipped: needs root, the account {ACCOUNT} and certutil");
        return None;
    };
    let fields: Vec<&str> = line.trim().split(':').collect();
    let (uid, gid) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    let env = Env::new(365);
    env.write_config(&format!(
        "[network]\nretry_base_delay_ms = 5\ntimeout_secs = 5\nconnect_timeout_secs = 2\n\
         status_deadline_secs = {}",
        DEADLINE.as_secs()
    ));
    // As `/` is: the user can reach their home.
    std::fs::set_permissions(env.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = env.root.path().join("home").join(ACCOUNT);
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    let scene = Scene {
        env,
        home,
        uid,
        gid,
    };
    let mut enroll = scene.env.command_for(ACCOUNT, &["enroll"]);
    enroll.arg("--org-token-file").arg(scene.env.token_file());
    let run = Run::from(enroll.output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert!(scene.database().join("cert9.db").is_file(), "{run:?}");
    assert_eq!(scene.ea().0.stdout, "<result>Healthy</result>\n");
    Some(scene)
}

impl Scene {
    fn database(&self) -> PathBuf {
        self.home.join(".pki/nssdb")
    }

    /// The user removes what the last writing run verified, so the next look runs the tools.
    fn forget_the_vouch(&self) {
        let vouch = self.home.join(".local/state/devicetrust/nss-verified.json");
        std::fs::remove_file(vouch).unwrap();
    }

    /// `path` made the user's, as if they had made it.
    fn give(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).unwrap();
    }

    /// Root's `args`, for the account, and how long it took.
    fn root(&self, args: &[&str]) -> (Run, Duration) {
        let started = Instant::now();
        let run = Run::from(self.env.command_for(ACCOUNT, args).output().unwrap());
        (run, started.elapsed())
    }

    fn ea(&self) -> (Run, Duration) {
        self.root(&["ea"])
    }

    /// The processes whose command line names this scene's root: what the agent started for
    /// this home and might have left behind.
    fn leftovers(&self) -> Vec<String> {
        let marker = self.env.root.path().to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&marker) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        found
    }

    /// Root's `ea`, `status` and `status --json` with the trap set: each answers in its own
    /// form within the deadline, naming certutil, and leaves nothing running.
    fn assert_answers_in_time(&self) {
        let (run, took) = self.ea();
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stdout, "<result>Agent Error</result>\n", "{run:?}");
        assert!(took < DEADLINE + SLACK, "ea took {took:?}: {run:?}");
        // The tool was stopped at its timeout, inside the deadline, and the EA says why.
        assert!(
            run.stderr.contains("certutil did not finish within"),
            "{run:?}"
        );
        assert_eq!(self.leftovers(), Vec::<String>::new(), "after ea");

        let (run, took) = self.root(&["status"]);
        assert_eq!(run.code, 75, "{run:?}");
        assert!(took < DEADLINE + SLACK, "status took {took:?}: {run:?}");
        assert!(
            run.error().contains("certutil did not finish within"),
            "{run:?}"
        );

        let (run, took) = self.root(&["status", "--json"]);
        assert_eq!(run.code, 75, "{run:?}");
        assert!(
            took < DEADLINE + SLACK,
            "status --json took {took:?}: {run:?}"
        );
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        assert!(
            doc["error"]
                .as_str()
                .is_some_and(|e| e.contains("certutil did not finish within")),
            "{doc}"
        );
        assert_eq!(doc["exit_code"], 75, "{doc}");
        assert_eq!(self.leftovers(), Vec::<String>::new(), "after status");

        // A plan looks at the database as `status` does: deferred, never a verdict.
        let (run, took) = self.root(&["ea", "--plan"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stdout, "<result>Agent Error</result>\n", "{run:?}");
        assert!(took < DEADLINE + SLACK, "ea --plan took {took:?}: {run:?}");
        let (run, took) = self.root(&["plan"]);
        assert_eq!(run.code, 75, "{run:?}");
        assert!(took < DEADLINE + SLACK, "plan took {took:?}: {run:?}");
        assert!(
            run.error().contains("certutil did not finish within"),
            "{run:?}"
        );
        assert_eq!(self.leftovers(), Vec::<String>::new(), "after plan");
    }
}

#[test]
fn a_fifo_at_the_certificate_database_cannot_hang_roots_ea_or_status() {
    let Some(scene) = enrolled() else {
        return;
    };
    let cert9 = scene.database().join("cert9.db");
    std::fs::rename(&cert9, scene.database().join("cert9.db.real")).unwrap();
    make_fifo(&cert9, 0o600);
    scene.give(&cert9);
    scene.forget_the_vouch();
    scene.assert_answers_in_time();

    // The writing runs defer too, and a hung tool is no reason to spend a certificate or set
    // anything aside: the store stays as it was.
    scene.env.write_config(&format!(
        "[network]\nretry_base_delay_ms = 5\ntimeout_secs = 5\nconnect_timeout_secs = 2\n\
         run_deadline_secs = {}",
        DEADLINE.as_secs()
    ));
    let store = scene.home.join(".local/state/devicetrust/identity");
    let before = snapshot(&store);
    let enrollments = scene.env.requests_to("/enroll/macos").len();
    for command in [&["repair"][..], &["enroll"], &["renew", "--force"]] {
        let mut cmd = scene.env.command_for(ACCOUNT, command);
        cmd.arg("--org-token-file").arg(scene.env.token_file());
        let started = Instant::now();
        let run = Run::from(cmd.output().unwrap());
        let took = started.elapsed();
        assert_eq!(run.code, 75, "{command:?}: {run:?}");
        assert!(
            took < DEADLINE + SLACK,
            "{command:?} took {took:?}: {run:?}"
        );
        assert!(
            run.error().contains("certutil did not finish within"),
            "{command:?}: {run:?}"
        );
        if command != ["renew", "--force"] {
            assert_eq!(snapshot(&store), before, "{command:?}");
        }
        assert_eq!(scene.leftovers(), Vec::<String>::new(), "after {command:?}");
    }
    assert_eq!(scene.env.requests_to("/enroll/macos").len(), enrollments);
}

/// Every file below `dir`, path -> bytes.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                files.insert(entry.path(), std::fs::read(entry.path()).unwrap());
            }
        }
    }
    files
}

/// A PKCS#11 module whose loading blocks for good, after starting a helper process that would
/// outlive certutil: NSS loads every module `pkcs11.txt` names when it opens the database.
const BLOCKING_MODULE: &str = r#"
#include <stdio.h>
#include <unistd.h>

int C_GetFunctionList(void **list) {
    pid_t helper = fork();
    if (helper == 0) {
        for (;;) pause();
    }
    FILE *pids = fopen(PIDS, "w");
    if (pids) {
        fprintf(pids, "%d %d\n", (int)getpid(), (int)helper);
        fclose(pids);
    }
    (void)list;
    for (;;) pause();
}
"#;

#[test]
fn a_blocking_pkcs11_module_cannot_hang_roots_ea_or_status() {
    let Some(scene) = enrolled() else {
        return;
    };
    let source = scene.home.join("blocking.c");
    let module = scene.home.join("blocking.so");
    let pids = scene.home.join("module-pids");
    std::fs::write(&source, BLOCKING_MODULE).unwrap();
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&module)
        .arg(format!("-DPIDS=\"{}\"", pids.display()))
        .arg(&source)
        .output();
    let built = match built {
        Ok(out) if out.status.success() => out,
        other => {
            // Cargo links with cc, so a test machine has it.
            panic!("cannot build the test's PKCS#11 module with cc: {other:?}");
        }
    };
    drop(built);
    scene.give(&module);
    // The user's own module, as `modutil -add` would list it.
    let modules = scene.database().join("pkcs11.txt");
    let mut text = std::fs::read_to_string(&modules).unwrap();
    text.push_str(&format!(
        "\nlibrary={}\nname=Blocking\n\n",
        module.display()
    ));
    std::fs::write(&modules, text).unwrap();
    scene.forget_the_vouch();

    scene.assert_answers_in_time();
    // certutil and the helper its module started went with their process group.
    let started: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(started.len(), 2);
    for pid in started {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} of the module is still there"
        );
    }
}
