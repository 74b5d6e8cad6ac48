//! Layered configuration: flag > environment > managed preferences > config file > the
//! enrollment record > default.
//!
//! Every value is validated once, here, so that a bad value is one clear error (exit 2) before
//! the agent touches the device. Secrets are only *located* here and read when a request needs
//! them, so commands that never talk to a CA never ask for a token.

pub mod keys;
pub mod layer;
pub mod managed;
mod record_layer;
pub mod scep;
pub mod secret_source;
pub mod sources;

use crate::integrations::allowlist::AllowlistConfig;
use crate::okta::OrgUrl;
use crate::paths;
use crate::record::Method;
use crate::renewal::{RenewalPolicy, DEFAULT_RENEW_BEFORE_DAYS, DEFAULT_SPREAD_DAYS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use layer::{env, AllowlistLayer, Layer, NetworkLayer, SanLayer, ScepLayer};
pub use scep::ScepConfig;
pub use secret_source::SecretSource;
pub use sources::{Source, Sources};

pub(crate) use crate::fsutil::io_reason;

/// The widest spread of the fleet's renewal starts (`renew_spread_days`, `scep.renew_spread_days`).
const MAX_SPREAD_DAYS: u32 = 90;

/// The longest timeout, delay or wait a setting may ask for.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist")]
    FileMissing { path: PathBuf },
    #[error("cannot read the {what}: {source}")]
    SecretUnreadable {
        what: &'static str,
        #[source]
        source: crate::securefs::SecureFsError,
    },
    /// A file the admin named (the configuration, a CA bundle).
    #[error("{0}")]
    Read(#[source] crate::securefs::SecureFsError),
    #[error("cannot read {what} {path}: {reason}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("configuration file {path}, line {line}: {message}")]
    FileInvalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("managed preferences {path}: {key}: {message}")]
    ManagedInvalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("invalid {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("invalid {key} in the {layer}: {reason}")]
    RecordInvalid {
        layer: Source,
        key: &'static str,
        reason: String,
    },
    #[error(
        "no org token: pass --org-token-file FILE (or - to read it from stdin), \
         set DEVICETRUST_ORG_TOKEN, or set org_token_file in the configuration file"
    )]
    MissingOrgToken,
    #[error("the {what} from {source_name} is empty")]
    EmptySecret {
        what: &'static str,
        source_name: String,
    },
    #[error("not configured: set org_url (--org-url, DEVICETRUST_ORG_URL) or a SCEP URL")]
    NotConfigured,
    #[error(
        "the extra CA file {} holds no usable certificate: {reason}",
        path.display()
    )]
    CaFileInvalid { path: PathBuf, reason: String },
}

/// The command line's options, as plain values (the CLI fills them; tests build them).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub store: Option<String>,
    pub user: Option<String>,
    pub org_url: Option<String>,
    pub org_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub device_uuid: Option<String>,
    pub device_name: Option<String>,
    pub scep_url: Option<String>,
    pub scep_challenge_file: Option<PathBuf>,
    pub scep_ca_fingerprint: Option<String>,
}

/// Which identity store to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Keychain,
    File(PathBuf),
}

impl StoreSpec {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        match value {
            "keychain" => Ok(StoreSpec::Keychain),
            v if v.starts_with("file:") && v.len() > 5 => {
                Ok(StoreSpec::File(PathBuf::from(&v[5..])))
            }
            _ => Err(ConfigError::Invalid {
                key: "store",
                reason: format!("{value:?} is neither `keychain` nor `file:DIR`"),
            }),
        }
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Keychain => f.write_str("keychain"),
            StoreSpec::File(dir) => write!(f, "file:{}", dir.display()),
        }
    }
}

/// Network behaviour: timeouts and the retry policy.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base_delay: Duration,
    pub max_rate_limit_wait: Duration,
    /// How long `--check-network` waits for the network or a tunnel before calling Okta
    /// unreachable.
    pub wait_for_network: Duration,
    /// The upper bound of one whole run: every request's deadline ends by then.
    pub run_deadline: Duration,
    /// The upper bound of `status` and `ea`, which a Jamf inventory waits for.
    pub status_deadline: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_attempts: 4,
            retry_base_delay: Duration::from_secs(2),
            max_rate_limit_wait: Duration::from_secs(120),
            wait_for_network: Duration::from_secs(30),
            run_deadline: Duration::from_secs(600),
            status_deadline: Duration::from_secs(60),
        }
    }
}

