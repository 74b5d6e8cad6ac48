//! The PKCS#10 certificate request the agent sends to enroll (protocol §3), and the strict
//! parser-and-verifier the simulator uses to reject bad requests.

use const_oid::db::rfc5912::ID_EXTENSION_REQ;
use const_oid::AssociatedOid;
use der::asn1::{Ia5String, PrintableString, SetOfVec, Utf8StringRef};
use der::{Any, Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::{DirectoryString, GeneralName, OtherName};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsages, SubjectAltName as SanExtension};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::request::attributes::{AsAttribute, ChallengePassword};
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use super::cert::{common_name, directory_string, parse_name, signed_portion};
use super::key::{
    require_sha256_with_rsa, rsa_public_key, sha256_with_rsa, sign_to_bit_string, signature_bytes,
    verify_sha256, SigningKey,
};
use super::PkiError;
use crate::secret::Secret;

/// Microsoft's user principal name otherName, used by SCEP profiles that bind a user.
const NT_PRINCIPAL_NAME: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.20.2.3");

/// The keyUsage bits a device certificate request may ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    pub digital_signature: bool,
    pub non_repudiation: bool,
    pub key_encipherment: bool,
    pub data_encipherment: bool,
    pub key_agreement: bool,
    /// Only ever read from foreign requests, so the simulator can refuse CA-like ones.
    pub key_cert_sign: bool,
    pub crl_sign: bool,
}

impl KeyUsage {
    fn to_extension_value(self) -> x509_cert::ext::pkix::KeyUsage {
        let mut flags = der::flagset::FlagSet::<KeyUsages>::default();
        let bits = [
            (self.digital_signature, KeyUsages::DigitalSignature),
            (self.non_repudiation, KeyUsages::NonRepudiation),
            (self.key_encipherment, KeyUsages::KeyEncipherment),
            (self.data_encipherment, KeyUsages::DataEncipherment),
            (self.key_agreement, KeyUsages::KeyAgreement),
            (self.key_cert_sign, KeyUsages::KeyCertSign),
            (self.crl_sign, KeyUsages::CRLSign),
        ];
        for (wanted, flag) in bits {
            if wanted {
                flags |= flag;
            }
        }
        x509_cert::ext::pkix::KeyUsage(flags)
    }

    fn from_extension_value(usage: x509_cert::ext::pkix::KeyUsage) -> Self {
        KeyUsage {
            digital_signature: usage.0.contains(KeyUsages::DigitalSignature),
            non_repudiation: usage.0.contains(KeyUsages::NonRepudiation),
            key_encipherment: usage.0.contains(KeyUsages::KeyEncipherment),
            data_encipherment: usage.0.contains(KeyUsages::DataEncipherment),
            key_agreement: usage.0.contains(KeyUsages::KeyAgreement),
            key_cert_sign: usage.0.contains(KeyUsages::KeyCertSign),
            crl_sign: usage.0.contains(KeyUsages::CRLSign),
        }
    }

