//! Only RSA keys can be the same public key: every key the agent makes is RSA, so a certificate
//! for any other key belongs to someone else, however equal the key's bytes. Checked through the
//! checks an issued certificate passes before it is stored (`pki::cert::check_issued`), with EC
//! keys made by aws-lc, apart from the unit tests' hand-built encodings.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
};
use devicetrust::pki::cert::{check_issued, IssuedCertError};
use devicetrust::pki::{Authority, IssueProfile, IssueRequest, PrivateKey};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pki-fixtures")
            .join(name),
    )
    .unwrap()
}

/// The SubjectPublicKeyInfo of a fresh EC key on the curve `alg` signs with.
fn ec_public_key(alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> Vec<u8> {
    let key = EcdsaKeyPair::generate(alg).unwrap();
    key.public_key().as_der().unwrap().as_ref().to_vec()
}

/// A certificate `CN=Okta MTLS`, valid for a day, from the test MTLS CA for `public_key_der`.
fn issued_for(public_key_der: &[u8]) -> Vec<u8> {
    devicetrust::pki::install_crypto_provider();
    let ca = Authority::from_pem(&fixture("mtls-ca.pem"), &fixture("mtls-ca.key")).unwrap();
    let now = OffsetDateTime::now_utc();
    ca.issue(IssueRequest {
        subject: "CN=Okta MTLS".into(),
        public_key_der: public_key_der.to_vec(),
        not_before: now - Duration::from_secs(60),
        not_after: now + Duration::from_secs(24 * 3600),
        serial: None,
        profile: IssueProfile::ClientAuth,
    })
    .unwrap()
}

#[test]
fn a_certificate_for_an_ec_key_never_matches_a_key_even_its_own() {
    let now = OffsetDateTime::now_utc();
    // The control: an RSA key and a certificate for it pass every check.
    let rsa = PrivateKey::from_pkcs8_pem(&fixture("device.key"))
        .unwrap()
        .public_key_der()
        .unwrap();
    check_issued(&issued_for(&rsa), &rsa, Some("Okta MTLS"), now).unwrap();

    let p256 = ec_public_key(&ECDSA_P256_SHA256_ASN1_SIGNING);
    let other_p256 = ec_public_key(&ECDSA_P256_SHA256_ASN1_SIGNING);
    let p384 = ec_public_key(&ECDSA_P384_SHA384_ASN1_SIGNING);
    assert_ne!(p256, other_p256);
    let certificate = issued_for(&p256);
    for (expected, what) in [
        (&p256, "the same P-256 key, byte for byte"),
        (&other_p256, "another P-256 key"),
        (&p384, "a P-384 key"),
        (&rsa, "an RSA key"),
    ] {
        match check_issued(&certificate, expected, Some("Okta MTLS"), now) {
            Err(IssuedCertError::KeyMismatch) => {}
            other => panic!("{what}: {:?}", other.map(|c| c.serial_hex)),
        }
    }
    // Nor does an RSA certificate match an EC key.
    match check_issued(&issued_for(&rsa), &p384, Some("Okta MTLS"), now) {
        Err(IssuedCertError::KeyMismatch) => {}
        other => panic!("{:?}", other.map(|c| c.serial_hex)),
    }
}
