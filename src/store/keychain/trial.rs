//! `devicetrust selftest` on a Mac, the keychain's part: the store's own code run in a throwaway
//! okta.keychain under a temporary home, with its password item in a throwaway keychain of its
//! own (never the login keychain's `device_trust`), each step measured; then the user's real
//! state, read only. The measurements are `keychain_trial` values: `selftest` judges them.
//!
//! The throwaway okta.keychain is on the user's search list between `ensure()` (which puts it
//! there, as for the real one) and the end, for the identity-preference look-ups, which find
//! keys only there; both throwaway keychains are deleted at the end.

use super::password::LoginItem;
use super::{ffi, no_prompts, status_text, KeychainKey, KeychainStore};
use crate::partition::Partition;
use crate::paths::UserHome;
use crate::pki::authority::{Authority, IssueProfile, IssueRequest};
use crate::pki::{CheckedIdentity, SigningKey};
use crate::secret::Secret;
use crate::securefs::Place;
use crate::store::keychain_items as items;
use crate::store::keychain_model::{self as model, KeychainSeen};
use crate::store::keychain_password::{self as login_item, ItemPlace, PasswordBackend};
use crate::store::keychain_trial::{
    verified_signature, KeyFacts, LockedRead, PasswordRead, Preferences, RealState, Seen, Trial,
    Tried, Unreadable, WrongPassword,
};
use crate::store::{IdentityStore, StoreView};
use security_framework::identity::SecIdentity;
use security_framework::os::macos::keychain::{CreateOptions, SecKeychain};
use std::path::Path;
use std::time::Instant;
use time::{Duration, OffsetDateTime};

/// A step that was not reached.
fn no<T>(why: &str) -> Seen<T> {
    Err(format!("not reached: {why}"))
}

/// A trial whose every step is `why` (it could not start).
fn unreached(why: &str) -> Trial {
    Trial {
        created: Err(why.to_owned()),
        interaction_allowed: no(why),
        password_read: no(why),
        key: no(why),
        creator_partitions: no(why),
        own_partition: crate::codesign::own_partition().map_err(|e| e.to_string()),
        export: no(why),
        decrypt_entries: no(why),
        partitions_written: no(why),
        identity: no(why),
        signature: no(why),
        locked_read: no(why),
        wrong_password: no(why),
        unreadable: no(why),
        preferences: no(why),
        cleanup: Vec::new(),
    }
}

/// Runs the store in a throwaway keychain and measures each step.
pub(crate) fn throwaway() -> Trial {
    no_prompts();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return unreached(&format!("no temporary folder: {e}")),
    };
    let home = dir.path().join("home");
    if let Err(e) = std::fs::create_dir_all(home.join("Library/Keychains")) {
        return unreached(&format!("cannot make {}: {e}", home.display()));
    }
    // The keychain standing in for the login keychain: the item's own, not on the search list.
    let items_path = dir.path().join("items.keychain");
    let items_password = model::generate_keychain_password();
    let items_keychain = match CreateOptions::new()
        .password(items_password.expose())
        .prompt_user(false)
        .create(&items_path)
    {
        Ok(k) => k,
        Err(e) => return unreached(&format!("the item's keychain: {}", status_text(e.code()))),
    };
    let item = ItemPlace {
        keychain: Some(ffi::keychain_path(&items_keychain).unwrap_or(items_path)),
        name: format!("devicetrust-selftest-{}", crate::fsutil::hex(&rand_tag())),
    };
    let notes = Place::new(dir.path(), "state");
    let mut trial = unreached("an earlier step failed");
    let mut store = KeychainStore::at(&home, item.clone(), notes.clone());
    trial.interaction_allowed =
        SecKeychain::user_interaction_allowed().map_err(|e| status_text(e.code()));
    in_store(&mut store, &home, &item, &notes, &mut trial);
    // Cleaning up: whatever happened above.
    let okta = store.view.path.clone();
    if let Err(e) = store.edit_search_list(|list| model::search_list_without(list, &okta)) {
        trial
            .cleanup
            .push(format!("the search list keeps the throwaway keychain: {e}"));
    }
    if let Ok(Some(keychain)) = store.view.open_existing() {
        if let Err(s) = ffi::delete_keychain(&keychain) {
            trial
                .cleanup
                .push(format!("{}: {}", okta.display(), status_text(s)));
        }
    }
    if let Err(s) = ffi::delete_keychain(&items_keychain) {
        trial
            .cleanup
            .push(format!("the item's keychain: {}", status_text(s)));
    }
    trial
}

