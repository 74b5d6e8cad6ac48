//! CMS EnvelopedData (RFC 5652 §6) as SCEP uses it: content encrypted under a fresh key,
//! which is RSA PKCS#1 v1.5-encrypted to one certificate (key transport).
//!
//! Built from the `cms` crate's types by hand rather than with its `EnvelopedDataBuilder`,
//! because the builder offers only AES (and brings a second RSA library along) and SCEP CAs
//! that lack AES need DES-EDE3-CBC; and
//! `cms` 0.2 has no decryption at all. Opening is lenient in one place on purpose: Go's pkcs7
//! (micromdm, and the SCEP servers built on it) writes the encrypted content as a constructed
//! `[0]` holding an OCTET STRING, which strict DER decoding of `EncryptedContentInfo` refuses.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use const_oid::db::rfc5911::ID_ENVELOPED_DATA;
use const_oid::db::rfc5911::{ID_AES_128_CBC, ID_AES_192_CBC, ID_AES_256_CBC, ID_DATA};
use const_oid::db::rfc5912::RSA_ENCRYPTION;
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, OctetStringRef, SetOfVec};
use der::{Any, AnyRef, Decode, Encode, Reader, Tag, TagNumber, Tagged};
use rand_core::{OsRng, RngCore};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use zeroize::Zeroizing;

use crate::pki::key::rsa_public_key;
use crate::pki::{PkiError, SigningKey};

const DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");

/// The content encryption of a request we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentCipher {
    Aes128Cbc,
    Aes256Cbc,
    Des3Cbc,
}

impl ContentCipher {
    fn oid(self) -> ObjectIdentifier {
        match self {
            ContentCipher::Aes128Cbc => ID_AES_128_CBC,
            ContentCipher::Aes256Cbc => ID_AES_256_CBC,
            ContentCipher::Des3Cbc => DES_EDE3_CBC,
        }
    }

    fn key_and_iv_len(self) -> (usize, usize) {
        match self {
            ContentCipher::Aes128Cbc => (16, 16),
            ContentCipher::Aes256Cbc => (32, 16),
            ContentCipher::Des3Cbc => (24, 8),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ContentCipher::Aes128Cbc => "AES-128-CBC",
            ContentCipher::Aes256Cbc => "AES-256-CBC",
            ContentCipher::Des3Cbc => "DES-EDE3-CBC",
        }
    }
}

/// Why an envelope could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the encrypted content is not a CMS EnvelopedData: {0}")]
    Malformed(String),
    #[error("the content is encrypted with {0}, which is not supported")]
    UnsupportedCipher(String),
    #[error("the content key is wrapped with {0}; only RSA key transport is supported")]
    UnsupportedKeyTransport(String),
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error("the content does not decrypt with the key it was encrypted to")]
    Decrypt,
}

/// Encrypts `content` to `recipient_der`'s RSA key; returns a DER ContentInfo(EnvelopedData).
pub fn seal(
    content: &[u8],
    recipient_der: &[u8],
    cipher: ContentCipher,
) -> Result<Vec<u8>, PkiError> {
    let recipient = Certificate::from_der(recipient_der)
        .map_err(PkiError::malformed("recipient certificate"))?;
    let (key_len, iv_len) = cipher.key_and_iv_len();
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    OsRng.fill_bytes(&mut key);
    let mut iv = vec![0u8; iv_len];
    OsRng.fill_bytes(&mut iv);

    let encrypted = encrypt(cipher, &key, &iv, content)?;
    let public_key = rsa_public_key(&recipient.tbs_certificate.subject_public_key_info)?;
    let wrapped_key = public_key.encrypt_pkcs1v15(&key)?;

    let encode = |e: der::Error| PkiError::Encode {
        what: "enveloped data",
        reason: e.to_string(),
    };
    let recipient_info = RecipientInfo::Ktri(KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: recipient.tbs_certificate.issuer.clone(),
            serial_number: recipient.tbs_certificate.serial_number.clone(),
        }),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        enc_key: OctetString::new(wrapped_key).map_err(encode)?,
    });
    let enveloped = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(SetOfVec::try_from(vec![recipient_info]).map_err(encode)?),
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: cipher.oid(),
                parameters: Some(
                    Any::encode_from(&OctetStringRef::new(&iv).map_err(encode)?).map_err(encode)?,
                ),
            },
            encrypted_content: Some(OctetString::new(encrypted).map_err(encode)?),
        },
        unprotected_attrs: None,
    };
    ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::encode_from(&enveloped).map_err(encode)?,
    }
    .to_der()
    .map_err(encode)
}

