//! The portable identity store: a directory (0700) of PEM files (0600), one generation per
//! identity, and a `CURRENT` file naming the live generation.
//!
//! Replacement writes and syncs a complete new generation, then atomically renames a new
//! `CURRENT` over the old one, then deletes the old generation. A crash before the rename
//! leaves the old identity live, after it the new one; leftovers are swept on the next write.

use super::{IdentityStore, NewIdentity, StoreError, StoreProbe};
use crate::failpoint;
use crate::fsutil::{create_private_dir, hex, sync_dir, write_private_file};
use crate::pki::{self, PrivateKey, SigningKey};
use std::fs;
use std::path::{Path, PathBuf};

const CURRENT: &str = "CURRENT";
const KEY: &str = "key.pem";
const CERT: &str = "cert.pem";
const CHAIN: &str = "chain.pem";
const META: &str = "meta.json";
const TMP_PREFIX: &str = ".tmp-";

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, action: &'static str, e: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.dir.clone(),
            action,
            reason: crate::config::io_reason(&e),
        }
    }

    /// The live generation directory, if `CURRENT` names one.
    fn current_generation(&self) -> Result<Option<PathBuf>, StoreError> {
        let name = match fs::read_to_string(self.dir.join(CURRENT)) {
            Ok(n) => n.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("reading CURRENT", e)),
        };
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(StoreError::Corrupt {
                path: self.dir.clone(),
                what: "CURRENT",
                reason: format!("{name:?} is not a generation name"),
            });
        }
        Ok(Some(self.dir.join(name)))
    }

    fn read_member(&self, name: &str) -> Result<Option<String>, StoreError> {
        let Some(generation) = self.current_generation()? else {
            return Ok(None);
        };
        match fs::read_to_string(generation.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("reading the identity", e)),
        }
    }

    fn ensure_dir(&self) -> Result<(), StoreError> {
        create_private_dir(&self.dir).map_err(|e| self.io("creating the store", e))
    }

    /// Removes everything but the live generation: old generations and interrupted writes.
    fn sweep(&self, keep: Option<&Path>) -> Result<(), StoreError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("listing the store", e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let stale_tmp = entry.file_name().to_string_lossy().starts_with(TMP_PREFIX);
            if (is_dir && Some(path.as_path()) != keep) || stale_tmp {
                let result = if is_dir {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                result.map_err(|e| self.io("removing an old identity", e))?;
            }
        }
        Ok(())
    }
}

impl IdentityStore for FileStore {
    fn location(&self) -> String {
        format!("file:{}", self.dir.display())
    }

    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: None,
            password_item: None,
        }
    }

    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(pem) = self.read_member(CERT)? else {
            return Ok(None);
        };
        let info = pki::CertificateInfo::from_pem(&pem).map_err(|e| StoreError::Corrupt {
            path: self.dir.clone(),
            what: "the certificate",
            reason: e.to_string(),
        })?;
        Ok(Some(info.der))
    }

    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        let Some(pem) = self.read_member(KEY)? else {
            return Ok(None);
        };
        let pem = zeroize::Zeroizing::new(pem);
        let key = PrivateKey::from_pkcs8_pem(&pem).map_err(|e| StoreError::Corrupt {
            path: self.dir.clone(),
            what: "the private key",
            reason: e.to_string(),
        })?;
        Ok(Some(Box::new(key)))
    }

    fn replace(&mut self, identity: &NewIdentity<'_>) -> Result<(), StoreError> {
        self.ensure_dir()?;
        let generation = generation_name();
        let tmp = self.dir.join(format!("{TMP_PREFIX}{generation}"));
        let key_pem = identity
            .key
            .to_pkcs8_pem()
            .map_err(|e| StoreError::Unsupported(e.to_string()))?;
        let cert_pem = pki::pem_encode("CERTIFICATE", identity.certificate_der);
        let chain_pem: String = identity
            .chain
            .iter()
            .map(|c| pki::pem_encode("CERTIFICATE", c))
            .collect();
        let meta = serde_json::json!({
            "format": 1,
            "stored_at": crate::state::now_rfc3339(),
        })
        .to_string();

        let write_generation = || -> std::io::Result<()> {
            create_private_dir(&tmp)?;
            write_private_file(&tmp.join(KEY), key_pem.as_bytes())?;
            write_private_file(&tmp.join(CERT), cert_pem.as_bytes())?;
            write_private_file(&tmp.join(CHAIN), chain_pem.as_bytes())?;
            write_private_file(&tmp.join(META), meta.as_bytes())?;
            sync_dir(&tmp)?;
            fs::rename(&tmp, self.dir.join(&generation))?;
            sync_dir(&self.dir)
        };
        if let Err(e) = write_generation() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(self.io("writing the new identity", e));
        }
        failpoint::hit("store.new-written");

        let tmp_current = self.dir.join(format!("{TMP_PREFIX}{CURRENT}"));
        let switch = || -> std::io::Result<()> {
            write_private_file(&tmp_current, generation.as_bytes())?;
            fs::rename(&tmp_current, self.dir.join(CURRENT))?;
            sync_dir(&self.dir)
        };
        if let Err(e) = switch() {
            let _ = fs::remove_file(&tmp_current);
            let _ = fs::remove_dir_all(self.dir.join(&generation));
            return Err(self.io("switching to the new identity", e));
        }
        failpoint::hit("store.switched");

        self.sweep(Some(&self.dir.join(&generation)))
    }

    fn remove(&mut self) -> Result<bool, StoreError> {
        if !self.dir.exists() {
            return Ok(false);
        }
        fs::remove_dir_all(&self.dir).map_err(|e| self.io("removing the store", e))?;
        Ok(true)
    }
}

/// A name that sorts by creation time and never repeats within a store.
fn generation_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut salt = [0u8; 4];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
    format!("id-{nanos}-{}", hex(&salt))
}