/// The resolved configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    /// The file was named by `--config` or `DEVICETRUST_CONFIG` (the renewal job repeats it).
    pub file_explicit: bool,
    pub user: Option<String>,
    pub store: Option<StoreSpec>,
    pub org_url: Option<OrgUrl>,
    pub org_token: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    pub device_uuid: Option<String>,
    pub device_name: Option<String>,
    pub scep: ScepConfig,
    /// The latest renewal start; `renew_spread_days` moves each device's start earlier.
    pub renew_before_days: u32,
    pub renew_spread_days: u32,
    pub network: NetworkConfig,
    pub lock_timeout: Duration,
    /// Which apps may use the key without a prompt (validated at load).
    pub allowlist: AllowlistConfig,
    /// The host browsers present the certificate to. Okta enrollments learn it from the
    /// metadata; SCEP enrollments take it from here (none: no browser auto-selection).
    pub cert_auth_host: Option<String>,
    /// The layer each setting above came from (`status` shows it).
    pub sources: Sources,
}

impl Config {
    /// True when there is somewhere to enroll with: the first link of the health chain.
    pub fn is_configured(&self) -> bool {
        self.org_url.is_some() || self.scep.url.is_some()
    }

    /// How this device gets its certificates: SCEP when a SCEP URL is known, else Okta.
    pub fn method(&self) -> Method {
        if self.scep.url.is_some() {
            Method::Scep
        } else {
            Method::Okta
        }
    }

    /// The org token, read now. The error names every way to supply it.
    pub fn org_token(&self) -> Result<crate::secret::Secret, ConfigError> {
        self.org_token
            .as_ref()
            .ok_or(ConfigError::MissingOrgToken)?
            .read("org token")
    }

    pub fn org_url(&self) -> Result<&OrgUrl, ConfigError> {
        self.org_url.as_ref().ok_or(ConfigError::NotConfigured)
    }

    /// This device's renewal policy (SCEP may set its own window and spread, as Apple's payload
    /// sets its own window).
    pub fn renewal_policy(&self, device_uuid: &str) -> RenewalPolicy {
        let (window, spread) = match self.method() {
            Method::Scep => (
                self.scep
                    .renew_before_days
                    .unwrap_or(self.renew_before_days),
                self.scep
                    .renew_spread_days
                    .unwrap_or(self.renew_spread_days),
            ),
            Method::Okta => (self.renew_before_days, self.renew_spread_days),
        };
        RenewalPolicy::for_device(device_uuid, window, spread)
    }
}

