//! The device renewal token (protocol §4): renewal claims as JSON, wrapped in a CMS SignedData
//! signed by the current device key, and the strict verifier the simulator checks it with.

use std::io;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911::ID_SIGNING_TIME;
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::db::rfc5912::ID_SHA_256;
use der::asn1::{OctetString, OctetStringRef, SetOfVec};
use der::{Any, Decode, Encode, Tag, Tagged};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::cert::{same_public_key, x509_time};
use super::key::{
    require_rsa_pkcs1_sha256, rsa_public_key, sha256_with_rsa, verify_sha256, SigningKey,
};
use super::PkiError;

/// How long a renewal token is good for, and how far back it is valid to absorb clock skew.
const TOKEN_LIFETIME_SECS: i64 = 3600;
const TOKEN_BACKDATE_SECS: i64 = 300;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenDevice {
    pub uuid: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
}

/// The signed content. Field order is the wire order Okta's task produces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalClaims {
    pub device: TokenDevice,
    pub iat: i64,
    pub exp: i64,
    pub nbf: i64,
}

impl RenewalClaims {
    pub fn new(uuid: impl Into<String>, display_name: impl Into<String>, now_unix: i64) -> Self {
        RenewalClaims {
            device: TokenDevice {
                uuid: uuid.into(),
                display_name: display_name.into(),
            },
            iat: now_unix,
            exp: now_unix + TOKEN_LIFETIME_SECS,
            nbf: now_unix - TOKEN_BACKDATE_SECS,
        }
    }

    /// The JSON text exactly as Python's `json.dumps` writes it (", " and ": " separators,
    /// non-ASCII escaped), since that is what Okta has always received.
    pub fn to_json(&self) -> Result<Vec<u8>, PkiError> {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonJson);
        self.serialize(&mut serializer)
            .map_err(|e| PkiError::InvalidClaims(e.to_string()))?;
        Ok(out)
    }
}

/// serde_json formatter mimicking Python's default `json.dumps` output.
struct PythonJson;

impl serde_json::ser::Formatter for PythonJson {
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

fn sha256_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA_256,
        parameters: None,
    }
}

fn single_valued(oid: const_oid::ObjectIdentifier, value: Any) -> Result<Attribute, PkiError> {
    let values = SetOfVec::try_from(vec![value]).map_err(PkiError::encode("signed attribute"))?;
    Ok(Attribute { oid, values })
}

/// Signs `claims` as a CMS SignedData with `key`, which must be the key of `certificate_der`.
pub fn sign_renewal_token(
    claims: &RenewalClaims,
    certificate_der: &[u8],
    key: &dyn SigningKey,
) -> Result<Vec<u8>, PkiError> {
    let certificate = Certificate::from_der(certificate_der)
        .map_err(PkiError::malformed("device certificate"))?;
    let certificate_key = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(PkiError::encode("device certificate public key"))?;
    // A token signed by another key would be rejected by Okta with a far vaguer message.
    if !same_public_key(&certificate_key, &key.public_key_der()?) {
        return Err(PkiError::KeyMismatch("device certificate"));
    }

    let content = claims.to_json()?;
    let encode = PkiError::encode("renewal token");
    let signing_time = x509_time(
        OffsetDateTime::from_unix_timestamp(claims.iat)
            .map_err(|e| PkiError::InvalidClaims(e.to_string()))?,
    )?;
    let digest = Sha256::digest(&content);
    let signed_attributes: SignedAttributes = SetOfVec::try_from(vec![
        single_valued(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA).map_err(encode)?)?,
        single_valued(
            ID_SIGNING_TIME,
            Any::encode_from(&signing_time).map_err(PkiError::encode("signing time"))?,
        )?,
        single_valued(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetStringRef::new(&digest).map_err(PkiError::encode("digest"))?)
                .map_err(PkiError::encode("digest"))?,
        )?,
    ])
    .map_err(PkiError::encode("signed attributes"))?;
    // RFC 5652 §5.4: the signature covers the attributes encoded as a SET OF, not as [0].
    let to_sign = signed_attributes
        .to_der()
        .map_err(PkiError::encode("signed attributes"))?;
    let signature = key.sign_sha256(&to_sign)?;

    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate.issuer.clone(),
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: sha256_algorithm(),
        signed_attrs: Some(signed_attributes),
        signature_algorithm: sha256_with_rsa(),
        signature: OctetString::new(signature).map_err(PkiError::encode("signature"))?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256_algorithm()])
            .map_err(PkiError::encode("digest algorithms"))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(
                Any::new(Tag::OctetString, content).map_err(PkiError::encode("content"))?,
            ),
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(certificate)])
                .map_err(PkiError::encode("certificates"))?,
        )),
        crls: None,
        signer_infos: SignerInfos(
            SetOfVec::try_from(vec![signer]).map_err(PkiError::encode("signer infos"))?,
        ),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(PkiError::encode("renewal token"))?,
    }
    .to_der()
    .map_err(PkiError::encode("renewal token"))
}

