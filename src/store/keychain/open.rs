//! Opening okta.keychain for a run that uses or changes the identity: the password item read,
//! the password proven against the keychain, and the one action `keychain_model::keychain_action`
//! decides carried out. Each run that needed the password notes what it found, for `status`.
//!
//! `ensure` (key generation and storing, `enroll` and a renewal) carries out every action;
//! `open_for_use` (signing, the daily job, `repair`) only unlocks and never creates or rebuilds.

use super::password::LoginItem;
use super::{ffi, items, model, KeychainStore};
use crate::secret::Secret;
use crate::store::keychain_model::{
    DeferReason, KeychainAction, KeychainSeen, PasswordProof, ProofMethod, RebuildReason,
};
use crate::store::keychain_notes::{Notes, PasswordFound, NOTES_FILE};
use crate::store::keychain_password::{self as login_item, PasswordItem};
use crate::store::StoreError;
use security_framework::os::macos::keychain::{CreateOptions, KeychainSettings, SecKeychain};
use std::path::PathBuf;

/// What a run found before deciding.
struct Observed {
    item: Result<PasswordItem, String>,
    keychain: Option<SecKeychain>,
    seen: KeychainSeen,
    proof: PasswordProof,
    /// What the proving call answered, for the log and the notes.
    proof_detail: String,
}

impl Observed {
    fn password(&self) -> Option<&Secret> {
        match &self.item {
            Ok(PasswordItem::Readable(secret)) => Some(secret),
            _ => None,
        }
    }

    fn action(&self) -> KeychainAction {
        model::keychain_action(login_item::seen(&self.item), self.seen, self.proof)
    }

    /// Why the item gives no usable password, for messages and notes.
    fn why(&self) -> String {
        match &self.item {
            Ok(PasswordItem::Unreadable { why, .. }) | Err(why) => why.clone(),
            Ok(PasswordItem::Missing) => "the item is missing".to_owned(),
            Ok(PasswordItem::Readable(_)) => self.proof_detail.clone(),
        }
    }
}

impl KeychainStore {
    /// The item as the agent can use it (`keychain_password` decides how it is read:
    /// in-process, or through `security` for an item made by it); read once per run.
    pub(super) fn password_item(&self) -> Result<PasswordItem, String> {
        if let Some(secret) = self.password.borrow().as_ref() {
            return Ok(PasswordItem::Readable(secret.clone()));
        }
        let item = LoginItem::new(&self.view)
            .map_err(|e| e.to_string())
            .and_then(|backend| login_item::read(&backend))?;
        if let PasswordItem::Readable(secret) = &item {
            *self.password.borrow_mut() = Some(secret.clone());
        }
        Ok(item)
    }

    /// The keychain password, when the agent can read it.
    pub(super) fn read_password(&self) -> Result<Option<Secret>, String> {
        Ok(match self.password_item()? {
            PasswordItem::Readable(secret) => Some(secret),
            PasswordItem::Missing | PasswordItem::Unreadable { .. } => None,
        })
    }

    /// Replaces the item with one holding `password`, made by `security` so that every build
    /// of the agent can read it (the old item is deleted unread).
    fn store_password(&self, password: &Secret) -> Result<(), StoreError> {
        *self.password.borrow_mut() = None;
        self.proven.set(false);
        let backend = LoginItem::new(&self.view)?;
        login_item::replace(&backend, password)
            .map_err(|e| self.err("storing the keychain password item", e))?;
        *self.password.borrow_mut() = Some(password.clone());
        Ok(())
    }

    /// Deletes the item by reference, never reading it; `Ok(false)` when there was none.
    pub(super) fn delete_password_item(&self) -> Result<bool, StoreError> {
        *self.password.borrow_mut() = None;
        use login_item::PasswordBackend;
        LoginItem::new(&self.view)?
            .delete()
            .map_err(|e| self.err("deleting the keychain password item", e))
    }

    /// Reads the item and, when there is a keychain, proves the password against it (locking
    /// a keychain without an identity to do so only if the run `may_lock` it).
    fn observe(&self, may_lock: bool) -> Result<Observed, StoreError> {
        let mut keychain = self.view.open_existing()?;
        let seen = self.view.seen(keychain.as_ref())?;
        let item = self.password_item();
        let (proof, proof_detail) = match (&item, keychain.as_mut()) {
            // Proven once, it stays proven for this run while the keychain stays unlocked: its
            // password cannot change under the agent's feet. A locked one is unlocked again.
            (Ok(PasswordItem::Readable(_)), Some(_))
                if self.proven.get() && seen == KeychainSeen::Unlocked =>
            {
                (
                    PasswordProof::Right,
                    "proven earlier in this run".to_owned(),
                )
            }
            (Ok(PasswordItem::Readable(password)), Some(keychain)) => {
                self.prove(keychain, seen, password, may_lock)?
            }
            _ => (PasswordProof::NotKnown, "not tried".to_owned()),
        };
        if proof == PasswordProof::Right {
            self.proven.set(true);
        }
        Ok(Observed {
            item,
            keychain,
            seen,
            proof,
            proof_detail,
        })
    }

