//! Bad input, bad server answers, timeouts: one `ERROR:` line naming the cause, a non-zero
//! exit, and the device exactly as it was.

mod common;

use common::*;
use devicetrust::sim::{Endpoint, Fault};
use std::time::Duration;

/// No temporary file anywhere under the root.
fn assert_no_temporary_files(env: &Env) {
    let leftovers: Vec<_> = env
        .snapshot()
        .into_keys()
        .filter_map(|p| p.strip_prefix(env.root.path()).map(|r| r.to_owned()).ok())
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Each fault, on the enrollment of a fresh device and on the renewal of an enrolled one.
fn faults() -> Vec<(Fault, &'static str, i32)> {
    vec![
        (Fault::Status(500), "HTTP 500", 1),
        (Fault::Status(403), "You do not have permission", 1),
        (Fault::MalformedJson, "JSON", 1),
        (Fault::HtmlBody, "HTML", 1),
        (Fault::MissingField, "issuedCertificate", 1),
        (Fault::BadBase64, "base64", 1),
        (Fault::ForeignKeyCertificate, "different key", 1),
        (Fault::WrongCommonName, "Not Okta", 1),
        (Fault::ExpiredCertificate, "expired", 1),
        (Fault::Slow(Duration::from_secs(30)), "timed out", 75),
        (
            Fault::RateLimited {
                reset_in_secs: 3600,
            },
            "rate-limited",
            75,
        ),
    ]
}

#[test]
fn each_fault_on_enroll_fails_cleanly_and_stores_nothing() {
    let env = Env::new(365);
    env.write_config("[network]\ntimeout_secs = 3\nretry_base_delay_ms = 1");
    for (fault, cause, code) in faults() {
        env.sim.inject(Endpoint::Enroll, fault.clone(), None);
        let run = env.enroll();
        env.sim.clear_faults();
        assert_eq!(run.code, code, "{fault:?}: {run:?}");
        let error = run.error();
        println!("{fault:?} -> {error}");
        assert!(
            error.to_lowercase().contains(&cause.to_lowercase()),
            "{fault:?}: {error:?} should name {cause:?}"
        );
        assert!(!env.store_dir().exists(), "{fault:?} left a store");
        assert_no_temporary_files(&env);
    }
}

#[test]
fn each_fault_on_renew_leaves_the_store_byte_for_byte_unchanged() {
    let env = Env::new(10);
    assert_eq!(env.enroll().code, 0);
    env.write_config("[network]\ntimeout_secs = 3\nretry_base_delay_ms = 1");
    let store_before = |env: &Env| {
        env.snapshot()
            .into_iter()
            .filter(|(p, _)| p.starts_with(env.store_dir()))
            .collect::<Vec<_>>()
    };
    let before = store_before(&env);
    for (fault, cause, code) in faults() {
        env.sim.inject(Endpoint::Renew, fault.clone(), None);
        let run = env.run(&["renew"]);
        env.sim.clear_faults();
        assert_eq!(run.code, code, "{fault:?}: {run:?}");
        assert!(
            run.error().to_lowercase().contains(&cause.to_lowercase()),
            "{fault:?}: {run:?}"
        );
        assert_eq!(store_before(&env), before, "{fault:?} changed the store");
        assert_no_temporary_files(&env);
        // The failure is remembered for the health chain.
        let status = env.status_json();
        assert_eq!(status["last_renewal"]["ok"], false, "{fault:?}");
        assert_eq!(status["status"], "Renewal Failing", "{fault:?}");
    }
    // And the identity still renews once the service behaves.
    assert_eq!(env.run(&["renew"]).code, 0);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn a_fault_on_metadata_stops_enrollment_before_any_key_is_sent() {
    let env = Env::new(365);
    env.sim.inject(Endpoint::Metadata, Fault::HtmlBody, None);
    let run = env.enroll();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("metadata"), "{run:?}");
    assert!(env
        .sim
        .requests()
        .iter()
        .all(|r| !r.path.ends_with("/enroll/macos")));
}

#[test]
fn a_wrong_token_shows_oktas_summary() {
    let env = Env::new(365);
    env.write_token("not-the-secret");
    let run = env.enroll();
    assert_eq!(run.code, 1, "{run:?}");
    let error = run.error();
    assert!(error.contains("Invalid token provided"), "{error}");
    assert!(error.contains("E0000011"), "{error}");
    assert!(!env.store_dir().exists());
}

#[test]
fn the_five_certificate_limit_is_surfaced_verbatim() {
    let env = Env::new(365);
    for _ in 0..5 {
        assert_eq!(env.enroll().code, 0);
        assert_eq!(env.run(&["uninstall"]).code, 0);
    }
    let run = env.enroll();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.error()
            .contains("Maximum enrollment limit of 5 certificates for a device is reached"),
        "{run:?}"
    );
}

