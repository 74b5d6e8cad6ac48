//! The decisions behind the macOS keychain store that need no operating system: what to do with
//! okta.keychain (the decision table), the keychain password, search-list edits, which identity
//! is live, the partition-ACL encoding, RSA DER.
//!
//! Compiled on every platform so Linux CI tests exactly what `store::keychain` calls on a Mac.

use crate::partition::Partition;
use crate::pki::PkiError;
use crate::secret::Secret;
use const_oid::db::rfc5912::RSA_ENCRYPTION;
use der::asn1::{BitString, UintRef};
use der::{Any, Decode, Encode};
use rand_core::{OsRng, RngCore};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The keychain's name as `security list-keychains` shows it; macOS stores it as `-db`.
pub const KEYCHAIN_NAME: &str = "okta.keychain";
/// Account, service and label of the login-keychain item holding the keychain password.
pub const PASSWORD_ITEM: &str = "device_trust";
/// The ACL authorization under which `security set-key-partition-list` keeps the list.
pub const PARTITION_AUTHORIZATION: &str = "ACLAuthorizationPartitionID";
/// Length of the keychain password (spec section 6).
pub const PASSWORD_LEN: usize = 40;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The largest multiple of 62 that fits a byte: bytes at or above it are rejected, so every
/// character is equally likely (a plain `% 62` would favour the first 8).
const UNBIASED_LIMIT: u8 = 248;

/// `errSecAuthFailed`: the password given is not the keychain's.
pub const ERR_SEC_AUTH_FAILED: i32 = -25293;

/// The `device_trust` password item as this run found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSeen {
    Readable,
    /// `/usr/bin/security` did not answer in time (a dialog nobody answers, a busy securityd).
    TimedOut,
    /// Refused: a locked login keychain, an access list that only a dialog would pass.
    Refused,
    Missing,
}

/// okta.keychain as this run found it (`SecKeychainGetStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeychainSeen {
    Absent,
    Locked,
    Unlocked,
}

/// What is known of the item's password against okta.keychain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProof {
    Right,
    /// securityd refused it: `errSecAuthFailed`.
    Wrong,
    /// Not tried, or the try ended otherwise.
    NotKnown,
}

/// Why okta.keychain is rebuilt: in both cases the old item cannot open it, so replacing the
/// item loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildReason {
    ItemMissing,
    PasswordWrong,
}

/// Why nothing is done now (exit 75, `Keychain Password Unreadable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    ItemTimedOut,
    ItemRefused,
    /// The password was read but could not be proven against okta.keychain.
    Unproven,
}

/// The one thing a run does with okta.keychain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeychainAction {
    /// Use it as it is, unlocked with the proven password.
    Use,
    /// There is none: create it, with the item's password, or with a fresh one whose item is
    /// written first.
    Create { fresh_password: bool },
    /// Write a new item with a fresh password, then set the old keychain aside (kept, the one
    /// set-aside copy) and create a new one: the device enrolls again.
    Rebuild(RebuildReason),
    /// Change nothing and try again later.
    Defer(DeferReason),
}

/// The decision table for okta.keychain. A keychain is rebuilt only when its item is missing
/// or its password is proven wrong; an item that cannot be read now is never a reason to
/// touch anything, nor is a password that could not be proven.
pub fn keychain_action(
    item: ItemSeen,
    keychain: KeychainSeen,
    proof: PasswordProof,
) -> KeychainAction {
    use KeychainAction::*;
    match (item, keychain, proof) {
        (ItemSeen::TimedOut, _, _) => Defer(DeferReason::ItemTimedOut),
        (ItemSeen::Refused, _, _) => Defer(DeferReason::ItemRefused),
        (ItemSeen::Missing, KeychainSeen::Absent, _) => Create {
            fresh_password: true,
        },
        (ItemSeen::Missing, KeychainSeen::Locked | KeychainSeen::Unlocked, _) => {
            Rebuild(RebuildReason::ItemMissing)
        }
        (ItemSeen::Readable, KeychainSeen::Absent, _) => Create {
            fresh_password: false,
        },
        (ItemSeen::Readable, _, PasswordProof::Right) => Use,
        (ItemSeen::Readable, _, PasswordProof::Wrong) => Rebuild(RebuildReason::PasswordWrong),
        (ItemSeen::Readable, _, PasswordProof::NotKnown) => Defer(DeferReason::Unproven),
    }
}

