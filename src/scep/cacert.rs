//! GetCACert (RFC 8894 §4.2): the CA certificate alone, or a degenerate certs-only PKCS#7 with
//! the CA and its RA certificates; which one we encrypt to, and the CA fingerprint pin.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use const_oid::db::rfc5911::{ID_DATA, ID_SIGNED_DATA};
use der::asn1::SetOfVec;
use der::{Any, Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::Certificate;

use crate::pki::{verify_issued_by, PkiError};

/// The certificates of one SCEP CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCertificates {
    /// The CA that issues our certificate.
    pub ca_der: Vec<u8>,
    /// Who requests are encrypted to: the RA's encryption certificate, or the CA itself.
    pub recipient_der: Vec<u8>,
    /// Everything GetCACert returned, in order.
    pub all_der: Vec<Vec<u8>>,
}

/// SHA-256 of a certificate's DER, upper-case hex with colons (as `openssl x509 -fingerprint`).
pub fn sha256_fingerprint_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// More certificates than any CA hierarchy sends (NDES: the CA and two RAs). The pin check and
/// the signer selection compare certificates pairwise with RSA verifications, so an unbounded
/// bundle from a server in the middle of plain-http SCEP would stall the run for minutes.
const MAX_CERTIFICATES: usize = 16;

struct Parsed {
    der: Vec<u8>,
    cert: Certificate,
    is_ca: bool,
    encipherment: bool,
}

