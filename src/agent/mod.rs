//! The workflows: enroll, renew, status, repair, uninstall. Orchestration only.
//!
//! Certificate work (pki, okta | scep, store) is ordered so that a failure at any point leaves
//! the stored identity exactly as it was: the store accepts only a checked identity, and the old
//! identity goes only after the new one is stored. Everything around the identity is the chain
//! of links (`crate::chain`): enroll and repair apply it, status observes it, uninstall removes
//! it. What differs per platform is the host's; nothing here asks which OS this is.

mod enroll;
mod error;
pub mod net;
mod renew;
mod status;
mod uninstall;

pub use error::AgentError;
pub use renew::RenewOutcome;
pub use status::StatusReport;

use crate::chain::{Chain, Context, Held, Superseded, UserHome};
use crate::config::Config;
use crate::host::Host;
use crate::lock::RunLock;
use crate::okta::Device;
use crate::paths::UserPaths;
use crate::pki::CertificateInfo;
use crate::record::{EnrollmentRecord, Loaded, RecordFile};
use crate::renewal::RenewalPolicy;
use crate::store::IdentityStore;
use time::OffsetDateTime;
use tracing::{info, warn};

/// The key size of Okta's device-trust CSR (the only one Okta's task ever sent).
pub const OKTA_KEY_BITS: u32 = 2048;

pub struct Agent {
    config: Config,
    host: Box<dyn Host>,
    home: UserHome,
    store: Box<dyn IdentityStore>,
    chain: Chain,
    record_file: RecordFile,
    record: EnrollmentRecord,
}

impl Agent {
    /// Binds the agent to the user it acts for (`--user`, else the console user), reads the
    /// enrollment record and fills from it what no other layer of the configuration set.
    pub fn new(mut config: Config, host: Box<dyn Host>) -> Result<Agent, AgentError> {
        let user = match &config.user {
            Some(u) => u.clone(),
            None => host
                .platform()
                .console_user()
                .ok_or(AgentError::NoUserSession)?,
        };
        let home_dir = host.platform().home_dir(&user);
        let home = UserHome::new(user, &home_dir, host.root(), host.layout());
        let record_file = RecordFile::in_dir(home.state_place());
        let (mut record, damaged) = match record_file.load()? {
            Loaded::Absent => (EnrollmentRecord::default(), false),
            Loaded::Found(record) => (record, false),
            Loaded::Damaged { kept_as, reason } => {
                warn!(
                    "the enrollment record did not parse ({reason}); it was kept as {} and is \
                     rebuilt from the identity store",
                    kept_as.display()
                );
                (EnrollmentRecord::default(), true)
            }
        };
        config.merge_record(&record);
        let store = host.open_store(config.store.as_ref(), &home)?;
        if !record.is_enrollment() {
            if let Some(copy) = store
                .record_copy()
                .and_then(|bytes| serde_json::from_slice::<EnrollmentRecord>(&bytes).ok())
            {
                if damaged {
                    info!("enrollment record rebuilt from {}", store.location());
                }
                record = EnrollmentRecord {
                    last_renewal: record.last_renewal.take(),
                    ..copy
                };
                config.merge_record(&record);
            }
        }
        let chain = host.chain(&home);
        Ok(Agent {
            config,
            host,
            home,
            store,
            chain,
            record_file,
            record,
        })
    }

    pub fn user(&self) -> &str {
        &self.home.user
    }

    pub fn paths(&self) -> &UserPaths {
        &self.home.paths
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn lock(&self) -> Result<RunLock, AgentError> {
        Ok(RunLock::acquire(
            &self.home.state_place(),
            crate::paths::LOCK_FILE,
            self.config.lock_timeout,
        )?)
    }

    fn save_record(&self) -> Result<(), AgentError> {
        Ok(self.record_file.save(&self.record)?)
    }

    fn device(&self) -> Result<Device, AgentError> {
        let platform = self.host.platform();
        let uuid = match &self.config.device_uuid {
            Some(u) => u.clone(),
            None => platform.device_uuid()?,
        };
        let display_name = match &self.config.device_name {
            Some(n) => n.clone(),
            None => platform.device_name()?,
        };
        Ok(Device { uuid, display_name })
    }

    /// This device's renewal policy (its place in the fleet comes from its UUID).
    fn policy(&self) -> RenewalPolicy {
        let uuid = self.device().map(|d| d.uuid).unwrap_or_default();
        self.config.renewal_policy(&uuid)
    }

    fn held(&self, now: OffsetDateTime) -> Result<Held, AgentError> {
        Ok(Held::read(self.store.as_ref(), now)?)
    }

    /// Runs `f` with the chain and a context over this run's state.
    fn with_chain<R>(
        &mut self,
        held: &Held,
        superseded: Superseded,
        f: impl FnOnce(&Chain, &mut Context<'_>) -> R,
    ) -> R {
        let policy = self.policy();
        let program = std::env::current_exe()
            .unwrap_or_else(|_| crate::integrations::schedule::DEFAULT_PROGRAM.into());
        let Agent {
            config,
            home,
            store,
            chain,
            record,
            ..
        } = self;
        let mut cx = Context {
            config,
            home,
            record,
            store: store.as_mut(),
            held,
            policy,
            now: OffsetDateTime::now_utc(),
            program,
            superseded,
        };
        f(chain, &mut cx)
    }

    /// `devicetrust selftest`: the host's checks over what is stored now, read only.
    pub fn selftest(&mut self) -> Result<crate::selftest::Report, AgentError> {
        let held = self.held(OffsetDateTime::now_utc())?;
        let host = &self.host;
        let mut report = crate::selftest::Report::default();
        // The context is built as for the chain; the host's checks only look.
        let policy = self.policy();
        let program = std::env::current_exe()
            .unwrap_or_else(|_| crate::integrations::schedule::DEFAULT_PROGRAM.into());
        let cx = Context {
            config: &self.config,
            home: &self.home,
            record: &self.record,
            store: self.store.as_mut(),
            held: &held,
            policy,
            now: OffsetDateTime::now_utc(),
            program,
            superseded: Superseded::default(),
        };
        host.self_checks(&cx, &mut report);
        Ok(report)
    }

    /// Applies the chain around a (new) identity; returns the changes made.
    fn configure(&mut self, superseded: Superseded) -> Result<Vec<String>, AgentError> {
        let held = self.held(OffsetDateTime::now_utc())?;
        Ok(self.with_chain(&held, superseded, |chain, cx| chain.apply(cx))?)
    }

    /// The line an admin looks for in the policy log after a certificate was stored.
    fn announce(&self, what: &str, info: &CertificateInfo) {
        info!(
            "{what}: certificate {} from {} valid until {} stored in {}",
            info.serial_hex,
            info.issuer,
            crate::timefmt::rfc3339(info.not_after),
            self.store.location()
        );
    }
}