/// A renewal token whose signature checked out, with the claims it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: RenewalClaims,
    pub signer_certificate_der: Vec<u8>,
}

/// Verifies a renewal token's structure and signature. Time window and issuer are the caller's.
pub fn verify_renewal_token(der: &[u8]) -> Result<VerifiedToken, PkiError> {
    const WHAT: &str = "renewal token";
    let content_info = ContentInfo::from_der(der).map_err(PkiError::malformed(WHAT))?;
    if content_info.content_type != ID_SIGNED_DATA {
        return Err(PkiError::NotSignedData(
            content_info.content_type.to_string(),
        ));
    }
    let signed_data: SignedData = content_info
        .content
        .decode_as()
        .map_err(PkiError::malformed(WHAT))?;

    let encap = &signed_data.encap_content_info;
    if encap.econtent_type != ID_DATA {
        return Err(PkiError::WrongContentType(encap.econtent_type.to_string()));
    }
    let content = match &encap.econtent {
        Some(any) if any.tag() == Tag::OctetString => any.value(),
        Some(_) => {
            return Err(PkiError::Malformed {
                what: WHAT,
                reason: "content is not an OCTET STRING".to_owned(),
            })
        }
        None => return Err(PkiError::MissingContent),
    };

    let signer = match signed_data.signer_infos.0.as_slice() {
        [signer] => signer,
        others => return Err(PkiError::SignerCount(others.len())),
    };
    if signer.digest_alg.oid != ID_SHA_256
        || !signer
            .digest_alg
            .parameters
            .as_ref()
            .is_none_or(|p| p.is_null())
    {
        return Err(PkiError::UnsupportedDigestAlgorithm {
            what: WHAT,
            oid: signer.digest_alg.oid.to_string(),
        });
    }
    require_rsa_pkcs1_sha256(&signer.signature_algorithm, WHAT)?;

    let attributes = signer
        .signed_attrs
        .as_ref()
        .ok_or(PkiError::SignedAttribute("messageDigest"))?;
    let content_type = only_attribute(attributes, ID_CONTENT_TYPE, "contentType")?
        .decode_as::<const_oid::ObjectIdentifier>()
        .map_err(|_| PkiError::SignedAttribute("contentType"))?;
    if content_type != ID_DATA {
        return Err(PkiError::WrongContentType(content_type.to_string()));
    }
    let message_digest = only_attribute(attributes, ID_MESSAGE_DIGEST, "messageDigest")?
        .decode_as::<OctetString>()
        .map_err(|_| PkiError::SignedAttribute("messageDigest"))?;
    if message_digest.as_bytes() != Sha256::digest(content).as_slice() {
        return Err(PkiError::DigestMismatch);
    }

    let sid = match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(sid) => sid,
        SignerIdentifier::SubjectKeyIdentifier(_) => {
            return Err(PkiError::UnsupportedSignerIdentifier)
        }
    };
    let certificate = signed_data
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .find_map(|choice| match choice {
            CertificateChoices::Certificate(cert)
                if cert.tbs_certificate.issuer == sid.issuer
                    && cert.tbs_certificate.serial_number == sid.serial_number =>
            {
                Some(cert)
            }
            _ => None,
        })
        .ok_or(PkiError::SignerCertificateMissing)?;

    let public_key = rsa_public_key(&certificate.tbs_certificate.subject_public_key_info)?;
    // Signed attributes arrive as [0] IMPLICIT; the signature is over their SET OF encoding.
    let signed_bytes = attributes
        .to_der()
        .map_err(PkiError::encode("signed attributes"))?;
    verify_sha256(
        &public_key,
        &signed_bytes,
        signer.signature.as_bytes(),
        WHAT,
    )?;

    let claims: RenewalClaims =
        serde_json::from_slice(content).map_err(|e| PkiError::InvalidClaims(e.to_string()))?;
    Ok(VerifiedToken {
        claims,
        signer_certificate_der: certificate
            .to_der()
            .map_err(PkiError::encode("signer certificate"))?,
    })
}

