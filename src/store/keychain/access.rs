//! The keychain store's access lists and request dictionaries: an access built as
//! `keychain_items` specifies, its attributes as the CFDictionary Security takes, and the key's
//! partition list read and written the way `security set-key-partition-list` does.

use super::{ffi, KeychainKey, KeychainStore};
use crate::partition::Partition;
use crate::secret::Secret;
use crate::store::keychain_items::{self as items, AccessSpec, Attr, Keychain, Value};
use crate::store::keychain_model as model;
use crate::store::StoreError;
use core_foundation::base::{CFType, TCFType};
use core_foundation::boolean::CFBoolean;
use core_foundation::data::CFData;
use core_foundation::dictionary::CFDictionary;
use core_foundation::number::CFNumber;
use core_foundation::string::CFString;
use ffi::Sym;
use security_framework::os::macos::access::SecAccess;
use security_framework::os::macos::keychain::SecKeychain;

impl KeychainStore {
    /// An access built as `spec` says: SecAccessCreate, then each entry authorizing
    /// `spec.open_entries_authorizing` gets a NULL application list (any app) and loses the
    /// passphrase requirement, as `security import -A` does.
    pub(super) fn access(&self, spec: &AccessSpec) -> Result<SecAccess, StoreError> {
        let action = "building an access list";
        let access = ffi::create_access(spec.descriptor).map_err(|s| self.status(action, s))?;
        let entries = ffi::acl_entries(&access, spec.open_entries_authorizing)
            .map_err(|s| self.status(action, s))?;
        if entries.is_empty() {
            return Err(self.err(action, "Security's standard access has no decrypt entry"));
        }
        for (acl, contents) in entries {
            let opened = ffi::AclContents {
                applications: match spec.applications {
                    // NULL: every application passes the entry.
                    items::Applications::Any => None,
                },
                description: contents.description,
                prompt: items::opened_prompt(spec, contents.prompt),
            };
            ffi::set_acl_contents(&acl, &opened).map_err(|s| self.status(action, s))?;
        }
        Ok(access)
    }

    /// The attributes `keychain_items` decided, as the CFDictionary Security takes; the
    /// keychain and the access they name are supplied here.
    pub(super) fn dictionary(
        &self,
        attributes: &[(Attr, Value)],
        okta: Option<&SecKeychain>,
    ) -> Result<CFDictionary, StoreError> {
        let mut pairs: Vec<(CFString, CFType)> = Vec::with_capacity(attributes.len());
        for (attr, value) in attributes {
            let value = match value {
                Value::Rsa => ffi::sym(Sym::KeyTypeRsa).into_CFType(),
                Value::Number(n) => {
                    let n = i32::try_from(*n)
                        .map_err(|_| self.err("building a key request", "number out of range"))?;
                    CFNumber::from(n).into_CFType()
                }
                Value::Bool(b) => CFBoolean::from(*b).into_CFType(),
                Value::Text(text) => CFString::new(text).into_CFType(),
                Value::Bytes(bytes) => CFData::from_buffer(bytes).into_CFType(),
                Value::Keychain(Keychain::Okta) => okta
                    .ok_or_else(|| self.err("building a request", "okta.keychain is not open"))?
                    .clone()
                    .into_CFType(),
                Value::Access(spec) => self.access(spec)?.into_CFType(),
            };
            pairs.push((ffi::sym(Sym::Attr(*attr)), value));
        }
        Ok(CFDictionary::from_CFType_pairs(&pairs).to_untyped())
    }

    /// The live identity's private key and the keychain password, for its ACL.
    fn live_key(&self) -> Result<Option<(KeychainKey, Secret)>, StoreError> {
        let Some((keychain, Some(password))) = self.existing()? else {
            return Ok(None);
        };
        let Some(chosen) = self.chosen(&keychain)? else {
            return Ok(None);
        };
        let key = chosen
            .live
            .identity
            .private_key()
            .map_err(|e| self.sec("reading the private key", e))?;
        Ok(Some((KeychainKey::new(key), password)))
    }

    /// The key's partition list: the description of its ACL entry authorizing
    /// ACLAuthorizationPartitionID, which `keychain_model` decodes.
    pub(super) fn read_partitions(&self) -> Result<Vec<Partition>, StoreError> {
        let Some((key, _)) = self.live_key()? else {
            return Ok(Vec::new());
        };
        self.key_partitions(&key)
    }

    /// `key`'s partition list, as `read_partitions` reads the live key's.
    pub(super) fn key_partitions(&self, key: &KeychainKey) -> Result<Vec<Partition>, StoreError> {
        let action = "reading the key's partition list";
        let access = ffi::key_access(key.sec_key()).map_err(|s| self.status(action, s))?;
        let entries = ffi::acl_entries(&access, model::PARTITION_AUTHORIZATION)
            .map_err(|s| self.status(action, s))?;
        let Some((_, contents)) = entries.into_iter().next() else {
            return Ok(Vec::new());
        };
        model::decode_partition_description(&contents.description).map_err(|e| {
            StoreError::Damaged {
                path: self.path.clone(),
                what: "the key's partition list",
                reason: e.to_string(),
            }
        })
    }

    /// What `security set-key-partition-list -S <list> -k <password>` does, in-process: the
    /// partition entry's description rewritten, then SecKeychainItemSetAccessWithPassword with
    /// the keychain password, which authorises the change without a dialog.
    pub(super) fn write_partitions(&self, list: &[Partition]) -> Result<(), StoreError> {
        let Some((key, password)) = self.live_key()? else {
            return Err(StoreError::Unsupported(
                "no key in okta.keychain to set apps on".to_owned(),
            ));
        };
        self.set_key_partitions(&key, &password, list)
    }

    /// Writes `key`'s partition list, authorised by its keychain's `password`.
    pub(super) fn set_key_partitions(
        &self,
        key: &KeychainKey,
        password: &Secret,
        list: &[Partition],
    ) -> Result<(), StoreError> {
        let action = "writing the key's partition list";
        let access = ffi::key_access(key.sec_key()).map_err(|s| self.status(action, s))?;
        let entries = ffi::acl_entries(&access, model::PARTITION_AUTHORIZATION)
            .map_err(|s| self.status(action, s))?;
        // Like `security`, only an existing entry is rewritten: every key created in a keychain
        // of macOS 10.12 or later has one.
        let Some((acl, contents)) = entries.into_iter().next() else {
            return Err(self.err(action, "the key has no partition list entry"));
        };
        let updated = ffi::AclContents {
            description: model::encode_partition_description(list),
            ..contents
        };
        ffi::set_acl_contents(&acl, &updated).map_err(|s| self.status(action, s))?;
        ffi::set_key_access_with_password(key.sec_key(), &access, password.expose().as_bytes())
            .map_err(|s| self.status("saving the key's partition list", s))
    }
}
