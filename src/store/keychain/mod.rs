//! The macOS identity store: the device key and certificate in `~/Library/Keychains/okta.keychain`,
//! unlocked with a random password kept in the login keychain as the `device_trust` item.
//!
//! The key is generated inside okta.keychain (not extractable, any app passing its partition
//! list may use it) and never exists anywhere else; Security signs and decrypts with it. Calls
//! go through the `security-framework` crate, and through `ffi` where the crate has none. What
//! is created (attributes, access, names) is decided in `keychain_items` and `keychain_model`,
//! tested on every platform; this module turns those values into calls.

mod access;
mod ffi;
mod key;
mod password;
pub(crate) mod selftest;

pub(crate) use ffi::{identity_preference, set_identity_preference};
pub(crate) use key::KeychainKey;

use super::keychain_items as items;
use super::keychain_model as model;
use super::keychain_password::{self as login_item, PasswordItem};
use super::{IdentityStore, PasswordItemState, StoreError, StoreProbe};
use crate::partition::Partition;
use crate::pki::{CertificateInfo, CheckedIdentity, NewKey, SigningKey};
use crate::secret::Secret;
use core_foundation::base::OSStatus;
use security_framework::certificate::SecCertificate;
use security_framework::identity::SecIdentity;
use security_framework::item::{ItemClass, ItemSearchOptions, Limit, Reference, SearchResult};
use security_framework::os::macos::keychain::{
    CreateOptions, KeychainSettings, KeychainUserInteractionLock, SecKeychain, SecPreferencesDomain,
};
use std::cell::RefCell;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const ERR_SEC_ITEM_NOT_FOUND: OSStatus = -25300;
const ERR_SEC_DUPLICATE_ITEM: OSStatus = -25299;
/// `errSecAuthFailed`: SecKeychainUnlock with a password that is not the keychain's.
const ERR_SEC_AUTH_FAILED: OSStatus = -25293;

/// Apple's text for an OSStatus, for one-line errors.
pub(crate) fn status_text(status: OSStatus) -> String {
    match security_framework::base::Error::from_code(status).message() {
        Some(m) => format!("OSStatus {status} ({m})"),
        None => format!("OSStatus {status}"),
    }
}

/// A background agent has nobody to answer a keychain dialog: any call that would show one
/// fails instead (`SecKeychainSetUserInteractionAllowed(false)`), for the whole process. The
/// guard lives in a static, which is never dropped, so nothing turns dialogs back on.
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

/// One identity found in okta.keychain.
struct Found {
    identity: SecIdentity,
    certificate_der: Vec<u8>,
}

impl Found {
    /// The private key's application label (SHA-1 of its public key).
    fn key_label(&self) -> Option<Vec<u8>> {
        self.identity.private_key().ok()?.application_label()
    }
}

/// The keychain-backed store for one user's home.
pub struct KeychainStore {
    /// `~/Library/Keychains/okta.keychain`, the name SecKeychainCreate/Open take.
    path: PathBuf,
    /// The keychain password once read this run (reading it may run `security`).
    password: RefCell<Option<Secret>>,
}

impl KeychainStore {
    pub fn new(home: &Path) -> Self {
        no_prompts();
        KeychainStore {
            path: model::keychain_path(home),
            password: RefCell::new(None),
        }
    }

