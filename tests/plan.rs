//! `devicetrust plan`: what `enroll` would do on this device, before it does anything. The
//! verdict and its exit code (0 Ready, 1 Blocked, 75 deferred, 2 usage), the JSON document, and
//! a plan that sends nothing to the org unless asked to check the network.

mod common;

use common::scepserver::{ScepServer, CHALLENGE};
use common::*;
use serde_json::Value;

/// The plan's JSON document, with the run that printed it.
fn plan_json(env: &Env, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let run = env.run(&args);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}): {run:?}"));
    (run, doc)
}

/// Each link with its action, as the document lists them.
fn actions(doc: &Value) -> Vec<(String, String)> {
    doc["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["link"].as_str().unwrap().to_owned(),
                l["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn action_of(doc: &Value, link: &str) -> String {
    actions(doc)
        .into_iter()
        .find(|(l, _)| l == link)
        .unwrap_or_else(|| panic!("no {link} in {doc}"))
        .1
}

/// The configuration with the org token file in it, as a Jamf admin deploys it.
fn with_token(env: &Env) {
    env.write_config(&format!(
        "org_token_file = {:?}",
        env.token_file().display().to_string()
    ));
}

#[test]
fn a_fresh_device_is_ready_to_spend_one_certificate_and_nothing_is_sent() {
    let env = Env::new(365);
    with_token(&env);
    let (run, doc) = plan_json(&env, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(doc["verdict"], "Ready: 1 certificate");
    assert_eq!(doc["certificates"], 1);
    assert_eq!(doc["certificate"]["requested"], true);
    assert_eq!(action_of(&doc, "identity store"), "create");
    assert_eq!(action_of(&doc, "renewal job"), "create");
    assert_eq!(action_of(&doc, "browser auto-selection"), "create");
    assert!(env.sim.requests().is_empty(), "{:?}", env.sim.requests());
    assert!(
        !env.root.path().join("home").exists(),
        "nothing was made in the home"
    );

    let run = env.run(&["plan"]);
    assert_eq!(run.code, 0, "{run:?}");
    let last = run.stdout.lines().last().unwrap();
    assert_eq!(last, "INFO: Ready: 1 certificate", "{run:?}");
    assert!(
        run.stdout.contains("INFO: identity store: create: "),
        "{run:?}"
    );
    assert_eq!(env.ea_plan(), "<result>Ready: 1 certificate</result>\n");
    assert!(env.sim.requests().is_empty());

    assert_eq!(env.run(&["enroll"]).code, 0);
    let (run, doc) = plan_json(&env, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(doc["verdict"], "Ready");
    assert_eq!(doc["certificate"]["requested"], false);
    assert!(
        actions(&doc).iter().all(|(_, a)| a == "nothing"),
        "an enrolled device has nothing left to do: {doc}"
    );
    assert_eq!(env.ea_plan(), "<result>Ready</result>\n");
}

#[test]
fn a_certificate_needed_without_a_token_is_blocked_and_exits_1() {
    let env = Env::new(365);
    let (run, doc) = plan_json(&env, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(doc["verdict"], "Blocked: No Org Token");
    assert_eq!(doc["ready"], false);
    assert_eq!(doc["exit_code"], 1);
    let run = env.run(&["plan"]);
    assert_eq!(run.code, 1);
    let last = run.stdout.lines().last().unwrap();
    assert!(last.starts_with("WARN: Blocked: No Org Token: "), "{run:?}");
    assert_eq!(env.ea_plan(), "<result>Blocked: No Org Token</result>\n");
}

#[test]
fn nothing_configured_is_blocked_and_a_broken_configuration_is_a_usage_error() {
    let env = Env::new(365);
    std::fs::write(env.etc().join("config.toml"), "").unwrap();
    let (run, doc) = plan_json(&env, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(doc["verdict"], "Blocked: Not Configured");
    assert_eq!(env.ea_plan(), "<result>Blocked: Not Configured</result>\n");

    std::fs::write(env.etc().join("config.toml"), "org_url = 7\n").unwrap();
    let (run, doc) = plan_json(&env, &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(doc["error"].as_str().is_some(), "{doc}");
    let run = env.run(&["plan"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.error_lines().len(), 1, "{run:?}");
}

#[test]
fn without_a_console_user_a_plan_is_deferred() {
    let env = Env::new(365);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_devicetrust"));
    cmd.args(["plan", "--json", "--root"]).arg(env.root.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("DEVICETRUST_") {
            cmd.env_remove(key);
        }
    }
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 75, "{run:?}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["exit_code"], 75);
}

#[test]
fn a_usage_error_or_a_failure_under_json_is_one_document() {
    let env = Env::new(365);
    for command in ["plan", "enroll"] {
        let run = env.run(&[command, "--json", "--bogus"]);
        assert_eq!(run.code, 2, "{run:?}");
        let doc: Value = serde_json::from_str(&run.stdout).unwrap();
        assert!(doc["error"].as_str().unwrap().contains("--bogus"), "{doc}");
    }
    // An enrollment that fails (no org token for the certificate it needs).
    let run = env.run(&["enroll", "--json"]);
    assert_ne!(run.code, 0, "{run:?}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(doc["error"].as_str().unwrap().contains("token"), "{doc}");
    assert_eq!(doc["exit_code"], run.code);
}

#[test]
fn only_check_network_asks_the_org_and_then_the_plan_knows_the_cert_auth_domain() {
    let env = Env::new(365);
    with_token(&env);
    let (run, doc) = plan_json(&env, &["--check-network"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!env.sim.requests().is_empty(), "the org was asked");
    assert!(
        env.requests_to("/enroll/macos").is_empty(),
        "no certificate requested"
    );
    let browser = doc["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["link"] == "browser auto-selection")
        .unwrap();
    assert!(
        browser["detail"]
            .as_str()
            .unwrap()
            .contains(devicetrust::sim::CERT_AUTH_HOST),
        "{browser}"
    );
}

/// Every syscall that could change a file or reach the network, as strace records them.
const TRACED: &str =
    "trace=execve,open,openat,openat2,creat,connect,rename,renameat,renameat2,unlink,\
unlinkat,mkdir,mkdirat,rmdir,link,linkat,symlink,symlinkat,truncate,ftruncate,chmod,fchmod,\
fchmodat,chown,fchown,fchownat,lchown,utimensat";

/// What the traced run did that a plan must not: a connection to an IPv4 or IPv6 address
/// (tried), a file opened for writing (or created), and any call that changed the file system. A child
/// reading `/dev/null` as its stdin is opened read-write by the standard library and writes
/// nothing; it is the one exception.
fn changes_in(trace: &str) -> Vec<String> {
    let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"];
    trace
        .lines()
        .filter(|line| !line.contains("resumed>"))
        .filter(|line| {
            // An attempt to connect counts, answered or not (a non-blocking connect returns
            // EINPROGRESS); a call that failed changed nothing.
            let failed = line.contains(") = -1 ") && !line.contains("EINPROGRESS");
            let call = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.split_once('('))
                .map_or("", |(call, _)| call);
            match call {
                _ if failed => false,
                "open" | "openat" | "openat2" => {
                    writes.iter().any(|w| line.contains(w)) && !line.contains("\"/dev/null\"")
                }
                "connect" => line.contains("AF_INET"),
                "execve" | "" => false,
                _ => true,
            }
        })
        .map(str::to_owned)
        .collect()
}

/// Every path under `dir` with its kind, mode, owner and content hash: the tree as a value.
fn tree_hash(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let content = if meta.file_type().is_symlink() {
                std::fs::read_link(&path).unwrap().display().to_string()
            } else if meta.is_dir() {
                stack.push(path.clone());
                String::new()
            } else {
                hex(&sha2::Sha256::digest(std::fs::read(&path).unwrap()))
            };
            let mtime = meta.mtime_nsec() + meta.mtime() * 1_000_000_000;
            let summary = format!(
                "{:o} {}:{} {mtime} {content}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            );
            out.insert(path, summary);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_plan_writes_nothing_and_connects_nowhere_even_where_enroll_would_change_everything() {
    let env = Env::new(365);
    if traced_with(
        &env.command(&["version"]),
        std::path::Path::new("/dev/null"),
        TRACED,
    )
    .is_none()
    {
        return;
    }
    with_token(&env);
    assert_eq!(env.run(&["enroll"]).code, 0);
    let home = env.root.path().join("home").join(USER);
    // What enroll would change: a damaged record (set aside when opened for writing), no
    // vouch for the NSS database (so certutil is asked), the old task, a damaged certificate
    // (set aside), the renewal job gone, an admin's policy file deciding Chromium's policy.
    std::fs::write(env.state_dir().join("state.json"), "{ not json").unwrap();
    let _ = std::fs::remove_file(env.state_dir().join("nss-verified.json"));
    let task = home.join("Library/Okta");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("okta_device_trust.py"), "VERSION = '1.3.3'\n").unwrap();
    std::fs::remove_dir_all(home.join(".config/systemd")).unwrap();
    let chromium = env.root.path().join("etc/chromium/policies/managed");
    std::fs::write(
        chromium.join("zz-admin.json"),
        r#"{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://x\"}"]}"#,
    )
    .unwrap();

    let check = |what: &str| {
        let before = tree_hash(env.root.path());
        let log = env
            .root
            .path()
            .parent()
            .unwrap()
            .join(format!("plan-trace-{}-{what}", std::process::id()));
        let mut cmd = env.command(&["plan", "--json"]);
        cmd.arg("-v");
        let mut traced = traced_with(&cmd, &log, TRACED).expect("strace");
        let run = Run::from(traced.output().unwrap());
        let trace = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert!(
            [0, 1].contains(&run.code),
            "{what}: a plan, ready or blocked: {run:?}"
        );
        assert!(
            trace.contains("execve("),
            "{what}: the trace followed the run"
        );
        let changes = changes_in(&trace);
        assert!(changes.is_empty(), "{what}: {changes:#?}");
        assert_eq!(
            tree_hash(env.root.path()),
            before,
            "{what}: the tree changed"
        );
        trace
    };
    let trace = check("takeover with damage");
    assert!(
        trace.contains("certutil"),
        "the NSS database was looked at with certutil: the check covers its children"
    );

    // A damaged certificate: enroll would set it aside and ask for a new one.
    std::fs::write(env.generation().join("cert.pem"), "not a certificate").unwrap();
    check("damaged identity");
}

#[test]
fn ea_plan_prints_one_result_line_and_exits_0_on_every_path() {
    let env = Env::new(365);
    let one_line = |args: &[&str]| {
        let run = env.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert_eq!(run.stdout.lines().count(), 1, "{args:?}: {run:?}");
        let line = run.stdout.trim_end().to_owned();
        assert!(
            line.starts_with("<result>") && line.ends_with("</result>"),
            "{args:?}: {run:?}"
        );
        line
    };
    assert_eq!(
        one_line(&["ea", "--plan"]),
        "<result>Blocked: No Org Token</result>"
    );
    // Usage errors: the line the EA scripts print when the agent gives none.
    assert_eq!(
        one_line(&["ea", "--plan", "--bogus"]),
        "<result>Agent Error</result>"
    );
    one_line(&["ea", "--plan", "--expiry"]);
    // A plan that cannot be worked out (a store that is not the agent's).
    let folder = env.root.path().join("admin-files");
    std::fs::create_dir_all(folder.join("CURRENT")).unwrap();
    let store = format!("file:{}", folder.display());
    one_line(&["ea", "--plan", "--store", &store]);
    // Nobody at the console.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_devicetrust"));
    cmd.args(["ea", "--plan", "--root"]).arg(env.root.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("DEVICETRUST_") {
            cmd.env_remove(key);
        }
    }
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "<result>No User Session</result>\n"),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Journeys: `plan` on the starting state lists exactly what `enroll` then does.

/// Plans, then enrolls: the plan's links and actions are those `enroll --json` reports
/// taking, and the certificates it planned are those it spent. Returns both documents.
fn plan_then_enroll(env: &Env) -> (Value, Value) {
    let (run, planned) = plan_json(env, &[]);
    assert!([0, 1].contains(&run.code), "{run:?}");
    let enrollments = env.requests_to("/enroll/macos").len();
    let run = env.run(&["enroll", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let enrolled: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("one JSON document ({e}): {run:?}"));
    let taken: Vec<(String, String)> = enrolled["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["link"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions(&planned),
        taken,
        "plan = actions: {planned}\n{enrolled}"
    );
    let planned_certificates = u64::from(planned["certificate"]["requested"] == true);
    assert_eq!(enrolled["certificates"], planned_certificates, "{enrolled}");
    assert!(
        env.requests_to("/enroll/macos").len() - enrollments <= planned_certificates as usize,
        "no certificate beyond the plan's"
    );
    assert!(!run.stderr.contains("the plan said"), "{run:?}");
    (planned, enrolled)
}

/// The change lines `enroll --json` reports for `link`.
fn changes_of(enrolled: &Value, link: &str) -> Vec<String> {
    enrolled["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["link"] == link)
        .map(|a| {
            a["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// After the plan was carried out there is nothing left to do.
fn nothing_left(env: &Env) {
    let (run, doc) = plan_json(env, &[]);
    assert_eq!(
        (run.code, &doc["verdict"]),
        (0, &Value::from("Ready")),
        "{doc}"
    );
    assert!(actions(&doc).iter().all(|(_, a)| a == "nothing"), "{doc}");
}

#[test]
fn journey_a_fresh_device_plan_equals_actions() {
    let env = Env::new(365);
    with_token(&env);
    let (planned, enrolled) = plan_then_enroll(&env);
    assert_eq!(planned["verdict"], "Ready: 1 certificate");
    assert_eq!(enrolled["certificates"], 1);
    assert_eq!(env.requests_to("/enroll/macos").len(), 1);
    assert_eq!(action_of(&planned, "identity store"), "create");
    nothing_left(&env);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn journey_a_takeover_from_oktas_task_adopts_without_a_certificate_and_removes_the_task() {
    let env = Env::new(365);
    with_token(&env);
    assert_eq!(env.run(&["enroll"]).code, 0);
    // What a takeover finds: an identity the org issued, and nothing of ours around it.
    let home = env.root.path().join("home").join(USER);
    std::fs::remove_file(env.state_dir().join("state.json")).unwrap();
    std::fs::remove_file(env.generation().join("record.json")).unwrap();
    std::fs::remove_dir_all(env.root.path().join("var/lib/devicetrust")).unwrap();
    std::fs::remove_dir_all(home.join(".config/systemd")).unwrap();
    for dir in [
        "etc/opt/chrome/policies/managed",
        "etc/chromium/policies/managed",
        "etc/opt/edge/policies/managed",
    ] {
        std::fs::remove_dir_all(env.root.path().join(dir)).unwrap();
    }
    let task = home.join("Library/Okta");
    let agent = home.join("Library/LaunchAgents/com.okta.devicetrust.plist");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
    std::fs::write(task.join("okta_device_trust.py"), "VERSION = '1.3.3'\n").unwrap();
    std::fs::write(&agent, "<plist/>").unwrap();
    let enrollments = env.requests_to("/enroll/macos").len();

    let (planned, _) = plan_then_enroll(&env);
    assert_eq!(
        planned["verdict"], "Ready",
        "a takeover spends no certificate"
    );
    assert_eq!(action_of(&planned, "identity store"), "adopt");
    assert_eq!(action_of(&planned, "Okta's Python task"), "remove");
    assert_eq!(action_of(&planned, "browser auto-selection"), "create");
    assert_eq!(action_of(&planned, "renewal job"), "create");
    assert_eq!(env.requests_to("/enroll/macos").len(), enrollments);
    assert!(!task.exists() && !agent.exists());
    nothing_left(&env);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn journey_a_damaged_identity_is_set_aside_and_replaced_as_planned() {
    let env = Env::new(365);
    with_token(&env);
    assert_eq!(env.run(&["enroll"]).code, 0);
    let old = env.certificate();
    std::fs::write(env.generation().join("cert.pem"), "not a certificate").unwrap();

    let (planned, enrolled) = plan_then_enroll(&env);
    assert_eq!(planned["verdict"], "Ready: 1 certificate");
    assert_eq!(action_of(&planned, "identity store"), "set aside");
    if std::path::Path::new("/usr/bin/certutil").exists() {
        // The old identity is still in the NSS database: the new one replaces it there.
        assert_eq!(action_of(&planned, "NSS database"), "replace");
        assert!(
            changes_of(&enrolled, "NSS database")
                .iter()
                .any(|c| c.contains(&old.serial_hex) && c.contains("removed")),
            "{enrolled}"
        );
    }
    assert_ne!(env.certificate().serial_hex, old.serial_hex);
    nothing_left(&env);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn journey_a_foreign_policy_file_is_blocked_and_enroll_ends_short_of_healthy() {
    let env = Env::new(365);
    with_token(&env);
    let chromium = env.root.path().join("etc/chromium/policies/managed");
    std::fs::create_dir_all(&chromium).unwrap();
    std::fs::write(
        chromium.join("zz-admin.json"),
        r#"{"AutoSelectCertificateForUrls": ["{\"pattern\":\"https://x\"}"]}"#,
    )
    .unwrap();

    let (planned, _) = plan_then_enroll(&env);
    assert_eq!(planned["verdict"], "Blocked: Browser Policy Missing");
    assert!(
        planned["blocked"]["detail"]
            .as_str()
            .unwrap()
            .contains("zz-admin.json"),
        "{planned}"
    );
    assert_eq!(env.ea(), "<result>Browser Policy Missing</result>\n");
    let (run, again) = plan_json(&env, &[]);
    assert_eq!(run.code, 1);
    assert_eq!(again["verdict"], "Blocked: Browser Policy Missing");
}

#[test]
fn journey_a_method_change_replaces_the_okta_identity_with_the_scep_cas_as_planned() {
    let env = Env::new(365);
    with_token(&env);
    assert_eq!(env.run(&["enroll"]).code, 0);
    let okta = env.certificate();
    // The admin moves the device to a SCEP CA (pinned), as tests/method_switch.rs does.
    let server = ScepServer::start(false);
    let challenge_file = env.etc().join("scep-challenge");
    std::fs::write(&challenge_file, format!("{CHALLENGE}\n")).unwrap();
    env.write_config(&format!(
        "cert_auth_host = \"scep-dt.example.com\"\n[scep]\nurl = {:?}\nchallenge_file = {:?}\n\
         ca_fingerprint = {:?}\nsubject = \"CN=devicetrust test,O=Example\"\n",
        server.url.as_str(),
        challenge_file.display().to_string(),
        devicetrust::scep::sha256_fingerprint_hex(&server.ca_der()),
    ));

    let (planned, enrolled) = plan_then_enroll(&env);
    assert_eq!(planned["verdict"], "Ready: 1 certificate");
    assert_eq!(action_of(&planned, "identity store"), "replace");
    assert!(
        planned["certificate"]["why"]
            .as_str()
            .unwrap()
            .contains("enrolled with"),
        "{planned}"
    );
    assert_eq!(action_of(&planned, "browser auto-selection"), "replace");
    assert!(
        changes_of(&enrolled, "browser auto-selection")
            .iter()
            .any(|c| c.starts_with("removed our browser auto-selection entry")),
        "the Okta host's entries went: {enrolled}"
    );
    assert_ne!(env.certificate().issuer, okta.issuer);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
    nothing_left(&env);
}

/// `cmd` run under libfaketime, `offset` (`-10d`) from now; `None` without faketime (Debian
/// package faketime, which scripts/test.sh installs; under CI that fails instead).
fn at_offset(cmd: &std::process::Command, offset: &str) -> Option<std::process::Command> {
    let installed = std::process::Command::new("faketime")
        .args(["-f", "+1d", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(std::env::var_os("CI").is_none(), "faketime is missing");
        eprintln!("skipped: faketime is not installed");
        return None;
    }
    let mut faked = std::process::Command::new("faketime");
    faked
        .args(["-f", offset])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => faked.env(key, value),
            None => faked.env_remove(key),
        };
    }
    Some(faked)
}

#[test]
fn a_clock_before_the_certificate_is_blocked_and_no_certificate_is_planned() {
    let env = Env::new(365);
    with_token(&env);
    assert_eq!(env.run(&["enroll"]).code, 0);
    let Some(mut plan) = at_offset(&env.command(&["plan", "--json"]), "-10d") else {
        return;
    };
    let run = Run::from(plan.output().unwrap());
    assert_eq!(run.code, 1, "{run:?}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["verdict"], "Blocked: Clock Wrong", "{doc}");
    assert_eq!(doc["certificate"]["requested"], false);
    assert!(actions(&doc).iter().all(|(_, a)| a == "nothing"), "{doc}");
    let mut ea = at_offset(&env.command(&["ea", "--plan"]), "-10d").unwrap();
    let run = Run::from(ea.output().unwrap());
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "<result>Blocked: Clock Wrong</result>\n")
    );
}

#[test]
fn with_check_network_an_org_that_does_not_answer_blocks_the_plan() {
    let env = Env::new(365);
    env.write_config(&format!(
        "org_token_file = {:?}\n[network]\nwait_for_network_secs = 1\ntimeout_secs = 1\n\
         connect_timeout_secs = 1\n",
        env.token_file().display().to_string()
    ));
    let silent = format!("https://localhost:{}", free_port());
    let (run, doc) = plan_json(&env, &["--check-network", "--org-url", &silent]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(doc["verdict"], "Blocked: Okta Unreachable", "{doc}");
    // Without it, nothing is asked and the plan stands.
    let (run, doc) = plan_json(&env, &["--org-url", &silent]);
    assert_eq!(
        (run.code, &doc["verdict"]),
        (0, &Value::from("Ready: 1 certificate"))
    );
}
