//! A local user against root: the user edits everything of the agent's they can write (the
//! enrollment record in their state folder, its copy beside the identity) to point root's
//! runs at a server, a CA, a host and a folder of their own. Root's runs, and the user's own
//! renewal job, must not follow: root takes settings only from root-owned places.
//!
//! The user is a real unprivileged account (`devicetrust-user`, made by scripts/test.sh), and
//! the edits are made as that account, so the test also shows they can make them. Needs root;
//! CI runs as root.

mod common;

use common::*;
use devicetrust::pki::CertificateInfo;
use devicetrust::sim::{SimConfig, Simulator};
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const ACCOUNT: &str = "devicetrust-user";

/// The account as the password database has it.
struct Account {
    uid: u32,
    gid: u32,
}

fn account() -> Option<Account> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let out = Command::new("getent").args(["passwd", ACCOUNT]).output();
    let line = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match (root, line) {
        (true, Some(line)) => {
            let fields: Vec<&str> = line.trim().split(':').collect();
            Some(Account {
                uid: fields[2].parse().unwrap(),
                gid: fields[3].parse().unwrap(),
            })
        }
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI runs as root with the account {ACCOUNT} (scripts/test.sh makes it)"
            );
            eprintln!("skipped: needs root and the account {ACCOUNT}");
            None
        }
    }
}

/// The real org (the simulator of `env`), a server of the user's own, and the user's home.
struct Scene {
    env: Env,
    theirs: Simulator,
    account: Account,
    home: PathBuf,
    /// The folder the user names as the store.
    elsewhere: PathBuf,
}

impl Scene {
    /// A device enrolled by a Jamf policy that passed only flags (no configuration file),
    /// certificates valid for `days` days.
    fn enrolled(days: u64) -> Option<Scene> {
        let account = account()?;
        let env = Env::new(days);
        std::fs::remove_file(env.etc().join("config.toml")).unwrap();
        // As `/` is: the user can reach their home and read root's 0644 files.
        std::fs::set_permissions(env.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = env.root.path().join("home").join(ACCOUNT);
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(account.uid), Some(account.gid)).unwrap();
        let theirs = Simulator::start(SimConfig {
            validity: Duration::from_secs(days * DAY),
            ..SimConfig::default()
        })
        .unwrap();
        let elsewhere = env.root.path().join("elsewhere");
        let scene = Scene {
            env,
            theirs,
            account,
            home,
            elsewhere,
        };
        let run = scene.root(&[
            "enroll",
            "--org-url",
            &scene.env.sim.org_url(),
            "--ca-file",
            scene.env.etc().join("tls-ca.pem").to_str().unwrap(),
            "--org-token-file",
            scene.env.token_file().to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{run:?}");
        Some(scene)
    }

    /// The agent as root (a Jamf policy), acting for the account.
    fn root(&self, args: &[&str]) -> Run {
        Run::from(self.env.command_for(ACCOUNT, args).output().unwrap())
    }

    /// Root with the org token only: no org URL, no CA file.
    fn root_with_token(&self, args: &[&str]) -> Run {
        let mut cmd = self.env.command_for(ACCOUNT, args);
        cmd.arg("--org-token-file").arg(self.env.token_file());
        Run::from(cmd.output().unwrap())
    }

    /// `argv` run as the account, as the account's own processes run.
    fn as_user(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.account.uid))
            .arg(format!("--regid={}", self.account.gid))
            .arg("--clear-groups")
            .arg("--")
            .args(argv);
        cmd
    }

    fn state_dir(&self) -> PathBuf {
        self.home.join(".local/state/devicetrust")
    }

    fn root_record(&self) -> PathBuf {
        self.env
            .root
            .path()
            .join("var/lib/devicetrust/users")
            .join(format!("{ACCOUNT}.json"))
    }

