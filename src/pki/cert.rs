//! Reading X.509 certificates: the facts the agent stores and shows, the checks it runs on a
//! freshly issued certificate before storing it, issuer signature checks, and PEM framing.

use std::fmt::Write as _;
use std::str::FromStr;

use der::asn1::{
    GeneralizedTime, Ia5StringRef, PrintableStringRef, TeletexStringRef, UtcTime, Utf8StringRef,
};
use der::pem::LineEnding;
use der::{AnyRef, DateTime, Decode, Encode, Tag, Tagged};
use sha2::{Digest, Sha256};
use std::time::Duration;
use time::OffsetDateTime;
use x509_cert::name::Name;
use x509_cert::time::Time;
use x509_cert::Certificate;

use super::key::{
    require_sha256_with_rsa, rsa_public_key, rsa_public_key_from_der, signature_bytes,
    verify_sha256,
};
use super::PkiError;

const CERTIFICATE_LABEL: &str = "CERTIFICATE";

/// What the agent needs to know about one certificate, decoded once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    pub der: Vec<u8>,
    /// RFC 4514, most specific RDN first.
    pub subject: String,
    pub issuer: String,
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    /// The issuer's first organization and organizational unit: with the CN, what Chrome's
    /// `ISSUER` filter can match on.
    pub issuer_o: Option<String>,
    pub issuer_ou: Option<String>,
    /// Lowercase hex, no separators, no sign-padding zero byte.
    pub serial_hex: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint_sha256: String,
    /// SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
}

impl CertificateInfo {
    pub fn parse(der: &[u8]) -> Result<Self, PkiError> {
        let cert = Certificate::from_der(der).map_err(PkiError::malformed("certificate"))?;
        let tbs = &cert.tbs_certificate;
        let public_key_der = tbs
            .subject_public_key_info
            .to_der()
            .map_err(PkiError::encode("certificate public key"))?;
        Ok(CertificateInfo {
            der: der.to_vec(),
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            subject_cn: common_name(&tbs.subject),
            issuer_cn: common_name(&tbs.issuer),
            issuer_o: first_attribute(&tbs.issuer, const_oid::db::rfc4519::O),
            issuer_ou: first_attribute(&tbs.issuer, const_oid::db::rfc4519::OU),
            serial_hex: serial_hex(tbs.serial_number.as_bytes()),
            not_before: to_offset_date_time(tbs.validity.not_before)?,
            not_after: to_offset_date_time(tbs.validity.not_after)?,
            fingerprint_sha256: hex(&Sha256::digest(der)),
            public_key_der,
        })
    }

    /// Parses the first CERTIFICATE block of a PEM text.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let blocks = pem_decode_all(pem)?;
        let der = blocks
            .into_iter()
            .find(|(label, _)| label == CERTIFICATE_LABEL)
            .map(|(_, der)| der)
            .ok_or_else(|| PkiError::Pem("no CERTIFICATE block".to_owned()))?;
        Self::parse(&der)
    }

    pub fn to_pem(&self) -> String {
        pem_encode(CERTIFICATE_LABEL, &self.der)
    }

    /// Inclusive at both ends, as RFC 5280 defines the validity period.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    pub fn seconds_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_seconds()
    }

    /// Whole days left, rounded down: negative once expired.
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        self.seconds_left(now).div_euclid(86_400)
    }
}

/// Why a certificate returned by the CA must not be stored.
#[derive(Debug, thiserror::Error)]
pub enum IssuedCertError {
    #[error("the issued certificate cannot be parsed: {0}")]
    Unparseable(String),
    #[error("the issued certificate is for a different key than the one we generated")]
    KeyMismatch,
    #[error("the issued certificate is not valid before {}", crate::timefmt::rfc3339(*.not_before))]
    NotYetValid { not_before: OffsetDateTime },
    #[error("the issued certificate expired at {}", crate::timefmt::rfc3339(*.not_after))]
    Expired { not_after: OffsetDateTime },
    #[error("the issued certificate is for {found:?}, expected CN {expected:?}")]
    WrongSubject { expected: String, found: String },
}

