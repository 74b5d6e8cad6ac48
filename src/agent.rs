//! The workflows: enroll, renew, status, uninstall. Orchestration only.
//!
//! Each step is a call into a lower layer (pki, okta, store, state), ordered so that a failure
//! at any point leaves the stored identity exactly as it was: nothing is stored until the new
//! certificate has been checked, and the old identity goes only after the new one is stored.

use crate::config::{Config, ConfigError, StoreSpec};
use crate::health::{self, HealthFacts, HealthStatus};
use crate::http::{HttpSettings, RetryPolicy};
use crate::integrations::allowlist::{self, Partition};
use crate::integrations::chrome;
use crate::integrations::schedule::{self, JobKind, RenewalJob, RenewalStart};
use crate::lock::{LockError, RunLock};
use crate::okta::{self, Device, OktaClient, OktaError, OrgUrl};
use crate::paths::UserPaths;
use crate::pki::{self, CertificateInfo, CsrProfile, IssuedCertError, PkiError, PrivateKey};
use crate::platform::{Platform, PlatformError};
use crate::scep::{self, ScepError, ScepSettings};
use crate::secret::Secret;
use crate::state::{self, AgentState, Method, RenewalAttempt, StateError};
use crate::store::{FileStore, IdentityStore, NewIdentity, StoreError};
use time::OffsetDateTime;
use tracing::{info, warn};

/// Chrome reads its policy from JSON files on Linux; on macOS it reads the preferences
/// domains that the macOS backend writes.
const BROWSER_POLICY_FILES: bool = !cfg!(target_os = "macos");

/// The subject CN Okta's device-trust CA issues, and the one we check before storing.
pub const OKTA_SUBJECT_CN: &str = "Okta MTLS";
const KEY_BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("no user is logged in at the console; nothing to do until one is (try again later)")]
    NoUserSession,
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Okta(#[from] OktaError),
    #[error("SCEP: {0}")]
    Scep(#[from] ScepError),
    #[error("Okta issued an unusable certificate, nothing was stored: {0}")]
    Issued(#[from] IssuedCertError),
    #[error("no device certificate is installed; run `devicetrust enroll`")]
    NotEnrolled,
    #[error(
        "the certificate's private key is missing or does not match it; \
         run `devicetrust uninstall --reenroll`"
    )]
    KeyMissing,
    #[error(
        "the certificate expired on {not_after}; an expired certificate cannot sign a renewal, \
         so supply an org token to enroll afresh"
    )]
    Expired { not_after: String },
    #[error(
        "this device's certificate belongs to {stored}, not {configured}; a device belongs to \
         one org's Device Trust: run `devicetrust uninstall` first to move it"
    )]
    OtherOrg { stored: String, configured: String },
    #[error(
        "the certificate expired on {not_after}; an expired certificate cannot be renewed over \
         SCEP without the CA's challenge: configure scep.challenge_file or DEVICETRUST_SCEP_CHALLENGE"
    )]
    ExpiredNoChallenge { not_after: String },
    #[cfg(not(target_os = "macos"))]
    #[error("the keychain store is only available on macOS; use --store file:DIR")]
    KeychainUnavailable,
}

impl AgentError {
    /// The exit code of cli.md: 2 configuration, 75 try later, 1 everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Config(_) => 2,
            #[cfg(not(target_os = "macos"))]
            AgentError::KeychainUnavailable => 2,
            AgentError::NoUserSession => 75,
            AgentError::Lock(LockError::Busy { .. }) => 75,
            AgentError::Okta(e) if e.is_transient() => 75,
            AgentError::Scep(e) if e.is_transient() => 75,
            _ => 1,
        }
    }
}

/// The configured trust, timeouts and retries (`retry` overrides the policy).
fn http_settings(
    config: &Config,
    user_agent: String,
    retry: Option<RetryPolicy>,
) -> Result<HttpSettings, AgentError> {
    let net = &config.network;
    let extra_roots_pem = match &config.ca_file {
        Some(path) => std::fs::read(path).map_err(|e| ConfigError::Unreadable {
            what: "CA file",
            path: path.clone(),
            reason: crate::config::io_reason(&e),
        })?,
        None => Vec::new(),
    };
    Ok(HttpSettings {
        connect_timeout: net.connect_timeout,
        timeout: net.timeout,
        retry: retry.unwrap_or(RetryPolicy {
            max_attempts: net.max_attempts,
            base_delay: net.retry_base_delay,
            max_rate_limit_wait: net.max_rate_limit_wait,
            ..RetryPolicy::default()
        }),
        extra_roots_pem,
        user_agent,
    })
}

/// An Okta client speaking as Okta's registration task.
fn okta_client(
    config: &Config,
    platform: &dyn Platform,
    org: &OrgUrl,
    retry: Option<RetryPolicy>,
) -> Result<OktaClient, AgentError> {
    let user_agent = okta::user_agent(platform.arch(), &platform.os_version());
    let settings = http_settings(config, user_agent, retry)?;
    Ok(OktaClient::new(org.clone(), &settings)?)
}

