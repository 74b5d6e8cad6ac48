//! What the fuzz targets share: a fixed test CA and device identity (so fuzzed answers can be
//! signed, encrypted and decrypted like real ones), and a splitter for multi-field inputs.
//!
//! The identity is `keys/` (RSA-1024, see `keys/regenerate.sh` for why not 2048): throwaway test
//! keys, committed on purpose. The seeds in `corpus/` are sealed and signed with them, so
//! regenerating the keys means regenerating the seeds (`cargo run --example make_corpus`).

use std::sync::OnceLock;

use devicetrust::pki::{Authority, PrivateKey};

pub const CA_CERT_PEM: &str = include_str!("../keys/ca.pem");
pub const CA_KEY_PEM: &str = include_str!("../keys/ca.key");
pub const DEVICE_CERT_PEM: &str = include_str!("../keys/device.pem");
pub const DEVICE_KEY_PEM: &str = include_str!("../keys/device.key");

/// `CN=MTLS Certificate Authority`, the issuer of the device certificate.
pub fn ca() -> &'static Authority {
    static CA: OnceLock<Authority> = OnceLock::new();
    CA.get_or_init(|| Authority::from_pem(CA_CERT_PEM, CA_KEY_PEM).expect("fixture CA"))
}

/// The device key (`keys/device.key`).
pub fn device_key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::from_pkcs8_pem(DEVICE_KEY_PEM).expect("fixture key"))
}

/// The device certificate (`keys/device.pem`, `CN=Okta MTLS`), DER.
pub fn device_certificate_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        devicetrust::pki::CertificateInfo::from_pem(DEVICE_CERT_PEM)
            .expect("fixture certificate")
            .der
    })
}

/// The separator between the fields of a multi-field input. Text fields (PEM, JSON, TOML) never
/// contain it, so seeds stay readable; a mutation that adds one simply moves a boundary.
pub const SEPARATOR: &[u8] = b"\n\x00--\x00\n";

/// Splits `data` into exactly `N` fields at [`SEPARATOR`]; missing fields are empty, and
/// everything after the last separator that counts belongs to the last field.
pub fn fields<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N.saturating_sub(1)) {
        match find(rest, SEPARATOR) {
            Some(at) => {
                *slot = &rest[..at];
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    if let Some(last) = out.last_mut() {
        if N > 0 {
            *last = rest;
        }
    }
    out
}

/// Joins fields with [`SEPARATOR`] (the seed generator's side of [`fields`]).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(SEPARATOR);
        }
        out.extend_from_slice(part);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_join_round_trip() {
        let joined = join(&[b"a", b"", b"c"]);
        assert_eq!(fields::<3>(&joined), [&b"a"[..], b"", b"c"]);
        assert_eq!(fields::<2>(&joined)[1], &joined[1 + SEPARATOR.len()..]);
        assert_eq!(fields::<4>(b"x"), [&b"x"[..], b"", b"", b""]);
    }
}
