//! The portable identity store: a directory (0700) of PEM files (0600), one generation per
//! identity, and a `CURRENT` file naming the live generation.
//!
//! Replacement writes and syncs a complete new generation, then atomically renames a new
//! `CURRENT` over the old one; the previous generation stays until the next replacement (at
//! most two are kept). A crash before the rename leaves the old identity live, after it the new
//! one; leftovers are swept on the next write. The folder is marked as ours when we create it:
//! a folder holding anything else is refused, and removal deletes only our own entries.

use super::{IdentityStore, StoreError, StoreProbe};
use crate::failpoint;
use crate::fsutil::{create_private_dir, hex, sync_dir, write_private_file};
use crate::pki::{self, CheckedIdentity, NewKey, PrivateKey, SigningKey};
use std::fs;
use std::path::{Path, PathBuf};

/// The marker that says "devicetrust created this folder".
const MARKER: &str = ".devicetrust-store";
const MARKER_TEXT: &[u8] = b"devicetrust file store: only devicetrust writes here\n";
const CURRENT: &str = "CURRENT";
const KEY: &str = "key.pem";
const CERT: &str = "cert.pem";
const CHAIN: &str = "chain.pem";
const META: &str = "meta.json";
const RECORD: &str = "record.json";
const TMP_PREFIX: &str = ".tmp-";
const GENERATION_PREFIX: &str = "id-";
const SET_ASIDE_PREFIX: &str = "damaged-";
/// A PEM key, certificate or chain is a few KiB; anything far bigger is not one of ours.
const MEMBER_MAX: u64 = 256 * 1024;

pub struct FileStore {
    dir: PathBuf,
}

/// What one entry of the store folder is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Marker,
    Current,
    Generation,
    SetAside,
    Temporary,
    Foreign,
}

fn classify(name: &str) -> Entry {
    match name {
        MARKER => Entry::Marker,
        CURRENT => Entry::Current,
        n if n.starts_with(GENERATION_PREFIX) => Entry::Generation,
        n if n.starts_with(SET_ASIDE_PREFIX) => Entry::SetAside,
        n if n.starts_with(TMP_PREFIX) => Entry::Temporary,
        _ => Entry::Foreign,
    }
}

