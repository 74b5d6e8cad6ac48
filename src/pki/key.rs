//! The device's RSA key and the `SigningKey` seam every signature goes through.
//! On macOS the key stays in the keychain, so signers only ever see `&dyn SigningKey`.

use std::fmt;

use const_oid::db::rfc5912::{RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION};
use der::asn1::BitString;
use der::{Any, Encode};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::OsRng;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::PkiError;

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
pub struct PrivateKey(RsaPrivateKey);

impl PrivateKey {
    pub fn generate_rsa(bits: usize) -> Result<Self, PkiError> {
        RsaPrivateKey::new(&mut OsRng, bits)
            .map(PrivateKey)
            .map_err(|e| PkiError::KeyGeneration(e.to_string()))
    }

    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, PkiError> {
        RsaPrivateKey::from_pkcs8_pem(pem)
            .map(PrivateKey)
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))
    }

    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, PkiError> {
        RsaPrivateKey::from_pkcs8_der(der)
            .map(PrivateKey)
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))
    }

    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, PkiError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))
    }

    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        self.0
            .to_pkcs8_der()
            .map(|doc| doc.to_bytes())
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))
    }

    pub fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
        self.0
            .to_public_key()
            .to_public_key_der()
            .map(|doc| doc.into_vec())
            .map_err(|e| PkiError::InvalidPublicKey(e.to_string()))
    }

    pub fn rsa(&self) -> &RsaPrivateKey {
        &self.0
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use rsa::traits::PublicKeyParts;
        write!(f, "PrivateKey(RSA-{}, [redacted])", self.0.n().bits())
    }
}

impl super::NewKey for PrivateKey {
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl SigningKey for PrivateKey {
    fn sign_sha1(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        use sha1::Sha1;
        self.0
            .sign(Pkcs1v15Sign::new::<Sha1>(), &Sha1::digest(message))
            .map_err(|e| PkiError::Signing(e.to_string()))
    }

    fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
        PrivateKey::public_key_der(self)
    }

    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.0
            .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(message))
            .map_err(|e| PkiError::Signing(e.to_string()))
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        // The rsa crate's PKCS#1 v1.5 decryption is constant-time in the padding check, and
        // the error carries no detail an attacker could use as an oracle.
        self.0
            .decrypt(rsa::Pkcs1v15Encrypt, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| PkiError::Decryption)
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
    RsaPublicKey::from_public_key_der(der).map_err(|e| PkiError::InvalidPublicKey(e.to_string()))
}

/// Verifies an RSASSA-PKCS1-v1_5 / SHA-256 signature over `message`.
pub(crate) fn verify_sha256(
    public_key: &RsaPublicKey,
    message: &[u8],
    signature: &[u8],
    what: &'static str,
) -> Result<(), PkiError> {
    public_key
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(message),
            signature,
        )
        .map_err(|_| PkiError::BadSignature(what))
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
        assert_eq!(from_pem.rsa(), key.rsa());
        assert_eq!(from_der.rsa(), key.rsa());
    }

    #[test]
    fn garbage_is_not_a_private_key() {
        let err = PrivateKey::from_pkcs8_der(b"not a key").unwrap_err();
        assert!(matches!(err, PkiError::InvalidPrivateKey(_)));
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
        let ciphertext = public
            .encrypt(&mut OsRng, rsa::Pkcs1v15Encrypt, b"content key")
            .unwrap();
        assert_eq!(
            key.decrypt_pkcs1v15(&ciphertext).unwrap().as_slice(),
            b"content key"
        );
        assert!(matches!(
            other_test_key().decrypt_pkcs1v15(&ciphertext),
            Err(PkiError::Decryption)
        ));
    }
}
