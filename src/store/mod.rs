//! Where the device identity (private key + certificate) lives: the seam between the workflows
//! and the platform's secret storage.
//!
//! The macOS backend keeps it in `okta.keychain`, where the key is also generated; the portable
//! `FileStore` keeps it in a directory only its owner can read. Both replace an identity
//! crash-safely: the new one is complete before the old one goes, so a device never ends up with
//! none. `replace` takes only a [`CheckedIdentity`], so nothing unchecked can be stored.
//!
//! `status` and `ea` see a store only as a [`StoreView`]: what can be read by attributes, with
//! no method that reads the keychain password, unlocks or writes.

pub mod file;
#[cfg(target_os = "macos")]
pub mod keychain;
pub mod keychain_items;
pub mod keychain_model;
pub mod keychain_notes;
pub mod keychain_password;
pub mod keychain_trial;
mod read_only;

use crate::partition::Partition;
use crate::pki::{CheckedIdentity, NewKey, PkiError, SigningKey};
use std::path::PathBuf;

pub use file::FileStore;
#[cfg(target_os = "macos")]
pub use keychain::KeychainStore;
pub use read_only::ReadOnly;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("identity store {}: {action} failed: {}", path.display(), crate::fsutil::io_reason(source))]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A file-system step inside the store's folder (the file store, below a user's home).
    #[error("identity store: cannot {action}: {source}")]
    Fs {
        action: &'static str,
        #[source]
        source: crate::securefs::SecureFsError,
    },
    /// A platform call failed with a status that has no richer type (an `OSStatus`).
    #[error("identity store {}: {action} failed: {reason}", path.display())]
    Os {
        path: PathBuf,
        action: &'static str,
        reason: String,
    },
    #[error("identity store {}: {what} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: PkiError,
    },
    #[error("identity store {}: {what} is not usable: {reason}", path.display())]
    Damaged {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error(
        "{} already holds files devicetrust did not create; choose an empty or new folder for \
         the file store",
        path.display()
    )]
    Foreign { path: PathBuf },
    #[error("identity store: {0}")]
    Unsupported(String),
    #[error("identity store: cannot create the key: {0}")]
    KeyGeneration(#[source] PkiError),
    /// What the store needs cannot be had now (the keychain password item did not answer, or
    /// was refused): nothing was changed, and a later run tries again (exit 75).
    #[error("{status}: {reason}; nothing was changed, and the next run tries again")]
    Deferred {
        status: &'static str,
        reason: String,
    },
}

impl StoreError {
    /// The store cannot be read as it is: `status` names it, `enroll` sets it aside and starts
    /// again (unlike an I/O error, which another try may not see).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. } | StoreError::Damaged { .. }
        )
    }

    /// Nothing is wrong that a later run would not see differently: exit 75.
    pub fn is_deferred(&self) -> bool {
        matches!(self, StoreError::Deferred { .. })
    }
}

/// Whether `key` is the private key of the certificate `certificate_der`.
pub(crate) fn key_matches(key: &dyn SigningKey, certificate_der: &[u8]) -> bool {
    let Ok(certificate) = crate::pki::CertificateInfo::parse(certificate_der) else {
        return false;
    };
    key.public_key_der()
        .is_ok_and(|k| crate::pki::cert::same_public_key(&k, &certificate.public_key_der))
}

/// What the health check needs to know about the store itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreProbe {
    /// The container (okta.keychain) exists; `None` where the store has no container to lose
    /// apart from the identity itself (the file store).
    pub exists: Option<bool>,
    /// The keychain password item; `None` where the store has no such item.
    pub password_item: Option<PasswordItemState>,
}

/// The keychain password item as the health check sees it: its presence from its attributes,
/// the rest from what the last run that needed the password found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordItemState {
    Readable,
    /// There, but the last run that needed it could not read it (a dialog, a refusal, a
    /// timeout).
    Unreadable,
    /// There, but the last run that needed it proved that it does not open the keychain.
    Wrong,
    Missing,
}

/// The key's partition list as a read-only run sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenPartitions {
    pub list: Vec<Partition>,
    /// `None`: read now from the key's access. `Some(time)`: the store could not be read
    /// without its password, and this is what the run at `time` verified.
    pub recorded_at: Option<String>,
}

