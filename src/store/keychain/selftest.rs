//! `devicetrust selftest` on a Mac: what the keychain store relies on, proven in a throwaway
//! keychain (never okta.keychain; the login keychain holds only two identity preferences under
//! names of this run, removed before the end), then the user's real state, read only.

use super::key::KeychainKey;
use super::{ffi, no_prompts, status_text, KeychainStore};
use crate::partition::{partition_list_string, Partition};
use crate::pki::authority::{Authority, IssueProfile, IssueRequest};
use crate::pki::SigningKey;
use crate::secret::Secret;
use crate::selftest::{signs, Outcome, Report};
use crate::store::keychain_items as items;
use crate::store::keychain_model as model;
use crate::store::keychain_password::PasswordItem;
use crate::store::IdentityStore;
use security_framework::certificate::SecCertificate;
use security_framework::identity::SecIdentity;
use security_framework::os::macos::keychain::{CreateOptions, SecKeychain};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// The checks in a throwaway keychain under a temporary folder, deleted afterwards.
pub(crate) fn throwaway(report: &mut Report) {
    no_prompts();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return report.add("throwaway keychain", Outcome::Fail, e.to_string()),
    };
    let store = KeychainStore::new(dir.path());
    let password = model::generate_keychain_password();
    let created = store
        .path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .map_err(|e| e.to_string())
        .and_then(|_| {
            CreateOptions::new()
                .password(password.expose())
                .prompt_user(false)
                .create(&store.path)
                .map_err(|e| status_text(e.code()))
        });
    let keychain = match created {
        Ok(keychain) => keychain,
        Err(e) => return report.add("throwaway keychain", Outcome::Fail, e),
    };
    report.add(
        "throwaway keychain",
        Outcome::Pass,
        format!("created {} (not on the search list)", store.path.display()),
    );
    in_keychain(&store, &keychain, &password, report);
    if let Err(s) = ffi::delete_keychain(&keychain) {
        report.add("throwaway keychain removed", Outcome::Fail, status_text(s));
    }
}

fn in_keychain(
    store: &KeychainStore,
    keychain: &SecKeychain,
    password: &Secret,
    report: &mut Report,
) {
    let key = match store.generate(keychain, 2048) {
        Ok(key) => {
            report.add(
                "key generated non-extractable",
                Outcome::Pass,
                "RSA 2048 generated in the keychain; Security reports kSecAttrIsExtractable \
                 false, and a search of the keychain finds it",
            );
            key
        }
        Err(e) => {
            return report.add(
                "key generated non-extractable",
                Outcome::Fail,
                e.to_string(),
            )
        }
    };
    report.result(
        "export refused",
        match key.sec_key().external_representation() {
            None => {
                Ok("SecKeyCopyExternalRepresentation returned no data for the private key".into())
            }
            Some(data) => Err(format!(
                "the private key was exported ({} bytes)",
                data.len()
            )),
        },
    );
    report.result("access: any app, no prompt", access(&key));
    report.result(
        "partition list as written",
        partitions(store, &key, password),
    );
    let spki = match key.public_key_der() {
        Ok(spki) => spki,
        Err(e) => return report.add("identity", Outcome::Fail, e.to_string()),
    };
    let identity = match identity(store, keychain, &spki) {
        Ok(identity) => {
            report.add(
                "identity",
                Outcome::Pass,
                "a certificate from an in-process CA forms a SecIdentity with the key",
            );
            identity
        }
        Err(e) => return report.add("identity", Outcome::Fail, e),
    };
    report.result("signature without user interaction", signs(&key, &spki));
    preferences(store, keychain, &identity, report);
}

