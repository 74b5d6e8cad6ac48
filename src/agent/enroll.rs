//! `devicetrust enroll`: a certificate when there is no valid one, then the chain applied.
//! With a valid identity present no certificate is requested; a device taken over from Okta's
//! task (identity present, no record of ours) only asks Okta for its metadata.

use super::{net, Agent, AgentError, OKTA_KEY_BITS};
use crate::chain::plan::{Action, Plan};
use crate::chain::{Held, Superseded};
use crate::okta::{OktaClient, OrgUrl, OKTA_SUBJECT_CN};
use crate::pki::{self, CheckedIdentity, CsrProfile, NewKey};
use crate::record::{EnrollmentRecord, Method};
use crate::scep::{self, ScepClient, ScepSettings};
use crate::secret::Secret;
use crate::timefmt::{now_rfc3339, rfc3339};
use time::OffsetDateTime;
use tracing::{info, warn};

/// The refusal to ask for a certificate while the clock is behind the stored one's notBefore.
pub(super) fn clock_wrong(now: OffsetDateTime, info: &pki::CertificateInfo) -> AgentError {
    AgentError::ClockWrong {
        now: rfc3339(now),
        not_before: rfc3339(info.not_before),
    }
}

/// Where certificates come from: Okta's device-trust CA, or a SCEP CA when one is configured.
pub(super) enum Enrollment {
    Okta(OrgUrl),
    Scep(Box<ScepSettings>),
}

/// What one `enroll` did, in the plan's terms.
#[derive(Debug)]
pub struct Enrolled {
    /// The plan, worked out before anything changed (what `devicetrust plan` says).
    pub plan: Plan,
    /// Each link of the plan with the action taken and the changes made, in chain order. The
    /// identity's action is what the certificate work did; another link's is the plan's where
    /// it changed something and `nothing` where it did not ([`Action::taken`]).
    pub taken: Vec<Taken>,
    /// The certificates requested and stored.
    pub certificates: u32,
}

/// One link's part of an enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub link: &'static str,
    pub action: Action,
    pub changes: Vec<String>,
}

/// What the certificate work and the chain did.
pub(super) struct Done {
    /// What was done to the identity, in the plan's words, and the lines that say it.
    identity: Action,
    identity_changes: Vec<String>,
    certificates: u32,
    by_link: Vec<(&'static str, Vec<String>)>,
}

impl Agent {
    /// `devicetrust enroll`: the plan over the device as it is, then the plan carried out. What
    /// each link ended up doing is said in the plan's words; where it is not what the plan
    /// listed, a `WARN:` says so.
    pub fn enroll(&mut self) -> Result<Enrolled, AgentError> {
        let _lock = self.lock()?;
        let now = OffsetDateTime::now_utc();
        let held = self.held(now)?;
        let plan = self.survey(&held, now)?;
        for step in &plan.steps {
            tracing::debug!("plan: {}: {}", step.link, step.action);
        }
        let done = self.enroll_locked(None)?;
        let taken: Vec<Taken> = plan
            .steps
            .iter()
            .map(|step| {
                let mut changes = done
                    .by_link
                    .iter()
                    .find(|(link, _)| *link == step.link)
                    .map(|(_, changes)| changes.clone())
                    .unwrap_or_default();
                let action = if step.link == super::plan::IDENTITY {
                    changes.splice(0..0, done.identity_changes.iter().cloned());
                    done.identity
                } else {
                    Action::taken(step.action, &changes)
                };
                if action != step.action {
                    warn!(
                        "{}: the plan said {}, enroll did {action}",
                        step.link, step.action
                    );
                }
                Taken {
                    link: step.link,
                    action,
                    changes,
                }
            })
            .collect();
        Ok(Enrolled {
            plan,
            taken,
            certificates: done.certificates,
        })
    }

    /// How this device enrolls: SCEP when a SCEP URL is known, else Okta.
    pub(super) fn enrollment(&self) -> Result<Enrollment, AgentError> {
        match self.config.scep_settings()? {
            Some(settings) => Ok(Enrollment::Scep(Box::new(settings))),
            None => Ok(Enrollment::Okta(self.config.org_url()?.clone())),
        }
    }

