//! A small certificate authority: the Okta-compatible simulator issues device and TLS server
//! certificates with it, and tests use it to make certificates with chosen flaws.

use std::net::IpAddr;
use std::time::Duration;

use const_oid::db::rfc4519::CN;
use const_oid::db::rfc5280::ID_KP_SERVER_AUTH;
use const_oid::AssociatedOid;
use der::asn1::{OctetString, SetOfVec, Utf8StringRef};
use der::{Any, Decode, Encode};
use rand_core::{OsRng, RngCore};
use sha1::{Digest, Sha1};
use spki::SubjectPublicKeyInfoOwned;
use time::OffsetDateTime;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::name::{Name, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::Certificate;

use super::cert::{parse_name, pem_encode, same_public_key, x509_time};
use super::key::{sha256_with_rsa, sign_to_bit_string, PrivateKey, SigningKey};
use super::PkiError;

/// A CA key and its certificate.
#[derive(Debug)]
pub struct Authority {
    key: PrivateKey,
    certificate_der: Vec<u8>,
}

/// What kind of end-entity certificate to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssueProfile {
    /// A device-trust client certificate, as Okta's MTLS CA issues them.
    ClientAuth,
    /// A TLS server certificate for the simulator; rustls checks the names against the SAN.
    TlsServer {
        dns_names: Vec<String>,
        ip_addresses: Vec<IpAddr>,
    },
}

#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// RFC 4514, most specific RDN first.
    pub subject: String,
    /// SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Big-endian unsigned; 16 random bytes when `None`.
    pub serial: Option<Vec<u8>>,
    pub profile: IssueProfile,
}

/// Backdating absorbs clock skew between the CA and whoever checks the certificate first.
const SELF_SIGNED_BACKDATE: time::Duration = time::Duration::minutes(5);

impl Authority {
    /// A fresh RSA-2048 root CA named `CN=<common_name>`, valid from a few minutes ago.
    pub fn new_self_signed(common_name: &str, valid_for: Duration) -> Result<Self, PkiError> {
        Self::self_signed_with_key(PrivateKey::generate_rsa(2048)?, common_name, valid_for)
    }

