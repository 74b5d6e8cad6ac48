//! The formats NSS's tools speak: certificate facts and NSS's key id, PKCS#11 URIs that select
//! objects, and the parsing of `certutil`'s listings and messages.

use super::{KeyEntry, NssCertificate, NssError};
use crate::fsutil::hex;
use crate::pki::CertificateInfo;
use sha1::{Digest as _, Sha1};

const RSA_ENCRYPTION: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

pub(super) fn is_password_failure(stderr: &str) -> bool {
    stderr.contains("SEC_ERROR_BAD_PASSWORD") || stderr.contains("password file contains no data")
}

/// The tool's last message, for an error line: NSS prints its reason last. The tools' argv and
/// output never carry secrets (those stay in files), so the text is safe to show.
pub(super) fn last_line(output: &str, code: Option<i32>) -> String {
    let line = output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut text: String = line.chars().take(300).collect();
    if text.is_empty() {
        text = match code {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_owned(),
        };
    }
    text
}

/// The facts about `der` this module works with; `key_ids` are the keys in the database.
pub(super) fn describe(der: &[u8], key_ids: &[String]) -> Result<NssCertificate, NssError> {
    let info = CertificateInfo::parse(der).map_err(|e| NssError::Certificate(e.to_string()))?;
    let key_id = hex(&key_id(&info.public_key_der)?);
    Ok(NssCertificate {
        fingerprint_sha256: info.fingerprint_sha256,
        subject: info.subject,
        issuer: info.issuer,
        issuer_cn: info.issuer_cn,
        serial_hex: info.serial_hex,
        key_present: key_ids.contains(&key_id),
        key_id,
        der: info.der,
    })
}

pub(super) fn fingerprint(der: &[u8]) -> String {
    hex(&sha2::Sha256::digest(der))
}

/// NSS's CKA_ID for a public key (`PK11_MakeIDFromPubKey`): SHA-1 of the RSA modulus without
/// leading zeros, or of the EC public point.
pub fn key_id(spki_der: &[u8]) -> Result<Vec<u8>, NssError> {
    use der::Decode;
    let bad = |e: der::Error| NssError::Certificate(format!("public key: {e}"));
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).map_err(bad)?;
    let raw = spki.subject_public_key.raw_bytes();
    let hashed: &[u8] = if spki.algorithm.oid == RSA_ENCRYPTION {
        let key = RsaPublicKey::from_der(raw).map_err(bad)?;
        key.modulus.as_bytes()
    } else if spki.algorithm.oid == EC_PUBLIC_KEY {
        raw
    } else {
        return Err(NssError::Certificate(format!(
            "unsupported public key algorithm {}",
            spki.algorithm.oid
        )));
    };
    Ok(Sha1::digest(hashed).to_vec())
}

/// RFC 8017 `RSAPublicKey`; `UintRef` drops the sign byte, as NSS does for the id.
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    #[allow(dead_code)]
    public_exponent: der::asn1::UintRef<'a>,
}

/// A PKCS#11 URI selecting certificate objects by nickname (`object`) and/or key id (`id`).
pub fn pkcs11_uri(object: Option<&str>, id: Option<&[u8]>) -> String {
    let mut uri = String::from("pkcs11:");
    if let Some(object) = object {
        uri.push_str("object=");
        for byte in object.bytes() {
            // RFC 7512 unreserved characters stay; everything else is percent-encoded, so a
            // nickname cannot add attributes of its own.
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                uri.push(char::from(byte));
            } else {
                uri.push_str(&format!("%{byte:02X}"));
            }
        }
        uri.push(';');
    }
    if let Some(id) = id {
        uri.push_str("id=");
        for byte in id {
            uri.push_str(&format!("%{byte:02x}"));
        }
        uri.push(';');
    }
    uri.push_str("type=cert");
    uri
}

/// `certutil -K` lines: `< 0> rsa      <40 hex digits>   <nickname>`.
pub fn parse_key_list(stdout: &str) -> Vec<KeyEntry> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('<')?;
            let (_, rest) = rest.split_once('>')?;
            let rest = rest.trim_start();
            let (_kind, rest) = rest.split_once(char::is_whitespace)?;
            let rest = rest.trim_start();
            let (id, nickname) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Some(KeyEntry {
                key_id: id.to_ascii_lowercase(),
                nickname: nickname.trim().to_owned(),
            })
        })
        .collect()
}

/// The certificates in `certutil -L -a` output.
pub fn parse_pem_certificates(stdout: &str) -> Result<Vec<Vec<u8>>, NssError> {
    if !stdout.contains("-----BEGIN") {
        return Ok(Vec::new());
    }
    let blocks = crate::pki::pem_decode_all(stdout)
        .map_err(|e| NssError::Certificate(format!("certutil output: {e}")))?;
    Ok(blocks
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect())
}

/// One certificate of `certutil -L -n <name>`'s printout (without `-a`): its SHA-256
/// fingerprint (lowercase hex) and whether NSS holds its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub fingerprint_sha256: String,
    pub has_key: bool,
}

/// The certificates `certutil -L -n <name>` prints, each a block starting `Certificate:` at the
/// start of a line. NSS gives a certificate whose private key it holds the `CERTDB_USER` trust
/// bit (`nssTrust_GetCERTCertTrust` in NSS's lib/pki/pki3hack.c sets it when `PK11_IsUserCert`
/// finds the key), and certutil prints that bit as `User` under the certificate's trust flags:
/// one listing says whether the certificate is there and whether its key is.
pub fn parse_listing(stdout: &str) -> Vec<Listed> {
    let mut listed: Vec<Listed> = Vec::new();
    let mut lines = stdout.lines();
    let mut in_trust_flags = false;
    while let Some(line) = lines.next() {
        if line.starts_with("Certificate:") {
            listed.push(Listed {
                fingerprint_sha256: String::new(),
                has_key: false,
            });
            in_trust_flags = false;
            continue;
        }
        let Some(current) = listed.last_mut() else {
            continue;
        };
        match line.trim() {
            "Fingerprint (SHA-256):" => {
                let digits = lines.next().unwrap_or("").trim();
                current.fingerprint_sha256 = digits.replace(':', "").to_ascii_lowercase();
            }
            "Certificate Trust Flags:" => in_trust_flags = true,
            "User" if in_trust_flags => current.has_key = true,
            _ => {}
        }
    }
    listed
}

pub(super) fn hex_decode(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .filter_map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}