/// How a read password is proven against okta.keychain without disturbing an app that uses
/// the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofMethod {
    /// Nothing to prove against.
    None,
    /// A locked keychain: `SecKeychainUnlock` decodes its blob with the password, and only
    /// then unlocks (securityd `kcdatabase.cpp`, `KeychainDatabase::makeUnlocked`).
    Unlock,
    /// An unlocked keychain accepts any password for unlocking (`makeUnlocked` checks only
    /// while locked), so the password authorises an unchanged rewrite of a key's partition
    /// entry instead: securityd verifies it against the database (`acls.cpp`,
    /// `SecurityServerAcl::changeAcl` → `KeychainDatabase::checkCredentials`, which never
    /// prompts) and refuses a wrong one with `errSecAuthFailed`. Nothing is locked.
    RewriteKeyAccess,
    /// An unlocked keychain holding no identity: lock it, then unlock it with the password. No
    /// app can be using an identity it does not hold; even so, only a run that makes a key
    /// (`enroll`: a renewal always holds an identity) does it, never one that only opens the
    /// keychain for use.
    LockThenUnlock,
}

/// The proof for `keychain`, which holds an identity or not, in a run that `may_lock` it.
pub fn proof_method(
    keychain: KeychainSeen,
    holds_an_identity: bool,
    may_lock: bool,
) -> ProofMethod {
    match keychain {
        KeychainSeen::Absent => ProofMethod::None,
        KeychainSeen::Locked => ProofMethod::Unlock,
        KeychainSeen::Unlocked if holds_an_identity => ProofMethod::RewriteKeyAccess,
        KeychainSeen::Unlocked if may_lock => ProofMethod::LockThenUnlock,
        KeychainSeen::Unlocked => ProofMethod::None,
    }
}

/// What an `OSStatus` of the proving call says of the password.
pub fn proof_of(status: i32) -> PasswordProof {
    match status {
        0 => PasswordProof::Right,
        ERR_SEC_AUTH_FAILED => PasswordProof::Wrong,
        _ => PasswordProof::NotKnown,
    }
}

/// The copies [`aside_path`] made that go when `kept` is set aside: at most one stays.
pub fn asides_to_prune(names: &[String], kept: &str) -> Vec<String> {
    let prefixes = [
        format!("{KEYCHAIN_NAME}-db.unusable-"),
        format!("{KEYCHAIN_NAME}.unusable-"),
    ];
    names
        .iter()
        .filter(|n| n.as_str() != kept && prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .cloned()
        .collect()
}

/// `~/Library/Keychains/okta.keychain` for `home`: the path handed to SecKeychainCreate.
pub fn keychain_path(home: &Path) -> PathBuf {
    home.join("Library/Keychains").join(KEYCHAIN_NAME)
}

/// The file macOS actually writes for `path` (10.12+ appends `-db`).
pub fn keychain_db_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-db");
    PathBuf::from(name)
}

/// Where an okta.keychain that can no longer be unlocked is kept (beside it, the time in the
/// name): `okta.keychain-db.unusable-20250102T030405Z`.
pub fn aside_path(file: &Path, now: OffsetDateTime) -> PathBuf {
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".unusable-{stamp}"));
    PathBuf::from(name)
}

/// A fresh keychain password: 40 characters `[A-Za-z0-9]` from the OS RNG, unbiased.
pub fn generate_keychain_password() -> Secret {
    generate_from(&mut OsRng)
}

