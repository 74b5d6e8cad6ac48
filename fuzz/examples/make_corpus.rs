//! Writes the seed corpora in `corpus/<target>/`: a few small, real inputs per target, made with
//! the crate's own encoders from `keys/`, `pki-fixtures/`, `tests/fixtures/macho/` and
//! `pkg/profiles/`.
//!
//! Run from this directory: `cargo run --example make_corpus`. Envelopes use fresh content keys,
//! so the bytes differ from run to run; what they hold does not.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use devicetrust::pki::{
    build_csr, sign_renewal_token, CsrProfile, KeyUsage, RenewalClaims, SubjectAltName,
};
use devicetrust::scep::cacert::degenerate_pkcs7;
use devicetrust::scep::envelope::{seal, ContentCipher};
use devicetrust::scep::message::{
    sign_pki_message, FailInfo, MessageDigest, MessageType, PkiStatus, ScepAttributes, Signer,
};
use devicetrust::secret::Secret;
use devicetrust_fuzz::{ca, device_certificate_der, device_key, join, DEVICE_CERT_PEM};

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = here
        .parent()
        .expect("the fuzz directory sits in the repository");
    let corpus = here.join("corpus");
    codesign(&corpus, repo);
    scep_certrep(&corpus);
    scep_getcacert(&corpus);
    pki_certificate(&corpus, repo);
    pki_csr(&corpus);
    pki_renewal_token(&corpus, repo);
    store_file(&corpus);
    config_toml(&corpus);
    config_managed(&corpus, repo);
    okta_answer(&corpus);
}

