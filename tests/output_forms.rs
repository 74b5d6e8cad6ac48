//! What each command prints on stdout, in the forms the README states (cli.md's "Output and
//! exit codes"): prefixed lines from the ordinary commands, one JSON document under `--json`,
//! the EA's one `<result>` line, selftest's `PASS`/`FAIL`/`SKIP` lines, teamid's partition ID
//! and the version line. Jamf's policy logs, Extension Attributes and admins' scripts read them.

mod common;

use common::*;
use devicetrust::sim::{Endpoint, Fault};
use std::path::{Path, PathBuf};
use std::process::Command;

const PREFIXES: [&str; 4] = ["INFO: ", "WARN: ", "ERROR: ", "DEBUG: "];

/// Every stdout line of `run` is a log line, and a failed run has exactly one `ERROR:` line.
fn assert_prefixed(run: &Run, what: &str) {
    assert!(!run.stdout.is_empty(), "{what}: {run:?}");
    for line in run.stdout.lines() {
        assert!(
            PREFIXES.iter().any(|p| line.starts_with(p)),
            "{what}: {line:?} has no prefix: {run:?}"
        );
    }
    let errors = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("ERROR: "))
        .count();
    assert_eq!(errors, usize::from(run.code != 0), "{what}: {run:?}");
}

/// `run`'s stdout is one JSON document and nothing else.
fn json(run: &Run, what: &str) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{what}: not one JSON document ({e}): {run:?}"))
}

fn macho(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/macho")
        .join(name)
}

fn teamid(args: &[&str], file: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_devicetrust"))
        .arg("teamid")
        .args(args)
        .arg(macho(file))
        .output()
        .unwrap();
    Run::from(out)
}

#[test]
fn the_ordinary_commands_print_prefixed_lines_and_fail_with_one_error_line() {
    let env = Env::new(365);
    for args in [&["enroll"][..], &["status"], &["renew"], &["repair"]] {
        let run = if args[0] == "enroll" {
            env.enroll()
        } else {
            env.run(args)
        };
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert_prefixed(&run, &format!("{args:?}"));
    }
    // Failures: the org down for the renewal (`-v` adds the error's causes as `DEBUG:`), a
    // configuration error; then an uninstall.
    env.sim.inject(Endpoint::Renew, Fault::Status(500), None);
    let run = env.run(&["renew", "--force", "-v"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert_prefixed(&run, "a failed renewal");
    assert!(
        run.stdout.lines().any(|l| l.starts_with("DEBUG: ")),
        "{run:?}"
    );
    env.sim.clear_faults();
    let run = env.run(&["status", "--org-url", "http://acme.okta.com"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_prefixed(&run, "a configuration error");
    let run = env.run(&["uninstall"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_prefixed(&run, "uninstall");
}

#[test]
fn the_demo_prints_prefixed_lines() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_devicetrust"))
        .arg("demo")
        .env("DEVICETRUST_ROOT", root.path())
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{run:?}");
    assert_prefixed(&run, "demo");
}

#[test]
fn json_is_one_document_whether_the_command_works_or_fails() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let run = env.run(&["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(json(&run, "status --json")["status"], "Healthy");
    let run = env.run(&["selftest", "--json"]);
    assert!(
        json(&run, "selftest --json")["checks"].is_array(),
        "{run:?}"
    );
    // A configuration error: the document says so.
    for command in ["status", "selftest"] {
        let run = env.run(&[command, "--json", "--org-url", "http://acme.okta.com"]);
        assert_eq!(run.code, 2, "{command}: {run:?}");
        let doc = json(&run, command);
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
    }
}

#[test]
fn the_ea_prints_one_result_line_whatever_happens() {
    let env = Env::new(365);
    for (setup, expected) in [
        (None, "<result>Certificate Missing</result>\n"),
        (Some(&["enroll"][..]), "<result>Healthy</result>\n"),
    ] {
        if setup.is_some() {
            assert_eq!(env.enroll().code, 0);
        }
        let run = env.run(&["ea"]);
        assert_eq!((run.code, run.stdout.as_str()), (0, expected), "{run:?}");
        let run = env.run(&["ea", "--expiry"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
        assert!(
            run.stdout.starts_with("<result>") && run.stdout.ends_with("</result>\n"),
            "{run:?}"
        );
    }
    // A configuration error is a status, still one line.
    let run = env.run(&["ea", "--org-url", "http://acme.okta.com"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "<result>Not Configured</result>\n"),
        "{run:?}"
    );
}

#[test]
fn selftest_prints_a_line_per_check_then_one_info_line_counting_them() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let run = env.run(&["selftest"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let (last, checks) = lines.split_last().unwrap();
    assert!(!checks.is_empty(), "{run:?}");
    let mut counted = [0usize; 3];
    for line in checks {
        let (outcome, rest) = line.split_once(' ').unwrap();
        let slot = ["PASS", "FAIL", "SKIP"]
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or_else(|| panic!("{line:?}: not PASS, FAIL or SKIP"));
        counted[slot] += 1;
        let (name, evidence) = rest.split_once(": ").unwrap();
        assert!(!name.is_empty() && !evidence.is_empty(), "{line:?}");
    }
    assert_eq!(
        *last,
        format!(
            "INFO: selftest: {} passed, {} failed, {} skipped",
            counted[0], counted[1], counted[2]
        )
    );
    assert_eq!(run.code, i32::from(counted[1] > 0), "{run:?}");
}

#[test]
fn teamid_prints_the_partition_id_and_for_ad_hoc_code_an_error_after_it() {
    let run = teamid(&[], "signed-arm64");
    assert_eq!((run.code, run.stdout.as_str()), (0, "teamid:BQR82RBBHL\n"));
    let run = teamid(&["-v"], "signed-arm64");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            0,
            "teamid:BQR82RBBHL\nidentifier: com.tinyspeck.slackmacgap\n"
        )
    );

    let run = teamid(&["-v"], "adhoc-arm64");
    assert_eq!(run.code, 1, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let id = lines[0].strip_prefix("cdhash:").unwrap();
    assert!(
        id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{run:?}"
    );
    assert_eq!(lines[1], "identifier: a.out");
    assert_eq!(lines[2], format!("arm64: cdhash:{id}"));
    assert!(lines[3].starts_with("ERROR: "), "{run:?}");
    assert_eq!(lines.len(), 4, "{run:?}");

    let run = teamid(&[], "unsigned-x86_64");
    assert_eq!(run.code, 1, "{run:?}");
    assert_prefixed(&run, "unsigned code");
}

#[test]
fn version_is_one_line_as_command_and_flag() {
    for flag in ["version", "--version"] {
        let out = Command::new(env!("CARGO_BIN_EXE_devicetrust"))
            .arg(flag)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("devicetrust {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