    fn is_empty(self) -> bool {
        self == KeyUsage::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectAltName {
    Rfc822(String),
    Dns(String),
    Uri(String),
    /// otherName 1.3.6.1.4.1.311.20.2.3 holding a UTF8String.
    NtPrincipalName(String),
}

impl SubjectAltName {
    fn to_general_name(&self) -> Result<GeneralName, PkiError> {
        let ia5 = |s: &str| {
            Ia5String::new(s).map_err(|_| PkiError::InvalidSubjectAltName(format!("{self:?}")))
        };
        Ok(match self {
            SubjectAltName::Rfc822(s) => GeneralName::Rfc822Name(ia5(s)?),
            SubjectAltName::Dns(s) => GeneralName::DnsName(ia5(s)?),
            SubjectAltName::Uri(s) => GeneralName::UniformResourceIdentifier(ia5(s)?),
            SubjectAltName::NtPrincipalName(s) => {
                let utf8 = Utf8StringRef::new(s)
                    .and_then(|u| Any::encode_from(&u))
                    .map_err(|_| PkiError::InvalidSubjectAltName(format!("{self:?}")))?;
                GeneralName::OtherName(OtherName {
                    type_id: NT_PRINCIPAL_NAME,
                    value: utf8,
                })
            }
        })
    }
}

/// What goes into a certificate request besides the key.
#[derive(Clone, Debug)]
pub struct CsrProfile {
    /// RFC 4514, most specific RDN first, e.g. "CN=Okta MTLS,O=Okta,ST=CA,C=US".
    pub subject: String,
    pub key_usage: KeyUsage,
    pub basic_constraints_ca_false: bool,
    pub subject_alt_names: Vec<SubjectAltName>,
    pub challenge_password: Option<Secret>,
}

impl CsrProfile {
    /// Exactly what Okta's Device Registration Task requests (protocol §3).
    pub fn okta() -> Self {
        CsrProfile {
            subject: "CN=Okta MTLS, O=Okta, ST=CA, C=US".to_owned(),
            key_usage: KeyUsage {
                digital_signature: true,
                non_repudiation: true,
                key_encipherment: true,
                ..KeyUsage::default()
            },
            basic_constraints_ca_false: true,
            subject_alt_names: Vec::new(),
            challenge_password: None,
        }
    }
}

/// Builds a DER PKCS#10 request whose signature covers every attribute and extension.
pub fn build_csr(profile: &CsrProfile, key: &dyn SigningKey) -> Result<Vec<u8>, PkiError> {
    let subject = parse_name(&profile.subject)?;
    let public_key = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
        .map_err(PkiError::malformed("signing key's public key"))?;

    let mut extensions: Vec<Extension> = Vec::new();
    let encode_ext = PkiError::encode;
    if !profile.key_usage.is_empty() {
        let ext = profile
            .key_usage
            .to_extension_value()
            .to_extension(&subject, &extensions)
            .map_err(encode_ext("keyUsage extension"))?;
        extensions.push(ext);
    }
    if profile.basic_constraints_ca_false {
        let ext = BasicConstraints {
            ca: false,
            path_len_constraint: None,
        }
        .to_extension(&subject, &extensions)
        .map_err(encode_ext("basicConstraints extension"))?;
        extensions.push(ext);
    }
    if !profile.subject_alt_names.is_empty() {
        let names = profile
            .subject_alt_names
            .iter()
            .map(SubjectAltName::to_general_name)
            .collect::<Result<Vec<_>, _>>()?;
        let ext = SanExtension(names)
            .to_extension(&subject, &extensions)
            .map_err(encode_ext("subjectAltName extension"))?;
        extensions.push(ext);
    }

    let mut attributes: SetOfVec<Attribute> = SetOfVec::new();
    if !extensions.is_empty() {
        let attr = Attribute::try_from(ExtensionReq(extensions))
            .map_err(encode_ext("extensionRequest attribute"))?;
        attributes
            .insert(attr)
            .map_err(encode_ext("extensionRequest attribute"))?;
    }
    if let Some(password) = &profile.challenge_password {
        let attr = ChallengePassword(directory_string_for(password.expose()))
            .to_attribute()
            .map_err(encode_ext("challengePassword attribute"))?;
        attributes
            .insert(attr)
            .map_err(encode_ext("challengePassword attribute"))?;
    }

    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key,
        attributes,
    };
    let info_der = info.to_der().map_err(encode_ext("certification request"))?;
    let signature = sign_to_bit_string(key, &info_der)?;
    CertReq {
        info,
        algorithm: sha256_with_rsa(),
        signature,
    }
    .to_der()
    .map_err(encode_ext("certification request"))
}

/// PrintableString when the value allows it: some SCEP servers only compare that form.
fn directory_string_for(value: &str) -> DirectoryString {
    match PrintableString::new(value) {
        Ok(printable) => DirectoryString::PrintableString(printable),
        Err(_) => DirectoryString::Utf8String(value.to_owned()),
    }
}

/// What a verified request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrInfo {
    pub subject: String,
    pub subject_cn: Option<String>,
    /// SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
    pub challenge_password: Option<String>,
    pub key_usage: Option<KeyUsage>,
    pub basic_constraints_ca: Option<bool>,
}

