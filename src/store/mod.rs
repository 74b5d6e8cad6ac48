//! Where the device identity (private key + certificate) lives: the seam between the workflows
//! and the platform's secret storage.
//!
//! The macOS backend keeps it in `okta.keychain`; the portable `FileStore` keeps it in a
//! directory only its owner can read. Both replace an identity crash-safely: the new one is
//! complete before the old one goes, so a device never ends up with none.

pub mod file;
#[cfg(target_os = "macos")]
pub mod keychain;
pub mod keychain_model;

use crate::integrations::allowlist::Partition;
use crate::pki::{PrivateKey, SigningKey};
use std::path::PathBuf;

pub use file::FileStore;
#[cfg(target_os = "macos")]
pub use keychain::KeychainStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("identity store {path}: {action} failed: {reason}")]
    Io {
        path: PathBuf,
        action: &'static str,
        reason: String,
    },
    #[error("identity store {path}: {what} is corrupt: {reason}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("identity store: {0}")]
    Unsupported(String),
}

/// A freshly issued identity, ready to be stored.
pub struct NewIdentity<'a> {
    pub key: &'a PrivateKey,
    pub certificate_der: &'a [u8],
    /// Issuer certificates, nearest first (may be empty).
    pub chain: &'a [Vec<u8>],
}

/// What the health check needs to know about the store itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreProbe {
    /// The container (okta.keychain) exists; `None` where the store has no container to lose
    /// apart from the identity itself (the file store).
    pub exists: Option<bool>,
    /// The keychain password item is present; `None` where the store has no such item.
    pub password_item: Option<bool>,
}

pub trait IdentityStore {
    /// Where the identity lives, for `status` and log lines.
    fn location(&self) -> String;
    fn probe(&self) -> StoreProbe;
    /// The device certificate (DER), if one is stored.
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// A handle that signs with the stored private key, if one is stored.
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError>;
    /// Stores `identity` and only then removes the previous one.
    fn replace(&mut self, identity: &NewIdentity<'_>) -> Result<(), StoreError>;
    /// Removes the identity and the store itself; `Ok(false)` when there was nothing.
    fn remove(&mut self) -> Result<bool, StoreError>;
    /// Whether the key carries a partition list (the keychain does, the file store does not).
    /// Cheap, so callers can skip working out the desired list where it cannot apply.
    fn has_partition_list(&self) -> bool {
        false
    }
    /// The private key's partition list (the apps allowed to use it without a prompt);
    /// `None` where the store has no such thing (the file store).
    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        None
    }
    /// Sets the private key's partition list; `None` where the store has none.
    fn set_partition_list(&mut self, _list: &[Partition]) -> Option<Result<(), StoreError>> {
        None
    }
}
