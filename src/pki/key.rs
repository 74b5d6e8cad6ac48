//! The device's RSA key and the `SigningKey` seam every signature goes through.
//! On macOS the key stays in the keychain, so signers only ever see `&dyn SigningKey`.

use std::fmt;
use std::os::raw::c_uint;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::signature::{KeyPair as _, RsaParameters, UnparsedPublicKey};
use const_oid::db::rfc5912::{RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION};
use der::asn1::BitString;
use der::pem::LineEnding;
use der::{Any, Decode, Encode};
use pkcs8::SecretDocument;
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::PkiError;

const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";

/// Something that can produce RSASSA-PKCS1-v1_5 / SHA-256 signatures for one public key.
pub trait SigningKey {
    /// The key's SubjectPublicKeyInfo, DER.
    fn public_key_der(&self) -> Result<Vec<u8>, PkiError>;
    /// Signs `message` (the implementation hashes it with SHA-256).
    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PkiError>;
    /// Decrypts an RSAES-PKCS1-v1_5 `ciphertext` made for this key: the key transport of a CMS
    /// EnvelopedData, which is how a SCEP CA returns the certificate it issued (the keychain
    /// implements it with `SecKeyCreateDecryptedData`).
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError>;
    /// Signs `message` with SHA-1, for SCEP CAs that offer nothing better. Keys that cannot
    /// refuse, and the SCEP client then says the CA needs an upgrade.
    fn sign_sha1(&self, _message: &[u8]) -> Result<Vec<u8>, PkiError> {
        Err(PkiError::Signing(
            "this key signs only with SHA-256".to_owned(),
        ))
    }
}

/// An RSA private key held in memory (the simulator, tests, and platforms without a keychain).
pub struct PrivateKey(KeyPair);

impl PrivateKey {
    /// A new key of 2048, 3072 or 4096 bits: the sizes Okta and SCEP profiles ask for.
    pub fn generate_rsa(bits: usize) -> Result<Self, PkiError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => {
                return Err(PkiError::KeyGeneration(format!(
                    "{bits}-bit keys are not offered; use 2048, 3072 or 4096"
                )))
            }
        };
        KeyPair::generate(size)
            .map(PrivateKey)
            .map_err(|_| PkiError::KeyGeneration("aws-lc could not generate the key".to_owned()))
    }

    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PkiError> {
        let (label, der) = SecretDocument::from_pem(pem)
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))?;
        if label != PKCS8_PEM_LABEL {
            return Err(PkiError::InvalidPrivateKey(format!(
                "PEM label {label:?}, not {PKCS8_PEM_LABEL:?}"
            )));
        }
        Self::from_pkcs8_der(der.as_bytes())
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, PkiError> {
        KeyPair::from_pkcs8(der)
            .map(PrivateKey)
            .map_err(|e| PkiError::InvalidPrivateKey(rejected(&e)))
    }

    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, PkiError> {
        let der = self.to_pkcs8_der()?;
        SecretDocument::try_from(der.as_slice())
            .and_then(|doc| doc.to_pem(PKCS8_PEM_LABEL, LineEnding::LF))
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))
    }

    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        // aws-lc's buffer zeroes itself on drop; the copy is ours to zero.
        self.0
            .as_der()
            .map(|der| Zeroizing::new(der.as_ref().to_vec()))
            .map_err(|_| PkiError::InvalidPrivateKey("aws-lc could not encode it".to_owned()))
    }

    pub fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
        AsDer::<PublicKeyX509Der>::as_der(self.0.public_key())
            .map(|der| der.as_ref().to_vec())
            .map_err(|_| PkiError::InvalidPublicKey("aws-lc could not encode it".to_owned()))
    }

    /// RSASSA-PKCS1-v1_5 with SHA-1, for a SCEP CA that offers nothing newer (RFC 8894's
    /// baseline). aws-lc-rs signs with SHA-2 only, so this one call goes to aws-lc directly.
    pub(crate) fn sign_sha1_legacy(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let refused = || PkiError::Signing("aws-lc refused the SHA-1 signature".to_owned());
        let pkcs8 = self.to_pkcs8_der()?;
        let info = pkcs8::PrivateKeyInfo::from_der(&pkcs8)
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))?;
        let pkcs1 = info.private_key;
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, message);
        let digest = digest.as_ref();
        let mut signature = vec![0u8; self.0.public_modulus_len()];
        let mut written: c_uint = 0;
        // SAFETY: `pkcs1` is a live slice for the parse, which copies what it keeps; a non-NULL
        // RSA is used by one thread and freed exactly once (RSA_free also clears the private
        // values). RSA_sign writes at most RSA_size bytes, checked against `signature` first.
        let status = unsafe {
            let rsa = aws_lc_sys::RSA_private_key_from_bytes(pkcs1.as_ptr(), pkcs1.len());
            if rsa.is_null() {
                return Err(refused());
            }
            let status = if (aws_lc_sys::RSA_size(rsa) as usize) == signature.len() {
                aws_lc_sys::RSA_sign(
                    aws_lc_sys::NID_sha1,
                    digest.as_ptr(),
                    digest.len(),
                    signature.as_mut_ptr(),
                    &mut written,
                    rsa,
                )
            } else {
                0
            };
            aws_lc_sys::RSA_free(rsa);
            status
        };
        if status != 1 || written as usize != signature.len() {
            return Err(refused());
        }
        Ok(signature)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey(RSA-{}, [redacted])",
            self.0.public_modulus_len() * 8
        )
    }
}

