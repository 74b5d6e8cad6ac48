//! What the keychain store asks Security.framework to create, as plain data: the generated key's
//! attributes and access (ACL), which items may be read through `security`, and the
//! identity-preference items.
//!
//! Compiled on every platform: `store::keychain` turns these values into Security calls one to
//! one, so the tests here fail whenever an attribute, an access right or a name changes.

/// Print name (`kSecAttrLabel`) of every key the agent generates: what Keychain Access shows
/// under the certificate, and how the next key generation finds keys that never became part of
/// an identity. A key imported by Okta's task has another label and is never swept.
pub const KEY_LABEL: &str = "devicetrust: Okta MTLS key";
/// Application tag (`kSecAttrApplicationTag`) of generated keys; `security dump-keychain` shows
/// it as attribute `0x00000007`.
pub const KEY_APPLICATION_TAG: &[u8] = b"com.devicetrust.agent";
/// RSA sizes the store generates: Okta asks for 2048, a SCEP payload for 2048, 3072 or 4096.
pub const KEY_SIZES: [u32; 3] = [2048, 3072, 4096];
/// `SecKeychainPromptSelector` flag asking for the keychain password before each use
/// (`kSecKeychainPromptRequirePassphase`); cleared on the entries opened to every app.
pub const PROMPT_REQUIRE_PASSPHRASE: u16 = 0x0001;
/// The ACL authorization that marks the entry `security import -A` opens: in the access
/// `SecAccessCreate` builds it is the one entry that also authorizes signing, MAC, derivation
/// and export (Apple's `Access::makeStandard`).
pub const DECRYPT_AUTHORIZATION: &str = "ACLAuthorizationDecrypt";
/// okta.keychain never locks on sleep or after a time (spec section 6: no auto-lock).
pub const LOCK_ON_SLEEP: bool = false;
/// No lock interval (`useLockInterval` off).
pub const LOCK_INTERVAL_SECS: Option<u32> = None;

/// An attribute name: one `kSec…` constant of Security.framework each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// `kSecAttrKeyType`
    KeyType,
    /// `kSecAttrKeySizeInBits`
    KeySizeInBits,
    /// `kSecAttrIsPermanent`
    IsPermanent,
    /// `kSecAttrIsExtractable`
    IsExtractable,
    /// `kSecAttrLabel`
    Label,
    /// `kSecAttrApplicationTag`
    ApplicationTag,
    /// `kSecUseKeychain`
    UseKeychain,
    /// `kSecAttrAccess` (a `SecAccessRef`: file keychains only)
    Access,
}

/// Which keychain an item goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keychain {
    /// `~/Library/Keychains/okta.keychain-db`
    Okta,
}

/// How an access (`SecAccessRef`) is built: `SecAccessCreate(descriptor, NULL)`, then every ACL
/// entry authorizing `open_entries_authorizing` gets a NULL application list (any app) and
/// loses the flags in `clear_prompt_flags`. That is `security import -A` (and
/// `add-generic-password -A`): the partition list, not the application list, then decides
/// which apps may use the item without a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessSpec {
    /// The entries' description: the name a keychain prompt would show.
    pub descriptor: &'static str,
    pub open_entries_authorizing: &'static str,
    pub applications: Applications,
    pub clear_prompt_flags: u16,
}

/// An ACL entry's application list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applications {
    /// NULL: every application passes the entry (Keychain Access: "Allow all applications").
    Any,
}

