//! Safari's identity preferences: our identity for the bare certAuthDomain host and `*.<cell>`,
//! so Safari presents it without asking. Only macOS has them; the host adds this link there.

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
