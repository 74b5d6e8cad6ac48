//! Safari's identity preferences: our identity for the bare certAuthDomain host and `*.<cell>`,
//! so Safari presents it without asking. Only macOS has them; the host adds this link there.

use super::plan::{Action, Blocker, Outlook, Step};
use super::{Context, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::integrations::safari::{self, IdentityPreferences};
use std::cell::RefCell;

pub struct SafariLink {
    pub prefs: RefCell<Box<dyn IdentityPreferences>>,
}

impl SafariLink {
    pub fn new(prefs: Box<dyn IdentityPreferences>) -> SafariLink {
        SafariLink {
            prefs: RefCell::new(prefs),
        }
    }
}

fn names(cx: &Context<'_>, host: &str) -> Vec<String> {
    safari::identity_preference_hosts(host, cx.cell().as_deref())
}

impl Link for SafariLink {
    fn name(&self) -> &'static str {
        "Safari identity preferences"
    }

    /// Safari's preference is browser auto-selection too; a missing one is repaired the same way.
    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::BrowserPolicyMissing]
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        let (Some(certificate), Some(host)) = (cx.held.certificate(), cx.cert_auth_host()) else {
            return Observation::NotApplicable;
        };
        let names = names(cx, host);
        match safari::is_complete(&**self.prefs.borrow(), &names, &certificate.der) {
            Ok(true) => Observation::Healthy,
            Ok(false) => Observation::failing(
                HealthStatus::BrowserPolicyMissing,
                format!(
                    "Safari's identity preferences for {} do not name this certificate",
                    names.join(", ")
                ),
            ),
            Err(e) => Observation::failing(HealthStatus::BrowserPolicyMissing, e.to_string()),
        }
    }

    /// Which certificate each name prefers now, and whether `enroll` points it at ours.
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step> {
        let step = Step::new(self.name());
        let host = match outlook {
            Outlook::New => cx.enrolled_host(),
            _ => cx.cert_auth_host(),
        };
        let Some(host) = host else {
            let step = step.found("the certAuthDomain is not known yet");
            return Some(match outlook {
                Outlook::Stopped => step,
                _ => step.act(
                    Action::Create,
                    "preferences for the certAuthDomain Okta names at enrollment are set",
                ),
            });
        };
        let prefs = self.prefs.borrow();
        let ours = match outlook {
            Outlook::Kept(certificate) => Some(certificate.der.as_slice()),
            _ => None,
        };
        let mut step = step;
        let (mut pointing_elsewhere, mut missing) = (false, false);
        for name in names(cx, host) {
            match prefs.get(&name) {
                Ok(Some(der)) if Some(der.as_slice()) == ours => {
                    step = step.found(format!("{name}: prefers this certificate"));
                }
                Ok(Some(der)) => {
                    pointing_elsewhere = true;
                    let serial = crate::pki::CertificateInfo::parse(&der)
                        .map(|c| format!("certificate {}", c.serial_hex))
                        .unwrap_or_else(|_| "an identity".to_owned());
                    step = step.found(format!("{name}: prefers {serial}"));
                }
                Ok(None) => {
                    missing = true;
                    step = step.found(format!("{name}: no preference"));
                }
                Err(e) => {
                    let why = e.to_string();
                    step = step.found(why.clone());
                    if outlook.valid() {
                        step =
                            step.blocked(Blocker::status(HealthStatus::BrowserPolicyMissing, why));
                    }
                }
            }
        }
        Some(match (outlook.valid(), pointing_elsewhere, missing) {
            (false, ..) => step,
            (true, true, _) => {
                step.act(Action::Replace, "every name is pointed at our certificate")
            }
            (true, false, true) => {
                step.act(Action::Create, "every name is pointed at our certificate")
            }
            (true, false, false) => step,
        })
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let (Some(certificate), Some(host)) = (cx.held.certificate(), cx.cert_auth_host()) else {
            return Ok(Vec::new());
        };
        let mut prefs = self.prefs.borrow_mut();
        let mut changes = Vec::new();
        let ours: Vec<&[u8]> = vec![&certificate.der];
        for old in cx.superseded.hosts.iter().filter(|h| h.as_str() != host) {
            let mut stale = names(cx, old);
            stale.extend(safari::legacy_names(old));
            for name in safari::remove_ours(&mut **prefs, &stale, &ours)? {
                changes.push(format!("removed the Safari identity preference for {name}"));
            }
        }
        let set = safari::apply(&mut **prefs, &names(cx, host), &certificate.der)?;
        changes.extend(
            set.into_iter()
                .map(|name| format!("Safari identity preference set for {name}")),
        );
        Ok(changes)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let Some(host) = cx.cert_auth_host() else {
            return Ok(Vec::new());
        };
        let mut all = names(cx, host);
        all.extend(safari::legacy_names(host));
        let ours: Vec<&[u8]> = cx
            .held
            .certificate()
            .map(|c| c.der.as_slice())
            .into_iter()
            .collect();
        let removed = safari::remove_ours(&mut **self.prefs.borrow_mut(), &all, &ours)?;
        Ok(removed
            .into_iter()
            .map(|name| format!("removed the Safari identity preference for {name}"))
            .collect())
    }
}
