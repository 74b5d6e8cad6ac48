//! The keychain store's access lists and request dictionaries: an access built as
//! `keychain_items` specifies, its attributes as the CFDictionary Security takes, and the key's
//! partition list written the way `security set-key-partition-list` does (which also proves the
//! keychain password).

use super::{ffi, status_text, KeychainStore};
use crate::partition::Partition;
use crate::secret::Secret;
use crate::store::keychain_items::{self as items, AccessSpec, Attr, Keychain, Value};
use crate::store::keychain_model::{self as model, PasswordProof};
use crate::store::keychain_notes::PasswordFound;
use crate::store::StoreError;
use core_foundation::base::{CFType, TCFType};
use core_foundation::boolean::CFBoolean;
use core_foundation::data::CFData;
use core_foundation::dictionary::CFDictionary;
use core_foundation::number::CFNumber;
use core_foundation::string::CFString;
use ffi::Sym;
use security_framework::key::SecKey;
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

    /// The live identity's private key, its keychain unlocked for use.
    fn live_key(&self) -> Result<Option<SecKey>, StoreError> {
        let Some(keychain) = self.open_for_use()? else {
            return Ok(None);
        };
        let Some(chosen) = self.view.chosen(&keychain)? else {
            return Ok(None);
        };
        chosen
            .live
            .identity
            .private_key()
            .map(Some)
            .map_err(|e| self.sec("reading the private key", e))
    }

    /// The live key's partition list read now (the keychain unlocked first), noted for the
    /// read-only runs that cannot unlock it.
    pub(super) fn read_partitions(&self) -> Result<Vec<Partition>, StoreError> {
        let Some(key) = self.live_key()? else {
            return Ok(Vec::new());
        };
        let list = self.view.key_partitions(&key)?;
        self.note_partitions(&key, &list);
        Ok(list)
    }

    /// What `security set-key-partition-list -S <list> -k <password>` does, in-process: the
    /// partition entry's description rewritten, then SecKeychainItemSetAccessWithPassword with
    /// the keychain password, which authorises the change without a dialog. securityd checks
    /// that password against the keychain even while it is unlocked (`acls.cpp`,
    /// `SecurityServerAcl::changeAcl` → `checkCredentials`): a refusal proves it wrong.
    pub(super) fn write_partitions(&self, list: &[Partition]) -> Result<(), StoreError> {
        let Some(key) = self.live_key()? else {
            return Err(StoreError::Unsupported(
                "no key in okta.keychain to set apps on".to_owned(),
            ));
        };
        let password = match self.read_password() {
            Ok(Some(password)) => password,
            Ok(None) => {
                return Err(self.err(
                    "writing the key's partition list",
                    "the keychain password item cannot be read",
                ))
            }
            Err(e) => return Err(self.err("writing the key's partition list", e)),
        };
        self.set_key_partitions(&key, &password, list)?;
        self.note_partitions(&key, list);
        Ok(())
    }

    /// Writes `key`'s partition list, authorised by its keychain's `password`.
    pub(super) fn set_key_partitions(
        &self,
        key: &SecKey,
        password: &Secret,
        list: &[Partition],
    ) -> Result<(), StoreError> {
        let action = "writing the key's partition list";
        match self.rewrite_partitions(key, password, Some(list)) {
            Ok(()) => Ok(()),
            Err(Rewrite::NoEntry) => Err(self.err(action, "the key has no partition list entry")),
            Err(Rewrite::Status(s)) if model::proof_of(s) == PasswordProof::Wrong => {
                self.write_notes(|notes| {
                    notes.with_password(
                        PasswordFound::Wrong,
                        Some(format!(
                            "writing the key's partition list: {}",
                            status_text(s)
                        )),
                        crate::timefmt::now_rfc3339(),
                    )
                });
                Err(self.wrong_password())
            }
            Err(Rewrite::Status(s)) => Err(self.status(action, s)),
        }
    }

    /// Rewrites the key's partition entry with `list`, or with its own description unchanged
    /// (`None`: a proof of the password that changes nothing), authorised by `password`. Like
    /// `security`, only an existing entry is rewritten: every key created in a keychain of
    /// macOS 10.12 or later has one.
    pub(super) fn rewrite_partitions(
        &self,
        key: &SecKey,
        password: &Secret,
        list: Option<&[Partition]>,
    ) -> Result<(), Rewrite> {
        let access = ffi::item_access(key).map_err(Rewrite::Status)?;
        let entries =
            ffi::acl_entries(&access, model::PARTITION_AUTHORIZATION).map_err(Rewrite::Status)?;
        let Some((acl, contents)) = entries.into_iter().next() else {
            return Err(Rewrite::NoEntry);
        };
        let updated = ffi::AclContents {
            description: list
                .map(model::encode_partition_description)
                .unwrap_or_else(|| contents.description.clone()),
            ..contents
        };
        ffi::set_acl_contents(&acl, &updated).map_err(Rewrite::Status)?;
        ffi::set_key_access_with_password(key, &access, password.expose().as_bytes())
            .map_err(Rewrite::Status)
    }

    /// The list read or written for `key`, for the view while the keychain is locked.
    fn note_partitions(&self, key: &SecKey, list: &[Partition]) {
        if let Some(label) = key.application_label() {
            self.write_notes(|notes| {
                notes.with_partitions(&label, list, crate::timefmt::now_rfc3339())
            });
        }
    }
}

/// Why a key's partition entry was not rewritten.
pub(super) enum Rewrite {
    /// The call's OSStatus.
    Status(i32),
    /// The key has no partition entry.
    NoEntry,
}
