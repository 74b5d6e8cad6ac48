//! The identity itself (store, password item, certificate, key, validity) and its renewal:
//! the first links of the chain, whose statuses run from `Keychain Missing` to
//! `Renewal Failing`.

use super::plan::{self, Blocker, Outlook, Step};
use super::{Context, Held, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::store::PasswordItemState;
use crate::timefmt::rfc3339;

/// The identity store and what it holds.
pub struct IdentityLink;

impl Link for IdentityLink {
    fn name(&self) -> &'static str {
        "identity store"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[
            HealthStatus::KeychainMissing,
            HealthStatus::KeychainPasswordMissing,
            HealthStatus::KeychainPasswordUnreadable,
            HealthStatus::CertificateMissing,
            HealthStatus::CertificateFromAnotherCa,
            HealthStatus::PrivateKeyMissing,
            HealthStatus::ClockWrong,
            HealthStatus::CertificateExpired,
        ]
    }

    fn preflight(&self, cx: &Context<'_>) -> Result<(), LinkError> {
        Ok(cx.store.check_usable()?)
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        let probe = cx.store.probe();
        if probe.exists == Some(false) {
            return Observation::failing(
                HealthStatus::KeychainMissing,
                format!("{} does not exist", cx.store.location()),
            );
        }
        match probe.password_item {
            Some(PasswordItemState::Missing) => {
                return Observation::failing(
                    HealthStatus::KeychainPasswordMissing,
                    "the device_trust password item is missing from the login keychain",
                )
            }
            Some(PasswordItemState::Unreadable) => {
                return Observation::failing(
                    HealthStatus::KeychainPasswordUnreadable,
                    "the device_trust password item is in the login keychain, but the last run \
                     that needed it could not read it; nothing is rebuilt for that, the next \
                     run tries again",
                )
            }
            Some(PasswordItemState::Wrong) => {
                return Observation::failing(
                    HealthStatus::KeychainPasswordMissing,
                    "the device_trust password item does not open okta.keychain (the last run \
                     that needed it was refused); `devicetrust enroll` rebuilds okta.keychain",
                )
            }
            Some(PasswordItemState::Readable) | None => {}
        }
        match cx.held {
            Held::Nothing => Observation::failing(
                HealthStatus::CertificateMissing,
                format!("no certificate in {}", cx.store.location()),
            ),
            Held::Damaged { status, detail } => Observation::failing(*status, detail.clone()),
            Held::Foreign {
                certificate,
                reason,
            } => Observation::failing(
                HealthStatus::CertificateFromAnotherCa,
                format!(
                    "{reason} (SHA-256 {}); `devicetrust enroll` replaces it",
                    certificate.fingerprint_sha256
                ),
            ),
            Held::KeyMissing(_) => Observation::failing(
                HealthStatus::PrivateKeyMissing,
                "the certificate's private key is missing or does not match it",
            ),
            Held::NotYetValid(c) => Observation::failing(
                HealthStatus::ClockWrong,
                format!(
                    "the device's clock says {}, before the certificate's notBefore {}: set \
                     the clock right (the certificate is fine, and a new one would not be \
                     valid either)",
                    rfc3339(cx.now),
                    rfc3339(c.not_before)
                ),
            ),
            Held::Expired(c) => Observation::failing(
                HealthStatus::CertificateExpired,
                format!("the certificate expired on {}", rfc3339(c.not_after)),
            ),
            Held::Valid(_) => Observation::Healthy,
        }
    }

    /// The store and what it holds, and the identity's work ([`plan::identity_work`]); the
    /// agent adds what needs the configuration (the org token, the org).
    fn survey(&self, cx: &Context<'_>, _: Outlook<'_>) -> Option<Step> {
        let probe = cx.store.probe();
        let mut step = Step::new(self.name()).found(format!("store {}", cx.store.location()));
        if let Some(exists) = probe.exists {
            step = step.found(if exists {
                "okta.keychain exists"
            } else {
                "okta.keychain does not exist"
            });
        }
        if let Some(item) = probe.password_item {
            step = step.found(match item {
                PasswordItemState::Readable => "the device_trust password item is there",
                PasswordItemState::Unreadable => {
                    "the device_trust password item is there, but the last run that needed it \
                     could not read it"
                }
                PasswordItemState::Wrong => {
                    "the device_trust password item is there, but it does not open okta.keychain"
                }
                PasswordItemState::Missing => "the device_trust password item is missing",
            });
        }
        step = step.found(held_line(cx.held, cx.now));
        let work = plan::identity_work(&probe, cx.held, cx.record.method.is_some(), cx.now);
        step = step.act(work.action, work.detail);
        if let Some(blocker) = work.blocker {
            step = step.blocked(blocker);
        }
        Some(step)
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(cx.store.repair()?)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let location = cx.store.location();
        Ok(vec![if cx.store.remove()? {
            format!("removed the identity from {location}")
        } else {
            format!("no identity to remove in {location}")
        }])
    }
}

/// The renewal: failing when this device is due and its last attempt failed.
pub struct RenewalLink;

impl Link for RenewalLink {
    fn name(&self) -> &'static str {
        "renewal"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::RenewalFailing]
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        let Some(certificate) = cx.held.certificate() else {
            return Observation::NotApplicable;
        };
        let due = cx.policy.is_due(certificate.not_after, cx.now);
        match &cx.record.last_renewal {
            Some(attempt) if due && !attempt.ok => Observation::failing(
                HealthStatus::RenewalFailing,
                format!(
                    "the renewal at {} failed: {}",
                    attempt.time,
                    attempt.error.as_deref().unwrap_or("no detail recorded")
                ),
            ),
            _ => Observation::Healthy,
        }
    }

    /// `enroll` renews nothing: a failing renewal of an identity that stays still fails.
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step> {
        let step = Step::new(self.name()).found(match &cx.record.last_renewal {
            Some(attempt) if attempt.ok => format!("the last renewal, at {}, worked", attempt.time),
            Some(attempt) => format!(
                "the last renewal, at {}, failed: {}",
                attempt.time,
                attempt.error.as_deref().unwrap_or("no detail recorded")
            ),
            None => "no renewal attempted yet".to_owned(),
        });
        Some(match (outlook, self.observe(cx)) {
            (Outlook::Kept(_), Observation::Failing { status, detail }) => step.blocked(
                Blocker::status(status, format!("{detail}; enroll does not renew it")),
            ),
            _ => step,
        })
    }

    fn apply(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(Vec::new())
    }

    fn remove(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(Vec::new())
    }
}

/// What the store holds, in one line for the plan.
fn held_line(held: &Held, now: time::OffsetDateTime) -> String {
    let described = |what: &str, c: &crate::pki::CertificateInfo| {
        format!(
            "{what}: serial {}, issuer {}, valid until {} ({} days left)",
            c.serial_hex,
            c.issuer,
            rfc3339(c.not_after),
            c.days_left(now)
        )
    };
    match held {
        Held::Nothing => "no certificate is stored".to_owned(),
        Held::Damaged { detail, .. } => format!("a damaged identity: {detail}"),
        Held::Foreign {
            certificate,
            reason,
        } => format!(
            "{} ({reason})",
            described("a certificate from another CA", certificate)
        ),
        Held::KeyMissing(c) => described("a certificate without its private key", c),
        Held::NotYetValid(c) => described("a certificate not valid yet by this clock", c),
        Held::Expired(c) => described("an expired certificate", c),
        Held::Valid(c) => described("a valid certificate", c),
    }
}