#[test]
fn a_transient_server_error_is_retried() {
    let env = Env::new(365);
    env.sim
        .inject(Endpoint::Enroll, Fault::Status(503), Some(1));
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("WARN:"), "a retry is logged: {run:?}");
    let enrolls: Vec<u16> = env
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/enroll/macos"))
        .map(|r| r.status)
        .collect();
    assert_eq!(enrolls, [503, 200]);
}

#[test]
fn retries_are_bounded() {
    let env = Env::new(365);
    env.write_config("[network]\nmax_attempts = 3\nretry_base_delay_ms = 1");
    env.sim.inject(Endpoint::Enroll, Fault::Status(502), None);
    let run = env.enroll();
    assert_eq!(run.code, 1, "{run:?}");
    let enrolls = env.requests_to("/enroll/macos").len();
    assert_eq!(enrolls, 3);
}

#[test]
fn an_unreachable_org_defers_with_exit_75() {
    let env = Env::new(365);
    let port = free_port();
    let run = env.run_with_token(&["enroll", "--org-url", &format!("https://localhost:{port}")]);
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("localhost"), "{run:?}");
}

#[test]
fn an_untrusted_server_certificate_is_refused() {
    let env = Env::new(365);
    // Without --ca-file the simulator's throwaway CA is not trusted.
    std::fs::write(
        env.etc().join("config.toml"),
        format!("org_url = {:?}\n", env.sim.org_url()),
    )
    .unwrap();
    let run = env.enroll();
    // Retrying will not make the certificate trusted: a failure (1), not "try later" (75).
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.error().to_lowercase().contains("certificate"),
        "{run:?}"
    );
    assert!(env.sim.requests().is_empty());
}

#[test]
fn plain_http_org_url_is_refused_with_exit_2() {
    let env = Env::new(365);
    let run = env.run_with_token(&["enroll", "--org-url", "http://acme.okta.com"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.error().contains("http://"), "{run:?}");
    assert!(env.sim.requests().is_empty());
}

#[test]
fn a_missing_token_names_all_three_ways_to_supply_it() {
    let env = Env::new(365);
    let run = env.run(&["enroll"]);
    assert_eq!(run.code, 2, "{run:?}");
    let error = run.error();
    for way in [
        "--org-token-file",
        "DEVICETRUST_ORG_TOKEN",
        "org_token_file",
    ] {
        assert!(error.contains(way), "{error} should mention {way}");
    }
    assert!(env.sim.requests().is_empty());
}

#[test]
fn invalid_configuration_values_are_usage_errors() {
    let env = Env::new(365);
    for (extra, needle) in [
        ("renew_before_days = 0", "renew_before_days"),
        ("no_such_key = 1", "no_such_key"),
        ("store = \"floppy\"", "store"),
        ("org_url = [", "line"),
    ] {
        env.write_config(extra);
        let run = env.enroll();
        assert_eq!(run.code, 2, "{extra}: {run:?}");
        assert!(run.error().contains(needle), "{extra}: {run:?}");
    }
}

#[test]
fn flags_beat_environment_beat_file() {
    let env = Env::new(365);
    // The file names the simulator; the environment names a dead org; the flag the simulator.
    let mut cmd = env.command(&["enroll", "--org-url", &env.sim.org_url()]);
    cmd.env("DEVICETRUST_ORG_URL", "https://dead.invalid");
    cmd.env("DEVICETRUST_ORG_TOKEN", env.sim.org_token());
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");

    // Environment beats the file.
    let env2 = Env::new(365);
    let mut cmd = env2.command(&["enroll"]);
    cmd.env("DEVICETRUST_ORG_URL", "http://plain.example");
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.error().contains("plain.example"), "{run:?}");
}

