//! One health status from the dependency chain of cli.md: the first failing link wins.
//!
//! `evaluate` is pure over `HealthFacts`, which the agent gathers. A link whose fact is `None`
//! does not exist on this platform or store (a keychain password on Linux) and is skipped, so a
//! healthy Linux device reports `Healthy`.

use crate::pki::CertificateInfo;
use crate::state::RenewalAttempt;
use time::OffsetDateTime;

/// The statuses, in dependency order. The strings are stable: Jamf Smart Groups match them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    NotConfigured,
    OktaUnreachable,
    NoUserSession,
    KeychainMissing,
    KeychainPasswordMissing,
    CertificateMissing,
    PrivateKeyMissing,
    CertificateExpired,
    RenewalFailing,
    AppAccessIncomplete,
    BrowserPolicyMissing,
    RenewalJobMissing,
    BackgroundTaskDisabled,
    Healthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::NotConfigured => "Not Configured",
            HealthStatus::OktaUnreachable => "Okta Unreachable",
            HealthStatus::NoUserSession => "No User Session",
            HealthStatus::KeychainMissing => "Keychain Missing",
            HealthStatus::KeychainPasswordMissing => "Keychain Password Missing",
            HealthStatus::CertificateMissing => "Certificate Missing",
            HealthStatus::PrivateKeyMissing => "Private Key Missing",
            HealthStatus::CertificateExpired => "Certificate Expired",
            HealthStatus::RenewalFailing => "Renewal Failing",
            HealthStatus::AppAccessIncomplete => "App Access Incomplete",
            HealthStatus::BrowserPolicyMissing => "Browser Policy Missing",
            HealthStatus::RenewalJobMissing => "Renewal Job Missing",
            HealthStatus::BackgroundTaskDisabled => "Background Task Disabled",
            HealthStatus::Healthy => "Healthy",
        }
    }
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the chain looks at. `None` means "this link does not apply here".
#[derive(Debug, Clone)]
pub struct HealthFacts {
    pub now: OffsetDateTime,
    pub configured: bool,
    /// Only probed with `--check-network`.
    pub okta_reachable: Option<bool>,
    pub user_session: Option<bool>,
    pub store_exists: Option<bool>,
    pub password_item: Option<bool>,
    pub certificate: Option<CertificateInfo>,
    /// The stored private key exists and belongs to the certificate.
    pub key_matches: bool,
    pub renew_before_days: u32,
    pub last_renewal: Option<RenewalAttempt>,
    pub app_access_complete: Option<bool>,
    pub browser_policy_present: Option<bool>,
    pub renewal_job_installed: Option<bool>,
    pub background_task_enabled: Option<bool>,
}

