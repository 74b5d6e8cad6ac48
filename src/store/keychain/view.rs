//! okta.keychain as `status` and `ea` see it: read by attributes, never unlocked. The type holds
//! no password and has no way to one: it cannot start `/usr/bin/security`, show a dialog or
//! change the keychain's lock state.
//!
//! Apple's identity search pairs a key and a certificate by their attributes alone (the key's
//! label against the certificate's public-key hash: `IdentityCursor.cpp`, `IdentityCursor::next`,
//! reading records with `getContent(NULL, &attrs, NULL, NULL)`), so the certificate and its key
//! are found in a locked keychain. The key's access is not: securityd decodes the key's blob
//! before it hands out its ACL (`kckey.cpp`, `KeychainKey::instantiateAcl`), which needs the
//! keychain unlocked; a locked keychain's list comes from what the last run that read it noted.

use super::{ffi, no_prompts, status_text, ERR_SEC_ITEM_NOT_FOUND};
use crate::partition::Partition;
use crate::pki::CertificateInfo;
use crate::securefs::Place;
use crate::store::keychain_model::{self as model, KeychainSeen};
use crate::store::keychain_notes::{Notes, NOTES_FILE, NOTES_MAX};
use crate::store::keychain_password::ItemPlace;
use crate::store::{SeenPartitions, StoreError, StoreProbe, StoreView};
use core_foundation::base::OSStatus;
use security_framework::identity::SecIdentity;
use security_framework::item::{ItemClass, ItemSearchOptions, Limit, Reference, SearchResult};
use security_framework::key::SecKey;
use security_framework::os::macos::keychain::{SecKeychain, SecPreferencesDomain};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One identity found in okta.keychain.
pub(super) struct Found {
    pub(super) identity: SecIdentity,
    pub(super) certificate_der: Vec<u8>,
}

impl Found {
    /// The private key's application label (SHA-1 of its public key).
    pub(super) fn key_label(&self) -> Option<Vec<u8>> {
        self.identity.private_key().ok()?.application_label()
    }
}

/// okta.keychain, read only.
pub struct KeychainView {
    /// `~/Library/Keychains/okta.keychain`, the name SecKeychainCreate/Open take.
    pub(super) path: PathBuf,
    /// Where the password item is: only its presence is ever looked at here.
    pub(super) item: ItemPlace,
    /// The state folder holding the keychain notes.
    pub(super) notes: Place,
}

impl KeychainView {
    pub(super) fn new(path: PathBuf, item: ItemPlace, notes: Place) -> KeychainView {
        no_prompts();
        KeychainView { path, item, notes }
    }

