//! The PKCS#12 file that carries one identity into NSS: `pk12util` imports keys only this way.
//!
//! The layout is what OpenSSL 3 writes by default and NSS imports: the certificate in a plain
//! data safe, the key in a PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) shrouded key bag, both with
//! the nickname as friendlyName and a shared localKeyId, and an HMAC-SHA256 integrity MAC.
//! The password is random per file and used once; it only ever travels in a 0600 file.

use const_oid::ObjectIdentifier;
use der::asn1::{BmpString, OctetString, SetOfVec};
use der::{Any, Encode};
use hmac::{Hmac, Mac};
use pkcs12::cert_type::CertBag;
use pkcs12::digest_info::DigestInfo;
use pkcs12::kdf::{derive_key_utf8, Pkcs12KeyType};
use pkcs12::mac_data::MacData;
use pkcs12::pfx::{Pfx, Version};
use pkcs12::safe_bag::SafeBag;
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::{Attribute, Attributes};
use zeroize::Zeroizing;

/// PBKDF2 and MAC iterations. The password is 256 random bits used for one import, so the
/// count buys nothing against guessing; 2048 is OpenSSL's default and what NSS expects to see.
const ITERATIONS: u32 = 2048;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");

#[derive(Debug, thiserror::Error)]
#[error("cannot build the PKCS#12 file for NSS: {0}")]
pub struct PfxError(String);

fn err(what: &'static str) -> impl Fn(der::Error) -> PfxError {
    move |e| PfxError(format!("{what}: {e}"))
}

/// A PKCS#12 file and the password that opens it.
pub struct Pfx12 {
    pub der: Vec<u8>,
    pub password: Zeroizing<String>,
}

/// Builds the PKCS#12 for `cert_der` and its PKCS#8 `key_der`, filed under `nickname`.
///
/// `local_key_id` pairs the key with the certificate inside the file; NSS matches them by it.
pub fn build(
    cert_der: &[u8],
    key_der: &Zeroizing<Vec<u8>>,
    nickname: &str,
    local_key_id: &[u8],
) -> Result<Pfx12, PfxError> {
    let password = random_password();
    let attributes = bag_attributes(nickname, local_key_id)?;

    let cert_bag = CertBag {
        cert_id: X509_CERTIFICATE,
        cert_value: OctetString::new(cert_der).map_err(err("certificate"))?,
    };
    let cert_safe = vec![SafeBag {
        bag_id: pkcs12::PKCS_12_CERT_BAG_OID,
        bag_value: cert_bag.to_der().map_err(err("certificate bag"))?,
        bag_attributes: Some(attributes.clone()),
    }];

    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(ITERATIONS, &salt, &iv)
        .map_err(|e| PfxError(format!("key encryption parameters: {e}")))?;
    // pkcs5 encrypts in place, so the buffer holds ciphertext only once it returns.
    let encrypted = params
        .encrypt(password.as_bytes(), key_der)
        .map_err(|e| PfxError(format!("encrypting the key: {e}")))?;
    let shrouded = pkcs8::EncryptedPrivateKeyInfo {
        encryption_algorithm: params.into(),
        encrypted_data: &encrypted,
    };
    let key_safe = vec![SafeBag {
        bag_id: pkcs12::PKCS_12_PKCS8_KEY_BAG_OID,
        bag_value: shrouded.to_der().map_err(err("key bag"))?,
        bag_attributes: Some(attributes),
    }];

    let auth_safe = vec![
        data_content(&cert_safe.to_der().map_err(err("certificate safe"))?)?,
        data_content(&key_safe.to_der().map_err(err("key safe"))?)?,
    ];
    let auth_safe_der = auth_safe.to_der().map_err(err("authenticated safe"))?;
    let mac_data = mac(&auth_safe_der, &password)?;
    let pfx = Pfx {
        version: Version::V3,
        auth_safe: data_content(&auth_safe_der)?,
        mac_data: Some(mac_data),
    };
    Ok(Pfx12 {
        der: pfx.to_der().map_err(err("PFX"))?,
        password,
    })
}

/// 256 random bits as hex: ASCII, so its UTF-8 (PBES2) and BMPString (MAC) forms agree in
/// every implementation.
fn random_password() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(crate::fsutil::hex(bytes.as_ref()))
}

fn bag_attributes(nickname: &str, local_key_id: &[u8]) -> Result<Attributes, PfxError> {
    let name = BmpString::from_utf8(nickname).map_err(err("nickname"))?;
    let id = OctetString::new(local_key_id).map_err(err("local key id"))?;
    let attribute = |oid, value: Any| -> Result<Attribute, PfxError> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value]).map_err(err("attribute"))?,
        })
    };
    let attributes = vec![
        attribute(
            FRIENDLY_NAME,
            Any::encode_from(&name).map_err(err("nickname"))?,
        )?,
        attribute(
            LOCAL_KEY_ID,
            Any::encode_from(&id).map_err(err("local key id"))?,
        )?,
    ];
    SetOfVec::try_from(attributes).map_err(err("attributes"))
}

fn data_content(bytes: &[u8]) -> Result<cms::content_info::ContentInfo, PfxError> {
    let octets = OctetString::new(bytes).map_err(err("content"))?;
    Ok(cms::content_info::ContentInfo {
        content_type: ID_DATA,
        content: Any::encode_from(&octets).map_err(err("content"))?,
    })
}