pub fn evaluate(f: &HealthFacts) -> HealthStatus {
    use HealthStatus::*;
    if !f.configured {
        return NotConfigured;
    }
    if f.okta_reachable == Some(false) {
        return OktaUnreachable;
    }
    if f.user_session == Some(false) {
        return NoUserSession;
    }
    if f.store_exists == Some(false) {
        return KeychainMissing;
    }
    if f.password_item == Some(false) {
        return KeychainPasswordMissing;
    }
    let Some(cert) = &f.certificate else {
        return CertificateMissing;
    };
    if !f.key_matches {
        return PrivateKeyMissing;
    }
    if !cert.is_valid_at(f.now) {
        return CertificateExpired;
    }
    let in_window = cert.days_left(f.now) < i64::from(f.renew_before_days);
    if in_window && f.last_renewal.as_ref().is_some_and(|r| !r.ok) {
        return RenewalFailing;
    }
    let links = [
        (f.app_access_complete, AppAccessIncomplete),
        (f.browser_policy_present, BrowserPolicyMissing),
        (f.renewal_job_installed, RenewalJobMissing),
        (f.background_task_enabled, BackgroundTaskDisabled),
    ];
    links
        .into_iter()
        .find(|(ok, _)| *ok == Some(false))
        .map(|(_, status)| status)
        .unwrap_or(Healthy)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pki::{Authority, IssueProfile, IssueRequest};
    use std::sync::OnceLock;

    fn cert(days_left: i64) -> CertificateInfo {
        static CA: OnceLock<Authority> = OnceLock::new();
        let ca = CA.get_or_init(|| {
            Authority::new_self_signed("Health Test CA", std::time::Duration::from_secs(86400))
                .unwrap()
        });
        let now = OffsetDateTime::now_utc();
        let der = ca
            .issue(IssueRequest {
                subject: "CN=Okta MTLS".into(),
                public_key_der: ca.key().public_key_der().unwrap(),
                not_before: now - time::Duration::days(400),
                not_after: now + time::Duration::days(days_left) + time::Duration::hours(1),
                serial: None,
                profile: IssueProfile::ClientAuth,
            })
            .unwrap();
        CertificateInfo::parse(&der).unwrap()
    }

    pub(crate) fn healthy() -> HealthFacts {
        HealthFacts {
            now: OffsetDateTime::now_utc(),
            configured: true,
            okta_reachable: Some(true),
            user_session: Some(true),
            store_exists: Some(true),
            password_item: Some(true),
            certificate: Some(cert(200)),
            key_matches: true,
            renew_before_days: 30,
            last_renewal: None,
            app_access_complete: Some(true),
            browser_policy_present: Some(true),
            renewal_job_installed: Some(true),
            background_task_enabled: Some(true),
        }
    }

    fn failed_renewal() -> Option<RenewalAttempt> {
        Some(RenewalAttempt {
            time: "2026-01-01T00:00:00Z".into(),
            ok: false,
            error: Some("x".into()),
        })
    }

    #[test]
    fn each_broken_link_reports_itself_and_the_first_one_wins() {
        use HealthStatus::*;
        type Break = fn(&mut HealthFacts);
        let links: [(Break, HealthStatus); 13] = [
            (|f| f.configured = false, NotConfigured),
            (|f| f.okta_reachable = Some(false), OktaUnreachable),
            (|f| f.user_session = Some(false), NoUserSession),
            (|f| f.store_exists = Some(false), KeychainMissing),
            (|f| f.password_item = Some(false), KeychainPasswordMissing),
            (|f| f.certificate = None, CertificateMissing),
            (|f| f.key_matches = false, PrivateKeyMissing),
            (
                |f| {
                    if f.certificate.is_some() {
                        f.certificate = Some(cert(-2))
                    }
                },
                CertificateExpired,
            ),
            (
                |f| {
                    if f.certificate
                        .as_ref()
                        .is_some_and(|c| c.is_valid_at(OffsetDateTime::now_utc()))
                    {
                        f.certificate = Some(cert(10));
                    }
                    f.last_renewal = failed_renewal();
                },
                RenewalFailing,
            ),
            (|f| f.app_access_complete = Some(false), AppAccessIncomplete),
            (
                |f| f.browser_policy_present = Some(false),
                BrowserPolicyMissing,
            ),
            (|f| f.renewal_job_installed = Some(false), RenewalJobMissing),
            (
                |f| f.background_task_enabled = Some(false),
                BackgroundTaskDisabled,
            ),
        ];
        assert_eq!(evaluate(&healthy()), Healthy);
        for (i, (break_link, status)) in links.iter().enumerate() {
            let mut f = healthy();
            break_link(&mut f);
            assert_eq!(evaluate(&f), *status);
            // Breaking every later link as well changes nothing: the first failure wins.
            for (later, _) in &links[i + 1..] {
                later(&mut f);
            }
            assert_eq!(evaluate(&f), *status, "with later links broken too");
        }
    }

    #[test]
    fn a_failed_renewal_outside_the_window_is_not_renewal_failing() {
        let mut f = healthy();
        f.last_renewal = failed_renewal();
        assert_eq!(evaluate(&f), HealthStatus::Healthy);
    }

    #[test]
    fn links_that_do_not_apply_are_skipped() {
        let mut f = healthy();
        f.okta_reachable = None;
        f.user_session = None;
        f.store_exists = None;
        f.password_item = None;
        f.app_access_complete = None;
        f.browser_policy_present = None;
        f.renewal_job_installed = None;
        f.background_task_enabled = None;
        assert_eq!(evaluate(&f), HealthStatus::Healthy);
    }

    #[test]
    fn status_strings_are_the_stable_ones_of_the_cli_contract() {
        assert_eq!(
            HealthStatus::KeychainPasswordMissing.as_str(),
            "Keychain Password Missing"
        );
        assert_eq!(
            HealthStatus::BackgroundTaskDisabled.as_str(),
            "Background Task Disabled"
        );
        assert_eq!(HealthStatus::Healthy.to_string(), "Healthy");
    }
}