    /// Proves `password` against `keychain` the way `keychain_model::proof_method` picks, so an
    /// app using the identity is never disturbed: only a keychain holding no identity is ever
    /// locked, and only when the run `may_lock` it.
    pub(super) fn prove(
        &self,
        keychain: &mut SecKeychain,
        seen: KeychainSeen,
        password: &Secret,
        may_lock: bool,
    ) -> Result<(PasswordProof, String), StoreError> {
        let key = match self.view.chosen(keychain)? {
            Some(chosen) => chosen.live.identity.private_key().ok(),
            None => None,
        };
        let status = match model::proof_method(seen, key.is_some(), may_lock) {
            ProofMethod::None => {
                return Ok((
                    PasswordProof::NotKnown,
                    "nothing to prove it against without locking okta.keychain".into(),
                ))
            }
            ProofMethod::Unlock => unlock_status(keychain, password),
            ProofMethod::RewriteKeyAccess => match &key {
                Some(key) => match self.rewrite_partitions(key, password, None) {
                    Ok(()) => 0,
                    Err(super::access::Rewrite::Status(s)) => s,
                    Err(super::access::Rewrite::NoEntry) => {
                        return Ok((
                            PasswordProof::NotKnown,
                            "the key has no partition list entry to prove it with".into(),
                        ))
                    }
                },
                None => return Ok((PasswordProof::NotKnown, "no key".into())),
            },
            ProofMethod::LockThenUnlock => match ffi::lock(keychain) {
                Ok(()) => unlock_status(keychain, password),
                Err(s) => s,
            },
        };
        let detail = match status {
            0 => "securityd accepted it".to_owned(),
            s => format!("securityd answered {}", super::status_text(s)),
        };
        Ok((model::proof_of(status), detail))
    }

    /// The keychain, unlocked, for a run that uses the key: a locked one is unlocked with its
    /// password, which that proves. Nothing is created or rebuilt here. An unlocked keychain
    /// needs no password, unless the last run found the password unusable: then it is read
    /// and proven again, so `status` stops showing what no longer holds. `None` if absent.
    pub(super) fn open_for_use(&self) -> Result<Option<SecKeychain>, StoreError> {
        let Some(keychain) = self.view.open_existing()? else {
            return Ok(None);
        };
        let last_unusable = self
            .view
            .notes()
            .password
            .is_some_and(|n| n.found != PasswordFound::Readable);
        if self.view.seen(Some(&keychain))? == KeychainSeen::Unlocked && !last_unusable {
            return Ok(Some(keychain));
        }
        drop(keychain);
        let observed = self.observe(false)?;
        self.note_password(&observed);
        let action = observed.action();
        let why = observed.why();
        match (action, observed.keychain) {
            (KeychainAction::Use, keychain) => Ok(keychain),
            (KeychainAction::Defer(reason), _) => Err(self.deferred(reason, &why)),
            (KeychainAction::Rebuild(RebuildReason::PasswordWrong), _) => {
                Err(self.wrong_password())
            }
            (KeychainAction::Rebuild(RebuildReason::ItemMissing), _) => Err(StoreError::Damaged {
                path: self.view.path.clone(),
                what: "okta.keychain",
                reason: format!(
                    "its password item {} is missing; `devicetrust enroll` rebuilds it",
                    self.view.item.name
                ),
            }),
            // Only without a keychain, which was there a moment ago: nothing to unlock.
            (KeychainAction::Create { .. }, _) => Ok(None),
        }
    }

    /// The keychain, unlocked, in the search list, without auto-lock: the decision table's
    /// action carried out. A rebuild writes the new item first, then sets the old keychain
    /// aside (its file kept; one such copy at most) and creates a new one; the device then
    /// enrolls again into it.
    pub(super) fn ensure(&self) -> Result<(SecKeychain, Secret), StoreError> {
        let observed = self.observe(true)?;
        self.note_password(&observed);
        self.carry_out(observed)
            .map(|(keychain, password, _)| (keychain, password))
    }

