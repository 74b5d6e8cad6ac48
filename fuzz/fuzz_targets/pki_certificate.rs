//! Certificates from outside: DER as a CA or Okta returns it, PEM as the file store and
//! `--ca-file` hold it, and the checks run on an issued certificate before it is stored.
#![no_main]

use devicetrust::pki::{self, CertificateInfo};
use devicetrust_fuzz::{ca, device_key};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let now = OffsetDateTime::now_utc();
    if let Ok(info) = CertificateInfo::parse(data) {
        let _ = (info.is_valid_at(now), info.days_left(now), info.to_pem());
    }
    if let Ok(public_key) = device_key().public_key_der() {
        if let Err(e) = pki::check_issued(data, &public_key, Some("Okta MTLS"), now) {
            let _ = e.to_string();
        }
    }
    let _ = pki::verify_issued_by(data, ca().certificate_der());
    let _ = pki::verify_issued_by(ca().certificate_der(), data);

    let text = String::from_utf8_lossy(data);
    if let Ok(info) = CertificateInfo::from_pem(&text) {
        let _ = info.days_left(now);
    }
    if let Ok(blocks) = pki::pem_decode_all(&text) {
        for (label, der) in blocks {
            let _ = pki::pem_encode(&label, &der);
        }
    }
});
