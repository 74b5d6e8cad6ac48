//! Layered configuration: flag > environment > managed preferences > config file > default.
//!
//! Every value is validated once, here, so that a bad value is one clear error (exit 2) before
//! the agent touches the device. Secrets are only *located* here and read when a request needs
//! them, so commands that never talk to Okta never ask for a token.

pub mod managed;

use crate::cli::GlobalArgs;
use crate::integrations::allowlist::AllowlistConfig;
use crate::okta::OrgUrl;
use crate::paths;
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_RENEW_BEFORE_DAYS: u32 = 30;
/// The longest timeout, delay or wait a setting may ask for.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist")]
    FileMissing { path: PathBuf },
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
}

/// Where a secret comes from. Reading is deferred to the moment it is needed.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Stdin,
    Environment(&'static str, Secret),
}

impl SecretSource {
    fn from_path(path: PathBuf) -> Self {
        if path.as_os_str() == "-" {
            SecretSource::Stdin
        } else {
            SecretSource::File(path)
        }
    }

    fn describe(&self) -> String {
        match self {
            SecretSource::File(p) => p.display().to_string(),
            SecretSource::Stdin => "standard input".into(),
            SecretSource::Environment(var, _) => var.to_string(),
        }
    }

    /// Reads the secret. Only the first line counts, trimmed, so `echo token > file` works.
    pub fn read(&self, what: &'static str) -> Result<Secret, ConfigError> {
        let text = match self {
            SecretSource::Environment(_, s) => s.expose().to_owned(),
            SecretSource::Stdin => {
                let mut buf = String::new();
                std::io::stdin()
                    .read_to_string(&mut buf)
                    .map_err(|e| ConfigError::Unreadable {
                        what,
                        path: "-".into(),
                        reason: e.to_string(),
                    })?;
                buf
            }
            SecretSource::File(path) => {
                warn_if_readable_by_others(path, what);
                std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                    what,
                    path: path.clone(),
                    reason: io_reason(&e),
                })?
            }
        };
        let secret = Secret::new(text.lines().next().unwrap_or_default());
        drop(zeroize::Zeroizing::new(text));
        if secret.is_empty() {
            return Err(ConfigError::EmptySecret {
                what,
                source_name: self.describe(),
            });
        }
        Ok(secret)
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o044 != 0 {
            tracing::warn!(
                "{} is readable by other users; the {what} deserves mode 0600",
                path.display()
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &str) {}

pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
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
        }
    }
}

/// The `[scep]` table, validated; the challenge is located here and read by `scep_settings`.
#[derive(Debug, Clone, Default)]
pub struct ScepConfig {
    pub url: Option<String>,
    pub challenge: Option<SecretSource>,
    pub ca_fingerprint: Option<String>,
    pub name: Option<String>,
    pub subject: Option<String>,
    pub key_size: Option<u32>,
    pub key_type: Option<String>,
    pub key_usage: Option<u8>,
    pub subject_alt_names: Vec<crate::pki::SubjectAltName>,
    pub retries: Option<u32>,
    pub retry_delay_secs: Option<u64>,
    pub renew_before_days: Option<u32>,
    pub allow_all_apps_access: Option<bool>,
}

/// The resolved configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    pub user: Option<String>,
    pub store: Option<StoreSpec>,
    pub org_url: Option<OrgUrl>,
    pub org_token: Option<SecretSource>,
    pub ca_file: Option<PathBuf>,
    pub device_uuid: Option<String>,
    pub device_name: Option<String>,
    pub scep: ScepConfig,
    pub renew_before_days: u32,
    pub network: NetworkConfig,
    pub lock_timeout: Duration,
    /// Which apps may use the key without a prompt (validated at load).
    pub allowlist: AllowlistConfig,
    /// The host browsers present the certificate to. Okta enrollments learn it from the
    /// metadata; SCEP enrollments take it from here (none: no browser auto-selection).
    pub cert_auth_host: Option<String>,
}

