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
mod plan;
mod renew;
mod status;
mod uninstall;

pub use enroll::{Enrolled, Taken};
pub use error::AgentError;
pub use renew::RenewOutcome;
pub use status::StatusReport;

use crate::chain::{Chain, Context, ExpectedCa, Held, Superseded, UserHome};
use crate::config::{Config, Source};
use crate::host::Host;
use crate::lock::RunLock;
use crate::okta::Device;
use crate::paths::UserPaths;
use crate::pki::CertificateInfo;
use crate::record::{DeviceRecordFile, EnrollmentRecord, Loaded, RecordFile};
use crate::renewal::RenewalPolicy;
use crate::store::IdentityStore;
use time::OffsetDateTime;
use tracing::{info, warn};

/// The key size of Okta's device-trust CSR (the only one Okta's task ever sent).
pub const OKTA_KEY_BITS: u32 = 2048;

/// Whether a run may change the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Write,
    /// `plan`: reads only, and no secret.
    ReadOnly,
}

pub struct Agent {
    config: Config,
    host: Box<dyn Host>,
    home: UserHome,
    store: Box<dyn IdentityStore>,
    chain: Chain,
    record_file: RecordFile,
    /// The root-owned record: root runs write it and take their settings from it.
    device_file: DeviceRecordFile,
    root_run: bool,
    /// This run's saves reach the record its settings came from: root's record in a root run,
    /// the user's copy in a setup that never ran as root. Only such a run fetches what the
    /// record vouches for (the SCEP CA's certificates).
    owns_record: bool,
    record: EnrollmentRecord,
}

impl Agent {
    /// Binds the agent to the user it acts for (`--user`, else the console user), reads the
    /// enrollment record and fills from it what no other layer of the configuration set.
    ///
    /// Settings come from the root-owned record; of the copy in the user's home only the
    /// history is used. Without a root-owned record, a root run migrates the copy's settings
    /// where they agree with the configuration, and a run as the user takes them as they are.
    pub fn new(config: Config, host: Box<dyn Host>) -> Result<Agent, AgentError> {
        Self::open(config, host, Access::Write)
    }

    /// As [`Agent::new`], for a run that may change the device or not. A read-only agent sets
    /// no damaged record aside and sees its store through [`crate::store::ReadOnly`].
    pub fn open(
        mut config: Config,
        host: Box<dyn Host>,
        access: Access,
    ) -> Result<Agent, AgentError> {
        let read_only = access == Access::ReadOnly;
        let user = match &config.user {
            Some(u) => u.clone(),
            None => host
                .platform()
                .console_user()
                .ok_or(AgentError::NoUserSession)?,
        };
        let home_dir = host.platform().home_dir(&user);
        let home = UserHome::new(user, &home_dir, host.root(), host.layout());
        let root_run = crate::platform::is_root();
        let device_file = DeviceRecordFile::for_user(host.root(), host.layout(), &home.user);
        let record_file = RecordFile::in_dir(home.state_place());
        let (device, loaded) = if read_only {
            (device_file.peek()?, record_file.peek()?)
        } else {
            (device_file.load()?, record_file.load()?)
        };
        let (copy, damaged) = match loaded {
            Loaded::Absent => (None, false),
            Loaded::Found(record) => (Some(record), false),
            Loaded::Damaged { reason, .. } if read_only => {
                warn!(
                    "the enrollment record {} does not parse ({reason}); a run that changes \
                     the device keeps it aside",
                    record_file.path().display()
                );
                (None, true)
            }
            Loaded::Damaged { kept_as, reason } => {
                warn!(
                    "the enrollment record did not parse ({reason}); it was kept as {}",
                    kept_as.display()
                );
                (None, true)
            }
        };
        // Root's record decides wherever there is one. Without it, a root run migrates what
        // of the user's copy agrees with the configuration, and the user's own run (a setup
        // that never ran as root) takes the copy as it is.
        let history = copy
            .as_ref()
            .map(EnrollmentRecord::history)
            .unwrap_or_default();
        let (settings, source) = match device {
            Some(device) => (device, Source::Record),
            None if root_run => (
                Self::migrate(&config, copy.as_ref(), record_file.path()),
                Source::Record,
            ),
            None => (copy.unwrap_or_default(), Source::UserCopy),
        };
        config.merge_record(&settings, source)?;
        let record = settings.over(&history);
        let mut store = host.open_store(config.store.as_ref(), &home)?;
        if read_only {
            store = Box::new(crate::store::ReadOnly(store));
        }
        let chain = host.chain(&home);
        let mut agent = Agent {
            config,
            host,
            home,
            store,
            chain,
            record_file,
            device_file,
            root_run,
            owns_record: root_run || source == Source::UserCopy,
            record,
        };
        if source == Source::UserCopy && !agent.record.is_enrollment() {
            agent.rebuild_from_store_copy(damaged)?;
        }
        agent.config.check_scep_transport()?;
        Ok(agent)
    }

    /// The settings a root run takes from a record the user could have written (when root has
    /// none of its own yet): its part that agrees with the configuration, else nothing.
    fn migrate(
        config: &Config,
        copy: Option<&EnrollmentRecord>,
        path: &std::path::Path,
    ) -> EnrollmentRecord {
        let Some(copy) = copy.filter(|c| c.is_enrollment()) else {
            return EnrollmentRecord::default();
        };
        match config.agreeing_part(copy) {
            Ok(part) => {
                info!(
                    "taking over the enrollment record {} where it agrees with the \
                     configuration",
                    path.display()
                );
                part
            }
            Err(why) => {
                warn!(
                    "ignoring the enrollment record {}: {why}; a run as root takes settings \
                     only from root-owned places",
                    path.display()
                );
                EnrollmentRecord::default()
            }
        }
    }

