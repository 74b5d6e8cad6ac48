//! A store seen through its view alone: what `plan` opens, so that no step of a survey can
//! write, unlock or read a secret, whatever it calls.

use super::{IdentityStore, SeenPartitions, StoreError, StoreProbe, StoreView};
use crate::partition::Partition;
use crate::pki::{CheckedIdentity, NewKey, SigningKey};

/// `store` with every method that writes, unlocks, reads the keychain password or hands out
/// the key refused; what reads by attributes goes through.
pub struct ReadOnly(pub Box<dyn IdentityStore>);

fn refused(what: &str) -> StoreError {
    StoreError::Unsupported(format!("{what} is refused: this run changes nothing"))
}

impl StoreView for ReadOnly {
    fn location(&self) -> String {
        self.0.location()
    }
    fn probe(&self) -> StoreProbe {
        self.0.probe()
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.certificate()
    }
    fn holds_key_of(&self, certificate_der: &[u8]) -> Result<bool, StoreError> {
        self.0.holds_key_of(certificate_der)
    }
    fn has_partition_list(&self) -> bool {
        self.0.has_partition_list()
    }
    fn seen_partitions(&self) -> Option<Result<Option<SeenPartitions>, StoreError>> {
        self.0.seen_partitions()
    }
}

impl IdentityStore for ReadOnly {
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        Err(refused("using the private key"))
    }
    fn generate_key(&mut self, _: u32) -> Result<Box<dyn NewKey>, StoreError> {
        Err(refused("creating a key"))
    }
    fn replace(&mut self, _: CheckedIdentity, _: &[u8]) -> Result<(), StoreError> {
        Err(refused("storing an identity"))
    }
    /// Creates nothing (the trait's promise).
    fn check_usable(&self) -> Result<(), StoreError> {
        self.0.check_usable()
    }
    fn record_copy(&self) -> Option<Vec<u8>> {
        self.0.record_copy()
    }
    fn set_aside(&mut self) -> Result<Option<String>, StoreError> {
        Err(refused("setting the identity aside"))
    }
    fn set_aside_replaced(&mut self) -> Result<Option<String>, StoreError> {
        Err(refused("setting the identity aside"))
    }
    fn rebuild_if_unopenable(&mut self) -> Result<Option<String>, StoreError> {
        Err(refused("rebuilding the store"))
    }
    fn remove(&mut self) -> Result<bool, StoreError> {
        Err(refused("removing the identity"))
    }
    fn repair(&mut self) -> Result<Vec<String>, StoreError> {
        Err(refused("repairing the store"))
    }
    fn unlock(&self) -> Result<(), StoreError> {
        Err(refused("unlocking the store"))
    }
    fn export_key_pkcs8(&self) -> Option<Result<zeroize::Zeroizing<Vec<u8>>, StoreError>> {
        Some(Err(refused("exporting the private key")))
    }
    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        self.0
            .has_partition_list()
            .then(|| Err(refused("reading the key's access with the password")))
    }
    fn set_partition_list(&mut self, _: &[Partition]) -> Option<Result<(), StoreError>> {
        self.0
            .has_partition_list()
            .then(|| Err(refused("changing the key's access")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FileStore;

    #[test]
    fn every_write_is_refused_and_reads_go_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("identity");
        let mut ro = ReadOnly(Box::new(FileStore::new(store.clone())));
        assert_eq!(ro.certificate().unwrap(), None);
        assert!(ro.check_usable().is_ok());
        assert!(ro.generate_key(2048).is_err());
        assert!(ro.set_aside().is_err());
        assert!(ro.rebuild_if_unopenable().is_err());
        assert!(ro.remove().is_err());
        assert!(ro.repair().is_err());
        assert!(ro.unlock().is_err());
        assert!(ro.signing_key().is_err());
        assert!(ro.export_key_pkcs8().unwrap().is_err());
        assert!(!store.exists(), "nothing was created");
    }
}
