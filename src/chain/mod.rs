//! The chain of links: every artifact the agent owns on a device, in the order of the health
//! statuses, each with the same small interface.
//!
//! A link is *observed* (healthy, failing with the status it maps to, or not applicable here),
//! *applied* (idempotent; it says what it changed) and *removed* (only what is ours). Then
//! `enroll` and `repair` apply the chain, `status`/`ea` observe it and report the first failing
//! link, `uninstall` removes it in reverse: one place knows what "configured" means, and a new
//! integration is one new link. Which links exist, with which backend, is the host's choice.

pub mod allowlist;
pub mod browser;
pub mod ca;
pub mod identity;
pub mod job;
pub mod legacy;
pub mod nss;
pub mod plan;
pub mod safari;

use crate::config::Config;
use crate::health::{self, HealthStatus, Observation, Verdict};
use crate::pki::CertificateInfo;
use crate::record::{EnrollmentRecord, Method};
use crate::renewal::RenewalPolicy;
use crate::store::{IdentityStore, StoreError, StoreView};
pub use ca::ExpectedCa;
pub use plan::{Action, Outlook, Step};

pub use crate::paths::UserHome;
use std::path::PathBuf;
use time::OffsetDateTime;
use tracing::{info, warn};

/// What the store holds right now, judged against the clock and the expected CA; read once per
/// run.
#[derive(Debug, Clone)]
pub enum Held {
    Nothing,
    /// A stored certificate or key that cannot be read: the status it maps to, and why.
    Damaged {
        status: HealthStatus,
        detail: String,
    },
    /// A certificate the expected CA did not issue (placed by hand, or left from another
    /// method or CA than the configured one): shown by `status`, never used for anything.
    Foreign {
        certificate: CertificateInfo,
        reason: String,
    },
    KeyMissing(CertificateInfo),
    /// Ours, but the device's clock is before its notBefore: the clock is wrong, not the
    /// certificate, and no new certificate would be valid either.
    NotYetValid(CertificateInfo),
    Expired(CertificateInfo),
    Valid(CertificateInfo),
}

