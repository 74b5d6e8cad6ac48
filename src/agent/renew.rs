//! `devicetrust renew`: renews when this device's renewal has started (or forced), else does
//! nothing at all; `devicetrust repair`: re-applies the chain, then renews if due.
//!
//! Okta: the metadata again (an org's certAuthDomain can move, and the browser and Safari
//! entries follow it), a CMS token signed by the current key, a new key. SCEP: a RenewalReq
//! signed by the current identity. An expired certificate cannot sign either, so it is enrolled
//! afresh when the org token or challenge is at hand.

use super::enroll::Enrollment;
use super::{net, Agent, AgentError, OKTA_KEY_BITS};
use crate::chain::{Held, Superseded};
use crate::okta::{OrgUrl, OKTA_SUBJECT_CN};
use crate::pki::{self, CertificateInfo, CsrProfile, SigningKey};
use crate::scep::{self, FailInfo, ScepError, ScepSettings};
use crate::timefmt::rfc3339;
use time::OffsetDateTime;
use tracing::{info, warn};

/// How a renewal run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewOutcome {
    NotDue,
    Renewed,
    Reenrolled,
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

impl Agent {
    /// `devicetrust renew [--force] [--renew-before-days N]`.
    pub fn renew(
        &mut self,
        force: bool,
        renew_before_days: Option<u32>,
    ) -> Result<RenewOutcome, AgentError> {
        let _lock = self.lock()?;
        self.renew_locked(force, renew_before_days)
    }