/// The decrypt entry admits any application without the passphrase prompt (`import -A`).
fn access(key: &KeychainKey) -> Result<String, String> {
    let access = ffi::key_access(key.sec_key()).map_err(status_text)?;
    let entries = ffi::acl_entries(&access, items::DECRYPT_AUTHORIZATION).map_err(status_text)?;
    let seen: Vec<(bool, u16)> = entries
        .iter()
        .map(|(_, c)| (c.applications.is_none(), c.prompt))
        .collect();
    if items::opens_to_any_app(&seen) {
        Ok(format!(
            "{} decrypt entr(ies), application list NULL, prompt selector {:#06x}",
            seen.len(),
            seen[0].1
        ))
    } else {
        Err(format!("decrypt entries (any app, prompt): {seen:?}"))
    }
}

/// The list written with the keychain password reads back the same.
fn partitions(
    store: &KeychainStore,
    key: &KeychainKey,
    password: &Secret,
) -> Result<String, String> {
    let mut wanted = vec![Partition::AppleTool, Partition::Apple];
    if let Ok(own) = crate::codesign::own_partition() {
        wanted.push(own);
    }
    store
        .set_key_partitions(key, password, &wanted)
        .map_err(|e| e.to_string())?;
    let read = store.key_partitions(key).map_err(|e| e.to_string())?;
    if read == wanted {
        Ok(partition_list_string(&read))
    } else {
        Err(format!(
            "wrote {}, read back {}",
            partition_list_string(&wanted),
            partition_list_string(&read)
        ))
    }
}

