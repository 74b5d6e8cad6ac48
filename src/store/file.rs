//! The portable identity store: a directory (0700) of PEM files (0600), one generation per
//! identity, and a `CURRENT` file naming the live generation.
//!
//! Replacement writes and syncs a complete new generation, then atomically renames a new
//! `CURRENT` over the old one; the previous generation stays until the next replacement (at
//! most two are kept). A crash before the rename leaves the old identity live, after it the new
//! one; leftovers are swept on the next write. The folder is marked as ours when we create it:
//! a folder holding anything else is refused, and removal deletes only our own entries.

use super::{IdentityStore, StoreError, StoreProbe, StoreView};
use crate::failpoint;
use crate::fsutil::hex;
use crate::pki::{self, CheckedIdentity, NewKey, PrivateKey, SigningKey};
use crate::securefs::{self, FileKind, Owner, Place, SecureDir, SecureFsError};
use std::ffi::OsString;
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

/// The store folder, reached from a trusted base without following links: below the user's
/// home for the default store, below the admin's parent folder for `--store file:DIR`.
pub struct FileStore {
    place: Place,
    dir: PathBuf,
}

/// What one entry of the store folder is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Marker,
    Current,
    Generation,
    SetAside,
    Temporary,
    Foreign,
}

fn classify(name: &str) -> Class {
    match name {
        MARKER => Class::Marker,
        CURRENT => Class::Current,
        n if n.starts_with(GENERATION_PREFIX) => Class::Generation,
        n if n.starts_with(SET_ASIDE_PREFIX) => Class::SetAside,
        n if n.starts_with(TMP_PREFIX) => Class::Temporary,
        // An interrupted replacement of `CURRENT` or the marker.
        n if securefs::temp_target(n.as_ref())
            .is_some_and(|target| target == CURRENT || target == MARKER) =>
        {
            Class::Temporary
        }
        _ => Class::Foreign,
    }
}

/// One entry of the store folder.
struct Member {
    name: OsString,
    class: Class,
    kind: FileKind,
}

/// Whether a folder holding `entries` is ours: it carries the marker, or everything in it has
/// one of our names (a store written before the marker existed). An empty folder is ours to
/// take.
fn is_ours(entries: &[Member]) -> bool {
    entries.iter().any(|m| m.class == Class::Marker)
        || entries.iter().all(|m| m.class != Class::Foreign)
}

