//! GetCACaps (RFC 8894 §3.5.2): the capability keywords a CA advertises, and the strongest
//! algorithms and transport they allow. We never pick anything weaker than the CA offers.

use super::envelope::ContentCipher;
use super::message::MessageDigest;

/// The capabilities of one CA. Keywords are matched case-insensitively, as the RFC asks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub aes: bool,
    pub des3: bool,
    pub get_next_ca_cert: bool,
    pub post_pki_operation: bool,
    pub renewal: bool,
    pub sha1: bool,
    pub sha256: bool,
    pub sha512: bool,
    /// Implies AES, SHA-256 and POSTPKIOperation (RFC 8894 §3.5.2).
    pub scep_standard: bool,
    /// Keywords we do not act on, kept for the debug log.
    pub other: Vec<String>,
}

impl Capabilities {
    /// Parses the text/plain answer: one keyword per line, blank lines and unknowns tolerated.
    pub fn parse(text: &str) -> Self {
        let mut caps = Capabilities::default();
        for word in text.split(['\n', '\r']).map(str::trim) {
            if word.is_empty() {
                continue;
            }
            let flag = match word.to_ascii_lowercase().as_str() {
                "aes" => &mut caps.aes,
                "des3" => &mut caps.des3,
                "getnextcacert" => &mut caps.get_next_ca_cert,
                "postpkioperation" => &mut caps.post_pki_operation,
                "renewal" => &mut caps.renewal,
                "sha-1" => &mut caps.sha1,
                "sha-256" => &mut caps.sha256,
                "sha-512" => &mut caps.sha512,
                "scepstandard" => &mut caps.scep_standard,
                _ => {
                    caps.other.push(word.to_owned());
                    continue;
                }
            };
            *flag = true;
        }
        caps
    }

    /// AES-128-CBC (what RFC 8894 means by "AES") when offered, else DES-EDE3-CBC: the RFC's
    /// baseline for a CA that advertises nothing.
    pub fn content_cipher(&self) -> ContentCipher {
        if self.aes || self.scep_standard {
            ContentCipher::Aes128Cbc
        } else {
            ContentCipher::Des3Cbc
        }
    }

    /// SHA-256 when offered (SHA-512 implies a modern CA, which takes SHA-256 too), else SHA-1.
    pub fn digest(&self) -> MessageDigest {
        if self.sha256 || self.sha512 || self.scep_standard {
            MessageDigest::Sha256
        } else {
            MessageDigest::Sha1
        }
    }

    pub fn uses_post(&self) -> bool {
        self.post_pki_operation || self.scep_standard
    }

    /// RenewalReq is possible (the current key can only sign SHA-256, see `SigningKey`).
    pub fn can_renew(&self) -> bool {
        self.renewal && self.digest() == MessageDigest::Sha256
    }

    /// The keywords as one line, for the debug log.
    pub fn summary(&self) -> String {
        let known = [
            (self.aes, "AES"),
            (self.des3, "DES3"),
            (self.get_next_ca_cert, "GetNextCACert"),
            (self.post_pki_operation, "POSTPKIOperation"),
            (self.renewal, "Renewal"),
            (self.sha1, "SHA-1"),
            (self.sha256, "SHA-256"),
            (self.sha512, "SHA-512"),
            (self.scep_standard, "SCEPStandard"),
        ];
        let mut words: Vec<&str> = known
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect();
        words.extend(self.other.iter().map(String::as_str));
        if words.is_empty() {
            "none".to_owned()
        } else {
            words.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scepserver_caps_parse_to_aes_sha256_post_and_renewal() {
        // micromdm scepserver's answer, verbatim.
        let caps = Capabilities::parse(
            "Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation",
        );
        assert!(caps.renewal && caps.sha1 && caps.sha256 && caps.aes && caps.des3);
        assert!(caps.scep_standard && caps.post_pki_operation);
        assert!(caps.other.is_empty());
        assert_eq!(caps.content_cipher(), ContentCipher::Aes128Cbc);
        assert_eq!(caps.digest(), MessageDigest::Sha256);
        assert!(caps.uses_post() && caps.can_renew());
    }

    #[test]
    fn keywords_are_case_insensitive_and_crlf_and_unknowns_tolerated() {
        let caps = Capabilities::parse("postpkioperation\r\n\r\nsha-256\r\nCACertIssuer\r\n");
        assert!(caps.post_pki_operation && caps.sha256);
        assert_eq!(caps.other, vec!["CACertIssuer".to_owned()]);
        assert_eq!(caps.summary(), "POSTPKIOperation, SHA-256, CACertIssuer");
    }

    #[test]
    fn scep_standard_alone_implies_aes_sha256_and_post() {
        let caps = Capabilities::parse("SCEPStandard");
        assert_eq!(caps.content_cipher(), ContentCipher::Aes128Cbc);
        assert_eq!(caps.digest(), MessageDigest::Sha256);
        assert!(caps.uses_post());
        assert!(!caps.can_renew());
    }

    #[test]
    fn a_ca_that_advertises_nothing_gets_the_rfc_baseline_and_get() {
        let caps = Capabilities::parse("");
        assert_eq!(caps, Capabilities::default());
        assert_eq!(caps.content_cipher(), ContentCipher::Des3Cbc);
        assert_eq!(caps.digest(), MessageDigest::Sha1);
        assert!(!caps.uses_post());
        assert_eq!(caps.summary(), "none");
    }
}
