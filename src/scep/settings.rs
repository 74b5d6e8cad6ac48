//! The SCEP enrollment settings, named after the keys of Apple's SCEP payload (URL, Name,
//! Subject, Challenge, Keysize, Key Type, Key Usage, SAN, Retries, RetryDelay, CAFingerprint).

use std::time::Duration;

use url::Url;

use crate::pki::{CsrProfile, KeyUsage, SubjectAltName};
use crate::secret::Secret;

/// What the agent asks for when the payload names no subject.
pub const DEFAULT_SUBJECT: &str = "CN=devicetrust";
/// RSA sizes Apple's payload offers and every SCEP CA accepts.
pub const ALLOWED_KEY_SIZES: [u32; 3] = [2048, 3072, 4096];
/// Apple's "Key Usage" bits.
const APPLE_SIGNING: u8 = 1;
const APPLE_ENCRYPTION: u8 = 4;

/// Apple's "Key Type"; SCEP's key transport needs an RSA key, so it is the only one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyType {
    #[default]
    Rsa,
}

/// One SCEP payload.
#[derive(Clone, Debug)]
pub struct ScepSettings {
    /// The SCEP endpoint, e.g. `http://ca.example.com/scep`; operations are added as a query.
    pub url: Url,
    /// The CA instance ("Name"), sent as the `message` parameter of GetCACert and GetCACaps.
    pub name: Option<String>,
    /// RFC 4514, most specific RDN first.
    pub subject: String,
    /// The static challenge: only from a file or `DEVICETRUST_SCEP_CHALLENGE`.
    pub challenge: Option<Secret>,
    pub key_size: u32,
    pub key_type: KeyType,
    /// Apple's bitmask: 1 signing (digitalSignature), 4 encryption (keyEncipherment); 0 both.
    pub key_usage: u8,
    pub subject_alt_names: Vec<SubjectAltName>,
    /// How many times a PENDING request is polled (Apple's "Retries").
    pub retries: u32,
    /// The wait before each poll (Apple's "RetryDelay").
    pub retry_delay: Duration,
    /// SHA-256 of the CA certificate; when set, any other CA is refused before anything is sent.
    pub ca_fingerprint: Option<[u8; 32]>,
    /// Apple's "Certificate Expiration Notification Threshold", used as the renewal window.
    pub renew_before_days: Option<u32>,
}

impl ScepSettings {
    /// The payload defaults (those of Apple and of the JumpCloud/Okta guide) for `url`.
    pub fn new(url: Url) -> Self {
        ScepSettings {
            url,
            name: None,
            subject: DEFAULT_SUBJECT.to_owned(),
            challenge: None,
            key_size: 2048,
            key_type: KeyType::Rsa,
            key_usage: APPLE_SIGNING,
            subject_alt_names: Vec::new(),
            retries: 3,
            retry_delay: Duration::from_secs(10),
            ca_fingerprint: None,
            renew_before_days: None,
        }
    }

    /// The certificate request this payload describes; the challenge only when asked for.
    pub fn csr_profile(&self, with_challenge: bool) -> Result<CsrProfile, String> {
        Ok(CsrProfile {
            subject: self.subject.clone(),
            key_usage: key_usage_from_apple(self.key_usage)?,
            basic_constraints_ca_false: false,
            subject_alt_names: self.subject_alt_names.clone(),
            challenge_password: if with_challenge {
                self.challenge.clone()
            } else {
                None
            },
        })
    }

    /// Checks what the type system does not: the reason is one line naming the bad value.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.url.scheme(), "http" | "https") {
            return Err(format!("{} is not an http(s) URL", self.url));
        }
        if !ALLOWED_KEY_SIZES.contains(&self.key_size) {
            return Err(format!(
                "key size {} is not one of 2048, 3072, 4096",
                self.key_size
            ));
        }
        key_usage_from_apple(self.key_usage)?;
        crate::pki::cert::parse_name(&self.subject).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Apple's Key Usage bitmask as the keyUsage bits of the request. 0 asks for both, as Apple's
/// own client does.
pub fn key_usage_from_apple(bits: u8) -> Result<KeyUsage, String> {
    if bits & !(APPLE_SIGNING | APPLE_ENCRYPTION) != 0 {
        return Err(format!(
            "key usage {bits} is not a combination of 1 (signing) and 4 (encryption)"
        ));
    }
    let both = bits == 0;
    Ok(KeyUsage {
        digital_signature: both || bits & APPLE_SIGNING != 0,
        key_encipherment: both || bits & APPLE_ENCRYPTION != 0,
        ..KeyUsage::default()
    })
}

/// A SHA-256 fingerprint as people paste it: hex, any case, with or without `:` or spaces
/// (`openssl x509 -fingerprint -sha256` prints `SHA256 Fingerprint=AB:CD:...`).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let value = text.trim().rsplit_once('=').map_or(text.trim(), |(_, v)| v);
    let digits: Vec<u8> = value
        .bytes()
        .filter(|b| !matches!(b, b':' | b' ' | b'\t' | b'-'))
        .collect();
    if digits.len() != 64 {
        return Err(format!(
            "{} hex digits; a SHA-256 fingerprint has 64",
            digits.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).map_err(|_| "not hexadecimal".to_owned())?;
        out[i] = u8::from_str_radix(hex, 16).map_err(|_| format!("{hex:?} is not hexadecimal"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tolerate_colons_spaces_case_and_openssl_prefix() {
        let hex = "AB".repeat(32);
        let want = [0xab; 32];
        assert_eq!(parse_fingerprint(&hex).unwrap(), want);
        assert_eq!(parse_fingerprint(&hex.to_lowercase()).unwrap(), want);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), want);
        let spaced = vec!["Ab"; 32].join(" ");
        assert_eq!(parse_fingerprint(&spaced).unwrap(), want);
        let openssl = format!("sha256 Fingerprint={}", vec!["AB"; 32].join(":"));
        assert_eq!(parse_fingerprint(&openssl).unwrap(), want);
        assert!(parse_fingerprint("abcd").unwrap_err().contains("64"));
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn apple_key_usage_bits_map_to_key_usage() {
        let signing = key_usage_from_apple(1).unwrap();
        assert!(signing.digital_signature && !signing.key_encipherment);
        let encryption = key_usage_from_apple(4).unwrap();
        assert!(!encryption.digital_signature && encryption.key_encipherment);
        for both in [0, 5] {
            let usage = key_usage_from_apple(both).unwrap();
            assert!(usage.digital_signature && usage.key_encipherment);
        }
        assert!(key_usage_from_apple(2).is_err());
    }

    #[test]
    fn defaults_follow_the_payload_and_validate() {
        let settings = ScepSettings::new(Url::parse("http://ca.example/scep").unwrap());
        assert_eq!(settings.subject, DEFAULT_SUBJECT);
        assert_eq!((settings.retries, settings.retry_delay.as_secs()), (3, 10));
        assert_eq!(settings.key_size, 2048);
        settings.validate().unwrap();
        let mut bad = settings.clone();
        bad.key_size = 1024;
        assert!(bad.validate().unwrap_err().contains("1024"));
        let mut bad = settings;
        bad.subject = "not a name".into();
        assert!(bad.validate().is_err());
    }
}
