//! The macOS identity store: the device key and certificate in `~/Library/Keychains/okta.keychain`,
//! unlocked with a random password kept in the login keychain as the `device_trust` item.
//!
//! The key is generated inside okta.keychain (not extractable, any app passing its partition
//! list may use it) and never exists anywhere else; Security signs and decrypts with it. Calls
//! go through the `security-framework` crate, and through `ffi` where the crate has none. What
//! is created (attributes, access, names) and what is done with an existing okta.keychain (the
//! decision table) are decided in `keychain_items` and `keychain_model`, tested on every
//! platform; this module turns those values into calls. `view` is the read-only part the health
//! check gets; `open` carries out the decision table.

mod access;
mod ffi;
mod key;
mod open;
mod password;
pub(crate) mod trial;
mod view;

pub(crate) use ffi::{identity_preference, set_identity_preference};
pub(crate) use key::KeychainKey;
pub use view::KeychainView;

use super::keychain_items as items;
use super::keychain_model as model;
use super::keychain_password::ItemPlace;
use super::{IdentityStore, SeenPartitions, StoreError, StoreProbe, StoreView};
use crate::partition::Partition;
use crate::paths::UserHome;
use crate::pki::{CheckedIdentity, NewKey, SigningKey};
use crate::secret::Secret;
use crate::securefs::Place;
use core_foundation::base::OSStatus;
use security_framework::certificate::SecCertificate;
use security_framework::identity::SecIdentity;
use security_framework::os::macos::keychain::{KeychainUserInteractionLock, SecKeychain};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::OnceLock;
use view::Found;

const ERR_SEC_ITEM_NOT_FOUND: OSStatus = -25300;
const ERR_SEC_DUPLICATE_ITEM: OSStatus = -25299;

/// Apple's text for an OSStatus, for one-line errors.
pub(crate) fn status_text(status: OSStatus) -> String {
    match security_framework::base::Error::from_code(status).message() {
        Some(m) => format!("OSStatus {status} ({m})"),
        None => format!("OSStatus {status}"),
    }
}

/// A background agent has nobody to answer a keychain dialog: any call that would show one
/// fails instead (`SecKeychainSetUserInteractionAllowed(false)`). The flag is this process's
/// only (`Globals.h`, `mUI`), so a `security` child could still prompt; the item is read
/// through one only when its access lets any app in without a prompt. The guard lives in a
/// static, which is never dropped, so nothing turns dialogs back on.
pub(crate) fn no_prompts() {
    static GUARD: OnceLock<Option<KeychainUserInteractionLock>> = OnceLock::new();
    GUARD.get_or_init(|| match SecKeychain::disable_user_interaction() {
        Ok(guard) => Some(guard),
        Err(e) => {
            tracing::warn!("keychain dialogs could not be turned off: {e}");
            None
        }
    });
}

/// The keychain-backed store for one user's home.
pub struct KeychainStore {
    /// Everything that reads by attributes; the health check gets only this.
    view: KeychainView,
    /// The keychain password once read this run (reading it may run `security`).
    password: RefCell<Option<Secret>>,
    /// That password was proven against okta.keychain (or made it) this run.
    proven: Cell<bool>,
}

impl KeychainStore {
    /// The user's okta.keychain, its password in the login keychain's `device_trust` item,
    /// the notes in the agent's state folder.
    pub fn new(home: &UserHome) -> Self {
        Self::at(&home.home, ItemPlace::login(), home.state_place())
    }

    /// okta.keychain below `home`, its password in the item at `item`, the notes in `notes`:
    /// the selftest's throwaway store and the macOS tests, whose items must not collide.
    pub fn at(home: &Path, item: ItemPlace, notes: Place) -> Self {
        KeychainStore {
            view: KeychainView::new(model::keychain_path(home), item, notes),
            password: RefCell::new(None),
            proven: Cell::new(false),
        }
    }

    /// What `status` and `ea` may see of this store.
    pub fn view(&self) -> &KeychainView {
        &self.view
    }