    /// okta.keychain set aside and rebuilt, but only where the decision table says so; the
    /// copy's path. A password that cannot be read now is an error only when `defer_is_error`:
    /// otherwise the run goes on, and whatever needs the password defers then.
    pub(super) fn rebuild_where_unopenable(
        &self,
        defer_is_error: bool,
    ) -> Result<Option<PathBuf>, StoreError> {
        if !self.view.exists() {
            return Ok(None);
        }
        let observed = self.observe(true)?;
        self.note_password(&observed);
        match observed.action() {
            KeychainAction::Rebuild(_) => self.carry_out(observed).map(|(_, _, aside)| aside),
            KeychainAction::Defer(reason) if defer_is_error => {
                Err(self.deferred(reason, &observed.why()))
            }
            KeychainAction::Defer(_) | KeychainAction::Use | KeychainAction::Create { .. } => {
                Ok(None)
            }
        }
    }

    fn carry_out(
        &self,
        observed: Observed,
    ) -> Result<(SecKeychain, Secret, Option<PathBuf>), StoreError> {
        let action = observed.action();
        let why = observed.why();
        let current = observed.password().cloned();
        let (password, aside) = match (action, observed.keychain, current) {
            (KeychainAction::Use, Some(mut keychain), Some(password)) => {
                // Proven by unlocking or rewriting: a locked one is unlocked now.
                self.configure(&mut keychain)?;
                return Ok((keychain, password, None));
            }
            (KeychainAction::Defer(reason), _, _) => return Err(self.deferred(reason, &why)),
            (KeychainAction::Create { .. }, _, Some(password)) => (password, None),
            (KeychainAction::Create { .. }, _, None) => {
                // The item first: a crash after it leaves an item the next run proves against
                // no keychain, a crash after the keychain leaves one the item opens.
                let password = model::generate_keychain_password();
                self.store_password(&password)?;
                (password, None)
            }
            (KeychainAction::Rebuild(reason), keychain, _) => {
                let password = model::generate_keychain_password();
                self.store_password(&password)?;
                let aside = match keychain {
                    Some(keychain) => Some(self.keep_aside(&keychain)?),
                    None => None,
                };
                tracing::warn!(
                    "okta.keychain cannot be opened: {}; {}a new one is made with a fresh \
                     password, and the device enrolls again",
                    match reason {
                        RebuildReason::ItemMissing => "its password item is missing".to_owned(),
                        RebuildReason::PasswordWrong =>
                            format!("its password item does not open it ({why})"),
                    },
                    aside
                        .as_ref()
                        .map(|a| format!("it is kept as {}; ", a.display()))
                        .unwrap_or_default()
                );
                (password, aside)
            }
            (KeychainAction::Use, _, _) => {
                return Err(self.err("opening okta.keychain", "it went away while in use"))
            }
        };
        let mut keychain = self.create(&password)?;
        self.proven.set(true);
        self.configure(&mut keychain)?;
        self.write_notes(|notes| {
            notes.with_password(PasswordFound::Readable, None, crate::timefmt::now_rfc3339())
        });
        Ok((keychain, password, aside))
    }

    /// SecKeychainCreate with the password as a buffer, never a dialog.
    fn create(&self, password: &Secret) -> Result<SecKeychain, StoreError> {
        self.view.checked(&self.view.path)?;
        CreateOptions::new()
            .password(password.expose())
            .prompt_user(false)
            .create(&self.view.path)
            .map_err(|e| self.sec("creating okta.keychain", e))
    }

    /// Exit 75 with the status `status` shows for it.
    fn deferred(&self, reason: DeferReason, why: &str) -> StoreError {
        let what = match reason {
            DeferReason::ItemTimedOut => "did not answer in time",
            DeferReason::ItemRefused => "could not be read without a dialog",
            DeferReason::Unproven => "could not be proven against okta.keychain",
        };
        StoreError::Deferred {
            // The health status `status` shows for it (cli.md).
            status: "Keychain Password Unreadable",
            reason: format!("the {} password item {what} ({why})", self.view.item.name),
        }
    }

    /// A password securityd refused for okta.keychain.
    pub(super) fn wrong_password(&self) -> StoreError {
        StoreError::Damaged {
            path: self.view.path.clone(),
            what: "okta.keychain",
            reason: format!(
                "the {} password item does not open it; `devicetrust enroll` rebuilds it",
                self.view.item.name
            ),
        }
    }