fn target_dir(corpus: &Path, target: &str) -> PathBuf {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    dir
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn prefixed(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(rest);
    out
}

fn codesign(corpus: &Path, repo: &Path) {
    let dir = target_dir(corpus, "codesign");
    let fixtures = repo.join("tests/fixtures/macho");
    for name in [
        "signed-arm64",
        "adhoc-arm64",
        "unsigned-x86_64",
        "universal-signed",
    ] {
        let bytes = std::fs::read(fixtures.join(name)).expect("Mach-O fixture");
        write(&dir, name, &bytes);
    }
}

/// The device certificate in a certs-only bundle, encrypted to the device key.
fn envelope(cipher: ContentCipher, with_ca: bool) -> Vec<u8> {
    let mut certificates = vec![device_certificate_der().to_vec()];
    if with_ca {
        certificates.insert(0, ca().certificate_der().to_vec());
    }
    let bundle = degenerate_pkcs7(&certificates).expect("bundle");
    seal(&bundle, device_certificate_der(), cipher).expect("envelope")
}

fn cert_rep(
    status: PkiStatus,
    fail_info: Option<FailInfo>,
    text: Option<&str>,
    content: Option<&[u8]>,
    digest: MessageDigest,
) -> Vec<u8> {
    let mut attributes = ScepAttributes::request(MessageType::CertRep, "");
    attributes.transaction_id = "4f0c2b".repeat(8);
    attributes.recipient_nonce = Some(vec![0x5a; 16]);
    attributes.pki_status = Some(status);
    attributes.fail_info = fail_info;
    attributes.fail_info_text = text.map(str::to_owned);
    sign_pki_message(
        &attributes,
        content,
        ca().certificate_der(),
        Signer::InMemory(ca().key()),
        digest,
    )
    .expect("CertRep")
}

fn scep_certrep(corpus: &Path) {
    let dir = target_dir(corpus, "scep_certrep");
    let aes = envelope(ContentCipher::Aes128Cbc, false);
    let des3 = envelope(ContentCipher::Des3Cbc, false);
    let aes256_chain = envelope(ContentCipher::Aes256Cbc, true);

    let success = cert_rep(
        PkiStatus::Success,
        None,
        None,
        Some(&aes),
        MessageDigest::Sha256,
    );
    let failure = cert_rep(
        PkiStatus::Failure,
        Some(FailInfo::BadRequest),
        Some("challenge password expired"),
        None,
        MessageDigest::Sha256,
    );
    let pending = cert_rep(PkiStatus::Pending, None, None, None, MessageDigest::Sha1);
    write(&dir, "answer-success", &prefixed(&[0], &success));
    write(&dir, "answer-failure", &prefixed(&[0], &failure));
    write(&dir, "answer-pending-sha1", &prefixed(&[0], &pending));

    write(&dir, "envelope-aes128", &prefixed(&[1], &aes));
    write(&dir, "envelope-des3", &prefixed(&[1], &des3));
    write(
        &dir,
        "envelope-aes256-chain",
        &prefixed(&[1], &aes256_chain),
    );

    // [flags][status][failInfo], failInfoText, content: see the target.
    write(
        &dir,
        "exchange-enroll",
        &prefixed(&[2], &join(&[&[0, 0, 0], b"", &aes])),
    );
    write(
        &dir,
        "exchange-renew",
        &prefixed(&[2], &join(&[&[1, 0, 0], b"", &des3])),
    );
    write(
        &dir,
        "exchange-failure",
        &prefixed(&[2], &join(&[&[0, 1, 2], b"challenge expired", b""])),
    );
    write(
        &dir,
        "exchange-pending-get",
        &prefixed(&[2], &join(&[&[0x20, 2, 0], b"", b""])),
    );
}

fn scep_getcacert(corpus: &Path) {
    let dir = target_dir(corpus, "scep_getcacert");
    let ca_der = ca().certificate_der().to_vec();
    let device = device_certificate_der().to_vec();
    write(&dir, "ca-cert", &prefixed(&[1], &ca_der));
    let ra_bundle = degenerate_pkcs7(&[ca_der.clone(), device]).expect("bundle");
    write(&dir, "ca-ra-bundle", &prefixed(&[2], &ra_bundle));
    let ca_bundle = degenerate_pkcs7(&[ca_der]).expect("bundle");
    write(&dir, "ca-bundle-untyped", &prefixed(&[0], &ca_bundle));
    write(
        &dir,
        "caps-micromdm",
        b"\x05Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation",
    );
}

fn pki_certificate(corpus: &Path, repo: &Path) {
    let dir = target_dir(corpus, "pki_certificate");
    let fixtures = repo.join("pki-fixtures");
    for name in ["device.pem", "device-expired.pem", "tls-ca.pem"] {
        let text = std::fs::read(fixtures.join(name)).expect("PEM fixture");
        write(&dir, name, &text);
    }
    write(&dir, "device.der", device_certificate_der());
    write(&dir, "mtls-ca.der", ca().certificate_der());
    let chain = format!("{DEVICE_CERT_PEM}{}", ca().certificate_pem());
    write(&dir, "chain.pem", chain.as_bytes());
}

fn pki_csr(corpus: &Path) {
    let dir = target_dir(corpus, "pki_csr");
    let okta = build_csr(&CsrProfile::okta(), device_key()).expect("CSR");
    write(&dir, "okta.der", &okta);
    let scep = CsrProfile {
        subject: "CN=devicetrust,O=Example".into(),
        key_usage: KeyUsage {
            digital_signature: true,
            key_encipherment: true,
            ..KeyUsage::default()
        },
        basic_constraints_ca_false: false,
        subject_alt_names: vec![
            SubjectAltName::Rfc822("it@example.com".into()),
            SubjectAltName::Dns("mac.example.com".into()),
            SubjectAltName::Uri("https://example.com/device".into()),
            SubjectAltName::NtPrincipalName("ada@example.com".into()),
        ],
        challenge_password: Some(Secret::new("s3cret-challenge")),
    };
    write(
        &dir,
        "scep.der",
        &build_csr(&scep, device_key()).expect("CSR"),
    );
}

fn pki_renewal_token(corpus: &Path, repo: &Path) {
    let dir = target_dir(corpus, "pki_renewal_token");
    let openssl = std::fs::read(repo.join("pki-fixtures/renewal-token.der")).expect("token");
    write(&dir, "openssl-token", &prefixed(&[0], &openssl));
    let claims = RenewalClaims::new(
        "564D8F7A-1B2C-4D5E-8F90-A1B2C3D4E5F6",
        "Ada’s MacBook Pro",
        1_750_000_000,
    );
    let token = sign_renewal_token(&claims, device_certificate_der(), device_key()).expect("token");
    write(&dir, "agent-token", &prefixed(&[0], &token));

    let mut numbers = vec![1];
    for n in [claims.iat, claims.exp, claims.nbf] {
        numbers.extend_from_slice(&n.to_le_bytes());
    }
    let round_trip = prefixed(
        &numbers,
        &join(&[
            claims.device.uuid.as_bytes(),
            "Zoë’s Mac \u{1F600}\t\"x\"".as_bytes(),
        ]),
    );
    write(&dir, "claims-round-trip", &round_trip);
}

fn store_file(corpus: &Path) {
    let dir = target_dir(corpus, "store_file");
    let key = device_key().to_pkcs8_pem().expect("key PEM");
    let meta = br#"{"format":1,"stored_at":"2026-06-15T09:00:00Z"}"#;
    let identity = join(&[
        b"id-fuzz\n",
        DEVICE_CERT_PEM.as_bytes(),
        key.as_bytes(),
        meta,
    ]);
    write(&dir, "identity", &identity);
    let other_generation = join(&[
        b"id-1750000000-a1b2c3d4",
        DEVICE_CERT_PEM.as_bytes(),
        b"",
        b"",
    ]);
    write(&dir, "other-generation", &other_generation);
    let cert_only = join(&[b"id-fuzz", DEVICE_CERT_PEM.as_bytes(), b"", meta]);
    write(&dir, "certificate-only", &cert_only);
}

fn config_toml(corpus: &Path) {
    let dir = target_dir(corpus, "config_toml");
    write(
        &dir,
        "okta.toml",
        br#"org_url = "https://acme.okta.com"
org_token_file = "/Library/Application Support/devicetrust/org-token"
ca_file = "/path/to/extra-anchors.pem"
renew_before_days = 30
store = "file:/var/db/devicetrust"
lock_timeout_secs = 60

[network]
connect_timeout_secs = 10
timeout_secs = 60
max_attempts = 4
retry_base_delay_ms = 2000
max_rate_limit_wait_secs = 120
wait_for_network_secs = 30

[allowlist]
add = ["teamid:ABCDE12345"]
remove = ["teamid:AL798K98FX"]
"#,
    );
    write(
        &dir,
        "scep.toml",
        br#"cert_auth_host = "devicetrust.example.com"

[scep]
url = "https://acme.okta.com/scep/abc"
ca_fingerprint = "SHA256 Fingerprint=AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
name = "okta"
subject = "CN=devicetrust, O=Example"
key_size = 2048
key_type = "RSA"
key_usage = 5
subject_alt_names = { rfc822 = ["it@example.com"], dns = ["mac.example.com"], uri = ["https://example.com/d"], nt_principal_name = "ada@example.com" }
retries = 3
retry_delay_secs = 10
renew_before_days = 21
allow_all_apps_access = false
"#,
    );
    write(
        &dir,
        "allowlist.toml",
        br#"org_url = "acme.oktapreview.com:8443"
[allowlist]
replace_defaults = ["teamid:BQR82RBBHL", "apple:", "apple-tool:"]
allow_all_apps = false
"#,
    );
}

fn config_managed(corpus: &Path, repo: &Path) {
    let dir = target_dir(corpus, "config_managed");
    let profile = plist::Value::from_file(repo.join("pkg/profiles/devicetrust.mobileconfig"))
        .expect("profile template");
    let payload = profile
        .as_dictionary()
        .and_then(|d| d.get("PayloadContent"))
        .and_then(plist::Value::as_array)
        .and_then(|items| items.first())
        .cloned()
        .expect("the profile's first payload");
    let mut xml = Vec::new();
    payload.to_writer_xml(&mut xml).expect("XML plist");
    write(&dir, "profile-payload.plist", &xml);
    let mut binary = Vec::new();
    payload.to_writer_binary(&mut binary).expect("binary plist");
    write(&dir, "profile-payload.bplist", &binary);
    write(
        &dir,
        "okta.plist",
        br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>org_url</key><string>https://acme.okta.com</string>
<key>org_token_file</key><string>/var/root/token</string>
<key>renew_before_days</key><integer>21</integer>
<key>network</key><dict><key>max_attempts</key><integer>3</integer></dict>
<key>allowlist</key><dict><key>add</key><array><string>teamid:ABCDE12345</string></array><key>allow_all_apps</key><false/></dict>
</dict></plist>
"#,
    );
}

fn okta_answer(corpus: &Path) {
    let dir = target_dir(corpus, "okta_answer");
    let certificate = base64::engine::general_purpose::STANDARD.encode(device_certificate_der());
    // [status selector][content-type selector], rate-limit header value, body: see the target.
    // Status selectors: 0 200, 3 400, 4 401, 7 429, 8 500, 9 503.
    let seeds: [(&str, [u8; 2], &str, String); 9] = [
        ("issued", [0, 0], "", format!(r#"{{"issuedCertificate":"{certificate}"}}"#)),
        (
            "metadata",
            [0, 0],
            "",
            r#"{"certAuthDomain":"https://ok12-devicetrust.okta.com"}"#.into(),
        ),
        ("discovery", [0, 0], "", r#"{"issuer":"https://acme.okta.com"}"#.into()),
        (
            "api-error",
            [3, 0],
            "",
            r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: csr","errorLink":"E0000001","errorId":"oaeXyz","errorCauses":[{"errorSummary":"csr: The CSR is invalid."}]}"#
                .into(),
        ),
        (
            "echoed-token",
            [4, 0],
            "",
            r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided: 00FuzzOrgToken-Xq7"}"#
                .into(),
        ),
        (
            "rate-limited",
            [7, 0],
            "1750000030",
            r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#
                .into(),
        ),
        ("retry-after-date", [7, 0x80], "Wed, 21 Oct 2026 07:28:00 GMT", String::new()),
        (
            "proxy-page",
            [9, 1],
            "",
            "<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service \
             Unavailable</h1>\r\n<p>The proxy could not reach acme.okta.com.</p></body></html>"
                .into(),
        ),
        ("plain-text", [8, 2], "", "upstream connect error or disconnect/reset".into()),
    ];
    for (name, head, header, body) in seeds {
        write(
            &dir,
            name,
            &join(&[&head, header.as_bytes(), body.as_bytes()]),
        );
    }
}
