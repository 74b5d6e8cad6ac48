//! An admin moves a fleet from Okta's API to a SCEP CA (the Okta FastPass / JumpCloud path) and
//! back. Each change re-enrolls with the configured CA at the next `enroll`; until then every
//! report says `Certificate From Another CA`. The old identity stays live until the new one is
//! stored and checked, and the browser policy and the NSS database follow in the same run.
//! Against the simulator and micromdm's real scepserver, driven as the Jamf policy drives the
//! agent.

mod common;

use common::scepserver::{ScepServer, CHALLENGE};
use common::*;
use devicetrust::pki::{pem_decode_all, CertificateInfo};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const SCEP_HOST: &str = "scep-dt.example.com";

/// The device's configuration moved to `server` (pinned), the SCEP CA's challenge beside it.
fn use_scep(env: &Env, server: &ScepServer, challenge: &str) {
    let challenge_file = env.etc().join("scep-challenge");
    std::fs::write(&challenge_file, format!("{challenge}\n")).unwrap();
    env.write_config(&format!(
        "cert_auth_host = {SCEP_HOST:?}\n[scep]\nurl = {:?}\nchallenge_file = {:?}\n\
         ca_fingerprint = {:?}\nsubject = \"CN=devicetrust test,O=Example\"\n",
        server.url.as_str(),
        challenge_file.display().to_string(),
        devicetrust::scep::sha256_fingerprint_hex(&server.ca_der()),
    ));
}

/// Every `AutoSelectCertificateForUrls` entry of every browser under the root.
fn policy_entries(env: &Env) -> Vec<Value> {
    let mut entries = Vec::new();
    for dir in [
        "etc/opt/chrome/policies/managed",
        "etc/chromium/policies/managed",
        "etc/opt/edge/policies/managed",
    ] {
        for file in std::fs::read_dir(env.root.path().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let doc: Value = serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap();
            for item in doc["AutoSelectCertificateForUrls"].as_array().unwrap() {
                entries.push(serde_json::from_str(item.as_str().unwrap()).unwrap());
            }
        }
    }
    entries
}

/// The certificates in the user's NSS database, by serial.
fn nss_serials(env: &Env) -> Vec<String> {
    let db = env.root.path().join("home").join(USER).join(".pki/nssdb");
    let list = Command::new("certutil")
        .arg("-L")
        .arg("-d")
        .arg(format!("sql:{}", db.display()))
        .output()
        .unwrap();
    assert!(list.status.success(), "{list:?}");
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    let mut serials = Vec::new();
    // `certutil -L` prints a header, then "<nickname>   <trust flags>" per line.
    for line in text.lines().skip(4).filter(|l| !l.trim().is_empty()) {
        let nickname = line
            .rsplit_once(char::is_whitespace)
            .map_or(line, |(n, _)| n)
            .trim();
        let pem = Command::new("certutil")
            .arg("-L")
            .arg("-d")
            .arg(format!("sql:{}", db.display()))
            .args(["-a", "-n", nickname])
            .output()
            .unwrap();
        assert!(pem.status.success(), "{nickname}: {pem:?}");
        for (_, der) in pem_decode_all(&String::from_utf8_lossy(&pem.stdout)).unwrap() {
            serials.push(CertificateInfo::parse(&der).unwrap().serial_hex);
        }
    }
    serials.sort();
    serials.dedup();
    serials
}

/// The folders kept aside in the store, and the issuer of the certificate in each.
fn kept_aside(env: &Env) -> Vec<(PathBuf, String)> {
    std::fs::read_dir(env.store_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("damaged-")
        })
        .map(|p| {
            let pem = std::fs::read_to_string(p.join("cert.pem")).unwrap();
            let issuer = CertificateInfo::from_pem(&pem).unwrap().issuer;
            (p, issuer)
        })
        .collect()
}

fn nss_tools() -> bool {
    let present = std::path::Path::new("/usr/bin/certutil").exists();
    assert!(
        present || std::env::var_os("CI").is_none(),
        "libnss3-tools must be installed under CI"
    );
    present
}

