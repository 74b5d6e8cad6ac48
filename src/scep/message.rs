//! The SCEP pkiMessage (RFC 8894 §3.2): a CMS SignedData whose authenticated attributes say
//! what the message is (messageType, transactionID, nonces, pkiStatus, failInfo).
//!
//! Both directions are here because the unit tests play the CA with the same code: building a
//! request or a CertRep, and verifying either against the certificates the reader trusts.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::db::rfc5912::{
    RSA_ENCRYPTION, SHA_1_WITH_RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION,
};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, OctetStringRef, PrintableStringRef, SetOfVec};
use der::{Any, Decode, Encode, Sequence, Tag, Tagged};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use time::OffsetDateTime;
use x509_cert::attr::Attribute;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::Certificate;

use crate::pki::cert::{parse_name, same_public_key, x509_time};
use crate::pki::key::{rsa_public_key, sha256_with_rsa, sign_to_bit_string};
use crate::pki::{PkiError, PrivateKey, SigningKey};

/// SCEP's attribute OIDs (id-VeriSign 1.9.x and id-pkix 24.1).
const MESSAGE_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
const PKI_STATUS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.3");
const FAIL_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.4");
const SENDER_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
const RECIPIENT_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.6");
const TRANSACTION_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.7");
const FAIL_INFO_TEXT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.24.1");

/// The transient self-signed certificate only has to outlive the exchange; backdated for skew.
const TRANSIENT_BACKDATE: time::Duration = time::Duration::minutes(10);
const TRANSIENT_LIFETIME: time::Duration = time::Duration::days(1);

pub use super::types::{FailInfo, MessageDigest, MessageType, PkiStatus};

/// The authenticated attributes of one pkiMessage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScepAttributes {
    pub message_type: MessageType,
    pub transaction_id: String,
    pub sender_nonce: Vec<u8>,
    pub recipient_nonce: Option<Vec<u8>>,
    pub pki_status: Option<PkiStatus>,
    pub fail_info: Option<FailInfo>,
    pub fail_info_text: Option<String>,
}