/// RFC 7292 appendix B key derivation with SHA-256, then HMAC-SHA256 over the authenticated
/// safe's contents (what OpenSSL 3 writes and NSS verifies).
fn mac(auth_safe_der: &[u8], password: &str) -> Result<MacData, PfxError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let iterations = ITERATIONS as i32;
    let key = Zeroizing::new(
        derive_key_utf8::<Sha256>(password, &salt, Pkcs12KeyType::Mac, iterations, 32)
            .map_err(err("MAC key"))?,
    );
    let mut hmac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .map_err(|e| PfxError(format!("MAC key: {e}")))?;
    hmac.update(auth_safe_der);
    let digest = hmac.finalize().into_bytes();
    Ok(MacData {
        mac: DigestInfo {
            algorithm: AlgorithmIdentifierOwned {
                oid: ID_SHA256,
                parameters: Some(Any::null()),
            },
            digest: OctetString::new(digest.as_slice()).map_err(err("MAC"))?,
        },
        mac_salt: OctetString::new(salt.as_slice()).map_err(err("MAC salt"))?,
        iterations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    fn key_der() -> Zeroizing<Vec<u8>> {
        let pem = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pki-fixtures/mtls-ca.key"),
        )
        .unwrap();
        crate::pki::PrivateKey::from_pkcs8_pem(&pem)
            .unwrap()
            .to_pkcs8_der()
            .unwrap()
    }

    fn cert_der() -> Vec<u8> {
        let pem = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pki-fixtures/mtls-ca.pem"),
        )
        .unwrap();
        crate::pki::CertificateInfo::from_pem(&pem).unwrap().der
    }

    /// Reads the file back the way an importer does: MAC first, then each bag.
    #[test]
    fn the_file_verifies_and_carries_the_certificate_and_the_key() {
        let key = key_der();
        let cert = cert_der();
        let built = build(&cert, &key, "devicetrust", &[7u8; 20]).unwrap();
        assert_eq!(built.password.len(), 64);

        let pfx = Pfx::from_der(&built.der).unwrap();
        let auth_safe_der = pfx
            .auth_safe
            .content
            .decode_as::<OctetString>()
            .unwrap()
            .into_bytes();
        let mac_data = pfx.mac_data.unwrap();
        assert_eq!(mac_data.mac.algorithm.oid, ID_SHA256);
        let key_bytes = derive_key_utf8::<Sha256>(
            &built.password,
            mac_data.mac_salt.as_bytes(),
            Pkcs12KeyType::Mac,
            mac_data.iterations,
            32,
        )
        .unwrap();
        let mut hmac = <Hmac<Sha256> as Mac>::new_from_slice(&key_bytes).unwrap();
        hmac.update(&auth_safe_der);
        hmac.verify_slice(mac_data.mac.digest.as_bytes()).unwrap();

        let contents = Vec::<cms::content_info::ContentInfo>::from_der(&auth_safe_der).unwrap();
        assert_eq!(contents.len(), 2);
        let bags = |i: usize| {
            let inner = contents[i]
                .content
                .decode_as::<OctetString>()
                .unwrap()
                .into_bytes();
            Vec::<SafeBag>::from_der(&inner).unwrap()
        };
        let cert_bags = bags(0);
        assert_eq!(cert_bags[0].bag_id, pkcs12::PKCS_12_CERT_BAG_OID);
        // Decoded, a bag's value still carries its [0] EXPLICIT wrapper.
        let unwrap = |bag: &SafeBag| {
            der::AnyRef::from_der(&bag.bag_value)
                .unwrap()
                .value()
                .to_vec()
        };
        let cert_bag = CertBag::from_der(&unwrap(&cert_bags[0])).unwrap();
        assert_eq!(cert_bag.cert_value.as_bytes(), cert.as_slice());

        let key_bags = bags(1);
        assert_eq!(key_bags[0].bag_id, pkcs12::PKCS_12_PKCS8_KEY_BAG_OID);
        let key_bag = unwrap(&key_bags[0]);
        let shrouded = pkcs8::EncryptedPrivateKeyInfo::from_der(&key_bag).unwrap();
        let decrypted = shrouded.decrypt(built.password.as_bytes()).unwrap();
        assert_eq!(decrypted.as_bytes(), key.as_slice());
        // No private part of the key appears in the clear (a window from its middle, past the
        // public modulus, which the certificate carries anyway).
        let private = &key[key.len() / 2..key.len() / 2 + 64];
        assert!(!built.der.windows(64).any(|w| w == private));

        for bag in [&cert_bags[0], &key_bags[0]] {
            let attrs = bag.bag_attributes.as_ref().unwrap();
            let name = attrs.iter().find(|a| a.oid == FRIENDLY_NAME).unwrap();
            let bmp = name
                .values
                .get(0)
                .unwrap()
                .decode_as::<BmpString>()
                .unwrap();
            assert_eq!(bmp.to_string(), "devicetrust");
            let id = attrs.iter().find(|a| a.oid == LOCAL_KEY_ID).unwrap();
            let octets = id
                .values
                .get(0)
                .unwrap()
                .decode_as::<OctetString>()
                .unwrap();
            assert_eq!(octets.as_bytes(), &[7u8; 20]);
        }
    }

    #[test]
    fn each_file_has_its_own_password() {
        let key = key_der();
        let cert = cert_der();
        let a = build(&cert, &key, "n", &[1]).unwrap();
        let b = build(&cert, &key, "n", &[1]).unwrap();
        assert_ne!(*a.password, *b.password);
    }
}