    /// A root CA over an existing key (tests reuse keys; generation is the slow part).
    pub fn self_signed_with_key(
        key: PrivateKey,
        common_name: &str,
        valid_for: Duration,
    ) -> Result<Self, PkiError> {
        let subject = common_name_only(common_name)?;
        let public_key = spki_from_der(&key.public_key_der()?)?;
        let now = OffsetDateTime::now_utc();
        let valid_for = time::Duration::try_from(valid_for)
            .map_err(|e| PkiError::InvalidValidity(e.to_string()))?;
        let validity = validity(now - SELF_SIGNED_BACKDATE, now + valid_for)?;

        let mut extensions = Vec::new();
        push_extension(
            &mut extensions,
            &subject,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?;
        push_extension(
            &mut extensions,
            &subject,
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?;
        push_extension(
            &mut extensions,
            &subject,
            &subject_key_identifier(&public_key)?,
        )?;

        let certificate_der = sign_certificate(
            &key,
            TbsCertificate {
                version: Version::V3,
                serial_number: random_serial()?,
                signature: sha256_with_rsa(),
                issuer: subject.clone(),
                validity,
                subject,
                subject_public_key_info: public_key,
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions: Some(extensions),
            },
        )?;
        Ok(Authority {
            key,
            certificate_der,
        })
    }

    /// Loads a CA from its PEM certificate and PKCS#8 PEM key, refusing a mismatched pair.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let info = super::cert::CertificateInfo::from_pem(cert_pem)?;
        let key = PrivateKey::from_pkcs8_pem(key_pem)?;
        if !same_public_key(&info.public_key_der, &key.public_key_der()?) {
            return Err(PkiError::KeyMismatch("authority certificate"));
        }
        Ok(Authority {
            key,
            certificate_der: info.der,
        })
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    pub fn certificate_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.certificate_der)
    }

    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// Issues an end-entity certificate signed by this CA; returns its DER.
    pub fn issue(&self, request: IssueRequest) -> Result<Vec<u8>, PkiError> {
        let ca = Certificate::from_der(&self.certificate_der)
            .map_err(PkiError::malformed("authority certificate"))?;
        let ca_tbs = &ca.tbs_certificate;
        let subject = parse_name(&request.subject)?;
        let public_key = spki_from_der(&request.public_key_der)?;
        let serial_number = match &request.serial {
            Some(bytes) => explicit_serial(bytes)?,
            None => random_serial()?,
        };
        let validity = validity(request.not_before, request.not_after)?;

        let mut extensions = Vec::new();
        match &request.profile {
            IssueProfile::ClientAuth => {
                push_extension(
                    &mut extensions,
                    &subject,
                    &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
                )?;
                // No extended key usage: a certificate without one may authenticate a TLS client
                // and also sign the CMS renewal token, which `openssl cms -verify` (S/MIME purpose
                // by default) must accept as the protocol says. clientAuth alone would fail it.
            }
            IssueProfile::TlsServer {
                dns_names,
                ip_addresses,
            } => {
                push_extension(
                    &mut extensions,
                    &subject,
                    &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
                )?;
                push_extension(
                    &mut extensions,
                    &subject,
                    &ExtendedKeyUsage(vec![ID_KP_SERVER_AUTH]),
                )?;
                let mut names = Vec::with_capacity(dns_names.len() + ip_addresses.len());
                for dns in dns_names {
                    let ia5 = der::asn1::Ia5String::new(dns)
                        .map_err(|_| PkiError::InvalidSubjectAltName(format!("DNS:{dns}")))?;
                    names.push(GeneralName::DnsName(ia5));
                }
                names.extend(ip_addresses.iter().map(|ip| GeneralName::from(*ip)));
                if !names.is_empty() {
                    push_extension(&mut extensions, &subject, &SubjectAltName(names))?;
                }
            }
        }
        push_extension(
            &mut extensions,
            &subject,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?;
        push_extension(
            &mut extensions,
            &subject,
            &subject_key_identifier(&public_key)?,
        )?;
        push_extension(&mut extensions, &subject, &authority_key_identifier(&ca)?)?;

        sign_certificate(
            &self.key,
            TbsCertificate {
                version: Version::V3,
                serial_number,
                signature: sha256_with_rsa(),
                issuer: ca_tbs.subject.clone(),
                validity,
                subject,
                subject_public_key_info: public_key,
                issuer_unique_id: None,
                subject_unique_id: None,
                extensions: Some(extensions),
            },
        )
    }
}

fn sign_certificate(key: &dyn SigningKey, tbs: TbsCertificate) -> Result<Vec<u8>, PkiError> {
    let tbs_der = tbs.to_der().map_err(PkiError::encode("certificate"))?;
    let signature = sign_to_bit_string(key, &tbs_der)?;
    Certificate {
        signature_algorithm: tbs.signature.clone(),
        tbs_certificate: tbs,
        signature,
    }
    .to_der()
    .map_err(PkiError::encode("certificate"))
}

fn push_extension<E: AsExtension>(
    extensions: &mut Vec<Extension>,
    subject: &Name,
    extension: &E,
) -> Result<(), PkiError> {
    let encoded = extension
        .to_extension(subject, extensions)
        .map_err(PkiError::encode("certificate extension"))?;
    extensions.push(encoded);
    Ok(())
}

/// Built by hand rather than parsed so that any character is fine in the CA's name.
fn common_name_only(common_name: &str) -> Result<Name, PkiError> {
    let invalid = |_| PkiError::InvalidName {
        name: format!("CN={common_name}"),
    };
    let value = Utf8StringRef::new(common_name)
        .and_then(|s| Any::encode_from(&s))
        .map_err(invalid)?;
    let rdn =
        SetOfVec::try_from(vec![AttributeTypeAndValue { oid: CN, value }]).map_err(invalid)?;
    Ok(Name::from(vec![RelativeDistinguishedName(rdn)]))
}

fn spki_from_der(der: &[u8]) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| PkiError::InvalidPublicKey(e.to_string()))
}

