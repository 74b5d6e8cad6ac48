//! One source of settings, in the shape of the TOML file: the flags, the environment, managed
//! preferences and the file each become a `Layer`, and `load` picks the highest that has a value.

use super::{ConfigError, Flags};
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The shape of the TOML file, which the other layers reuse.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub org_url: Option<String>,
    pub org_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub cert_auth_host: Option<String>,
    pub store: Option<String>,
    pub renew_before_days: Option<u32>,
    /// How many days before `renew_before_days` the fleet's starts spread (earlier, never later).
    pub renew_spread_days: Option<u32>,
    pub lock_timeout_secs: Option<u64>,
    #[serde(default)]
    pub scep: ScepLayer,
    #[serde(default)]
    pub network: NetworkLayer,
    #[serde(default)]
    pub allowlist: AllowlistLayer,
    #[serde(skip)]
    pub(super) org_token_env: Option<Secret>,
    #[serde(skip)]
    pub(super) scep_challenge_env: Option<Secret>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScepLayer {
    pub url: Option<String>,
    pub challenge_file: Option<PathBuf>,
    pub ca_fingerprint: Option<String>,
    /// Apple's payload keys, in snake case.
    pub name: Option<String>,
    pub subject: Option<String>,
    pub key_size: Option<u32>,
    pub key_type: Option<String>,
    pub key_usage: Option<u8>,
    pub subject_alt_names: Option<SanLayer>,
    pub retries: Option<u32>,
    pub retry_delay_secs: Option<u64>,
    pub renew_before_days: Option<u32>,
    /// The SCEP path's own spread (the top-level one when unset), as its window is its own.
    pub renew_spread_days: Option<u32>,
    pub allow_all_apps_access: Option<bool>,
}

/// `subject_alt_names = { rfc822 = [..], dns = [..], uri = [..], nt_principal_name = ".." }`.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SanLayer {
    #[serde(default)]
    pub rfc822: Vec<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub uri: Vec<String>,
    pub nt_principal_name: Option<String>,
}

/// `[allowlist]`: edits to the default list of apps (by TeamIdentifier) that may use the key.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistLayer {
    /// Partition IDs to add, e.g. `teamid:ABCDE12345`.
    pub add: Option<Vec<String>>,
    /// Partition IDs to take out of the defaults.
    pub remove: Option<Vec<String>>,
    /// A list used instead of the defaults.
    pub replace_defaults: Option<Vec<String>>,
    pub allow_all_apps: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkLayer {
    pub connect_timeout_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub max_attempts: Option<u32>,
    pub retry_base_delay_ms: Option<u64>,
    pub max_rate_limit_wait_secs: Option<u64>,
    pub wait_for_network_secs: Option<u64>,
    /// The longest one whole run may take before it gives up (exit 75).
    pub run_deadline_secs: Option<u64>,
    /// The longest `status` and `ea` may take (`status` then exits 75, `ea` says `Agent Error`).
    pub status_deadline_secs: Option<u64>,
}

/// The environment variables of cli.md, one per option (secrets hold the value itself).
pub mod env {
    pub const CONFIG: &str = "DEVICETRUST_CONFIG";
    pub const ROOT: &str = "DEVICETRUST_ROOT";
    pub const STORE: &str = "DEVICETRUST_STORE";
    pub const USER: &str = "DEVICETRUST_USER";
    pub const VERBOSE: &str = "DEVICETRUST_VERBOSE";
    pub const ORG_URL: &str = "DEVICETRUST_ORG_URL";
    pub const ORG_TOKEN: &str = crate::secret::vars::ORG_TOKEN;
    pub const ORG_TOKEN_FILE: &str = crate::secret::vars::ORG_TOKEN_FILE;
    pub const CA_FILE: &str = "DEVICETRUST_CA_FILE";
    pub const DEVICE_UUID: &str = "DEVICETRUST_DEVICE_UUID";
    pub const DEVICE_NAME: &str = "DEVICETRUST_DEVICE_NAME";
    pub const SCEP_URL: &str = "DEVICETRUST_SCEP_URL";
    pub const SCEP_CHALLENGE: &str = crate::secret::vars::SCEP_CHALLENGE;
    pub const SCEP_CHALLENGE_FILE: &str = crate::secret::vars::SCEP_CHALLENGE_FILE;
    pub const SCEP_CA_FINGERPRINT: &str = "DEVICETRUST_SCEP_CA_FINGERPRINT";
}

/// A variable's value, when set and not blank.
pub(super) fn env_value(vars: &HashMap<String, String>, key: &str) -> Option<String> {
    vars.get(key).filter(|v| !v.trim().is_empty()).cloned()
}

impl Layer {
    pub(super) fn from_flags(flags: &Flags) -> Layer {
        Layer {
            org_url: flags.org_url.clone(),
            org_token_file: flags.org_token_file.clone(),
            ca_file: flags.ca_file.clone(),
            store: flags.store.clone(),
            scep: ScepLayer {
                url: flags.scep_url.clone(),
                challenge_file: flags.scep_challenge_file.clone(),
                ca_fingerprint: flags.scep_ca_fingerprint.clone(),
                ..ScepLayer::default()
            },
            ..Layer::default()
        }
    }

    pub(super) fn from_env(vars: &HashMap<String, String>) -> Layer {
        let get = |k: &str| env_value(vars, k);
        Layer {
            org_url: get(env::ORG_URL),
            org_token_file: get(env::ORG_TOKEN_FILE).map(PathBuf::from),
            org_token_env: get(env::ORG_TOKEN).map(Secret::new),
            ca_file: get(env::CA_FILE).map(PathBuf::from),
            store: get(env::STORE),
            scep: ScepLayer {
                url: get(env::SCEP_URL),
                challenge_file: get(env::SCEP_CHALLENGE_FILE).map(PathBuf::from),
                ca_fingerprint: get(env::SCEP_CA_FINGERPRINT),
                ..ScepLayer::default()
            },
            scep_challenge_env: get(env::SCEP_CHALLENGE).map(Secret::new),
            ..Layer::default()
        }
    }

    /// Parses a configuration file's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Layer, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::FileInvalid {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().replace('\n', " "),
        })
    }

    pub(super) fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let bytes = crate::securefs::read_trusted(
            path,
            crate::securefs::DOCUMENT_MAX,
            "the configuration file",
        )
        .map_err(ConfigError::Read)?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| ConfigError::FileInvalid {
            path: path.to_owned(),
            line: 1,
            message: "the file is not UTF-8 text".into(),
        })?;
        Layer::parse(&text, path)
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