/// The `--root` prefix of this run: flag, then `DEVICETRUST_ROOT`, then `/`.
pub fn root(flags: &Flags, vars: &HashMap<String, String>) -> PathBuf {
    flags
        .root
        .clone()
        .or_else(|| layer::env_value(vars, env::ROOT).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The user to act for: `--user`, then `DEVICETRUST_USER` (Jamf passes it as `$3`).
pub fn user(flags: &Flags, vars: &HashMap<String, String>) -> Option<String> {
    flags
        .user
        .clone()
        .or_else(|| layer::env_value(vars, env::USER))
}

/// The process environment as the loader sees it (a map, so tests pass their own).
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// Resolves the configuration from flags, environment, managed preferences and file. The
/// enrollment record, the layer below the file, is merged by the agent once it knows the user.
pub fn load(
    flags: &Flags,
    vars: &HashMap<String, String>,
    managed: Layer,
) -> Result<Config, ConfigError> {
    let root = root(flags, vars);
    let explicit = flags
        .config
        .clone()
        .or_else(|| layer::env_value(vars, env::CONFIG).map(PathBuf::from));
    let file_explicit = explicit.is_some();
    let file_path = match explicit {
        Some(p) if !p.exists() => return Err(ConfigError::FileMissing { path: p }),
        Some(p) => Some(p),
        None => Some(paths::rooted(&root, &paths::system_config_file())).filter(|p| p.exists()),
    };
    let file = match &file_path {
        Some(p) => Layer::from_file(p)?,
        None => Layer::default(),
    };

    // Highest precedence first; the first layer that has a value wins.
    let layers = [
        Layer::from_flags(flags),
        Layer::from_env(vars),
        managed,
        file,
    ];
    let sources = sources_of(&layers, flags, vars);
    macro_rules! pick {
        ($($field:tt).+) => {
            layers.iter().find_map(|l| l.$($field).+.clone())
        };
    }

    let org_url = pick!(org_url)
        .map(|u| {
            OrgUrl::parse(&u).map_err(|e| ConfigError::Invalid {
                key: "org_url",
                reason: e.to_string(),
            })
        })
        .transpose()?;

    // A token file named by a higher layer beats a token in a lower layer's environment.
    let org_token = layers.iter().find_map(|l| {
        l.org_token_file
            .clone()
            .map(SecretSource::from_path)
            .or_else(|| {
                l.org_token_env
                    .clone()
                    .map(|s| SecretSource::Environment("DEVICETRUST_ORG_TOKEN", s))
            })
    });
    let scep_challenge = layers.iter().find_map(|l| {
        l.scep
            .challenge_file
            .clone()
            .map(SecretSource::from_path)
            .or_else(|| {
                l.scep_challenge_env
                    .clone()
                    .map(|s| SecretSource::Environment("DEVICETRUST_SCEP_CHALLENGE", s))
            })
    });

    let store = pick!(store).map(|s| StoreSpec::parse(&s)).transpose()?;

    let renew_before_days = pick!(renew_before_days).unwrap_or(DEFAULT_RENEW_BEFORE_DAYS);
    if !(1..=365).contains(&renew_before_days) {
        return Err(ConfigError::Invalid {
            key: "renew_before_days",
            reason: format!("{renew_before_days} is not between 1 and 365"),
        });
    }
    let renew_spread_days = pick!(renew_spread_days).unwrap_or(DEFAULT_SPREAD_DAYS);
    if renew_spread_days > MAX_SPREAD_DAYS {
        return Err(ConfigError::Invalid {
            key: "renew_spread_days",
            reason: format!("{renew_spread_days} is more than {MAX_SPREAD_DAYS}"),
        });
    }

    let defaults = NetworkConfig::default();
    let secs = |v: Option<u64>, d: Duration| v.map(Duration::from_secs).unwrap_or(d);
    let network = NetworkConfig {
        connect_timeout: secs(
            pick!(network.connect_timeout_secs),
            defaults.connect_timeout,
        ),
        timeout: secs(pick!(network.timeout_secs), defaults.timeout),
        max_attempts: pick!(network.max_attempts).unwrap_or(defaults.max_attempts),
        retry_base_delay: pick!(network.retry_base_delay_ms)
            .map(Duration::from_millis)
            .unwrap_or(defaults.retry_base_delay),
        max_rate_limit_wait: secs(
            pick!(network.max_rate_limit_wait_secs),
            defaults.max_rate_limit_wait,
        ),
        wait_for_network: secs(
            pick!(network.wait_for_network_secs),
            defaults.wait_for_network,
        ),
        run_deadline: secs(pick!(network.run_deadline_secs), defaults.run_deadline),
        status_deadline: secs(
            pick!(network.status_deadline_secs),
            defaults.status_deadline,
        ),
    };
    if network.max_attempts == 0 || network.max_attempts > 10 {
        return Err(ConfigError::Invalid {
            key: "network.max_attempts",
            reason: format!("{} is not between 1 and 10", network.max_attempts),
        });
    }
    if network.timeout.is_zero()
        || network.connect_timeout.is_zero()
        || network.run_deadline.is_zero()
        || network.status_deadline.is_zero()
    {
        return Err(ConfigError::Invalid {
            key: "network timeouts",
            reason: "a timeout of 0 seconds would never let a request finish".into(),
        });
    }
    let lock_timeout = Duration::from_secs(pick!(lock_timeout_secs).unwrap_or(60));
    // The agent computes deadlines as `Instant::now() + wait`, which panics past the clock's
    // range (`wait_for_network_secs = 9223372036854775807` did); a day is beyond any useful wait.
    for (key, wait) in [
        ("network.connect_timeout_secs", network.connect_timeout),
        ("network.timeout_secs", network.timeout),
        ("network.retry_base_delay_ms", network.retry_base_delay),
        (
            "network.max_rate_limit_wait_secs",
            network.max_rate_limit_wait,
        ),
        ("network.wait_for_network_secs", network.wait_for_network),
        ("network.run_deadline_secs", network.run_deadline),
        ("network.status_deadline_secs", network.status_deadline),
        ("lock_timeout_secs", lock_timeout),
    ] {
        if wait > MAX_WAIT {
            return Err(ConfigError::Invalid {
                key,
                reason: format!("{} is more than a day", crate::http::fmt_duration(wait)),
            });
        }
    }

    let scep_url = pick!(scep.url);
    if let Some(u) = &scep_url {
        check_scep_url(u).map_err(|reason| ConfigError::Invalid {
            key: "scep.url",
            reason,
        })?;
    }

    let allowlist = AllowlistConfig {
        add: pick!(allowlist.add).unwrap_or_default(),
        remove: pick!(allowlist.remove).unwrap_or_default(),
        replace_defaults: pick!(allowlist.replace_defaults),
        allow_all_apps: pick!(allowlist.allow_all_apps).unwrap_or(false),
    };
    allowlist.desired().map_err(|e| ConfigError::Invalid {
        key: "allowlist",
        reason: e.to_string(),
    })?;
    for warning in allowlist.warnings() {
        tracing::warn!("{warning}");
    }

    let cert_auth_host = pick!(cert_auth_host)
        .map(|h| {
            crate::okta::cert_auth_host(&h).map_err(|e| ConfigError::Invalid {
                key: "cert_auth_host",
                reason: e.to_string(),
            })
        })
        .transpose()?;

    let ca_file = pick!(ca_file);
    if let Some(path) = &ca_file {
        check_ca_file(path)?;
    }
    let vars_value = |key| layer::env_value(vars, key);

    Ok(Config {
        root,
        file: file_path,
        file_explicit,
        user: user(flags, vars),
        store,
        org_url,
        org_token,
        ca_file,
        device_uuid: flags
            .device_uuid
            .clone()
            .or_else(|| vars_value(env::DEVICE_UUID)),
        device_name: flags
            .device_name
            .clone()
            .or_else(|| vars_value(env::DEVICE_NAME)),
        scep: scep::resolve_scep(&layers, scep_url, scep_challenge)?,
        renew_before_days,
        renew_spread_days,
        network,
        lock_timeout,
        allowlist,
        cert_auth_host,
        sources,
    })
}

/// The layer names of `load`'s layers, in the same order.
const LAYER_SOURCES: [Source; 4] = [
    Source::Flag,
    Source::Environment,
    Source::Managed,
    Source::File,
];

/// Where each setting of `layers` comes from, with the secrets (found under two keys each),
/// the device facts (flags and environment only) and the defaults.
fn sources_of(layers: &[Layer; 4], flags: &Flags, vars: &HashMap<String, String>) -> Sources {
    let named: Vec<(Source, &Layer)> = LAYER_SOURCES.iter().copied().zip(layers).collect();
    let mut sources = Sources::of_layers(&named);
    let first = |has: &dyn Fn(&Layer) -> bool| {
        named
            .iter()
            .find(|(_, layer)| has(layer))
            .map(|(source, _)| *source)
    };
    if let Some(source) = first(&|l| l.org_token_file.is_some() || l.org_token_env.is_some()) {
        sources.set("org_token", source);
    }
    if let Some(source) =
        first(&|l| l.scep.challenge_file.is_some() || l.scep_challenge_env.is_some())
    {
        sources.set("scep.challenge", source);
    }
    for (key, flag, var) in [
        ("device_uuid", &flags.device_uuid, env::DEVICE_UUID),
        ("device_name", &flags.device_name, env::DEVICE_NAME),
    ] {
        if flag.is_some() {
            sources.set(key, Source::Flag);
        } else if layer::env_value(vars, var).is_some() {
            sources.set(key, Source::Environment);
        }
    }
    for key in DEFAULTED {
        sources.set_if_absent(key, Source::Default);
    }
    sources
}

/// The settings that have a default value (`status` says so when no layer set them).
const DEFAULTED: [&str; 11] = [
    "renew_before_days",
    "renew_spread_days",
    "lock_timeout_secs",
    "network.connect_timeout_secs",
    "network.timeout_secs",
    "network.max_attempts",
    "network.retry_base_delay_ms",
    "network.max_rate_limit_wait_secs",
    "network.wait_for_network_secs",
    "network.run_deadline_secs",
    "network.status_deadline_secs",
];

/// A SCEP URL's syntax: http or https. Whether plain http is acceptable depends on a pinned CA,
/// which only the merged configuration knows ([`Config::check_scep_transport`]).
pub(crate) fn check_scep_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} is not an http(s) URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// A PEM bundle that adds nothing would silently leave a TLS-inspecting proxy untrusted: an
/// empty or unparsable `--ca-file` is a configuration error at load, not a failure later.
fn check_ca_file(path: &Path) -> Result<(), ConfigError> {
    let bytes = crate::securefs::read_trusted(path, crate::securefs::DOCUMENT_MAX, "the CA file")
        .map_err(ConfigError::Read)?;
    let invalid = |reason: String| ConfigError::CaFileInvalid {
        path: path.to_owned(),
        reason,
    };
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| invalid("it is not PEM text".into()))?;
    let blocks = crate::pki::pem_decode_all(&text).map_err(|e| invalid(e.to_string()))?;
    let mut certificates = 0;
    for (label, der) in blocks {
        if label == "CERTIFICATE" {
            crate::pki::CertificateInfo::parse(&der).map_err(|e| invalid(e.to_string()))?;
            certificates += 1;
        }
    }
    if certificates == 0 {
        return Err(invalid("it contains no CERTIFICATE block".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