impl FileStore {
    /// The folder an admin named (`--store file:DIR`). Its parent is the admin's and is opened
    /// as the OS resolves it (and created if missing); the folder itself and everything in it
    /// are reached without following links.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let place = match (dir.parent(), dir.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                Place::new(parent, name)
            }
            _ => Place::new(&dir, ""),
        };
        FileStore {
            place: place.creating_base(),
            dir,
        }
    }

    /// The store in `place` (the default store, in the user's state directory).
    pub fn at(place: Place) -> Self {
        FileStore {
            dir: place.path(),
            place,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open(&self, action: &'static str) -> Result<Option<SecureDir>, StoreError> {
        self.place.open().map_err(fs(action))
    }

    /// The folder's entries by name, class and kind.
    fn entries(&self, dir: &SecureDir) -> Result<Vec<Member>, StoreError> {
        Ok(dir
            .entries()
            .map_err(fs("list the store"))?
            .into_iter()
            .map(|entry| Member {
                class: classify(&entry.name.to_string_lossy()),
                name: entry.name,
                kind: entry.kind,
            })
            .collect())
    }

    /// The live generation's name, if `CURRENT` names one.
    fn current_generation(&self, dir: &SecureDir) -> Result<Option<String>, StoreError> {
        let Some(bytes) = dir
            .read_owned_file(CURRENT, MEMBER_MAX)
            .map_err(fs("read CURRENT"))?
        else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&bytes).trim().to_owned();
        if classify(&name) != Class::Generation || name.contains('/') {
            return Err(StoreError::Damaged {
                path: self.dir.clone(),
                what: "CURRENT",
                reason: format!("{name:?} is not a generation name"),
            });
        }
        Ok(Some(name))
    }

    fn read_member(&self, name: &str) -> Result<Option<String>, StoreError> {
        let action = "read the identity";
        let Some(dir) = self.open(action)? else {
            return Ok(None);
        };
        let Some(generation) = self.current_generation(&dir)? else {
            return Ok(None);
        };
        let generation = match dir.open_dir(&generation, None) {
            Ok(generation) => generation,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(fs(action)(e)),
        };
        let Some(mut bytes) = generation
            .read_owned_file(name, MEMBER_MAX)
            .map_err(fs(action))?
        else {
            return Ok(None);
        };
        // Moved, not copied: the key's text leaves no unzeroed copy behind.
        match String::from_utf8(std::mem::take(&mut *bytes)) {
            Ok(text) => Ok(Some(text)),
            Err(e) => {
                drop(zeroize::Zeroizing::new(e.into_bytes()));
                Err(StoreError::Damaged {
                    path: self.dir.clone(),
                    what: "a stored file",
                    reason: format!("{name} is not text"),
                })
            }
        }
    }

    /// Refuses a folder that is there and not ours (`--store` naming a folder of other files).
    fn refuse_foreign(&self, action: &'static str) -> Result<(), StoreError> {
        if let Some(dir) = self.open(action)? {
            if !is_ours(&self.entries(&dir)?) {
                return Err(StoreError::Foreign {
                    path: self.dir.clone(),
                });
            }
        }
        Ok(())
    }

    /// Creates the folder (0700) with our marker, or adopts a folder that is ours already;
    /// returns it open, with who should own what goes in it.
    fn ensure_ours(&self) -> Result<(SecureDir, Owner), StoreError> {
        let action = "create the store";
        self.refuse_foreign(action)?;
        let dir = self.place.create(0o700).map_err(fs(action))?;
        let owner = self.place.owner().map_err(fs(action))?;
        if dir.metadata(MARKER).map_err(fs(action))?.is_none() {
            dir.write_file_atomic(MARKER, MARKER_TEXT, 0o600, Some(owner))
                .map_err(fs("mark the store"))?;
        }
        Ok((dir, owner))
    }

    /// Removes what no longer serves: interrupted writes, generations other than the live one
    /// and the one before it (`keep`), set-aside generations but the newest. Nothing here is
    /// followed: a link with one of our names is removed itself.
    fn sweep(&self, dir: &SecureDir, keep: &[&str]) -> Result<(), StoreError> {
        let remove = fs("remove an old identity");
        let mut set_aside = Vec::new();
        for member in self.entries(dir)? {
            let is_dir = member.kind == FileKind::Dir;
            let kept = keep.iter().any(|k| member.name == *k);
            match member.class {
                Class::Temporary => {
                    dir.remove_tree(&member.name).map_err(remove)?;
                }
                Class::Generation if is_dir && !kept => {
                    dir.remove_tree(&member.name).map_err(remove)?;
                }
                Class::SetAside if is_dir => set_aside.push(member.name),
                _ => {}
            }
        }
        set_aside.sort();
        for name in set_aside.iter().take(set_aside.len().saturating_sub(1)) {
            dir.remove_tree(name).map_err(remove)?;
        }
        Ok(())
    }
}

/// A securefs error of the step `action`.
fn fs(action: &'static str) -> impl Fn(SecureFsError) -> StoreError + Copy {
    move |source| StoreError::Fs { action, source }
}

impl StoreView for FileStore {
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

    /// The key file holds the private key of that certificate's public key.
    fn holds_key_of(&self, certificate_der: &[u8]) -> Result<bool, StoreError> {
        Ok(self
            .signing_key()?
            .is_some_and(|key| super::key_matches(key.as_ref(), certificate_der)))
    }
}

impl IdentityStore for FileStore {
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

    fn check_usable(&self) -> Result<(), StoreError> {
        self.refuse_foreign("use the store")
    }

    fn replace(&mut self, identity: CheckedIdentity, record: &[u8]) -> Result<(), StoreError> {
        let (dir, owner) = self.ensure_ours()?;
        let previous = self.current_generation(&dir).ok().flatten();
        let (key, certificate, chain) = identity.into_parts();
        let key = key.into_any().downcast::<PrivateKey>().map_err(|_| {
            StoreError::Unsupported("a key generated by another store cannot be kept here".into())
        })?;
        let generation = generation_name();
        let tmp = format!("{TMP_PREFIX}{generation}");
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

        // A fresh folder of our own, filled, then renamed into place: a reader sees a
        // generation complete or not at all.
        let write_generation = || -> Result<(), SecureFsError> {
            let folder = dir.create_dir(&tmp, 0o700, Some(owner))?;
            for (name, bytes) in [
                (KEY, key_pem.as_bytes()),
                (CERT, cert_pem.as_bytes()),
                (CHAIN, chain_pem.as_bytes()),
                (META, meta.as_bytes()),
                (RECORD, record),
            ] {
                folder.write_file_atomic(name, bytes, 0o600, Some(owner))?;
            }
            dir.rename(&tmp, &generation)
        };
        if let Err(e) = write_generation() {
            let _ = dir.remove_tree(&tmp);
            return Err(fs("write the new identity")(e));
        }
        failpoint::hit("store.new-written");

        if let Err(e) = dir.write_file_atomic(CURRENT, generation.as_bytes(), 0o600, Some(owner)) {
            let _ = dir.remove_tree(&generation);
            return Err(fs("switch to the new identity")(e));
        }
        failpoint::hit("store.switched");

        let mut keep = vec![generation.as_str()];
        keep.extend(previous.as_deref());
        self.sweep(&dir, &keep)
    }