/// The checks the agent runs on an issued certificate before storing anything (protocol §3).
pub fn check_issued(
    cert_der: &[u8],
    expected_public_key_der: &[u8],
    expected_cn: Option<&str>,
    now: OffsetDateTime,
) -> Result<CertificateInfo, IssuedCertError> {
    let info = CertificateInfo::parse(cert_der)
        .map_err(|e| IssuedCertError::Unparseable(e.to_string()))?;
    if !same_public_key(&info.public_key_der, expected_public_key_der) {
        return Err(IssuedCertError::KeyMismatch);
    }
    if now < info.not_before {
        return Err(IssuedCertError::NotYetValid {
            not_before: info.not_before,
        });
    }
    if now > info.not_after {
        return Err(IssuedCertError::Expired {
            not_after: info.not_after,
        });
    }
    // Okta's CA always issues CN=Okta MTLS; a SCEP CA decides the subject itself (None).
    if let Some(expected) = expected_cn {
        if info.subject_cn.as_deref() != Some(expected) {
            return Err(IssuedCertError::WrongSubject {
                expected: expected.to_owned(),
                found: info.subject.clone(),
            });
        }
    }
    Ok(info)
}

/// Compares keys by value: two encoders may spell the same RSA key's SPKI differently. Only
/// rsaEncryption keys can match: every key the agent makes is one, so any other key (or bytes
/// that are not a key at all) belongs to someone else, however equal its bytes.
pub(crate) fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    match (rsa_public_key_from_der(a), rsa_public_key_from_der(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Checks that `cert_der` names `issuer_der`'s subject as its issuer and carries its signature.
pub fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), PkiError> {
    let cert = Certificate::from_der(cert_der).map_err(PkiError::malformed("certificate"))?;
    let issuer =
        Certificate::from_der(issuer_der).map_err(PkiError::malformed("issuer certificate"))?;
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(PkiError::IssuerMismatch {
            expected: issuer.tbs_certificate.subject.to_string(),
            found: cert.tbs_certificate.issuer.to_string(),
        });
    }
    require_sha256_with_rsa(&cert.signature_algorithm, "certificate")?;
    if cert.tbs_certificate.signature != cert.signature_algorithm {
        return Err(PkiError::UnsupportedSignatureAlgorithm {
            what: "certificate's inner",
            oid: cert.tbs_certificate.signature.oid.to_string(),
        });
    }
    let issuer_key = rsa_public_key(&issuer.tbs_certificate.subject_public_key_info)?;
    let signed = signed_portion(cert_der, "certificate")?;
    let signature = signature_bytes(&cert.signature, "certificate")?;
    verify_sha256(&issuer_key, signed, signature, "certificate")
}

/// The exact bytes a certificate or request signature covers: the first element of the outer
/// SEQUENCE as it appears in the input (re-encoding could hide or introduce differences).
pub(crate) fn signed_portion<'a>(
    signed_der: &'a [u8],
    what: &'static str,
) -> Result<&'a [u8], PkiError> {
    let outer = AnyRef::from_der(signed_der).map_err(PkiError::malformed(what))?;
    let body = outer.value();
    let first = outer
        .sequence(|reader| {
            let first: AnyRef<'_> = der::Reader::decode(reader)?;
            let _algorithm: AnyRef<'_> = der::Reader::decode(reader)?;
            let _signature: AnyRef<'_> = der::Reader::decode(reader)?;
            Ok(first)
        })
        .map_err(PkiError::malformed(what))?;
    let len = first
        .encoded_len()
        .and_then(usize::try_from)
        .map_err(PkiError::malformed(what))?;
    body.get(..len).ok_or_else(|| PkiError::Malformed {
        what,
        reason: "truncated signed portion".to_owned(),
    })
}