impl ScepAttributes {
    /// A request's attributes with a fresh 16-byte senderNonce.
    pub fn request(message_type: MessageType, transaction_id: &str) -> Self {
        let mut nonce = vec![0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        ScepAttributes {
            message_type,
            transaction_id: transaction_id.to_owned(),
            sender_nonce: nonce,
            recipient_nonce: None,
            pki_status: None,
            fail_info: None,
            fail_info_text: None,
        }
    }
}

/// Who signs: an in-memory key can use SHA-1 for old CAs; a delegated (keychain) key only
/// signs SHA-256, which is all `SigningKey` promises.
#[derive(Clone, Copy)]
pub enum Signer<'a> {
    InMemory(&'a PrivateKey),
    Delegated(&'a dyn SigningKey),
}

impl Signer<'_> {
    fn sign(self, digest: MessageDigest, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        match (self, digest) {
            (Signer::InMemory(key), MessageDigest::Sha256) => key.sign_sha256(message),
            (Signer::InMemory(key), MessageDigest::Sha1) => key.sign_sha1_legacy(message),
            (Signer::Delegated(key), MessageDigest::Sha256) => key.sign_sha256(message),
            (Signer::Delegated(key), MessageDigest::Sha1) => key.sign_sha1(message),
        }
    }

    fn public_key_der(self) -> Result<Vec<u8>, PkiError> {
        match self {
            Signer::InMemory(key) => key.public_key_der(),
            Signer::Delegated(key) => key.public_key_der(),
        }
    }
}

fn printable(value: &str) -> Result<Any, PkiError> {
    let s = PrintableStringRef::new(value).map_err(PkiError::encode("SCEP attribute"))?;
    Any::encode_from(&s).map_err(PkiError::encode("SCEP attribute"))
}

fn octets(value: &[u8]) -> Result<Any, PkiError> {
    let s = OctetStringRef::new(value).map_err(PkiError::encode("SCEP attribute"))?;
    Any::encode_from(&s).map_err(PkiError::encode("SCEP attribute"))
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, PkiError> {
    let values = SetOfVec::try_from(vec![value]).map_err(PkiError::encode("SCEP attribute"))?;
    Ok(Attribute { oid, values })
}

/// Signs a pkiMessage carrying `content` (normally a DER EnvelopedData; `None` for a CertRep
/// without one). `signer_certificate_der` is included so the reader can verify.
pub fn sign_pki_message(
    attributes: &ScepAttributes,
    content: Option<&[u8]>,
    signer_certificate_der: &[u8],
    signer: Signer<'_>,
    digest: MessageDigest,
) -> Result<Vec<u8>, PkiError> {
    let certificate = Certificate::from_der(signer_certificate_der)
        .map_err(PkiError::malformed("signer certificate"))?;
    let encode = |e: der::Error| PkiError::Encode {
        what: "SCEP message",
        reason: e.to_string(),
    };
    let content_bytes = content.unwrap_or_default();
    let mut attrs = vec![
        attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA).map_err(encode)?)?,
        attribute(ID_MESSAGE_DIGEST, octets(&digest.hash(content_bytes))?)?,
        attribute(
            MESSAGE_TYPE,
            printable(&attributes.message_type.number().to_string())?,
        )?,
        attribute(TRANSACTION_ID, printable(&attributes.transaction_id)?)?,
        attribute(SENDER_NONCE, octets(&attributes.sender_nonce)?)?,
    ];
    if let Some(nonce) = &attributes.recipient_nonce {
        attrs.push(attribute(RECIPIENT_NONCE, octets(nonce)?)?);
    }
    if let Some(status) = attributes.pki_status {
        attrs.push(attribute(
            PKI_STATUS,
            printable(&status.number().to_string())?,
        )?);
    }
    if let Some(info) = attributes.fail_info {
        attrs.push(attribute(
            FAIL_INFO,
            printable(&info.number().to_string())?,
        )?);
    }
    if let Some(text) = &attributes.fail_info_text {
        let utf8 = der::asn1::Utf8StringRef::new(text).map_err(encode)?;
        attrs.push(attribute(
            FAIL_INFO_TEXT,
            Any::encode_from(&utf8).map_err(encode)?,
        )?);
    }
    let signed_attributes: SignedAttributes =
        SetOfVec::try_from(attrs).map_err(PkiError::encode("signed attributes"))?;
    // RFC 5652 §5.4: the signature covers the attributes encoded as a SET OF, not as [0].
    let to_sign = signed_attributes
        .to_der()
        .map_err(PkiError::encode("signed attributes"))?;
    let signature = signer.sign(digest, &to_sign)?;

    let digest_algorithm = AlgorithmIdentifierOwned {
        oid: digest.oid(),
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate.issuer.clone(),
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: digest_algorithm.clone(),
        signed_attrs: Some(signed_attributes),
        // Plain rsaEncryption with the digest named separately is what every SCEP stack reads.
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(encode)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_algorithm]).map_err(encode)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: content
                .map(|c| Any::new(Tag::OctetString, c.to_vec()))
                .transpose()
                .map_err(encode)?,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(certificate)])
                .map_err(encode)?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(encode)?),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(encode)?,
    }
    .to_der()
    .map_err(encode)
}

/// A pkiMessage whose signature checked out.
#[derive(Debug)]
pub struct VerifiedMessage {
    pub attributes: ScepAttributes,
    /// The signed content (a DER EnvelopedData), if any.
    pub content: Option<Vec<u8>>,
    pub signer_certificate_der: Vec<u8>,
    pub digest: MessageDigest,
}

/// Why a pkiMessage was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("not a SCEP pkiMessage: {0}")]
    Malformed(String),
    #[error("{0}")]
    Verification(String),
}

fn malformed(what: &str) -> impl FnOnce(der::Error) -> MessageError + '_ {
    move |e| MessageError::Malformed(format!("{what}: {e}"))
}