    pub(super) fn err(&self, action: &'static str, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Os {
            path: self.path.clone(),
            action,
            reason: reason.to_string(),
        }
    }

    pub(super) fn status(&self, action: &'static str, status: OSStatus) -> StoreError {
        self.err(action, status_text(status))
    }

    pub(super) fn sec(
        &self,
        action: &'static str,
        e: security_framework::base::Error,
    ) -> StoreError {
        self.status(action, e.code())
    }

    pub(super) fn exists(&self) -> bool {
        model::keychain_db_path(&self.path).exists() || self.path.exists()
    }

    /// The crate hands paths to C as NUL-terminated strings: one with a NUL in it is refused.
    pub(super) fn checked(&self, path: &Path) -> Result<(), StoreError> {
        if path.as_os_str().as_bytes().contains(&0) {
            return Err(self.err("naming the keychain", "the path contains a NUL byte"));
        }
        Ok(())
    }

    /// SecKeychainOpen: a reference by path (it does not check that the file exists).
    pub(super) fn open(&self) -> Result<SecKeychain, StoreError> {
        self.checked(&self.path)?;
        SecKeychain::open(&self.path).map_err(|e| self.sec("opening okta.keychain", e))
    }

    /// The existing keychain, as it is (not unlocked); `None` if absent.
    pub(super) fn open_existing(&self) -> Result<Option<SecKeychain>, StoreError> {
        if !self.exists() {
            return Ok(None);
        }
        self.open().map(Some)
    }

    /// Whether `keychain` (okta.keychain, if it exists) is locked now.
    pub(super) fn seen(&self, keychain: Option<&SecKeychain>) -> Result<KeychainSeen, StoreError> {
        let Some(keychain) = keychain else {
            return Ok(KeychainSeen::Absent);
        };
        match ffi::is_unlocked(keychain) {
            Ok(true) => Ok(KeychainSeen::Unlocked),
            Ok(false) => Ok(KeychainSeen::Locked),
            Err(s) => Err(self.status("asking whether okta.keychain is locked", s)),
        }
    }

    /// okta.keychain absent, locked or unlocked: a question to securityd that never unlocks.
    pub fn lock_state(&self) -> Result<KeychainSeen, StoreError> {
        self.seen(self.open_existing()?.as_ref())
    }

    /// The keychain holding the password item: the login keychain (the user domain's default),
    /// or the one the item was placed in.
    pub(super) fn item_keychain(&self) -> Result<SecKeychain, StoreError> {
        match &self.item.keychain {
            None => SecKeychain::default_for_domain(SecPreferencesDomain::User)
                .map_err(|e| self.sec("opening the login keychain", e)),
            Some(path) => {
                self.checked(path)?;
                SecKeychain::open(path).map_err(|e| self.sec("opening the password's keychain", e))
            }
        }
    }

    /// Whether the password item exists, from its attributes (its data stays encrypted).
    pub(super) fn item_present(&self) -> Result<bool, String> {
        let keychain = self.item_keychain().map_err(|e| e.to_string())?;
        let found = ItemSearchOptions::new()
            .class(ItemClass::generic_password())
            .keychains(std::slice::from_ref(&keychain))
            .service(&self.item.name)
            .account(&self.item.name)
            .load_refs(true)
            .limit(Limit::Max(1))
            .search();
        match found {
            Ok(results) => Ok(!results.is_empty()),
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => Ok(false),
            Err(e) => Err(status_text(e.code())),
        }
    }

    /// Every identity in okta.keychain (kSecMatchSearchList = [okta.keychain]): never an
    /// identity of the same name in another keychain.
    pub(super) fn identities(&self, keychain: &SecKeychain) -> Result<Vec<Found>, StoreError> {
        let results = ItemSearchOptions::new()
            .class(ItemClass::identity())
            .keychains(std::slice::from_ref(keychain))
            .load_refs(true)
            .limit(Limit::All)
            .search();
        let results = match results {
            Ok(r) => r,
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => return Ok(Vec::new()),
            Err(e) => return Err(self.sec("searching okta.keychain", e)),
        };
        Ok(results
            .into_iter()
            .filter_map(|r| match r {
                SearchResult::Ref(Reference::Identity(identity)) => {
                    let certificate_der = identity.certificate().ok()?.to_der();
                    Some(Found {
                        identity,
                        certificate_der,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// The live identity (latest notAfter) and the leftovers of an interrupted replacement.
    pub(super) fn chosen(
        &self,
        keychain: &SecKeychain,
    ) -> Result<Option<model::Chosen<Found>>, StoreError> {
        let candidates = self
            .identities(keychain)?
            .into_iter()
            .filter_map(|id| {
                let info = CertificateInfo::parse(&id.certificate_der).ok()?;
                Some((info.not_after, id))
            })
            .collect();
        Ok(model::choose_identity(candidates))
    }

    /// A key's partition list: the description of its ACL entry authorizing
    /// ACLAuthorizationPartitionID, which `keychain_model` decodes. Needs the keychain unlocked.
    pub(super) fn key_partitions(&self, key: &SecKey) -> Result<Vec<Partition>, StoreError> {
        let action = "reading the key's partition list";
        let access = ffi::item_access(key).map_err(|s| self.status(action, s))?;
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

    /// The notes the last runs left; none when the state folder or the file is not there.
    pub(super) fn notes(&self) -> Notes {
        let read = self
            .notes
            .open()
            .ok()
            .flatten()
            .and_then(|dir| dir.read_file(NOTES_FILE, NOTES_MAX).ok().flatten());
        read.map(|bytes| Notes::parse(&bytes)).unwrap_or_default()
    }
}

impl StoreView for KeychainView {
    fn location(&self) -> String {
        format!("keychain:{}", self.path.display())
    }

    /// The keychain file, the item's attributes, and the notes: nothing is decrypted.
    fn probe(&self) -> StoreProbe {
        let present = match self.item_present() {
            Ok(present) => present,
            Err(e) => {
                tracing::debug!("the {} item cannot be looked up: {e}", self.item.name);
                return StoreProbe {
                    exists: Some(self.exists()),
                    password_item: Some(crate::store::PasswordItemState::Unreadable),
                };
            }
        };
        let notes = self.notes();
        if let Some(detail) = notes.password_detail() {
            tracing::debug!("{detail}");
        }
        StoreProbe {
            exists: Some(self.exists()),
            password_item: Some(notes.password_state(present)),
        }
    }

    /// Read from the keychain as it is, locked or not.
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(keychain) = self.open_existing()? else {
            return Ok(None);
        };
        Ok(self.chosen(&keychain)?.map(|c| c.live.certificate_der))
    }

    /// Security pairs a key with the certificate whose public-key hash is its label: an
    /// identity for that certificate is the key being there.
    fn holds_key_of(&self, certificate_der: &[u8]) -> Result<bool, StoreError> {
        let Some(keychain) = self.open_existing()? else {
            return Ok(false);
        };
        Ok(self
            .identities(&keychain)?
            .iter()
            .any(|f| f.certificate_der == certificate_der))
    }

    fn has_partition_list(&self) -> bool {
        true
    }

    /// Read from the key's access while okta.keychain is unlocked; while it is locked, what
    /// the last run that read it noted for this very key.
    fn seen_partitions(&self) -> Option<Result<Option<SeenPartitions>, StoreError>> {
        let seen = || -> Result<Option<SeenPartitions>, StoreError> {
            let Some(keychain) = self.open_existing()? else {
                return Ok(None);
            };
            let Some(chosen) = self.chosen(&keychain)? else {
                return Ok(None);
            };
            let key = chosen
                .live
                .identity
                .private_key()
                .map_err(|e| self.sec("finding the private key", e))?;
            let recorded = || {
                key.application_label()
                    .and_then(|label| self.notes().partitions_of(&label))
            };
            if self.seen(Some(&keychain))? == KeychainSeen::Locked {
                return Ok(recorded());
            }
            match self.key_partitions(&key) {
                Ok(list) => Ok(Some(SeenPartitions {
                    list,
                    recorded_at: None,
                })),
                // Locked in between: no dialog (they are off), the noted list instead.
                Err(e) => recorded().map(Some).ok_or(e),
            }
        };
        Some(seen())
    }
}