fn in_store(
    store: &mut KeychainStore,
    home: &Path,
    item: &ItemPlace,
    notes: &Place,
    trial: &mut Trial,
) {
    // The key, through ensure(): the keychain and its password item are made on the way.
    let key = match store.generate_key(2048) {
        Ok(key) => key,
        Err(e) => {
            trial.created = Err(e.to_string());
            return;
        }
    };
    trial.created = Ok(store.view.path.clone());
    let Ok(key) = key.into_any().downcast::<KeychainKey>() else {
        trial.key = Err("the store handed out a key of another store".into());
        return;
    };
    trial.key = Ok(KeyFacts {
        bits: key
            .public_pkcs1()
            .ok()
            .and_then(|p| model::rsa_modulus_bits(&p).ok()),
        extractable: key.bool_attribute(items::Attr::IsExtractable),
    });
    trial.creator_partitions = store
        .view
        .key_partitions(key.sec_key())
        .map_err(|e| e.to_string());
    trial.export = Ok(key
        .sec_key()
        .external_representation()
        .map(|d| d.len().unsigned_abs()));
    trial.decrypt_entries = ffi::item_access(key.sec_key())
        .and_then(|a| ffi::acl_entries(&a, items::DECRYPT_AUTHORIZATION))
        .map(|entries| {
            entries
                .iter()
                .map(|(_, c)| (c.applications.is_none(), c.prompt))
                .collect()
        })
        .map_err(status_text);
    trial.password_read = read_item_afresh(home, item, notes);
    let password = match store.read_password() {
        Ok(Some(p)) => p,
        other => {
            trial.partitions_written = Err(format!("the password item: {other:?}"));
            return;
        }
    };
    let mut wanted = vec![Partition::AppleTool, Partition::Apple];
    wanted.extend(trial.own_partition.clone().ok());
    trial.partitions_written = store
        .set_key_partitions(key.sec_key(), &password, &wanted)
        .and_then(|()| store.view.key_partitions(key.sec_key()))
        .map(|read| (wanted.clone(), read))
        .map_err(|e| e.to_string());
    let identity = match store_identity(store, *key) {
        Ok(identity) => identity,
        Err(e) => {
            trial.identity = Err(e);
            return;
        }
    };
    trial.identity = Ok(identity.1.clone());
    trial.signature = signs(&identity.0);
    trial.preferences = preferences(&identity.0);
    let Ok(mut keychain) = store.view.open() else {
        return;
    };
    trial.locked_read = locked_read(store, &mut keychain);
    trial.wrong_password = wrong_password(store, &mut keychain, &password);
    trial.unreadable = unreadable(store, home, item, notes, &password);
}

/// A store that has not read the item yet reads it: which way, and how long it took.
fn read_item_afresh(home: &Path, item: &ItemPlace, notes: &Place) -> Seen<PasswordRead> {
    let fresh = KeychainStore::at(home, item.clone(), notes.clone());
    let in_process = LoginItem::new(&fresh.view)
        .map(|b| b.read_in_process().is_ok())
        .unwrap_or(false);
    let started = Instant::now();
    let read = fresh.password_item();
    let elapsed = started.elapsed();
    match read {
        Ok(login_item::PasswordItem::Readable(_)) => Ok(PasswordRead {
            through_tool: !in_process,
            elapsed,
        }),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e),
    }
}