    /// Everything a user-writable record can say, aimed at the user's own things.
    fn planted(&self) -> Value {
        json!({
            "method": "okta",
            "org_url": self.theirs.org_url(),
            "ca_file": self.home.join("their-ca.pem"),
            "cert_auth_host": "*",
            "cell": "example.com",
            "store": format!("file:{}", self.elsewhere.display()),
            "scep_url": "https://127.0.0.1:1/scep",
            "scep_ca_fingerprint": "ab".repeat(32),
            "device_uuid": "EVIL-UUID",
            "enrolled_at": "2026-01-01T00:00:00Z",
        })
    }

    /// The user writes `record` over every copy of the record in their home (the state file
    /// and the copy in each stored generation), and their server's CA beside it.
    fn user_edits_records(&self, record: &Value) {
        let staged = tempfile::tempdir().unwrap();
        std::fs::set_permissions(staged.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let text = staged.path().join("record.json");
        std::fs::write(&text, serde_json::to_vec_pretty(record).unwrap()).unwrap();
        let ca = staged.path().join("ca.pem");
        std::fs::write(&ca, self.theirs.tls_ca_pem()).unwrap();
        let mut targets = vec![self.state_dir().join("state.json")];
        let store = self.state_dir().join("identity");
        if let Ok(entries) = std::fs::read_dir(&store) {
            for entry in entries.flatten() {
                if entry.path().join("record.json").exists() {
                    targets.push(entry.path().join("record.json"));
                }
            }
        }
        let mut copies = vec![(ca, self.home.join("their-ca.pem"))];
        copies.extend(targets.into_iter().map(|t| (text.clone(), t)));
        for (from, to) in copies {
            let status = self
                .as_user(&["cp", from.to_str().unwrap(), to.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success(), "the user can write {}", to.display());
        }
    }

    /// The user deletes their identity (their own files): the next enroll must enroll.
    fn user_deletes_identity(&self) {
        let store = self.state_dir().join("identity");
        let status = self
            .as_user(&["rm", "-rf", store.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Every entry of every browser policy file under the root.
    fn policy_patterns(&self) -> Vec<String> {
        let mut patterns = Vec::new();
        for dir in POLICY_DIRS {
            let Ok(entries) = std::fs::read_dir(self.env.root.path().join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let doc: Value =
                    serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
                for item in doc["AutoSelectCertificateForUrls"].as_array().unwrap() {
                    let parsed: Value = serde_json::from_str(item.as_str().unwrap()).unwrap();
                    patterns.push(parsed["pattern"].as_str().unwrap().to_owned());
                }
            }
        }
        patterns
    }

    /// Nothing of the user's choosing was reached: their server saw no request, every policy
    /// names the real host, their folder was never created.
    fn assert_unsteered(&self, after: &str) {
        assert_eq!(
            self.theirs.requests().len(),
            0,
            "after {after}: the user's server was asked: {:?}",
            self.theirs.requests()
        );
        let patterns = self.policy_patterns();
        assert!(!patterns.is_empty(), "after {after}");
        for pattern in patterns {
            assert_eq!(
                pattern,
                format!("https://{}", devicetrust::sim::CERT_AUTH_HOST),
                "after {after}"
            );
        }
        assert!(!self.elsewhere.exists(), "after {after}: the user's folder");
    }
}

const POLICY_DIRS: [&str; 3] = [
    "etc/opt/chrome/policies/managed",
    "etc/chromium/policies/managed",
    "etc/opt/edge/policies/managed",
];

#[test]
fn root_keeps_its_own_record_which_the_user_cannot_write() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let meta = std::fs::metadata(scene.root_record()).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644));
    let record: Value =
        serde_json::from_slice(&std::fs::read(scene.root_record()).unwrap()).unwrap();
    assert_eq!(record["org_url"], scene.env.sim.org_url());
    assert_eq!(record["cert_auth_host"], devicetrust::sim::CERT_AUTH_HOST);
    let status = scene
        .as_user(&[
            "sh",
            "-c",
            &format!("echo '{{}}' > '{}'", scene.root_record().display()),
        ])
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "the user cannot write root's record"
    );
    // What the user's home holds belongs to them, the timer's link included: every entry,
    // links not followed.
    let wants = scene
        .home
        .join(".config/systemd/user/timers.target.wants/devicetrust-renew.timer");
    assert!(std::fs::symlink_metadata(&wants)
        .unwrap()
        .file_type()
        .is_symlink());
    let mut pending = vec![scene.home.clone()];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (scene.account.uid, scene.account.gid),
            "{} is not the user's",
            path.display()
        );
        seen += 1;
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen > 15, "{seen} entries");
}