/// Parses a DER PKCS#10 request and verifies its self-signature over the bytes as received.
pub fn verify_csr(der: &[u8]) -> Result<CsrInfo, PkiError> {
    const WHAT: &str = "certificate request";
    let request = CertReq::from_der(der).map_err(PkiError::malformed(WHAT))?;
    require_sha256_with_rsa(&request.algorithm, WHAT)?;
    let public_key = rsa_public_key(&request.info.public_key)?;
    let signed = signed_portion(der, WHAT)?;
    verify_sha256(
        &public_key,
        signed,
        signature_bytes(&request.signature, WHAT)?,
        WHAT,
    )?;

    let mut info = CsrInfo {
        subject: request.info.subject.to_string(),
        subject_cn: common_name(&request.info.subject),
        public_key_der: request
            .info
            .public_key
            .to_der()
            .map_err(PkiError::encode("request public key"))?,
        challenge_password: None,
        key_usage: None,
        basic_constraints_ca: None,
    };
    for attribute in request.info.attributes.iter() {
        if attribute.oid == ChallengePassword::OID {
            let value = single_value(attribute, "challengePassword attribute")?;
            info.challenge_password =
                Some(directory_string(value).ok_or_else(|| PkiError::Malformed {
                    what: "challengePassword attribute",
                    reason: "not a directory string".to_owned(),
                })?);
        } else if attribute.oid == ID_EXTENSION_REQ {
            let value = single_value(attribute, "extensionRequest attribute")?;
            let extensions: Vec<Extension> = value
                .decode_as()
                .map_err(PkiError::malformed("extensionRequest attribute"))?;
            read_requested_extensions(&extensions, &mut info)?;
        }
    }
    Ok(info)
}

fn single_value<'a>(attribute: &'a Attribute, what: &'static str) -> Result<&'a Any, PkiError> {
    match attribute.values.as_slice() {
        [value] => Ok(value),
        _ => Err(PkiError::Malformed {
            what,
            reason: "expected exactly one value".to_owned(),
        }),
    }
}