/// Parses an RFC 4514 name, tolerating the space after commas people write ("CN=a, O=b").
pub(crate) fn parse_name(rfc4514: &str) -> Result<Name, PkiError> {
    let mut compact = String::with_capacity(rfc4514.len());
    let mut escaped = false;
    let mut after_separator = true;
    for c in rfc4514.chars() {
        if after_separator && c == ' ' {
            continue;
        }
        after_separator = !escaped && (c == ',' || c == '+');
        escaped = !escaped && c == '\\';
        compact.push(c);
    }
    let invalid = || PkiError::InvalidName {
        name: rfc4514.to_owned(),
    };
    let name = Name::from_str(&compact).map_err(|_| invalid())?;
    if name.is_empty() {
        return Err(invalid());
    }
    Ok(name)
}

/// The most specific common name in `name`, if it is a string type we can read.
pub(crate) fn common_name(name: &Name) -> Option<String> {
    name.0
        .iter()
        .rev()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == const_oid::db::rfc4519::CN)
        .and_then(|atv| directory_string(&atv.value))
}

/// The first value of attribute `oid` in `name`, in the order the certificate lists them.
fn first_attribute(name: &Name, oid: der::asn1::ObjectIdentifier) -> Option<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == oid)
        .and_then(|atv| directory_string(&atv.value))
}

pub(crate) fn directory_string(value: &der::Any) -> Option<String> {
    let any = AnyRef::from(value);
    let text = match any.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(any).ok()?.as_str().to_owned(),
        Tag::PrintableString => PrintableStringRef::try_from(any).ok()?.as_str().to_owned(),
        Tag::Ia5String => Ia5StringRef::try_from(any).ok()?.as_str().to_owned(),
        Tag::TeletexString => TeletexStringRef::try_from(any).ok()?.as_str().to_owned(),
        _ => return None,
    };
    Some(text)
}

pub(crate) fn to_offset_date_time(t: x509_cert::time::Time) -> Result<OffsetDateTime, PkiError> {
    let secs = i64::try_from(t.to_unix_duration().as_secs())
        .map_err(|e| PkiError::InvalidValidity(e.to_string()))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PkiError::InvalidValidity(e.to_string()))
}

/// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
pub(crate) fn x509_time(t: OffsetDateTime) -> Result<Time, PkiError> {
    let invalid = |e: der::Error| PkiError::InvalidValidity(format!("{t}: {e}"));
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| PkiError::InvalidValidity(format!("{t} is before 1970")))?;
    let date = DateTime::from_unix_duration(Duration::from_secs(secs)).map_err(invalid)?;
    if date.year() < 2050 {
        Ok(Time::UtcTime(
            UtcTime::from_date_time(date).map_err(invalid)?,
        ))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(date)))
    }
}