fn encrypt(
    cipher: ContentCipher,
    key: &[u8],
    iv: &[u8],
    content: &[u8],
) -> Result<Vec<u8>, PkiError> {
    let bad = |_| PkiError::Encode {
        what: "encrypted content",
        reason: "bad key or IV length".to_owned(),
    };
    Ok(match cipher {
        ContentCipher::Aes128Cbc => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(content),
        ContentCipher::Aes256Cbc => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(content),
        ContentCipher::Des3Cbc => cbc::Encryptor::<des::TdesEde3>::new_from_slices(key, iv)
            .map_err(bad)?
            .encrypt_padded_vec_mut::<Pkcs7>(content),
    })
}

/// The parts of an EnvelopedData needed to open it.
struct Parsed {
    key_transports: Vec<KeyTransRecipientInfo>,
    cipher: AlgorithmIdentifierOwned,
    ciphertext: Vec<u8>,
}

/// Opens a DER ContentInfo(EnvelopedData) with `key`. Returns the content and the name of the
/// cipher the sender chose (the caller warns about weak ones).
pub fn open(
    der: &[u8],
    key: &dyn SigningKey,
) -> Result<(Zeroizing<Vec<u8>>, &'static str), EnvelopeError> {
    let malformed = |e: der::Error| EnvelopeError::Malformed(e.to_string());
    let content_info = ContentInfo::from_der(der).map_err(malformed)?;
    if content_info.content_type != ID_ENVELOPED_DATA {
        return Err(EnvelopeError::Malformed(format!(
            "content type {} is not enveloped-data",
            content_info.content_type
        )));
    }
    let parsed = parse_enveloped(&content_info.content).map_err(malformed)?;

    // A SCEP answer has one recipient (us); try each RSA one rather than trust the identifier,
    // which a CA may spell differently from our certificate (e.g. a re-encoded issuer name).
    let mut content_key = None;
    for ktri in &parsed.key_transports {
        if ktri.key_enc_alg.oid != RSA_ENCRYPTION {
            return Err(EnvelopeError::UnsupportedKeyTransport(
                ktri.key_enc_alg.oid.to_string(),
            ));
        }
        if let Ok(k) = key.decrypt_pkcs1v15(ktri.enc_key.as_bytes()) {
            content_key = Some(k);
            break;
        }
    }
    let content_key = content_key.ok_or(EnvelopeError::Pki(PkiError::Decryption))?;

    let iv = parsed
        .cipher
        .parameters
        .as_ref()
        .ok_or_else(|| EnvelopeError::Malformed("the cipher has no IV".to_owned()))?
        .decode_as::<OctetString>()
        .map_err(malformed)?;
    let (plain, name) = decrypt(
        &parsed.cipher.oid,
        &content_key,
        iv.as_bytes(),
        &parsed.ciphertext,
    )?;
    Ok((plain, name))
}