fn subject_key_identifier(
    public_key: &SubjectPublicKeyInfoOwned,
) -> Result<SubjectKeyIdentifier, PkiError> {
    // RFC 5280 4.2.1.2 method 1: SHA-1 over the subjectPublicKey bits, as openssl computes it.
    let digest = Sha1::digest(public_key.subject_public_key.raw_bytes());
    OctetString::new(digest.to_vec())
        .map(SubjectKeyIdentifier)
        .map_err(PkiError::encode("subject key identifier"))
}

/// Must repeat the issuer's own SKI, which a CA loaded from PEM may have computed differently.
fn authority_key_identifier(ca: &Certificate) -> Result<AuthorityKeyIdentifier, PkiError> {
    let issuer_ski = ca
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|ext| ext.extn_id == SubjectKeyIdentifier::OID)
        .map(|ext| SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()))
        .transpose()
        .map_err(PkiError::malformed("authority subject key identifier"))?;
    let key_id = match issuer_ski {
        Some(ski) => ski,
        None => subject_key_identifier(&ca.tbs_certificate.subject_public_key_info)?,
    };
    Ok(AuthorityKeyIdentifier {
        key_identifier: Some(key_id.0),
        ..AuthorityKeyIdentifier::default()
    })
}

fn validity(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<Validity, PkiError> {
    if not_after <= not_before {
        return Err(PkiError::InvalidValidity(
            "notAfter is not after notBefore".to_owned(),
        ));
    }
    Ok(Validity {
        not_before: x509_time(not_before)?,
        not_after: x509_time(not_after)?,
    })
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    // A clear top bit keeps the INTEGER positive without a pad byte; a set next bit keeps
    // the length at exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|e| PkiError::InvalidSerial(e.to_string()))
}

fn explicit_serial(bytes: &[u8]) -> Result<SerialNumber, PkiError> {
    if bytes.iter().all(|b| *b == 0) {
        return Err(PkiError::InvalidSerial("must be positive".to_owned()));
    }
    SerialNumber::new(bytes).map_err(|e| PkiError::InvalidSerial(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    pub(crate) const MTLS_CA_CN: &str = "MTLS Certificate Authority";

    /// The test CA, built once per test binary.
    pub(crate) fn test_authority() -> &'static Authority {
        static CA: OnceLock<Authority> = OnceLock::new();
        CA.get_or_init(|| {
            Authority::new_self_signed(MTLS_CA_CN, Duration::from_secs(86_400 * 365)).unwrap()
        })
    }

    /// The test key's client certificate from the test CA, valid from an hour before `now`.
    pub(crate) fn test_certificate(now: OffsetDateTime) -> Vec<u8> {
        let public_key_der = crate::pki::key::tests::test_key().public_key_der().unwrap();
        test_authority()
            .issue(client_request(public_key_der, now))
            .unwrap()
    }

    pub(crate) fn client_request(public_key_der: Vec<u8>, now: OffsetDateTime) -> IssueRequest {
        IssueRequest {
            subject: "CN=Okta MTLS".to_owned(),
            public_key_der,
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(365),
            serial: None,
            profile: IssueProfile::ClientAuth,
        }
    }
}

#[cfg(test)]
mod issue_tests {
    use super::tests::*;
    use super::*;
    use crate::pki::cert::{verify_issued_by, CertificateInfo};
    use crate::pki::key::tests::test_key;

    fn extension(cert: &Certificate, oid: const_oid::ObjectIdentifier) -> &Extension {
        cert.tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid)
            .unwrap()
    }

    #[test]
    fn a_self_signed_ca_is_valid_from_a_few_minutes_ago_for_its_lifetime() {
        let key = PrivateKey::from_pkcs8_der(&test_key().to_pkcs8_der().unwrap()).unwrap();
        let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let ca =
            Authority::self_signed_with_key(key, "Dated CA", Duration::from_secs(86_400)).unwrap();
        let after = OffsetDateTime::now_utc();
        let info = CertificateInfo::parse(ca.certificate_der()).unwrap();
        let minutes = time::Duration::minutes;
        assert!(
            info.not_before >= before - minutes(5) && info.not_before <= after - minutes(5),
            "{} not five minutes before {before}",
            info.not_before
        );
        assert!(
            info.not_after >= before + time::Duration::days(1)
                && info.not_after <= after + time::Duration::days(1),
            "{}",
            info.not_after
        );
    }

    #[test]
    fn self_signed_ca_is_a_critical_ca_with_cert_signing_usage() {
        let ca = test_authority();
        let cert = Certificate::from_der(ca.certificate_der()).unwrap();
        let bc = extension(&cert, BasicConstraints::OID);
        assert!(bc.critical);
        assert!(
            BasicConstraints::from_der(bc.extn_value.as_bytes())
                .unwrap()
                .ca
        );
        let ku = KeyUsage::from_der(extension(&cert, KeyUsage::OID).extn_value.as_bytes()).unwrap();
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        extension(&cert, SubjectKeyIdentifier::OID);
        verify_issued_by(ca.certificate_der(), ca.certificate_der()).unwrap();
    }

    #[test]
    fn client_certificate_has_the_device_profile_and_chains_to_the_ca() {
        let ca = test_authority();
        let now = OffsetDateTime::now_utc();
        let der = test_certificate(now);
        verify_issued_by(&der, ca.certificate_der()).unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        let has_eku = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .any(|e| e.extn_id == ExtendedKeyUsage::OID);
        assert!(
            !has_eku,
            "no EKU, so the key may also sign the CMS renewal token"
        );
        let ku = KeyUsage::from_der(extension(&cert, KeyUsage::OID).extn_value.as_bytes()).unwrap();
        assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
        let aki = AuthorityKeyIdentifier::from_der(
            extension(&cert, AuthorityKeyIdentifier::OID)
                .extn_value
                .as_bytes(),
        )
        .unwrap();
        let ca_cert = Certificate::from_der(ca.certificate_der()).unwrap();
        let ski = SubjectKeyIdentifier::from_der(
            extension(&ca_cert, SubjectKeyIdentifier::OID)
                .extn_value
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(aki.key_identifier, Some(ski.0));
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.issuer_cn.as_deref(), Some(MTLS_CA_CN));
        assert_eq!(info.serial_hex.len(), 32);
    }

    #[test]
    fn server_certificate_names_its_hosts_in_the_san_and_its_key_usages() {
        let ca = test_authority();
        let now = OffsetDateTime::now_utc();
        let der = ca
            .issue(IssueRequest {
                subject: "CN=localhost".to_owned(),
                profile: IssueProfile::TlsServer {
                    dns_names: vec!["localhost".to_owned()],
                    ip_addresses: vec!["127.0.0.1".parse().unwrap()],
                },
                ..client_request(test_key().public_key_der().unwrap(), now)
            })
            .unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        let san =
            SubjectAltName::from_der(extension(&cert, SubjectAltName::OID).extn_value.as_bytes())
                .unwrap();
        assert_eq!(san.0.len(), 2);
        assert!(matches!(&san.0[0], GeneralName::DnsName(d) if d.as_str() == "localhost"));
        assert!(matches!(&san.0[1], GeneralName::IpAddress(ip) if ip.as_bytes() == [127, 0, 0, 1]));
        let eku = ExtendedKeyUsage::from_der(
            extension(&cert, ExtendedKeyUsage::OID)
                .extn_value
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(eku.0, vec![ID_KP_SERVER_AUTH]);
        // An RSA TLS server key signs (ECDHE) and, for RSA key exchange, enciphers (RFC 5280
        // §4.2.1.3; what TLS clients check against the cipher suite).
        let ku = KeyUsage::from_der(extension(&cert, KeyUsage::OID).extn_value.as_bytes()).unwrap();
        assert_eq!(
            ku.0,
            KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment
        );
    }

    #[test]
    fn random_serials_are_sixteen_octets_positive_and_random() {
        // RFC 5280 §4.1.2.2: positive, at most 20 octets; ours are always 16, none of them a
        // sign-padding zero, so the serial's hex is always 32 digits.
        let now = OffsetDateTime::now_utc();
        let mut first_octets = std::collections::BTreeSet::new();
        for _ in 0..16 {
            let der = test_certificate(now);
            let cert = Certificate::from_der(&der).unwrap();
            let serial = cert.tbs_certificate.serial_number.as_bytes().to_vec();
            assert_eq!(serial.len(), 16, "{serial:02x?}");
            assert!((0x40..=0x7f).contains(&serial[0]), "{serial:02x?}");
            first_octets.insert(serial[0]);
        }
        // 2^-90 that sixteen draws from 64 values agree.
        assert!(first_octets.len() > 1, "{first_octets:02x?}");
    }

    #[test]
    fn explicit_serial_and_far_future_dates_are_encoded_faithfully() {
        let ca = test_authority();
        let not_after = time::macros::datetime!(2060-01-01 0:00 UTC);
        let der = ca
            .issue(IssueRequest {
                serial: Some(vec![0x00, 0x80, 0x01]),
                not_before: time::macros::datetime!(2020-01-01 0:00 UTC),
                not_after,
                ..client_request(
                    test_key().public_key_der().unwrap(),
                    OffsetDateTime::now_utc(),
                )
            })
            .unwrap();
        let info = CertificateInfo::parse(&der).unwrap();
        assert_eq!(info.serial_hex, "8001");
        assert_eq!(info.not_after, not_after);
        assert_eq!(
            info.not_before,
            time::macros::datetime!(2020-01-01 0:00 UTC)
        );
    }

    #[test]
    fn nonsense_requests_are_refused() {
        let ca = test_authority();
        let now = OffsetDateTime::now_utc();
        let key = test_key().public_key_der().unwrap();
        let zero_serial = IssueRequest {
            serial: Some(vec![0, 0]),
            ..client_request(key.clone(), now)
        };
        assert!(matches!(
            ca.issue(zero_serial),
            Err(PkiError::InvalidSerial(_))
        ));
        let backwards = IssueRequest {
            not_after: now - time::Duration::days(1),
            ..client_request(key.clone(), now)
        };
        assert!(matches!(
            ca.issue(backwards),
            Err(PkiError::InvalidValidity(_))
        ));
        let bad_key = IssueRequest {
            public_key_der: b"nope".to_vec(),
            ..client_request(key, now)
        };
        assert!(matches!(
            ca.issue(bad_key),
            Err(PkiError::InvalidPublicKey(_))
        ));
    }

    #[test]
    fn from_pem_round_trips_and_refuses_a_foreign_key() {
        let ca = test_authority();
        let key_pem = ca.key().to_pkcs8_pem().unwrap();
        let loaded = Authority::from_pem(&ca.certificate_pem(), &key_pem).unwrap();
        assert_eq!(loaded.certificate_der(), ca.certificate_der());
        let foreign = test_key().to_pkcs8_pem().unwrap();
        assert!(matches!(
            Authority::from_pem(&ca.certificate_pem(), &foreign),
            Err(PkiError::KeyMismatch(_))
        ));
    }
}
