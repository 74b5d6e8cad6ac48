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