impl super::NewKey for PrivateKey {
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl SigningKey for PrivateKey {
    fn sign_sha1(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.sign_sha1_legacy(message)
    }

    fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
        PrivateKey::public_key_der(self)
    }

    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let mut signature = vec![0u8; self.0.public_modulus_len()];
        self.0
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| PkiError::Signing("aws-lc refused to sign".to_owned()))?;
        Ok(signature)
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        // Every failure is the same bare error: a padding oracle needs detail to work with.
        // The decrypting key is made on demand because answers are rare and signing is not.
        let pkcs8 = self.to_pkcs8_der().map_err(|_| PkiError::Decryption)?;
        let key = PrivateDecryptingKey::from_pkcs8(&pkcs8)
            .ok()
            .and_then(|k| Pkcs1PrivateDecryptingKey::new(k).ok())
            .ok_or(PkiError::Decryption)?;
        let mut plaintext = Zeroizing::new(vec![0u8; key.min_output_size()]);
        let len = key
            .decrypt(ciphertext, &mut plaintext)
            .map_err(|_| PkiError::Decryption)?
            .len();
        plaintext.truncate(len);
        Ok(plaintext)
    }
}

/// aws-lc's reasons are terse identifiers; the ones a user can act on get words.
fn rejected(e: &KeyRejected) -> String {
    match e.description_() {
        "TooSmall" => "the RSA key is smaller than 2048 bits".to_owned(),
        "TooLarge" => "the RSA key is larger than 8192 bits".to_owned(),
        "InvalidEncoding" => "not DER of an RSA key".to_owned(),
        other => format!("aws-lc rejected it ({other})"),
    }
}

/// An RSA public key (2048 to 8192 bits) as aws-lc read it, with its SubjectPublicKeyInfo
/// re-encoded by aws-lc: one spelling per key, so equal keys compare equal however they arrived.
pub(crate) struct RsaPublicKey {
    key: PublicEncryptingKey,
    spki_der: Vec<u8>,
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl RsaPublicKey {
    /// The modulus size, which the simulator checks as Okta does.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn bits(&self) -> usize {
        self.key.key_size_bits()
    }

    /// Verifies a signature over `message` with `algorithm`'s hash and padding.
    pub(crate) fn verifies(
        &self,
        algorithm: &'static RsaParameters,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        UnparsedPublicKey::new(algorithm, &self.spki_der)
            .verify(message, signature)
            .is_ok()
    }

