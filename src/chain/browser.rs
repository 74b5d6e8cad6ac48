//! Chrome's, Chromium's and Edge's `AutoSelectCertificateForUrls`: our entry for the
//! certAuthDomain, once, in every browser's policy. Where the policy lives is the host's
//! choice of backend: managed JSON files (Linux, sandbox roots) or preference domains (macOS).

use super::{Context, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::integrations::chrome;
use crate::record::Method;
use std::path::PathBuf;
use tracing::warn;

/// Where the browsers read the policy.
pub trait BrowserPolicy {
    /// Whether every browser's effective policy carries `entry`.
    fn present(&self, entry: &str) -> bool;
    /// Puts `entry` in; returns the changes made.
    fn add(&self, entry: &str) -> Result<Vec<String>, LinkError>;
    /// Takes `entry` out of what is ours; returns the changes made.
    fn take_out(&self, entry: &str) -> Result<Vec<String>, LinkError>;
}

/// The managed policy files of Chrome, Chromium and Edge under a root.
pub struct PolicyFiles {
    pub root: PathBuf,
}

impl BrowserPolicy for PolicyFiles {
    fn present(&self, entry: &str) -> bool {
        chrome::is_present(&self.root, entry)
    }

    fn add(&self, entry: &str) -> Result<Vec<String>, LinkError> {
        let mut changes = Vec::new();
        for change in chrome::apply(&self.root, entry)? {
            match change {
                chrome::Change::Written(path) => changes.push(format!(
                    "browser auto-selection written to {}",
                    path.display()
                )),
                chrome::Change::Shadowed { dir, by } => warn!(
                    "{} decides AutoSelectCertificateForUrls in {} and lacks our entry; add it \
                     there",
                    by.display(),
                    dir.display()
                ),
                chrome::Change::Unparseable { path, reason } => {
                    warn!("ignoring {}: {reason}", path.display())
                }
                chrome::Change::Removed(_) => {}
            }
        }
        Ok(changes)
    }

    fn take_out(&self, entry: &str) -> Result<Vec<String>, LinkError> {
        Ok(chrome::remove_from_dirs(&self.root, entry)?
            .into_iter()
            .filter_map(|change| match change {
                chrome::Change::Removed(path) => Some(format!(
                    "removed our browser auto-selection entry from {}",
                    path.display()
                )),
                _ => None,
            })
            .collect())
    }
}

/// The policy string for `host`, selecting certificates from the stored one's issuer.
fn entry_for(cx: &Context<'_>, host: &str) -> String {
    let issuer = cx
        .held
        .certificate()
        .and_then(|c| c.issuer_cn.as_deref())
        .unwrap_or(chrome::OKTA_ISSUER_CN);
    chrome::policy_entry(host, issuer)
}

pub struct BrowserPolicyLink {
    pub backend: Box<dyn BrowserPolicy>,
}

impl Link for BrowserPolicyLink {
    fn name(&self) -> &'static str {
        "browser auto-selection"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::BrowserPolicyMissing]
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        if cx.held.certificate().is_none() {
            return Observation::NotApplicable;
        }
        match cx.cert_auth_host() {
            Some(host) if self.backend.present(&entry_for(cx, host)) => Observation::Healthy,
            Some(host) => Observation::failing(
                HealthStatus::BrowserPolicyMissing,
                format!("AutoSelectCertificateForUrls lacks the entry for {host}"),
            ),
            // Okta always has a certAuthDomain: not knowing it (a device taken over from
            // Okta's task) means the browsers were never set up.
            None if cx.method() == Method::Okta => Observation::failing(
                HealthStatus::BrowserPolicyMissing,
                "the certAuthDomain is unknown; `devicetrust repair` asks Okta for it",
            ),
            None => Observation::NotApplicable,
        }
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let Some(host) = cx.cert_auth_host().map(str::to_owned) else {
            if cx.method() == Method::Okta {
                warn!("the certAuthDomain is unknown; browser auto-selection not configured");
            }
            return Ok(Vec::new());
        };
        let mut changes = Vec::new();
        for old in cx.superseded.hosts.iter().filter(|h| **h != host) {
            changes.extend(self.backend.take_out(&entry_for(cx, old))?);
        }
        changes.extend(self.backend.add(&entry_for(cx, &host))?);
        Ok(changes)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let Some(host) = cx.cert_auth_host().map(str::to_owned) else {
            return Ok(Vec::new());
        };
        self.backend.take_out(&entry_for(cx, &host))
    }
}