impl FileStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.dir.clone(),
            action,
            source,
        }
    }

    /// The folder's entries by name and kind (an absent folder has none).
    fn entries(&self) -> Result<Vec<(String, Entry, bool)>, StoreError> {
        let list = match fs::read_dir(&self.dir) {
            Ok(list) => list,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io("listing the store", e)),
        };
        let mut entries = Vec::new();
        for entry in list {
            let entry = entry.map_err(|e| self.io("listing the store", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // file_type() does not follow links: a link is never taken for one of our folders.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            entries.push((classify(&name), name, is_dir));
        }
        Ok(entries
            .into_iter()
            .map(|(kind, name, is_dir)| (name, kind, is_dir))
            .collect())
    }

    /// Whether the folder is ours: it carries the marker, or everything in it has one of our
    /// names (a store written before the marker existed). An empty or absent folder is ours to
    /// take.
    fn is_ours(&self) -> Result<bool, StoreError> {
        let entries = self.entries()?;
        Ok(entries.iter().any(|(_, kind, _)| *kind == Entry::Marker)
            || entries.iter().all(|(_, kind, _)| *kind != Entry::Foreign))
    }

    /// The live generation directory, if `CURRENT` names one.
    fn current_generation(&self) -> Result<Option<PathBuf>, StoreError> {
        let name = match read_capped(&self.dir.join(CURRENT)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("reading CURRENT", e)),
        };
        if classify(&name) != Entry::Generation || name.contains('/') {
            return Err(StoreError::Damaged {
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
        match read_capped(&generation.join(name)) {
            Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| StoreError::Damaged {
                path: self.dir.clone(),
                what: "a stored file",
                reason: format!("{name} is not text"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("reading the identity", e)),
        }
    }

    /// Creates the folder (0700) with our marker, or adopts a folder that is ours already.
    fn ensure_ours(&self) -> Result<(), StoreError> {
        if !self.is_ours()? {
            return Err(StoreError::Foreign {
                path: self.dir.clone(),
            });
        }
        create_private_dir(&self.dir).map_err(|e| self.io("creating the store", e))?;
        if !self.dir.join(MARKER).exists() {
            write_private_file(&self.dir.join(MARKER), MARKER_TEXT)
                .map_err(|e| self.io("marking the store", e))?;
        }
        Ok(())
    }

    /// Removes what no longer serves: interrupted writes, generations other than the live one
    /// and the one before it (`keep`), set-aside generations but the newest.
    fn sweep(&self, keep: &[&str]) -> Result<(), StoreError> {
        let mut generations = Vec::new();
        let mut set_aside = Vec::new();
        for (name, kind, is_dir) in self.entries()? {
            match kind {
                Entry::Temporary => self.remove_entry(&name, is_dir)?,
                Entry::Generation if is_dir && !keep.contains(&name.as_str()) => {
                    generations.push(name)
                }
                Entry::SetAside if is_dir => set_aside.push(name),
                _ => {}
            }
        }
        for name in &generations {
            self.remove_entry(name, true)?;
        }
        set_aside.sort();
        for name in set_aside.iter().take(set_aside.len().saturating_sub(1)) {
            self.remove_entry(name, true)?;
        }
        Ok(())
    }

    fn remove_entry(&self, name: &str, is_dir: bool) -> Result<(), StoreError> {
        let path = self.dir.join(name);
        let result = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(self.io("removing an old identity", e))
            }
            _ => Ok(()),
        }
    }
}

/// Reads a store member, refusing anything larger than a PEM file could be.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MEMBER_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MEMBER_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MEMBER_MAX} bytes"),
        ));
    }
    Ok(bytes)
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
        let info = pki::CertificateInfo::from_pem(&pem).map_err(|source| StoreError::Corrupt {
            path: self.dir.clone(),
            what: "the certificate",
            source,
        })?;
        Ok(Some(info.der))
    }

    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        let Some(pem) = self.read_member(KEY)? else {
            return Ok(None);
        };
        let pem = zeroize::Zeroizing::new(pem);
        let key = PrivateKey::from_pkcs8_pem(&pem).map_err(|source| StoreError::Corrupt {
            path: self.dir.clone(),
            what: "the private key",
            source,
        })?;
        Ok(Some(Box::new(key)))
    }

    fn export_key_pkcs8(&self) -> Option<Result<zeroize::Zeroizing<Vec<u8>>, StoreError>> {
        let key = self.read_member(KEY).transpose()?;
        Some(key.and_then(|pem| {
            let pem = zeroize::Zeroizing::new(pem);
            PrivateKey::from_pkcs8_pem(&pem)
                .and_then(|k| k.to_pkcs8_der())
                .map_err(|source| StoreError::Corrupt {
                    path: self.dir.clone(),
                    what: "the private key",
                    source,
                })
        }))
    }

    fn generate_key(&mut self, bits: u32) -> Result<Box<dyn NewKey>, StoreError> {
        let key = PrivateKey::generate_rsa(bits as usize).map_err(StoreError::KeyGeneration)?;
        Ok(Box::new(key))
    }

    fn replace(&mut self, identity: CheckedIdentity, record: &[u8]) -> Result<(), StoreError> {
        self.ensure_ours()?;
        let previous = self.current_generation().ok().flatten();
        let (key, certificate, chain) = identity.into_parts();
        let key = key.into_any().downcast::<PrivateKey>().map_err(|_| {
            StoreError::Unsupported("a key generated by another store cannot be kept here".into())
        })?;
        let generation = generation_name();
        let tmp = self.dir.join(format!("{TMP_PREFIX}{generation}"));
        let key_pem = key
            .to_pkcs8_pem()
            .map_err(|e| StoreError::Unsupported(e.to_string()))?;
        let cert_pem = certificate.to_pem();
        let chain_pem: String = chain
            .iter()
            .map(|c| pki::pem_encode("CERTIFICATE", c))
            .collect();
        let meta = serde_json::json!({
            "format": 1,
            "stored_at": crate::timefmt::now_rfc3339(),
        })
        .to_string();

        let write_generation = || -> std::io::Result<()> {
            create_private_dir(&tmp)?;
            write_private_file(&tmp.join(KEY), key_pem.as_bytes())?;
            write_private_file(&tmp.join(CERT), cert_pem.as_bytes())?;
            write_private_file(&tmp.join(CHAIN), chain_pem.as_bytes())?;
            write_private_file(&tmp.join(META), meta.as_bytes())?;
            write_private_file(&tmp.join(RECORD), record)?;
            sync_dir(&tmp)?;
            fs::rename(&tmp, self.dir.join(&generation))?;
            sync_dir(&self.dir)
        };
        if let Err(e) = write_generation() {
            let _ = fs::remove_dir_all(&tmp);
            return Err(self.io("writing the new identity", e));
        }
        failpoint::hit("store.new-written");

        let tmp_current = self.dir.join(format!("{TMP_PREFIX}{CURRENT}-{generation}"));
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

        let previous_name = previous
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let mut keep = vec![generation.as_str()];
        keep.extend(previous_name.as_deref());
        self.sweep(&keep)
    }

    fn record_copy(&self) -> Option<Vec<u8>> {
        self.read_member(RECORD).ok().flatten().map(String::into_bytes)
    }

    fn set_aside(&mut self) -> Result<Option<String>, StoreError> {
        if !self.is_ours()? {
            return Err(StoreError::Foreign {
                path: self.dir.clone(),
            });
        }
        let name = match read_capped(&self.dir.join(CURRENT)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("reading CURRENT", e)),
        };
        let aside = format!("{SET_ASIDE_PREFIX}{}", generation_name());
        let live = self.dir.join(&name);
        if classify(&name) == Entry::Generation
            && fs::symlink_metadata(&live).is_ok_and(|m| m.is_dir())
        {
            fs::rename(&live, self.dir.join(&aside))
                .map_err(|e| self.io("setting the damaged identity aside", e))?;
        }
        fs::remove_file(self.dir.join(CURRENT))
            .map_err(|e| self.io("setting the damaged identity aside", e))?;
        sync_dir(&self.dir).map_err(|e| self.io("setting the damaged identity aside", e))?;
        Ok(Some(self.dir.join(aside).display().to_string()))
    }

    fn remove(&mut self) -> Result<bool, StoreError> {
        let entries = self.entries()?;
        if entries.is_empty() && !self.dir.exists() {
            return Ok(false);
        }
        if !self.is_ours()? {
            return Err(StoreError::Foreign {
                path: self.dir.clone(),
            });
        }
        let mut removed = false;
        // The marker goes last: an interrupted removal leaves a folder still known as ours.
        for (name, kind, is_dir) in &entries {
            if !matches!(kind, Entry::Foreign | Entry::Marker) {
                self.remove_entry(name, *is_dir)?;
                removed = true;
            }
        }
        self.remove_entry(MARKER, false)?;
        // Something of someone else's in the folder keeps it (and them) in place.
        if !entries.iter().any(|(_, k, _)| *k == Entry::Foreign) {
            match fs::remove_dir(&self.dir) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("removing the store", e)),
            }
        }
        Ok(removed)
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
    format!("{GENERATION_PREFIX}{nanos:024}-{}", hex(&salt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::tests::{client_request, test_authority};
    use time::OffsetDateTime;

    fn checked(store: &mut FileStore) -> CheckedIdentity {
        let key = store.generate_key(2048).unwrap();
        let now = OffsetDateTime::now_utc();
        let der = test_authority()
            .issue(client_request(key.public_key_der().unwrap(), now))
            .unwrap();
        CheckedIdentity::check(key, &der, vec![], Some("Okta MTLS"), now).unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn at_most_the_live_and_the_previous_generation_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        for _ in 0..4 {
            let identity = checked(&mut store);
            store.replace(identity, b"{}").unwrap();
        }
        let generations = names(store.dir())
            .into_iter()
            .filter(|n| n.starts_with(GENERATION_PREFIX))
            .count();
        assert_eq!(generations, 2);
        assert!(store.certificate().unwrap().is_some());
        assert_eq!(store.record_copy().unwrap(), b"{}");
    }

    #[test]
    fn a_folder_with_foreign_files_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("docs");
        fs::create_dir(&folder).unwrap();
        fs::write(folder.join("thesis.txt"), "mine").unwrap();
        fs::create_dir(folder.join("photos")).unwrap();
        let mut store = FileStore::new(&folder);
        let identity = checked(&mut store);
        assert!(matches!(
            store.replace(identity, b"{}"),
            Err(StoreError::Foreign { .. })
        ));
        assert!(matches!(store.remove(), Err(StoreError::Foreign { .. })));
        assert_eq!(names(&folder), ["photos", "thesis.txt"]);
    }

    #[test]
    fn removal_takes_only_our_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        let identity = checked(&mut store);
        store.replace(identity, b"{}").unwrap();
        // Something of the user's lands in our folder after we created it.
        fs::write(store.dir().join("notes.txt"), "keep me").unwrap();
        assert!(store.remove().unwrap());
        assert_eq!(names(store.dir()), ["notes.txt"]);

        let mut clean = FileStore::new(dir.path().join("clean"));
        let identity = checked(&mut clean);
        clean.replace(identity, b"{}").unwrap();
        assert!(clean.remove().unwrap());
        assert!(!clean.dir().exists());
        assert!(!clean.remove().unwrap());
    }

    #[test]
    fn a_damaged_identity_is_set_aside_for_diagnosis() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        let identity = checked(&mut store);
        store.replace(identity, b"{}").unwrap();
        let live = store.current_generation().unwrap().unwrap();
        fs::write(live.join(CERT), "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
        assert!(store.certificate().unwrap_err().is_damage());
        let aside = store.set_aside().unwrap().unwrap();
        assert!(Path::new(&aside).join(CERT).exists());
        assert_eq!(store.certificate().unwrap(), None);
        let identity = checked(&mut store);
        store.replace(identity, b"{}").unwrap();
        assert!(store.certificate().unwrap().is_some());
        assert!(Path::new(&aside).exists(), "kept beside the new identity");
    }
}