impl Config {
    /// True when there is somewhere to enroll with: the first link of the health chain.
    pub fn is_configured(&self) -> bool {
        self.org_url.is_some() || self.scep.url.is_some()
    }

    /// The org token, read now. The error names every way to supply it.
    pub fn org_token(&self) -> Result<Secret, ConfigError> {
        self.org_token
            .as_ref()
            .ok_or(ConfigError::MissingOrgToken)?
            .read("org token")
    }

    pub fn org_url(&self) -> Result<&OrgUrl, ConfigError> {
        self.org_url.as_ref().ok_or(ConfigError::NotConfigured)
    }

    /// The SCEP payload when a SCEP URL is configured, with the challenge read now (if one is
    /// configured: a CA that offers Renewal does not need it to renew).
    pub fn scep_settings(&self) -> Result<Option<crate::scep::ScepSettings>, ConfigError> {
        let scep = &self.scep;
        let Some(url) = &scep.url else {
            return Ok(None);
        };
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        let url = url::Url::parse(url).map_err(|e| invalid("scep.url", format!("{url:?}: {e}")))?;
        let mut settings = crate::scep::ScepSettings::new(url);
        settings.name = scep.name.clone();
        if let Some(subject) = &scep.subject {
            settings.subject = subject.clone();
        }
        if let Some(size) = scep.key_size {
            settings.key_size = size;
        }
        if let Some(usage) = scep.key_usage {
            settings.key_usage = usage;
        }
        settings.subject_alt_names = scep.subject_alt_names.clone();
        if let Some(retries) = scep.retries {
            settings.retries = retries;
        }
        if let Some(delay) = scep.retry_delay_secs {
            settings.retry_delay = Duration::from_secs(delay);
        }
        settings.ca_fingerprint = scep
            .ca_fingerprint
            .as_deref()
            .map(crate::scep::parse_fingerprint)
            .transpose()
            .map_err(|reason| invalid("scep.ca_fingerprint", reason))?;
        settings.renew_before_days = scep.renew_before_days;
        settings.allow_all_apps_access = scep.allow_all_apps_access.unwrap_or(false);
        settings.challenge = scep
            .challenge
            .as_ref()
            .map(|source| source.read("SCEP challenge"))
            .transpose()?;
        Ok(Some(settings))
    }
}

/// One source of settings: the shape of the TOML file, which the other layers reuse.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub org_url: Option<String>,
    pub org_token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub cert_auth_host: Option<String>,
    pub store: Option<String>,
    pub renew_before_days: Option<u32>,
    pub lock_timeout_secs: Option<u64>,
    #[serde(default)]
    pub scep: ScepLayer,
    #[serde(default)]
    pub network: NetworkLayer,
    #[serde(default)]
    pub allowlist: AllowlistLayer,
    #[serde(skip)]
    org_token_env: Option<Secret>,
    #[serde(skip)]
    scep_challenge_env: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
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
    pub allow_all_apps_access: Option<bool>,
}

/// `subject_alt_names = { rfc822 = [..], dns = [..], uri = [..], nt_principal_name = ".." }`.
#[derive(Debug, Default, Clone, Deserialize)]
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
#[derive(Debug, Default, Deserialize)]
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkLayer {
    pub connect_timeout_secs: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub max_attempts: Option<u32>,
    pub retry_base_delay_ms: Option<u64>,
    pub max_rate_limit_wait_secs: Option<u64>,
    pub wait_for_network_secs: Option<u64>,
}

impl Layer {
    fn from_flags(args: &GlobalArgs) -> Layer {
        Layer {
            org_url: args.org_url.clone(),
            org_token_file: args.org_token_file.clone(),
            ca_file: args.ca_file.clone(),
            store: args.store.clone(),
            scep: ScepLayer {
                url: args.scep_url.clone(),
                challenge_file: args.scep_challenge_file.clone(),
                ca_fingerprint: args.scep_ca_fingerprint.clone(),
                ..ScepLayer::default()
            },
            ..Layer::default()
        }
    }