impl Held {
    /// Reads the store by attributes (no password, no unlock), judged against the clock and
    /// the expected CA. Only damage is folded into the value; an I/O error (a store that cannot
    /// be reached) is an error, because it says nothing about the identity.
    pub fn read(
        store: &dyn StoreView,
        now: OffsetDateTime,
        expected: &ExpectedCa,
    ) -> Result<Held, StoreError> {
        let certificate = match store.certificate() {
            Ok(Some(der)) => match CertificateInfo::parse(&der) {
                Ok(info) => info,
                Err(e) => {
                    return Ok(Held::Damaged {
                        status: HealthStatus::CertificateMissing,
                        detail: format!("the stored certificate cannot be read: {e}"),
                    })
                }
            },
            Ok(None) => return Ok(Held::Nothing),
            Err(e) if e.is_damage() => {
                return Ok(Held::Damaged {
                    status: HealthStatus::CertificateMissing,
                    detail: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        // Before the key: a certificate that is not ours says nothing about our key.
        if let Err(reason) = expected.judge(&certificate) {
            return Ok(Held::Foreign {
                certificate,
                reason,
            });
        }
        match store.holds_key_of(&certificate.der) {
            Ok(true) => {}
            Ok(false) => return Ok(Held::KeyMissing(certificate)),
            Err(e) if e.is_damage() => {
                return Ok(Held::Damaged {
                    status: HealthStatus::PrivateKeyMissing,
                    detail: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        }
        if now < certificate.not_before {
            return Ok(Held::NotYetValid(certificate));
        }
        if !certificate.is_valid_at(now) {
            return Ok(Held::Expired(certificate));
        }
        Ok(Held::Valid(certificate))
    }

    /// The stored certificate when it is ours (from the expected CA), whatever its state.
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        match self {
            Held::KeyMissing(c) | Held::NotYetValid(c) | Held::Expired(c) | Held::Valid(c) => {
                Some(c)
            }
            Held::Nothing | Held::Damaged { .. } | Held::Foreign { .. } => None,
        }
    }

    /// The stored certificate as `status` shows it, a foreign one included.
    pub fn shown(&self) -> Option<&CertificateInfo> {
        match self {
            Held::Foreign { certificate, .. } => Some(certificate),
            held => held.certificate(),
        }
    }

    pub fn is_valid(&self) -> bool {
        matches!(self, Held::Valid(_))
    }
}

/// Everything a link may look at or change in one run.
pub struct Context<'a> {
    pub config: &'a Config,
    pub home: &'a UserHome,
    pub record: &'a EnrollmentRecord,
    pub store: &'a mut dyn IdentityStore,
    pub held: &'a Held,
    pub policy: RenewalPolicy,
    pub now: OffsetDateTime,
    /// The agent binary the renewal job runs.
    pub program: PathBuf,
    /// What this run's renewal left behind, for the links to clean up.
    pub superseded: Superseded,
}

/// What a renewal replaced.
#[derive(Debug, Clone, Default)]
pub struct Superseded {
    /// certAuthDomain hosts this device used before the current one (the metadata moved it):
    /// their browser and Safari entries go.
    pub hosts: Vec<String>,
    /// Certificates (DER) this run replaced: copies of them elsewhere (NSS, Safari) go.
    pub certificates: Vec<Vec<u8>>,
}

impl Context<'_> {
    /// The CA the stored identity must come from: this run's record and configuration.
    pub fn expected_ca(&self) -> ExpectedCa {
        ExpectedCa::of(self.config, self.record)
    }

    /// How this device enrolled: the record's word, else the configuration's.
    pub fn method(&self) -> Method {
        self.record.method.unwrap_or_else(|| self.config.method())
    }

    /// Where browsers must present the certificate: Okta's metadata (kept in the record) for
    /// an Okta enrollment; for SCEP, the configured host (or the one the enrollment saved).
    pub fn cert_auth_host(&self) -> Option<&str> {
        match self.method() {
            Method::Okta => self.record.cert_auth_host.as_deref(),
            Method::Scep => self
                .config
                .cert_auth_host
                .as_deref()
                .or(self.record.cert_auth_host.as_deref()),
        }
    }

    /// Where browsers will present a certificate this run enrolls: the record it makes comes
    /// from the configuration, so its method decides; Okta's host is the record's while the
    /// method stays (Okta's metadata names it again), the configured one for SCEP.
    pub fn enrolled_host(&self) -> Option<&str> {
        let recorded = |method| {
            self.record
                .cert_auth_host
                .as_deref()
                .filter(|_| self.record.method.is_none_or(|m| m == method))
        };
        match self.config.method() {
            Method::Okta => recorded(Method::Okta),
            Method::Scep => self
                .config
                .cert_auth_host
                .as_deref()
                .or_else(|| recorded(Method::Scep)),
        }
    }

    /// The org's cell (`okta.com`): Safari's `*.<cell>` name.
    pub fn cell(&self) -> Option<String> {
        self.record
            .cell
            .clone()
            .or_else(|| self.config.org_url.as_ref().and_then(|o| o.cell()))
            .filter(|_| self.method() == Method::Okta)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Browser(#[from] crate::integrations::chrome::ChromeError),
    #[error(transparent)]
    Schedule(#[from] crate::integrations::schedule::ScheduleError),
    #[error(transparent)]
    Safari(#[from] crate::integrations::safari::SafariError),
    /// A step in the user's home (not transparent: [`crate::securefs::planted_in`] looks for
    /// the `SecureFsError` itself among the sources).
    #[error("{0}")]
    Fs(#[from] crate::securefs::SecureFsError),
    /// A platform tool or API that reports in words (launchctl, CFPreferences).
    #[error("{0}")]
    Platform(String),
    /// A tool that did not finish in its time: nothing learnt, the run is deferred (exit 75).
    #[error(transparent)]
    TimedOut(#[from] crate::platform::children::TimedOut),
}

/// One artifact the agent owns.
pub trait Link {
    /// For log lines ("browser policy").
    fn name(&self) -> &'static str;
    /// The statuses this link can report, in chain order: the chain is sorted by them.
    fn statuses(&self) -> &'static [HealthStatus];
    fn observe(&self, cx: &Context<'_>) -> Observation;
    /// What `enroll` would do to this link, worked out without changing anything: what it
    /// finds, the action, and what would still be wrong afterwards. `outlook` is the identity
    /// the link will be built around once the certificate work is done. `None` where the link
    /// does not exist here (the key's allowlist of a file store, Login Items off macOS).
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step>;
    /// What must hold before a certificate is requested for `apply` to succeed afterwards:
    /// its places reachable without a planted link, its tools installed. A certificate is
    /// scarce (Okta issues five unbound ones per device), so a run that could not keep one
    /// never asks for one.
    fn preflight(&self, _cx: &Context<'_>) -> Result<(), LinkError> {
        Ok(())
    }
    /// Makes the artifact right; returns the changes made (empty when it already was).
    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError>;
    /// Removes what of the artifact is ours; returns what was removed.
    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError>;
}

/// What applying the chain did: the changes made (each also logged), and the links that could
/// not be applied, in chain order, with why.
#[derive(Debug, Default)]
pub struct Applied {
    pub changes: Vec<String>,
    pub failed: Vec<(&'static str, LinkError)>,
    /// The changes again, by link (each link that was applied, in chain order).
    pub by_link: Vec<(&'static str, Vec<String>)>,
}

/// The ordered links of one host.
pub struct Chain {
    links: Vec<Box<dyn Link>>,
}

impl Chain {
    pub fn new(links: Vec<Box<dyn Link>>) -> Chain {
        Chain { links }
    }

    pub fn links(&self) -> impl Iterator<Item = &dyn Link> {
        self.links.iter().map(|l| l.as_ref())
    }

    /// The first failing link's status, or `Healthy`.
    pub fn verdict(&self, cx: &Context<'_>) -> Verdict {
        health::first_failing(self.links.iter().map(|l| l.observe(cx)))
    }

    /// Applies every link in order. A link that fails is a `WARN:`, not a failed run: the
    /// certificate is the scarce part, and the health status names what is missing until
    /// `repair` fixes it. Returns the changes, each also logged.
    ///
    /// A link that found something planted where its own file or folder belongs (a symbolic
    /// link in the user's home) touched nothing, and that is not a gap for `repair` but
    /// something an admin must look at: once the other links are applied, the run fails with
    /// it (the first such; any others are `WARN:` lines). So does a link whose tool hung
    /// ([`LinkError::TimedOut`]): nothing was learnt, and the run is deferred.
    pub fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(self.apply_by_link(cx)?.changes)
    }

    /// Applies every link as [`Chain::apply`] does, and says what each link changed.
    pub fn apply_by_link(&self, cx: &mut Context<'_>) -> Result<Applied, LinkError> {
        let applied = self.apply_each(cx)?;
        for (name, e) in &applied.failed {
            warn!("{name} not configured: {e}");
        }
        Ok(applied)
    }

    /// Applies every link in order, like [`Chain::apply`], but hands the links that could not
    /// be applied to the caller instead of saying them: `repair` exists to make them right, so
    /// for it they are the run's failure. A refusal of something planted is still the error.
    pub fn apply_each(&self, cx: &mut Context<'_>) -> Result<Applied, LinkError> {
        let mut applied = Applied::default();
        let mut refused = None;
        for link in &self.links {
            match link.apply(cx) {
                Ok(done) => {
                    for change in &done {
                        info!("{change}");
                        applied.changes.push(change.clone());
                    }
                    applied.by_link.push((link.name(), done));
                }
                Err(e)
                    if refused.is_none()
                        && (crate::securefs::planted_in(&e).is_some()
                            || matches!(e, LinkError::TimedOut(_))) =>
                {
                    refused = Some(e);
                }
                Err(e) => applied.failed.push((link.name(), e)),
            }
        }
        match refused {
            Some(e) => {
                for (name, e) in &applied.failed {
                    warn!("{name} not configured: {e}");
                }
                Err(e)
            }
            None => Ok(applied),
        }
    }

    /// Every link's part of the plan, in order.
    pub fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Vec<Step> {
        self.links
            .iter()
            .filter_map(|link| link.survey(cx, outlook))
            .collect()
    }

    /// Every link's preflight, in order; the first failure.
    pub fn preflight(&self, cx: &Context<'_>) -> Result<(), LinkError> {
        self.links.iter().try_for_each(|link| link.preflight(cx))
    }

    /// Removes every link, last first. Goes on past a failure, so one stuck artifact does not
    /// leave all the others behind; returns the links that failed.
    pub fn remove(&self, cx: &mut Context<'_>) -> Vec<(&'static str, LinkError)> {
        let mut failed = Vec::new();
        for link in self.links.iter().rev() {
            match link.remove(cx) {
                Ok(done) => done.iter().for_each(|line| info!("{line}")),
                Err(e) => {
                    warn!("{} left in place: {e}", link.name());
                    failed.push((link.name(), e));
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod survey_tests;
#[cfg(test)]
pub(crate) mod tests;