impl CaCertificates {
    /// Parses a GetCACert answer. `content_type` decides the format when it is one of the two
    /// SCEP ones; otherwise both are tried (some servers send `application/octet-stream`).
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, String> {
        let kind = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase());
        let certificates = match kind.as_deref() {
            Some("application/x-x509-ca-cert") => vec![single_certificate(body)?],
            Some("application/x-x509-ca-ra-cert") => certificates_of_degenerate(body)?,
            _ => single_certificate(body)
                .map(|c| vec![c])
                .or_else(|_| certificates_of_degenerate(body))
                .map_err(|_| {
                    format!(
                        "neither a certificate nor a PKCS#7 certificate bundle (Content-Type {})",
                        content_type.unwrap_or("missing")
                    )
                })?,
        };
        Self::select(certificates)
    }

    /// Picks the CA and the recipient among the certificates.
    pub fn select(certificates: Vec<Vec<u8>>) -> Result<Self, String> {
        if certificates.len() > MAX_CERTIFICATES {
            return Err(format!(
                "it holds {} certificates; a SCEP CA sends at most {MAX_CERTIFICATES}",
                certificates.len()
            ));
        }
        let parsed = certificates
            .iter()
            .map(|der| parse(der))
            .collect::<Result<Vec<_>, _>>()?;
        let (ca, recipient) = match parsed.as_slice() {
            [] => return Err("it contains no certificate".into()),
            [only] => (only, only),
            _ => {
                // An RA is an end-entity certificate; with two (NDES), the one for
                // keyEncipherment is the encryption certificate, the other only signs.
                let ras: Vec<&Parsed> = parsed.iter().filter(|p| !p.is_ca).collect();
                let recipient = ras.iter().find(|p| p.encipherment).or(ras.first()).copied();
                match recipient {
                    Some(ra) => {
                        let issuer = parsed
                            .iter()
                            .find(|p| {
                                p.is_ca
                                    && p.cert.tbs_certificate.subject
                                        == ra.cert.tbs_certificate.issuer
                            })
                            .ok_or(
                                "the RA certificate's issuer is not among the CA certificates",
                            )?;
                        (issuer, ra)
                    }
                    None => {
                        // Only CAs (a chain without RA): the issuing CA is the one that issued
                        // none of the others.
                        let issuing = parsed
                            .iter()
                            .find(|p| {
                                !parsed.iter().any(|q| {
                                    q.der != p.der
                                        && q.cert.tbs_certificate.issuer
                                            == p.cert.tbs_certificate.subject
                                })
                            })
                            .unwrap_or(&parsed[0]);
                        (issuing, issuing)
                    }
                }
            }
        };
        Ok(CaCertificates {
            ca_der: ca.der.clone(),
            recipient_der: recipient.der.clone(),
            all_der: certificates,
        })
    }

    /// Refuses these certificates unless the pinned one is among them and both the CA and the
    /// recipient chain to it (so a man in the middle cannot add its own RA next to the real CA).
    pub fn check_fingerprint(&self, expected: &[u8; 32]) -> Result<(), String> {
        let pinned = self
            .all_der
            .iter()
            .find(|der| Sha256::digest(der).as_slice() == expected)
            .ok_or_else(|| sha256_fingerprint_hex(&self.ca_der))?;
        for der in [&self.ca_der, &self.recipient_der] {
            if !self.chains_to(der, pinned) {
                return Err(format!(
                    "{} (not issued by the pinned CA)",
                    sha256_fingerprint_hex(der)
                ));
            }
        }
        Ok(())
    }

    /// `der` is `anchor`, or is issued, via certificates of this set, by `anchor`.
    fn chains_to(&self, der: &[u8], anchor: &[u8]) -> bool {
        let mut current = der.to_vec();
        for _ in 0..=self.all_der.len() {
            if current == anchor {
                return true;
            }
            let next = self
                .all_der
                .iter()
                .find(|issuer| *issuer != &current && verify_issued_by(&current, issuer).is_ok());
            match next {
                Some(issuer) => current = issuer.clone(),
                None => return false,
            }
        }
        false
    }

    /// Certificates allowed to sign a CertRep: the CA and what it issued itself (its RAs).
    pub fn answer_signers(&self) -> Vec<Vec<u8>> {
        self.all_der
            .iter()
            .filter(|der| **der == self.ca_der || verify_issued_by(der, &self.ca_der).is_ok())
            .cloned()
            .collect()
    }

    /// SHA-256 fingerprints of every certificate offered, for error messages.
    pub fn fingerprints(&self) -> String {
        self.all_der
            .iter()
            .map(|d| sha256_fingerprint_hex(d))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn single_certificate(body: &[u8]) -> Result<Vec<u8>, String> {
    Certificate::from_der(body).map_err(|e| format!("not a DER certificate: {e}"))?;
    Ok(body.to_vec())
}

fn parse(der: &[u8]) -> Result<Parsed, String> {
    let cert =
        Certificate::from_der(der).map_err(|e| format!("a certificate is not valid DER: {e}"))?;
    let mut is_ca = false;
    let mut usage = None;
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let value = ext.extn_value.as_bytes();
        if ext.extn_id == const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS {
            is_ca = BasicConstraints::from_der(value).is_ok_and(|b| b.ca);
        } else if ext.extn_id == const_oid::db::rfc5280::ID_CE_KEY_USAGE {
            usage = KeyUsage::from_der(value).ok();
        }
    }
    // Without a keyUsage extension a certificate may do anything, encryption included.
    let encipherment = usage.is_none_or(|u| {
        u.0.contains(KeyUsages::KeyEncipherment) || u.0.contains(KeyUsages::DataEncipherment)
    });
    // A v1 self-signed certificate has no extensions but is a CA all the same.
    if !is_ca && cert.tbs_certificate.subject == cert.tbs_certificate.issuer {
        is_ca = true;
    }
    Ok(Parsed {
        der: der.to_vec(),
        cert,
        is_ca,
        encipherment,
    })
}

/// The certificates of a degenerate certs-only PKCS#7 (SignedData without signers).
pub fn certificates_of_degenerate(der: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let info = ContentInfo::from_der(der).map_err(|e| format!("not a PKCS#7 bundle: {e}"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(format!(
            "PKCS#7 content type {} is not signed-data",
            info.content_type
        ));
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("not a PKCS#7 bundle: {e}"))?;
    let mut out = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let CertificateChoices::Certificate(cert) = choice {
            out.push(
                cert.to_der()
                    .map_err(|e| format!("cannot re-encode a certificate: {e}"))?,
            );
        }
    }
    if out.is_empty() {
        return Err("the PKCS#7 bundle holds no certificate".into());
    }
    Ok(out)
}