    /// The user's own run with no usable record: the copy kept beside the identity (the user's
    /// too) restores it.
    fn rebuild_from_store_copy(&mut self, damaged: bool) -> Result<(), AgentError> {
        let Some(copy) = self
            .store
            .record_copy()
            .and_then(|bytes| serde_json::from_slice::<EnrollmentRecord>(&bytes).ok())
        else {
            return Ok(());
        };
        if damaged {
            info!("enrollment record rebuilt from {}", self.store.location());
        }
        self.config.merge_record(&copy, Source::UserCopy)?;
        self.record = copy.over(&self.record.history());
        Ok(())
    }

    pub fn user(&self) -> &str {
        &self.home.user
    }

    /// Where the identity lives, for reports.
    pub fn store_location(&self) -> String {
        self.store.location()
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

    /// Saves the record: root's copy (root runs), then the user's.
    fn save_record(&self) -> Result<(), AgentError> {
        if self.root_run {
            self.device_file.save(&self.record)?;
        }
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

    /// What the store holds, judged against the clock and the CA this run's record and
    /// configuration expect.
    fn held(&self, now: OffsetDateTime) -> Result<Held, AgentError> {
        let expected = ExpectedCa::of(&self.config, &self.record);
        Ok(Held::read(self.store.as_ref(), now, &expected)?)
    }

    /// A device enrolled over SCEP by an agent that did not record the CA's certificates gets
    /// them now, from the configured CA (pinned where a fingerprint is set), so the stored
    /// identity is judged by the CA's signature from here on. Only a run whose saves reach the
    /// record it judges by fetches them, and only while a certificate is stored; a failure is
    /// a `WARN:` (the identity stays as it is, judged at a later run).
    fn learn_scep_ca(&mut self, held: &Held) -> Result<bool, AgentError> {
        let expected = ExpectedCa::of(&self.config, &self.record);
        if !self.owns_record || !expected.needs_scep_ca() || held.shown().is_none() {
            return Ok(false);
        }
        match net::scep_ca_certificates(&self.config) {
            Ok(certificates) => {
                info!("recorded the SCEP CA's certificates, to judge the stored identity by");
                self.record.scep_ca_certificates = crate::chain::ca::encoded(&certificates);
                self.save_record()?;
                Ok(true)
            }
            Err(e) => {
                warn!("the SCEP CA's certificates could not be fetched: {e}");
                Ok(false)
            }
        }
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

    /// What keeping a new certificate needs on this device, checked before one is requested:
    /// root's record writable, the store usable and ours, every link's places and tools (the
    /// run lock is already held). A refused run has asked the CA for nothing.
    fn preflight(&mut self, held: &Held) -> Result<(), AgentError> {
        self.records_writable()?;
        Ok(self.with_chain(held, Superseded::default(), |chain, cx| chain.preflight(cx))?)
    }

    /// Where a new certificate's record goes can be written: root's record (root runs) and the
    /// state folder, reached without a planted link. Nothing is created.
    fn records_writable(&self) -> Result<(), AgentError> {
        if self.root_run {
            self.device_file.check()?;
        }
        self.home
            .state_place()
            .open()
            .map_err(crate::record::RecordError::from_fs("write"))?;
        Ok(())
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
        report.result("plan", self.plan_twice());
        Ok(report)
    }

    /// `plan` worked out twice in a row over the same device (at the same moment, so that no
    /// date moves): a look that changed anything it looks at would not say the same again.
    fn plan_twice(&mut self) -> Result<String, String> {
        let now = OffsetDateTime::now_utc();
        let mut once = || -> Result<crate::chain::plan::Plan, AgentError> {
            let held = self.held(now)?;
            self.survey(&held, now)
        };
        let first = once().map_err(|e| e.to_string())?;
        let second = once().map_err(|e| e.to_string())?;
        if first == second {
            return Ok(format!(
                "the same twice: {}, {} links",
                first.verdict().short(),
                first.steps.len()
            ));
        }
        let differing = first
            .steps
            .iter()
            .zip(&second.steps)
            .find(|(a, b)| a != b)
            .map_or("the verdict", |(a, _)| a.link);
        Err(format!(
            "the second plan differs from the first at {differing}: {} then {}",
            first.verdict().short(),
            second.verdict().short()
        ))
    }

    /// Applies the chain around a (new) identity; returns the changes made.
    fn configure(&mut self, superseded: Superseded) -> Result<Vec<String>, AgentError> {
        let held = self.held(OffsetDateTime::now_utc())?;
        Ok(self.with_chain(&held, superseded, |chain, cx| chain.apply(cx))?)
    }

    /// Applies the chain as `configure` does, saying what each link changed.
    fn configure_by_link(
        &mut self,
        superseded: Superseded,
    ) -> Result<crate::chain::Applied, AgentError> {
        let held = self.held(OffsetDateTime::now_utc())?;
        Ok(self.with_chain(&held, superseded, |chain, cx| chain.apply_by_link(cx))?)
    }

    /// Applies the chain as `configure` does, returning the links that could not be applied.
    fn configure_each(&mut self) -> Result<crate::chain::Applied, AgentError> {
        let held = self.held(OffsetDateTime::now_utc())?;
        Ok(self.with_chain(&held, Superseded::default(), |chain, cx| {
            chain.apply_each(cx)
        })?)
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
