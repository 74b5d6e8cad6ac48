//! `devicetrust status` and `ea`: what is on the device and the first failing link.

use super::{net, Agent, AgentError};
use crate::chain::Superseded;
use crate::config::{Config, Sources};
use crate::health::HealthStatus;
use crate::pki::CertificateInfo;
use crate::record::{Method, RenewalAttempt};
use time::OffsetDateTime;

/// Everything `status` shows.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub status: HealthStatus,
    /// What exactly is wrong with the failing link; `None` when healthy.
    pub detail: Option<String>,
    pub method: Method,
    pub user: Option<String>,
    pub store: Option<String>,
    pub certificate: Option<CertificateInfo>,
    /// The org in effect (the configuration's, else the record's).
    pub org_url: Option<String>,
    /// The org the stored identity was enrolled with, when it is not the one in effect.
    pub enrolled_org_url: Option<String>,
    pub cert_auth_host: Option<String>,
    /// The SCEP CA's URL (SCEP enrollments).
    pub scep_url: Option<String>,
    pub last_renewal: Option<RenewalAttempt>,
    /// This device renews when fewer than this many days are left (its place in the window).
    pub renews_below_days: Option<u32>,
    /// The moment this device's renewal starts, for the stored certificate.
    pub renews_from: Option<OffsetDateTime>,
    /// The layer each setting in effect came from.
    pub sources: Sources,
    pub now: OffsetDateTime,
}

impl Agent {
    /// What is on the device, and the first failing link of the health chain.
    pub fn status(&mut self, check_network: bool) -> Result<StatusReport, AgentError> {
        let now = OffsetDateTime::now_utc();
        let held = self.held(now)?;
        let verdict = if !self.config.is_configured() && !self.record.is_enrollment() {
            crate::health::Verdict::of(HealthStatus::NotConfigured, None)
        } else if check_network
            && net::org_reachable(&self.config, self.host.platform()) == Some(false)
        {
            crate::health::Verdict::of(
                HealthStatus::OktaUnreachable,
                Some("the org does not answer".into()),
            )
        } else {
            self.with_chain(&held, Superseded::default(), |chain, cx| chain.verdict(cx))
        };
        let policy = self.policy();
        let certificate = held.shown().cloned();
        Ok(StatusReport {
            status: verdict.status,
            detail: verdict.detail,
            method: self.record.method.unwrap_or_else(|| self.config.method()),
            user: Some(self.home.user.clone()),
            store: Some(self.store.location()),
            org_url: self.config.org_url.as_ref().map(|o| o.as_str().to_owned()),
            enrolled_org_url: self.record.org_url.clone().filter(|enrolled| {
                self.config.org_url.as_ref().map(|o| o.as_str()) != Some(enrolled.as_str())
            }),
            cert_auth_host: self
                .record
                .cert_auth_host
                .clone()
                .or_else(|| self.config.cert_auth_host.clone()),
            scep_url: self
                .record
                .scep_url
                .clone()
                .or_else(|| self.config.scep.url.clone()),
            last_renewal: self.record.last_renewal.clone(),
            renews_below_days: Some(policy.threshold_days()),
            renews_from: certificate.as_ref().map(|c| policy.due_from(c.not_after)),
            certificate,
            sources: self.config.sources.clone(),
            now,
        })
    }
}

impl StatusReport {
    /// The report when there is no user to act for, nothing is configured, or the store cannot
    /// be read (`detail` says why).
    pub fn without_user(
        status: HealthStatus,
        config: Option<&Config>,
        detail: Option<String>,
    ) -> StatusReport {
        StatusReport {
            status,
            detail,
            method: config.map(Config::method).unwrap_or(Method::Okta),
            user: None,
            store: None,
            certificate: None,
            org_url: config.and_then(|c| c.org_url.as_ref().map(|o| o.as_str().to_owned())),
            enrolled_org_url: None,
            cert_auth_host: None,
            scep_url: config.and_then(|c| c.scep.url.clone()),
            last_renewal: None,
            renews_below_days: None,
            renews_from: None,
            sources: config.map(|c| c.sources.clone()).unwrap_or_default(),
            now: OffsetDateTime::now_utc(),
        }
    }
}