fn read_requested_extensions(extensions: &[Extension], info: &mut CsrInfo) -> Result<(), PkiError> {
    for ext in extensions {
        if ext.extn_id == x509_cert::ext::pkix::KeyUsage::OID {
            let usage = x509_cert::ext::pkix::KeyUsage::from_der(ext.extn_value.as_bytes())
                .map_err(PkiError::malformed("keyUsage extension"))?;
            info.key_usage = Some(KeyUsage::from_extension_value(usage));
        } else if ext.extn_id == BasicConstraints::OID {
            let constraints = BasicConstraints::from_der(ext.extn_value.as_bytes())
                .map_err(PkiError::malformed("basicConstraints extension"))?;
            info.basic_constraints_ca = Some(constraints.ca);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::key::tests::test_key;

    #[test]
    fn okta_csr_verifies_and_carries_the_protocol_subject_and_extensions() {
        let key = test_key();
        let der = build_csr(&CsrProfile::okta(), key).unwrap();
        let info = verify_csr(&der).unwrap();
        assert_eq!(info.subject, "CN=Okta MTLS,O=Okta,ST=CA,C=US");
        assert_eq!(info.subject_cn.as_deref(), Some("Okta MTLS"));
        assert_eq!(info.public_key_der, key.public_key_der().unwrap());
        assert_eq!(
            info.key_usage,
            Some(KeyUsage {
                digital_signature: true,
                non_repudiation: true,
                key_encipherment: true,
                ..KeyUsage::default()
            })
        );
        assert_eq!(info.basic_constraints_ca, Some(false));
        assert_eq!(info.challenge_password, None);
    }

    #[test]
    fn key_usage_extension_is_critical_and_inside_the_signed_request() {
        let der = build_csr(&CsrProfile::okta(), test_key()).unwrap();
        let request = CertReq::from_der(&der).unwrap();
        let ext_req = request
            .info
            .attributes
            .iter()
            .find(|a| a.oid == ID_EXTENSION_REQ)
            .expect("extensionRequest attribute");
        let extensions: Vec<Extension> = ext_req.values.as_slice()[0].decode_as().unwrap();
        let key_usage = extensions
            .iter()
            .find(|e| e.extn_id == x509_cert::ext::pkix::KeyUsage::OID)
            .unwrap();
        assert!(key_usage.critical);

        // RFC 5280 §4.2.1.3: a keyUsage must set a bit; with none to ask for, none is sent.
        let none = CsrProfile {
            key_usage: KeyUsage::default(),
            ..CsrProfile::okta()
        };
        let request = CertReq::from_der(&build_csr(&none, test_key()).unwrap()).unwrap();
        let asks_key_usage = request
            .info
            .attributes
            .iter()
            .filter(|a| a.oid == ID_EXTENSION_REQ)
            .flat_map(|a| {
                a.values.as_slice()[0]
                    .decode_as::<Vec<Extension>>()
                    .unwrap()
            })
            .any(|e| e.extn_id == x509_cert::ext::pkix::KeyUsage::OID);
        assert!(!asks_key_usage);
    }

    #[test]
    fn challenge_password_and_subject_alt_names_are_requested() {
        let profile = CsrProfile {
            subject: "CN=jane@example.com".to_owned(),
            subject_alt_names: vec![
                SubjectAltName::Rfc822("jane@example.com".to_owned()),
                SubjectAltName::Dns("mac.example.com".to_owned()),
                SubjectAltName::Uri("urn:uuid:1234".to_owned()),
                SubjectAltName::NtPrincipalName("jane@EXAMPLE.COM".to_owned()),
            ],
            challenge_password: Some(Secret::new("scep-challenge-1")),
            ..CsrProfile::okta()
        };
        let der = build_csr(&profile, test_key()).unwrap();
        let info = verify_csr(&der).unwrap();
        assert_eq!(info.challenge_password.as_deref(), Some("scep-challenge-1"));

        let request = CertReq::from_der(&der).unwrap();
        let ext_req = request
            .info
            .attributes
            .iter()
            .find(|a| a.oid == ID_EXTENSION_REQ)
            .unwrap();
        let extensions: Vec<Extension> = ext_req.values.as_slice()[0].decode_as().unwrap();
        let san = extensions
            .iter()
            .find(|e| e.extn_id == SanExtension::OID)
            .unwrap();
        let names = SanExtension::from_der(san.extn_value.as_bytes()).unwrap().0;
        assert_eq!(names.len(), 4);
        match &names[3] {
            GeneralName::OtherName(other) => {
                assert_eq!(other.type_id, NT_PRINCIPAL_NAME);
                let upn: Utf8StringRef<'_> = other.value.decode_as().unwrap();
                assert_eq!(upn.as_str(), "jane@EXAMPLE.COM");
            }
            other => panic!("expected otherName, got {other:?}"),
        }
    }

    #[test]
    fn a_csr_altered_after_signing_is_rejected() {
        let der = build_csr(&CsrProfile::okta(), test_key()).unwrap();
        // Flip a letter of the subject ("Okta" -> "Okt`") without changing any length.
        let at = der
            .windows(9)
            .position(|w| w == b"Okta MTLS")
            .expect("subject bytes");
        let mut tampered = der.clone();
        tampered[at + 3] ^= 0x01;
        assert!(matches!(
            verify_csr(&tampered),
            Err(PkiError::BadSignature("certificate request"))
        ));
    }

    #[test]
    fn a_csr_signed_by_another_key_is_rejected() {
        use crate::pki::key::tests::other_test_key;
        // Same request info, signature made by a different key: swap in the other signature.
        let mine = CertReq::from_der(&build_csr(&CsrProfile::okta(), test_key()).unwrap()).unwrap();
        let theirs =
            CertReq::from_der(&build_csr(&CsrProfile::okta(), other_test_key()).unwrap()).unwrap();
        let forged = CertReq {
            signature: theirs.signature,
            ..mine
        }
        .to_der()
        .unwrap();
        assert!(matches!(
            verify_csr(&forged),
            Err(PkiError::BadSignature(_))
        ));
    }

    #[test]
    fn other_signature_algorithms_are_refused() {
        let der = build_csr(&CsrProfile::okta(), test_key()).unwrap();
        let mut request = CertReq::from_der(&der).unwrap();
        request.algorithm.oid = const_oid::db::rfc5912::SHA_1_WITH_RSA_ENCRYPTION;
        let err = verify_csr(&request.to_der().unwrap()).unwrap_err();
        assert!(
            matches!(err, PkiError::UnsupportedSignatureAlgorithm { ref oid, .. } if oid == "1.2.840.113549.1.1.5"),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_not_a_csr() {
        assert!(matches!(
            verify_csr(b"\x30\x03\x02\x01\x00"),
            Err(PkiError::Malformed { .. })
        ));
    }

    #[test]
    fn a_bad_subject_is_reported_not_panicked_on() {
        let profile = CsrProfile {
            subject: "not a name".to_owned(),
            ..CsrProfile::okta()
        };
        assert!(matches!(
            build_csr(&profile, test_key()),
            Err(PkiError::InvalidName { .. })
        ));
    }
}
