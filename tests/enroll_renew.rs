//! The Okta path end to end: the built binary against the simulator over HTTPS.

mod common;

use base64::Engine;
use common::*;
use devicetrust::pki::CheckedIdentity;
use devicetrust::pki::{self, Authority, CertificateInfo, IssueProfile, IssueRequest, PrivateKey};
use devicetrust::sim::Endpoint;
use devicetrust::store::{FileStore, IdentityStore};
use std::process::Command;
use time::OffsetDateTime;

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn fresh_enroll_stores_an_identity_the_ca_vouches_for() {
    let env = Env::new(365);
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("INFO: enrolled: certificate"),
        "{run:?}"
    );

    let cert = env.certificate();
    pki::verify_issued_by(&cert.der, env.sim.mtls_ca_der()).unwrap();
    assert_eq!(cert.subject_cn.as_deref(), Some("Okta MTLS"));
    assert_eq!(
        cert.issuer_cn.as_deref(),
        Some("MTLS Certificate Authority")
    );
    let key = PrivateKey::from_pkcs8_pem(&env.key_pem()).unwrap();
    assert_eq!(key.public_key_der().unwrap(), cert.public_key_der);

    // The wire: metadata, then one enrollment, with the headers Okta's task sends.
    let requests = env.sim.requests();
    let paths: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET", "/api/internal/v1/device-trust/metadata"),
            ("POST", "/api/internal/device-trust/ca/v1/enroll/macos")
        ]
    );
    let enroll = &requests[1];
    assert!(enroll
        .header("user-agent")
        .unwrap()
        .starts_with("Okta Device Registration Task/1.3.3 (Macintosh; "));
    assert_eq!(enroll.header("accept"), Some("application/json"));
    let body = enroll.json().unwrap();
    assert_eq!(body["clientVersion"], "1.3.3");
    assert_eq!(body["device"]["uuid"], DEVICE_UUID);
    assert_eq!(body["device"]["displayName"], DEVICE_NAME);
    assert_eq!(body["user"], USER);
    let csr = pki::verify_csr(&b64(body["csr"].as_str().unwrap())).unwrap();
    assert_eq!(csr.public_key_der, cert.public_key_der);

    // What status reports is what was stored.
    let status = env.status_json();
    assert_eq!(status["status"], "Healthy");
    assert_eq!(status["method"], "okta");
    assert_eq!(status["serial"], cert.serial_hex.as_str());
    assert_eq!(
        status["fingerprint_sha256"],
        cert.fingerprint_sha256.as_str()
    );
    assert_eq!(status["last_renewal"], serde_json::Value::Null);
    assert!(status["days_left"].as_i64().unwrap() >= 364);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn file_store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.store_dir()), 0o700);
    assert_eq!(mode(&env.generation()), 0o700);
    for file in ["key.pem", "cert.pem", "chain.pem", "meta.json"] {
        assert_eq!(mode(&env.generation().join(file)), 0o600, "{file}");
    }
}

#[test]
fn a_second_enroll_makes_no_request() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let before = env.snapshot();
    let requests = env.sim.requests().len();
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("no new certificate requested"),
        "{run:?}"
    );
    assert_eq!(env.sim.requests().len(), requests);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn renew_outside_the_window_makes_no_request() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let before = env.snapshot();
    let requests = env.sim.requests().len();
    let run = env.run(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("nothing to do"), "{run:?}");
    assert_eq!(env.sim.requests().len(), requests);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn renew_inside_the_window_replaces_key_and_certificate() {
    let env = Env::new(10);
    assert_eq!(env.enroll().code, 0);
    let old_cert = env.certificate();
    let old_key = env.key_pem();

    let run = env.run(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    let new_cert = env.certificate();
    assert_ne!(new_cert.serial_hex, old_cert.serial_hex);
    assert_ne!(new_cert.public_key_der, old_cert.public_key_der);
    assert_ne!(env.key_pem(), old_key);
    pki::verify_issued_by(&new_cert.der, env.sim.mtls_ca_der()).unwrap();

    // The renewal carried a token signed by the old key, and no org token.
    let renew = env.sim.requests().into_iter().last().unwrap();
    assert_eq!(renew.path, "/api/internal/device-trust/ca/v1/renew/macos");
    let body = renew.json().unwrap();
    assert!(body.get("orgToken").is_none());
    let token =
        pki::verify_renewal_token(&b64(body["deviceRenewalToken"].as_str().unwrap())).unwrap();
    assert_eq!(token.signer_certificate_der, old_cert.der);
    assert_eq!(token.claims.device.uuid, DEVICE_UUID);

    // The live generation and the one before it are kept, and the attempt is recorded.
    let generations = std::fs::read_dir(env.store_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("id-")
        })
        .count();
    assert_eq!(generations, 2, "the live and the previous generation");
    let status = env.status_json();
    assert_eq!(status["last_renewal"]["ok"], true);
    assert_eq!(status["serial"], new_cert.serial_hex.as_str());
}