/// A certificate for the key from a CA made here, added to the keychain, found as an identity.
fn identity(
    store: &KeychainStore,
    keychain: &SecKeychain,
    spki: &[u8],
) -> Result<SecIdentity, String> {
    let ca = Authority::new_self_signed(
        "devicetrust selftest CA",
        std::time::Duration::from_secs(3600),
    )
    .map_err(|e| e.to_string())?;
    let now = OffsetDateTime::now_utc();
    let der = ca
        .issue(IssueRequest {
            subject: "CN=devicetrust selftest".to_owned(),
            public_key_der: spki.to_vec(),
            not_before: now - Duration::minutes(5),
            not_after: now + Duration::hours(1),
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .map_err(|e| e.to_string())?;
    SecCertificate::from_der(&der)
        .and_then(|c| c.add_to_keychain(Some(keychain.clone())))
        .map_err(|e| status_text(e.code()))?;
    store
        .identities(keychain)
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|f| f.certificate_der == der)
        .map(|f| f.identity)
        .ok_or_else(|| "no SecIdentity for the certificate and the key".to_owned())
}

/// Identity preferences in the agent's two forms, looked up by host and by URL as Safari does.
/// SecIdentityCopyPreferred finds the key only in the search list, so the throwaway keychain is
/// on it for these checks; both are undone before returning.
fn preferences(
    store: &KeychainStore,
    keychain: &SecKeychain,
    identity: &SecIdentity,
    report: &mut Report,
) {
    let Ok(path) = ffi::keychain_path(keychain) else {
        return report.add(
            "identity preferences",
            Outcome::Fail,
            "the throwaway keychain has no path",
        );
    };
    let tag = crate::fsutil::hex(&rand_tag());
    let domain = format!("{tag}.selftest.devicetrust.invalid");
    let host = format!("mtls.{domain}");
    let wildcard = format!("*.{domain}");
    let url = format!("https://{host}/some/path");
    if let Err(e) = store.edit_search_list(|list| model::search_list_with(list, &path)) {
        return report.add("identity preferences", Outcome::Fail, e.to_string());
    }
    let ours = |found: Option<SecIdentity>| {
        found.and_then(|i| i.certificate().ok()).map(|c| c.to_der())
            == identity.certificate().ok().map(|c| c.to_der())
    };
    let set = |name: &str| ffi::set_identity_preference(Some(identity), name).map_err(status_text);
    let by_host = set(&host).map(|()| ours(ffi::identity_preference(&host)));
    let url_bare_only = by_host
        .as_ref()
        .ok()
        .map(|_| ours(ffi::identity_preference(&url)));
    let by_url = set(&wildcard).map(|()| ours(ffi::identity_preference(&url)));
    for name in [&host, &wildcard] {
        let _ = ffi::set_identity_preference(None, name);
    }
    let restored = store.edit_search_list(|list| model::search_list_without(list, &path));
    report.result(
        "identity preference for a host",
        match by_host {
            Ok(true) => Ok(format!(
                "set for {host}, found by SecIdentityCopyPreferred({host})"
            )),
            Ok(false) => Err(format!("set for {host}, not found by that name")),
            Err(e) => Err(e),
        },
    );
    report.result(
        "identity preference for a URL",
        match by_url {
            Ok(true) => Ok(format!(
                "{url} found through {wildcard}; through the bare host alone: {}",
                if url_bare_only == Some(true) {
                    "found"
                } else {
                    "not found"
                }
            )),
            Ok(false) => Err(format!("{url} not found through {wildcard}")),
            Err(e) => Err(e),
        },
    );
    if let Err(e) = restored {
        report.add("search list restored", Outcome::Fail, e.to_string());
    }
}

fn rand_tag() -> [u8; 6] {
    use rand_core::RngCore;
    let mut tag = [0u8; 6];
    rand_core::OsRng.fill_bytes(&mut tag);
    tag
}

/// The user's real state, read only: okta.keychain in the search list (the login keychain
/// still first) without auto-lock, the identity, the password item readable by the agent.
pub(crate) fn real_state(home: &Path, report: &mut Report) {
    let store = KeychainStore::new(home);
    report.result("okta.keychain on the search list", search_list(&store));
    report.result(
        "okta.keychain never locks by itself",
        store
            .open_existing()
            .map_err(|e| e.to_string())
            .and_then(|k| k.ok_or_else(|| "okta.keychain does not exist".to_owned()))
            .and_then(|k| ffi::auto_lock(&k).map_err(status_text))
            .and_then(|(on_sleep, interval)| match (on_sleep, interval) {
                (false, false) => Ok("no lock on sleep, no lock interval".to_owned()),
                _ => Err(format!(
                    "lock on sleep {on_sleep}, lock interval {interval}"
                )),
            }),
    );
    report.result(
        "password item readable by the agent",
        match store.password_item() {
            Ok(PasswordItem::Readable(_)) => {
                Ok("the device_trust item's password was read without a dialog".to_owned())
            }
            Ok(PasswordItem::Missing) => {
                Err("no device_trust item in the login keychain".to_owned())
            }
            Ok(PasswordItem::Unreadable(why)) => Err(why),
            Err(e) => Err(e.to_string()),
        },
    );
    let identity = store
        .certificate()
        .and_then(|c| Ok((c, store.signing_key()?)));
    report.result(
        "okta.keychain identity",
        match identity {
            Ok((Some(der), Some(key))) => crate::pki::CertificateInfo::parse(&der)
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    signs(key.as_ref(), &c.public_key_der)
                        .map(|e| format!("certificate {}: {e}", c.serial_hex))
                }),
            Ok((None, _)) => Err("no certificate in okta.keychain".to_owned()),
            Ok((Some(_), None)) => Err("the certificate has no private key".to_owned()),
            Err(e) => Err(e.to_string()),
        },
    );
}

fn search_list(store: &KeychainStore) -> Result<String, String> {
    let list = ffi::user_search_list().map_err(status_text)?;
    let login = store
        .login_keychain()
        .map_err(|e| e.to_string())
        .and_then(|k| ffi::keychain_path(&k).map_err(status_text))?;
    let paths: Vec<_> = list.iter().map(|(_, p)| p.clone()).collect();
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if !paths.iter().any(|p| model::same_keychain(p, &store.path)) {
        return Err(format!("okta.keychain is not in [{shown}]"));
    }
    if paths
        .first()
        .is_none_or(|p| !model::same_keychain(p, &login))
    {
        return Err(format!("the login keychain is not first in [{shown}]"));
    }
    Ok(format!("[{shown}]"))
}
