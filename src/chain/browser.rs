//! Chrome's, Chromium's and Edge's `AutoSelectCertificateForUrls`: our entry for the
//! certAuthDomain, once, in every browser's policy. Where the policy lives is the host's
//! choice of backend: managed JSON files (Linux, sandbox roots) or preference domains (macOS).

use super::ca::NoFilter;
use super::plan::{Action, Blocker, Outlook, Step};
use super::{Context, Held, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::integrations::chrome::{self, IssuerFilter};
use crate::record::Method;
use std::path::PathBuf;
use tracing::warn;

/// Where the browsers read the policy.
pub trait BrowserPolicy {
    /// Whether every browser's effective policy carries `entry` and no other entry of ours.
    fn present(&self, entry: &str) -> bool;
    /// Makes `entry` the one entry of ours in every browser's policy, replacing older ones
    /// (`older`: the entries of hosts this device used before); returns the changes made.
    fn put(&self, entry: &str, older: &[String]) -> Result<Vec<String>, LinkError>;
    /// Takes `entries` (and entries like them) out of what is ours; returns the changes made.
    fn take_out(&self, entries: &[String]) -> Result<Vec<String>, LinkError>;
    /// Every browser's policy as `put` would find it (`entry` when known, the entries of
    /// `older_hosts` to go), read only.
    fn survey(
        &self,
        entry: Option<&str>,
        older_hosts: &[String],
    ) -> Result<Vec<chrome::Seen>, LinkError>;
}

/// The managed policy files of Chrome, Chromium and Edge under a root. Putting our entry in
/// our own file there replaces any older one of ours ([`chrome::merge`]).
pub struct PolicyFiles {
    pub root: PathBuf,
}

impl BrowserPolicy for PolicyFiles {
    fn present(&self, entry: &str) -> bool {
        chrome::is_present(&self.root, entry)
    }

    fn put(&self, entry: &str, older: &[String]) -> Result<Vec<String>, LinkError> {
        // Older entries first (another host or filter: what a moved certAuthDomain or a change
        // of CA left), then ours, as the preference-domain backend does.
        let mut changes = self.take_out(older)?;
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

    fn survey(
        &self,
        entry: Option<&str>,
        older_hosts: &[String],
    ) -> Result<Vec<chrome::Seen>, LinkError> {
        Ok(chrome::survey(&self.root, entry, older_hosts)?)
    }

    fn take_out(&self, entries: &[String]) -> Result<Vec<String>, LinkError> {
        let mut changes = Vec::new();
        for entry in entries {
            for change in chrome::remove_from_dirs(&self.root, entry)? {
                if let chrome::Change::Removed(path) = change {
                    changes.push(format!(
                        "removed our browser auto-selection entry from {}",
                        path.display()
                    ));
                }
            }
        }
        Ok(changes)
    }
}

/// The filter selecting our certificate: built from the CA the record and configuration
/// expect (Okta's fixed name, or the recorded SCEP CA's), never from whatever certificate the
/// user's store holds; or why it cannot be known yet.
fn filter_of(cx: &Context<'_>) -> Result<IssuerFilter, NoFilter> {
    cx.expected_ca().filter(cx.held.certificate())
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
        let Some(certificate) = cx.held.certificate() else {
            return Observation::NotApplicable;
        };
        let filter = filter_of(cx);
        match (cx.cert_auth_host(), filter) {
            (Some(_), Err(why)) => {
                Observation::failing(HealthStatus::BrowserPolicyMissing, why.to_string())
            }
            (Some(host), Ok(filter))
                if self.backend.present(&chrome::policy_entry(host, &filter)) =>
            {
                Observation::Healthy
            }
            (Some(host), Ok(_)) => Observation::failing(
                HealthStatus::BrowserPolicyMissing,
                format!(
                    "AutoSelectCertificateForUrls lacks the one entry selecting the stored \
                     certificate's issuer ({}) on {host}",
                    certificate.issuer
                ),
            ),
            // Okta always has a certAuthDomain: not knowing it (a device taken over from
            // Okta's task) means the browsers were never set up.
            (None, _) if cx.method() == Method::Okta => Observation::failing(
                HealthStatus::BrowserPolicyMissing,
                "the certAuthDomain is unknown; `devicetrust repair` asks Okta for it",
            ),
            (None, _) => Observation::NotApplicable,
        }
    }

    /// Which place decides each browser's policy, and what putting our entry there does. A
    /// place that is not ours deciding without our entry is left alone by `enroll`: a blocker.
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step> {
        let host = match outlook {
            Outlook::New => cx.enrolled_host().map(str::to_owned),
            _ => cx.cert_auth_host().map(str::to_owned),
        };
        let method = match outlook {
            Outlook::New => cx.config.method(),
            _ => cx.method(),
        };
        let step = Step::new(self.name());
        if host.is_none() && method != Method::Okta {
            return Some(step.found("no certAuthDomain is configured: no entry is written"));
        }
        // The filter of the identity the link will be built around: Okta's fixed one, or the
        // recorded SCEP CA's, which the stored certificate's issuer names.
        let filter = match outlook {
            Outlook::Kept(_) => filter_of(cx).map_err(Some),
            Outlook::New => cx
                .expected_ca()
                .filter(cx.held.certificate())
                .map_err(|_| None),
            Outlook::Stopped => Err(None),
        };
        let entry = match (&host, &filter) {
            (Some(host), Ok(filter)) => Some(chrome::policy_entry(host, filter)),
            _ => None,
        };
        // A certificate from another CA is replaced with the record that named its host: that
        // host's entries go.
        let older: Vec<String> = match (outlook, cx.held, &cx.record.cert_auth_host) {
            (Outlook::New, Held::Foreign { .. }, Some(old)) if Some(old) != host.as_ref() => {
                vec![old.clone()]
            }
            _ => Vec::new(),
        };
        let seen = match self.backend.survey(entry.as_deref(), &older) {
            Ok(seen) => seen,
            Err(e) => {
                let why = e.to_string();
                return Some(
                    step.found(why.clone())
                        .blocked(Blocker::status(HealthStatus::BrowserPolicyMissing, why)),
                );
            }
        };
        let mut step = seen.iter().fold(step, |step, s| step.found(seen_line(s)));
        if !outlook.valid() {
            return Some(step);
        }
        if let Err(Some(why)) = &filter {
            let why = why.to_string();
            return Some(step.blocked(Blocker::status(HealthStatus::BrowserPolicyMissing, why)));
        }
        let mut action = Action::Nothing;
        for s in &seen {
            let (here, blocker) = browser_outcome(s);
            if let Some(blocker) = blocker {
                step = step.blocked(blocker);
            }
            action = match (action, here) {
                (Action::Replace, _) | (_, Action::Replace) => Action::Replace,
                (Action::Create, _) | (_, Action::Create) => Action::Create,
                _ => Action::Nothing,
            };
        }
        let target = match &host {
            Some(host) => format!("our entry for {host}"),
            None => "our entry for the certAuthDomain Okta names at enrollment".to_owned(),
        };
        Some(match action {
            Action::Nothing => step,
            Action::Replace => step.act(action, format!("{target} replaces older ones of ours")),
            _ => step.act(action, format!("{target} is written")),
        })
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let Some(host) = cx.cert_auth_host().map(str::to_owned) else {
            if cx.method() == Method::Okta {
                warn!("the certAuthDomain is unknown; browser auto-selection not configured");
            }
            return Ok(Vec::new());
        };
        let filter = match filter_of(cx) {
            Ok(filter) => filter,
            Err(why) => {
                warn!("browser auto-selection not configured: {why}");
                return Ok(Vec::new());
            }
        };
        let entry = chrome::policy_entry(&host, &filter);
        let older: Vec<String> = cx
            .superseded
            .hosts
            .iter()
            .filter(|h| **h != host)
            .map(|old| chrome::policy_entry(old, &filter))
            .collect();
        self.backend.put(&entry, &older)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let Some(host) = cx.cert_auth_host().map(str::to_owned) else {
            return Ok(Vec::new());
        };
        // Removing only ever takes out an entry of ours, so where the expected filter is not
        // known the stored certificate's issuer names the entry to look for.
        let Some(filter) = filter_of(cx).ok().or_else(|| {
            cx.held
                .certificate()
                .map(IssuerFilter::of)
                .filter(|f| !f.is_empty())
        }) else {
            return Ok(Vec::new());
        };
        self.backend
            .take_out(&[chrome::policy_entry(&host, &filter)])
    }
}

/// One browser's policy, in one line for the plan.
fn seen_line(s: &chrome::Seen) -> String {
    let decided = match &s.decided_by {
        Some(place) => format!("{} decides {}", place, chrome::POLICY_KEY),
        None => format!("nothing sets {}", chrome::POLICY_KEY),
    };
    let holds = match s.holds_ours {
        Some(true) => ", with our entry",
        Some(false) if s.decided_by.is_some() => ", without our entry",
        _ => "",
    };
    let older = if s.holds_older {
        ", with an older entry of ours"
    } else {
        ""
    };
    format!("{}: {decided}{holds}{older}", s.browser)
}

/// What putting our entry does in one browser's policy, and what would still be wrong.
fn browser_outcome(s: &chrome::Seen) -> (Action, Option<Blocker>) {
    let missing = |why: String| Some(Blocker::status(HealthStatus::BrowserPolicyMissing, why));
    if let Some(why) = &s.unusable {
        return (Action::Nothing, missing(why.clone()));
    }
    if s.holds_ours == Some(true) && !s.holds_older {
        return (Action::Nothing, None);
    }
    if !s.ours_to_write {
        let place = s.decided_by.as_deref().unwrap_or("another place");
        let lacks = match s.holds_ours {
            Some(_) => "and lacks our entry".to_owned(),
            None => "and must carry the entry for the certAuthDomain Okta names (`plan \
                     --check-network` asks Okta for it)"
                .to_owned(),
        };
        return (
            Action::Nothing,
            missing(format!(
                "{place} decides {} for {} {lacks}; enroll writes only its own place, so the \
                 entry must be added there",
                chrome::POLICY_KEY,
                s.browser
            )),
        );
    }
    if s.holds_older {
        (Action::Replace, None)
    } else {
        (Action::Create, None)
    }
}