/// Verifies a pkiMessage. With `trusted`, the signer must be one of those certificates (what
/// the client does with a CertRep); without, the certificate included in the message is used
/// (what a CA does with a request, and only the test CA here does).
pub fn verify_pki_message(
    der: &[u8],
    trusted: Option<&[Vec<u8>]>,
) -> Result<VerifiedMessage, MessageError> {
    let info = ContentInfo::from_der(der).map_err(malformed("ContentInfo"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(MessageError::Malformed(format!(
            "content type {} is not signed-data",
            info.content_type
        )));
    }
    let signed: SignedData = info.content.decode_as().map_err(malformed("SignedData"))?;
    let signer = match signed.signer_infos.0.as_slice() {
        [one] => one,
        many => {
            return Err(MessageError::Malformed(format!(
                "{} signers; exactly one is expected",
                many.len()
            )))
        }
    };
    let sid = match &signer.sid {
        SignerIdentifier::IssuerAndSerialNumber(sid) => sid,
        SignerIdentifier::SubjectKeyIdentifier(_) => {
            return Err(MessageError::Malformed(
                "the signer is named by key identifier; issuer and serial number is expected"
                    .into(),
            ))
        }
    };
    let matches_sid = |c: &Certificate| {
        c.tbs_certificate.issuer == sid.issuer
            && c.tbs_certificate.serial_number == sid.serial_number
    };
    let signer_certificate = match trusted {
        Some(trusted) => trusted
            .iter()
            .filter_map(|der| Certificate::from_der(der).ok())
            .find(|c| matches_sid(c))
            .ok_or_else(|| {
                MessageError::Verification(format!(
                    "it is signed by {} (serial {}), which is not a certificate of this CA",
                    sid.issuer,
                    crate::pki::cert::hex(sid.serial_number.as_bytes())
                ))
            })?,
        None => signed
            .certificates
            .iter()
            .flat_map(|set| set.0.iter())
            .find_map(|choice| match choice {
                CertificateChoices::Certificate(c) if matches_sid(c) => Some(c.clone()),
                _ => None,
            })
            .ok_or_else(|| {
                MessageError::Verification("the signer's certificate is not included".into())
            })?,
    };

    let digest = MessageDigest::from_oid(&signer.digest_alg.oid).ok_or_else(|| {
        MessageError::Verification(format!(
            "digest algorithm {} is not supported",
            signer.digest_alg.oid
        ))
    })?;
    let signature_ok = match signer.signature_algorithm.oid {
        RSA_ENCRYPTION => true,
        SHA_1_WITH_RSA_ENCRYPTION => digest == MessageDigest::Sha1,
        SHA_256_WITH_RSA_ENCRYPTION => digest == MessageDigest::Sha256,
        _ => false,
    };
    if !signature_ok {
        return Err(MessageError::Verification(format!(
            "signature algorithm {} is not supported with {}",
            signer.signature_algorithm.oid,
            digest.name()
        )));
    }
    let attributes = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| MessageError::Malformed("no authenticated attributes".into()))?;

    let content = match &signed.encap_content_info.econtent {
        None => None,
        Some(any) if any.tag() == Tag::OctetString => Some(any.value().to_vec()),
        Some(_) => {
            return Err(MessageError::Malformed(
                "the content is not an OCTET STRING".into(),
            ))
        }
    };
    let message_digest = single(attributes, ID_MESSAGE_DIGEST, "messageDigest")?
        .ok_or_else(|| MessageError::Malformed("no messageDigest attribute".into()))?
        .decode_as::<OctetString>()
        .map_err(malformed("messageDigest"))?;
    if message_digest.as_bytes() != digest.hash(content.as_deref().unwrap_or_default()) {
        return Err(MessageError::Verification(
            "the content does not match its signed digest".into(),
        ));
    }

    let public_key = rsa_public_key(&signer_certificate.tbs_certificate.subject_public_key_info)
        .map_err(|e| MessageError::Verification(e.to_string()))?;
    let signed_bytes = attributes
        .to_der()
        .map_err(malformed("signed attributes"))?;
    if !public_key.verifies(
        digest.verification(),
        &signed_bytes,
        signer.signature.as_bytes(),
    ) {
        return Err(MessageError::Verification(
            "the signature does not verify".into(),
        ));
    }

    let text = |oid, name| -> Result<Option<String>, MessageError> {
        single(attributes, oid, name)?
            .map(|any| string_value(any, name))
            .transpose()
    };
    let bytes = |oid, name| -> Result<Option<Vec<u8>>, MessageError> {
        single(attributes, oid, name)?
            .map(|any| {
                any.decode_as::<OctetString>()
                    .map(OctetString::into_bytes)
                    .map_err(malformed(name))
            })
            .transpose()
    };
    let message_type = text(MESSAGE_TYPE, "messageType")?
        .ok_or_else(|| MessageError::Malformed("no messageType attribute".into()))?;
    let message_type = MessageType::from_number(message_type.trim())
        .ok_or_else(|| MessageError::Malformed(format!("unknown messageType {message_type:?}")))?;
    let pki_status = text(PKI_STATUS, "pkiStatus")?
        .map(|s| {
            PkiStatus::from_number(s.trim())
                .ok_or_else(|| MessageError::Malformed(format!("unknown pkiStatus {s:?}")))
        })
        .transpose()?;
    let fail_info = text(FAIL_INFO, "failInfo")?
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .map(FailInfo::from_number)
                .map_err(|_| MessageError::Malformed(format!("failInfo {s:?} is not a number")))
        })
        .transpose()?;
    let attributes = ScepAttributes {
        message_type,
        transaction_id: text(TRANSACTION_ID, "transactionID")?
            .ok_or_else(|| MessageError::Malformed("no transactionID attribute".into()))?,
        sender_nonce: bytes(SENDER_NONCE, "senderNonce")?.unwrap_or_default(),
        recipient_nonce: bytes(RECIPIENT_NONCE, "recipientNonce")?,
        pki_status,
        fail_info,
        fail_info_text: text(FAIL_INFO_TEXT, "failInfoText")?,
    };
    Ok(VerifiedMessage {
        attributes,
        content,
        signer_certificate_der: signer_certificate
            .to_der()
            .map_err(malformed("signer certificate"))?,
        digest,
    })
}

