//! Interoperability of the pki module with the `openssl` CLI: what we produce, openssl accepts,
//! and what openssl produces (the committed fixtures), we accept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use devicetrust::pki::{
    build_csr, check_issued, sign_renewal_token, verify_renewal_token, Authority, CertificateInfo,
    CsrProfile, IssueProfile, IssueRequest, IssuedCertError, PrivateKey, RenewalClaims,
};
use time::OffsetDateTime;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pki-fixtures")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// The fixture device key: loading it is instant, generating one is not.
fn device_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::from_pkcs8_pem(&read_fixture("device.key")).unwrap())
}

fn mtls_ca() -> &'static Authority {
    static CA: OnceLock<Authority> = OnceLock::new();
    CA.get_or_init(|| {
        Authority::from_pem(&read_fixture("mtls-ca.pem"), &read_fixture("mtls-ca.key")).unwrap()
    })
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs openssl; returns (success, stdout, stderr).
fn openssl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("openssl").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn client_request(now: OffsetDateTime) -> IssueRequest {
    IssueRequest {
        subject: "CN=Okta MTLS,O=Okta,ST=CA,C=US".to_owned(),
        public_key_der: device_key().public_key_der().unwrap(),
        not_before: now - time::Duration::minutes(5),
        not_after: now + time::Duration::days(365),
        serial: None,
        profile: IssueProfile::ClientAuth,
    }
}

#[test]
fn openssl_verifies_our_csr_and_sees_the_okta_profile() {
    let dir = tempfile::tempdir().unwrap();
    let csr = write(
        dir.path(),
        "device.csr",
        build_csr(&CsrProfile::okta(), device_key()).unwrap(),
    );
    let (ok, _, err) = openssl(&[
        "req",
        "-inform",
        "DER",
        "-in",
        path(&csr),
        "-verify",
        "-noout",
    ]);
    assert!(ok, "openssl req -verify failed: {err}");
    // OpenSSL 3.0 exits 0 even on a bad signature; the verdict is only in the message.
    assert!(err.contains("verify OK"), "{err}");

    let (ok, text, err) = openssl(&[
        "req",
        "-inform",
        "DER",
        "-in",
        path(&csr),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{err}");
    assert!(
        text.contains("Subject: C = US, ST = CA, O = Okta, CN = Okta MTLS"),
        "{text}"
    );
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    assert!(
        text.contains("Digital Signature, Non Repudiation, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
}

#[test]
fn openssl_rejects_our_csr_once_altered() {
    let dir = tempfile::tempdir().unwrap();
    let mut der = build_csr(&CsrProfile::okta(), device_key()).unwrap();
    let at = der.windows(9).position(|w| w == b"Okta MTLS").unwrap();
    der[at] = b'X';
    let csr = write(dir.path(), "tampered.csr", der);
    let (ok, _, err) = openssl(&[
        "req",
        "-inform",
        "DER",
        "-in",
        path(&csr),
        "-verify",
        "-noout",
    ]);
    // OpenSSL 3.0's `req -verify` exits 0 even when the signature is bad, so read its verdict.
    assert!(
        !ok || err.contains("verify failure"),
        "openssl accepted a tampered CSR: {err}"
    );
    assert!(!err.contains("verify OK"), "{err}");
}

#[test]
fn openssl_verifies_our_renewal_token_and_returns_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let cert = mtls_ca().issue(client_request(now)).unwrap();
    let claims = RenewalClaims::new("UUID-1", "Jane’s Mac", now.unix_timestamp());
    let token = write(
        dir.path(),
        "token.der",
        sign_renewal_token(&claims, &cert, device_key()).unwrap(),
    );
    let ca = fixture("mtls-ca.pem");
    let (ok, content, err) = openssl(&[
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        path(&token),
        "-CAfile",
        path(&ca),
    ]);
    assert!(ok, "openssl cms -verify failed: {err}");
    assert!(err.contains("Verification successful"), "{err}");
    assert_eq!(content.as_bytes(), claims.to_json().unwrap());
}

#[test]
fn openssl_verifies_a_certificate_issued_by_our_authority() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new_self_signed("Interop Test CA", Duration::from_secs(3600)).unwrap();
    let ca_pem = write(dir.path(), "ca.pem", ca.certificate_pem());
    let now = OffsetDateTime::now_utc();
    for profile in [
        IssueProfile::ClientAuth,
        IssueProfile::TlsServer {
            dns_names: vec!["localhost".to_owned()],
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
        },
    ] {
        let purpose = match profile {
            IssueProfile::ClientAuth => "sslclient",
            IssueProfile::TlsServer { .. } => "sslserver",
        };
        let cert = ca
            .issue(IssueRequest {
                profile,
                ..client_request(now)
            })
            .unwrap();
        let leaf = write(
            dir.path(),
            "leaf.pem",
            CertificateInfo::parse(&cert).unwrap().to_pem(),
        );
        let (ok, out, err) = openssl(&[
            "verify",
            "-CAfile",
            path(&ca_pem),
            "-purpose",
            purpose,
            path(&leaf),
        ]);
        assert!(ok, "openssl verify ({purpose}) failed: {out}{err}");
        assert!(out.contains(": OK"), "{out}");
    }
    // And a different CA must not verify it.
    let other = write(dir.path(), "other.pem", read_fixture("tls-ca.pem"));
    let leaf = dir.path().join("leaf.pem");
    let (ok, _, _) = openssl(&["verify", "-CAfile", path(&other), path(&leaf)]);
    assert!(!ok);
}

#[test]
fn we_verify_the_openssl_signed_fixture_token() {
    let der = std::fs::read(fixture("renewal-token.der")).unwrap();
    let verified = verify_renewal_token(&der).unwrap();
    let expected: RenewalClaims =
        serde_json::from_str(&read_fixture("renewal-claims.json")).unwrap();
    assert_eq!(verified.claims, expected);
    let signer = CertificateInfo::parse(&verified.signer_certificate_der).unwrap();
    assert_eq!(
        signer,
        CertificateInfo::from_pem(&read_fixture("device.pem")).unwrap()
    );
    devicetrust::pki::verify_issued_by(
        &verified.signer_certificate_der,
        mtls_ca().certificate_der(),
    )
    .unwrap();
}

#[test]
fn we_reject_the_fixture_token_once_its_content_is_altered() {
    let mut der = std::fs::read(fixture("renewal-token.der")).unwrap();
    let at = der.windows(11).position(|w| w == b"Fixture Mac").unwrap();
    der[at] = b'f';
    assert!(verify_renewal_token(&der).is_err());
}

#[test]
fn openssl_made_device_certificates_pass_and_fail_check_issued() {
    let key = device_key().public_key_der().unwrap();
    let now = OffsetDateTime::now_utc();
    let good = CertificateInfo::from_pem(&read_fixture("device.pem")).unwrap();
    let info = check_issued(&good.der, &key, Some("Okta MTLS"), now).unwrap();
    assert_eq!(
        info.issuer_cn.as_deref(),
        Some("MTLS Certificate Authority")
    );
    assert_eq!(info.serial_hex, "1001");

    let expired = CertificateInfo::from_pem(&read_fixture("device-expired.pem")).unwrap();
    assert!(matches!(
        check_issued(&expired.der, &key, Some("Okta MTLS"), now),
        Err(IssuedCertError::Expired { .. })
    ));
    assert!(expired.days_left(now) < 0);
}
