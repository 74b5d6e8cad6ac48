//! The SCEP client against micromdm's real `scepserver` (Debian package `scep`) on loopback:
//! enrollment, a wrong challenge, the CA fingerprint pin, renewal, and a server that is down.

mod common;

use common::scepserver::{free_port, ScepServer, CHALLENGE};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use devicetrust::http::{HttpSettings, RetryPolicy};
use devicetrust::pki::{pem_encode, CertificateInfo, PrivateKey};
use devicetrust::scep::{self, parse_fingerprint, ScepError, ScepSettings};
use devicetrust::secret::Secret;

fn http() -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..HttpSettings::default()
    }
}

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate_rsa(2048).unwrap())
}

fn other_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate_rsa(2048).unwrap())
}

fn openssl_verify(server: &ScepServer, certificate_der: &[u8], name: &str) -> String {
    let path = server.dir.path().join(name);
    std::fs::write(&path, pem_encode("CERTIFICATE", certificate_der)).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(server.depot().join("ca.pem"))
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_no_challenge(err: &ScepError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(CHALLENGE), "{shown}");
    assert!(!shown.contains("wrong-challenge"), "{shown}");
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn the_right_challenge_yields_a_certificate_openssl_verifies() {
    let server = ScepServer::start(false);
    let mut settings = server.settings(CHALLENGE);
    // The fingerprint as an admin pastes it from `openssl x509 -fingerprint -sha256`.
    let fingerprint = scep::sha256_fingerprint_hex(&server.ca_der());
    settings.ca_fingerprint =
        Some(parse_fingerprint(&format!("sha256 Fingerprint={fingerprint}")).unwrap());
    let issued = scep::enroll(&settings, &http(), key()).unwrap();

    assert!(openssl_verify(&server, &issued.certificate_der, "issued.pem").contains("OK"));
    assert_eq!(issued.ca_certificate_der, server.ca_der());
    let info = CertificateInfo::parse(&issued.certificate_der).unwrap();
    assert!(
        info.subject.contains("CN=devicetrust test"),
        "{}",
        info.subject
    );
    assert_eq!(info.public_key_der, key().public_key_der().unwrap());
    assert_eq!(count(&server.log(), "PKCSReq (19)"), 1, "{}", server.log());
}

#[test]
fn a_wrong_challenge_names_the_fail_info_and_issues_nothing() {
    let server = ScepServer::start(false);
    let settings = server.settings("wrong-challenge");
    let err = scep::enroll(&settings, &http(), key()).unwrap_err();
    assert!(
        matches!(err, ScepError::Rejected { .. }),
        "{err} / {}",
        server.log()
    );
    let shown = err.to_string();
    assert!(shown.contains("badRequest"), "{shown}");
    assert!(!shown.contains('\n'));
    assert!(!err.is_transient());
    assert_no_challenge(&err);
    // The depot records every issued certificate in index.txt; nothing was added.
    let index = std::fs::read_to_string(server.depot().join("index.txt")).unwrap_or_default();
    assert!(index.trim().is_empty(), "{index}");
}

#[test]
fn a_ca_fingerprint_mismatch_is_refused_before_any_pki_operation() {
    let server = ScepServer::start(false);
    let mut settings = server.settings(CHALLENGE);
    settings.ca_fingerprint = Some([0xab; 32]);
    let err = scep::enroll(&settings, &http(), key()).unwrap_err();
    assert!(
        matches!(err, ScepError::FingerprintMismatch { .. }),
        "{err}"
    );
    let shown = err.to_string();
    assert!(shown.contains("AB:AB:AB"), "{shown}");
    assert!(
        shown.contains(&scep::sha256_fingerprint_hex(&server.ca_der())),
        "{shown}"
    );
    assert_no_challenge(&err);
    // scepserver -debug logs each operation it serves: GetCACert yes, PKIOperation never.
    let log = server.log();
    assert!(count(&log, "op=GetCACert") >= 1, "{log}");
    assert_eq!(count(&log, "PKIOperation"), 0, "{log}");
}

#[test]
fn renewal_uses_renewal_req_signed_by_the_current_identity() {
    let server = ScepServer::start(true);
    let settings = server.settings(CHALLENGE);
    let first = scep::enroll(&settings, &http(), other_key()).unwrap();
    let renewed = scep::renew(
        &settings,
        &http(),
        &first.certificate_der,
        other_key(),
        key(),
    )
    .unwrap();
    assert!(openssl_verify(&server, &renewed.certificate_der, "renewed.pem").contains("OK"));
    let info = CertificateInfo::parse(&renewed.certificate_der).unwrap();
    assert_eq!(info.public_key_der, key().public_key_der().unwrap());
    let log = server.log();
    assert_eq!(count(&log, "RenewalReq (17)"), 1, "{log}");
    assert_eq!(count(&log, "PKCSReq (19)"), 1, "{log}");
}

#[test]
fn a_server_that_is_down_is_a_clear_transient_error() {
    let url = url::Url::parse(&format!("http://127.0.0.1:{}/scep", free_port())).unwrap();
    let mut settings = ScepSettings::new(url);
    settings.challenge = Some(Secret::new(CHALLENGE));
    let err = scep::enroll(&settings, &http(), key()).unwrap_err();
    assert!(err.is_transient(), "{err}");
    let shown = err.to_string();
    assert!(
        shown.contains("GetCACaps") && shown.contains("cannot reach"),
        "{shown}"
    );
    assert_no_challenge(&err);
}