#[test]
fn a_second_run_waits_for_the_lock_then_defers() {
    let env = Env::new(365);
    env.write_config("lock_timeout_secs = 0");
    std::fs::create_dir_all(env.state_dir()).unwrap();
    let held = std::fs::File::create(env.state_dir().join("lock")).unwrap();
    held.lock().unwrap();
    let run = env.enroll();
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("another devicetrust run"), "{run:?}");
    assert!(env.sim.requests().is_empty());
    drop(held);
    assert_eq!(env.enroll().code, 0);
}

#[test]
fn usage_errors_exit_2_and_help_and_version_exit_0() {
    let env = Env::new(365);
    let run = env.run(&["enroll", "--no-such-flag"]);
    assert_eq!(run.code, 2, "{run:?}");
    let run = env.run(&["frobnicate"]);
    assert_eq!(run.code, 2, "{run:?}");

    let bin = env!("CARGO_BIN_EXE_devicetrust");
    let help = Run::from(
        std::process::Command::new(bin)
            .arg("--help")
            .output()
            .unwrap(),
    );
    assert_eq!(help.code, 0);
    for word in [
        "enroll",
        "renew",
        "status",
        "ea",
        "uninstall",
        "demo",
        "--org-token-file",
        "75",
    ] {
        assert!(
            help.stdout.contains(word),
            "--help lacks {word}: {}",
            help.stdout
        );
    }
    let version = Run::from(
        std::process::Command::new(bin)
            .arg("version")
            .output()
            .unwrap(),
    );
    assert_eq!(
        version.stdout.trim(),
        format!("devicetrust {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_answer_that_trickles_in_is_cut_off_at_the_request_deadline() {
    let env = Env::new(365);
    // 2 s for the whole request; the metadata answer's ~60 bytes would take ~15 s to arrive.
    env.write_config("[network]\ntimeout_secs = 2\nretry_base_delay_ms = 1");
    env.sim.inject(
        Endpoint::Metadata,
        Fault::Trickle(Duration::from_millis(250)),
        None,
    );
    let run = env.enroll();
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("timed out"), "{run:?}");
    assert!(env.requests_to("/enroll/macos").is_empty());
    assert!(!env.store_dir().exists());
}

#[test]
fn a_whole_run_gives_up_at_its_deadline_and_frees_the_lock() {
    let env = Env::new(365);
    // Each request may take a minute, but the whole run only 2 seconds.
    env.write_config("[network]\ntimeout_secs = 60\nrun_deadline_secs = 2");
    env.sim.inject(
        Endpoint::Metadata,
        Fault::Slow(Duration::from_secs(30)),
        None,
    );
    let run = env.enroll();
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("gave up after 2 s"), "{run:?}");
    assert!(!env.store_dir().exists());
    // The lock went with the process: the next run starts at once and succeeds.
    env.sim.clear_faults();
    env.write_config("lock_timeout_secs = 0");
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn a_damaged_record_is_kept_aside_and_rebuilt_from_the_store() {
    let env = Env::new(365);
    // Enrolled by flags only: nothing but the record knows the org afterwards.
    std::fs::remove_file(env.etc().join("config.toml")).unwrap();
    let ca = env.etc().join("tls-ca.pem").display().to_string();
    let run = env.run_with_token(&["enroll", "--org-url", &env.sim.org_url(), "--ca-file", &ca]);
    assert_eq!(run.code, 0, "{run:?}");
    let state = env.state_dir().join("state.json");
    std::fs::write(&state, b"{\"method\": \"okta\", \"org_url\": tru").unwrap();

    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("WARN: the enrollment record did not parse"),
        "{run:?}"
    );
    let kept: Vec<_> = std::fs::read_dir(env.state_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("state.json.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        b"{\"method\": \"okta\", \"org_url\": tru"
    );
    let rebuilt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(rebuilt["org_url"], env.sim.org_url());
    assert_eq!(rebuilt["last_renewal"]["ok"], true);
}

#[test]
fn a_corrupt_certificate_is_named_and_enroll_starts_afresh_keeping_it_aside() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let broken = env.generation();
    std::fs::write(
        broken.join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n",
    )
    .unwrap();

    assert_eq!(env.ea(), "<result>Certificate Missing</result>\n");
    let status = env.status_json();
    assert!(
        status["detail"]
            .as_str()
            .unwrap()
            .contains("certificate is corrupt"),
        "{status}"
    );
    // renew cannot help: it says what will.
    let run = env.run(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("devicetrust enroll"), "{run:?}");

    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
    let aside: Vec<_> = std::fs::read_dir(env.store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(env.store_dir().join(&aside[0]).join("cert.pem").exists());
}

#[test]
fn status_json_is_one_document_even_when_the_store_cannot_be_read() {
    let env = Env::new(365);
    // A "store folder" that is a file: every read of it fails.
    let not_a_folder = env.etc().join("config.toml").display().to_string();
    let run = env.run(&[
        "status",
        "--json",
        "--store",
        &format!("file:{not_a_folder}"),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        doc["error"].as_str().unwrap().contains("identity store"),
        "{doc}"
    );
    assert_eq!(doc["status"], serde_json::Value::Null);
    assert_eq!(run.stdout.lines().count(), 1);
}

#[test]
fn the_ea_reports_a_store_it_cannot_read_as_an_error_not_a_missing_certificate() {
    let env = Env::new(365);
    let not_a_folder = env.etc().join("config.toml").display().to_string();
    let store = format!("file:{not_a_folder}");
    for (args, line) in [
        (vec!["ea"], "<result>Agent Error</result>\n"),
        (vec!["ea", "--expiry"], "<result></result>\n"),
    ] {
        let mut args = args;
        args.extend(["--store", &store]);
        let run = env.run(&args);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.stdout, line, "{run:?}");
    }
}

#[test]
fn an_empty_or_unparsable_ca_file_is_a_configuration_error() {
    let env = Env::new(365);
    let bad = env.etc().join("bad-ca.pem");
    for content in [
        "",
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    ] {
        std::fs::write(&bad, content).unwrap();
        let run = env.run_with_token(&["enroll", "--ca-file", &bad.display().to_string()]);
        assert_eq!(run.code, 2, "{content:?}: {run:?}");
        assert!(run.error().contains("bad-ca.pem"), "{run:?}");
        assert!(env.sim.requests().is_empty());
    }
}

#[test]
fn a_keychain_password_that_cannot_be_read_now_defers_with_exit_75() {
    use devicetrust::agent::AgentError;
    use devicetrust::store::StoreError;
    let deferred = AgentError::Store(StoreError::Deferred {
        status: "Keychain Password Unreadable",
        reason: "the device_trust password item did not answer in time".into(),
    });
    assert_eq!(deferred.exit_code(), 75);
    let line = deferred.to_string();
    assert!(line.starts_with("Keychain Password Unreadable: "), "{line}");
    assert!(line.contains("nothing was changed"), "{line}");
    // Damage is no reason to wait.
    let damaged = AgentError::Store(StoreError::Damaged {
        path: "/x/okta.keychain".into(),
        what: "okta.keychain",
        reason: "its password item does not open it".into(),
    });
    assert_eq!(damaged.exit_code(), 1);
}