#[test]
fn root_runs_given_only_the_token_go_where_root_enrolled_not_where_the_user_says() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let enrolls = scene.env.requests_to("/enroll/macos").len();

    // Enroll, token only, after the user replaced the records and deleted the identity.
    scene.user_edits_records(&scene.planted());
    scene.user_deletes_identity();
    scene.user_edits_records(&scene.planted());
    let run = scene.root_with_token(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(scene.env.requests_to("/enroll/macos").len(), enrolls + 1);
    scene.assert_unsteered("enroll");

    // Repair and the revoke-and-re-enroll flow, after fresh edits.
    scene.user_edits_records(&scene.planted());
    let run = scene.root(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    scene.assert_unsteered("repair");
    scene.user_edits_records(&scene.planted());
    let run = scene.root_with_token(&["uninstall", "--reenroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(scene.env.requests_to("/enroll/macos").len(), enrolls + 2);
    scene.assert_unsteered("uninstall --reenroll");

    // The enrollment went to the real org under the real device's name, not the planted one.
    let last = scene.env.requests_to("/enroll/macos").pop().unwrap();
    let body = String::from_utf8_lossy(&last.body);
    assert!(!body.contains("EVIL-UUID"), "{body}");

    // status names root's record as the source of every setting it took from a record.
    scene.user_edits_records(&scene.planted());
    let run = scene.root(&["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["org_url"], scene.env.sim.org_url());
    assert_eq!(status["sources"]["org_url"], "enrollment record");
    assert_eq!(status["sources"]["ca_file"], "enrollment record");
    assert_eq!(status["sources"]["cert_auth_host"], "enrollment record");
    // Every configuration key, and every setting a record carries: none from the user's copy.
    let planted = scene.planted();
    let record_keys = planted
        .as_object()
        .unwrap()
        .keys()
        .map(|k| match k.as_str() {
            "scep_url" => "scep.url".to_owned(),
            "scep_ca_fingerprint" => "scep.ca_fingerprint".to_owned(),
            other => other.to_owned(),
        });
    let keys: Vec<String> = devicetrust::config::keys::all()
        .into_keys()
        .chain(record_keys)
        .collect();
    assert!(keys.len() > 40, "{keys:?}");
    for key in &keys {
        let source = &status["sources"][key];
        assert!(
            source.is_null()
                || [
                    "flag",
                    "environment",
                    "managed preferences",
                    "file",
                    "enrollment record",
                    "default"
                ]
                .contains(&source.as_str().unwrap()),
            "a root run took {key} from {source}"
        );
    }
    assert_eq!(
        status["store"],
        format!("file:{}", scene.state_dir().join("identity").display())
    );
}

#[test]
fn the_users_own_renewal_job_follows_roots_record_not_the_users_copy() {
    // Certificates of 20 days are always inside the 30-day window: every renewal run renews.
    let Some(scene) = Scene::enrolled(20) else {
        return;
    };
    let renewals = scene.env.requests_to("/renew/macos").len();
    scene.user_edits_records(&scene.planted());
    let unit = scene
        .home
        .join(".config/systemd/user/devicetrust-renew.service");
    let text = std::fs::read_to_string(unit).unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let argv: Vec<&str> = exec.split(' ').collect();
    let mut cmd = scene.as_user(&argv);
    for (key, _) in std::env::vars() {
        if key.starts_with("DEVICETRUST_") {
            cmd.env_remove(key);
        }
    }
    let run = Run::from(cmd.env("DEVICETRUST_USER", ACCOUNT).output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(scene.env.requests_to("/renew/macos").len(), renewals + 1);
    assert_eq!(scene.theirs.requests().len(), 0);
    assert!(!scene.elsewhere.exists());
    // The job, running as the user, could not touch root's record.
    let record: Value =
        serde_json::from_slice(&std::fs::read(scene.root_record()).unwrap()).unwrap();
    assert_eq!(record["org_url"], scene.env.sim.org_url());
}

/// A record an older agent left in the user's home, before root kept its own.
fn older_agents_record(scene: &Scene, record: &Value) {
    std::fs::remove_file(scene.root_record()).unwrap();
    scene.user_edits_records(record);
}

#[test]
fn a_users_record_from_before_is_migrated_only_where_it_agrees() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    // Disagrees with the configuration (which names the real org): ignored, with a WARN.
    older_agents_record(&scene, &scene.planted());
    let real_org = scene.env.sim.org_url();
    let run = scene.root(&["repair", "--org-url", &real_org]);
    assert!(
        run.stdout.contains("WARN: ignoring the enrollment record"),
        "{run:?}"
    );
    assert_eq!(scene.theirs.requests().len(), 0);
    assert!(!scene.elsewhere.exists());

    // Agrees on the org: migrated, and root's own record written.
    let mut agreeing = scene.planted();
    agreeing["org_url"] = json!(real_org);
    older_agents_record(&scene, &agreeing);
    let run = scene.root(&[
        "repair",
        "--org-url",
        &real_org,
        "--ca-file",
        scene.env.etc().join("tls-ca.pem").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("taking over the enrollment record"),
        "{run:?}"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(scene.root_record()).unwrap()).unwrap();
    assert_eq!(record["org_url"], real_org);
    // Only what the configuration states came along: not the user's store, host or device.
    assert_eq!(record["store"], Value::Null);
    assert_eq!(record["device_uuid"], Value::Null);
    assert_eq!(record["cert_auth_host"], devicetrust::sim::CERT_AUTH_HOST);
    scene.assert_unsteered("migration");

    // With no configuration at all, nothing can agree: the copy is not used.
    older_agents_record(&scene, &agreeing);
    let run = scene.root(&["status", "--json"]);
    let status: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["status"], "Not Configured", "{run:?}");
}

#[test]
fn a_bad_host_is_refused_wherever_it_comes_from() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let before = scene.policy_patterns();
    // Root's own record (say an admin edited it by hand): exit 2, nothing written.
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(scene.root_record()).unwrap()).unwrap();
    record["cert_auth_host"] = json!("*");
    std::fs::write(scene.root_record(), serde_json::to_vec(&record).unwrap()).unwrap();
    let run = scene.root(&["repair"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.error().contains("cert_auth_host"), "{run:?}");
    assert_eq!(scene.policy_patterns(), before);

    // Okta's metadata: exit 1, nothing written.
    record["cert_auth_host"] = Value::Null;
    std::fs::write(scene.root_record(), serde_json::to_vec(&record).unwrap()).unwrap();
    scene.env.sim.set_cert_auth_host("*.okta.com");
    let run = scene.root(&["repair"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("certAuthDomain"), "{run:?}");
    assert_eq!(scene.policy_patterns(), before);
}

#[test]
fn files_root_takes_settings_or_secrets_from_must_be_roots_alone() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let config = scene.env.etc().join("config.toml");
    std::fs::write(
        &config,
        format!("org_url = {:?}\n", scene.env.sim.org_url()),
    )
    .unwrap();
    assert_eq!(scene.root(&["status"]).code, 0);
    // A configuration file the user owns, one anyone may write, a CA file and a token file
    // the user could replace: each refused by name, with exit 2, before anything happens.
    for (file, how) in [
        (config.clone(), "owner"),
        (config.clone(), "mode"),
        (scene.env.etc().join("tls-ca.pem"), "owner"),
        (scene.env.token_file(), "mode"),
    ] {
        let meta = std::fs::metadata(&file).unwrap();
        match how {
            "owner" => std::os::unix::fs::chown(&file, Some(scene.account.uid), None).unwrap(),
            _ => std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap(),
        }
        let run = scene.root_with_token(&[
            "uninstall",
            "--reenroll",
            "--ca-file",
            scene.env.etc().join("tls-ca.pem").to_str().unwrap(),
        ]);
        assert_eq!(run.code, 2, "{file:?} ({how}): {run:?}");
        assert!(run.error().contains("not root's alone"), "{run:?}");
        assert!(run.error().contains(file.to_str().unwrap()), "{run:?}");
        std::os::unix::fs::chown(&file, Some(0), None).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .unwrap();
    }
    assert_eq!(scene.theirs.requests().len(), 0);
    assert_eq!(scene.root(&["ea"]).stdout, "<result>Healthy</result>\n");
}

impl Scene {
    /// The user makes a certificate and key of their own with `subject` (self-signed, so
    /// `subject` is its issuer too), puts them in a new generation folder of their store and
    /// names it live. Returns the folder.
    fn user_plants_identity(&self, subject: &str) -> PathBuf {
        let store = self.state_dir().join("identity");
        let generation = store.join("id-ffffffffffffffffffff-planted");
        let script = format!(
            "set -e; mkdir '{g}'; openssl req -x509 -newkey rsa:2048 -nodes -days 365 \
             -subj '{subject}' -keyout '{g}/key.pem' -out '{g}/cert.pem' 2>/dev/null; \
             printf '%s' '{name}' > '{store}/CURRENT'",
            g = generation.display(),
            name = generation.file_name().unwrap().to_str().unwrap(),
            store = store.display(),
        );
        let status = self.as_user(&["sh", "-c", &script]).status().unwrap();
        assert!(
            status.success(),
            "the user can plant an identity in their store"
        );
        generation
    }

    /// Every browser policy file under the root, path -> bytes.
    fn policy_files(&self) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
        let mut files = std::collections::BTreeMap::new();
        for dir in POLICY_DIRS {
            for entry in std::fs::read_dir(self.env.root.path().join(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                files.insert(entry.path(), std::fs::read(entry.path()).unwrap());
            }
        }
        files
    }
}

#[test]
fn a_certificate_the_user_plants_is_another_cas_and_decides_nothing_machine_wide() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let policies = scene.policy_files();
    assert!(!policies.is_empty());
    let planted = scene.user_plants_identity("/CN=Attacker Chosen Issuer/O=Evil Org/OU=pwn");
    assert_eq!(
        scene.root(&["ea"]).stdout,
        "<result>Certificate From Another CA</result>\n"
    );
    let status = scene.root(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    for words in [
        "status: Certificate From Another CA",
        "issuer: OU=pwn,O=Evil Org,CN=Attacker Chosen Issuer",
        "not by Okta's device-trust CA",
        "SHA-256 ",
    ] {
        assert!(status.stdout.contains(words), "{words}: {status:?}");
    }
    let enrolls = scene.env.requests_to("/enroll/macos").len();

    // Root's Fix-It and a token-less enroll: refused, nothing machine-wide rewritten.
    let run = scene.root(&["repair"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("Attacker Chosen Issuer"), "{run:?}");
    assert_eq!(scene.policy_files(), policies, "repair rewrote a policy");
    let run = scene.root(&["enroll"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert_eq!(scene.policy_files(), policies, "enroll rewrote a policy");
    assert_eq!(scene.env.requests_to("/enroll/macos").len(), enrolls);

    // The Jamf policy, which has the token, replaces it: one certificate, Okta's filter,
    // and the planted folder kept aside, never deleted.
    let run = scene.root_with_token(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(scene.env.requests_to("/enroll/macos").len(), enrolls + 1);
    assert_eq!(scene.root(&["ea"]).stdout, "<result>Healthy</result>\n");
    assert_eq!(scene.policy_files(), policies, "the same entry, Okta's");
    assert!(!planted.exists());
    let kept: Vec<PathBuf> = std::fs::read_dir(planted.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("cert.pem").exists() && p.file_name().unwrap() != "CURRENT")
        .filter(|p| {
            std::fs::read_to_string(p.join("cert.pem")).is_ok_and(|pem| {
                CertificateInfo::from_pem(&pem)
                    .unwrap()
                    .issuer
                    .contains("Attacker")
            })
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("damaged-"));
}

#[test]
fn a_certificate_naming_oktas_ca_fools_only_the_users_own_report() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let policies = scene.policy_files();
    let enrolls = scene.env.requests_to("/enroll/macos").len();
    // Okta publishes no key for its CA, so the name is all that can be checked: the user's
    // own report may say Healthy (docs/reliability.md), but nothing machine-wide follows.
    scene.user_plants_identity("/CN=MTLS Certificate Authority/O=Evil Org/OU=pwn");
    let run = scene.root(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(scene.policy_files(), policies);
    let run = scene.root_with_token(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(scene.policy_files(), policies);
    assert_eq!(scene.env.requests_to("/enroll/macos").len(), enrolls);
}

#[test]
fn a_key_owned_by_anyone_but_the_user_is_refused_as_a_linked_one_is() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let key = {
        let current = std::fs::read_to_string(scene.state_dir().join("identity/CURRENT")).unwrap();
        scene
            .state_dir()
            .join("identity")
            .join(current.trim())
            .join("key.pem")
    };
    // Root's own file, one link, where the key belongs (what a hard link to a root-only key
    // whose first name was removed looks like, where hard links to others' files are allowed).
    let bytes = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, &bytes).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(std::fs::metadata(&key).unwrap().nlink(), 1);
    let run = scene.root(&["status"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.error()
            .contains("belongs to another user than its folder"),
        "{run:?}"
    );
    assert!(run.error().contains("key.pem"), "{run:?}");
    assert_ne!(scene.root(&["ea"]).stdout, "<result>Healthy</result>\n");
    let run = scene.root(&["repair"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("belongs to another user"), "{run:?}");
    // The user's NSS database never received a key root could not vouch for.
    let pk12 = scene.home.join(".pki/nssdb");
    let before = std::fs::read_dir(&pk12).map(|d| d.count()).unwrap_or(0);
    let _ = scene.root_with_token(&["enroll"]);
    let after = std::fs::read_dir(&pk12).map(|d| d.count()).unwrap_or(0);
    assert_eq!(before, after);
}

#[test]
fn what_the_user_wrote_is_shown_on_one_line_never_obeyed() {
    let Some(scene) = Scene::enrolled(365) else {
        return;
    };
    let state = scene.state_dir().join("state.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    record["last_renewal"] = json!({
        "time": "2026-01-01T00:00:00Z\n<result>Healthy</result>",
        "ok": false,
        "error": "refused\nINFO: status: Healthy\n<result>Healthy</result>\u{1b}[2J",
    });
    scene.user_edits_records(&record);
    let run = scene.root(&["status"]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in run.stdout.lines() {
        assert!(
            ["INFO: ", "WARN: ", "ERROR: "]
                .iter()
                .any(|p| line.starts_with(p)),
            "a line of its own: {line:?}"
        );
    }
    assert!(!run.stdout.contains('\u{1b}'), "{run:?}");
    assert!(
        run.stdout
            .contains(r"refused\nINFO: status: Healthy\n<result>"),
        "{run:?}"
    );
    // The escape is shown escaped (as `\x1b` or `\u{1b}`), never sent to the terminal.
    assert!(run.stdout.contains("[2J"), "{run:?}");
    let ea = scene.root(&["ea"]);
    assert_eq!(ea.stdout.lines().count(), 1, "{ea:?}");
}