    fn from_env(env: &HashMap<String, String>) -> Layer {
        let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        Layer {
            org_url: get("DEVICETRUST_ORG_URL"),
            org_token_env: get("DEVICETRUST_ORG_TOKEN").map(Secret::new),
            ca_file: get("DEVICETRUST_CA_FILE").map(PathBuf::from),
            store: get("DEVICETRUST_STORE"),
            scep: ScepLayer {
                url: get("DEVICETRUST_SCEP_URL"),
                ..ScepLayer::default()
            },
            scep_challenge_env: get("DEVICETRUST_SCEP_CHALLENGE").map(Secret::new),
            ..Layer::default()
        }
    }

    fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            what: "configuration file",
            path: path.to_owned(),
            reason: io_reason(&e),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::FileInvalid {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
            message: e.message().replace('\n', " "),
        })
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

/// The process environment as the loader sees it (a map, so tests pass their own).
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// The `--root` prefix of this run: flag, then `DEVICETRUST_ROOT`, then `/`.
pub fn root(args: &GlobalArgs, env: &HashMap<String, String>) -> PathBuf {
    args.root
        .clone()
        .or_else(|| {
            env.get("DEVICETRUST_ROOT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Resolves the configuration from flags, environment, managed preferences and file.
pub fn load(
    args: &GlobalArgs,
    env: &HashMap<String, String>,
    managed: Layer,
) -> Result<Config, ConfigError> {
    let env_value = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let root = root(args, env);

    let explicit = args
        .config
        .clone()
        .or_else(|| env_value("DEVICETRUST_CONFIG"));
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
    let layers = [Layer::from_flags(args), Layer::from_env(env), managed, file];
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
    };
    if network.max_attempts == 0 || network.max_attempts > 10 {
        return Err(ConfigError::Invalid {
            key: "network.max_attempts",
            reason: format!("{} is not between 1 and 10", network.max_attempts),
        });
    }
    if network.timeout.is_zero() || network.connect_timeout.is_zero() {
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
        let parsed = url::Url::parse(u).map_err(|e| ConfigError::Invalid {
            key: "scep.url",
            reason: format!("{u:?}: {e}"),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                key: "scep.url",
                reason: format!("{u:?} is not an http(s) URL"),
            });
        }
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

    Ok(Config {
        root,
        file: file_path,
        user: args.user.clone(),
        store,
        org_url,
        org_token,
        ca_file: pick!(ca_file),
        device_uuid: args.device_uuid.clone(),
        device_name: args.device_name.clone(),
        scep: resolve_scep(&layers, scep_url, scep_challenge)?,
        renew_before_days,
        network,
        lock_timeout,
        allowlist,
        cert_auth_host,
    })
}

/// Picks and validates the `[scep]` values other than the URL and the challenge.
fn resolve_scep(
    layers: &[Layer],
    url: Option<String>,
    challenge: Option<SecretSource>,
) -> Result<ScepConfig, ConfigError> {
    macro_rules! pick {
        ($field:ident) => {
            layers.iter().find_map(|l| l.scep.$field.clone())
        };
    }
    let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
    let ca_fingerprint = pick!(ca_fingerprint);
    if let Some(fp) = &ca_fingerprint {
        crate::scep::parse_fingerprint(fp).map_err(|r| invalid("scep.ca_fingerprint", r))?;
    }
    let subject = pick!(subject);
    if let Some(subject) = &subject {
        crate::pki::cert::parse_name(subject).map_err(|_| {
            invalid(
                "scep.subject",
                format!("{subject:?} is not an RFC 4514 name"),
            )
        })?;
    }
    let key_size = pick!(key_size);
    if let Some(size) = key_size {
        if !crate::scep::ALLOWED_KEY_SIZES.contains(&size) {
            return Err(invalid(
                "scep.key_size",
                format!("{size} is not one of 2048, 3072, 4096"),
            ));
        }
    }
    let key_type = pick!(key_type);
    if let Some(kind) = &key_type {
        if !kind.eq_ignore_ascii_case("rsa") {
            return Err(invalid(
                "scep.key_type",
                format!("{kind:?}: only RSA is supported (SCEP needs an RSA key)"),
            ));
        }
    }
    let key_usage = pick!(key_usage);
    if let Some(usage) = key_usage {
        crate::scep::key_usage_from_apple(usage).map_err(|r| invalid("scep.key_usage", r))?;
    }
    let retries = pick!(retries);
    if let Some(n) = retries {
        if n > 100 {
            return Err(invalid("scep.retries", format!("{n} is more than 100")));
        }
    }
    let retry_delay_secs = pick!(retry_delay_secs);
    if let Some(secs) = retry_delay_secs {
        if secs > 3600 {
            return Err(invalid(
                "scep.retry_delay_secs",
                format!("{secs} is more than an hour"),
            ));
        }
    }
    let renew_before_days = pick!(renew_before_days);
    if let Some(days) = renew_before_days {
        if !(1..=365).contains(&days) {
            return Err(invalid(
                "scep.renew_before_days",
                format!("{days} is not between 1 and 365"),
            ));
        }
    }
    let mut subject_alt_names = Vec::new();
    if let Some(sans) = pick!(subject_alt_names) {
        use crate::pki::SubjectAltName as San;
        let ascii = |key, v: &String| {
            if v.is_ascii() && !v.trim().is_empty() {
                Ok(())
            } else {
                Err(invalid(key, format!("{v:?} is empty or not ASCII")))
            }
        };
        for v in &sans.rfc822 {
            ascii("scep.subject_alt_names.rfc822", v)?;
            if !v.contains('@') {
                return Err(invalid(
                    "scep.subject_alt_names.rfc822",
                    format!("{v:?} is not an email address"),
                ));
            }
            subject_alt_names.push(San::Rfc822(v.clone()));
        }
        for v in &sans.dns {
            ascii("scep.subject_alt_names.dns", v)?;
            subject_alt_names.push(San::Dns(v.clone()));
        }
        for v in &sans.uri {
            url::Url::parse(v)
                .map_err(|e| invalid("scep.subject_alt_names.uri", format!("{v:?}: {e}")))?;
            subject_alt_names.push(San::Uri(v.clone()));
        }
        if let Some(v) = &sans.nt_principal_name {
            if v.trim().is_empty() {
                return Err(invalid(
                    "scep.subject_alt_names.nt_principal_name",
                    "it is empty".into(),
                ));
            }
            subject_alt_names.push(San::NtPrincipalName(v.clone()));
        }
    }
    Ok(ScepConfig {
        url,
        challenge,
        ca_fingerprint,
        name: pick!(name).filter(|n| !n.trim().is_empty()),
        subject,
        key_size,
        key_type,
        key_usage,
        subject_alt_names,
        retries,
        retry_delay_secs,
        renew_before_days,
        allow_all_apps_access: pick!(allow_all_apps_access),
    })
}

#[cfg(test)]
mod tests {
    use super::tests_support::root_with_config;
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> GlobalArgs {
        let mut argv = vec!["devicetrust"];
        argv.extend_from_slice(extra);
        argv.push("status");
        crate::cli::Cli::parse_from(argv).global
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_in(
        root: &tempfile::TempDir,
        extra: &[&str],
        e: &[(&str, &str)],
        managed: Layer,
    ) -> Result<Config, ConfigError> {
        let root_arg = root.path().to_str().unwrap().to_owned();
        let mut all = vec!["--root", root_arg.as_str()];
        all.extend_from_slice(extra);
        load(&args(&all), &env(e), managed)
    }

    #[test]
    fn precedence_is_flag_environment_managed_file() {
        let root = root_with_config("org_url = \"file.okta.com\"");
        let managed = || Layer {
            org_url: Some("managed.okta.com".into()),
            ..Layer::default()
        };
        let url = |c: Config| c.org_url.unwrap().host().to_owned();

        assert_eq!(
            url(load_in(&root, &[], &[], Layer::default()).unwrap()),
            "file.okta.com"
        );
        assert_eq!(
            url(load_in(&root, &[], &[], managed()).unwrap()),
            "managed.okta.com"
        );
        let e = [("DEVICETRUST_ORG_URL", "env.okta.com")];
        assert_eq!(
            url(load_in(&root, &[], &e, managed()).unwrap()),
            "env.okta.com"
        );
        let flag = ["--org-url", "flag.okta.com"];
        assert_eq!(
            url(load_in(&root, &flag, &e, managed()).unwrap()),
            "flag.okta.com"
        );
    }

    #[test]
    fn waits_beyond_a_day_are_refused_before_they_can_overflow_a_deadline() {
        // The config_toml fuzz target's oracle: every wait `load` accepts can be added to now.
        for toml in [
            "[network]\nwait_for_network_secs = 9223372036854775807",
            "[network]\ntimeout_secs = 86401",
            "[network]\nretry_base_delay_ms = 18446744073709551",
            "lock_timeout_secs = 9223372036854775807",
        ] {
            let root = root_with_config(toml);
            let err = load_in(&root, &[], &[], Layer::default()).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{toml}: {err}");
            assert!(err.to_string().contains("more than a day"), "{toml}: {err}");
        }
        let root = root_with_config("[network]\nwait_for_network_secs = 86400");
        let c = load_in(&root, &[], &[], Layer::default()).unwrap();
        assert_eq!(c.network.wait_for_network, MAX_WAIT);
    }

    #[test]
    fn the_org_token_comes_from_the_highest_layer_that_names_one() {
        let root = root_with_config("org_token_file = \"/from/file\"");
        let c = load_in(&root, &[], &[], Layer::default()).unwrap();
        assert!(
            matches!(c.org_token, Some(SecretSource::File(ref p)) if p == Path::new("/from/file"))
        );

        let e = [("DEVICETRUST_ORG_TOKEN", "s3cret\n")];
        let c = load_in(&root, &[], &e, Layer::default()).unwrap();
        assert_eq!(c.org_token().unwrap().expose(), "s3cret");

        let c = load_in(&root, &["--org-token-file", "-"], &e, Layer::default()).unwrap();
        assert!(matches!(c.org_token, Some(SecretSource::Stdin)));
    }

    #[test]
    fn a_missing_token_names_every_way_to_supply_it() {
        let root = root_with_config("");
        let c = load_in(&root, &[], &[], Layer::default()).unwrap();
        let msg = c.org_token().unwrap_err().to_string();
        for way in [
            "--org-token-file",
            "DEVICETRUST_ORG_TOKEN",
            "org_token_file",
        ] {
            assert!(msg.contains(way), "{msg}");
        }
    }

    #[test]
    fn a_token_file_is_read_to_its_first_line_and_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  tok-123  \nsecond line\n").unwrap();
        assert_eq!(
            SecretSource::File(file.clone())
                .read("org token")
                .unwrap()
                .expose(),
            "tok-123"
        );
        std::fs::write(&file, "\n").unwrap();
        let err = SecretSource::File(file).read("org token").unwrap_err();
        assert!(matches!(err, ConfigError::EmptySecret { .. }), "{err}");
    }

    #[test]
    fn invalid_values_are_refused_with_their_key() {
        for (toml, needle) in [
            ("org_url = \"http://acme.okta.com\"", "org_url"),
            ("renew_before_days = 400", "renew_before_days"),
            ("store = \"file:\"", "store"),
            ("[network]\nmax_attempts = 0", "max_attempts"),
            ("[network]\ntimeout_secs = 0", "timeout"),
            ("[scep]\nurl = \"ftp://ca\"", "scep.url"),
            ("\n\nbogus = true", "line 3"),
            ("[allowlist]\nadd = [\"teamid:short\"]", "allowlist"),
            ("[allowlist]\nadd = [\"ABCDE12345\"]", "teamid:ABCDE12345"),
        ] {
            let root = root_with_config(toml);
            let err = load_in(&root, &[], &[], Layer::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{toml}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn an_explicit_config_file_must_exist_but_the_default_may_be_absent() {
        let root = tempfile::tempdir().unwrap();
        assert!(load_in(&root, &[], &[], Layer::default())
            .unwrap()
            .file
            .is_none());
        let err = load_in(
            &root,
            &["--config", "/no/such/file.toml"],
            &[],
            Layer::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::FileMissing { .. }));
    }

    #[test]
    fn store_specs_parse() {
        assert_eq!(StoreSpec::parse("keychain").unwrap(), StoreSpec::Keychain);
        assert_eq!(
            StoreSpec::parse("file:/x").unwrap(),
            StoreSpec::File("/x".into())
        );
        assert!(StoreSpec::parse("file:").is_err());
        assert!(StoreSpec::parse("tpm").is_err());
    }
}

#[cfg(test)]
mod allowlist_tests {
    use super::tests_support::*;
    use crate::integrations::allowlist::{partition_list_string, Partition};

    #[test]
    fn admin_additions_and_removals_shape_the_desired_list() {
        let root = tempfile::tempdir().unwrap();
        let toml = "[allowlist]\nadd = [\"teamid:ABCDE12345\"]\nremove = [\"teamid:AL798K98FX\"]";
        let config = load_toml(&root, toml, &[]).unwrap();
        let desired = config.allowlist.desired().unwrap();
        assert_eq!(desired[0], Partition::AppleTool);
        assert!(desired.contains(&Partition::TeamId("ABCDE12345".into())));
        assert!(!desired.contains(&Partition::TeamId("AL798K98FX".into())));
        assert_eq!(
            partition_list_string(&desired),
            "apple-tool:,apple:,teamid:UBF8T346G9,teamid:EQHXZ8M8AV,teamid:M683GB7CPW,teamid:BQR82RBBHL,teamid:ABCDE12345"
        );
    }
}

#[cfg(test)]
mod scep_tests {
    use super::tests_support::*;
    use super::*;
    use crate::pki::SubjectAltName;

    #[test]
    fn a_full_scep_table_becomes_the_payload_settings() {
        let root = tempfile::tempdir().unwrap();
        let challenge = root.path().join("challenge");
        std::fs::write(&challenge, "static-challenge\n").unwrap();
        let toml = format!(
            r#"[scep]
url = "http://ca.example/scep"
name = "okta"
subject = "CN=device, O=Example"
challenge_file = "{}"
ca_fingerprint = "{}"
key_size = 3072
key_type = "RSA"
key_usage = 5
subject_alt_names = {{ rfc822 = ["it@example.com"], dns = ["mac.example.com"], uri = ["urn:x"], nt_principal_name = "u@example" }}
retries = 5
retry_delay_secs = 2
renew_before_days = 14
allow_all_apps_access = true
"#,
            challenge.display(),
            vec!["AB"; 32].join(":")
        );
        let config = load_toml(&root, &toml, &[]).unwrap();
        let s = config.scep_settings().unwrap().unwrap();
        assert_eq!(s.url.as_str(), "http://ca.example/scep");
        assert_eq!(s.name.as_deref(), Some("okta"));
        assert_eq!(s.subject, "CN=device, O=Example");
        assert_eq!(s.challenge.as_ref().unwrap().expose(), "static-challenge");
        assert_eq!(s.ca_fingerprint, Some([0xab; 32]));
        assert_eq!((s.key_size, s.key_usage, s.retries), (3072, 5, 5));
        assert_eq!(s.retry_delay, Duration::from_secs(2));
        assert_eq!(s.renew_before_days, Some(14));
        assert!(s.allow_all_apps_access);
        assert_eq!(
            s.subject_alt_names,
            vec![
                SubjectAltName::Rfc822("it@example.com".into()),
                SubjectAltName::Dns("mac.example.com".into()),
                SubjectAltName::Uri("urn:x".into()),
                SubjectAltName::NtPrincipalName("u@example".into()),
            ]
        );
        // The challenge never shows in Debug output.
        assert!(!format!("{s:?}").contains("static-challenge"));
    }

    #[test]
    fn the_challenge_comes_from_the_environment_and_defaults_apply() {
        let root = tempfile::tempdir().unwrap();
        let config = load_toml(
            &root,
            "[scep]\nurl = \"http://ca.example/scep\"",
            &[("DEVICETRUST_SCEP_CHALLENGE", "from-env")],
        )
        .unwrap();
        let s = config.scep_settings().unwrap().unwrap();
        assert_eq!(s.challenge.unwrap().expose(), "from-env");
        assert_eq!(
            (s.subject.as_str(), s.key_size, s.retries),
            ("CN=devicetrust", 2048, 3)
        );
        let none = load_toml(&root, "", &[]).unwrap();
        assert!(none.scep_settings().unwrap().is_none());
    }

    #[test]
    fn each_bad_scep_value_is_one_clear_error_naming_its_key() {
        for (line, key) in [
            ("ca_fingerprint = \"abcd\"", "scep.ca_fingerprint"),
            ("subject = \"no equals sign\"", "scep.subject"),
            ("key_size = 1024", "scep.key_size"),
            ("key_type = \"EC\"", "scep.key_type"),
            ("key_usage = 2", "scep.key_usage"),
            ("retries = 1000", "scep.retries"),
            ("retry_delay_secs = 86400", "scep.retry_delay_secs"),
            ("renew_before_days = 0", "scep.renew_before_days"),
            (
                "subject_alt_names = { rfc822 = [\"nobody\"] }",
                "scep.subject_alt_names.rfc822",
            ),
            (
                "subject_alt_names = { uri = [\"not a uri\"] }",
                "scep.subject_alt_names.uri",
            ),
        ] {
            let root = tempfile::tempdir().unwrap();
            let toml = format!("[scep]\nurl = \"http://ca.example/scep\"\n{line}");
            let err = load_toml(&root, &toml, &[]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{line}: {err}");
            let shown = err.to_string();
            assert!(
                shown.contains(key) && !shown.contains('\n'),
                "{line}: {shown}"
            );
        }
        // There is no configuration key for the challenge itself.
        let root = tempfile::tempdir().unwrap();
        let err = load_toml(&root, "[scep]\nchallenge = \"secret\"", &[]).unwrap_err();
        assert!(!err.to_string().contains("secret\""), "{err}");
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use clap::Parser;

    /// Loads `toml` as the configuration file of a fresh root, with `env`.
    pub(super) fn load_toml(
        root: &tempfile::TempDir,
        toml: &str,
        env: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let file = root.path().join("devicetrust.toml");
        std::fs::write(&file, toml).unwrap();
        let argv = [
            "devicetrust",
            "--root",
            root.path().to_str().unwrap(),
            "--config",
            file.to_str().unwrap(),
            "status",
        ];
        let args = crate::cli::Cli::parse_from(argv).global;
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&args, &env, Layer::default())
    }

    /// A root with a configuration file at the default place.
    pub fn root_with_config(toml: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let path = paths::rooted(root.path(), &paths::system_config_file());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, toml).unwrap();
        root
    }
}