    pub(super) fn enroll_locked(&mut self, token: Option<Secret>) -> Result<Done, AgentError> {
        let enrollment = self.enrollment()?;
        // A store that can no longer be opened (okta.keychain without its password) is
        // rebuilt first, however its identity reads: the device then enrolls afresh.
        let rebuilt = self.store.rebuild_if_unopenable()?.is_some();
        let now = OffsetDateTime::now_utc();
        let mut held = self.held(now)?;
        if self.learn_scep_ca(&held)? {
            held = self.held(now)?;
        }
        if let Held::NotYetValid(info) = &held {
            return Err(clock_wrong(now, info));
        }
        if !held.is_valid() {
            self.preflight(&held)?;
        }
        let mut superseded = Superseded::default();
        let identity = match &held {
            _ if rebuilt => Action::SetAside,
            Held::Damaged { .. } => Action::SetAside,
            Held::Nothing => Action::Create,
            _ => Action::Replace,
        };
        match &held {
            Held::Valid(info) => {
                if let Enrollment::Okta(org) = &enrollment {
                    self.refuse_other_org(org)?;
                }
                info!(
                    "a valid certificate is already installed (serial {}, {} days left); \
                     no new certificate requested",
                    info.serial_hex,
                    info.days_left(now)
                );
                let adopting = self.record.method.is_none();
                self.adopt(&enrollment)?;
                let applied = self.configure_by_link(Superseded::default())?;
                let location = self.store.location();
                return Ok(Done {
                    identity: if adopting {
                        Action::Adopt
                    } else {
                        Action::Nothing
                    },
                    identity_changes: adopting
                        .then(|| format!("adopted the identity in {location}"))
                        .into_iter()
                        .collect(),
                    certificates: 0,
                    by_link: applied.by_link,
                });
            }
            // Only a later enrollment replaces it: it stays in place until the new identity
            // is stored and checked, and is kept aside afterwards, never deleted.
            Held::Foreign {
                certificate,
                reason,
            } => {
                info!(
                    "{reason}; enrolling with the configured CA (serial {} stays until the new \
                     certificate is stored)",
                    certificate.serial_hex
                );
                superseded.certificates.push(certificate.der.clone());
                // The host the replaced enrollment told the browsers about: its entries go
                // as the new one goes in (any entry of ours for that host, whatever filter).
                superseded.hosts.extend(self.record.cert_auth_host.clone());
            }
            Held::Expired(info) => info!(
                "the installed certificate expired on {}; enrolling afresh",
                rfc3339(info.not_after)
            ),
            Held::KeyMissing(_) => {
                warn!("the installed certificate has no matching private key; enrolling afresh")
            }
            Held::Damaged { detail, .. } => {
                let aside = self.store.set_aside()?;
                warn!(
                    "{detail}; enrolling afresh{}",
                    aside
                        .map(|a| format!(" (the damaged identity is kept as {a})"))
                        .unwrap_or_default()
                );
            }
            Held::Nothing | Held::NotYetValid(_) => {}
        }
        match enrollment {
            Enrollment::Okta(org) => {
                let token = match token {
                    Some(t) => t,
                    None => self.config.org_token()?,
                };
                self.enroll_okta(&org, &token)?;
            }
            Enrollment::Scep(settings) => self.enroll_scep(&settings)?,
        }
        if !superseded.certificates.is_empty() {
            match self.store.set_aside_replaced() {
                Ok(Some(aside)) => info!("the replaced certificate is kept as {aside}"),
                Ok(None) => {}
                Err(e) => warn!("the replaced certificate stays as the previous identity: {e}"),
            }
        }
        let applied = self.configure_by_link(superseded)?;
        let stored = self.held(OffsetDateTime::now_utc())?;
        Ok(Done {
            identity,
            identity_changes: stored
                .certificate()
                .map(|c| {
                    format!(
                        "certificate {} stored in {}",
                        c.serial_hex,
                        self.store.location()
                    )
                })
                .into_iter()
                .collect(),
            certificates: 1,
            by_link: applied.by_link,
        })
    }

