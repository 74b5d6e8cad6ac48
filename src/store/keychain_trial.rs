//! What `devicetrust selftest` measures of the keychain store on a Mac, as plain values: each
//! field is what a call answered, or why it could not be asked. `selftest::keychain` judges
//! them, so the verdicts are tested on every platform with made-up measurements.

use super::keychain_model::{ItemSeen, PasswordProof};
use crate::partition::Partition;
use crate::pki::SigningKey;
use std::path::PathBuf;
use std::time::Duration;

/// What was measured, or why it could not be.
pub type Seen<T> = Result<T, String>;

/// The password item read by a store that had not read it yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRead {
    /// Through `/usr/bin/security` (an item made by it), else in this process.
    pub through_tool: bool,
    pub elapsed: Duration,
}

/// The generated key as Security reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub bits: Option<usize>,
    /// `kSecAttrIsExtractable` as `SecKeyCopyAttributes` reports it.
    pub extractable: Option<bool>,
}

/// The view reading a locked okta.keychain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedRead {
    pub locked_before: bool,
    pub certificate_found: bool,
    pub key_found: bool,
    pub locked_after: bool,
    pub elapsed: Duration,
}

/// A password tried against okta.keychain, and what securityd said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    pub proof: PasswordProof,
    /// securityd's answer, as text.
    pub answer: String,
}

/// A wrong password tried against the locked and the unlocked keychain, and the right one
/// against the unlocked keychain (the unlocked proof must tell them apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongPassword {
    pub wrong_while_locked: Tried,
    pub wrong_while_unlocked: Tried,
    pub right_while_unlocked: Tried,
}

/// The store opening okta.keychain while its password item could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// How the item was seen.
    pub item: ItemSeen,
    /// What the store answered (the error's text, or that it went ahead).
    pub answer: String,
    /// The answer was "try again later" (exit 75).
    pub deferred: bool,
    pub keychain_kept: bool,
    pub item_kept: bool,
    /// Set-aside copies next to okta.keychain afterwards.
    pub asides: usize,
}

/// Identity preferences set in the agent's two forms and looked up as Safari does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub host: String,
    pub wildcard: String,
    pub url: String,
    pub found_by_host: Seen<bool>,
    pub found_by_url: Seen<bool>,
    /// Whether the bare host alone serves the URL.
    pub url_through_host_alone: bool,
}

/// Everything measured in the throwaway keychain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    /// okta.keychain made by the store's own `ensure()`: its path.
    pub created: Seen<PathBuf>,
    /// `SecKeychainGetUserInteractionAllowed` in this process, after the agent turned it off.
    pub interaction_allowed: Seen<bool>,
    pub password_read: Seen<PasswordRead>,
    pub key: Seen<KeyFacts>,
    /// The partition list securityd gave the new key (its creator's ID).
    pub creator_partitions: Seen<Vec<Partition>>,
    /// The running binary's own partition as the agent derives it from its signature.
    pub own_partition: Seen<Partition>,
    /// `Some(bytes)` when Security exported the private key.
    pub export: Seen<Option<usize>>,
    /// The key's decrypt entries: (any application, prompt selector).
    pub decrypt_entries: Seen<Vec<(bool, u16)>>,
    /// The list written with the keychain password, and what securityd returned afterwards.
    pub partitions_written: Seen<(Vec<Partition>, Vec<Partition>)>,
    /// The identity stored through the store's `replace`: its serial.
    pub identity: Seen<String>,
    /// A signature made with user interaction off, verified with the certificate's key: its
    /// length.
    pub signature: Seen<usize>,
    pub locked_read: Seen<LockedRead>,
    pub wrong_password: Seen<WrongPassword>,
    pub unreadable: Seen<Unreadable>,
    pub preferences: Seen<Preferences>,
    /// Cleaning up (search list, throwaway keychains): what went wrong, if anything.
    pub cleanup: Vec<String>,
}

/// The user's real state, read only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealState {
    /// The user's keychain search list and the login keychain's path.
    pub search_list: Seen<(Vec<PathBuf>, PathBuf)>,
    pub okta_keychain: PathBuf,
    /// Whether okta.keychain locks by itself: (on sleep, after an interval).
    pub auto_lock: Seen<(bool, bool)>,
    pub password_read: Seen<PasswordRead>,
    /// The stored identity: its serial and a verified signature's length.
    pub identity: Seen<(String, usize)>,
    /// Whether this process sees the login keychain unlocked: it does only inside the user's
    /// security session.
    pub login_unlocked: Seen<bool>,
    /// This process was started by root's re-execution (`sudo` from uid 0).
    pub reexecuted_by_root: bool,
}

/// Signs a fixed message with `key` and verifies the signature against the public key
/// `spki_der` (the certificate's): the signature's length.
pub fn verified_signature(key: &dyn SigningKey, spki_der: &[u8]) -> Seen<usize> {
    const MESSAGE: &[u8] = b"devicetrust selftest";
    let signature = key
        .sign_sha256(MESSAGE)
        .map_err(|e| format!("signing failed: {e}"))?;
    let public = crate::pki::key::rsa_public_key_from_der(spki_der).map_err(|e| e.to_string())?;
    crate::pki::key::verify_sha256(&public, MESSAGE, &signature, "selftest signature")
        .map_err(|e| format!("the signature does not verify with the certificate's key: {e}"))?;
    Ok(signature.len())
}
