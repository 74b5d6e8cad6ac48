//! The promises an admin cannot see: secrets stay secret, a crash never leaves a device
//! without an identity, and the health chain reports the first broken link.

mod common;

use common::*;
use devicetrust::sim::{Endpoint, Fault};
use std::path::Path;

#[test]
fn the_org_token_appears_in_no_output_file_or_child_argv() {
    let env = Env::new(10);
    let token = env.sim.org_token();
    let trace_dir = tempfile::tempdir().unwrap();
    let trace_log = trace_dir.path().join("execve.log");

    let mut outputs = String::new();
    let mut traced = false;
    let mut run = |args: &[&str], with_token: bool| {
        let mut cmd = env.command(args);
        cmd.arg("-v");
        if with_token {
            cmd.env("DEVICETRUST_ORG_TOKEN", &token);
        }
        if let Some(under_strace) = execve_traced(&cmd, &trace_log) {
            cmd = under_strace;
            traced = true;
        }
        let run = Run::from(cmd.output().unwrap());
        outputs.push_str(&run.all_output());
        run
    };
    assert_eq!(run(&["enroll"], true).code, 0);
    run(&["status"], true);
    run(&["status", "--json"], true);
    run(&["ea"], true);
    assert_eq!(run(&["renew"], true).code, 0);
    // Failures too: their messages must not quote the secret either.
    env.sim.inject(Endpoint::Enroll, Fault::Status(400), None);
    run(&["uninstall", "--reenroll"], true);
    assert!(!outputs.is_empty());
    assert!(!outputs.contains(&token), "token in output:\n{outputs}");

    // Files the agent wrote: everything under the root except the admin's own token file.
    let mut files = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out)
            } else {
                out.push(e.path())
            }
        }
    }
    walk(env.root.path(), &mut files);
    for file in files.iter().filter(|f| **f != env.token_file()) {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&token),
            "token written to {}",
            file.display()
        );
    }
    // What really ran, as the kernel saw it: the agent's children (on Linux the NSS tools)
    // are there, and the token is in none of their command lines.
    if traced {
        let trace = std::fs::read_to_string(&trace_log).unwrap();
        let ran = executed(&trace);
        for tool in ["/certutil ", "/pk12util "] {
            assert!(ran.iter().any(|c| c.contains(tool)), "{tool}: {ran:#?}");
        }
        assert!(!trace.contains(&token), "token in a child's argv: {ran:#?}");
    }
    // The -v output names each child with its whole command line too (checked for the token
    // with the rest of the output above).
    let children = started_children(&outputs);
    assert!(
        children.iter().any(|c| c.contains("pk12util")),
        "{children:?}"
    );
    assert!(
        children.iter().any(|c| c.contains("certutil")),
        "{children:?}"
    );
}

/// The command lines of the children a run started, from its `-v` output.
fn started_children(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("DEBUG: starting "))
        .collect()
}

#[test]
fn the_private_key_is_only_in_the_store() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let key = env.key_pem();
    let body = key.lines().nth(1).unwrap().to_owned();
    for (path, bytes) in env.snapshot() {
        if path.starts_with(env.generation()) && path.ends_with("key.pem") {
            continue;
        }
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&body),
            "key material in {}",
            path.display()
        );
    }
    let run = env.run(&["status", "-v"]);
    assert!(!run.all_output().contains(&body));
}