    fn err(&self, action: &'static str, reason: impl std::fmt::Display) -> StoreError {
        self.view.err(action, reason)
    }

    fn status(&self, action: &'static str, status: OSStatus) -> StoreError {
        self.view.status(action, status)
    }

    fn sec(&self, action: &'static str, e: security_framework::base::Error) -> StoreError {
        self.view.sec(action, e)
    }

    /// SecItemDelete of the identity: its certificate, private key and public key items.
    fn delete_identity(&self, found: &Found) -> Result<(), StoreError> {
        match found.identity.delete() {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => Ok(()),
            Err(e) => Err(self.sec("deleting an old identity", e)),
        }
    }

    /// The identity whose certificate is `certificate_der`, for Safari's preferences (which
    /// need the keychain items, not a certificate parsed from bytes): found by attributes.
    pub(crate) fn identity_with_certificate(
        &self,
        certificate_der: &[u8],
    ) -> Result<Option<SecIdentity>, StoreError> {
        let Some(keychain) = self.view.open_existing()? else {
            return Ok(None);
        };
        Ok(self
            .view
            .identities(&keychain)?
            .into_iter()
            .find(|f| f.certificate_der == certificate_der)
            .map(|f| f.identity))
    }
}

/// The read-only part is the view's, whoever holds the store.
impl StoreView for KeychainStore {
    fn location(&self) -> String {
        self.view.location()
    }
    fn probe(&self) -> StoreProbe {
        self.view.probe()
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.view.certificate()
    }
    fn holds_key_of(&self, certificate_der: &[u8]) -> Result<bool, StoreError> {
        self.view.holds_key_of(certificate_der)
    }
    fn has_partition_list(&self) -> bool {
        self.view.has_partition_list()
    }
    fn seen_partitions(&self) -> Option<Result<Option<SeenPartitions>, StoreError>> {
        self.view.seen_partitions()
    }
}