/// Whether the org answers, waiting up to `network_wait` for the network (or a ZTNA tunnel)
/// to come up first, as a login-time check must: a failure right after wake is no verdict.
/// `None` when there is no org to probe (SCEP-only configurations).
pub fn org_reachable(config: &Config, platform: &dyn Platform) -> Option<bool> {
    let org = config.org_url.as_ref()?;
    let deadline = std::time::Instant::now() + config.network.wait_for_network;
    let single_try = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let client = match okta_client(config, platform, org, Some(single_try)) {
        Ok(c) => c,
        Err(e) => {
            warn!("cannot check the network: {e}");
            return Some(false);
        }
    };
    loop {
        match client.probe() {
            Ok(()) => return Some(true),
            Err(e) if e.is_transient() && std::time::Instant::now() < deadline => {
                tracing::debug!("{e}; waiting for the network");
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            Err(e) => {
                warn!("{e}");
                return Some(false);
            }
        }
    }
}

/// Where certificates come from: Okta's device-trust CA, or a SCEP CA when one is configured.
enum Enrollment {
    Okta(OrgUrl),
    Scep(Box<ScepSettings>),
}

/// Chrome and its kin cache the client certificate: after a renewal they may keep presenting
/// the old one until quit and relaunched (closing the windows is not enough).
fn warn_about_running_browsers() {
    for browser in crate::platform::processes::running_browsers() {
        warn!(
            "{browser} is running and may keep presenting the old certificate until it is quit \
             and relaunched"
        );
    }
}

/// What is in the store right now, judged against the clock.
enum Current {
    None,
    KeyMissing,
    Expired(CertificateInfo),
    Valid(CertificateInfo, Box<dyn pki::SigningKey>),
}

/// How a renewal run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewOutcome {
    NotDue,
    Renewed,
    Reenrolled,
}

/// Everything `status` shows.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub status: HealthStatus,
    pub method: Method,
    pub user: Option<String>,
    pub store: Option<String>,
    pub certificate: Option<CertificateInfo>,
    pub org_url: Option<String>,
    pub cert_auth_host: Option<String>,
    /// The SCEP CA's URL (SCEP enrollments).
    pub scep_url: Option<String>,
    pub last_renewal: Option<RenewalAttempt>,
    /// This device renews when fewer than this many days are left (its place in the window).
    pub renews_below_days: Option<u32>,
    pub now: OffsetDateTime,
}

pub struct Agent {
    config: Config,
    platform: Box<dyn Platform>,
    user: String,
    /// The user's home as the OS sees it; `paths` has it under the root.
    home: std::path::PathBuf,
    paths: UserPaths,
    store: Box<dyn IdentityStore>,
}

