//! `devicetrust plan`: what `enroll` would do here, worked out without changing anything and,
//! unless asked to check the network, without sending anything. `enroll` works out the same
//! plan before it acts ([`Agent::survey`]).

use super::{net, Agent, AgentError};
use crate::chain::plan::{identity_work, Blocker, IdentityWork, Plan};
use crate::chain::{Held, Superseded};
use crate::health::HealthStatus;
use crate::okta::OrgUrl;
use crate::record::Method;
use time::OffsetDateTime;

/// The identity link's name, whose step carries what the configuration adds to its work.
pub(super) const IDENTITY: &str = "identity store";

impl Agent {
    /// `devicetrust plan`. With `check_network`, the org is asked whether it answers and, for
    /// an identity whose certAuthDomain is not recorded yet, what it is (Okta's metadata: no
    /// token, no certificate); nothing else is ever sent.
    pub fn plan(&mut self, check_network: bool) -> Result<Plan, AgentError> {
        let now = OffsetDateTime::now_utc();
        let mut network_blocker = None;
        if check_network && self.config.is_configured() {
            if net::org_reachable(&self.config, self.host.platform()) == Some(false) {
                network_blocker = Some(Blocker::status(
                    HealthStatus::OktaUnreachable,
                    "the org does not answer",
                ));
            } else {
                self.learn_cert_auth_host();
            }
        }
        let held = self.held(now)?;
        let mut plan = self.survey(&held, now)?;
        if network_blocker.is_some() {
            plan.blocker = network_blocker;
        }
        Ok(plan)
    }

    /// The plan over what the store holds now (`held`): each link's step around the identity
    /// the certificate work leaves, with what the configuration adds (the org token, the org,
    /// the places a new certificate must be kept in).
    pub(super) fn survey(&mut self, held: &Held, now: OffsetDateTime) -> Result<Plan, AgentError> {
        let probe = self.store.probe();
        let mut work = identity_work(&probe, held, self.record.method.is_some(), now);
        let mut found = Vec::new();
        // Nothing to enroll with stops `enroll` before any link: the plan's own blocker.
        let blocker = (!self.config.is_configured()).then(|| {
            Blocker::status(
                HealthStatus::NotConfigured,
                "no org URL or SCEP URL is configured, and no enrollment record names one",
            )
        });
        match &blocker {
            None => self.configured_work(&mut work, held, &mut found),
            Some(stop) => {
                work.blocker.get_or_insert_with(|| stop.clone());
            }
        }
        let outlook = work.outlook(held);
        let mut steps = self.with_chain(held, Superseded::default(), |chain, cx| {
            chain.survey(cx, outlook)
        });
        if let Some(step) = steps.iter_mut().find(|s| s.link == IDENTITY) {
            step.found.extend(found);
            step.action = work.action;
            step.detail = Some(work.detail.clone());
            // The plan's own blocker is said once, before the links.
            step.blocker = work.blocker.clone().filter(|b| Some(b) != blocker.as_ref());
        }
        Ok(Plan {
            blocker,
            steps,
            certificate: work.certificate.filter(|_| work.blocker.is_none()),
        })
    }

    /// What the configuration adds to the identity's work: a certificate needs the org token
    /// and places to keep it in; a valid identity must be the configured org's.
    fn configured_work(&self, work: &mut IdentityWork, held: &Held, found: &mut Vec<String>) {
        if work.blocker.is_some() {
            return;
        }
        let method = self.config.method();
        if let (Held::Valid(_), Some(org)) = (held, self.config.org_url.as_ref()) {
            if method == Method::Okta {
                if let Err(e) = self.refuse_other_org(org) {
                    work.blocker = Some(Blocker::new(Blocker::OTHER_ORG, e.to_string()));
                    return;
                }
            }
        }
        if let (Some(org), Method::Okta) = (self.config.org_url.as_ref(), method) {
            if work.certificate.is_none() && self.record.cert_auth_host.is_none() {
                work.detail.push_str(&format!(
                    "; {} is asked for its certAuthDomain",
                    org.as_str()
                ));
            }
        }
        if work.certificate.is_none() {
            return;
        }
        if method == Method::Okta && self.config.org_token.is_none() {
            work.blocker = Some(Blocker::new(
                Blocker::NO_TOKEN,
                "a new certificate is needed and no org token is configured (org_token_file, \
                 --org-token-file or DEVICETRUST_ORG_TOKEN)",
            ));
            return;
        }
        if let Err(e) = self.keeps_a_certificate() {
            work.blocker = Some(Blocker::new(Blocker::PREFLIGHT, e.to_string()));
            return;
        }
        found.push(match &self.config.org_url {
            Some(org) if method == Method::Okta => format!("enrolls with {}", org.as_str()),
            _ => format!(
                "enrolls with the SCEP CA at {}",
                self.config.scep.url.as_deref().unwrap_or("?")
            ),
        });
    }

    /// The places a new certificate is kept in are usable, read only: root's record, the
    /// state folder, the store (the links check their own in their steps).
    fn keeps_a_certificate(&self) -> Result<(), AgentError> {
        self.records_writable()?;
        Ok(self.store.check_usable()?)
    }

    /// Okta's metadata names the certAuthDomain a takeover or a first enrollment will write
    /// into the browsers; kept for this run only. A failure leaves it unknown.
    fn learn_cert_auth_host(&mut self) {
        if self.config.method() != Method::Okta || self.record.cert_auth_host.is_some() {
            return;
        }
        let Some(org) = self.config.org_url.clone() else {
            return;
        };
        match self.metadata_host(&org) {
            Ok(host) => self.record.cert_auth_host = Some(host),
            Err(e) => tracing::warn!("the certAuthDomain stays unknown: {e}"),
        }
    }

    fn metadata_host(&self, org: &OrgUrl) -> Result<String, AgentError> {
        let client = net::okta_client(&self.config, self.host.platform(), org, None)?;
        Ok(client.metadata()?.cert_auth_host)
    }
}