impl IdentityStore for KeychainStore {
    /// The live key, with okta.keychain unlocked first when it is locked (a key in a locked
    /// keychain would fail to sign rather than prompt).
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        let Some(keychain) = self.open_for_use()? else {
            return Ok(None);
        };
        let Some(chosen) = self.view.chosen(&keychain)? else {
            return Ok(None);
        };
        match chosen.live.identity.private_key() {
            Ok(key) => Ok(Some(Box::new(KeychainKey::new(key)))),
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => Ok(None),
            Err(e) => Err(self.sec("reading the private key", e)),
        }
    }

    /// A new key inside okta.keychain (made ready by the decision table first), after sweeping
    /// keys an earlier run generated but never stored a certificate for.
    fn generate_key(&mut self, bits: u32) -> Result<Box<dyn NewKey>, StoreError> {
        let (keychain, _password) = self.ensure()?;
        self.sweep_orphaned_keys(&keychain)?;
        Ok(Box::new(self.generate(&keychain, bits)?))
    }

    /// Adds the certificate for the generated key, checks key and certificate form a findable
    /// identity, and only then deletes the old identities (spec section 9, defect 3). A crash
    /// in between leaves two; `choose_identity` picks the newer and the next replace sweeps the
    /// other.
    fn replace(&mut self, identity: CheckedIdentity, _record: &[u8]) -> Result<(), StoreError> {
        let (key, certificate, chain) = identity.into_parts();
        let key = key.into_any().downcast::<KeychainKey>().map_err(|_| {
            StoreError::Unsupported("a key generated by another store cannot be kept here".into())
        })?;
        let der = certificate.der.as_slice();
        let (keychain, _password) = self.ensure()?;
        let key_label = key
            .sec_key()
            .application_label()
            .ok_or_else(|| self.err("storing the certificate", "the new key has no label"))?;
        let cert = SecCertificate::from_der(der).map_err(|_| StoreError::Damaged {
            path: self.view.path.clone(),
            what: "the new certificate",
            reason: "Security could not parse it".to_owned(),
        })?;
        let added = match cert.add_to_keychain(Some(keychain.clone())) {
            Ok(()) => true,
            Err(e) if e.code() == ERR_SEC_DUPLICATE_ITEM => false,
            Err(e) => return Err(self.sec("adding the certificate", e)),
        };
        for ca in &chain {
            // Issuer certificates help clients build the chain; a failure is not fatal.
            let added = SecCertificate::from_der(ca)
                .and_then(|c| c.add_to_keychain(Some(keychain.clone())));
            match added {
                Err(e) if e.code() != ERR_SEC_DUPLICATE_ITEM => {
                    tracing::debug!("issuer certificate not added: {e}");
                }
                _ => {}
            }
        }
        let all = self.view.identities(&keychain)?;
        let found: Vec<_> = all
            .iter()
            .map(|f| (f.certificate_der.clone(), f.key_label()))
            .collect();
        let Some(new) = items::stored_identity(&found, der, &key_label) else {
            if added {
                // Best effort: the certificate alone is no identity. The key stays until the
                // next generate_key sweeps it.
                if let Err(e) = cert.delete() {
                    tracing::debug!("the unmatched certificate stays: {e}");
                }
            }
            return Err(self.err(
                "checking the new identity",
                "the generated key and the certificate do not form an identity",
            ));
        };
        crate::failpoint::hit("store.new-written");
        for (i, old) in all.iter().enumerate() {
            if i != new && old.certificate_der != der {
                self.delete_identity(old)?;
            }
        }
        Ok(())
    }

    /// An identity that cannot be read: okta.keychain is set aside only where the decision
    /// table says so (its item is missing or its password proven wrong), a new item first;
    /// otherwise the new identity goes into the same keychain.
    fn set_aside(&mut self) -> Result<Option<String>, StoreError> {
        self.rebuild_where_unopenable(true)
            .map(|aside| aside.map(|a| a.display().to_string()))
    }

    /// okta.keychain rebuilt where its password item is gone or its password proven wrong,
    /// even around an identity that reads fine by attributes: no app can use it without a
    /// dialog. The decision table decides; nothing else is touched.
    fn rebuild_if_unopenable(&mut self) -> Result<Option<String>, StoreError> {
        self.rebuild_where_unopenable(false)
            .map(|aside| aside.map(|a| a.display().to_string()))
    }

    fn remove(&mut self) -> Result<bool, StoreError> {
        let mut removed = false;
        if let Some(mut keychain) = self.view.open_existing()? {
            // Unlocked, when the password can be read, so the identity's items can be deleted
            // cleanly before the file goes; uninstall never needs it.
            if let Ok(Some(p)) = self.read_password() {
                let _ = keychain.unlock(Some(p.expose()));
            }
            if let Some(chosen) = self.view.chosen(&keychain).ok().flatten() {
                for id in std::iter::once(&chosen.live).chain(chosen.leftovers.iter()) {
                    self.delete_identity(id)?;
                }
            }
            // SecKeychainDelete removes the file; the search-list entry is dropped explicitly.
            ffi::delete_keychain(&keychain)
                .map_err(|s| self.status("deleting okta.keychain", s))?;
            removed = true;
        }
        let path = self.view.path.clone();
        self.edit_search_list(|current| model::search_list_without(current, &path))?;
        removed |= self.delete_password_item()?;
        Ok(removed)
    }

    /// okta.keychain's own settings (no auto-lock, in the search list), unlocked.
    fn repair(&mut self) -> Result<Vec<String>, StoreError> {
        let Some(mut keychain) = self.open_for_use()? else {
            return Ok(Vec::new());
        };
        self.configure(&mut keychain)
    }

    fn unlock(&self) -> Result<(), StoreError> {
        self.open_for_use().map(drop)
    }

    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        Some(self.read_partitions())
    }

    fn set_partition_list(&mut self, list: &[Partition]) -> Option<Result<(), StoreError>> {
        Some(self.write_partitions(list))
    }
}