impl Agent {
    /// Binds the agent to the user it acts for (`--user`, else the console user).
    pub fn new(config: Config, platform: Box<dyn Platform>) -> Result<Agent, AgentError> {
        let user = match &config.user {
            Some(u) => u.clone(),
            None => platform.console_user().ok_or(AgentError::NoUserSession)?,
        };
        let home = platform.home_dir(&user);
        let paths = UserPaths::new(&config.root, &home);
        // The keychain is the macOS default (spec section 6); elsewhere the file store. The
        // keychain cannot live under a `--root` prefix, so with a test or demo root the default
        // is the file store inside that root: `demo` on a Mac never touches the real keychain.
        let real_root = config.root == std::path::Path::new("/");
        let store: Box<dyn IdentityStore> = match &config.store {
            Some(StoreSpec::File(dir)) => Box::new(FileStore::new(dir.clone())),
            None if !real_root || !cfg!(target_os = "macos") => {
                Box::new(FileStore::new(paths.default_file_store()))
            }
            #[cfg(target_os = "macos")]
            None | Some(StoreSpec::Keychain) => Box::new(crate::store::KeychainStore::new(&home)),
            #[cfg(not(target_os = "macos"))]
            None => Box::new(FileStore::new(paths.default_file_store())),
            #[cfg(not(target_os = "macos"))]
            Some(StoreSpec::Keychain) => return Err(AgentError::KeychainUnavailable),
        };
        Ok(Agent {
            config,
            platform,
            user,
            home,
            paths,
            store,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn paths(&self) -> &UserPaths {
        &self.paths
    }

    fn lock(&self) -> Result<RunLock, AgentError> {
        Ok(RunLock::acquire(
            &self.paths.lock_file(),
            self.config.lock_timeout,
        )?)
    }

    fn state(&self) -> AgentState {
        AgentState::load(&self.paths.state_file())
    }

    fn save_state(&self, state: &AgentState) -> Result<(), AgentError> {
        Ok(state.save(&self.paths.state_file())?)
    }

    fn device(&self) -> Result<Device, AgentError> {
        let uuid = match &self.config.device_uuid {
            Some(u) => u.clone(),
            None => self.platform.device_uuid()?,
        };
        let display_name = match &self.config.device_name {
            Some(n) => n.clone(),
            None => self.platform.device_name()?,
        };
        Ok(Device { uuid, display_name })
    }

    fn okta_client(&self, org: &OrgUrl) -> Result<OktaClient, AgentError> {
        okta_client(&self.config, self.platform.as_ref(), org, None)
    }

    /// The org to talk to: configured, else the one the device enrolled with.
    fn org(&self, state: &AgentState) -> Result<OrgUrl, AgentError> {
        if let Some(org) = &self.config.org_url {
            return Ok(org.clone());
        }
        match &state.org_url {
            Some(u) => OrgUrl::parse(u).map_err(|_| ConfigError::NotConfigured.into()),
            None => Err(ConfigError::NotConfigured.into()),
        }
    }

    fn current(&self, now: OffsetDateTime) -> Result<Current, AgentError> {
        let Some(der) = self.store.certificate()? else {
            return Ok(Current::None);
        };
        let info = CertificateInfo::parse(&der)?;
        let key = match self.store.signing_key() {
            Ok(Some(key)) => key,
            Ok(None) | Err(StoreError::Corrupt { .. }) => return Ok(Current::KeyMissing),
            Err(e) => return Err(e.into()),
        };
        if key.public_key_der()? != info.public_key_der {
            return Ok(Current::KeyMissing);
        }
        if !info.is_valid_at(now) {
            return Ok(Current::Expired(info));
        }
        Ok(Current::Valid(info, key))
    }

    /// `devicetrust enroll`: a certificate if there is no valid one; otherwise no request.
    pub fn enroll(&mut self) -> Result<(), AgentError> {
        let _lock = self.lock()?;
        self.enroll_locked(None)
    }

    /// How this device enrolls: SCEP when a SCEP URL is configured, else Okta.
    fn enrollment(&self) -> Result<Enrollment, AgentError> {
        match self.config.scep_settings()? {
            Some(settings) => Ok(Enrollment::Scep(Box::new(settings))),
            None => Ok(Enrollment::Okta(self.config.org_url()?.clone())),
        }
    }

    fn enroll_locked(&mut self, token: Option<Secret>) -> Result<(), AgentError> {
        let enrollment = self.enrollment()?;
        let now = OffsetDateTime::now_utc();
        let state = self.state();
        match self.current(now)? {
            Current::Valid(info, _) => {
                if let Enrollment::Okta(org) = &enrollment {
                    self.refuse_other_org(&state, org)?;
                }
                info!(
                    "a valid certificate is already installed (serial {}, {} days left); \
                     no new certificate requested",
                    info.serial_hex,
                    info.days_left(now)
                );
                self.retire_python_task();
                self.configure(&state, &info);
                return Ok(());
            }
            Current::Expired(info) => info!(
                "the installed certificate expired on {}; enrolling afresh",
                state::rfc3339(info.not_after)
            ),
            Current::KeyMissing => {
                warn!("the installed certificate has no matching private key; enrolling afresh")
            }
            Current::None => {}
        }
        match enrollment {
            Enrollment::Okta(org) => {
                let token = match token {
                    Some(t) => t,
                    None => self.config.org_token()?,
                };
                self.enroll_fresh(&org, &token, state)?
            }
            Enrollment::Scep(settings) => self.enroll_scep(&settings, state)?,
        }
        self.retire_python_task();
        Ok(())
    }

    /// Takes over from Okta's Python registration task once this agent holds a valid identity:
    /// its okta.keychain and `device_trust` password are the very store the keychain backend
    /// uses (so a device it enrolled is adopted without a new certificate, and the five-
    /// certificate limit is spared); its LaunchAgent and script folder go. Best effort: a
    /// leftover is a WARN, never a failed enrollment.
    fn retire_python_task(&self) {
        let install = crate::migration::detect(&self.config.root, &self.home);
        if install.is_empty() {
            return;
        }
        let plan = crate::migration::plan(&install, true);
        for note in &plan.notes {
            info!("{note}");
        }
        #[cfg(target_os = "macos")]
        if let (Some(label), Some(uid)) = (&plan.bootout_label, self.launchd_uid()) {
            if let Err(e) = crate::platform::launchd::unload(uid, label) {
                warn!("{label} left loaded: {e}");
            }
        }
        for path in &plan.remove {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            match removed {
                Ok(()) => info!(
                    "removed {} (Okta's Python registration task)",
                    path.display()
                ),
                Err(e) => warn!(
                    "{} left in place: {}",
                    path.display(),
                    crate::config::io_reason(&e)
                ),
            }
        }
    }

    /// PKCSReq with the static challenge: a new key and a certificate from the SCEP CA.
    fn enroll_scep(
        &mut self,
        settings: &ScepSettings,
        mut state: AgentState,
    ) -> Result<(), AgentError> {
        let key = PrivateKey::generate_rsa(settings.key_size as usize)?;
        info!(
            "requesting a certificate from the SCEP CA at {}",
            settings.url
        );
        let issued = scep::enroll(settings, &self.scep_http()?, &key)?;
        let info = self.store_new_identity(&key, &issued.certificate_der, &issued.chain, None)?;
        state.method = Some(Method::Scep);
        state.scep_url = Some(settings.url.to_string());
        state.cert_auth_host = self.config.cert_auth_host.clone();
        state.enrolled_at = Some(state::now_rfc3339());
        self.save_state(&state)?;
        self.announce("enrolled", &info);
        self.configure(&state, &info);
        Ok(())
    }

    fn scep_http(&self) -> Result<HttpSettings, AgentError> {
        let user_agent = format!("devicetrust/{}", env!("CARGO_PKG_VERSION"));
        http_settings(&self.config, user_agent, None)
    }

    fn refuse_other_org(&self, state: &AgentState, org: &OrgUrl) -> Result<(), AgentError> {
        match &state.org_url {
            Some(stored) if stored != org.as_str() => Err(AgentError::OtherOrg {
                stored: stored.clone(),
                configured: org.as_str().to_owned(),
            }),
            _ => Ok(()),
        }
    }

    fn enroll_fresh(
        &mut self,
        org: &OrgUrl,
        token: &Secret,
        mut state: AgentState,
    ) -> Result<(), AgentError> {
        let device = self.device()?;
        let client = self.okta_client(org)?;
        info!("asking {} for its device-trust metadata", org.as_str());
        let metadata = client.metadata()?;
        let key = PrivateKey::generate_rsa(KEY_BITS)?;
        let csr = pki::build_csr(&CsrProfile::okta(), &key)?;
        info!(
            "requesting a device-trust certificate for {} ({}), user {}",
            device.display_name, device.uuid, self.user
        );
        let certificate = client.enroll(token, &device, &csr, &self.user)?;
        let info = self.store_new_identity(&key, &certificate, &[], Some(OKTA_SUBJECT_CN))?;
        state.method = Some(Method::Okta);
        state.org_url = Some(org.as_str().to_owned());
        state.cert_auth_host = Some(metadata.cert_auth_host);
        state.enrolled_at = Some(state::now_rfc3339());
        self.save_state(&state)?;
        self.announce("enrolled", &info);
        self.configure(&state, &info);
        Ok(())
    }

    /// The line an admin looks for in the policy log after a certificate was stored.
    fn announce(&self, what: &str, info: &CertificateInfo) {
        info!(
            "{what}: certificate {} from {} valid until {} stored in {}",
            info.serial_hex,
            info.issuer,
            state::rfc3339(info.not_after),
            self.store.location()
        );
    }

    /// Checks the issued certificate against the key we generated, then stores both.
    fn store_new_identity(
        &mut self,
        key: &PrivateKey,
        certificate: &[u8],
        chain: &[Vec<u8>],
        expected_cn: Option<&str>,
    ) -> Result<CertificateInfo, AgentError> {
        let now = OffsetDateTime::now_utc();
        let info = pki::check_issued(certificate, &key.public_key_der()?, expected_cn, now)?;
        self.store.replace(&NewIdentity {
            key,
            certificate_der: certificate,
            chain,
        })?;
        Ok(info)
    }

    /// `devicetrust renew`: renews inside the window (or forced), else does nothing at all.
    pub fn renew(
        &mut self,
        force: bool,
        renew_before_days: Option<u32>,
    ) -> Result<RenewOutcome, AgentError> {
        let _lock = self.lock()?;
        let enrollment = self.enrollment_for_renewal()?;
        let window = match &enrollment {
            Enrollment::Scep(settings) => settings.renew_before_days,
            Enrollment::Okta(_) => None,
        }
        .unwrap_or(self.config.renew_before_days);
        let now = OffsetDateTime::now_utc();
        let mut state = self.state();
        let (info, key) = match self.current(now)? {
            Current::None => return Err(AgentError::NotEnrolled),
            Current::KeyMissing => return Err(AgentError::KeyMissing),
            Current::Expired(info) => return self.reenroll_expired(&info, enrollment, state),
            Current::Valid(info, key) => (info, key),
        };
        let days_left = info.days_left(now);
        // The device's own start inside the window spreads a fleet's renewals over days; an
        // explicit --renew-before-days (like --force) is an admin's decision and bypasses it.
        let threshold = match renew_before_days {
            Some(days) => days,
            None => self.renewal_start(window).threshold_days.min(window),
        };
        if !force && days_left >= i64::from(threshold) {
            info!(
                "the certificate is valid until {} ({days_left} days left); this device renews \
                 when fewer than {threshold} days remain: nothing to do",
                state::rfc3339(info.not_after)
            );
            return Ok(RenewOutcome::NotDue);
        }
        info!("renewing the certificate ({days_left} days left)");
        let result = match &enrollment {
            Enrollment::Okta(org) => self.renew_okta(org, &info, key.as_ref()),
            Enrollment::Scep(settings) => self.renew_scep(settings, &info, key.as_ref()),
        };
        state.record_renewal(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        self.save_state(&state)?;
        if result.is_ok() {
            // A new key and certificate: the key's app allowlist and Safari's identity
            // preferences belong to the identity, so they are applied again.
            self.reconfigure_after_renewal();
            warn_about_running_browsers();
        }
        result.map(|()| RenewOutcome::Renewed)
    }

    /// The configured method, or for Okta the org the device enrolled with.
    fn enrollment_for_renewal(&self) -> Result<Enrollment, AgentError> {
        match self.config.scep_settings()? {
            Some(settings) => Ok(Enrollment::Scep(Box::new(settings))),
            None => Ok(Enrollment::Okta(self.org(&self.state())?)),
        }
    }

    /// RenewalReq signed by the current identity (or a fresh PKCSReq, as the CA allows).
    fn renew_scep(
        &mut self,
        settings: &ScepSettings,
        current: &CertificateInfo,
        current_key: &dyn pki::SigningKey,
    ) -> Result<(), AgentError> {
        let key = PrivateKey::generate_rsa(settings.key_size as usize)?;
        let issued = scep::renew(
            settings,
            &self.scep_http()?,
            &current.der,
            current_key,
            &key,
        )?;
        let info = self.store_new_identity(&key, &issued.certificate_der, &issued.chain, None)?;
        self.announce("renewed", &info);
        Ok(())
    }

    fn reconfigure_after_renewal(&mut self) {
        let stored = self.store.certificate().ok().flatten();
        match stored.map(|der| CertificateInfo::parse(&der)) {
            Some(Ok(info)) => {
                let state = self.state();
                self.configure(&state, &info);
            }
            _ => warn!("the renewed identity could not be read back to configure it"),
        }
    }

    /// This device's place in the fleet's renewal window (a hash of its UUID).
    fn renewal_start(&self, window_days: u32) -> RenewalStart {
        let uuid = self.device().map(|d| d.uuid).unwrap_or_default();
        schedule::renewal_offset(&uuid, window_days, schedule::LATEST_DAYS_BEFORE_EXPIRY)
    }

    fn renew_okta(
        &mut self,
        org: &OrgUrl,
        current: &CertificateInfo,
        current_key: &dyn pki::SigningKey,
    ) -> Result<(), AgentError> {
        let device = self.device()?;
        let now = OffsetDateTime::now_utc();
        let claims =
            pki::RenewalClaims::new(&device.uuid, &device.display_name, now.unix_timestamp());
        let renewal_token = pki::sign_renewal_token(&claims, &current.der, current_key)?;
        let key = PrivateKey::generate_rsa(KEY_BITS)?;
        let csr = pki::build_csr(&CsrProfile::okta(), &key)?;
        let client = self.okta_client(org)?;
        let certificate = client.renew(&renewal_token, &device, &csr, &self.user)?;
        let info = self.store_new_identity(&key, &certificate, &[], Some(OKTA_SUBJECT_CN))?;
        self.announce("renewed", &info);
        Ok(())
    }

    fn reenroll_expired(
        &mut self,
        info: &CertificateInfo,
        enrollment: Enrollment,
        mut state: AgentState,
    ) -> Result<RenewOutcome, AgentError> {
        let not_after = state::rfc3339(info.not_after);
        let outcome = match enrollment {
            Enrollment::Okta(_) if self.config.org_token.is_none() => {
                Err(AgentError::Expired { not_after })
            }
            Enrollment::Scep(settings) if settings.challenge.is_none() => {
                Err(AgentError::ExpiredNoChallenge { not_after })
            }
            Enrollment::Okta(org) => {
                info!("the certificate expired on {not_after}; it cannot sign a renewal, enrolling afresh");
                self.config
                    .org_token()
                    .map_err(AgentError::from)
                    .and_then(|token| self.enroll_fresh(&org, &token, state.clone()))
            }
            Enrollment::Scep(settings) => {
                info!("the certificate expired on {not_after}; enrolling afresh with the SCEP challenge");
                self.enroll_scep(&settings, state.clone())
            }
        };
        // Enrollment saved its own state on success; reload so the attempt is added to it.
        if outcome.is_ok() {
            state = self.state();
        }
        state.record_renewal(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        self.save_state(&state)?;
        outcome.map(|()| RenewOutcome::Reenrolled)
    }

    /// The renewal job as the scheduler will run it: this binary, `renew`, at this device's time.
    fn renewal_job(&self) -> RenewalJob {
        let mut job = RenewalJob::new(
            &self.home,
            self.renewal_start(self.config.renew_before_days),
        );
        // The job runs the binary that set it up (the package installs it at the default path).
        if let Ok(exe) = std::env::current_exe() {
            job.program = exe;
        }
        job
    }

    /// Chrome's `AutoSelectCertificateForUrls` entry for this identity, when the
    /// certAuthDomain is known.
    fn browser_entry(&self, state: &AgentState, cert: &CertificateInfo) -> Option<String> {
        let host = state.cert_auth_host.as_deref()?;
        let issuer = cert.issuer_cn.as_deref().unwrap_or(chrome::OKTA_ISSUER_CN);
        Some(chrome::policy_entry(host, issuer))
    }

    /// Safari's identity-preference names (spec section 6), when the certAuthDomain is known.
    #[cfg(target_os = "macos")]
    fn safari_names(&self, state: &AgentState) -> Option<Vec<String>> {
        let host = state.cert_auth_host.as_deref()?;
        let cell = self.org(state).ok().and_then(|org| org.cell());
        Some(crate::integrations::safari::identity_preference_hosts(
            host,
            cell.as_deref(),
        ))
    }

    /// Applies everything around the identity: browser auto-selection and the renewal job.
    /// A failure here is a `WARN:`, not a failed run: the certificate is the scarce part, and
    /// the health status names what is missing until `repair` fixes it. Returns the changes.
    fn configure(&mut self, state: &AgentState, cert: &CertificateInfo) -> Vec<String> {
        let mut changes = Vec::new();
        let root = self.config.root.clone();
        if BROWSER_POLICY_FILES {
            match self.browser_entry(state, cert) {
                None => {
                    warn!("the certAuthDomain is unknown; browser auto-selection not configured")
                }
                Some(entry) => match chrome::apply(&root, &entry) {
                    Ok(done) => {
                        for change in done {
                            match change {
                                chrome::Change::Written(path) => changes.push(format!(
                                    "browser auto-selection written to {}",
                                    path.display()
                                )),
                                chrome::Change::Shadowed { dir, by } => warn!(
                                    "{} decides AutoSelectCertificateForUrls in {} and lacks our \
                                     entry; add it there",
                                    by.display(),
                                    dir.display()
                                ),
                                chrome::Change::Unparseable { path, reason } => {
                                    warn!("ignoring {}: {reason}", path.display())
                                }
                                chrome::Change::Removed(_) => {}
                            }
                        }
                    }
                    Err(e) => warn!("browser auto-selection not configured: {e}"),
                },
            }
        }
        // The user's real preference domains: not under a test/demo root.
        #[cfg(target_os = "macos")]
        if self.config.root == std::path::Path::new("/") {
            match self.browser_entry(state, cert) {
                None => {
                    warn!("the certAuthDomain is unknown; browser auto-selection not configured")
                }
                Some(entry) => changes.extend(crate::platform::preferences::apply(&entry)),
            }
            if let Some(names) = self.safari_names(state) {
                let mut prefs = crate::platform::identity_prefs::KeychainIdentityPreferences;
                match crate::integrations::safari::apply(&mut prefs, &names, &cert.der) {
                    Ok(set) => changes.extend(
                        set.into_iter()
                            .map(|name| format!("Safari identity preference set for {name}")),
                    ),
                    Err(e) => warn!("Safari identity preferences not configured: {e}"),
                }
            }
        }
        let job = self.renewal_job();
        let job_changed = if self.package_job_present() {
            // The installer's global LaunchAgent already renews for every user.
            false
        } else {
            self.install_job(&root, &job, &mut changes)
        };
        #[cfg(target_os = "macos")]
        self.load_job(job_changed, &mut changes);
        #[cfg(not(target_os = "macos"))]
        let _ = job_changed;
        if self.store.has_partition_list() {
            if let Some(desired) = self.desired_partitions() {
                changes.extend(apply_allowlist(self.store.as_mut(), &desired));
            }
        }
        for change in &changes {
            info!("{change}");
        }
        changes
    }

    /// The key's desired partition list, the agent's own partition included; `None` (with a
    /// WARN) when the configuration's list is invalid.
    fn desired_partitions(&self) -> Option<Vec<Partition>> {
        match self.config.allowlist.desired_with(Some(agent_partition())) {
            Ok(list) => Some(list),
            Err(e) => {
                warn!("the key's app allowlist is not applied: {e}");
                None
            }
        }
    }

    /// On macOS the package installs one LaunchAgent for all users; the agent's own per-user
    /// job (same label) is only for installs without the package.
    fn package_job_present(&self) -> bool {
        JobKind::native() == JobKind::LaunchAgent
            && schedule::package_job_present(&self.config.root)
    }

    /// Writes the job's files; returns whether they changed.
    fn install_job(
        &self,
        root: &std::path::Path,
        job: &RenewalJob,
        changes: &mut Vec<String>,
    ) -> bool {
        match schedule::install(root, job, JobKind::native()) {
            Ok(installed) if installed.changed => {
                changes.push(format!(
                    "renewal job installed (daily at {:02}:{:02} and at login)",
                    job.start.hour(),
                    job.start.minute()
                ));
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!("renewal job not installed: {e}");
                false
            }
        }
    }

    /// The user's uid for launchd's `gui/<uid>` domain; `None` under a test/demo root, where
    /// no real launchd job may be touched.
    #[cfg(target_os = "macos")]
    fn launchd_uid(&self) -> Option<u32> {
        if self.config.root != std::path::Path::new("/") {
            return None;
        }
        crate::platform::uid_of(&self.user)
    }

    /// Loads the renewal job into the user's GUI domain when its plist changed or launchd does
    /// not have it (a package installed after login, a job booted out by hand): the per-user
    /// plist, else the package's global one.
    #[cfg(target_os = "macos")]
    fn load_job(&self, changed: bool, changes: &mut Vec<String>) {
        use crate::platform::launchd;
        let Some(uid) = self.launchd_uid() else {
            return;
        };
        let plist = if self.package_job_present() {
            schedule::package_launch_agent_path(&self.config.root)
        } else {
            schedule::launch_agent_path(&self.config.root, &self.home)
        };
        if !plist.exists() {
            return;
        }
        if !changed && launchd::is_loaded(uid, schedule::LABEL) == Some(true) {
            return;
        }
        match launchd::reload(uid, schedule::LABEL, &plist) {
            Ok(()) => changes.push(format!("renewal job loaded into launchd (gui/{uid})")),
            Err(e) => warn!("renewal job not loaded: {e}"),
        }
    }

    /// Unloads our job and Okta's Python task from the user's GUI domain (uninstall).
    #[cfg(target_os = "macos")]
    fn unload_jobs(&self) {
        use crate::platform::launchd;
        let Some(uid) = self.launchd_uid() else {
            return;
        };
        for label in [schedule::LABEL, crate::migration::PYTHON_TASK_LABEL] {
            match launchd::unload(uid, label) {
                Ok(true) => info!("unloaded {label} from launchd (gui/{uid})"),
                Ok(false) => {}
                Err(e) => warn!("{label} left loaded: {e}"),
            }
        }
    }

    /// `devicetrust repair`: re-applies everything but the certificate, then renews if due.
    pub fn repair(&mut self) -> Result<(), AgentError> {
        let lock = self.lock()?;
        let now = OffsetDateTime::now_utc();
        let info = match self.current(now)? {
            Current::None => return Err(AgentError::NotEnrolled),
            Current::KeyMissing => return Err(AgentError::KeyMissing),
            Current::Expired(info) | Current::Valid(info, _) => info,
        };
        let state = self.state();
        let changes = self.configure(&state, &info);
        drop(lock);
        let outcome = self.renew(false, None)?;
        if changes.is_empty() && outcome == RenewOutcome::NotDue {
            info!("nothing needed repair");
        }
        Ok(())
    }

    /// `devicetrust uninstall [--reenroll]`: removes every artifact, then optionally enrolls.
    pub fn uninstall(&mut self, reenroll: bool) -> Result<(), AgentError> {
        // Read the token before removing anything: a re-enrollment that cannot happen must not
        // leave the device without its identity.
        let token = match (reenroll, self.enrollment()) {
            (false, _) => None,
            (true, Err(e)) => return Err(e),
            (true, Ok(Enrollment::Okta(_))) => Some(self.config.org_token()?),
            (true, Ok(Enrollment::Scep(_))) => None,
        };
        let lock = self.lock()?;
        let root = self.config.root.clone();
        let state = self.state();
        if BROWSER_POLICY_FILES {
            let entry = self
                .store
                .certificate()
                .ok()
                .flatten()
                .and_then(|der| CertificateInfo::parse(&der).ok())
                .and_then(|cert| self.browser_entry(&state, &cert));
            if let Some(entry) = entry {
                match chrome::remove_from_dirs(&root, &entry) {
                    Ok(changes) => {
                        for change in changes {
                            if let chrome::Change::Removed(path) = change {
                                info!(
                                    "removed our browser auto-selection entry from {}",
                                    path.display()
                                );
                            }
                        }
                    }
                    Err(e) => warn!("browser auto-selection entry left in place: {e}"),
                }
            }
        }
        #[cfg(target_os = "macos")]
        if let Some(entry) = (self.config.root == std::path::Path::new("/"))
            .then(|| self.store.certificate().ok().flatten())
            .flatten()
            .and_then(|der| CertificateInfo::parse(&der).ok())
            .and_then(|cert| self.browser_entry(&state, &cert))
        {
            for change in crate::platform::preferences::remove(&entry) {
                info!("{change}");
            }
        }
        #[cfg(target_os = "macos")]
        if let (true, Some(der), Some(names)) = (
            self.config.root == std::path::Path::new("/"),
            self.store.certificate().ok().flatten(),
            self.safari_names(&state),
        ) {
            let mut prefs = crate::platform::identity_prefs::KeychainIdentityPreferences;
            match crate::integrations::safari::remove_ours(&mut prefs, &names, &[der.as_slice()]) {
                Ok(removed) => {
                    for name in removed {
                        info!("removed the Safari identity preference for {name}");
                    }
                }
                Err(e) => warn!("Safari identity preferences left in place: {e}"),
            }
        }
        // Unloaded before its plist goes, or launchd keeps running a job with no file.
        #[cfg(target_os = "macos")]
        self.unload_jobs();
        let removed =
            schedule::remove(&root, &self.home, JobKind::native()).map_err(|e| StoreError::Io {
                path: self.paths.home.clone(),
                action: "removing the renewal job",
                reason: e.to_string(),
            })?;
        for path in removed {
            info!("removed {}", path.display());
        }
        if self.store.remove()? {
            info!("removed the identity from {}", self.store.location());
        } else {
            info!("no identity to remove in {}", self.store.location());
        }
        let state_file = self.paths.state_file();
        if state_file.exists() {
            std::fs::remove_file(&state_file).map_err(|e| StoreError::Io {
                path: state_file.clone(),
                action: "removing the state file",
                reason: crate::config::io_reason(&e),
            })?;
            info!("removed {}", state_file.display());
        }
        for leftover in self.paths.python_task_leftovers() {
            let removed = if leftover.is_dir() {
                std::fs::remove_dir_all(&leftover)
            } else if leftover.exists() {
                std::fs::remove_file(&leftover)
            } else {
                continue;
            };
            removed.map_err(|e| StoreError::Io {
                path: leftover.clone(),
                action: "removing Okta's Python task",
                reason: crate::config::io_reason(&e),
            })?;
            info!(
                "removed {} (Okta's Python registration task)",
                leftover.display()
            );
        }
        if let Some(token) = token {
            let result = self.enroll_locked(Some(token));
            drop(lock);
            return result;
        }
        drop(lock);
        let _ = std::fs::remove_file(self.paths.lock_file());
        let _ = std::fs::remove_dir(&self.paths.state_dir);
        Ok(())
    }

    /// What is on the device, and the first failing link of the health chain.
    pub fn status(&self, check_network: bool) -> Result<StatusReport, AgentError> {
        let now = OffsetDateTime::now_utc();
        let state = self.state();
        let probe = self.store.probe();
        let certificate = match self.store.certificate() {
            Ok(Some(der)) => CertificateInfo::parse(&der).ok(),
            Ok(None) | Err(StoreError::Corrupt { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let key_matches = match (&certificate, self.store.signing_key()) {
            (Some(cert), Ok(Some(key))) => {
                key.public_key_der().is_ok_and(|k| k == cert.public_key_der)
            }
            _ => false,
        };
        let facts = HealthFacts {
            now,
            configured: self.config.is_configured(),
            okta_reachable: if check_network && self.config.is_configured() {
                org_reachable(&self.config, self.platform.as_ref())
            } else {
                None
            },
            user_session: None,
            store_exists: probe.exists,
            password_item: probe.password_item,
            certificate: certificate.clone(),
            key_matches,
            renew_before_days: self.config.renew_before_days,
            last_renewal: state.last_renewal.clone(),
            // Working out the desired list reads the agent's own code signature: only where
            // the store has a list to compare it with.
            app_access_complete: if self.store.has_partition_list() {
                self.desired_partitions()
                    .and_then(|desired| app_access_complete(self.store.as_ref(), &desired))
            } else {
                None
            },
            browser_policy_present: match &certificate {
                Some(cert) if BROWSER_POLICY_FILES => self
                    .browser_entry(&state, cert)
                    .map(|entry| chrome::is_present(&self.config.root, &entry)),
                #[cfg(target_os = "macos")]
                Some(cert) if self.config.root == std::path::Path::new("/") => self
                    .browser_entry(&state, cert)
                    .map(|entry| crate::platform::preferences::present_everywhere(&entry)),
                _ => None,
            },
            renewal_job_installed: Some(self.renewal_job_installed()),
            background_task_enabled: self.background_task_enabled(),
        };
        Ok(StatusReport {
            status: health::evaluate(&facts),
            method: self.method(&state),
            user: Some(self.user.clone()),
            store: Some(self.store.location()),
            certificate,
            org_url: state
                .org_url
                .clone()
                .or_else(|| self.config.org_url.as_ref().map(|o| o.as_str().to_owned())),
            cert_auth_host: state.cert_auth_host.clone(),
            scep_url: state
                .scep_url
                .clone()
                .or_else(|| self.config.scep.url.clone()),
            last_renewal: state.last_renewal,
            renews_below_days: Some(
                self.renewal_start(self.config.renew_before_days)
                    .threshold_days
                    .min(self.config.renew_before_days),
            ),
            now,
        })
    }

    /// The job's files are there and, on macOS, launchd has it loaded (unknown counts as yes:
    /// a launchctl that cannot run is no evidence against the job).
    fn renewal_job_installed(&self) -> bool {
        let files = self.package_job_present()
            || schedule::is_installed(&self.config.root, &self.renewal_job(), JobKind::native());
        #[cfg(target_os = "macos")]
        if let Some(uid) = self.launchd_uid() {
            return files
                && crate::platform::launchd::is_loaded(uid, schedule::LABEL) != Some(false);
        }
        files
    }

    /// Whether the user left the job switched on in Login Items (macOS 13+); `None` elsewhere
    /// or when Background Task Management cannot be read.
    fn background_task_enabled(&self) -> Option<bool> {
        #[cfg(target_os = "macos")]
        if let Some(uid) = self.launchd_uid() {
            return crate::platform::launchd::login_item_enabled(uid, schedule::LABEL);
        }
        None
    }

    fn method(&self, state: &AgentState) -> Method {
        state.method.unwrap_or(if self.config.scep.url.is_some() {
            Method::Scep
        } else {
            Method::Okta
        })
    }
}

/// The agent's own partition ID: its signing team, so it keeps using the key it created
/// (renewal tokens are signed with it); `unsigned:` for a build without a team signature.
fn agent_partition() -> Partition {
    std::env::current_exe()
        .ok()
        .and_then(|exe| crate::codesign::team_identity(&exe).ok())
        .map(|team| team.partition)
        .unwrap_or_else(|| Partition::Other("unsigned:".to_owned()))
}

/// The health link: every desired app is on the key's list. `None` when the store has no
/// partition list (the file store); an unreadable list counts as incomplete.
fn app_access_complete(store: &dyn IdentityStore, desired: &[Partition]) -> Option<bool> {
    store.partition_list().map(|r| {
        r.map(|cur| allowlist::is_complete(&cur, desired))
            .unwrap_or(false)
    })
}

/// Brings the key's partition list to `desired` (adding missing apps, removing strays);
/// returns the change line for the log, or nothing when the list was right or cannot be set.
fn apply_allowlist(store: &mut dyn IdentityStore, desired: &[Partition]) -> Option<String> {
    let current = match store.partition_list()? {
        Ok(current) => current,
        Err(e) => {
            warn!("the key's app allowlist cannot be read: {e}");
            return None;
        }
    };
    let change = allowlist::diff(&current, desired);
    if change.is_empty() {
        return None;
    }
    match store.set_partition_list(desired)? {
        Ok(()) => Some(format!(
            "key app allowlist set to {} (added: {}; removed: {})",
            allowlist::partition_list_string(desired),
            display_or_none(&change.to_add),
            display_or_none(&change.to_remove),
        )),
        Err(e) => {
            warn!("the key's app allowlist is not applied: {e}");
            None
        }
    }
}

fn display_or_none(list: &[Partition]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        allowlist::partition_list_string(list)
    }
}

impl StatusReport {
    /// The report when there is no user to act for, or nothing is configured.
    pub fn without_user(status: HealthStatus, config: Option<&Config>) -> StatusReport {
        StatusReport {
            status,
            method: match config {
                Some(c) if c.scep.url.is_some() => Method::Scep,
                _ => Method::Okta,
            },
            user: None,
            store: None,
            certificate: None,
            org_url: config.and_then(|c| c.org_url.as_ref().map(|o| o.as_str().to_owned())),
            cert_auth_host: None,
            scep_url: config.and_then(|c| c.scep.url.clone()),
            last_renewal: None,
            renews_below_days: None,
            now: OffsetDateTime::now_utc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::SigningKey;
    use crate::store::StoreProbe;

    /// An in-memory store with a partition list, standing in for the keychain on Linux.
    struct MemoryStore {
        partitions: Vec<Partition>,
        writes: usize,
    }

    impl IdentityStore for MemoryStore {
        fn location(&self) -> String {
            "memory:".into()
        }

        fn has_partition_list(&self) -> bool {
            true
        }
        fn probe(&self) -> StoreProbe {
            StoreProbe {
                exists: Some(true),
                password_item: Some(true),
            }
        }
        fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
            Ok(None)
        }
        fn replace(&mut self, _: &NewIdentity<'_>) -> Result<(), StoreError> {
            Ok(())
        }
        fn remove(&mut self) -> Result<bool, StoreError> {
            Ok(false)
        }
        fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
            Some(Ok(self.partitions.clone()))
        }
        fn set_partition_list(&mut self, list: &[Partition]) -> Option<Result<(), StoreError>> {
            self.partitions = list.to_vec();
            self.writes += 1;
            Some(Ok(()))
        }
    }

    fn desired() -> Vec<Partition> {
        allowlist::AllowlistConfig::default()
            .desired_with(Some(Partition::Other("unsigned:".into())))
            .unwrap()
    }

    #[test]
    fn a_key_missing_an_app_is_incomplete_until_configure_repairs_it() {
        let desired = desired();
        // What SecItemImport leaves: the importing app's partition and apple-tool: only.
        let mut store = MemoryStore {
            partitions: vec![
                Partition::AppleTool,
                Partition::Other("unsigned:".into()),
                Partition::TeamId("ABCDE12345".into()),
            ],
            writes: 0,
        };
        assert_eq!(app_access_complete(&store, &desired), Some(false));
        let facts_status = |complete| {
            let mut f = health::tests::healthy();
            f.app_access_complete = complete;
            health::evaluate(&f)
        };
        assert_eq!(
            facts_status(app_access_complete(&store, &desired)),
            HealthStatus::AppAccessIncomplete
        );

        let line = apply_allowlist(&mut store, &desired).unwrap();
        assert!(line.contains("teamid:EQHXZ8M8AV"), "{line}");
        assert!(line.contains("removed: teamid:ABCDE12345"), "{line}");
        assert_eq!(store.partitions, desired);
        assert_eq!(app_access_complete(&store, &desired), Some(true));
        assert_eq!(
            facts_status(app_access_complete(&store, &desired)),
            HealthStatus::Healthy
        );
        // Already right: no write, no change line.
        assert_eq!(apply_allowlist(&mut store, &desired), None);
        assert_eq!(store.writes, 1);
    }

    #[test]
    fn the_file_store_has_no_allowlist_link() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::new(dir.path().join("store"));
        assert_eq!(app_access_complete(&store, &desired()), None);
        assert_eq!(apply_allowlist(&mut store, &desired()), None);
    }
}