/// A certificate from a CA made here, stored through the store's `replace`: the identity and
/// its serial.
fn store_identity(
    store: &mut KeychainStore,
    key: KeychainKey,
) -> Result<(SecIdentity, String), String> {
    let spki = key.public_key_der().map_err(|e| e.to_string())?;
    let ca = Authority::new_self_signed(
        "devicetrust selftest CA",
        std::time::Duration::from_secs(3600),
    )
    .map_err(|e| e.to_string())?;
    let now = OffsetDateTime::now_utc();
    let der = ca
        .issue(IssueRequest {
            subject: "CN=devicetrust selftest".to_owned(),
            public_key_der: spki,
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::hours(1),
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .map_err(|e| e.to_string())?;
    let checked = CheckedIdentity::check(Box::new(key), &der, Vec::new(), None, now)
        .map_err(|e| e.to_string())?;
    let serial = checked.certificate().serial_hex.clone();
    store.replace(checked, b"").map_err(|e| e.to_string())?;
    let identity = store
        .identity_with_certificate(&der)
        .map_err(|e| e.to_string())?
        .ok_or("no SecIdentity for the certificate and the key")?;
    Ok((identity, serial))
}

/// Signs with the identity's key, dialogs off, and verifies with its certificate's key.
fn signs(identity: &SecIdentity) -> Seen<usize> {
    let key = identity
        .private_key()
        .map_err(|e| status_text(e.code()))
        .map(KeychainKey::new)?;
    let certificate = identity.certificate().map_err(|e| status_text(e.code()))?;
    verify_signature(&key, &certificate.to_der())
}

/// A signature of a fixed message by `key`, verified with the public key of `certificate_der`.
fn verify_signature(key: &dyn SigningKey, certificate_der: &[u8]) -> Seen<usize> {
    let info = crate::pki::CertificateInfo::parse(certificate_der).map_err(|e| e.to_string())?;
    verified_signature(key, &info.public_key_der)
}

/// Locks the keychain, then reads it through the view: the certificate and the key found,
/// the keychain still locked.
fn locked_read(store: &KeychainStore, keychain: &mut SecKeychain) -> Seen<LockedRead> {
    ffi::lock(keychain).map_err(status_text)?;
    let locked = |k: &SecKeychain| store.view.seen(Some(k)).map(|s| s == KeychainSeen::Locked);
    let locked_before = locked(keychain).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let view: &dyn StoreView = &store.view;
    let certificate = view.certificate().map_err(|e| e.to_string())?;
    let key_found = match &certificate {
        Some(der) => view.holds_key_of(der).map_err(|e| e.to_string())?,
        None => false,
    };
    let elapsed = started.elapsed();
    Ok(LockedRead {
        locked_before,
        certificate_found: certificate.is_some(),
        key_found,
        locked_after: locked(keychain).map_err(|e| e.to_string())?,
        elapsed,
    })
}

/// A wrong password against the locked keychain, then against the unlocked one, then the
/// right one against the unlocked one, each proven as the store proves a password.
fn wrong_password(
    store: &KeychainStore,
    keychain: &mut SecKeychain,
    right: &Secret,
) -> Seen<WrongPassword> {
    let wrong = model::generate_keychain_password();
    let tried = |keychain: &mut SecKeychain, seen, password: &Secret| {
        store
            .prove(keychain, seen, password, true)
            .map(|(proof, answer)| Tried { proof, answer })
            .map_err(|e| e.to_string())
    };
    let wrong_while_locked = tried(keychain, KeychainSeen::Locked, &wrong)?;
    keychain.unlock(Some(right.expose())).map_err(|e| {
        format!(
            "unlocking with the right password: {}",
            status_text(e.code())
        )
    })?;
    Ok(WrongPassword {
        wrong_while_locked,
        wrong_while_unlocked: tried(keychain, KeychainSeen::Unlocked, &wrong)?,
        right_while_unlocked: tried(keychain, KeychainSeen::Unlocked, right)?,
    })
}

/// Replaces the item with one only `security` may read (made without `-A`), then has a fresh
/// store get okta.keychain ready as for a new key: it must defer and touch nothing.
fn unreadable(
    store: &KeychainStore,
    home: &Path,
    item: &ItemPlace,
    notes: &Place,
    password: &Secret,
) -> Seen<Unreadable> {
    let backend = LoginItem::new(&store.view).map_err(|e| e.to_string())?;
    backend.delete()?;
    backend.create_guarded(password)?;
    let fresh = KeychainStore::at(home, item.clone(), notes.clone());
    let seen = login_item::seen(&fresh.password_item());
    let answer = fresh.ensure();
    let keychains = home.join("Library/Keychains");
    let asides = std::fs::read_dir(&keychains)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".unusable-"))
                .count()
        })
        .unwrap_or(0);
    Ok(Unreadable {
        item: seen,
        deferred: matches!(&answer, Err(e) if e.is_deferred()),
        answer: match answer {
            Ok(_) => "it went ahead and used okta.keychain".to_owned(),
            Err(e) => e.to_string(),
        },
        keychain_kept: fresh.view.exists(),
        item_kept: fresh.view.item_present().unwrap_or(false),
        asides,
    })
}