    fn record_copy(&self) -> Option<Vec<u8>> {
        self.read_member(RECORD)
            .ok()
            .flatten()
            .map(String::into_bytes)
    }

    fn set_aside(&mut self) -> Result<Option<String>, StoreError> {
        let action = "set the damaged identity aside";
        let Some(dir) = self.open(action)? else {
            return Ok(None);
        };
        if !is_ours(&self.entries(&dir)?) {
            return Err(StoreError::Foreign {
                path: self.dir.clone(),
            });
        }
        let Some(bytes) = dir.read_file(CURRENT, MEMBER_MAX).map_err(fs(action))? else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&bytes).trim().to_owned();
        let aside = format!("{SET_ASIDE_PREFIX}{}", generation_name());
        let live_is_folder = classify(&name) == Class::Generation
            && !name.contains('/')
            && dir
                .metadata(&name)
                .map_err(fs(action))?
                .is_some_and(|m| m.kind == FileKind::Dir);
        if live_is_folder {
            dir.rename(&name, &aside).map_err(fs(action))?;
        }
        dir.remove_file(CURRENT).map_err(fs(action))?;
        Ok(Some(self.dir.join(aside).display().to_string()))
    }

    fn set_aside_replaced(&mut self) -> Result<Option<String>, StoreError> {
        let action = "set the replaced identity aside";
        let Some(dir) = self.open(action)? else {
            return Ok(None);
        };
        let current = self.current_generation(&dir)?;
        let mut replaced: Vec<OsString> = self
            .entries(&dir)?
            .into_iter()
            .filter(|m| m.class == Class::Generation && m.kind == FileKind::Dir)
            .map(|m| m.name)
            .filter(|name| current.as_deref().is_none_or(|c| name != c))
            .collect();
        // Generation names sort by creation time: the newest is the one just replaced.
        replaced.sort();
        let Some(name) = replaced.pop() else {
            return Ok(None);
        };
        let aside = format!("{SET_ASIDE_PREFIX}{}", generation_name());
        dir.rename(&name, &aside).map_err(fs(action))?;
        Ok(Some(self.dir.join(aside).display().to_string()))
    }

    fn remove(&mut self) -> Result<bool, StoreError> {
        let action = "remove the identity";
        let Some(dir) = self.open(action)? else {
            return Ok(false);
        };
        let entries = self.entries(&dir)?;
        if !is_ours(&entries) {
            return Err(StoreError::Foreign {
                path: self.dir.clone(),
            });
        }
        let mut removed = false;
        // The marker goes last: an interrupted removal leaves a folder still known as ours.
        for member in &entries {
            if !matches!(member.class, Class::Foreign | Class::Marker) {
                dir.remove_tree(&member.name).map_err(fs(action))?;
                removed = true;
            }
        }
        dir.remove_file(MARKER).map_err(fs(action))?;
        drop(dir);
        // Something of someone else's in the folder keeps it (and them) in place.
        if !entries.iter().any(|m| m.class == Class::Foreign) {
            removed |= self.place.remove_if_empty().map_err(fs(action))?;
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
pub(crate) mod tests {
    use super::*;
    use crate::pki::authority::tests::{client_request, test_authority};
    use std::fs;
    use std::os::unix::fs::symlink;
    use time::OffsetDateTime;

    fn checked(store: &mut dyn IdentityStore) -> CheckedIdentity {
        let key = store.generate_key(2048).unwrap();
        let now = OffsetDateTime::now_utc();
        let der = test_authority()
            .issue(client_request(key.public_key_der().unwrap(), now))
            .unwrap();
        CheckedIdentity::check(key, &der, vec![], Some("Okta MTLS"), now).unwrap()
    }

    /// The store holding a fresh identity, as after an enrollment.
    pub(crate) fn hold(store: &mut dyn IdentityStore) {
        let identity = checked(store);
        store.replace(identity, b"{}").unwrap();
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
            hold(&mut store);
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
        hold(&mut store);
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

        // A store emptied but for its marker (a removal cut short): the folder still goes,
        // and that counts as removing something.
        let mut emptied = FileStore::new(dir.path().join("emptied"));
        let identity = checked(&mut emptied);
        emptied.replace(identity, b"{}").unwrap();
        for name in names(emptied.dir()).iter().filter(|n| *n != MARKER) {
            let path = emptied.dir().join(name);
            if path.is_dir() {
                fs::remove_dir_all(path).unwrap();
            } else {
                fs::remove_file(path).unwrap();
            }
        }
        assert!(emptied.remove().unwrap());
        assert!(!emptied.dir().exists());
    }

    #[test]
    fn a_damaged_identity_is_set_aside_for_diagnosis() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        hold(&mut store);
        let current = fs::read_to_string(store.dir().join(CURRENT)).unwrap();
        let live = store.dir().join(current.trim());
        fs::write(live.join(CERT), "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
        assert!(store.certificate().unwrap_err().is_damage());
        let aside = store.set_aside().unwrap().unwrap();
        assert!(Path::new(&aside).join(CERT).exists());
        assert_eq!(store.certificate().unwrap(), None);
        hold(&mut store);
        assert!(store.certificate().unwrap().is_some());
        assert!(Path::new(&aside).exists(), "kept beside the new identity");
    }

    #[test]
    fn set_aside_identities_are_pruned_to_the_newest_and_removed_with_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        let mut asides = Vec::new();
        for _ in 0..3 {
            hold(&mut store);
            asides.push(store.set_aside().unwrap().unwrap());
        }
        // A file with our prefix: we set aside folders only, so this is not ours to prune.
        fs::write(store.dir().join("damaged-0"), "not a folder of ours").unwrap();
        hold(&mut store);
        let left: Vec<String> = names(store.dir())
            .into_iter()
            .filter(|n| n.starts_with(SET_ASIDE_PREFIX))
            .collect();
        let newest = Path::new(&asides[2]).file_name().unwrap().to_string_lossy();
        assert_eq!(
            left,
            ["damaged-0", newest.as_ref()],
            "the newest is kept for diagnosis"
        );
        let planted = fs::read(store.dir().join("damaged-0")).unwrap();
        assert_eq!(planted, b"not a folder of ours");
        fs::remove_file(store.dir().join("damaged-0")).unwrap();
        assert!(store.remove().unwrap());
        assert!(
            !store.dir().exists(),
            "the set-aside identity goes with the store"
        );
    }

    #[test]
    fn a_current_that_names_no_generation_is_damage_and_a_missing_generation_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        hold(&mut store);
        let current = store.dir().join(CURRENT);
        for name in ["key.pem", "id-1/../../outside", "damaged-1"] {
            fs::write(&current, name).unwrap();
            let err = store.certificate().unwrap_err();
            assert!(err.is_damage(), "{name}: {err}");
            assert!(
                err.to_string().contains("is not a generation name"),
                "{err}"
            );
        }
        // A generation name whose folder is gone: no identity, not an error.
        fs::write(&current, format!("{GENERATION_PREFIX}gone")).unwrap();
        assert_eq!(store.certificate().unwrap(), None);
        assert!(store.signing_key().unwrap().is_none());
    }

    #[test]
    fn a_link_in_place_of_the_live_generation_is_an_error_not_a_missing_identity() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        hold(&mut store);
        let live = store.dir().join(
            fs::read_to_string(store.dir().join(CURRENT))
                .unwrap()
                .trim(),
        );
        fs::rename(&live, outside.join("moved")).unwrap();
        symlink(outside.join("moved"), &live).unwrap();
        let err = store.certificate().unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(!err.is_damage());
    }

    #[test]
    fn setting_aside_moves_only_a_live_generation_folder() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        hold(&mut store);
        let current = store.dir().join(CURRENT);
        let before = names(store.dir());
        // A CURRENT naming a path out of the store, something not a generation, or a
        // generation that is gone: CURRENT goes, nothing is moved.
        for name in ["id-1/../../outside", "key.pem", "id-gone"] {
            fs::write(&current, name).unwrap();
            let aside = store.set_aside().unwrap().unwrap();
            assert!(!Path::new(&aside).exists(), "{name}");
            assert!(outside.exists(), "{name}");
            let mut expected = before.clone();
            expected.retain(|n| n != CURRENT);
            assert_eq!(names(store.dir()), expected, "{name}");
        }
    }

    #[test]
    fn the_store_says_where_it_is_and_exports_the_key_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        assert_eq!(
            store.location(),
            format!("file:{}", dir.path().join("store").display())
        );
        assert!(store.export_key_pkcs8().is_none(), "no identity, no key");
        hold(&mut store);
        let der = store.export_key_pkcs8().unwrap().unwrap();
        let exported = PrivateKey::from_pkcs8_der(&der).unwrap();
        let cert = pki::CertificateInfo::parse(&store.certificate().unwrap().unwrap()).unwrap();
        assert_eq!(exported.public_key_der().unwrap(), cert.public_key_der);
    }

    #[test]
    fn a_folder_of_other_files_is_not_usable_and_ours_or_none_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("store"));
        store.check_usable().unwrap();
        fs::create_dir(store.dir()).unwrap();
        store.check_usable().unwrap();
        fs::write(store.dir().join("notes.txt"), "theirs").unwrap();
        assert!(matches!(
            store.check_usable(),
            Err(StoreError::Foreign { .. })
        ));
    }

    #[test]
    fn a_link_at_the_folder_or_inside_it_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let snapshot = || names(&outside);

        // The folder itself, named by the admin or below a home.
        symlink(&outside, dir.path().join("linked")).unwrap();
        for mut store in [
            FileStore::new(dir.path().join("linked")),
            FileStore::at(Place::new(dir.path(), "linked")),
        ] {
            let err = store.certificate().unwrap_err();
            assert!(err.to_string().contains("is a symbolic link"), "{err}");
            let identity = checked(&mut store);
            let err = store.replace(identity, b"{}").unwrap_err();
            assert!(err.to_string().contains("is a symbolic link"), "{err}");
            assert!(store.remove().is_err());
            assert!(snapshot().is_empty(), "{:?}", snapshot());
        }

        // A member of the live generation.
        let mut store = FileStore::at(Place::new(dir.path(), "home/store"));
        hold(&mut store);
        let current = fs::read_to_string(store.dir().join(CURRENT)).unwrap();
        let live = store.dir().join(current.trim());
        fs::write(outside.join("cert.pem"), "theirs").unwrap();
        fs::remove_file(live.join(CERT)).unwrap();
        symlink(outside.join("cert.pem"), live.join(CERT)).unwrap();
        let err = store.certificate().unwrap_err();
        assert!(!err.is_damage());
        assert!(err.to_string().contains("is a symbolic link"), "{err}");

        // Removal takes the link, not what it points to.
        assert!(store.remove().unwrap());
        assert!(!store.dir().exists());
        assert_eq!(fs::read(outside.join("cert.pem")).unwrap(), b"theirs");
    }

    #[test]
    fn interrupted_writes_of_every_kind_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        hold(&mut store);
        let hex32 = "0123456789abcdef0123456789abcdef";
        let leftovers = [
            format!(".CURRENT.tmp-{hex32}"),
            format!("..devicetrust-store.tmp-{hex32}"),
            ".tmp-CURRENT-id-1".to_owned(),
        ];
        for name in &leftovers {
            fs::write(store.dir().join(name), b"x").unwrap();
        }
        fs::create_dir(store.dir().join(".tmp-id-2")).unwrap();
        let identity = checked(&mut store);
        let live = identity.certificate().der.clone();
        store.replace(identity, b"{}").unwrap();
        let left = names(store.dir());
        assert!(
            left.iter().all(|n| !n.contains(".tmp-")),
            "left behind: {left:?}"
        );
        // The sweep took only the leftovers: the new identity is whole and its own.
        assert_eq!(store.certificate().unwrap(), Some(live.clone()));
        let key = store.signing_key().unwrap().unwrap();
        assert!(crate::pki::cert::same_public_key(
            &key.public_key_der().unwrap(),
            &crate::pki::CertificateInfo::parse(&live)
                .unwrap()
                .public_key_der
        ));
        assert_eq!(store.record_copy().as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn what_root_stores_below_a_home_belongs_to_its_owner() {
        use std::os::unix::fs::MetadataExt;
        if !crate::platform::is_root() {
            println!("skipped: changing ownership needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(4242), Some(4243)).unwrap();
        let mut store = FileStore::at(Place::new(&home, ".local/state/devicetrust/identity"));
        hold(&mut store);
        let mut pending = vec![home.join(".local")];
        let mut seen = 0;
        while let Some(path) = pending.pop() {
            let meta = fs::symlink_metadata(&path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (4242, 4243), "{path:?}");
            if meta.is_dir() {
                pending.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            }
            seen += 1;
        }
        assert!(seen > 8, "{seen}");
    }
}