fn decrypt(
    oid: &ObjectIdentifier,
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, &'static str), EnvelopeError> {
    macro_rules! cbc_decrypt {
        ($cipher:ty, $name:expr) => {
            cbc::Decryptor::<$cipher>::new_from_slices(key, iv)
                .map_err(|_| EnvelopeError::Decrypt)?
                .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
                .map(|plain| (Zeroizing::new(plain), $name))
                .map_err(|_| EnvelopeError::Decrypt)
        };
    }
    match *oid {
        ID_AES_128_CBC => cbc_decrypt!(aes::Aes128, "AES-128-CBC"),
        ID_AES_192_CBC => cbc_decrypt!(aes::Aes192, "AES-192-CBC"),
        ID_AES_256_CBC => cbc_decrypt!(aes::Aes256, "AES-256-CBC"),
        DES_EDE3_CBC => cbc_decrypt!(des::TdesEde3, "DES-EDE3-CBC"),
        // Single DES is the default of Go's pkcs7; the content is our own, public, certificate,
        // so reading it is harmless, and refusing would make such CAs unusable. Warned about.
        DES_CBC => cbc_decrypt!(des::Des, "DES-CBC"),
        other => Err(EnvelopeError::UnsupportedCipher(other.to_string())),
    }
}

/// EnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL, recipientInfos,
/// encryptedContentInfo, unprotectedAttrs [1] OPTIONAL }, decoded leniently (see module doc).
fn parse_enveloped(any: &Any) -> der::Result<Parsed> {
    AnyRef::from(any).sequence(|reader| {
        let _version: CmsVersion = reader.decode()?;
        let mut next: AnyRef<'_> = reader.decode()?;
        if next.tag().is_context_specific() {
            // originatorInfo: certificates we have no use for.
            next = reader.decode()?;
        }
        let recipients: RecipientInfos = next.decode_as()?;
        let key_transports = recipients
            .0
            .into_vec()
            .into_iter()
            .filter_map(|ri| match ri {
                RecipientInfo::Ktri(k) => Some(k),
                _ => None,
            })
            .collect();
        let (cipher, ciphertext) = reader.sequence(|eci| {
            let _content_type: ObjectIdentifier = eci.decode()?;
            let cipher: AlgorithmIdentifierOwned = eci.decode()?;
            let content: AnyRef<'_> = eci.decode()?;
            Ok((cipher, encrypted_content(content)?))
        })?;
        // unprotectedAttrs, if any, are of no interest; skip whatever is left.
        while !reader.is_finished() {
            let _: AnyRef<'_> = reader.decode()?;
        }
        Ok(Parsed {
            key_transports,
            cipher,
            ciphertext,
        })
    })
}

