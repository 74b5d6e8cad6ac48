//! `devicetrust selftest` on the Linux host after an enrollment against the simulator: every
//! check passes; then three breakages (the NSS database, a browser's policy file, the renewal
//! timer), each named by the one check that fails, and `repair` brings all back to PASS.

mod common;

use common::*;
use std::path::PathBuf;

/// `selftest --json`'s checks as (name, result, evidence).
fn checks(env: &Env) -> (i32, Vec<(String, String, String)>) {
    let run = env.run(&["selftest", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {run:?}"));
    let checks = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["result"].as_str().unwrap().to_owned(),
                c["evidence"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (run.code, checks)
}

fn failing(checks: &[(String, String, String)]) -> Vec<String> {
    checks
        .iter()
        .filter(|(_, result, _)| result != "PASS")
        .map(|(name, _, _)| name.clone())
        .collect()
}

fn home(env: &Env) -> PathBuf {
    env.root.path().join("home").join(USER)
}

fn nss_tools() -> bool {
    let found = std::process::Command::new("certutil")
        .arg("-H")
        .output()
        .is_ok();
    assert!(
        found || std::env::var("CI").is_err(),
        "certutil is missing (Debian package libnss3-tools)"
    );
    found
}

#[test]
fn selftest_passes_after_enroll_and_names_each_breakage() {
    if !nss_tools() {
        eprintln!("skipped: certutil is not installed");
        return;
    }
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);

    let (code, all) = checks(&env);
    assert_eq!(code, 0, "{all:?}");
    let names: Vec<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "identity",
            "nss identity",
            "browser policy (Google Chrome)",
            "browser policy (Chromium)",
            "browser policy (Microsoft Edge)",
            "renewal job",
            "plan"
        ]
    );
    assert!(failing(&all).is_empty(), "{all:?}");
    let evidence = |name: &str| all.iter().find(|c| c.0 == name).unwrap().2.clone();
    assert!(evidence("identity").contains("verified with the certificate's key"));
    assert!(evidence("nss identity").contains("certutil -K lists its key"));
    assert!(evidence("renewal job").contains("devicetrust-renew.timer installed"));
    assert!(
        evidence("plan").starts_with("the same twice: Ready, "),
        "{}",
        evidence("plan")
    );

    // The human form: one line per check.
    // Without the NSS vouch the plan asks certutil: still the same twice, and nothing it
    // looks at is written (a look that left a vouch would read differently the second time).
    let vouch = home(&env).join(".local/state/devicetrust/nss-verified.json");
    std::fs::remove_file(&vouch).unwrap();
    let (code, all) = checks(&env);
    assert_eq!(code, 0, "{all:?}");
    assert!(!vouch.exists());

    let run = env.run(&["selftest"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.starts_with("INFO:"))
        .collect();
    assert_eq!(lines.len(), 7, "{run:?}");
    assert!(lines.iter().all(|l| l.starts_with("PASS ")), "{run:?}");

    let breakages: [(&str, PathBuf); 3] = [
        ("nss identity", home(&env).join(".pki/nssdb")),
        (
            "browser policy (Google Chrome)",
            env.root
                .path()
                .join("etc/opt/chrome/policies/managed/devicetrust.json"),
        ),
        (
            "renewal job",
            home(&env).join(".config/systemd/user/devicetrust-renew.timer"),
        ),
    ];
    for (check, path) in breakages {
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        let (code, all) = checks(&env);
        assert_eq!(code, 1, "{check}: {all:?}");
        assert_eq!(failing(&all), [check], "{all:?}");
        let repaired = env.run(&["repair"]);
        assert_eq!(repaired.code, 0, "{repaired:?}");
        let (code, all) = checks(&env);
        assert_eq!((code, failing(&all)), (0, vec![]), "after repair: {all:?}");
    }
}

#[test]
fn selftest_without_an_identity_fails_the_identity_check_and_skips_what_needs_it() {
    let env = Env::new(365);
    let (code, all) = checks(&env);
    assert_eq!(code, 1, "{all:?}");
    assert_eq!(all[0].0, "identity");
    assert_eq!(all[0].1, "FAIL");
    assert!(all[0].2.contains("no certificate"), "{all:?}");
    assert!(all
        .iter()
        .filter(|c| !["identity", "renewal job", "plan"].contains(&c.0.as_str()))
        .all(|c| c.1 == "SKIP"));
    // The plan needs no identity: it says the same twice, and what it says.
    let plan = all.iter().find(|c| c.0 == "plan").unwrap();
    assert_eq!(plan.1, "PASS", "{all:?}");
    assert!(plan.2.contains("Blocked: No Org Token"), "{all:?}");
}