/// Identity preferences in the agent's two forms, looked up by host and by URL as Safari does;
/// removed again.
fn preferences(identity: &SecIdentity) -> Seen<Preferences> {
    let tag = crate::fsutil::hex(&rand_tag());
    let domain = format!("{tag}.selftest.devicetrust.invalid");
    let host = format!("mtls.{domain}");
    let wildcard = format!("*.{domain}");
    let url = format!("https://{host}/some/path");
    let ours = |found: Option<SecIdentity>| {
        found.and_then(|i| i.certificate().ok()).map(|c| c.to_der())
            == identity.certificate().ok().map(|c| c.to_der())
    };
    let set = |name: &str| ffi::set_identity_preference(Some(identity), name).map_err(status_text);
    let found_by_host = set(&host).map(|()| ours(ffi::identity_preference(&host)));
    let url_through_host_alone = found_by_host.is_ok() && ours(ffi::identity_preference(&url));
    let found_by_url = set(&wildcard).map(|()| ours(ffi::identity_preference(&url)));
    for name in [&host, &wildcard] {
        let _ = ffi::set_identity_preference(None, name);
    }
    Ok(Preferences {
        host,
        wildcard,
        url,
        found_by_host,
        found_by_url,
        url_through_host_alone,
    })
}

fn rand_tag() -> [u8; 6] {
    use rand_core::RngCore;
    let mut tag = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut tag);
    tag
}

/// The user's real state, read only (the password item is read, as the agent reads it; no
/// keychain is unlocked or changed).
pub(crate) fn real_state(home: &UserHome) -> RealState {
    no_prompts();
    let store = KeychainStore::new(home);
    let login = store.view.item_keychain();
    let search_list = ffi::user_search_list()
        .map_err(status_text)
        .and_then(|list| {
            let login = login
                .as_ref()
                .map_err(|e| e.to_string())
                .and_then(|k| ffi::keychain_path(k).map_err(status_text))?;
            Ok((list.into_iter().map(|(_, p)| p).collect(), login))
        });
    let login_unlocked = login
        .map_err(|e| e.to_string())
        .and_then(|k| ffi::is_unlocked(&k).map_err(status_text));
    RealState {
        search_list,
        okta_keychain: store.view.path.clone(),
        auto_lock: auto_lock(&store.view),
        password_read: read_item_afresh(&home.home, &ItemPlace::login(), &home.state_place()),
        identity: real_identity(&store),
        login_unlocked,
        reexecuted_by_root: std::env::var("SUDO_UID").is_ok_and(|uid| uid == "0")
            && !crate::platform::is_root(),
    }
}

/// The stored identity, its key used only if okta.keychain is unlocked already (selftest
/// never unlocks the real one).
fn real_identity(store: &KeychainStore) -> Seen<(String, usize)> {
    let keychain = store
        .view
        .open_existing()
        .map_err(|e| e.to_string())?
        .ok_or("okta.keychain does not exist")?;
    let chosen = store
        .view
        .chosen(&keychain)
        .map_err(|e| e.to_string())?
        .ok_or("no identity in okta.keychain")?;
    let serial = crate::pki::CertificateInfo::parse(&chosen.live.certificate_der)
        .map_err(|e| e.to_string())?
        .serial_hex;
    if store
        .view
        .seen(Some(&keychain))
        .map_err(|e| e.to_string())?
        == KeychainSeen::Locked
    {
        return Err(format!(
            "certificate {serial} found, but okta.keychain is locked: its key is not tried"
        ));
    }
    let key = chosen
        .live
        .identity
        .private_key()
        .map_err(|e| status_text(e.code()))?;
    let length = verify_signature(&KeychainKey::new(key), &chosen.live.certificate_der)?;
    Ok((serial, length))
}

/// Whether okta.keychain locks by itself, read in this process (dialogs off), and only while
/// it is unlocked: securityd would unlock a locked one to hand out its settings.
fn auto_lock(view: &super::KeychainView) -> Seen<(bool, bool)> {
    let keychain = view
        .open_existing()
        .map_err(|e| e.to_string())?
        .ok_or("okta.keychain does not exist")?;
    if view.seen(Some(&keychain)).map_err(|e| e.to_string())? == KeychainSeen::Locked {
        return Err(
            "okta.keychain is locked, and its settings cannot be read without \
                    unlocking it (`devicetrust renew` unlocks it)"
                .into(),
        );
    }
    ffi::auto_lock(&keychain).map_err(status_text)
}
