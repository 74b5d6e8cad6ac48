//! GetCACert and GetCACaps answers: the CA (and RA) certificates as a single DER certificate or a
//! degenerate certs-only PKCS#7, picked by Content-Type, then pinned and sorted; and the
//! capability keywords. The first byte picks the Content-Type the server claims.
#![no_main]

use devicetrust::scep::{CaCertificates, Capabilities};
use devicetrust_fuzz::ca;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 6] = [
    None,
    Some("application/x-x509-ca-cert"),
    Some("application/x-x509-ca-ra-cert"),
    Some("application/octet-stream"),
    Some("Application/X-X509-CA-RA-Cert; charset=binary"),
    Some("text/html"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(kind) % CONTENT_TYPES.len()];
    match CaCertificates::parse(content_type, body) {
        Ok(certificates) => {
            let pin: [u8; 32] = sha256(ca().certificate_der());
            let _ = certificates.check_fingerprint(&pin);
            let _ = certificates.check_fingerprint(&sha256(&certificates.ca_der));
            let _ = certificates.answer_signers();
            let _ = certificates.fingerprints();
        }
        Err(e) => drop(e),
    }

    let caps = Capabilities::parse(&String::from_utf8_lossy(body));
    let _ = (
        caps.summary(),
        caps.content_cipher(),
        caps.digest(),
        caps.can_renew(),
    );
});

fn sha256(data: &[u8]) -> [u8; 32] {
    let hex = devicetrust::scep::sha256_fingerprint_hex(data);
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(hex.split(':')) {
        *slot = u8::from_str_radix(pair, 16).unwrap_or(0);
    }
    out
}
