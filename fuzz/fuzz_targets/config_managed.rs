//! Managed preferences: the `com.devicetrust.agent` plist of a configuration profile (XML or
//! binary), turned into a `config::Layer` key by key and then resolved by `config::load`.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use devicetrust::config::{self, managed, Flags};
use devicetrust::paths;
use libfuzzer_sys::fuzz_target;

fn root() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"))
        .path()
}

fn args(root: &Path) -> Flags {
    Flags {
        root: Some(root.to_owned()),
        ..Flags::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let path = paths::rooted(root(), &managed::computer_file());
    let Some(parent) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(parent).is_err() || std::fs::write(&path, data).is_err() {
        return;
    }
    let layer = match managed::load(root(), None) {
        Ok(layer) => layer,
        Err(e) => return drop(e.to_string()),
    };
    match config::load(&args(root()), &HashMap::new(), layer) {
        Ok(config) => {
            let _ = config.allowlist.desired();
        }
        Err(e) => drop(e.to_string()),
    }
});