fn generate_from(rng: &mut dyn RngCore) -> Secret {
    let mut out = zeroize::Zeroizing::new(String::with_capacity(PASSWORD_LEN));
    let mut buf = zeroize::Zeroizing::new([0u8; 64]);
    while out.len() < PASSWORD_LEN {
        rng.fill_bytes(buf.as_mut());
        for &b in buf.iter() {
            if b < UNBIASED_LIMIT && out.len() < PASSWORD_LEN {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Secret::new(out.as_str())
}

/// Whether two search-list entries name the same keychain: macOS reports `okta.keychain-db`
/// for a keychain created as `okta.keychain`, so the `-db` suffix is not a difference.
pub fn same_keychain(a: &Path, b: &Path) -> bool {
    fn base(p: &Path) -> PathBuf {
        let s = p.as_os_str().to_string_lossy();
        PathBuf::from(s.strip_suffix("-db").unwrap_or(&s).to_owned())
    }
    base(a) == base(b)
}

/// The user's search list with ours appended once; the existing order is kept (the login
/// keychain stays first, so it stays the default for everything else).
pub fn search_list_with(current: &[PathBuf], ours: &Path) -> Vec<PathBuf> {
    let mut list = current.to_vec();
    if !list.iter().any(|p| same_keychain(p, ours)) {
        list.push(ours.to_path_buf());
    }
    list
}

/// The user's search list without ours (uninstall), other entries in order.
pub fn search_list_without(current: &[PathBuf], ours: &Path) -> Vec<PathBuf> {
    current
        .iter()
        .filter(|p| !same_keychain(p, ours))
        .cloned()
        .collect()
}

/// Which identity is live and which are leftovers.
#[derive(Debug, PartialEq, Eq)]
pub struct Chosen<T> {
    pub live: T,
    /// Older identities: what an interrupted replacement left behind, to delete.
    pub leftovers: Vec<T>,
}

/// Picks the identity with the latest notAfter: mid-replacement both the old and the new one
/// are in the keychain, and the new one always outlives the old. Ties keep the first seen.
pub fn choose_identity<T>(candidates: Vec<(OffsetDateTime, T)>) -> Option<Chosen<T>> {
    let best = candidates
        .iter()
        .enumerate()
        .fold(
            None::<(usize, OffsetDateTime)>,
            |best, (i, (t, _))| match best {
                Some((_, bt)) if bt >= *t => best,
                _ => Some((i, *t)),
            },
        )?
        .0;
    let mut live = None;
    let mut leftovers = Vec::new();
    for (i, (_, item)) in candidates.into_iter().enumerate() {
        if i == best {
            live = Some(item);
        } else {
            leftovers.push(item);
        }
    }
    live.map(|live| Chosen { live, leftovers })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionDescriptionError {
    #[error("the partition ACL description is not hex")]
    NotHex,
    #[error("the partition ACL description is not a property list: {0}")]
    NotPlist(String),
    #[error("the partition ACL description has no Partitions array of strings")]
    NoPartitions,
    #[error("the partition ACL description lists {0:?}, which is not a partition ID")]
    BadPartition(String),
}

/// The ACL description `security set-key-partition-list` writes: an XML plist
/// `{"Partitions": [ids…]}`, hex-encoded (lowercase) because ACL descriptions are strings.
pub fn encode_partition_description(list: &[Partition]) -> String {
    let ids = list
        .iter()
        .map(|p| plist::Value::String(p.to_string()))
        .collect();
    let mut dict = plist::Dictionary::new();
    dict.insert("Partitions".to_owned(), plist::Value::Array(ids));
    let mut xml = Vec::new();
    // Writing a dictionary of strings into a Vec cannot fail; an empty result would decode
    // as an error later rather than panic here.
    let _ = plist::Value::Dictionary(dict).to_writer_xml(&mut xml);
    crate::fsutil::hex(&xml)
}

/// Reads the list back from an ACL description (either hex case; surrounding whitespace ok).
pub fn decode_partition_description(
    description: &str,
) -> Result<Vec<Partition>, PartitionDescriptionError> {
    let hex = description.trim();
    if !hex.len().is_multiple_of(2) {
        return Err(PartitionDescriptionError::NotHex);
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(PartitionDescriptionError::NotHex)?;
    let value = plist::Value::from_reader(std::io::Cursor::new(bytes))
        .map_err(|e| PartitionDescriptionError::NotPlist(e.to_string()))?;
    let ids = value
        .as_dictionary()
        .and_then(|d| d.get("Partitions"))
        .and_then(|v| v.as_array())
        .ok_or(PartitionDescriptionError::NoPartitions)?;
    ids.iter()
        .map(|v| {
            let s = v
                .as_string()
                .ok_or(PartitionDescriptionError::NoPartitions)?;
            s.parse::<Partition>()
                .map_err(|_| PartitionDescriptionError::BadPartition(s.to_owned()))
        })
        .collect()
}

/// PKCS#1 `RSAPublicKey`: what `SecKeyCopyExternalRepresentation` returns for an RSA public
/// key.
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn parse_pkcs1(pkcs1: &[u8]) -> Result<RsaPublicKey<'_>, PkiError> {
    let key =
        RsaPublicKey::from_der(pkcs1).map_err(|e| PkiError::InvalidPublicKey(e.to_string()))?;
    if key.modulus.as_bytes().is_empty() || key.public_exponent.as_bytes().is_empty() {
        return Err(PkiError::InvalidPublicKey(
            "the RSA modulus or exponent is zero".to_owned(),
        ));
    }
    Ok(key)
}

/// Wraps a PKCS#1 RSAPublicKey into the SubjectPublicKeyInfo the certificate carries, so the
/// two compare. Garbage from the OS does not pass for a public key: it must parse as PKCS#1.
pub fn rsa_pkcs1_to_spki(pkcs1: &[u8]) -> Result<Vec<u8>, PkiError> {
    parse_pkcs1(pkcs1)?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(pkcs1)
            .map_err(|e| PkiError::InvalidPublicKey(e.to_string()))?,
    };
    spki.to_der()
        .map_err(|e| PkiError::InvalidPublicKey(e.to_string()))
}

/// The size in bits of a PKCS#1 RSAPublicKey's modulus (leading zero bits not counted).
pub fn rsa_modulus_bits(pkcs1: &[u8]) -> Result<usize, PkiError> {
    let key = parse_pkcs1(pkcs1)?;
    let bytes = key.modulus.as_bytes();
    let lead = bytes.first().map_or(0, |b| b.leading_zeros() as usize);
    Ok(bytes.len() * 8 - lead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::allowlist;
    use std::collections::HashSet;
    use time::macros::datetime;

    const KEYCHAINS: [KeychainSeen; 3] = [
        KeychainSeen::Absent,
        KeychainSeen::Locked,
        KeychainSeen::Unlocked,
    ];
    const PROOFS: [PasswordProof; 3] = [
        PasswordProof::Right,
        PasswordProof::Wrong,
        PasswordProof::NotKnown,
    ];

    #[test]
    fn a_missing_item_and_no_keychain_create_both_the_item_first() {
        for proof in PROOFS {
            assert_eq!(
                keychain_action(ItemSeen::Missing, KeychainSeen::Absent, proof),
                KeychainAction::Create {
                    fresh_password: true
                }
            );
        }
    }

    #[test]
    fn a_missing_item_rebuilds_a_locked_keychain() {
        for proof in PROOFS {
            assert_eq!(
                keychain_action(ItemSeen::Missing, KeychainSeen::Locked, proof),
                KeychainAction::Rebuild(RebuildReason::ItemMissing)
            );
        }
    }

    #[test]
    fn a_missing_item_rebuilds_an_unlocked_keychain() {
        for proof in PROOFS {
            assert_eq!(
                keychain_action(ItemSeen::Missing, KeychainSeen::Unlocked, proof),
                KeychainAction::Rebuild(RebuildReason::ItemMissing)
            );
        }
    }

    #[test]
    fn a_readable_item_and_no_keychain_create_it_with_that_password() {
        for proof in PROOFS {
            assert_eq!(
                keychain_action(ItemSeen::Readable, KeychainSeen::Absent, proof),
                KeychainAction::Create {
                    fresh_password: false
                }
            );
        }
    }

    #[test]
    fn a_password_proven_right_uses_a_locked_keychain() {
        assert_eq!(
            keychain_action(
                ItemSeen::Readable,
                KeychainSeen::Locked,
                PasswordProof::Right
            ),
            KeychainAction::Use
        );
    }

    #[test]
    fn a_password_proven_right_uses_an_unlocked_keychain() {
        assert_eq!(
            keychain_action(
                ItemSeen::Readable,
                KeychainSeen::Unlocked,
                PasswordProof::Right
            ),
            KeychainAction::Use
        );
    }

    #[test]
    fn a_password_proven_wrong_rebuilds_a_locked_keychain() {
        assert_eq!(
            keychain_action(
                ItemSeen::Readable,
                KeychainSeen::Locked,
                PasswordProof::Wrong
            ),
            KeychainAction::Rebuild(RebuildReason::PasswordWrong)
        );
    }

    #[test]
    fn a_password_proven_wrong_rebuilds_an_unlocked_keychain() {
        assert_eq!(
            keychain_action(
                ItemSeen::Readable,
                KeychainSeen::Unlocked,
                PasswordProof::Wrong
            ),
            KeychainAction::Rebuild(RebuildReason::PasswordWrong)
        );
    }

    #[test]
    fn a_password_not_proven_defers_and_touches_nothing() {
        for keychain in [KeychainSeen::Locked, KeychainSeen::Unlocked] {
            assert_eq!(
                keychain_action(ItemSeen::Readable, keychain, PasswordProof::NotKnown),
                KeychainAction::Defer(DeferReason::Unproven)
            );
        }
    }

    #[test]
    fn an_item_that_timed_out_is_never_a_reason_to_rebuild() {
        for keychain in KEYCHAINS {
            for proof in PROOFS {
                assert_eq!(
                    keychain_action(ItemSeen::TimedOut, keychain, proof),
                    KeychainAction::Defer(DeferReason::ItemTimedOut)
                );
            }
        }
    }

    #[test]
    fn a_refused_item_is_never_a_reason_to_rebuild() {
        for keychain in KEYCHAINS {
            for proof in PROOFS {
                assert_eq!(
                    keychain_action(ItemSeen::Refused, keychain, proof),
                    KeychainAction::Defer(DeferReason::ItemRefused)
                );
            }
        }
    }

    #[test]
    fn only_a_missing_item_or_a_wrong_password_rebuilds() {
        let items = [
            ItemSeen::Readable,
            ItemSeen::TimedOut,
            ItemSeen::Refused,
            ItemSeen::Missing,
        ];
        for item in items {
            for keychain in KEYCHAINS {
                for proof in PROOFS {
                    let rebuilds = matches!(
                        keychain_action(item, keychain, proof),
                        KeychainAction::Rebuild(_)
                    );
                    let allowed = keychain != KeychainSeen::Absent
                        && (item == ItemSeen::Missing
                            || (item == ItemSeen::Readable && proof == PasswordProof::Wrong));
                    assert_eq!(rebuilds, allowed, "{item:?} {keychain:?} {proof:?}");
                }
            }
        }
    }

    #[test]
    fn a_password_is_proven_by_unlocking_only_a_locked_keychain() {
        for may_lock in [true, false] {
            assert_eq!(
                proof_method(KeychainSeen::Locked, true, may_lock),
                ProofMethod::Unlock
            );
            assert_eq!(
                proof_method(KeychainSeen::Locked, false, may_lock),
                ProofMethod::Unlock
            );
            // Unlocked, an identity may be in use: its key's access is rewritten, nothing
            // locked.
            assert_eq!(
                proof_method(KeychainSeen::Unlocked, true, may_lock),
                ProofMethod::RewriteKeyAccess
            );
            assert_eq!(
                proof_method(KeychainSeen::Absent, true, may_lock),
                ProofMethod::None
            );
        }
    }

    #[test]
    fn only_a_run_that_may_lock_locks_a_keychain_without_an_identity() {
        assert_eq!(
            proof_method(KeychainSeen::Unlocked, false, true),
            ProofMethod::LockThenUnlock
        );
        // The daily job, signing, repair: nothing proven, so nothing done (exit 75).
        assert_eq!(
            proof_method(KeychainSeen::Unlocked, false, false),
            ProofMethod::None
        );
    }

    #[test]
    fn only_err_sec_auth_failed_proves_a_password_wrong() {
        assert_eq!(proof_of(0), PasswordProof::Right);
        assert_eq!(proof_of(-25293), PasswordProof::Wrong);
        // errSecInteractionNotAllowed, errSecNoSuchKeychain: nothing is proven.
        assert_eq!(proof_of(-25308), PasswordProof::NotKnown);
        assert_eq!(proof_of(-25294), PasswordProof::NotKnown);
    }

    #[test]
    fn at_most_one_set_aside_copy_stays() {
        let names: Vec<String> = [
            "okta.keychain-db",
            "login.keychain-db",
            "okta.keychain-db.unusable-20240101T000000Z",
            "okta.keychain.unusable-20230101T000000Z",
            "okta.keychain-db.unusable-20250102T030405Z",
            "other.keychain-db.unusable-20240101T000000Z",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            asides_to_prune(&names, "okta.keychain-db.unusable-20250102T030405Z"),
            [
                "okta.keychain-db.unusable-20240101T000000Z",
                "okta.keychain.unusable-20230101T000000Z"
            ]
        );
    }

    #[test]
    fn passwords_are_40_alphanumerics_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let p = generate_keychain_password();
            assert_eq!(p.expose().len(), PASSWORD_LEN);
            assert!(p.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(p.expose().to_owned()));
        }
    }

    /// An RNG that yields only bytes the sampler must reject, then one it must accept.
    struct Scripted(Vec<u8>, usize);
    impl RngCore for Scripted {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for d in dest {
                *d = self.0[self.1 % self.0.len()];
                self.1 += 1;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    #[test]
    fn bytes_above_the_unbiased_limit_are_rejected() {
        // 248..=255 would map to A..H with `% 62`; only 61 (→ '9') may produce characters.
        let mut rng = Scripted(vec![248, 250, 255, 61], 0);
        let p = generate_from(&mut rng);
        assert_eq!(p.expose(), "9".repeat(PASSWORD_LEN));
    }

    #[test]
    fn every_character_is_reachable() {
        let mut rng = Scripted((0..62).collect(), 0);
        let mut chars = HashSet::new();
        for _ in 0..40 {
            chars.extend(generate_from(&mut rng).expose().chars());
        }
        assert_eq!(chars.len(), 62);
    }

    #[test]
    fn search_list_appends_ours_once_and_keeps_order() {
        let login = PathBuf::from("/Users/a/Library/Keychains/login.keychain-db");
        let other = PathBuf::from("/Users/a/Library/Keychains/other.keychain-db");
        let ours = keychain_path(Path::new("/Users/a"));
        let list = search_list_with(&[login.clone(), other.clone()], &ours);
        assert_eq!(list, vec![login.clone(), other.clone(), ours.clone()]);
        assert_eq!(search_list_with(&list, &ours), list);
        // macOS lists it with -db: still ours, not appended again.
        let listed = vec![login.clone(), keychain_db_path(&ours), other.clone()];
        assert_eq!(search_list_with(&listed, &ours), listed);
        assert_eq!(search_list_without(&listed, &ours), vec![login, other]);
    }

    #[test]
    fn an_unusable_keychain_is_kept_beside_it_under_a_dated_name() {
        let file = Path::new("/Users/a/Library/Keychains/okta.keychain-db");
        assert_eq!(
            aside_path(file, datetime!(2025-01-02 3:04:05 UTC)),
            Path::new("/Users/a/Library/Keychains/okta.keychain-db.unusable-20250102T030405Z")
        );
    }

    #[test]
    fn keychain_paths() {
        let p = keychain_path(Path::new("/Users/a"));
        assert_eq!(p, Path::new("/Users/a/Library/Keychains/okta.keychain"));
        assert_eq!(
            keychain_db_path(&p),
            Path::new("/Users/a/Library/Keychains/okta.keychain-db")
        );
    }

    #[test]
    fn the_latest_not_after_is_live_and_the_rest_are_leftovers() {
        assert_eq!(choose_identity::<&str>(vec![]), None);
        let old = datetime!(2025-01-01 0:00 UTC);
        let new = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(
            choose_identity(vec![(old, "old"), (new, "new")]),
            Some(Chosen {
                live: "new",
                leftovers: vec!["old"]
            })
        );
        assert_eq!(
            choose_identity(vec![(new, "new"), (old, "old"), (old, "older")]),
            Some(Chosen {
                live: "new",
                leftovers: vec!["old", "older"]
            })
        );
        assert_eq!(
            choose_identity(vec![(new, "a"), (new, "b")]).map(|c| c.live),
            Some("a")
        );
    }

    #[test]
    fn partition_descriptions_round_trip() {
        let list = allowlist::defaults();
        let encoded = encode_partition_description(&list);
        assert!(encoded.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(decode_partition_description(&encoded).unwrap(), list);
        assert_eq!(
            decode_partition_description(&encoded.to_uppercase()).unwrap(),
            list
        );
        assert_eq!(
            decode_partition_description(&encode_partition_description(&[])).unwrap(),
            vec![]
        );
    }

    #[test]
    fn the_default_list_is_written_as_this_plist_in_lowercase_hex() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \
                   \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
                   <plist version=\"1.0\">\n<dict>\n\t<key>Partitions</key>\n\t<array>\n\
                   \t\t<string>apple-tool:</string>\n\t\t<string>apple:</string>\n\
                   \t\t<string>teamid:UBF8T346G9</string>\n\t\t<string>teamid:EQHXZ8M8AV</string>\n\
                   \t\t<string>teamid:M683GB7CPW</string>\n\t\t<string>teamid:AL798K98FX</string>\n\
                   \t\t<string>teamid:BQR82RBBHL</string>\n\t</array>\n</dict>\n</plist>";
        assert_eq!(
            encode_partition_description(&allowlist::defaults()),
            crate::fsutil::hex(xml.as_bytes())
        );
        assert_eq!(
            crate::partition::partition_list_string(&allowlist::defaults()),
            "apple-tool:,apple:,teamid:UBF8T346G9,teamid:EQHXZ8M8AV,teamid:M683GB7CPW,\
             teamid:AL798K98FX,teamid:BQR82RBBHL"
        );
    }

    #[test]
    fn decodes_what_security_writes() {
        // The XML `security set-key-partition-list -S apple-tool:,apple:` stores, hex-encoded.
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \
                   \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
                   <plist version=\"1.0\">\n<dict>\n\t<key>Partitions</key>\n\t<array>\n\t\t\
                   <string>apple-tool:</string>\n\t\t<string>apple:</string>\n\t\t\
                   <string>teamid:EQHXZ8M8AV</string>\n\t</array>\n</dict>\n</plist>\n";
        let hex = crate::fsutil::hex(xml.as_bytes());
        assert_eq!(
            decode_partition_description(&hex).unwrap(),
            vec![
                Partition::AppleTool,
                Partition::Apple,
                Partition::TeamId("EQHXZ8M8AV".into())
            ]
        );
    }

    #[test]
    fn bad_descriptions_are_errors() {
        use PartitionDescriptionError::*;
        assert_eq!(decode_partition_description("abc"), Err(NotHex));
        assert_eq!(decode_partition_description("zz"), Err(NotHex));
        assert!(matches!(
            decode_partition_description(&crate::fsutil::hex(b"hello")),
            Err(NotPlist(_))
        ));
        let mut d = plist::Dictionary::new();
        d.insert("Other".into(), plist::Value::Boolean(true));
        let mut xml = Vec::new();
        plist::Value::Dictionary(d).to_writer_xml(&mut xml).unwrap();
        assert_eq!(
            decode_partition_description(&crate::fsutil::hex(&xml)),
            Err(NoPartitions)
        );
        let mut d = plist::Dictionary::new();
        d.insert(
            "Partitions".into(),
            plist::Value::Array(vec![plist::Value::String("bogus".into())]),
        );
        let mut xml = Vec::new();
        plist::Value::Dictionary(d).to_writer_xml(&mut xml).unwrap();
        assert_eq!(
            decode_partition_description(&crate::fsutil::hex(&xml)),
            Err(BadPartition("bogus".into()))
        );
    }

    #[test]
    fn pkcs1_public_keys_wrap_into_the_certificates_spki() {
        let key = crate::pki::key::tests::test_key();
        let spki = key.public_key_der().unwrap();
        let parsed = SubjectPublicKeyInfoOwned::from_der(&spki).unwrap();
        let pkcs1 = parsed.subject_public_key.as_bytes().unwrap();
        assert_eq!(rsa_pkcs1_to_spki(pkcs1).unwrap(), spki);
        assert_eq!(rsa_modulus_bits(pkcs1).unwrap(), 2048);
        assert!(rsa_pkcs1_to_spki(b"garbage").is_err());
        assert!(rsa_modulus_bits(b"garbage").is_err());
    }
}