/// The value of a single-valued attribute; absent is `None`, repeated is an error.
fn single<'a>(
    attributes: &'a SignedAttributes,
    oid: ObjectIdentifier,
    name: &str,
) -> Result<Option<&'a Any>, MessageError> {
    let mut found = attributes.iter().filter(|a| a.oid == oid);
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(attr), None) if attr.values.len() == 1 => Ok(attr.values.iter().next()),
        _ => Err(MessageError::Malformed(format!(
            "the {name} attribute is repeated or multi-valued"
        ))),
    }
}

/// SCEP says PrintableString; some CAs send UTF8String or IA5String, which read the same.
fn string_value(any: &Any, name: &str) -> Result<String, MessageError> {
    match any.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            String::from_utf8(any.value().to_vec())
                .map_err(|_| MessageError::Malformed(format!("the {name} is not text")))
        }
        other => Err(MessageError::Malformed(format!(
            "the {name} is a {other}, not a string"
        ))),
    }
}

/// The transactionID we use: hex SHA-256 of the public key, so a retried request for the same
/// key is recognisably the same transaction (RFC 8894 §3.2.1.1).
pub fn transaction_id(public_key_der: &[u8]) -> String {
    crate::pki::cert::hex(&Sha256::digest(public_key_der))
}

/// The self-signed certificate a new key signs its PKCSReq with (RFC 8894 §2.3): the CA
/// encrypts its answer to it, which is why only this key can read the issued certificate.
pub fn transient_certificate(subject: &str, signer: Signer<'_>) -> Result<Vec<u8>, PkiError> {
    let name = parse_name(subject)?;
    let public_key = SubjectPublicKeyInfoOwned::from_der(&signer.public_key_der()?)
        .map_err(PkiError::malformed("public key"))?;
    let now = OffsetDateTime::now_utc();
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and no leading zero byte to strip
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(PkiError::encode("serial"))?,
        signature: sha256_with_rsa(),
        issuer: name.clone(),
        validity: Validity {
            not_before: x509_time(now - TRANSIENT_BACKDATE)?,
            not_after: x509_time(now + TRANSIENT_LIFETIME)?,
        },
        subject: name,
        subject_public_key_info: public_key,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let tbs_der = tbs.to_der().map_err(PkiError::encode("certificate"))?;
    let signature = match signer {
        Signer::InMemory(key) => sign_to_bit_string(key, &tbs_der)?,
        Signer::Delegated(key) => sign_to_bit_string(key, &tbs_der)?,
    };
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: sha256_with_rsa(),
        signature,
    }
    .to_der()
    .map_err(PkiError::encode("certificate"))
}

/// CertPoll's content (RFC 8894 §3.3.3): which request we are asking about.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct IssuerAndSubject {
    pub issuer: Name,
    pub subject: Name,
}

pub fn issuer_and_subject(ca_der: &[u8], subject: &str) -> Result<Vec<u8>, PkiError> {
    let ca = Certificate::from_der(ca_der).map_err(PkiError::malformed("CA certificate"))?;
    IssuerAndSubject {
        issuer: ca.tbs_certificate.subject,
        subject: parse_name(subject)?,
    }
    .to_der()
    .map_err(PkiError::encode("CertPoll content"))
}