    fn renew_locked(
        &mut self,
        force: bool,
        renew_before_days: Option<u32>,
    ) -> Result<RenewOutcome, AgentError> {
        let enrollment = self.enrollment()?;
        // The daily job keeps the identity usable for the apps: after a restart okta.keychain
        // is locked until something unlocks it (status and ea never do).
        self.store.unlock()?;
        let now = OffsetDateTime::now_utc();
        let mut held = self.held(now)?;
        if self.learn_scep_ca(&held)? {
            held = self.held(now)?;
        }
        let info = match held {
            Held::Nothing => return Err(AgentError::NotEnrolled),
            Held::Damaged { detail, .. } => return Err(AgentError::Damaged { detail }),
            Held::Foreign { reason, .. } => return Err(AgentError::FromAnotherCa { reason }),
            Held::KeyMissing(_) => return Err(AgentError::KeyMissing),
            Held::NotYetValid(info) => return Err(super::enroll::clock_wrong(now, &info)),
            Held::Expired(info) => return self.reenroll_expired(&info, enrollment),
            Held::Valid(info) => info,
        };
        // A device taken over from Okta's task learns its certAuthDomain on its first run.
        let unknown_host =
            matches!(enrollment, Enrollment::Okta(_)) && self.record.cert_auth_host.is_none();
        if self.record.method.is_none() || unknown_host {
            self.adopt(&enrollment)?;
            self.configure(Superseded::default())?;
        }
        let policy = match renew_before_days {
            // An admin's explicit window (like --force) is a decision: no fleet spread.
            Some(days) => self.policy().exactly(days),
            None => self.policy(),
        };
        let days_left = info.days_left(now);
        if !force && !policy.is_due(info.not_after, now) {
            info!(
                "the certificate is valid until {} ({days_left} days left); this device renews \
                 from {} ({} days before expiry): nothing to do",
                rfc3339(info.not_after),
                rfc3339(policy.due_from(info.not_after)),
                policy.threshold_days()
            );
            return Ok(RenewOutcome::NotDue);
        }
        self.preflight(&Held::Valid(info.clone()))?;
        info!("renewing the certificate ({days_left} days left)");
        let key = self.store.signing_key()?.ok_or(AgentError::KeyMissing)?;
        let result = match &enrollment {
            Enrollment::Okta(org) => self.renew_okta(org, &info, key.as_ref()),
            Enrollment::Scep(settings) => self.renew_scep(settings, &info, key.as_ref()),
        };
        self.record
            .record_renewal(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        self.save_record()?;
        let superseded = result?;
        // A new key and certificate: the allowlist and Safari's preferences belong to the
        // identity, and the browser entries follow a moved certAuthDomain.
        self.configure(superseded)?;
        warn_about_running_browsers();
        Ok(RenewOutcome::Renewed)
    }

    /// Returns what this renewal left behind: the old certificate, a moved certAuthDomain.
    fn renew_okta(
        &mut self,
        org: &OrgUrl,
        current: &CertificateInfo,
        current_key: &dyn SigningKey,
    ) -> Result<Superseded, AgentError> {
        let device = self.device()?;
        let settings = net::okta_settings(&self.config, self.host.platform(), None)?;
        // The new key is made while the metadata request is under way, as an enrollment does:
        // RSA key generation and the TLS round trip are most of a renewal's time.
        let ((client, metadata), key) = self.generate_key_while(OKTA_KEY_BITS, || {
            let client = crate::okta::OktaClient::new(org.clone(), &settings)?;
            let metadata = client.metadata();
            Ok((client, metadata))
        })?;
        if let Ok(metadata) = &metadata {
            net::check_clock(metadata.server_time)?;
        }
        let moved_to = match metadata {
            Ok(metadata)
                if self.record.cert_auth_host.as_deref() != Some(&metadata.cert_auth_host) =>
            {
                Some(metadata.cert_auth_host)
            }
            Ok(_) => None,
            // The renewal itself decides whether Okta is reachable; the old host stays.
            Err(e) => {
                warn!("the metadata could not be refreshed: {e}");
                None
            }
        };
        let now = OffsetDateTime::now_utc();
        let claims =
            pki::RenewalClaims::new(&device.uuid, &device.display_name, now.unix_timestamp());
        let renewal_token = pki::sign_renewal_token(&claims, &current.der, current_key)?;
        let csr = pki::build_csr(&CsrProfile::okta(), key.as_ref())?;
        let certificate = client.renew(&renewal_token, &device, &csr, self.user())?;
        // The record stored with the identity already names the new host.
        let old_host = match moved_to {
            Some(new) => self.record.cert_auth_host.replace(new),
            None => None,
        };
        let stored = self.store_identity(key, &certificate, Vec::new(), Some(OKTA_SUBJECT_CN));
        if let Err(e) = stored {
            if let Some(old) = old_host {
                self.record.cert_auth_host = Some(old);
            }
            return Err(e);
        }
        let info = stored?;
        self.announce("renewed", &info);
        if let Some(old) = &old_host {
            info!(
                "the certAuthDomain moved from {old} to {}",
                self.record.cert_auth_host.as_deref().unwrap_or_default()
            );
        }
        Ok(Superseded {
            hosts: old_host.into_iter().collect(),
            certificates: vec![current.der.clone()],
        })
    }

    /// RenewalReq signed by the current identity (or a fresh PKCSReq, as the CA allows).
    fn renew_scep(
        &mut self,
        settings: &ScepSettings,
        current: &CertificateInfo,
        current_key: &dyn SigningKey,
    ) -> Result<Superseded, AgentError> {
        let http = net::scep_settings(&self.config)?;
        // The new key is made while GetCACaps and GetCACert are under way, as an enrollment
        // does; the current certificate and key are checked before either is used.
        let ((client, facts), key) = self.generate_key_while(settings.key_size, || {
            let client = scep::ScepClient::new(settings, &http)?;
            let facts = client.discover()?;
            Ok((client, facts))
        })?;
        let issued = client
            .renew_with(&facts, &current.der, current_key, key.as_ref())
            .map_err(|e| self.explain_scep_refusal(e, current))?;
        let info = self.store_identity(key, &issued.certificate_der, issued.chain, None)?;
        self.announce("renewed", &info);
        Ok(Superseded {
            hosts: Vec::new(),
            certificates: vec![current.der.clone()],
        })
    }

    /// A renewal the CA refused with `badRequest` while the certificate is still valid is,
    /// with micromdm's scepserver, a renewal before the CA's window: say so, with both windows.
    fn explain_scep_refusal(&self, e: ScepError, current: &CertificateInfo) -> AgentError {
        let days_left = current.days_left(OffsetDateTime::now_utc());
        match e {
            ScepError::Rejected {
                fail_info: fail_info @ FailInfo::BadRequest,
                ..
            } if days_left > 0 => AgentError::ScepRenewalTooEarly {
                fail_info,
                days_left,
                threshold: self.policy().threshold_days(),
                source: e,
            },
            e => e.into(),
        }
    }

    fn reenroll_expired(
        &mut self,
        info: &CertificateInfo,
        enrollment: Enrollment,
    ) -> Result<RenewOutcome, AgentError> {
        let not_after = rfc3339(info.not_after);
        let outcome = match enrollment {
            Enrollment::Okta(_) if self.config.org_token.is_none() => {
                Err(AgentError::Expired { not_after })
            }
            Enrollment::Scep(settings) if settings.challenge.is_none() => {
                Err(AgentError::ExpiredNoChallenge { not_after })
            }
            Enrollment::Okta(_) => {
                info!("the certificate expired on {not_after}; it cannot sign a renewal, enrolling afresh");
                self.enroll_locked(None)
            }
            Enrollment::Scep(_) => {
                info!("the certificate expired on {not_after}; enrolling afresh with the SCEP challenge");
                self.enroll_locked(None)
            }
        };
        self.record
            .record_renewal(outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        self.save_record()?;
        outcome.map(|_| RenewOutcome::Reenrolled)
    }

    /// `devicetrust repair`: re-applies everything but the certificate, then renews if due. A
    /// link it could not apply fails the run (the first is the `ERROR:` line, any others
    /// `WARN:` lines): a Fix-It that exits 0 tells Jamf the device is fixed.
    pub fn repair(&mut self) -> Result<(), AgentError> {
        let _lock = self.lock()?;
        let enrollment = self.enrollment()?;
        let now = OffsetDateTime::now_utc();
        let mut held = self.held(now)?;
        if self.learn_scep_ca(&held)? {
            held = self.held(now)?;
        }
        match held {
            Held::Nothing => return Err(AgentError::NotEnrolled),
            Held::Damaged { detail, .. } => return Err(AgentError::Damaged { detail }),
            // Nothing is applied around a certificate that is not ours: `enroll` replaces it.
            Held::Foreign { reason, .. } => return Err(AgentError::FromAnotherCa { reason }),
            Held::KeyMissing(_) => return Err(AgentError::KeyMissing),
            Held::NotYetValid(info) => return Err(super::enroll::clock_wrong(now, &info)),
            Held::Expired(_) | Held::Valid(_) => {}
        }
        self.adopt(&enrollment)?;
        let applied = self.configure_each()?;
        let mut failed = applied.failed.into_iter();
        let first = failed.next();
        for (link, e) in failed {
            warn!("{link} could not be repaired: {e}");
        }
        // The renewal is independent of the links, and the scarcer part: it runs either way.
        let outcome = match self.renew_locked(false, None) {
            Ok(outcome) => outcome,
            Err(e) => {
                if let Some((link, e)) = &first {
                    warn!("{link} could not be repaired: {e}");
                }
                return Err(e);
            }
        };
        if let Some((link, source)) = first {
            return Err(AgentError::RepairIncomplete { link, source });
        }
        if applied.changes.is_empty() && outcome == RenewOutcome::NotDue {
            info!("nothing needed repair");
        }
        Ok(())
    }
}