/// Builds a degenerate certs-only PKCS#7 (what a CA returns, and the tests play one).
pub fn degenerate_pkcs7(certificates: &[Vec<u8>]) -> Result<Vec<u8>, PkiError> {
    let encode = |e: der::Error| PkiError::Encode {
        what: "PKCS#7 bundle",
        reason: e.to_string(),
    };
    let choices = certificates
        .iter()
        .map(|der| {
            Certificate::from_der(der)
                .map(CertificateChoices::Certificate)
                .map_err(PkiError::malformed("certificate"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(choices).map_err(encode)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(encode)?,
    }
    .to_der()
    .map_err(encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::tests::test_authority;
    use crate::pki::key::tests::{other_test_key, test_key};
    use crate::pki::{Authority, IssueProfile, IssueRequest, PrivateKey};
    use time::OffsetDateTime;

    fn ra_certificate(ca: &Authority, key: &PrivateKey) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        ca.issue(IssueRequest {
            subject: "CN=SCEP RA".into(),
            public_key_der: key.public_key_der().unwrap(),
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(30),
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .unwrap()
    }

    /// A certificate `subject` for `key`, signed by `issuer` (its name and key), with
    /// basicConstraints `ca` and the key usages given (no such extension for `None`).
    fn certificate(
        subject: &str,
        key: &PrivateKey,
        issuer: (&str, &PrivateKey),
        ca: Option<bool>,
        usage: Option<KeyUsages>,
    ) -> Vec<u8> {
        use crate::pki::cert::{parse_name, x509_time};
        use der::asn1::OctetString;
        use x509_cert::ext::Extension;
        use x509_cert::serial_number::SerialNumber;
        use x509_cert::time::Validity;
        let now = OffsetDateTime::now_utc();
        let extension = |oid, value: Vec<u8>| Extension {
            extn_id: oid,
            critical: true,
            extn_value: OctetString::new(value).unwrap(),
        };
        let mut extensions = Vec::new();
        if let Some(ca) = ca {
            extensions.push(extension(
                const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
                BasicConstraints {
                    ca,
                    path_len_constraint: None,
                }
                .to_der()
                .unwrap(),
            ));
        }
        if let Some(usage) = usage {
            extensions.push(extension(
                const_oid::db::rfc5280::ID_CE_KEY_USAGE,
                KeyUsage(usage.into()).to_der().unwrap(),
            ));
        }
        let tbs = x509_cert::TbsCertificate {
            version: x509_cert::Version::V3,
            serial_number: SerialNumber::new(&[0x01, subject.len() as u8]).unwrap(),
            signature: crate::pki::key::sha256_with_rsa(),
            issuer: parse_name(issuer.0).unwrap(),
            validity: Validity {
                not_before: x509_time(now - time::Duration::hours(1)).unwrap(),
                not_after: x509_time(now + time::Duration::days(30)).unwrap(),
            },
            subject: parse_name(subject).unwrap(),
            subject_public_key_info: spki::SubjectPublicKeyInfoOwned::from_der(
                &key.public_key_der().unwrap(),
            )
            .unwrap(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: (!extensions.is_empty()).then_some(extensions),
        };
        let signature =
            crate::pki::key::sign_to_bit_string(issuer.1, &tbs.to_der().unwrap()).unwrap();
        Certificate {
            signature_algorithm: tbs.signature.clone(),
            tbs_certificate: tbs,
            signature,
        }
        .to_der()
        .unwrap()
    }

    /// A root (test_key), an intermediate it issued (other_test_key), and under the intermediate
    /// an RA that only signs and one that only encrypts, as NDES sends them.
    struct Hierarchy {
        root: Vec<u8>,
        issuing: Vec<u8>,
        ra_sign: Vec<u8>,
        ra_encrypt: Vec<u8>,
    }

    fn hierarchy() -> Hierarchy {
        let (root_key, issuing_key) = (test_key(), other_test_key());
        let root_name = "CN=Root CA";
        let issuing_name = "CN=Issuing CA";
        let cert_sign = Some(KeyUsages::KeyCertSign.into());
        Hierarchy {
            root: certificate(
                root_name,
                root_key,
                (root_name, root_key),
                Some(true),
                cert_sign,
            ),
            issuing: certificate(
                issuing_name,
                issuing_key,
                (root_name, root_key),
                Some(true),
                cert_sign,
            ),
            ra_sign: certificate(
                "CN=RA signing",
                root_key,
                (issuing_name, issuing_key),
                Some(false),
                Some(KeyUsages::DigitalSignature.into()),
            ),
            ra_encrypt: certificate(
                "CN=RA encryption",
                root_key,
                (issuing_name, issuing_key),
                Some(false),
                Some(KeyUsages::KeyEncipherment.into()),
            ),
        }
    }

    #[test]
    fn fingerprints_are_upper_case_hex_pairs_with_colons() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:\
                   B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD";
        assert_eq!(sha256_fingerprint_hex(b"abc"), abc);
        // Every certificate offered, in order (the bytes need not parse for this).
        let offered = CaCertificates {
            ca_der: b"abc".to_vec(),
            recipient_der: b"abc".to_vec(),
            all_der: vec![b"abc".to_vec(), b"abc".to_vec()],
        };
        assert_eq!(offered.fingerprints(), format!("{abc}, {abc}"));
    }

    #[test]
    fn ndes_sends_a_chain_and_two_ras_and_the_encryption_one_is_the_recipient() {
        let h = hierarchy();
        let all = [&h.root, &h.issuing, &h.ra_sign, &h.ra_encrypt];
        // Every order: the RA that encrypts, issued by the intermediate, not the root.
        for rotation in 0..all.len() {
            let mut order: Vec<Vec<u8>> = all.iter().map(|c| c.to_vec()).collect();
            order.rotate_left(rotation);
            order.swap(0, rotation % 2 + 1);
            let certs = CaCertificates::select(order.clone()).unwrap();
            assert_eq!(certs.recipient_der, h.ra_encrypt, "order {rotation}");
            assert_eq!(certs.ca_der, h.issuing, "order {rotation}");
            assert_eq!(certs.all_der, order);
            // Who may sign a CertRep: the issuing CA and what it issued; not the root.
            let signers = certs.answer_signers();
            assert_eq!(signers.len(), 3, "order {rotation}");
            assert!(!signers.contains(&h.root));
        }
        // With only the signing RA, it is the recipient all the same.
        let certs = CaCertificates::select(vec![h.ra_sign.clone(), h.issuing.clone()]).unwrap();
        assert_eq!(
            (certs.ca_der, certs.recipient_der),
            (h.issuing.clone(), h.ra_sign)
        );
        // An RA whose issuer is not in the answer cannot be used.
        let err = CaCertificates::select(vec![h.root.clone(), h.ra_encrypt.clone()]).unwrap_err();
        assert!(
            err.contains("issuer is not among the CA certificates"),
            "{err}"
        );
    }

    #[test]
    fn a_self_signed_certificate_without_extensions_is_a_ca() {
        // What an old CA sends: a v1-style root with no extensions, and an RA it issued with
        // no keyUsage (so it may encrypt).
        let (root_key, name) = (other_test_key(), "CN=Old CA");
        let root = certificate(name, root_key, (name, root_key), None, None);
        let ra = certificate("CN=Old RA", test_key(), (name, root_key), None, None);
        for order in [
            vec![root.clone(), ra.clone()],
            vec![ra.clone(), root.clone()],
        ] {
            let certs = CaCertificates::select(order).unwrap();
            assert_eq!((&certs.ca_der, &certs.recipient_der), (&root, &ra));
        }
    }

    #[test]
    fn a_chain_without_ra_is_served_by_the_ca_that_issued_none_of_the_others() {
        let h = hierarchy();
        for order in [
            vec![h.root.clone(), h.issuing.clone()],
            vec![h.issuing.clone(), h.root.clone()],
        ] {
            let certs = CaCertificates::select(order).unwrap();
            assert_eq!(certs.ca_der, h.issuing);
            assert_eq!(certs.recipient_der, h.issuing);
        }
    }

    #[test]
    fn in_a_three_level_chain_without_ra_the_lowest_ca_serves() {
        let (root_key, key) = (test_key(), other_test_key());
        let cert_sign = Some(KeyUsages::KeyCertSign.into());
        let root = certificate(
            "CN=Root CA",
            root_key,
            ("CN=Root CA", root_key),
            Some(true),
            cert_sign,
        );
        let policy = certificate(
            "CN=Policy CA",
            key,
            ("CN=Root CA", root_key),
            Some(true),
            cert_sign,
        );
        let issuing = certificate(
            "CN=Issuing CA",
            key,
            ("CN=Policy CA", key),
            Some(true),
            cert_sign,
        );
        for order in [
            vec![root.clone(), policy.clone(), issuing.clone()],
            vec![issuing.clone(), root.clone(), policy.clone()],
            vec![policy.clone(), issuing.clone(), root.clone()],
        ] {
            let certs = CaCertificates::select(order).unwrap();
            assert_eq!(certs.ca_der, issuing);
            assert_eq!(certs.recipient_der, issuing);
        }
    }

    #[test]
    fn one_certificate_is_ca_and_recipient_whatever_it_is_and_none_is_refused() {
        let h = hierarchy();
        let certs = CaCertificates::select(vec![h.ra_encrypt.clone()]).unwrap();
        assert_eq!(
            (&certs.ca_der, &certs.recipient_der),
            (&h.ra_encrypt, &h.ra_encrypt)
        );
        let err = CaCertificates::select(Vec::new()).unwrap_err();
        assert_eq!(err, "it contains no certificate");
    }

    #[test]
    fn a_scep_content_type_decides_the_format() {
        let h = hierarchy();
        let bundle = degenerate_pkcs7(&[h.issuing.clone(), h.ra_encrypt.clone()]).unwrap();
        // Parameters and case do not matter.
        let certs = CaCertificates::parse(
            Some("Application/X-X509-CA-RA-Cert; charset=binary"),
            &bundle,
        )
        .unwrap();
        assert_eq!(certs.recipient_der, h.ra_encrypt);
        let certs = CaCertificates::parse(Some("APPLICATION/X-X509-CA-CERT"), &h.issuing).unwrap();
        assert_eq!(certs.ca_der, h.issuing);
        // A bundle said to be one certificate, or one certificate said to be a bundle: refused.
        let err = CaCertificates::parse(Some("application/x-x509-ca-cert"), &bundle).unwrap_err();
        assert!(err.starts_with("not a DER certificate"), "{err}");
        let err =
            CaCertificates::parse(Some("application/x-x509-ca-ra-cert"), &h.issuing).unwrap_err();
        assert!(
            err.starts_with("not a PKCS#7 bundle") || err.contains("signed-data"),
            "{err}"
        );
        // Anything else: whichever parses.
        let certs = CaCertificates::parse(None, &bundle).unwrap();
        assert_eq!(certs.recipient_der, h.ra_encrypt);
    }

    #[test]
    fn the_pin_may_be_the_root_above_the_issuing_ca() {
        let h = hierarchy();
        let certs = CaCertificates::select(vec![
            h.root.clone(),
            h.issuing.clone(),
            h.ra_sign.clone(),
            h.ra_encrypt.clone(),
        ])
        .unwrap();
        for pinned in [&h.root, &h.issuing] {
            certs
                .check_fingerprint(&Sha256::digest(pinned).into())
                .unwrap();
        }
        // The RA pinned: the issuing CA does not chain to it.
        let err = certs
            .check_fingerprint(&Sha256::digest(&h.ra_sign).into())
            .unwrap_err();
        assert!(err.contains("not issued by the pinned CA"), "{err}");
    }

    #[test]
    fn a_single_der_certificate_is_both_ca_and_recipient() {
        let ca = test_authority().certificate_der().to_vec();
        let certs = CaCertificates::parse(Some("application/x-x509-ca-cert"), &ca).unwrap();
        assert_eq!(certs.ca_der, ca);
        assert_eq!(certs.recipient_der, ca);
        // Without a usable Content-Type, the format is recognised by content.
        let certs = CaCertificates::parse(Some("application/octet-stream"), &ca).unwrap();
        assert_eq!(certs.recipient_der, ca);
    }

    #[test]
    fn a_degenerate_bundle_yields_the_ra_as_recipient_and_its_issuer_as_ca() {
        let authority = test_authority();
        let ca = authority.certificate_der().to_vec();
        let ra = ra_certificate(authority, test_key());
        // Order must not matter.
        for order in [vec![ca.clone(), ra.clone()], vec![ra.clone(), ca.clone()]] {
            let bundle = degenerate_pkcs7(&order).unwrap();
            let certs =
                CaCertificates::parse(Some("application/x-x509-ca-ra-cert"), &bundle).unwrap();
            assert_eq!(certs.ca_der, ca);
            assert_eq!(certs.recipient_der, ra);
            assert_eq!(certs.answer_signers().len(), 2);
        }
    }

    #[test]
    fn the_fingerprint_pin_accepts_the_ca_and_refuses_anything_else() {
        let authority = test_authority();
        let ca = authority.certificate_der().to_vec();
        let ra = ra_certificate(authority, test_key());
        let bundle = degenerate_pkcs7(&[ca.clone(), ra.clone()]).unwrap();
        let certs = CaCertificates::parse(None, &bundle).unwrap();
        let pin: [u8; 32] = Sha256::digest(&ca).into();
        certs.check_fingerprint(&pin).unwrap();
        let wrong = [0u8; 32];
        let found = certs.check_fingerprint(&wrong).unwrap_err();
        assert_eq!(found, sha256_fingerprint_hex(&ca));

        // A man in the middle keeps the real CA but adds its own "RA".
        let rogue_ca = Authority::self_signed_with_key(
            PrivateKey::from_pkcs8_der(&other_test_key().to_pkcs8_der().unwrap()).unwrap(),
            "Rogue",
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
        let rogue_ra = ra_certificate(&rogue_ca, test_key());
        let mixed = CaCertificates {
            ca_der: rogue_ca.certificate_der().to_vec(),
            recipient_der: rogue_ra.clone(),
            all_der: vec![ca.clone(), rogue_ca.certificate_der().to_vec(), rogue_ra],
        };
        assert!(mixed
            .check_fingerprint(&pin)
            .unwrap_err()
            .contains("not issued by the pinned CA"));
    }

    #[test]
    fn a_bundle_of_more_certificates_than_any_ca_sends_is_refused() {
        let authority = test_authority();
        let mut certificates = vec![authority.certificate_der().to_vec()];
        while certificates.len() <= MAX_CERTIFICATES {
            certificates.push(ra_certificate(authority, test_key()));
        }
        let bundle = degenerate_pkcs7(&certificates).unwrap();
        let err =
            CaCertificates::parse(Some("application/x-x509-ca-ra-cert"), &bundle).unwrap_err();
        assert!(err.contains("17 certificates"), "{err}");
        certificates.pop();
        let bundle = degenerate_pkcs7(&certificates).unwrap();
        assert!(CaCertificates::parse(None, &bundle).is_ok());
    }

    #[test]
    fn garbage_is_neither_format() {
        let err = CaCertificates::parse(Some("text/html"), b"<html>").unwrap_err();
        assert!(err.contains("text/html"), "{err}");
        assert!(CaCertificates::parse(Some("application/x-x509-ca-ra-cert"), b"x").is_err());
    }
}