/// True when `certificate_der` certifies the key `public_key_der`.
pub fn certifies(certificate_der: &[u8], public_key_der: &[u8]) -> bool {
    Certificate::from_der(certificate_der)
        .ok()
        .and_then(|c| c.tbs_certificate.subject_public_key_info.to_der().ok())
        .is_some_and(|spki| same_public_key(&spki, public_key_der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::key::tests::{other_test_key, test_key};
    use crate::pki::token::tests::{rewritten, with_certificates};

    fn request_attributes() -> ScepAttributes {
        ScepAttributes::request(MessageType::PkcsReq, "abc123")
    }

    #[test]
    fn a_signed_message_round_trips_its_attributes_with_either_digest() {
        let key = test_key();
        let cert = transient_certificate("CN=device", Signer::InMemory(key)).unwrap();
        for digest in [MessageDigest::Sha256, MessageDigest::Sha1] {
            let mut attrs = request_attributes();
            attrs.recipient_nonce = Some(vec![7; 16]);
            attrs.pki_status = Some(PkiStatus::Failure);
            attrs.fail_info = Some(FailInfo::BadTime);
            attrs.fail_info_text = Some("clock".into());
            let der = sign_pki_message(
                &attrs,
                Some(b"payload"),
                &cert,
                Signer::InMemory(key),
                digest,
            )
            .unwrap();
            let verified = verify_pki_message(&der, None).unwrap();
            assert_eq!(verified.attributes, attrs);
            assert_eq!(verified.content.as_deref(), Some(&b"payload"[..]));
            assert_eq!(verified.digest, digest);
            assert!(verify_pki_message(&der, Some(std::slice::from_ref(&cert))).is_ok());
        }
    }

    /// A key that, like some hardware keys, signs only with SHA-256.
    struct Sha256Only;

    impl SigningKey for Sha256Only {
        fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
            test_key().public_key_der()
        }
        fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
            test_key().sign_sha256(message)
        }
        fn decrypt_pkcs1v15(
            &self,
            ciphertext: &[u8],
        ) -> Result<zeroize::Zeroizing<Vec<u8>>, PkiError> {
            test_key().decrypt_pkcs1v15(ciphertext)
        }
    }

    #[test]
    fn a_delegated_key_signs_sha1_only_when_it_can() {
        let key = test_key();
        let cert = transient_certificate("CN=device", Signer::Delegated(key)).unwrap();
        assert!(certifies(&cert, &key.public_key_der().unwrap()));
        let attrs = request_attributes();
        let sign =
            |d, k: &dyn SigningKey| sign_pki_message(&attrs, None, &cert, Signer::Delegated(k), d);
        // What is signed verifies against the signer's certificate, with the digest asked for.
        let trusted = std::slice::from_ref(&cert);
        for (digest, signer) in [
            (MessageDigest::Sha256, key as &dyn SigningKey),
            (MessageDigest::Sha1, key),
            (MessageDigest::Sha256, &Sha256Only),
        ] {
            let der = sign(digest, signer).unwrap();
            let verified = verify_pki_message(&der, Some(trusted)).unwrap();
            assert_eq!(verified.digest, digest);
            assert_eq!(verified.attributes, attrs);
            assert_eq!(verified.signer_certificate_der, cert);
        }
        assert!(matches!(
            sign(MessageDigest::Sha1, &Sha256Only),
            Err(PkiError::Signing(_))
        ));
    }

    #[test]
    fn an_untrusted_signer_or_a_forged_signature_is_refused() {
        let key = test_key();
        let cert = transient_certificate("CN=device", Signer::InMemory(key)).unwrap();
        let other = transient_certificate("CN=other", Signer::InMemory(other_test_key())).unwrap();
        let der = sign_pki_message(
            &request_attributes(),
            Some(b"x"),
            &cert,
            Signer::InMemory(key),
            MessageDigest::Sha256,
        )
        .unwrap();
        let err = verify_pki_message(&der, Some(&[other])).unwrap_err();
        assert!(
            err.to_string().contains("not a certificate of this CA"),
            "{err}"
        );

        // The right certificate, the wrong key: the signature cannot verify.
        let forged = sign_pki_message(
            &request_attributes(),
            Some(b"x"),
            &cert,
            Signer::InMemory(other_test_key()),
            MessageDigest::Sha256,
        )
        .unwrap();
        let err = verify_pki_message(&forged, Some(&[cert])).unwrap_err();
        assert!(
            err.to_string().contains("signature does not verify"),
            "{err}"
        );
    }

    #[test]
    fn the_signature_algorithm_must_agree_with_the_digest() {
        // RFC 5652 §10.1.2: rsaEncryption leaves the digest to digestAlgorithm; a
        // `<digest>WithRSAEncryption` name must name the same digest as digestAlgorithm.
        let key = test_key();
        let cert = transient_certificate("CN=device", Signer::InMemory(key)).unwrap();
        let trusted = std::slice::from_ref(&cert);
        let ecdsa_with_sha256 = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
        let cases = [
            (RSA_ENCRYPTION, MessageDigest::Sha256, true),
            (RSA_ENCRYPTION, MessageDigest::Sha1, true),
            (SHA_256_WITH_RSA_ENCRYPTION, MessageDigest::Sha256, true),
            (SHA_1_WITH_RSA_ENCRYPTION, MessageDigest::Sha1, true),
            (SHA_256_WITH_RSA_ENCRYPTION, MessageDigest::Sha1, false),
            (SHA_1_WITH_RSA_ENCRYPTION, MessageDigest::Sha256, false),
            (ecdsa_with_sha256, MessageDigest::Sha256, false),
        ];
        for (algorithm, digest, accepted) in cases {
            let der = sign_pki_message(
                &request_attributes(),
                Some(b"x"),
                &cert,
                Signer::InMemory(key),
                digest,
            )
            .unwrap();
            let der = rewritten(&der, |signed| {
                let mut infos = signed.signer_infos.0.clone().into_vec();
                infos[0].signature_algorithm = AlgorithmIdentifierOwned {
                    oid: algorithm,
                    parameters: Some(Any::null()),
                };
                signed.signer_infos = SignerInfos(SetOfVec::try_from(infos).unwrap());
            });
            let result = verify_pki_message(&der, Some(trusted));
            match (accepted, result) {
                (true, Ok(verified)) => assert_eq!(verified.digest, digest),
                (false, Err(MessageError::Verification(e))) => {
                    assert!(e.contains("is not supported with"), "{e}")
                }
                (_, other) => panic!("{algorithm} with {}: {other:?}", digest.name()),
            }
        }
    }

    /// A request carrying `content`, signed with SHA-256 by a fresh key's transient certificate
    /// for `subject`; the certificate and the message.
    fn signed_request(subject: &str, content: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let key = test_key();
        let cert = transient_certificate(subject, Signer::InMemory(key)).unwrap();
        let der = sign_pki_message(
            &request_attributes(),
            Some(content),
            &cert,
            Signer::InMemory(key),
            MessageDigest::Sha256,
        )
        .unwrap();
        (cert, der)
    }

    #[test]
    fn the_signer_is_found_by_issuer_and_serial_among_other_certificates() {
        let (cert, der) = signed_request("CN=device signer", b"x");

        // Trusted: a certificate of the same issuer name (another serial, another key) first.
        let namesake =
            transient_certificate("CN=device signer", Signer::InMemory(other_test_key())).unwrap();
        let verified = verify_pki_message(&der, Some(&[namesake, cert.clone()])).unwrap();
        assert_eq!(verified.signer_certificate_der, cert);

        // Included: another certificate beside the signer's, and first in the SET OF.
        let other = transient_certificate("CN=o", Signer::InMemory(other_test_key())).unwrap();
        let both = with_certificates(&der, &[&other, &cert]);
        let verified = verify_pki_message(&both, None).unwrap();
        assert_eq!(verified.signer_certificate_der, cert);
    }

    #[test]
    fn content_that_is_not_an_octet_string_is_refused() {
        let (cert, der) = signed_request("CN=device", b"payload");
        // The same bytes, so the signed digest still matches: only the tag is wrong.
        let retagged = rewritten(&der, |signed| {
            signed.encap_content_info.econtent =
                Some(Any::new(Tag::Utf8String, b"payload".to_vec()).unwrap());
        });
        let err = verify_pki_message(&retagged, Some(std::slice::from_ref(&cert))).unwrap_err();
        assert!(
            matches!(&err, MessageError::Malformed(e) if e.contains("not an OCTET STRING")),
            "{err}"
        );
    }

    #[test]
    fn a_single_valued_attribute_sent_twice_or_with_two_values_is_refused() {
        let one = |v: &str| attribute(TRANSACTION_ID, printable(v).unwrap()).unwrap();
        let two_values = Attribute {
            oid: TRANSACTION_ID,
            values: SetOfVec::try_from(vec![printable("a").unwrap(), printable("b").unwrap()])
                .unwrap(),
        };
        let set =
            |attrs: Vec<Attribute>| -> SignedAttributes { SetOfVec::try_from(attrs).unwrap() };

        let alone = set(vec![one("a")]);
        let value = single(&alone, TRANSACTION_ID, "transactionID").unwrap();
        assert_eq!(value.map(|v| v.value()), Some(&b"a"[..]));
        assert!(single(&alone, SENDER_NONCE, "senderNonce")
            .unwrap()
            .is_none());
        for attrs in [vec![two_values], vec![one("a"), one("b")]] {
            let err = single(&set(attrs), TRANSACTION_ID, "transactionID").unwrap_err();
            assert!(
                err.to_string().contains("repeated or multi-valued"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_transient_certificate_is_self_signed_for_a_day_with_a_random_positive_serial() {
        let key = test_key();
        let before = OffsetDateTime::now_utc();
        let mut first_octets = std::collections::BTreeSet::new();
        let mut serials = std::collections::BTreeSet::new();
        for _ in 0..16 {
            let der = transient_certificate("CN=device", Signer::InMemory(key)).unwrap();
            let cert = Certificate::from_der(&der).unwrap();
            // RFC 5280 §4.1.2.2: positive; 16 random octets, none of them a sign-padding zero.
            let serial = cert.tbs_certificate.serial_number.as_bytes().to_vec();
            assert_eq!(serial.len(), 16, "{serial:02x?}");
            assert!((0x01..=0x7f).contains(&serial[0]), "{serial:02x?}");
            first_octets.insert(serial[0]);
            serials.insert(serial);

            let info = crate::pki::CertificateInfo::parse(&der).unwrap();
            assert_eq!(
                (info.subject.as_str(), info.issuer.as_str()),
                ("CN=device", "CN=device")
            );
            // Backdated ten minutes for a CA's clock behind ours, and good for one day.
            let after = OffsetDateTime::now_utc();
            let slack = time::Duration::seconds(1);
            assert!(info.not_before >= before - time::Duration::minutes(10) - slack);
            assert!(info.not_before <= after - time::Duration::minutes(10));
            assert!(info.not_after >= before + time::Duration::days(1) - slack);
            assert!(info.not_after <= after + time::Duration::days(1));
        }
        assert_eq!(serials.len(), 16, "serials repeat");
        // The first octet is random too (2^-90 that sixteen draws from 64 values agree).
        assert!(first_octets.len() > 1, "{first_octets:02x?}");
    }

    #[test]
    fn cert_poll_content_names_the_ca_and_the_subject_asked_for() {
        let ca = transient_certificate("CN=Example SCEP CA", Signer::InMemory(test_key())).unwrap();
        let der = issuer_and_subject(&ca, "CN=device").unwrap();
        let decoded = IssuerAndSubject::from_der(&der).unwrap();
        assert_eq!(decoded.issuer.to_string(), "CN=Example SCEP CA");
        assert_eq!(decoded.subject.to_string(), "CN=device");
        assert!(issuer_and_subject(b"junk", "CN=device").is_err());
    }

    #[test]
    fn fail_info_names_and_explains_each_code() {
        let cases = [
            (FailInfo::BadAlg, "badAlg", "algorithm"),
            (FailInfo::BadMessageCheck, "badMessageCheck", "signature"),
            (FailInfo::BadRequest, "badRequest", "challenge"),
            (FailInfo::BadTime, "badTime", "clock"),
            (FailInfo::BadCertId, "badCertId", "certificate"),
        ];
        for (n, (info, name, word)) in cases.into_iter().enumerate() {
            assert_eq!(FailInfo::from_number(n as u32), info);
            let shown = info.to_string();
            assert!(shown.starts_with(name) && shown.contains(word), "{shown}");
        }
        assert_eq!(FailInfo::from_number(9).name(), "failInfo 9");
    }

    #[test]
    fn transaction_ids_are_hex_sha256_of_the_key() {
        let id = transaction_id(b"key");
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