    pub(super) fn refuse_other_org(&self, org: &OrgUrl) -> Result<(), AgentError> {
        match &self.record.org_url {
            Some(stored) if stored != org.as_str() && self.record.method == Some(Method::Okta) => {
                Err(AgentError::OtherOrg {
                    stored: stored.clone(),
                    configured: org.as_str().to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Makes a valid identity found in the store ours: the record learns how it was enrolled,
    /// and an Okta identity without a known certAuthDomain (taken over from Okta's task) gets
    /// it from Okta's metadata, without a new certificate. A metadata failure is a `WARN:`:
    /// the identity is fine, and the browser link reports what is missing.
    pub(super) fn adopt(&mut self, enrollment: &Enrollment) -> Result<(), AgentError> {
        let before = self.record.clone();
        if self.record.method.is_none() {
            info!("adopting the identity in {}", self.store.location());
            let fresh = self.new_record(enrollment);
            self.record = EnrollmentRecord {
                cert_auth_host: fresh.cert_auth_host.or(self.record.cert_auth_host.take()),
                last_renewal: self.record.last_renewal.take(),
                scep_ca_certificates: std::mem::take(&mut self.record.scep_ca_certificates),
                ..fresh
            };
        }
        if let Enrollment::Okta(org) = enrollment {
            if self.record.cert_auth_host.is_none() {
                info!("asking {} for its device-trust metadata", org.as_str());
                match net::okta_client(&self.config, self.host.platform(), org, None)
                    .and_then(|client| Ok(client.metadata()?))
                {
                    Ok(metadata) => self.record.cert_auth_host = Some(metadata.cert_auth_host),
                    // An answer naming a host no browser may be told (a wildcard, a public
                    // suffix) is refused, not waited out.
                    Err(e @ AgentError::Okta(crate::okta::OktaError::BadResponse { .. })) => {
                        return Err(e)
                    }
                    Err(e) => warn!("the certAuthDomain is still unknown: {e}"),
                }
            }
        }
        if self.record != before {
            self.save_record()?;
        }
        Ok(())
    }

    /// The record of an enrollment by `enrollment` with this configuration.
    fn new_record(&self, enrollment: &Enrollment) -> EnrollmentRecord {
        let mut record = self.config.settings_record();
        if let Enrollment::Scep(settings) = enrollment {
            record.scep_url = Some(settings.url.to_string());
        }
        record
    }

    /// Stores a fresh enrollment's identity with its new record; on failure nothing was
    /// stored and the old record stays.
    fn store_enrollment(
        &mut self,
        mut record: EnrollmentRecord,
        key: Box<dyn NewKey>,
        certificate: &[u8],
        chain: Vec<Vec<u8>>,
        expected_cn: Option<&str>,
    ) -> Result<(), AgentError> {
        record.enrolled_at = Some(now_rfc3339());
        let previous = std::mem::replace(&mut self.record, record);
        match self.store_identity(key, certificate, chain, expected_cn) {
            Ok(info) => {
                self.save_record()?;
                self.announce("enrolled", &info);
                Ok(())
            }
            Err(e) => {
                self.record = previous;
                Err(e)
            }
        }
    }

    fn enroll_okta(&mut self, org: &OrgUrl, token: &Secret) -> Result<(), AgentError> {
        let device = self.device()?;
        let settings = net::okta_settings(&self.config, self.host.platform(), None)?;
        let ((client, metadata), key) = self.generate_key_while(OKTA_KEY_BITS, || {
            let client = OktaClient::new(org.clone(), &settings)?;
            info!("asking {} for its device-trust metadata", org.as_str());
            let metadata = client.metadata()?;
            Ok((client, metadata))
        })?;
        net::check_clock(metadata.server_time)?;
        let csr = pki::build_csr(&CsrProfile::okta(), key.as_ref())?;
        info!(
            "requesting a device-trust certificate for {} ({}), user {}",
            device.display_name,
            device.uuid,
            self.user()
        );
        let certificate = client.enroll(token, &device, &csr, self.user())?;
        let mut record = self.new_record(&Enrollment::Okta(org.clone()));
        record.cert_auth_host = Some(metadata.cert_auth_host);
        self.store_enrollment(record, key, &certificate, Vec::new(), Some(OKTA_SUBJECT_CN))
    }

    /// PKCSReq with the static challenge: a new key and a certificate from the SCEP CA.
    pub(super) fn enroll_scep(&mut self, settings: &ScepSettings) -> Result<(), AgentError> {
        let http = net::scep_settings(&self.config)?;
        info!(
            "requesting a certificate from the SCEP CA at {}",
            settings.url
        );
        let ((client, ca), key) = self.generate_key_while(settings.key_size, || {
            let client = ScepClient::new(settings, &http)?;
            let ca = client.discover()?;
            Ok((client, ca))
        })?;
        let issued = client.enroll_with(&ca, key.as_ref())?;
        let mut record = self.new_record(&Enrollment::Scep(Box::new(settings.clone())));
        // The CA this enrollment trusted is pinned for every renewal after it, and its
        // certificates (with any the CertRep added) judge the stored identity from now on.
        record.scep_ca_fingerprint = Some(scep::sha256_fingerprint_hex(&issued.ca_certificate_der));
        let mut certificates = ca.certificates().to_vec();
        certificates.extend(issued.chain.iter().cloned());
        record.scep_ca_certificates = crate::chain::ca::encoded(&certificates);
        self.store_enrollment(record, key, &issued.certificate_der, issued.chain, None)
    }

    /// Runs `ask` (the first requests to the CA) on a thread of its own while the store
    /// generates a key of `bits`: RSA key generation is most of an enrollment's time, and the
    /// two need nothing from each other. An error of the requests comes first; a key made for
    /// nothing is dropped, and the store sweeps what it never stored.
    pub(super) fn generate_key_while<T: Send>(
        &mut self,
        bits: u32,
        ask: impl FnOnce() -> Result<T, AgentError> + Send,
    ) -> Result<(T, Box<dyn NewKey>), AgentError> {
        let store = &mut self.store;
        std::thread::scope(|scope| {
            let asking = scope.spawn(ask);
            let key = store.generate_key(bits);
            let answer = asking
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok((answer?, key?))
        })
    }

    /// Checks the issued certificate against the key we generated, then stores both, with a
    /// copy of the record beside them.
    pub(super) fn store_identity(
        &mut self,
        key: Box<dyn NewKey>,
        certificate: &[u8],
        chain: Vec<Vec<u8>>,
        expected_cn: Option<&str>,
    ) -> Result<pki::CertificateInfo, AgentError> {
        let now = OffsetDateTime::now_utc();
        let identity = CheckedIdentity::check(key, certificate, chain, expected_cn, now)?;
        let info = identity.certificate().clone();
        let record = serde_json::to_vec(&self.record).unwrap_or_default();
        self.store.replace(identity, &record)?;
        Ok(info)
    }
}