    /// RSAES-PKCS1-v1_5 encryption: the key transport SCEP requests use for their content key.
    pub(crate) fn encrypt_pkcs1v15(&self, plaintext: &[u8]) -> Result<Vec<u8>, PkiError> {
        let failed = |what: &str| PkiError::Encode {
            what: "content key",
            reason: format!("aws-lc could not {what}"),
        };
        let key = Pkcs1PublicEncryptingKey::new(self.key.clone())
            .map_err(|_| failed("use the recipient's key"))?;
        let mut ciphertext = vec![0u8; key.ciphertext_size()];
        let len = key
            .encrypt(plaintext, &mut ciphertext)
            .map_err(|_| failed("encrypt it"))?
            .len();
        ciphertext.truncate(len);
        Ok(ciphertext)
    }
}

/// sha256WithRSAEncryption with the explicit NULL parameters RFC 4055 asks for (and openssl emits).
pub(crate) fn sha256_with_rsa() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: SHA_256_WITH_RSA_ENCRYPTION,
        parameters: Some(Any::null()),
    }
}

/// RSA parameters must be NULL or absent; anything else means some other scheme (e.g. PSS).
fn params_null_or_absent(alg: &AlgorithmIdentifierOwned) -> bool {
    alg.parameters.as_ref().is_none_or(|p| p.is_null())
}

pub(crate) fn require_sha256_with_rsa(
    alg: &AlgorithmIdentifierOwned,
    what: &'static str,
) -> Result<(), PkiError> {
    require_one_of(alg, &[SHA_256_WITH_RSA_ENCRYPTION], what)
}

/// CMS signers may name plain rsaEncryption and let the digest algorithm pick the hash.
pub(crate) fn require_rsa_pkcs1_sha256(
    alg: &AlgorithmIdentifierOwned,
    what: &'static str,
) -> Result<(), PkiError> {
    require_one_of(alg, &[SHA_256_WITH_RSA_ENCRYPTION, RSA_ENCRYPTION], what)
}

fn require_one_of(
    alg: &AlgorithmIdentifierOwned,
    accepted: &[ObjectIdentifier],
    what: &'static str,
) -> Result<(), PkiError> {
    if accepted.contains(&alg.oid) && params_null_or_absent(alg) {
        Ok(())
    } else {
        Err(PkiError::UnsupportedSignatureAlgorithm {
            what,
            oid: alg.oid.to_string(),
        })
    }
}

/// Signs with the trait and wraps the result the way X.509 and PKCS#10 carry signatures.
pub(crate) fn sign_to_bit_string(
    key: &dyn SigningKey,
    message: &[u8],
) -> Result<BitString, PkiError> {
    let signature = key.sign_sha256(message)?;
    BitString::from_bytes(&signature).map_err(PkiError::encode("signature"))
}

pub(crate) fn rsa_public_key(spki: &SubjectPublicKeyInfoOwned) -> Result<RsaPublicKey, PkiError> {
    let der = spki
        .to_der()
        .map_err(|e| PkiError::InvalidPublicKey(e.to_string()))?;
    rsa_public_key_from_der(&der)
}

pub(crate) fn rsa_public_key_from_der(der: &[u8]) -> Result<RsaPublicKey, PkiError> {
    // aws-lc would also take an RSA-PSS key here; only rsaEncryption keys sign PKCS#1 v1.5.
    let spki = SubjectPublicKeyInfoOwned::from_der(der)
        .map_err(|e| PkiError::InvalidPublicKey(e.to_string()))?;
    if spki.algorithm.oid != RSA_ENCRYPTION || !params_null_or_absent(&spki.algorithm) {
        return Err(PkiError::InvalidPublicKey(format!(
            "algorithm {}, not rsaEncryption",
            spki.algorithm.oid
        )));
    }
    // aws-lc insists on the NULL parameters RFC 3279 asks for; some encoders omit them.
    let with_null = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        subject_public_key: spki.subject_public_key,
    }
    .to_der()
    .map_err(|e| PkiError::InvalidPublicKey(e.to_string()))?;
    let key = PublicEncryptingKey::from_der(&with_null)
        .map_err(|e| PkiError::InvalidPublicKey(rejected(&e)))?;
    let spki_der = AsDer::<PublicKeyX509Der>::as_der(&key)
        .map(|der| der.as_ref().to_vec())
        .map_err(|_| PkiError::InvalidPublicKey("aws-lc could not encode it".to_owned()))?;
    Ok(RsaPublicKey { key, spki_der })
}