fn serial_hex(bytes: &[u8]) -> String {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    hex(bytes.get(start..).unwrap_or(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// PEM-encodes one DER object with LF line endings.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    // Only fails for a label with invalid characters, which our callers never pass.
    der::pem::encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// Every PEM block in `text`, in order, as (label, DER). Text between blocks is ignored.
pub fn pem_decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, PkiError> {
    const BEGIN: &str = "-----BEGIN ";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let from_begin = &rest[start..];
        let label_end = from_begin[BEGIN.len()..]
            .find("-----")
            .ok_or_else(|| PkiError::Pem("unterminated BEGIN line".to_owned()))?;
        let label = &from_begin[BEGIN.len()..BEGIN.len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = from_begin
            .find(&end_marker)
            .ok_or_else(|| PkiError::Pem(format!("no END line for {label}")))?;
        let block = &from_begin[..end + end_marker.len()];
        let (decoded_label, der) =
            der::pem::decode_vec(block.as_bytes()).map_err(|e| PkiError::Pem(e.to_string()))?;
        blocks.push((decoded_label.to_owned(), der));
        rest = &from_begin[end + end_marker.len()..];
    }
    if blocks.is_empty() {
        return Err(PkiError::Pem("no PEM block found".to_owned()));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::tests::{client_request, test_authority, test_certificate};
    use crate::pki::authority::{Authority, IssueRequest};
    use crate::pki::key::tests::{other_test_key, test_key};
    use time::macros::datetime;

    fn issue(request: IssueRequest) -> Vec<u8> {
        test_authority().issue(request).unwrap()
    }

    fn device_cert(now: OffsetDateTime) -> Vec<u8> {
        test_certificate(now)
    }

    #[test]
    fn parse_reports_names_serial_times_and_fingerprint() {
        let der = issue(IssueRequest {
            subject: "CN=Okta MTLS, O=Okta, ST=CA, C=US".to_owned(),
            serial: Some(vec![0x0a, 0xbc]),
            not_before: datetime!(2024-01-01 0:00 UTC),
            not_after: datetime!(2025-01-01 0:00 UTC),
            ..client_request(
                test_key().public_key_der().unwrap(),
                OffsetDateTime::now_utc(),
            )
        });
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.subject, "CN=Okta MTLS,O=Okta,ST=CA,C=US");
        assert_eq!(info.subject_cn.as_deref(), Some("Okta MTLS"));
        assert_eq!(info.issuer, "CN=MTLS Certificate Authority");
        assert_eq!(
            info.issuer_cn.as_deref(),
            Some("MTLS Certificate Authority")
        );
        assert_eq!(info.serial_hex, "0abc");
        assert_eq!(info.not_before, datetime!(2024-01-01 0:00 UTC));
        assert_eq!(info.not_after, datetime!(2025-01-01 0:00 UTC));
        assert_eq!(info.fingerprint_sha256, hex(&Sha256::digest(&der)));
        assert_eq!(info.fingerprint_sha256.len(), 64);
        assert_eq!(info.public_key_der, test_key().public_key_der().unwrap());
    }

    #[test]
    fn validity_arithmetic_is_inclusive_and_floors_days() {
        let der = issue(IssueRequest {
            not_before: datetime!(2024-01-01 0:00 UTC),
            not_after: datetime!(2024-03-01 0:00 UTC),
            ..client_request(
                test_key().public_key_der().unwrap(),
                OffsetDateTime::now_utc(),
            )
        });
        let info = CertificateInfo::parse(&der).unwrap();
        assert!(info.is_valid_at(datetime!(2024-01-01 0:00 UTC)));
        assert!(info.is_valid_at(datetime!(2024-03-01 0:00 UTC)));
        assert!(!info.is_valid_at(datetime!(2024-03-01 0:00:01 UTC)));
        assert!(!info.is_valid_at(datetime!(2023-12-31 23:59:59 UTC)));
        let now = datetime!(2024-02-28 12:00 UTC);
        assert_eq!(info.seconds_left(now), 36 * 3600);
        assert_eq!(info.days_left(now), 1);
        let after = datetime!(2024-03-01 0:00:01 UTC);
        assert_eq!(info.seconds_left(after), -1);
        assert_eq!(info.days_left(after), -1);
    }

    #[test]
    fn pem_round_trip_and_chain_decoding() {
        let der = device_cert(OffsetDateTime::now_utc());
        let info = CertificateInfo::parse(&der).unwrap();
        let pem = info.to_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(CertificateInfo::from_pem(&pem).unwrap(), info);
        let chain = format!("leaf\n{pem}\nca\n{}", test_authority().certificate_pem());
        let blocks = pem_decode_all(&chain).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0], ("CERTIFICATE".to_owned(), der));
        assert_eq!(blocks[1].1, test_authority().certificate_der());
        assert!(matches!(
            pem_decode_all("nothing here"),
            Err(PkiError::Pem(_))
        ));
        assert!(matches!(
            pem_decode_all("-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Err(PkiError::Pem(_))
        ));
    }

    #[test]
    fn check_issued_accepts_a_good_certificate() {
        let now = OffsetDateTime::now_utc();
        let der = device_cert(now);
        let info = check_issued(
            &der,
            &test_key().public_key_der().unwrap(),
            Some("Okta MTLS"),
            now,
        )
        .unwrap();
        assert_eq!(info.der, der);
    }

    #[test]
    fn check_issued_rejects_garbage() {
        let err =
            check_issued(b"junk", b"", Some("Okta MTLS"), OffsetDateTime::now_utc()).unwrap_err();
        assert!(matches!(err, IssuedCertError::Unparseable(_)), "{err}");
    }

    #[test]
    fn check_issued_rejects_a_certificate_for_another_key() {
        let now = OffsetDateTime::now_utc();
        let der = device_cert(now);
        let err = check_issued(
            &der,
            &other_test_key().public_key_der().unwrap(),
            Some("Okta MTLS"),
            now,
        )
        .unwrap_err();
        assert!(matches!(err, IssuedCertError::KeyMismatch));
        assert_eq!(
            err.to_string(),
            "the issued certificate is for a different key than the one we generated"
        );
    }

    #[test]
    fn check_issued_rejects_not_yet_valid_and_expired() {
        let now = OffsetDateTime::now_utc();
        let der = device_cert(now);
        let key = test_key().public_key_der().unwrap();
        let early = now - time::Duration::days(1);
        assert!(matches!(
            check_issued(&der, &key, Some("Okta MTLS"), early),
            Err(IssuedCertError::NotYetValid { .. })
        ));
        let late = now + time::Duration::days(400);
        assert!(matches!(
            check_issued(&der, &key, Some("Okta MTLS"), late),
            Err(IssuedCertError::Expired { .. })
        ));
        // RFC 5280 §4.1.2.5: the validity period includes both its ends.
        let info = CertificateInfo::parse(&der).unwrap();
        for edge in [info.not_before, info.not_after] {
            check_issued(&der, &key, Some("Okta MTLS"), edge).unwrap();
        }
        let second = time::Duration::seconds(1);
        assert!(check_issued(&der, &key, Some("Okta MTLS"), info.not_before - second).is_err());
        assert!(check_issued(&der, &key, Some("Okta MTLS"), info.not_after + second).is_err());
    }

    #[test]
    fn check_issued_rejects_the_wrong_subject() {
        let now = OffsetDateTime::now_utc();
        let der = issue(IssueRequest {
            subject: "CN=Someone Else,O=Okta".to_owned(),
            ..client_request(test_key().public_key_der().unwrap(), now)
        });
        let err = check_issued(
            &der,
            &test_key().public_key_der().unwrap(),
            Some("Okta MTLS"),
            now,
        )
        .unwrap_err();
        match err {
            IssuedCertError::WrongSubject { expected, found } => {
                assert_eq!(expected, "Okta MTLS");
                assert_eq!(found, "CN=Someone Else,O=Okta");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn verify_issued_by_rejects_other_issuers_and_tampering() {
        let der = device_cert(OffsetDateTime::now_utc());
        verify_issued_by(&der, test_authority().certificate_der()).unwrap();

        let impostor = Authority::self_signed_with_key(
            copy_key(other_test_key()),
            "MTLS Certificate Authority",
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        assert!(matches!(
            verify_issued_by(&der, impostor.certificate_der()),
            Err(PkiError::BadSignature("certificate"))
        ));

        let stranger = Authority::self_signed_with_key(
            copy_key(other_test_key()),
            "Some Other CA",
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        assert!(matches!(
            verify_issued_by(&der, stranger.certificate_der()),
            Err(PkiError::IssuerMismatch { .. })
        ));

        let at = der
            .windows(9)
            .position(|w| w == b"Okta MTLS")
            .expect("subject bytes");
        let mut tampered = der.clone();
        tampered[at] ^= 0x20;
        assert!(matches!(
            verify_issued_by(&tampered, test_authority().certificate_der()),
            Err(PkiError::BadSignature("certificate"))
        ));
    }

    #[test]
    fn names_tolerate_spaces_but_not_nonsense() {
        let name = parse_name("CN=Okta MTLS, O=Okta,  ST=CA, C=US").unwrap();
        assert_eq!(name.to_string(), "CN=Okta MTLS,O=Okta,ST=CA,C=US");
        let escaped = parse_name(r"CN=Doe\, Jane, O=Acme").unwrap();
        assert_eq!(common_name(&escaped).as_deref(), Some("Doe, Jane"));
        assert!(parse_name("").is_err());
        assert!(parse_name("Okta MTLS").is_err());
    }

    #[test]
    fn only_rsa_keys_are_the_same_public_key_and_by_value() {
        use const_oid::ObjectIdentifier;
        use der::asn1::BitString;
        use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

        let ours = test_key().public_key_der().unwrap();
        assert!(same_public_key(&ours, &ours));
        assert!(!same_public_key(
            &ours,
            &other_test_key().public_key_der().unwrap()
        ));
        // The same RSA key spelled without the NULL parameters is still the same key.
        let mut spki = SubjectPublicKeyInfoOwned::from_der(&ours).unwrap();
        spki.algorithm.parameters = None;
        let respelled = spki.to_der().unwrap();
        assert_ne!(respelled, ours);
        assert!(same_public_key(&respelled, &ours));

        let spki_der = |oid: &str, parameters: Option<der::Any>, key: &[u8]| {
            SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: ObjectIdentifier::new_unwrap(oid),
                    parameters,
                },
                subject_public_key: BitString::from_bytes(key).unwrap(),
            }
            .to_der()
            .unwrap()
        };
        let p256 = der::Any::from(ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"));
        let mut point = vec![0x04];
        point.extend((0..64u8).map(|i| i.wrapping_mul(37)));
        let not_rsa = [
            // id-ecPublicKey on P-256, id-Ed25519, and our own RSA modulus under id-RSASSA-PSS.
            spki_der("1.2.840.10045.2.1", Some(p256), &point),
            spki_der("1.3.101.112", None, &[7; 32]),
            spki_der(
                "1.2.840.113549.1.1.10",
                None,
                spki.subject_public_key.raw_bytes(),
            ),
            b"not a key at all".to_vec(),
            Vec::new(),
        ];
        for key in &not_rsa {
            assert!(!same_public_key(key, key), "{key:02x?}");
            assert!(!same_public_key(key, &ours) && !same_public_key(&ours, key));
        }
    }

    /// PrivateKey is deliberately not Clone; tests copy through PKCS#8.
    fn copy_key(key: &crate::pki::PrivateKey) -> crate::pki::PrivateKey {
        crate::pki::PrivateKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap()
    }

    #[test]
    fn the_issuers_first_o_and_ou_are_read_for_the_browser_filter() {
        use crate::scep::message::{transient_certificate, Signer};
        let der = transient_certificate(
            "CN=Example SCEP CA,OU=Devices,OU=Second,O=Example Corp",
            Signer::InMemory(test_key()),
        )
        .unwrap();
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.issuer_cn.as_deref(), Some("Example SCEP CA"));
        assert_eq!(info.issuer_o.as_deref(), Some("Example Corp"));
        assert_eq!(info.issuer_ou.as_deref(), Some("Second"));
        let bare = transient_certificate("CN=Only a CN", Signer::InMemory(test_key())).unwrap();
        let info = CertificateInfo::parse(&bare).unwrap();
        assert_eq!((info.issuer_o, info.issuer_ou), (None, None));
    }

    #[test]
    fn every_directory_string_a_ca_uses_is_read_as_text() {
        for tag in [
            der::Tag::Utf8String,
            der::Tag::PrintableString,
            der::Tag::Ia5String,
            der::Tag::TeletexString,
        ] {
            let value = der::Any::new(tag, b"Example CA".to_vec()).unwrap();
            assert_eq!(
                directory_string(&value).as_deref(),
                Some("Example CA"),
                "{tag}"
            );
        }
        let bmp = der::Any::new(der::Tag::BmpString, vec![0, b'E']).unwrap();
        assert_eq!(directory_string(&bmp), None);
    }

    #[test]
    fn validity_times_switch_to_generalized_time_in_2050() {
        // RFC 5280 §4.1.2.5.
        assert!(matches!(
            x509_time(datetime!(2049-12-31 23:59:59 UTC)).unwrap(),
            Time::UtcTime(_)
        ));
        assert!(matches!(
            x509_time(datetime!(2050-01-01 0:00 UTC)).unwrap(),
            Time::GeneralTime(_)
        ));
    }
}
