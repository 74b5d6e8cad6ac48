//! The device key inside okta.keychain: generated there as `keychain_items` specifies, checked,
//! and used only through Security, which signs and decrypts without ever handing it out.

use super::ffi::{self, Sym};
use super::{KeychainStore, ERR_SEC_ITEM_NOT_FOUND};
use crate::pki::{NewKey, PkiError, SigningKey};
use crate::store::keychain_items::{self as items, Attr};
use crate::store::keychain_model as model;
use crate::store::StoreError;
use core_foundation::base::TCFType;
use core_foundation::boolean::CFBoolean;
use security_framework::item::{ItemClass, ItemSearchOptions, Limit, Reference, SearchResult};
use security_framework::key::{Algorithm, SecKey};
use security_framework::os::macos::keychain::SecKeychain;
use std::any::Any;
use zeroize::Zeroizing;

/// A private key in okta.keychain.
pub(crate) struct KeychainKey(SecKey);

impl KeychainKey {
    pub(super) fn new(key: SecKey) -> Self {
        KeychainKey(key)
    }

    pub(super) fn sec_key(&self) -> &SecKey {
        &self.0
    }

    /// The public key as PKCS#1 (SecKeyCopyPublicKey + SecKeyCopyExternalRepresentation).
    pub(super) fn public_pkcs1(&self) -> Result<Vec<u8>, PkiError> {
        let public = self.0.public_key().ok_or_else(|| {
            PkiError::InvalidPublicKey("the keychain key has no public key".to_owned())
        })?;
        let data = public.external_representation().ok_or_else(|| {
            PkiError::InvalidPublicKey("Security did not export the public key".to_owned())
        })?;
        Ok(data.to_vec())
    }

    /// A boolean attribute as Security reports it (SecKeyCopyAttributes); recognised by
    /// identity with the kCFBooleanTrue/False singletons Security puts there.
    pub(super) fn bool_attribute(&self, attr: Attr) -> Option<bool> {
        let attributes = self.0.attributes();
        let name = ffi::sym(Sym::Attr(attr));
        let value = *attributes.find(name.as_CFTypeRef())?;
        if value == CFBoolean::true_value().as_CFTypeRef() {
            Some(true)
        } else if value == CFBoolean::false_value().as_CFTypeRef() {
            Some(false)
        } else {
            None
        }
    }
}

impl SigningKey for KeychainKey {
    /// Wrapped as the SubjectPublicKeyInfo the certificate carries.
    fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
        model::rsa_pkcs1_to_spki(&self.public_pkcs1()?)
    }

    /// RSASignatureMessagePKCS1v15SHA256: Security hashes the message.
    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.0
            .create_signature(Algorithm::RSASignatureMessagePKCS1v15SHA256, message)
            .map_err(|e| PkiError::Signing(e.description().to_string()))
    }

    /// RSASignatureMessagePKCS1v15SHA1, for SCEP CAs that offer nothing better.
    fn sign_sha1(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.0
            .create_signature(Algorithm::RSASignatureMessagePKCS1v15SHA1, message)
            .map_err(|e| PkiError::Signing(e.description().to_string()))
    }

    /// RSAEncryptionPKCS1; the error detail is dropped so it cannot serve as a padding oracle.
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        self.0
            .decrypt_data(Algorithm::RSAEncryptionPKCS1, ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| PkiError::Decryption)
    }
}

impl NewKey for KeychainKey {
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl KeychainStore {
    /// SecKeyCreateRandomKey with the attributes of `keychain_items::key_attributes`; the key
    /// is used only once Security confirms it is not extractable, in okta.keychain and of the
    /// size.
    pub(super) fn generate(
        &self,
        keychain: &SecKeychain,
        bits: u32,
    ) -> Result<KeychainKey, StoreError> {
        let action = "generating the key in okta.keychain";
        let attributes = items::key_attributes(bits)
            .map_err(|e| StoreError::KeyGeneration(PkiError::KeyGeneration(e.to_string())))?;
        let parameters = self.dictionary(&attributes, Some(keychain))?;
        // The crate's GenerateKeyOptions has neither kSecAttrIsExtractable nor kSecAttrAccess;
        // its dictionary form takes ours.
        #[allow(deprecated)]
        let key = SecKey::generate(parameters).map_err(|e| self.err(action, e.description()))?;
        let key = KeychainKey::new(key);
        let label = key.0.application_label();
        let facts = items::GeneratedKey {
            extractable: key.bool_attribute(Attr::IsExtractable),
            in_okta_keychain: label.is_some()
                && self
                    .labelled_keys(keychain)?
                    .iter()
                    .any(|(l, _)| *l == label),
            modulus_bits: key
                .public_pkcs1()
                .ok()
                .and_then(|p| model::rsa_modulus_bits(&p).ok()),
        };
        if let Err(problem) = items::check_generated_key(&facts, bits) {
            // Both halves carry our label and belong to no identity: the sweep takes them.
            if let Err(e) = self.sweep_orphaned_keys(keychain) {
                tracing::warn!("the refused key could not be deleted: {e}");
            }
            return Err(self.err(action, problem));
        }
        Ok(key)
    }

    /// Deletes keys labelled ours that belong to no identity in okta.keychain: what a run that
    /// generated a key but never stored its certificate left behind.
    pub(super) fn sweep_orphaned_keys(&self, keychain: &SecKeychain) -> Result<(), StoreError> {
        let identity_keys: Vec<Vec<u8>> = self
            .view
            .identities(keychain)?
            .iter()
            .filter_map(|f| f.key_label())
            .collect();
        let labelled = self.labelled_keys(keychain)?;
        for key in items::orphaned_keys(labelled, &identity_keys) {
            match key.delete() {
                Ok(()) => tracing::debug!("deleted a key no certificate was stored for"),
                Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => {}
                Err(e) => return Err(self.sec("deleting an unused key", e)),
            }
        }
        Ok(())
    }

    /// The keys (private and public halves) in okta.keychain labelled [`items::KEY_LABEL`],
    /// each with its application label.
    fn labelled_keys(
        &self,
        keychain: &SecKeychain,
    ) -> Result<Vec<(Option<Vec<u8>>, SecKey)>, StoreError> {
        let found = ItemSearchOptions::new()
            .class(ItemClass::key())
            .keychains(std::slice::from_ref(keychain))
            .label(items::KEY_LABEL)
            .load_refs(true)
            .limit(Limit::All)
            .search();
        let found = match found {
            Ok(found) => found,
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => return Ok(Vec::new()),
            Err(e) => return Err(self.sec("looking for the agent's keys in okta.keychain", e)),
        };
        Ok(found
            .into_iter()
            .filter_map(|r| match r {
                SearchResult::Ref(Reference::Key(key)) => Some((key.application_label(), key)),
                _ => None,
            })
            .collect())
    }
}