#[test]
fn renew_force_renews_outside_the_window() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let old = env.certificate();
    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_ne!(env.certificate().serial_hex, old.serial_hex);
}

/// Stores a certificate from the simulator's CA that expired yesterday.
fn install_expired_identity(env: &Env) -> CertificateInfo {
    let read = |n: &str| std::fs::read_to_string(fixture(n)).unwrap();
    let ca = Authority::from_pem(&read("mtls-ca.pem"), &read("mtls-ca.key")).unwrap();
    let key = PrivateKey::generate_rsa(2048).unwrap();
    let now = OffsetDateTime::now_utc();
    let der = ca
        .issue(IssueRequest {
            subject: "CN=Okta MTLS".into(),
            public_key_der: key.public_key_der().unwrap(),
            not_before: now - time::Duration::days(366),
            not_after: now - time::Duration::days(1),
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .unwrap();
    // Checked as of the day it was issued: the store takes only a checked identity.
    let then = now - time::Duration::days(300);
    let identity =
        CheckedIdentity::check(Box::new(key), &der, vec![], Some("Okta MTLS"), then).unwrap();
    FileStore::new(env.store_dir())
        .replace(identity, b"{}")
        .unwrap();
    CertificateInfo::parse(&der).unwrap()
}

#[test]
fn an_expired_certificate_is_reenrolled_when_a_token_is_available() {
    let env = Env::new(365);
    let expired = install_expired_identity(&env);
    assert_eq!(env.ea(), "<result>Certificate Expired</result>\n");

    let run = env.run_with_token(&["renew"]);
    assert_eq!(run.code, 0, "{run:?}");
    let paths: Vec<_> = env.sim.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.iter().all(|p| !p.ends_with("/renew/macos")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("/enroll/macos")),
        "{paths:?}"
    );
    let now = env.certificate();
    assert_ne!(now.serial_hex, expired.serial_hex);
    assert!(now.is_valid_at(OffsetDateTime::now_utc()));
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn an_expired_certificate_without_a_token_is_reported_and_kept() {
    let env = Env::new(365);
    install_expired_identity(&env);
    let before_store = std::fs::read_dir(env.generation()).unwrap().count();
    let cert_before = env.certificate();
    let run = env.run(&["renew"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("expired"), "{run:?}");
    assert!(env.sim.requests().is_empty());
    assert_eq!(env.certificate().der, cert_before.der);
    assert_eq!(
        std::fs::read_dir(env.generation()).unwrap().count(),
        before_store
    );
}

#[test]
fn uninstall_removes_everything_enroll_created() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    assert!(env.state_dir().join("state.json").exists());
    let run = env.run(&["uninstall"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        !env.state_dir().exists(),
        "state dir left: {:?}",
        env.snapshot().keys()
    );
    // The user's NSS database stays (Chrome's, holding whatever else the user put there), but
    // without our identity.
    let left: Vec<_> = env
        .snapshot()
        .into_keys()
        .filter(|p| !p.to_string_lossy().contains("/.pki/nssdb/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let nss =
        devicetrust::integrations::nss::NssDb::for_home(&env.root.path().join("home").join(USER))
            .unwrap();
    if nss.exists() {
        let ours = devicetrust::integrations::nss::Ours::issued_by(
            devicetrust::integrations::chrome::OKTA_ISSUER_CN,
            vec![],
        );
        assert!(
            nss.remove_ours(&ours).unwrap().is_empty(),
            "ours left in NSS"
        );
    }
    assert_eq!(env.ea(), "<result>Certificate Missing</result>\n");
    // Idempotent.
    assert_eq!(env.run(&["uninstall"]).code, 0);
}

#[test]
fn uninstall_reenroll_gets_a_fresh_certificate() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let old = env.certificate();
    let run = env.run_with_token(&["uninstall", "--reenroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_ne!(env.certificate().serial_hex, old.serial_hex);
    let enrolls = env.requests_to("/enroll/macos").len();
    assert_eq!(enrolls, 2);
}

#[test]
fn uninstall_reenroll_without_a_token_touches_nothing() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let before = env.snapshot();
    let run = env.run(&["uninstall", "--reenroll"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(env.snapshot(), before);
}

#[test]
fn the_csr_and_the_renewal_token_pass_openssl() {
    let env = Env::new(10);
    assert_eq!(env.enroll().code, 0);
    assert_eq!(env.run(&["renew"]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let requests = env.sim.requests();

    let enroll = requests
        .iter()
        .find(|r| r.path.ends_with("/enroll/macos"))
        .unwrap()
        .json()
        .unwrap();
    let csr = dir.path().join("csr.der");
    std::fs::write(&csr, b64(enroll["csr"].as_str().unwrap())).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-inform", "DER", "-verify", "-noout", "-in"])
        .arg(&csr)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify OK"),
        "{out:?}"
    );

    let renew = requests
        .iter()
        .find(|r| r.path.ends_with("/renew/macos"))
        .unwrap()
        .json()
        .unwrap();
    let token = dir.path().join("token.der");
    std::fs::write(&token, b64(renew["deviceRenewalToken"].as_str().unwrap())).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-in"])
        .arg(&token)
        .arg("-CAfile")
        .arg(fixture("mtls-ca.pem"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["device"]["uuid"], DEVICE_UUID);
    let (iat, exp, nbf) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
    );
    assert_eq!((exp - iat, iat - nbf), (3600, 300));
}

#[test]
fn a_renewal_replaces_the_certificate_in_the_simulators_count() {
    let env = Env::new(10);
    assert_eq!(env.enroll().code, 0);
    assert_eq!(env.run(&["renew"]).code, 0);
    let issued = env.sim.issued();
    assert_eq!(issued.len(), 2);
    assert!(issued[0].renewed && !issued[1].renewed);
    assert_eq!(issued[1].via, Endpoint::Renew);
}

#[test]
fn the_org_token_can_come_on_stdin() {
    use std::io::Write;
    let env = Env::new(365);
    let mut cmd = env.command(&["enroll", "--org-token-file", "-"]);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", env.sim.org_token()).as_bytes())
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn uninstall_also_removes_the_python_tasks_leftovers() {
    let env = Env::new(365);
    let home = env.root.path().join("home").join(USER);
    let script = home.join("Library/Okta/okta_device_trust.py");
    let agent = home.join("Library/LaunchAgents/com.okta.devicetrust.plist");
    let other_agent = home.join("Library/LaunchAgents/com.example.keep.plist");
    for f in [&script, &agent, &other_agent] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "x").unwrap();
    }
    let run = env.run(&["uninstall"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!home.join("Library/Okta").exists());
    assert!(!agent.exists());
    assert!(other_agent.exists(), "only the task's own files go");
    assert!(run.stdout.contains("Python registration task"), "{run:?}");
}

#[test]
fn a_renewal_warns_when_chrome_is_running() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 0);
    let already_running = run.stdout.contains("Chrome is running");

    // A process named like Chrome's (a copy of `sleep`), killed when the test ends.
    let dir = tempfile::tempdir().unwrap();
    let chrome = dir.path().join("chrome");
    std::fs::copy("/bin/sleep", &chrome).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _chrome = Kill(Command::new(&chrome).arg("60").spawn().unwrap());
    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("WARN: Chrome is running and may keep presenting the old certificate"),
        "{run:?}"
    );
    // Without Chrome (and when no other test runs one) there is no such line.
    if !already_running {
        drop(_chrome);
        let run = env.run(&["renew", "--force"]);
        // Only our fake's line: a Chromium another test runs on this machine may be reported.
        assert!(!run.stdout.contains("WARN: Chrome is running"), "{run:?}");
    }
}

/// Okta's Python task as it leaves a home folder: keychain, script folder, LaunchAgent.
fn plant_python_task(env: &Env) -> [std::path::PathBuf; 3] {
    let home = env.root.path().join("home").join(USER);
    let keychain = home.join("Library/Keychains/okta.keychain-db");
    let script = home.join("Library/Okta/okta_device_trust.py");
    let agent = home.join("Library/LaunchAgents/com.okta.devicetrust.plist");
    for f in [&keychain, &script, &agent] {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    }
    std::fs::write(&keychain, "keychain").unwrap();
    std::fs::write(&script, "VERSION = '1.3.3'\n").unwrap();
    std::fs::write(&agent, "<plist/>").unwrap();
    [keychain, script, agent]
}

#[test]
fn enrollment_retires_the_python_task_but_keeps_its_keychain() {
    let env = Env::new(365);
    let [keychain, script, agent] = plant_python_task(&env);
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        keychain.exists(),
        "the keychain is never deleted by the migration"
    );
    assert!(!script.parent().unwrap().exists());
    assert!(!agent.exists());
    assert!(
        run.stdout.contains("1.3.3"),
        "the task's version is reported: {run:?}"
    );
}

#[test]
fn a_failed_enrollment_leaves_the_python_task_alone() {
    let env = Env::new(365);
    let planted = plant_python_task(&env);
    env.write_token("wrong");
    assert_eq!(env.enroll().code, 1);
    for path in planted {
        assert!(path.exists(), "{} removed by a failed run", path.display());
    }
}