/// Verifies an RSASSA-PKCS1-v1_5 / SHA-256 signature over `message`.
pub(crate) fn verify_sha256(
    public_key: &RsaPublicKey,
    message: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), PkiError> {
    if public_key.verifies(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        message,
        signature,
    ) {
        Ok(())
    } else {
        Err(PkiError::BadSignature(what))
    }
}

/// X.509 and PKCS#10 signatures are BIT STRINGs that must be whole bytes.
pub(crate) fn signature_bytes<'a>(
    bits: &'a BitString,
    what: &'static str,
) -> Result<&'a [u8], PkiError> {
    bits.as_bytes().ok_or(PkiError::BadSignature(what))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One key for the whole test binary: generation dominates test time on 2 cores.
    pub(crate) fn test_key() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate_rsa(2048).unwrap())
    }

    /// A second, different key, for "wrong key" cases.
    pub(crate) fn other_test_key() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate_rsa(2048).unwrap())
    }

    #[test]
    fn pkcs8_pem_and_der_round_trip_to_the_same_key() {
        let key = test_key();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let from_pem = PrivateKey::from_pkcs8_pem(&pem).unwrap();
        let from_der = PrivateKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
        for copy in [from_pem, from_der] {
            assert_eq!(copy.to_pkcs8_der().unwrap(), key.to_pkcs8_der().unwrap());
            assert_eq!(
                copy.public_key_der().unwrap(),
                key.public_key_der().unwrap()
            );
        }
    }

    #[test]
    fn pem_of_another_kind_is_not_a_pkcs8_key() {
        let pem = key_pem_with_label("RSA PRIVATE KEY");
        let err = PrivateKey::from_pkcs8_pem(&pem).unwrap_err();
        assert!(err.to_string().contains("RSA PRIVATE KEY"), "{err}");
    }

    fn key_pem_with_label(label: &str) -> String {
        test_key()
            .to_pkcs8_pem()
            .unwrap()
            .replace("PRIVATE KEY", label)
    }

    #[test]
    fn keys_come_in_the_three_offered_sizes_and_no_other() {
        for bits in [3072, 4096] {
            let key = PrivateKey::generate_rsa(bits).unwrap();
            assert_eq!(
                format!("{key:?}"),
                format!("PrivateKey(RSA-{bits}, [redacted])")
            );
            let public = rsa_public_key_from_der(&key.public_key_der().unwrap()).unwrap();
            assert_eq!(public.bits(), bits);
        }
        for bits in [1024, 2047, 8192] {
            assert!(matches!(
                PrivateKey::generate_rsa(bits),
                Err(PkiError::KeyGeneration(_))
            ));
        }
    }

    #[test]
    fn garbage_is_not_a_private_key() {
        let err = PrivateKey::from_pkcs8_der(b"not a key").unwrap_err();
        assert!(matches!(err, PkiError::InvalidPrivateKey(_)));
        // aws-lc's terse reason, put in words an admin can act on.
        assert!(err.to_string().contains("not DER of an RSA key"), "{err}");
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let key = test_key();
        let shown = format!("{key:?}");
        assert_eq!(shown, "PrivateKey(RSA-2048, [redacted])");
    }

    #[test]
    fn signatures_verify_with_the_public_key_and_only_for_the_message() {
        let key = test_key();
        let signature = key.sign_sha256(b"hello").unwrap();
        let public = rsa_public_key_from_der(&key.public_key_der().unwrap()).unwrap();
        verify_sha256(&public, b"hello", &signature, "test").unwrap();
        assert!(matches!(
            verify_sha256(&public, b"hellO", &signature, "test"),
            Err(PkiError::BadSignature("test"))
        ));
    }

    #[test]
    fn pkcs1v15_decryption_recovers_what_the_public_key_encrypted() {
        let key = test_key();
        let public = rsa_public_key_from_der(&key.public_key_der().unwrap()).unwrap();
        let ciphertext = public.encrypt_pkcs1v15(b"content key").unwrap();
        assert_eq!(ciphertext.len(), 256);
        assert_eq!(
            key.decrypt_pkcs1v15(&ciphertext).unwrap().as_slice(),
            b"content key"
        );
        assert!(matches!(
            other_test_key().decrypt_pkcs1v15(&ciphertext),
            Err(PkiError::Decryption)
        ));
    }

    #[test]
    fn decryption_failures_all_look_the_same() {
        let key = test_key();
        for ciphertext in [
            &[][..],
            &[0u8; 255][..],
            &[0u8; 256][..],
            &[0xffu8; 256][..],
        ] {
            assert!(matches!(
                key.decrypt_pkcs1v15(ciphertext),
                Err(PkiError::Decryption)
            ));
        }
    }

    #[test]
    fn sha1_legacy_signatures_verify_as_sha1_and_not_as_sha256() {
        let key = test_key();
        let signature = key.sign_sha1_legacy(b"hello").unwrap();
        let public = rsa_public_key_from_der(&key.public_key_der().unwrap()).unwrap();
        let sha1 = &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY;
        assert!(public.verifies(sha1, b"hello", &signature));
        assert!(!public.verifies(sha1, b"hellO", &signature));
        assert!(verify_sha256(&public, b"hello", &signature, "test").is_err());
    }

    #[test]
    fn public_keys_compare_by_value_and_must_be_rsa_encryption() {
        let der = test_key().public_key_der().unwrap();
        let mut spki = SubjectPublicKeyInfoOwned::from_der(&der).unwrap();
        spki.algorithm.parameters = None;
        let without_null = spki.to_der().unwrap();
        assert_ne!(without_null, der);
        assert!(rsa_public_key_from_der(&without_null).unwrap() == rsa_public_key(&spki).unwrap());
        assert!(rsa_public_key_from_der(&der).unwrap() == rsa_public_key(&spki).unwrap());
        let other = other_test_key().public_key_der().unwrap();
        assert!(rsa_public_key_from_der(&der).unwrap() != rsa_public_key_from_der(&other).unwrap());

        spki.algorithm.oid = const_oid::db::rfc5912::ID_RSASSA_PSS;
        let err = rsa_public_key(&spki).err().unwrap();
        assert!(err.to_string().contains("not rsaEncryption"), "{err}");
        assert!(rsa_public_key_from_der(b"garbage").is_err());
    }

    #[test]
    fn signature_algorithms_are_rsa_pkcs1_with_null_or_absent_parameters_only() {
        use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_RSASSA_PSS};
        let alg = |oid, parameters| AlgorithmIdentifierOwned { oid, parameters };
        let null = Some(Any::null());
        for ok in [
            alg(SHA_256_WITH_RSA_ENCRYPTION, null.clone()),
            alg(SHA_256_WITH_RSA_ENCRYPTION, None),
            alg(RSA_ENCRYPTION, null.clone()),
        ] {
            require_rsa_pkcs1_sha256(&ok, "the token").unwrap();
        }
        // Parameters other than NULL mean another scheme (PSS carries its own).
        let pss_like = Some(Any::new(der::Tag::Sequence, Vec::new()).unwrap());
        for refused in [
            alg(SHA_256_WITH_RSA_ENCRYPTION, pss_like),
            alg(ID_RSASSA_PSS, None),
            alg(ECDSA_WITH_SHA_256, None),
        ] {
            assert!(matches!(
                require_rsa_pkcs1_sha256(&refused, "the token"),
                Err(PkiError::UnsupportedSignatureAlgorithm { .. })
            ));
        }
    }
}
