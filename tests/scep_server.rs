//! The SCEP client against micromdm's real `scepserver` (Debian package `scep`) on loopback:
//! enrollment, a wrong challenge, the CA fingerprint pin, renewal, and a server that is down.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use devicetrust::http::{HttpSettings, RetryPolicy};
use devicetrust::pki::{pem_decode_all, pem_encode, CertificateInfo, PrivateKey};
use devicetrust::scep::{self, parse_fingerprint, ScepError, ScepSettings};
use devicetrust::secret::Secret;

const CHALLENGE: &str = "test-only-challenge-7f3a";

/// A `scepserver` with its own depot on a free loopback port; killed on drop.
struct ScepServer {
    child: Child,
    dir: tempfile::TempDir,
    url: url::Url,
}

impl ScepServer {
    fn start(allow_renew: bool) -> ScepServer {
        let dir = tempfile::tempdir().unwrap();
        let depot = dir.path().join("depot");
        let status = Command::new("scepserver")
            .args(["ca", "-init", "-keySize", "2048", "-depot"])
            .arg(&depot)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("scepserver is installed (Debian package scep)");
        assert!(status.success(), "scepserver ca -init failed");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut command = Command::new("scepserver");
        command.arg("-depot").arg(&depot).args([
            "-port",
            &port.to_string(),
            "-challenge",
            CHALLENGE,
            "-debug",
        ]);
        if allow_renew {
            command.args(["-allowrenew", "0"]);
        }
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = ScepServer {
            child,
            dir,
            url: url::Url::parse(&format!("http://127.0.0.1:{port}/scep")).unwrap(),
        };
        server.wait_ready(port);
        server
    }

    /// Polls GetCACaps until it answers 200; bounded, so a broken server fails the test.
    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.write_all(
                    b"GET /scep?operation=GetCACaps HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                );
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("scepserver did not become ready: {}", self.log());
    }

    fn depot(&self) -> PathBuf {
        self.dir.path().join("depot")
    }

    fn ca_der(&self) -> Vec<u8> {
        let pem = std::fs::read_to_string(self.depot().join("ca.pem")).unwrap();
        pem_decode_all(&pem).unwrap().remove(0).1
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn settings(&self, challenge: &str) -> ScepSettings {
        let mut settings = ScepSettings::new(self.url.clone());
        settings.challenge = Some(Secret::new(challenge));
        settings.subject = "CN=devicetrust test,O=Example".into();
        settings
    }
}

impl Drop for ScepServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