#[test]
fn okta_to_scep_and_back_reenrolls_each_time_without_a_gap() {
    if !nss_tools() {
        eprintln!("skipped: certutil is not installed");
        return;
    }
    let env = Env::new(365);
    let server = ScepServer::start(false);
    let ca = CertificateInfo::parse(&server.ca_der()).unwrap();

    // Enrolled with Okta, as the Jamf policy does.
    assert_eq!(env.enroll().code, 0);
    let okta = env.certificate();
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
    assert_eq!(nss_serials(&env), [okta.serial_hex.clone()]);
    let okta_entries = policy_entries(&env);
    assert!(!okta_entries.is_empty());
    for entry in &okta_entries {
        assert_eq!(
            entry["filter"]["ISSUER"]["CN"],
            "MTLS Certificate Authority"
        );
    }

    // The admin pushes the SCEP configuration: every report says so, and the daily job asks
    // nobody for anything.
    use_scep(&env, &server, "not the challenge");
    assert_eq!(env.ea(), "<result>Certificate From Another CA</result>\n");
    let status = env.status_json();
    assert_eq!(status["status"], "Certificate From Another CA");
    assert!(
        status["detail"]
            .as_str()
            .unwrap()
            .contains(server.url.as_str()),
        "{status}"
    );
    assert_eq!(status["serial"], okta.serial_hex.as_str());
    let requests = env.sim.requests().len();
    let job = env.run(&["renew"]);
    assert_eq!(job.code, 1, "{job:?}");
    assert!(job.error().contains("Okta's device-trust CA"), "{job:?}");
    assert_eq!(env.sim.requests().len(), requests);

    // An enrollment the SCEP CA refuses leaves the Okta identity live and working.
    let run = env.run(&["enroll"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert_eq!(env.certificate().serial_hex, okta.serial_hex);
    assert_eq!(nss_serials(&env), [okta.serial_hex.clone()]);
    assert_eq!(policy_entries(&env), okta_entries);

    // With the right challenge: the SCEP identity replaces it in one run, the filter and the
    // NSS database switch with it, and the Okta certificate is kept aside.
    use_scep(&env, &server, CHALLENGE);
    let run = env.run(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    let scep = env.certificate();
    assert_eq!(scep.issuer, ca.subject);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
    assert_eq!(nss_serials(&env), [scep.serial_hex.clone()]);
    let entries = policy_entries(&env);
    assert!(!entries.is_empty());
    for entry in &entries {
        assert_eq!(entry["pattern"], format!("https://{SCEP_HOST}"));
        // The CA's name, field by field (micromdm's CA has no CN).
        let issuer = &entry["filter"]["ISSUER"];
        for (field, value) in [
            ("CN", &scep.issuer_cn),
            ("O", &scep.issuer_o),
            ("OU", &scep.issuer_ou),
        ] {
            assert_eq!(issuer[field].as_str(), value.as_deref(), "{field}: {entry}");
        }
        assert_ne!(issuer["CN"], "MTLS Certificate Authority");
    }
    let aside = kept_aside(&env);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(aside[0].1, okta.issuer);
    let record: Value = serde_json::from_slice(
        &std::fs::read(
            env.root
                .path()
                .join("var/lib/devicetrust/users/tester.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(record["method"], "scep");
    assert!(!record["scep_ca_certificates"]
        .as_array()
        .unwrap()
        .is_empty());

    // And back to Okta: the token-carrying policy re-enrolls with Okta.
    env.write_config("");
    assert_eq!(env.ea(), "<result>Certificate From Another CA</result>\n");
    let enrolls = env.requests_to("/enroll/macos").len();
    assert_eq!(env.enroll().code, 0);
    assert_eq!(env.requests_to("/enroll/macos").len(), enrolls + 1);
    let back = env.certificate();
    assert_eq!(back.issuer, okta.issuer);
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
    assert_eq!(nss_serials(&env), [back.serial_hex.clone()]);
    assert_eq!(policy_entries(&env), okta_entries);
}

#[test]
fn a_change_of_okta_org_stays_refused_while_a_valid_certificate_is_held() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let other = devicetrust::sim::Simulator::start(Default::default()).unwrap();
    let enrolls = env.requests_to("/enroll/macos").len();
    let run = env.run_with_token(&["enroll", "--org-url", &other.org_url()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("belongs to"), "{run:?}");
    assert_eq!(env.requests_to("/enroll/macos").len(), enrolls);
    assert!(other.requests().is_empty());
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}