/// What `status` and `ea` may do with a store: read it by attributes. No method here reads the
/// keychain password, unlocks or writes, so on a Mac the health check starts no
/// `/usr/bin/security` and can show no dialog, and a locked okta.keychain stays locked.
pub trait StoreView {
    /// Where the identity lives, for `status` and log lines.
    fn location(&self) -> String;
    fn probe(&self) -> StoreProbe;
    /// The device certificate (DER), if one is stored.
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether the private key of the certificate `certificate_der` is stored with it.
    fn holds_key_of(&self, certificate_der: &[u8]) -> Result<bool, StoreError>;
    /// Whether the key carries a partition list (the keychain does, the file store does not).
    /// Cheap, so callers can skip working out the desired list where it cannot apply.
    fn has_partition_list(&self) -> bool {
        false
    }
    /// The key's partition list as far as it can be seen without the password; `None` where
    /// the store has no such thing, `Some(Ok(None))` where it cannot be seen at all now.
    fn seen_partitions(&self) -> Option<Result<Option<SeenPartitions>, StoreError>> {
        None
    }
}

/// The whole store: what the workflows that change the identity use.
pub trait IdentityStore: StoreView {
    /// A handle that signs with the stored private key, if one is stored.
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError>;
    /// A new RSA key of `bits`, generated where the store will keep it. It becomes part of the
    /// identity only through `replace`; a key never stored is cleaned up by the next write.
    fn generate_key(&mut self, bits: u32) -> Result<Box<dyn NewKey>, StoreError>;
    /// Stores `identity`, with `record` (the enrollment record, opaque here) kept beside it so
    /// a damaged state file can be rebuilt; only then removes the previous identity.
    fn replace(&mut self, identity: CheckedIdentity, record: &[u8]) -> Result<(), StoreError>;
    /// Whether `replace` could store an identity here now (the folder is reachable without a
    /// planted link and is ours, or can be made ours), checked before a certificate is
    /// requested. Nothing is created.
    fn check_usable(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The record stored with the live identity, where the store keeps one.
    fn record_copy(&self) -> Option<Vec<u8>> {
        None
    }
    /// Sets a damaged identity aside (kept for diagnosis, no longer live) so a fresh enrollment
    /// can start; returns where it went.
    fn set_aside(&mut self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// After `replace` took the place of an identity that was not ours (another CA's), keeps
    /// that one aside rather than as the previous generation a later replacement deletes;
    /// returns where it went. Where `replace` removes the old identity (the keychain: the
    /// foreign item goes, okta.keychain and its password stay) there is nothing to keep.
    fn set_aside_replaced(&mut self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Sets the store aside and starts a new one where it can no longer be opened at all
    /// (okta.keychain whose password item is gone or proven wrong), so `enroll` enrolls
    /// afresh; where the old one went. Nothing happens where the store can be opened, or
    /// where that cannot be told now.
    fn rebuild_if_unopenable(&mut self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Removes the identity and what the store created for it; `Ok(false)` when there was
    /// nothing. Anything the store did not create stays.
    fn remove(&mut self) -> Result<bool, StoreError>;
    /// Re-applies the store's own settings (search list, no auto-lock); the changes made.
    fn repair(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    /// Opens the store for the apps that use the identity: okta.keychain unlocked with its
    /// password, once that password is proven. Never creates or rebuilds anything; a password
    /// that cannot be read now is [`StoreError::Deferred`].
    fn unlock(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The private key as PKCS#8 DER, for handing the identity to another store (the user's
    /// NSS database on Linux); `None` where the key never leaves its store (the keychain).
    fn export_key_pkcs8(&self) -> Option<Result<zeroize::Zeroizing<Vec<u8>>, StoreError>> {
        None
    }
    /// The private key's partition list (the apps allowed to use it without a prompt), read
    /// now, unlocking the store if need be; `None` where the store has no such thing.
    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        None
    }
    /// Sets the private key's partition list; `None` where the store has none.
    fn set_partition_list(&mut self, _list: &[Partition]) -> Option<Result<(), StoreError>> {
        None
    }
}