/// Kills the renewal at `failpoint` and checks the device still has a usable identity.
fn crash_renewal_at(failpoint: &str) -> (String, String, String) {
    let env = Env::new(10);
    assert_eq!(env.enroll().code, 0);
    let old_serial = env.certificate().serial_hex;
    let mut cmd = env.command(&["renew"]);
    cmd.env("DEVICETRUST_FAILPOINT", failpoint);
    let out = cmd.output().unwrap();
    assert!(
        out.status.code().is_none(),
        "{failpoint}: the process should have died: {out:?}"
    );

    // The device holds a valid identity, old or new, never none. What the crash cut short
    // after the switch (putting the new identity in the NSS database) is named, not hidden.
    let status = env.status_json();
    assert!(
        status["status"] == "Healthy" || status["status"] == "App Access Incomplete",
        "{failpoint}: {status}"
    );
    let serial = status["serial"].as_str().unwrap().to_owned();
    // A later run finishes the job and sweeps what the crash left behind.
    let run = env.run(&["repair"]);
    assert_eq!(run.code, 0, "{failpoint}: {run:?}");
    assert_eq!(env.ea(), "<result>Healthy</result>\n", "{failpoint}");
    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{failpoint}: {run:?}");
    let generations = std::fs::read_dir(env.store_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(
        generations, 2,
        "{failpoint}: the live and the previous generation only"
    );
    (old_serial, serial, env.certificate().serial_hex)
}

#[test]
fn a_crash_after_writing_the_new_identity_keeps_the_old_one() {
    let (old, after_crash, _) = crash_renewal_at("store.new-written");
    assert_eq!(after_crash, old);
}

#[test]
fn a_crash_after_switching_keeps_the_new_one() {
    let (old, after_crash, _) = crash_renewal_at("store.switched");
    assert_ne!(after_crash, old);
}

#[test]
fn each_core_status_is_reached_by_breaking_one_link() {
    let env = Env::new(10);
    let ea = || env.ea();

    // Not Configured: no org URL anywhere.
    std::fs::write(env.etc().join("config.toml"), "").unwrap();
    assert_eq!(ea(), "<result>Not Configured</result>\n");
    assert_eq!(env.run(&["ea", "--expiry"]).stdout, "<result></result>\n");
    env.write_config("");

    assert_eq!(ea(), "<result>Certificate Missing</result>\n");
    assert_eq!(env.enroll().code, 0);
    assert_eq!(ea(), "<result>Healthy</result>\n");
    let expiry = env.run(&["ea", "--expiry"]).stdout;
    let not_after = env.certificate().not_after;
    let expected = format!(
        "<result>{:04}-{:02}-{:02} {:02}:{:02}:{:02}</result>\n",
        not_after.year(),
        u8::from(not_after.month()),
        not_after.day(),
        not_after.hour(),
        not_after.minute(),
        not_after.second()
    );
    assert_eq!(expiry, expected);

    // Renewal Failing: inside the window and the last attempt failed.
    env.sim.inject(Endpoint::Renew, Fault::Status(500), None);
    assert_eq!(env.run(&["renew"]).code, 1);
    assert_eq!(ea(), "<result>Renewal Failing</result>\n");
    env.sim.clear_faults();
    assert_eq!(env.run(&["renew"]).code, 0);
    assert_eq!(ea(), "<result>Healthy</result>\n");

    // Private Key Missing: a valid key that is another certificate's, a corrupt key, then no
    // key at all.
    let key = env.generation().join("key.pem");
    std::fs::copy(fixture("device.key"), &key).unwrap();
    assert_eq!(ea(), "<result>Private Key Missing</result>\n");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert_eq!(ea(), "<result>Private Key Missing</result>\n");
    std::fs::remove_file(&key).unwrap();
    assert_eq!(ea(), "<result>Private Key Missing</result>\n");

    // Certificate Missing: the certificate deleted.
    std::fs::remove_file(env.generation().join("cert.pem")).unwrap();
    assert_eq!(ea(), "<result>Certificate Missing</result>\n");
}

#[test]
fn ea_prints_exactly_one_line_even_when_everything_is_wrong() {
    let env = Env::new(365);
    std::fs::write(env.etc().join("config.toml"), "this is = not [toml").unwrap();
    let run = env.run(&["ea"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "<result>Not Configured</result>\n");
}

#[test]
fn status_json_is_one_document_with_every_field() {
    let env = Env::new(365);
    let status = env.status_json();
    for field in [
        "status",
        "method",
        "subject",
        "issuer",
        "serial",
        "not_before",
        "not_after",
        "days_left",
        "fingerprint_sha256",
        "store",
        "certificate_pem",
        "last_renewal",
    ] {
        assert!(status.get(field).is_some(), "missing {field}: {status}");
    }
    assert_eq!(status["subject"], serde_json::Value::Null);
    assert_eq!(env.enroll().code, 0);
    let status = env.status_json();
    assert!(status["certificate_pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(status["subject"].as_str().unwrap().contains("CN=Okta MTLS"));
    assert!(status["not_after"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn the_demo_runs_the_whole_cycle() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devicetrust"))
        .arg("demo")
        .env_remove("DEVICETRUST_ROOT")
        .env_remove("DEVICETRUST_CONFIG")
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_eq!(run.code, 0, "{run:?}");
    for step in [
        "enrolled: certificate",
        "no new certificate requested",
        "renewed: certificate",
        "<result>Certificate Missing</result>",
    ] {
        assert!(
            run.stdout.contains(step),
            "demo output lacks {step:?}:\n{}",
            run.stdout
        );
    }
    assert!(run.error_lines().is_empty());
}

#[test]
fn check_network_reports_okta_unreachable_right_after_not_configured() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    assert_eq!(
        env.run(&["ea", "--check-network"]).stdout,
        "<result>Healthy</result>\n"
    );
    assert!(env
        .sim
        .requests()
        .iter()
        .any(|r| r.path == "/.well-known/openid-configuration"));

    // The org answers, but with a server error.
    env.sim
        .inject(Endpoint::Discovery, Fault::Status(503), None);
    let run = env.run(&["ea", "--check-network"]);
    assert_eq!(run.stdout, "<result>Okta Unreachable</result>\n", "{run:?}");
    let status: serde_json::Value =
        serde_json::from_str(&env.run(&["status", "--json", "--check-network"]).stdout).unwrap();
    assert_eq!(status["status"], "Okta Unreachable");
    env.sim.clear_faults();

    // Nothing listens at the org: after the (here zero) wait for the network, unreachable.
    let dead = free_port();
    env.write_config("[network]\nwait_for_network_secs = 0\nconnect_timeout_secs = 1");
    let mut cmd = env.command(&[
        "ea",
        "--check-network",
        "--org-url",
        &format!("https://localhost:{dead}"),
    ]);
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "<result>Okta Unreachable</result>\n", "{run:?}");
    // Without the flag there is no probe, and no such status.
    let mut cmd = env.command(&["ea", "--org-url", &format!("https://localhost:{dead}")]);
    assert_eq!(
        Run::from(cmd.output().unwrap()).stdout,
        "<result>Healthy</result>\n"
    );
}

/// Replaces the live certificate with one for the same key and from the same CA, valid from
/// `not_before` to `not_after`: a device whose dates the test writes down.
fn plant_certificate(env: &Env, not_before: time::OffsetDateTime, not_after: time::OffsetDateTime) {
    use devicetrust::pki::{Authority, IssueProfile, IssueRequest, PrivateKey};
    let read = |name: &str| std::fs::read_to_string(fixture(name)).unwrap();
    let ca = Authority::from_pem(&read("mtls-ca.pem"), &read("mtls-ca.key")).unwrap();
    let key = PrivateKey::from_pkcs8_pem(&env.key_pem()).unwrap();
    let der = ca
        .issue(IssueRequest {
            subject: "CN=Okta MTLS".into(),
            public_key_der: key.public_key_der().unwrap(),
            not_before,
            not_after,
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .unwrap();
    std::fs::write(
        env.generation().join("cert.pem"),
        devicetrust::pki::pem_encode("CERTIFICATE", &der),
    )
    .unwrap();
}

#[test]
fn status_says_when_this_device_renews() {
    use time::macros::datetime;
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    plant_certificate(
        &env,
        datetime!(2026-06-01 0:00 UTC),
        datetime!(2031-03-01 8:30 UTC),
    );
    // cli.md: 30 days is the latest start, the spread only moves it earlier. This device's own
    // offset (docs/architecture.md, "Fleet renewal arithmetic"): SHA-256 of DEVICE_UUID begins
    // e7 13 25 a6 23 39 98 19, and 0xe71325a623399819 mod 15 = 2: 32 days before
    // 2031-03-01T08:30:00Z is 2031-01-28T08:30:00Z. Its minute of the day, the next 8 bytes
    // mod 1440, is 1194 (19:54 UTC), which on the 28th would be later than that: it starts at
    // 19:54 the day before, never after the 32 days.
    let status = env.status_json();
    assert_eq!(status["not_after"], "2031-03-01T08:30:00Z", "{status}");
    assert_eq!(status["renews_below_days"], 32, "{status}");
    assert_eq!(status["renews_from"], "2031-01-27T19:54:00Z", "{status}");
    let run = env.run(&["status"]);
    assert!(
        run.stdout
            .contains("INFO: renews: from 2031-01-27T19:54:00Z (32 days before expiry)"),
        "{run:?}"
    );
    // A wider window and no spread of days: 45 days before, at the device's minute.
    env.write_config("renew_before_days = 45\nrenew_spread_days = 0");
    let status = env.status_json();
    assert_eq!(status["renews_below_days"], 45, "{status}");
    assert_eq!(status["renews_from"], "2031-01-14T19:54:00Z", "{status}");
}

#[test]
fn without_a_console_user_ea_says_so_and_commands_defer() {
    // The portable platform's "console user" is the invoking user; root with no SUDO_USER is
    // the login-window case. As another user there is always a session, so nothing to check.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: every run has a user session here");
        return;
    }
    let env = Env::new(365);
    let bare = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_devicetrust"));
        cmd.args(args)
            .arg("--root")
            .arg(env.root.path())
            .env_remove("SUDO_USER");
        Run::from(cmd.output().unwrap())
    };
    assert_eq!(bare(&["ea"]).stdout, "<result>No User Session</result>\n");
    // `status` reports it as the EA does: a status, exit 0, not a deferred run.
    let run = bare(&["status"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("INFO: status: No User Session\n"),
        "{run:?}"
    );
    let run = bare(&["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["status"], "No User Session", "{doc}");
    assert!(doc["error"].is_null(), "{doc}");
    let run = bare(&["enroll"]);
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error_lines().is_empty(), "{run:?}");
    assert!(
        run.stdout.starts_with("WARN: no user is logged in"),
        "{run:?}"
    );
    assert!(env.sim.requests().is_empty());
}

/// Every 8-character piece of `secret`.
fn fragments(secret: &str) -> Vec<&str> {
    (0..=secret.len().saturating_sub(8))
        .map(|i| &secret[i..i + 8])
        .collect()
}

#[test]
fn a_block_page_quoting_the_request_never_leaks_a_piece_of_the_token() {
    let env = Env::new(365);
    let token = env.sim.org_token();
    let leaks = |quoted_bytes: usize| {
        env.sim.inject(
            Endpoint::Enroll,
            Fault::QuotingBlockPage { quoted_bytes },
            Some(1),
        );
        let run = env.enroll();
        assert_eq!(run.code, 1, "{run:?}");
        let mut found = Vec::new();
        let shown = run.all_output();
        found.extend(fragments(&token).into_iter().filter(|p| shown.contains(p)));
        for bytes in env.snapshot().into_values() {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            found.extend(fragments(&token).into_iter().filter(|p| text.contains(p)));
        }
        (found, shown)
    };
    // The whole request quoted first: this is where the token sits in it.
    let (found, shown) = leaks(4096);
    assert!(found.is_empty(), "{found:?} in {shown}");
    let body = env.requests_to("/enroll/macos")[0].body.clone();
    let at = String::from_utf8_lossy(&body).find(&token).unwrap();
    // Cut inside the token, leaving 8, 16 and all but one of its characters, and just after it.
    for cut in [at + 8, at + 16, at + token.len() - 1, at + token.len()] {
        let (found, shown) = leaks(cut);
        assert!(found.is_empty(), "cut at {cut}: {found:?} in {shown}");
        assert!(shown.contains("[redacted]"), "cut at {cut}: {shown}");
    }
}