    fn err(&self, action: &'static str, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Os {
            path: self.path.clone(),
            action,
            reason: reason.to_string(),
        }
    }

    fn status(&self, action: &'static str, status: OSStatus) -> StoreError {
        self.err(action, status_text(status))
    }

    fn sec(&self, action: &'static str, e: security_framework::base::Error) -> StoreError {
        self.status(action, e.code())
    }

    fn exists(&self) -> bool {
        model::keychain_db_path(&self.path).exists() || self.path.exists()
    }

    /// The crate hands paths to C as NUL-terminated strings: one with a NUL in it is refused.
    fn checked(&self, path: &Path) -> Result<(), StoreError> {
        if path.as_os_str().as_bytes().contains(&0) {
            return Err(self.err("naming the keychain", "the path contains a NUL byte"));
        }
        Ok(())
    }

    /// SecKeychainOpen: a reference by path (it does not check that the file exists).
    fn open(&self) -> Result<SecKeychain, StoreError> {
        self.checked(&self.path)?;
        SecKeychain::open(&self.path).map_err(|e| self.sec("opening okta.keychain", e))
    }

    /// The login keychain (the user domain's default), where the password item lives.
    fn login_keychain(&self) -> Result<SecKeychain, StoreError> {
        SecKeychain::default_for_domain(SecPreferencesDomain::User)
            .map_err(|e| self.sec("opening the login keychain", e))
    }

    /// The `device_trust` item as the agent can use it (`keychain_password` decides how it is
    /// read: in-process, or through `security` for an item made by it).
    fn password_item(&self) -> Result<PasswordItem, StoreError> {
        if let Some(secret) = self.password.borrow().as_ref() {
            return Ok(PasswordItem::Readable(secret.clone()));
        }
        let item = login_item::read(&password::LoginItem::new(self)?)
            .map_err(|e| self.err("reading the device_trust password", e))?;
        if let PasswordItem::Readable(secret) = &item {
            *self.password.borrow_mut() = Some(secret.clone());
        }
        Ok(item)
    }

    /// The keychain password, when the agent can read it.
    fn read_password(&self) -> Result<Option<Secret>, StoreError> {
        Ok(match self.password_item()? {
            PasswordItem::Readable(secret) => Some(secret),
            PasswordItem::Missing | PasswordItem::Unreadable(_) => None,
        })
    }

    /// Replaces the `device_trust` item with one holding `password`, made by `security` so that
    /// every build of the agent can read it (the old item is deleted unread).
    fn store_password(&self, password: &Secret) -> Result<(), StoreError> {
        *self.password.borrow_mut() = None;
        login_item::replace(&password::LoginItem::new(self)?, password)
            .map_err(|e| self.err("storing the device_trust password", e))?;
        *self.password.borrow_mut() = Some(password.clone());
        Ok(())
    }

    /// Deletes the `device_trust` item by reference, never reading it; `Ok(false)` when there
    /// was none.
    fn delete_password_item(&self) -> Result<bool, StoreError> {
        *self.password.borrow_mut() = None;
        use login_item::PasswordBackend;
        password::LoginItem::new(self)?
            .delete()
            .map_err(|e| self.err("deleting the device_trust password", e))
    }

    /// SecKeychainUnlock with the password as a buffer (never argv, unlike `security -p`).
    fn unlock(&self, keychain: &mut SecKeychain, password: &Secret) -> Result<(), StoreError> {
        keychain.unlock(Some(password.expose())).map_err(|e| {
            if e.code() == ERR_SEC_AUTH_FAILED {
                self.wrong_password()
            } else {
                self.sec("unlocking okta.keychain", e)
            }
        })
    }

    /// The damage a password that does not unlock okta.keychain is: nothing in it can be used
    /// again, so `enroll` sets it aside and starts afresh.
    fn wrong_password(&self) -> StoreError {
        StoreError::Damaged {
            path: self.path.clone(),
            what: "okta.keychain",
            reason: "the device_trust password in the login keychain does not unlock it".into(),
        }
    }

    /// The existing keychain, not unlocked: certificates and public keys are read from a
    /// locked keychain, so `status` and `certificate` never need the password. `None` if absent.
    fn open_existing(&self) -> Result<Option<SecKeychain>, StoreError> {
        if !self.exists() {
            return Ok(None);
        }
        self.open().map(Some)
    }

    /// The existing keychain, unlocked when its password can be read (key use then works
    /// without a prompt; without it, key use fails instead of prompting). A password that does
    /// not unlock it is damage. `None` if absent.
    fn existing(&self) -> Result<Option<(SecKeychain, Option<Secret>)>, StoreError> {
        let Some(mut keychain) = self.open_existing()? else {
            return Ok(None);
        };
        let password = match self.read_password() {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("{e}");
                None
            }
        };
        if let Some(p) = &password {
            self.unlock(&mut keychain, p)?;
        }
        Ok(Some((keychain, password)))
    }

    /// Copies okta.keychain's file beside it under a dated name, then deletes the keychain
    /// (SecKeychainDelete, so securityd forgets it too); returns where the copy is.
    fn keep_aside(&self) -> Result<PathBuf, StoreError> {
        let db = model::keychain_db_path(&self.path);
        let file = if db.exists() { db } else { self.path.clone() };
        let aside = model::aside_path(&file, time::OffsetDateTime::now_utc());
        std::fs::copy(&file, &aside).map_err(|source| StoreError::Io {
            path: aside.clone(),
            action: "keeping the unusable okta.keychain aside",
            source,
        })?;
        let keychain = self.open()?;
        ffi::delete_keychain(&keychain)
            .map_err(|s| self.status("deleting the unusable okta.keychain", s))?;
        Ok(aside)
    }

    /// The keychain, created when missing, unlocked, in the search list, without auto-lock. A
    /// keychain whose password is missing, unreadable or wrong can never be unlocked again:
    /// it is kept aside and rebuilt with a fresh password (one `WARN`), and the device enrolls
    /// again into it.
    fn ensure(&self) -> Result<(SecKeychain, Secret), StoreError> {
        if let Some(mut keychain) = self.open_existing()? {
            let why = match self.password_item()? {
                PasswordItem::Readable(password) => match self.unlock(&mut keychain, &password) {
                    Ok(()) => {
                        self.configure(&mut keychain)?;
                        return Ok((keychain, password));
                    }
                    Err(e) if e.is_damage() => {
                        "its device_trust password does not unlock it".to_owned()
                    }
                    Err(e) => return Err(e),
                },
                PasswordItem::Missing => "it has no device_trust password".to_owned(),
                PasswordItem::Unreadable(why) => {
                    format!("its device_trust password is unreadable ({why})")
                }
            };
            let aside = self.keep_aside()?;
            tracing::warn!(
                "okta.keychain cannot be unlocked: {why}; it is kept as {} and rebuilt with a \
                 fresh password, and the device enrolls again",
                aside.display()
            );
        }
        // The password item first: a crash after it leaves an item the next run replaces,
        // a crash after the keychain leaves a keychain it can unlock.
        let password = model::generate_keychain_password();
        self.store_password(&password)?;
        self.checked(&self.path)?;
        let mut keychain = CreateOptions::new()
            .password(password.expose())
            .prompt_user(false)
            .create(&self.path)
            .map_err(|e| self.sec("creating okta.keychain", e))?;
        self.configure(&mut keychain)?;
        Ok((keychain, password))
    }

    /// No auto-lock (SecKeychainSetSettings) and ours in the user's search list.
    fn configure(&self, keychain: &mut SecKeychain) -> Result<(), StoreError> {
        let mut settings = KeychainSettings::new();
        settings.set_lock_on_sleep(items::LOCK_ON_SLEEP);
        settings.set_lock_interval(items::LOCK_INTERVAL_SECS);
        keychain
            .set_settings(&settings)
            .map_err(|e| self.sec("turning off auto-lock on okta.keychain", e))?;
        self.edit_search_list(|current| model::search_list_with(current, &self.path))
    }

    /// The user's search list as paths goes through `edit`; written back only if it changed,
    /// keeping the references of entries that stay.
    fn edit_search_list(
        &self,
        edit: impl FnOnce(&[PathBuf]) -> Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        let current = ffi::user_search_list()
            .map_err(|s| self.status("reading the keychain search list", s))?;
        let paths: Vec<PathBuf> = current.iter().map(|(_, p)| p.clone()).collect();
        let wanted = edit(&paths);
        if wanted == paths {
            return Ok(());
        }
        let mut list = Vec::with_capacity(wanted.len());
        for path in &wanted {
            match current.iter().find(|(_, p)| p == path) {
                Some((keychain, _)) => list.push(keychain.clone()),
                None => {
                    self.checked(path)?;
                    list.push(
                        SecKeychain::open(path)
                            .map_err(|e| self.sec("opening a search-list keychain", e))?,
                    );
                }
            }
        }
        ffi::set_user_search_list(&list)
            .map_err(|s| self.status("writing the keychain search list", s))
    }

    /// Every identity in okta.keychain (kSecMatchSearchList = [okta.keychain]): never an
    /// identity of the same name in another keychain.
    fn identities(&self, keychain: &SecKeychain) -> Result<Vec<Found>, StoreError> {
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
    fn chosen(&self, keychain: &SecKeychain) -> Result<Option<model::Chosen<Found>>, StoreError> {
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

    /// SecItemDelete of the identity: its certificate, private key and public key items.
    fn delete_identity(&self, found: &Found) -> Result<(), StoreError> {
        match found.identity.delete() {
            Ok(()) => Ok(()),
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => Ok(()),
            Err(e) => Err(self.sec("deleting an old identity", e)),
        }
    }

    /// The identity whose certificate is `certificate_der`, for Safari's preferences (which
    /// need the keychain items, not a certificate parsed from bytes).
    pub(crate) fn identity_with_certificate(
        &self,
        certificate_der: &[u8],
    ) -> Result<Option<SecIdentity>, StoreError> {
        let Some((keychain, _)) = self.existing()? else {
            return Ok(None);
        };
        Ok(self
            .identities(&keychain)?
            .into_iter()
            .find(|f| f.certificate_der == certificate_der)
            .map(|f| f.identity))
    }
}

impl IdentityStore for KeychainStore {
    fn location(&self) -> String {
        format!("keychain:{}", self.path.display())
    }

    fn probe(&self) -> StoreProbe {
        let password_item = match self.password_item() {
            Ok(PasswordItem::Readable(_)) => PasswordItemState::Readable,
            Ok(PasswordItem::Missing) => PasswordItemState::Missing,
            Ok(PasswordItem::Unreadable(why)) => {
                tracing::debug!("the device_trust password: {why}");
                PasswordItemState::Unreadable
            }
            Err(e) => {
                tracing::debug!("{e}");
                PasswordItemState::Unreadable
            }
        };
        StoreProbe {
            exists: Some(self.exists()),
            password_item: Some(password_item),
        }
    }

    /// Read from the locked keychain: no password needed.
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(keychain) = self.open_existing()? else {
            return Ok(None);
        };
        Ok(self.chosen(&keychain)?.map(|c| c.live.certificate_der))
    }

    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        let Some((keychain, _)) = self.existing()? else {
            return Ok(None);
        };
        let Some(chosen) = self.chosen(&keychain)? else {
            return Ok(None);
        };
        match chosen.live.identity.private_key() {
            Ok(key) => Ok(Some(Box::new(KeychainKey::new(key)))),
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => Ok(None),
            Err(e) => Err(self.sec("reading the private key", e)),
        }
    }

    /// A new key inside okta.keychain (created when missing), after sweeping keys an earlier
    /// run generated but never stored a certificate for.
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
            path: self.path.clone(),
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
        let all = self.identities(&keychain)?;
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

    /// A keychain whose password does not unlock it: the file kept beside it under a dated
    /// name, the keychain and its password item deleted, so `enroll` starts afresh.
    fn set_aside(&mut self) -> Result<Option<String>, StoreError> {
        if !self.exists() {
            return Ok(None);
        }
        let aside = self.keep_aside()?;
        self.delete_password_item()?;
        Ok(Some(aside.display().to_string()))
    }

    fn remove(&mut self) -> Result<bool, StoreError> {
        let mut removed = false;
        if self.exists() {
            let mut keychain = self.open()?;
            // Unlocked, when the password can be read, so the identity's items can be deleted
            // cleanly before the file goes; uninstall never needs it.
            if let Ok(Some(p)) = self.read_password() {
                let _ = self.unlock(&mut keychain, &p);
            }
            if let Some(chosen) = self.chosen(&keychain).ok().flatten() {
                for id in std::iter::once(&chosen.live).chain(chosen.leftovers.iter()) {
                    self.delete_identity(id)?;
                }
            }
            // SecKeychainDelete removes the file; the search-list entry is dropped explicitly.
            ffi::delete_keychain(&keychain)
                .map_err(|s| self.status("deleting okta.keychain", s))?;
            removed = true;
        }
        self.edit_search_list(|current| model::search_list_without(current, &self.path))?;
        removed |= self.delete_password_item()?;
        Ok(removed)
    }

    fn has_partition_list(&self) -> bool {
        true
    }

    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        Some(self.read_partitions())
    }

    fn set_partition_list(&mut self, list: &[Partition]) -> Option<Result<(), StoreError>> {
        Some(self.write_partitions(list))
    }
}