    /// Copies okta.keychain's file beside it under a dated name, removes older such copies,
    /// then deletes the keychain (SecKeychainDelete, so securityd forgets it too); returns where
    /// the copy is. The copy is made before anything is deleted.
    fn keep_aside(&self, keychain: &SecKeychain) -> Result<PathBuf, StoreError> {
        let db = model::keychain_db_path(&self.view.path);
        let file = if db.exists() {
            db
        } else {
            self.view.path.clone()
        };
        let aside = model::aside_path(&file, time::OffsetDateTime::now_utc());
        std::fs::copy(&file, &aside).map_err(|source| StoreError::Io {
            path: aside.clone(),
            action: "keeping the unusable okta.keychain aside",
            source,
        })?;
        if let (Some(dir), Some(kept)) = (aside.parent(), aside.file_name()) {
            let names: Vec<String> = std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            for old in model::asides_to_prune(&names, &kept.to_string_lossy()) {
                if let Err(e) = std::fs::remove_file(dir.join(&old)) {
                    tracing::warn!("the older copy {old} stays: {e}");
                }
            }
        }
        ffi::delete_keychain(keychain)
            .map_err(|s| self.status("deleting the unusable okta.keychain", s))?;
        Ok(aside)
    }

    /// No auto-lock (SecKeychainSetSettings) and ours in the user's search list; the changes.
    pub(super) fn configure(&self, keychain: &mut SecKeychain) -> Result<Vec<String>, StoreError> {
        let mut settings = KeychainSettings::new();
        settings.set_lock_on_sleep(items::LOCK_ON_SLEEP);
        settings.set_lock_interval(items::LOCK_INTERVAL_SECS);
        keychain
            .set_settings(&settings)
            .map_err(|e| self.sec("turning off auto-lock on okta.keychain", e))?;
        let path = self.view.path.clone();
        let added = self.edit_search_list(|current| model::search_list_with(current, &path))?;
        Ok(added
            .then(|| "okta.keychain added to the keychain search list".to_owned())
            .into_iter()
            .collect())
    }

    /// The user's search list as paths goes through `edit`; written back only if it changed,
    /// keeping the references of entries that stay. Whether it changed.
    pub(super) fn edit_search_list(
        &self,
        edit: impl FnOnce(&[PathBuf]) -> Vec<PathBuf>,
    ) -> Result<bool, StoreError> {
        let current = ffi::user_search_list()
            .map_err(|s| self.status("reading the keychain search list", s))?;
        let paths: Vec<PathBuf> = current.iter().map(|(_, p)| p.clone()).collect();
        let wanted = edit(&paths);
        if wanted == paths {
            return Ok(false);
        }
        let mut list = Vec::with_capacity(wanted.len());
        for path in &wanted {
            match current.iter().find(|(_, p)| p == path) {
                Some((keychain, _)) => list.push(keychain.clone()),
                None => {
                    self.view.checked(path)?;
                    list.push(
                        SecKeychain::open(path)
                            .map_err(|e| self.sec("opening a search-list keychain", e))?,
                    );
                }
            }
        }
        ffi::set_user_search_list(&list)
            .map_err(|s| self.status("writing the keychain search list", s))?;
        Ok(true)
    }

    /// What this run found of the password, for the view.
    fn note_password(&self, observed: &Observed) {
        let found = match (observed.action(), &observed.item) {
            (_, Ok(PasswordItem::Missing)) => return,
            (KeychainAction::Rebuild(RebuildReason::PasswordWrong), _) => PasswordFound::Wrong,
            (KeychainAction::Defer(_), _) => PasswordFound::Unreadable,
            _ => PasswordFound::Readable,
        };
        let detail = (found != PasswordFound::Readable).then(|| observed.why());
        self.write_notes(|notes| notes.with_password(found, detail, crate::timefmt::now_rfc3339()));
    }

    /// Rewrites the notes through `change`. Only a shortcut for read-only runs: a failure
    /// costs them detail, never correctness, so it is a debug line.
    pub(super) fn write_notes(&self, change: impl FnOnce(Notes) -> Notes) {
        let notes = change(self.view.notes());
        let place = &self.view.notes;
        let written = place
            .create(0o700)
            .and_then(|dir| {
                let owner = place.owner()?;
                dir.write_file_atomic(NOTES_FILE, &notes.to_json(), 0o600, Some(owner))
            })
            .map_err(|e| e.to_string());
        if let Err(e) = written {
            tracing::debug!("the keychain notes are not kept: {e}");
        }
    }
}

/// SecKeychainUnlock with the password as a buffer (never argv, unlike `security -p`): the
/// OSStatus, 0 when unlocked.
fn unlock_status(keychain: &mut SecKeychain, password: &Secret) -> i32 {
    match keychain.unlock(Some(password.expose())) {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}
