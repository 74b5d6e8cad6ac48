//! Browser auto-selection, the renewal job, repair and uninstall, end to end on the Linux
//! backends (Chrome/Chromium/Edge policy files, systemd user units) under a temporary root.

mod common;

use common::*;
use devicetrust::integrations::chrome;
use std::path::PathBuf;

const POLICY_DIRS: [&str; 3] = [
    "etc/opt/chrome/policies/managed",
    "etc/chromium/policies/managed",
    "etc/opt/edge/policies/managed",
];

fn our_entry() -> String {
    chrome::policy_entry("sim-devicetrust.localhost", &chrome::IssuerFilter::okta())
}

fn policy_file(env: &Env, dir: &str, name: &str) -> PathBuf {
    env.root.path().join(dir).join(name)
}

fn policy_list(env: &Env, dir: &str, name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(policy_file(env, dir, name)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["AutoSelectCertificateForUrls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn unit_dir(env: &Env) -> PathBuf {
    env.root
        .path()
        .join("home")
        .join(USER)
        .join(".config/systemd/user")
}

#[test]
fn enroll_configures_every_browser_and_the_renewal_job() {
    let env = Env::new(365);
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    for dir in POLICY_DIRS {
        assert_eq!(
            policy_list(&env, dir, "devicetrust.json"),
            [serde_json::Value::String(our_entry())],
            "{dir}"
        );
    }
    assert!(unit_dir(&env).join("devicetrust-renew.service").exists());
    assert!(unit_dir(&env).join("devicetrust-renew.timer").exists());
    assert!(
        run.stdout.contains("INFO: renewal job installed"),
        "{run:?}"
    );
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn a_missing_browser_entry_is_reported_and_repaired() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    std::fs::remove_file(policy_file(&env, POLICY_DIRS[1], "devicetrust.json")).unwrap();
    assert_eq!(env.ea(), "<result>Browser Policy Missing</result>\n");

    let run = env.run(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("browser auto-selection written to"),
        "{run:?}"
    );
    assert!(run.stdout.contains("chromium"), "{run:?}");
    assert_eq!(env.ea(), "<result>Healthy</result>\n");

    // Nothing to do the second time, and it says so without listing changes.
    let run = env.run(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("nothing needed repair"), "{run:?}");
    assert!(!run.stdout.contains("written"), "{run:?}");
}

#[test]
fn a_missing_renewal_job_is_reported_and_repaired() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    std::fs::remove_file(unit_dir(&env).join("devicetrust-renew.timer")).unwrap();
    assert_eq!(env.ea(), "<result>Renewal Job Missing</result>\n");
    let run = env.run(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("renewal job installed"), "{run:?}");
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn the_browser_link_comes_after_the_certificate_links() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    std::fs::remove_file(policy_file(&env, POLICY_DIRS[0], "devicetrust.json")).unwrap();
    std::fs::remove_file(env.generation().join("key.pem")).unwrap();
    assert_eq!(env.ea(), "<result>Private Key Missing</result>\n");
}

#[test]
fn foreign_policy_entries_and_files_survive_enroll_and_uninstall() {
    let env = Env::new(365);
    let dir = POLICY_DIRS[0];
    std::fs::create_dir_all(env.root.path().join(dir)).unwrap();
    // Our own file already holds a foreign entry, a malformed string and another policy.
    let foreign = r#"{"pattern":"https://intranet.example","filter":{"ISSUER":{"CN":"Corp CA"}}}"#;
    let ours_reordered = r#"{ "filter": {"ISSUER": {"CN": "MTLS Certificate Authority"}}, "pattern": "https://sim-devicetrust.localhost" }"#;
    std::fs::write(
        policy_file(&env, dir, "devicetrust.json"),
        serde_json::json!({
            "AutoSelectCertificateForUrls": [foreign, "{not json", ours_reordered, ours_reordered],
            "HomepageLocation": "https://intranet.example",
        })
        .to_string(),
    )
    .unwrap();
    let other = policy_file(&env, dir, "corp.json");
    std::fs::write(&other, r#"{"BookmarkBarEnabled": true}"#).unwrap();

    assert_eq!(env.enroll().code, 0);
    let list = policy_list(&env, dir, "devicetrust.json");
    assert_eq!(
        list.len(),
        3,
        "duplicates of ours collapse to one: {list:?}"
    );
    assert_eq!(list[0], foreign);
    assert_eq!(list[1], "{not json");
    assert_eq!(env.ea(), "<result>Healthy</result>\n");

    assert_eq!(env.run(&["uninstall"]).code, 0);
    let text = std::fs::read_to_string(policy_file(&env, dir, "devicetrust.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["AutoSelectCertificateForUrls"],
        serde_json::json!([foreign, "{not json"])
    );
    assert_eq!(v["HomepageLocation"], "https://intranet.example");
    assert_eq!(
        std::fs::read_to_string(&other).unwrap(),
        r#"{"BookmarkBarEnabled": true}"#
    );
    // The directories where the agent was alone are clean again.
    assert!(!policy_file(&env, POLICY_DIRS[1], "devicetrust.json").exists());
    assert!(!unit_dir(&env).join("devicetrust-renew.timer").exists());
}

#[test]
fn renewal_starts_at_this_devices_own_point_in_the_window() {
    // 40 days of validity: inside the spread (30 to 44 days before expiry), so whether a device
    // renews depends on its own offset. docs/architecture.md ("Fleet renewal arithmetic"):
    // the first 8 bytes of SHA-256 of the UUID, big-endian, mod 15, plus cli.md's 30 days.
    //   DEVICE_UUID: e71325a623399819 mod 15 = 2, so from 32 days before expiry: not due.
    //   EARLY_UUID:  43b7056cc680e12d mod 15 = 14, so from 44 days before expiry: due.
    const EARLY_UUID: &str = "0F3C1D2E-4B5A-4C6D-8E9F-000000000011";
    for (uuid, due, says) in [
        (DEVICE_UUID, false, "(32 days before expiry): nothing to do"),
        (EARLY_UUID, true, "renewing the certificate (39 days left)"),
    ] {
        let env = Env::new(40);
        let run = |args: &[&str]| {
            let mut cmd = env.command_for_device(uuid, args);
            cmd.arg("--org-token-file").arg(env.token_file());
            Run::from(cmd.output().unwrap())
        };
        assert_eq!(run(&["enroll"]).code, 0);
        let serial = env.certificate().serial_hex;
        let run = run(&["renew"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(
            env.certificate().serial_hex != serial,
            due,
            "{uuid}: {run:?}"
        );
        assert!(run.stdout.contains(says), "{uuid}: {run:?}");
        assert_eq!(
            env.requests_to("/renew/macos").len(),
            usize::from(due),
            "{uuid}"
        );
    }

    // An explicit window is the admin's decision: exactly N days, no spread either way.
    let env = Env::new(40);
    assert_eq!(env.enroll().code, 0);
    let serial = env.certificate().serial_hex;
    let run = env.run(&["renew", "--renew-before-days", "30"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        env.certificate().serial_hex,
        serial,
        "39 days left, not due"
    );
    let run = env.run(&["renew", "--renew-before-days", "45"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_ne!(env.certificate().serial_hex, serial);
}

#[test]
fn repair_without_a_certificate_says_to_enroll() {
    let env = Env::new(365);
    let run = env.run(&["repair"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("devicetrust enroll"), "{run:?}");
}

#[test]
fn a_renewal_reapplies_what_belongs_to_the_new_identity() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    std::fs::remove_file(policy_file(&env, POLICY_DIRS[0], "devicetrust.json")).unwrap();
    assert_eq!(env.ea(), "<result>Browser Policy Missing</result>\n");
    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("browser auto-selection written"),
        "{run:?}"
    );
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn a_fix_it_that_cannot_fix_a_link_fails_with_one_error_line() {
    let certutil = std::path::Path::new("/usr/bin/certutil");
    if !certutil.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "libnss3-tools must be installed under CI"
        );
        eprintln!("skipped: certutil is not installed");
        return;
    }
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    // A database with a password, which the agent does not use (Chrome creates it without).
    let db = env.root.path().join("home").join(USER).join(".pki/nssdb");
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let password = env.root.path().join("nss-password");
    std::fs::write(&password, "a database password\n").unwrap();
    let created = std::process::Command::new(certutil)
        .arg("-N")
        .arg("-d")
        .arg(format!("sql:{}", db.display()))
        .arg("-f")
        .arg(&password)
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    assert_eq!(env.ea(), "<result>App Access Incomplete</result>\n");

    let run = env.run(&["repair"]);
    assert_eq!(run.code, 1, "{run:?}");
    let error = run.error();
    assert!(
        error.starts_with("ERROR: NSS database could not be repaired: ")
            && error.contains("protected by a password"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("nothing needed repair"), "{run:?}");
    assert_eq!(env.ea(), "<result>App Access Incomplete</result>\n");
}