/// An attribute value. What exists only at run time (a keychain, an access, the password) is
/// named here and supplied by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `kSecAttrKeyTypeRSA`
    Rsa,
    Number(u32),
    Bool(bool),
    Text(&'static str),
    Bytes(&'static [u8]),
    Keychain(Keychain),
    Access(AccessSpec),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySpecError {
    #[error("an RSA key of {0} bits is not supported; use 2048, 3072 or 4096")]
    UnsupportedSize(u32),
}

/// The generated key's access: any app passes its ACL, as after `security import -x -A`.
pub fn key_access() -> AccessSpec {
    AccessSpec {
        descriptor: KEY_LABEL,
        open_entries_authorizing: DECRYPT_AUTHORIZATION,
        applications: Applications::Any,
        clear_prompt_flags: PROMPT_REQUIRE_PASSPHRASE,
    }
}

/// Whether an item's decrypt entries (each: no application list, prompt selector) let every
/// app read it without a prompt, as after `add-generic-password -A`: only then may the agent
/// ask `security` for it, which could otherwise show a dialog in the user's session.
pub fn opens_to_any_app(decrypt_entries: &[(bool, u16)]) -> bool {
    !decrypt_entries.is_empty()
        && decrypt_entries
            .iter()
            .all(|(any_app, prompt)| *any_app && prompt & PROMPT_REQUIRE_PASSPHRASE == 0)
}

/// The prompt selector an opened entry gets, from the one `SecAccessCreate` gave it.
pub fn opened_prompt(spec: &AccessSpec, current: u16) -> u16 {
    current & !spec.clear_prompt_flags
}

/// The `SecKeyCreateRandomKey` parameters for the device key: RSA of `bits`, generated inside
/// okta.keychain, permanent, not extractable, with the any-app access.
///
/// All at the top level, for how Security reads them (`SecKey.cpp`, `GetKeyParameters`):
/// `kSecAttrIsExtractable` is taken only from the top level and applies only to the private
/// key; a top-level `kSecAttrIsPermanent` stores both halves, as `SecKeyGeneratePair` always
/// does. `kSecUseKeychain` and `kSecAttrAccess` keep the request on the file-keychain path;
/// nothing here (no access control, token or data-protection flag) could send it elsewhere.
pub fn key_attributes(bits: u32) -> Result<Vec<(Attr, Value)>, KeySpecError> {
    if !KEY_SIZES.contains(&bits) {
        return Err(KeySpecError::UnsupportedSize(bits));
    }
    Ok(vec![
        (Attr::KeyType, Value::Rsa),
        (Attr::KeySizeInBits, Value::Number(bits)),
        (Attr::IsPermanent, Value::Bool(true)),
        (Attr::IsExtractable, Value::Bool(false)),
        (Attr::Label, Value::Text(KEY_LABEL)),
        (Attr::ApplicationTag, Value::Bytes(KEY_APPLICATION_TAG)),
        (Attr::UseKeychain, Value::Keychain(Keychain::Okta)),
        (Attr::Access, Value::Access(key_access())),
    ])
}

/// What Security reports about a key it generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratedKey {
    /// `kSecAttrIsExtractable` of `SecKeyCopyAttributes`.
    pub extractable: Option<bool>,
    /// A search of okta.keychain for [`KEY_LABEL`] finds it (its application label).
    pub in_okta_keychain: bool,
    /// From its public key.
    pub modulus_bits: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeneratedKeyError {
    #[error("Security did not report the key as not extractable (kSecAttrIsExtractable: {0:?})")]
    Extractable(Option<bool>),
    #[error("Security did not store the key in okta.keychain")]
    NotStored,
    #[error("Security generated a key of {got:?} bits instead of {want}")]
    WrongSize { want: u32, got: Option<usize> },
}

/// A generated key is used only if Security confirms what was asked: not extractable, stored
/// in okta.keychain, the requested size. Anything else is deleted, never enrolled.
pub fn check_generated_key(key: &GeneratedKey, bits: u32) -> Result<(), GeneratedKeyError> {
    if key.extractable != Some(false) {
        return Err(GeneratedKeyError::Extractable(key.extractable));
    }
    if !key.in_okta_keychain {
        return Err(GeneratedKeyError::NotStored);
    }
    if key.modulus_bits != usize::try_from(bits).ok() {
        return Err(GeneratedKeyError::WrongSize {
            want: bits,
            got: key.modulus_bits,
        });
    }
    Ok(())
}

/// Keys labelled [`KEY_LABEL`] that belong to no identity (their application label, the SHA-1
/// of the public key, is no identity key's): generated for an enrollment or renewal whose
/// certificate was never stored. A key whose label Security did not report is kept.
pub fn orphaned_keys<T>(labelled: Vec<(Option<Vec<u8>>, T)>, identity_keys: &[Vec<u8>]) -> Vec<T> {
    labelled
        .into_iter()
        .filter_map(|(label, key)| match label {
            Some(l) if !identity_keys.contains(&l) => Some(key),
            _ => None,
        })
        .collect()
}

/// Among the identities found in okta.keychain (certificate DER, private key's application
/// label), the one `replace` just stored: our certificate on the key we generated.
pub fn stored_identity(
    found: &[(Vec<u8>, Option<Vec<u8>>)],
    certificate: &[u8],
    key_label: &[u8],
) -> Option<usize> {
    found
        .iter()
        .position(|(der, label)| der == certificate && label.as_deref() == Some(key_label))
}

/// Whether Security treats an identity-preference name as a URL (`_SecIdentityNameIsURL` in
/// `SecIdentity.cpp`: `CFURLCreateWithString` with a non-empty scheme and a decomposable, that
/// is `scheme:/…`, form). Only such names are stored per app.
pub fn preference_name_is_url(name: &str) -> bool {
    let Some((scheme, rest)) = name.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok && rest.starts_with('/')
}

/// The service name Security stores for a preference `name` set by a caller whose application
/// identifier is `caller` (`None` for `security` and Keychain Access, which may edit preference
/// ownership): `SecIdentityCopyPerAppNameForName`. A URL-form name becomes `NAME (caller)`,
/// which Safari never looks up; any other name is stored as given, whoever sets it.
pub fn stored_preference_name(name: &str, caller: Option<&str>) -> String {
    match caller {
        Some(app) if preference_name_is_url(name) => format!("{name} ({app})"),
        _ => name.to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreferenceNameError {
    #[error("an identity preference needs a name")]
    Empty,
    #[error(
        "{0:?} has a scheme: Security would store it under the agent's own app identifier, \
         where Safari does not look; use the bare host name"
    )]
    UrlForm(String),
}

/// Names the agent sets preferences for: non-empty and not URL-form, so the agent's
/// `SecIdentitySetPreferred` stores exactly what `security set-identity-preference -s NAME`
/// would.
pub fn check_preference_name(name: &str) -> Result<(), PreferenceNameError> {
    if name.is_empty() {
        return Err(PreferenceNameError::Empty);
    }
    if preference_name_is_url(name) {
        return Err(PreferenceNameError::UrlForm(name.to_owned()));
    }
    Ok(())
}

/// The generic-password item (type `iprf`) an identity preference is, as `SecIdentitySetPreference`
/// writes it into the user's default (login) keychain with key usage 0 (what a NULL key-usage
/// array and `security set-identity-preference` without `-u` both mean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceItem {
    /// `desc`/type attribute: `iprf`.
    pub item_type: &'static str,
    /// `svce` and `labl`: the stored name.
    pub service: String,
    pub label: String,
    /// `acct`: the certificate's label (its common name) and a trailing space, which keeps an
    /// identity preference apart from a certificate preference for the same name.
    pub account: String,
    /// `scrp`: the key usage, 0 for any.
    pub key_usage: u32,
}

/// The `iprf` item for `name`, set by a caller with app identifier `caller`, preferring the
/// identity whose certificate's label is `certificate_label`.
pub fn preference_item(
    name: &str,
    caller: Option<&str>,
    certificate_label: &str,
) -> PreferenceItem {
    let service = stored_preference_name(name, caller);
    PreferenceItem {
        item_type: "iprf",
        label: service.clone(),
        service,
        account: format!("{certificate_label} "),
        key_usage: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::safari;

    #[test]
    fn the_key_is_rsa_permanent_not_extractable_in_okta_keychain_with_the_any_app_access() {
        assert_eq!(
            key_attributes(2048).unwrap(),
            vec![
                (Attr::KeyType, Value::Rsa),
                (Attr::KeySizeInBits, Value::Number(2048)),
                (Attr::IsPermanent, Value::Bool(true)),
                (Attr::IsExtractable, Value::Bool(false)),
                (Attr::Label, Value::Text("devicetrust: Okta MTLS key")),
                (Attr::ApplicationTag, Value::Bytes(b"com.devicetrust.agent")),
                (Attr::UseKeychain, Value::Keychain(Keychain::Okta)),
                (
                    Attr::Access,
                    Value::Access(AccessSpec {
                        descriptor: "devicetrust: Okta MTLS key",
                        open_entries_authorizing: "ACLAuthorizationDecrypt",
                        applications: Applications::Any,
                        clear_prompt_flags: 0x0001,
                    })
                ),
            ]
        );
    }

    #[test]
    fn the_scep_payload_sizes_are_generated_and_nothing_else() {
        for bits in [2048, 3072, 4096] {
            let attrs = key_attributes(bits).unwrap();
            assert!(attrs.contains(&(Attr::KeySizeInBits, Value::Number(bits))));
        }
        for bits in [0, 1024, 2047, 8192] {
            assert_eq!(
                key_attributes(bits),
                Err(KeySpecError::UnsupportedSize(bits))
            );
        }
    }

    #[test]
    fn opened_entries_lose_only_the_passphrase_requirement() {
        let spec = key_access();
        assert_eq!(opened_prompt(&spec, 0x0001), 0x0000);
        // Unsigned/invalid-code prompt flags (0x10, 0x20, 0x40, 0x80) are Security's to keep.
        assert_eq!(opened_prompt(&spec, 0x00f1), 0x00f0);
        assert_eq!(opened_prompt(&spec, 0x0000), 0x0000);
    }

    #[test]
    fn only_an_item_every_app_may_read_without_a_prompt_goes_to_security() {
        assert!(opens_to_any_app(&[(true, 0x0000)]));
        assert!(opens_to_any_app(&[(true, 0x0010), (true, 0)]));
        assert!(!opens_to_any_app(&[]));
        assert!(!opens_to_any_app(&[(false, 0x0000)]));
        assert!(!opens_to_any_app(&[(true, 0x0001)]));
        assert!(!opens_to_any_app(&[(true, 0), (false, 0)]));
    }

    #[test]
    fn okta_keychain_never_locks_by_itself() {
        assert!(!LOCK_ON_SLEEP);
        assert_eq!(LOCK_INTERVAL_SECS, None);
    }

    #[test]
    fn only_a_confirmed_non_extractable_stored_key_of_the_size_is_used() {
        let good = GeneratedKey {
            extractable: Some(false),
            in_okta_keychain: true,
            modulus_bits: Some(2048),
        };
        assert_eq!(check_generated_key(&good, 2048), Ok(()));
        for extractable in [Some(true), None] {
            let key = GeneratedKey {
                extractable,
                ..good
            };
            assert_eq!(
                check_generated_key(&key, 2048),
                Err(GeneratedKeyError::Extractable(extractable))
            );
        }
        let elsewhere = GeneratedKey {
            in_okta_keychain: false,
            ..good
        };
        assert_eq!(
            check_generated_key(&elsewhere, 2048),
            Err(GeneratedKeyError::NotStored)
        );
        assert_eq!(
            check_generated_key(&good, 4096),
            Err(GeneratedKeyError::WrongSize {
                want: 4096,
                got: Some(2048)
            })
        );
    }

    #[test]
    fn only_labelled_keys_of_no_identity_are_orphans() {
        let live = vec![1u8; 20];
        let keys = vec![
            (Some(live.clone()), "live private"),
            (Some(live.clone()), "live public"),
            (Some(vec![2u8; 20]), "never stored"),
            (None, "unknown"),
        ];
        assert_eq!(orphaned_keys(keys, &[live]), vec!["never stored"]);
        assert_eq!(orphaned_keys(vec![(Some(vec![3u8]), "a")], &[]), vec!["a"]);
    }

    #[test]
    fn the_stored_identity_is_our_certificate_on_our_key() {
        let found = vec![
            (b"old".to_vec(), Some(b"old key".to_vec())),
            (b"new".to_vec(), Some(b"other key".to_vec())),
            (b"new".to_vec(), Some(b"new key".to_vec())),
        ];
        assert_eq!(stored_identity(&found, b"new", b"new key"), Some(2));
        assert_eq!(stored_identity(&found, b"new", b"missing"), None);
        assert_eq!(stored_identity(&[], b"new", b"new key"), None);
    }

    #[test]
    fn url_form_names_are_the_ones_with_a_scheme_and_a_path() {
        for url in [
            "https://acme.devicetrust.okta.com/",
            "https://h/x?y",
            "http://h",
            "a+b.c-d:/x",
        ] {
            assert!(preference_name_is_url(url), "{url}");
        }
        for name in [
            "acme.devicetrust.okta.com",
            "*.okta.com",
            "127.0.0.1:8443",
            "localhost:8443",
            "mailto:it@example.com",
            "1https://x/",
            "",
        ] {
            assert!(!preference_name_is_url(name), "{name}");
        }
    }

    #[test]
    fn our_names_are_stored_exactly_as_security_stores_them() {
        let names =
            safari::identity_preference_hosts("acme.devicetrust.okta.com", Some("okta.com"));
        assert_eq!(names, vec!["acme.devicetrust.okta.com", "*.okta.com"]);
        for name in &names {
            assert_eq!(check_preference_name(name), Ok(()));
            let by_security = preference_item(name, None, "Okta MTLS");
            let by_agent = preference_item(name, Some("com.devicetrust.agent"), "Okta MTLS");
            assert_eq!(by_agent, by_security);
            assert_eq!(
                by_agent,
                PreferenceItem {
                    item_type: "iprf",
                    service: name.clone(),
                    label: name.clone(),
                    account: "Okta MTLS ".to_owned(),
                    key_usage: 0,
                }
            );
        }
    }

    #[test]
    fn a_url_form_name_would_be_stored_per_app_and_is_refused() {
        let url = "https://acme.devicetrust.okta.com/";
        assert_eq!(
            stored_preference_name(url, Some("com.devicetrust.agent")),
            "https://acme.devicetrust.okta.com/ (com.devicetrust.agent)"
        );
        assert_eq!(stored_preference_name(url, None), url);
        assert_eq!(
            check_preference_name(url),
            Err(PreferenceNameError::UrlForm(url.to_owned()))
        );
        assert_eq!(check_preference_name(""), Err(PreferenceNameError::Empty));
        // The first version's URL-form name is only ever removed, never set again.
        assert_eq!(
            safari::legacy_names("acme.devicetrust.okta.com"),
            vec![url.to_owned()]
        );
    }
}