fn only_attribute<'a>(
    attributes: &'a SignedAttributes,
    oid: const_oid::ObjectIdentifier,
    name: &'static str,
) -> Result<&'a Any, PkiError> {
    let mut matching = attributes.iter().filter(|attr| attr.oid == oid);
    match (matching.next(), matching.next()) {
        (Some(attr), None) => match attr.values.as_slice() {
            [value] => Ok(value),
            _ => Err(PkiError::SignedAttribute(name)),
        },
        _ => Err(PkiError::SignedAttribute(name)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pki::authority::tests::{client_request, test_authority, test_certificate};
    use crate::pki::key::tests::{other_test_key, test_key};
    use std::sync::OnceLock;

    const NOW: i64 = 1_750_000_000;

    fn device_cert() -> &'static [u8] {
        static CERT: OnceLock<Vec<u8>> = OnceLock::new();
        CERT.get_or_init(|| test_certificate(OffsetDateTime::now_utc()))
    }

    fn claims() -> RenewalClaims {
        RenewalClaims::new(
            "5E2D3C4B-0000-1111-2222-333344445555",
            "Jane’s MacBook",
            NOW,
        )
    }

    fn token() -> Vec<u8> {
        sign_renewal_token(&claims(), device_cert(), test_key()).unwrap()
    }

    #[test]
    fn claims_json_matches_the_python_task_byte_for_byte() {
        let json = String::from_utf8(claims().to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"device": {"uuid": "5E2D3C4B-0000-1111-2222-333344445555", "displayName": "Jane\u2019s MacBook"}, "iat": 1750000000, "exp": 1750003600, "nbf": 1749999700}"#
        );
        let back: RenewalClaims = serde_json::from_str(&json).unwrap();
        assert_eq!(back, claims());
    }

    #[test]
    fn a_signed_token_verifies_and_returns_its_claims_and_signer() {
        let verified = verify_renewal_token(&token()).unwrap();
        assert_eq!(verified.claims, claims());
        assert_eq!(verified.signer_certificate_der, device_cert());
    }

    #[test]
    fn the_token_has_the_protocol_shape() {
        let content_info = ContentInfo::from_der(&token()).unwrap();
        assert_eq!(content_info.content_type, ID_SIGNED_DATA);
        let signed: SignedData = content_info.content.decode_as().unwrap();
        assert_eq!(signed.encap_content_info.econtent_type, ID_DATA);
        assert_eq!(signed.digest_algorithms.as_slice(), [sha256_algorithm()]);
        let signer = &signed.signer_infos.0.as_slice()[0];
        assert_eq!(signer.signature_algorithm, sha256_with_rsa());
        let oids: Vec<_> = signer
            .signed_attrs
            .as_ref()
            .unwrap()
            .iter()
            .map(|a| a.oid)
            .collect();
        assert!(oids.contains(&ID_CONTENT_TYPE));
        assert!(oids.contains(&ID_MESSAGE_DIGEST));
        assert!(oids.contains(&ID_SIGNING_TIME));
        assert!(matches!(
            signer.sid,
            SignerIdentifier::IssuerAndSerialNumber(_)
        ));
    }

    #[test]
    fn tampered_content_is_rejected() {
        let der = token();
        let at = der
            .windows(4)
            .position(|w| w == b"1750")
            .expect("iat in content");
        let mut tampered = der.clone();
        tampered[at + 3] = b'9';
        assert!(matches!(
            verify_renewal_token(&tampered),
            Err(PkiError::DigestMismatch)
        ));
    }

    #[test]
    fn a_token_whose_certificate_is_for_another_key_is_rejected() {
        // Sign with the other key, then swap in our certificate so the signer lookup succeeds.
        let other_cert = test_authority()
            .issue(client_request(
                other_test_key().public_key_der().unwrap(),
                OffsetDateTime::now_utc(),
            ))
            .unwrap();
        let der = sign_renewal_token(&claims(), &other_cert, other_test_key()).unwrap();
        let swapped = rewritten(&der, |signed| {
            let mine = Certificate::from_der(device_cert()).unwrap();
            let mut signer = signed.signer_infos.0.as_slice()[0].clone();
            signer.sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: mine.tbs_certificate.issuer.clone(),
                serial_number: mine.tbs_certificate.serial_number.clone(),
            });
            signed.signer_infos = SignerInfos(SetOfVec::try_from(vec![signer]).unwrap());
            signed.certificates = Some(CertificateSet(
                SetOfVec::try_from(vec![CertificateChoices::Certificate(mine)]).unwrap(),
            ));
        });
        assert!(matches!(
            verify_renewal_token(&swapped),
            Err(PkiError::BadSignature("renewal token"))
        ));
    }

    #[test]
    fn a_token_without_its_signer_certificate_is_rejected() {
        let bare = rewritten(&token(), |signed| signed.certificates = None);
        assert!(matches!(
            verify_renewal_token(&bare),
            Err(PkiError::SignerCertificateMissing)
        ));
    }

    #[test]
    fn signing_with_a_key_that_does_not_match_the_certificate_is_refused() {
        assert!(matches!(
            sign_renewal_token(&claims(), device_cert(), other_test_key()),
            Err(PkiError::KeyMismatch(_))
        ));
    }

    #[test]
    fn structural_violations_are_named() {
        let detached = rewritten(&token(), |signed| signed.encap_content_info.econtent = None);
        assert!(matches!(
            verify_renewal_token(&detached),
            Err(PkiError::MissingContent)
        ));

        let no_signers = rewritten(&token(), |signed| {
            signed.signer_infos = SignerInfos(SetOfVec::new())
        });
        assert!(matches!(
            verify_renewal_token(&no_signers),
            Err(PkiError::SignerCount(0))
        ));

        let sha1 = rewritten(&token(), |signed| {
            let mut signer = signed.signer_infos.0.as_slice()[0].clone();
            signer.digest_alg.oid = const_oid::db::rfc5912::ID_SHA_1;
            signed.signer_infos = SignerInfos(SetOfVec::try_from(vec![signer]).unwrap());
        });
        assert!(matches!(
            verify_renewal_token(&sha1),
            Err(PkiError::UnsupportedDigestAlgorithm { .. })
        ));

        let base = ContentInfo::from_der(&token()).unwrap();
        let not_signed = ContentInfo {
            content_type: ID_DATA,
            content: base.content.clone(),
        };
        assert!(matches!(
            verify_renewal_token(&not_signed.to_der().unwrap()),
            Err(PkiError::NotSignedData(_))
        ));
    }

    /// The CMS SignedData `der` with its SignedData changed by `edit` and encoded again. The
    /// signature covers only the signed attributes, so what `edit` changes outside them still
    /// verifies.
    pub(crate) fn rewritten(der: &[u8], edit: impl FnOnce(&mut SignedData)) -> Vec<u8> {
        let mut signed: SignedData = ContentInfo::from_der(der)
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        edit(&mut signed);
        ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    /// `der` with `certificates` in place of the ones it carries. DER sorts a SET OF by
    /// encoding, so this checks that the first one given comes first, which tests of the
    /// signer lookup rely on.
    pub(crate) fn with_certificates(der: &[u8], certificates: &[&[u8]]) -> Vec<u8> {
        let rewritten = rewritten(der, |signed| {
            let choices = certificates
                .iter()
                .map(|c| CertificateChoices::Certificate(Certificate::from_der(c).unwrap()));
            signed.certificates = Some(CertificateSet(
                SetOfVec::try_from(choices.collect::<Vec<_>>()).unwrap(),
            ));
        });
        let first = ContentInfo::from_der(&rewritten)
            .unwrap()
            .content
            .decode_as::<SignedData>()
            .unwrap()
            .certificates
            .unwrap()
            .0
            .into_vec()
            .remove(0);
        assert!(
            matches!(&first, CertificateChoices::Certificate(c) if c.to_der().unwrap() == certificates[0]),
            "the first certificate given must come first for the test to mean anything"
        );
        rewritten
    }

    #[test]
    fn content_that_is_not_an_octet_string_is_refused() {
        // The same bytes under another tag: the signed digest still matches, only the tag is
        // wrong, and RFC 5652 §5.2 says eContent is an OCTET STRING.
        let retagged = rewritten(&token(), |signed| {
            let bytes = signed.encap_content_info.econtent.as_ref().unwrap().value();
            signed.encap_content_info.econtent =
                Some(Any::new(Tag::Utf8String, bytes.to_vec()).unwrap());
        });
        let err = verify_renewal_token(&retagged).unwrap_err();
        assert!(
            matches!(&err, PkiError::Malformed { reason, .. } if reason.contains("not an OCTET STRING")),
            "{err}"
        );
    }

    #[test]
    fn the_signer_is_found_by_issuer_and_serial_among_other_certificates() {
        // A namesake: the device certificate's issuer, another serial, another key. Its serial
        // is one byte, so its encoding is the shorter and DER's SET OF order puts it first.
        let mut namesake = Certificate::from_der(device_cert()).unwrap();
        namesake.tbs_certificate.serial_number =
            x509_cert::serial_number::SerialNumber::new(&[1]).unwrap();
        namesake.tbs_certificate.subject_public_key_info =
            spki::SubjectPublicKeyInfoOwned::from_der(&other_test_key().public_key_der().unwrap())
                .unwrap();
        let namesake_der = namesake.to_der().unwrap();

        let both = with_certificates(&token(), &[&namesake_der, device_cert()]);
        let verified = verify_renewal_token(&both).unwrap();
        assert_eq!(verified.signer_certificate_der, device_cert());
        assert_eq!(verified.claims, claims());
    }
}
