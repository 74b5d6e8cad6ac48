//! The TOML configuration file: deserialised into `config::Layer`, then resolved and validated
//! by `config::load` as a run does, and what it yields is used the way the agent uses it.
//!
//! Oracle: `load` promises that everything it returns is valid, so every duration it yields must
//! be one the agent can wait for (`Instant::now() + d` panics on overflow), and the SCEP settings
//! it accepted must pass the SCEP client's own validation.
#![no_main]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use devicetrust::config::{self, Config, Flags, Layer};
use libfuzzer_sys::fuzz_target;

fn root() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"))
        .path()
}

pub fn args(root: &Path, config: Option<PathBuf>) -> Flags {
    Flags {
        config,
        root: Some(root.to_owned()),
        ..Flags::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = toml::from_str::<Layer>(text).map_err(|e| e.to_string());

    let file = root().join("config.toml");
    if std::fs::write(&file, text).is_err() {
        return;
    }
    match config::load(&args(root(), Some(file)), &HashMap::new(), Layer::default()) {
        Ok(config) => use_config(&config),
        Err(e) => drop(e.to_string()),
    }
});

fn use_config(config: &Config) {
    let now = Instant::now();
    let network = &config.network;
    let durations = [
        ("network.connect_timeout_secs", network.connect_timeout),
        ("network.timeout_secs", network.timeout),
        ("network.retry_base_delay_ms", network.retry_base_delay),
        (
            "network.max_rate_limit_wait_secs",
            network.max_rate_limit_wait,
        ),
        ("network.wait_for_network_secs", network.wait_for_network),
        ("lock_timeout_secs", config.lock_timeout),
    ];
    for (key, duration) in durations {
        assert!(
            now.checked_add(duration).is_some(),
            "{key} = {duration:?} passed validation but cannot be waited for"
        );
    }
    let _ = config.is_configured();
    if let Some(org) = &config.org_url {
        let _ = org.endpoint("/api/internal/v1/device-trust/metadata?platform=macos");
        let _ = org.cell();
    }
    let _ = config.allowlist.desired();
    // The challenge is read from the file the configuration names: not from fuzzed paths.
    if config.scep.challenge.is_none() {
        if let Ok(Some(settings)) = config.scep_settings() {
            assert!(
                now.checked_add(settings.retry_delay).is_some(),
                "scep.retry_delay_secs cannot be waited for"
            );
            if let Err(e) = settings.validate() {
                panic!("config::load accepted SCEP settings the client refuses: {e}");
            }
            let _ = settings.csr_profile(false);
        }
    }
    let _ = Duration::ZERO;
}
