//! The file store's on-disk identity: the `CURRENT` pointer, `cert.pem`, `key.pem` and
//! `meta.json`, written as four fields into a store directory that the store then reads back.
//! The generation directory is always `id-fuzz`; `CURRENT` decides whether it is the one read.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use devicetrust::store::{FileStore, IdentityStore};
use devicetrust_fuzz::fields;
use libfuzzer_sys::fuzz_target;

/// One directory for the whole run: re-created files are far cheaper than a tempdir per input.
fn store_dir() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let temp = tempfile::tempdir().expect("temporary directory");
        let store = temp.path().join("store");
        (temp, store)
    })
    .1
}

fuzz_target!(|data: &[u8]| {
    let [current, cert, key, meta] = fields::<4>(data);
    let dir = store_dir();
    let generation = dir.join("id-fuzz");
    let _ = std::fs::remove_dir_all(dir);
    if std::fs::create_dir_all(&generation).is_err() {
        return;
    }
    let write = |name: &str, bytes: &[u8]| std::fs::write(generation.join(name), bytes);
    if std::fs::write(dir.join("CURRENT"), current).is_err()
        || write("cert.pem", cert).is_err()
        || write("key.pem", key).is_err()
        || write("meta.json", meta).is_err()
    {
        return;
    }

    let store = FileStore::new(dir);
    let _ = (store.location(), store.probe());
    match store.certificate() {
        Ok(Some(der)) => assert!(!der.is_empty()),
        Ok(None) => {}
        Err(e) => drop(e.to_string()),
    }
    match store.signing_key() {
        Ok(Some(key)) => {
            let _ = key.public_key_der();
            let _ = key.sign_sha256(b"renewal claims");
        }
        Ok(None) => {}
        Err(e) => drop(e.to_string()),
    }
});