/// `[0] IMPLICIT OCTET STRING`, primitive (DER) or constructed from OCTET STRING segments (BER).
fn encrypted_content(content: AnyRef<'_>) -> der::Result<Vec<u8>> {
    match content.tag() {
        Tag::ContextSpecific {
            number,
            constructed: false,
        } if number == TagNumber::N0 => Ok(content.value().to_vec()),
        Tag::ContextSpecific {
            number,
            constructed: true,
        } if number == TagNumber::N0 => {
            let mut reader = der::SliceReader::new(content.value())?;
            let mut out = Vec::new();
            while !reader.is_finished() {
                let segment: OctetStringRef<'_> = reader.decode()?;
                out.extend_from_slice(segment.as_bytes());
            }
            Ok(out)
        }
        other => Err(der::Error::new(
            der::ErrorKind::TagUnexpected {
                expected: None,
                actual: other,
            },
            der::Length::ZERO,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::tests::test_authority;
    use crate::pki::key::tests::other_test_key;

    #[test]
    fn each_cipher_round_trips_to_the_recipient_key_only() {
        let ca = test_authority();
        for cipher in [
            ContentCipher::Aes128Cbc,
            ContentCipher::Aes256Cbc,
            ContentCipher::Des3Cbc,
        ] {
            let sealed = seal(b"a certificate request", ca.certificate_der(), cipher).unwrap();
            let (plain, name) = open(&sealed, ca.key()).unwrap();
            assert_eq!(plain.as_slice(), b"a certificate request");
            assert_eq!(name, cipher.name());
            assert!(matches!(
                open(&sealed, other_test_key()),
                Err(EnvelopeError::Pki(PkiError::Decryption))
            ));
        }
    }

    /// `sealed` with its encrypted content re-spelled under the context tag `[number]`:
    /// constructed, as Go's pkcs7 writes it (`[n] { OCTET STRING }`), or primitive.
    fn respelled(sealed: &[u8], number: TagNumber, constructed: bool) -> Vec<u8> {
        let info = ContentInfo::from_der(sealed).unwrap();
        let env: EnvelopedData = info.content.decode_as().unwrap();
        let ciphertext = env
            .encrypted_content
            .encrypted_content
            .clone()
            .unwrap()
            .into_bytes();
        let value = if constructed {
            OctetString::new(ciphertext).unwrap().to_der().unwrap()
        } else {
            ciphertext
        };
        let mut eci = Vec::new();
        eci.extend(env.encrypted_content.content_type.to_der().unwrap());
        eci.extend(env.encrypted_content.content_enc_alg.to_der().unwrap());
        let tag = Tag::ContextSpecific {
            constructed,
            number,
        };
        eci.extend(
            der::Header::new(tag, value.len())
                .unwrap()
                .to_der()
                .unwrap(),
        );
        eci.extend(value);
        let mut body = Vec::new();
        body.extend(env.version.to_der().unwrap());
        body.extend(env.recip_infos.to_der().unwrap());
        body.extend(Any::new(Tag::Sequence, eci).unwrap().to_der().unwrap());
        ContentInfo {
            content_type: ID_ENVELOPED_DATA,
            content: Any::new(Tag::Sequence, body).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    #[test]
    fn go_pkcs7_constructed_encrypted_content_is_accepted() {
        let ca = test_authority();
        let sealed = seal(
            b"issued certificate",
            ca.certificate_der(),
            ContentCipher::Aes128Cbc,
        )
        .unwrap();
        let go_style = respelled(&sealed, TagNumber::N0, true);
        // The strict decoder refuses it; ours opens it.
        let strict_attempt: Result<EnvelopedData, _> = ContentInfo::from_der(&go_style)
            .unwrap()
            .content
            .decode_as();
        assert!(strict_attempt.is_err());
        let (plain, _) = open(&go_style, ca.key()).unwrap();
        assert_eq!(plain.as_slice(), b"issued certificate");
        // Re-spelled primitive, as it was, it still opens: the helper changes only the tag.
        let (plain, _) = open(&respelled(&sealed, TagNumber::N0, false), ca.key()).unwrap();
        assert_eq!(plain.as_slice(), b"issued certificate");
    }

    #[test]
    fn encrypted_content_under_any_tag_but_zero_is_refused() {
        // encryptedContent is `[0] IMPLICIT`; under another tag the bytes are something else,
        // and decrypting them anyway would hand a stranger's field to the CBC decryptor.
        let ca = test_authority();
        let sealed = seal(b"issued", ca.certificate_der(), ContentCipher::Aes128Cbc).unwrap();
        for constructed in [true, false] {
            let other = respelled(&sealed, TagNumber::N1, constructed);
            assert!(
                matches!(open(&other, ca.key()), Err(EnvelopeError::Malformed(_))),
                "[1] constructed={constructed} was opened"
            );
        }
    }

    #[test]
    fn garbage_and_other_content_types_are_refused() {
        let ca = test_authority();
        assert!(matches!(
            open(b"junk", ca.key()),
            Err(EnvelopeError::Malformed(_))
        ));
        let not_enveloped = ContentInfo {
            content_type: ID_DATA,
            content: Any::new(Tag::OctetString, b"x".to_vec()).unwrap(),
        }
        .to_der()
        .unwrap();
        assert!(matches!(
            open(&not_enveloped, ca.key()),
            Err(EnvelopeError::Malformed(_))
        ));
    }
}
