//! One health status from the dependency chain of cli.md: the first failing link wins.
//!
//! The statuses are stable strings (Jamf Smart Groups match them). The chain of links
//! (`crate::chain`) observes the device; this module only orders and picks.

/// The statuses, in dependency order. The strings are stable: Jamf Smart Groups match them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    NotConfigured,
    OktaUnreachable,
    NoUserSession,
    /// Root could not run the check as the console user (`launchctl asuser`/`sudo` failed):
    /// nothing was checked, since the user's keychain is not root's to read.
    SessionUnreachable,
    KeychainMissing,
    KeychainPasswordMissing,
    /// The `device_trust` item is there, but the agent cannot read it without a dialog.
    KeychainPasswordUnreadable,
    CertificateMissing,
    /// The store holds a certificate the recorded or configured CA did not issue.
    CertificateFromAnotherCa,
    PrivateKeyMissing,
    /// The device's clock is before the certificate's notBefore.
    ClockWrong,
    CertificateExpired,
    RenewalFailing,
    AppAccessIncomplete,
    BrowserPolicyMissing,
    RenewalJobMissing,
    BackgroundTaskDisabled,
    Healthy,
}

impl HealthStatus {
    /// Every status, in chain order (the docs tests check each has its row).
    pub const ALL: [HealthStatus; 18] = [
        HealthStatus::NotConfigured,
        HealthStatus::OktaUnreachable,
        HealthStatus::NoUserSession,
        HealthStatus::SessionUnreachable,
        HealthStatus::KeychainMissing,
        HealthStatus::KeychainPasswordMissing,
        HealthStatus::KeychainPasswordUnreadable,
        HealthStatus::CertificateMissing,
        HealthStatus::CertificateFromAnotherCa,
        HealthStatus::PrivateKeyMissing,
        HealthStatus::ClockWrong,
        HealthStatus::CertificateExpired,
        HealthStatus::RenewalFailing,
        HealthStatus::AppAccessIncomplete,
        HealthStatus::BrowserPolicyMissing,
        HealthStatus::RenewalJobMissing,
        HealthStatus::BackgroundTaskDisabled,
        HealthStatus::Healthy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::NotConfigured => "Not Configured",
            HealthStatus::OktaUnreachable => "Okta Unreachable",
            HealthStatus::NoUserSession => "No User Session",
            HealthStatus::SessionUnreachable => "User Session Unreachable",
            HealthStatus::KeychainMissing => "Keychain Missing",
            HealthStatus::KeychainPasswordMissing => "Keychain Password Missing",
            HealthStatus::KeychainPasswordUnreadable => "Keychain Password Unreadable",
            HealthStatus::CertificateMissing => "Certificate Missing",
            HealthStatus::CertificateFromAnotherCa => "Certificate From Another CA",
            HealthStatus::PrivateKeyMissing => "Private Key Missing",
            HealthStatus::ClockWrong => "Clock Wrong",
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

/// What one link of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Present and right.
    Healthy,
    /// Missing or wrong: the status it maps to and what exactly is wrong.
    Failing {
        status: HealthStatus,
        detail: String,
    },
    /// The link does not exist here (a keychain password on Linux, Safari off macOS).
    NotApplicable,
}

impl Observation {
    pub fn failing(status: HealthStatus, detail: impl Into<String>) -> Observation {
        Observation::Failing {
            status,
            detail: detail.into(),
        }
    }
}

/// The verdict: the first failing observation, in the order given, or `Healthy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: HealthStatus,
    /// What is wrong, for `status` and the policy log; `None` when healthy.
    pub detail: Option<String>,
}

impl Verdict {
    pub fn of(status: HealthStatus, detail: Option<String>) -> Verdict {
        Verdict { status, detail }
    }
}

/// The first failing observation wins; later links are not looked at for the status.
pub fn first_failing(observations: impl IntoIterator<Item = Observation>) -> Verdict {
    for observation in observations {
        if let Observation::Failing { status, detail } = observation {
            return Verdict::of(status, Some(detail));
        }
    }
    Verdict::of(HealthStatus::Healthy, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failing_link_wins_and_not_applicable_is_skipped() {
        use HealthStatus::*;
        let chain = vec![
            Observation::Healthy,
            Observation::NotApplicable,
            Observation::failing(BrowserPolicyMissing, "no entry"),
            Observation::failing(RenewalJobMissing, "no job"),
        ];
        assert_eq!(
            first_failing(chain),
            Verdict::of(BrowserPolicyMissing, Some("no entry".into()))
        );
        assert_eq!(
            first_failing([Observation::Healthy, Observation::NotApplicable]).status,
            Healthy
        );
    }

    #[test]
    fn status_strings_are_the_stable_ones_of_the_cli_contract() {
        let all = [
            (HealthStatus::NotConfigured, "Not Configured"),
            (HealthStatus::OktaUnreachable, "Okta Unreachable"),
            (HealthStatus::NoUserSession, "No User Session"),
            (HealthStatus::SessionUnreachable, "User Session Unreachable"),
            (HealthStatus::KeychainMissing, "Keychain Missing"),
            (
                HealthStatus::KeychainPasswordMissing,
                "Keychain Password Missing",
            ),
            (
                HealthStatus::KeychainPasswordUnreadable,
                "Keychain Password Unreadable",
            ),
            (HealthStatus::CertificateMissing, "Certificate Missing"),
            (
                HealthStatus::CertificateFromAnotherCa,
                "Certificate From Another CA",
            ),
            (HealthStatus::PrivateKeyMissing, "Private Key Missing"),
            (HealthStatus::ClockWrong, "Clock Wrong"),
            (HealthStatus::CertificateExpired, "Certificate Expired"),
            (HealthStatus::RenewalFailing, "Renewal Failing"),
            (HealthStatus::AppAccessIncomplete, "App Access Incomplete"),
            (HealthStatus::BrowserPolicyMissing, "Browser Policy Missing"),
            (HealthStatus::RenewalJobMissing, "Renewal Job Missing"),
            (
                HealthStatus::BackgroundTaskDisabled,
                "Background Task Disabled",
            ),
            (HealthStatus::Healthy, "Healthy"),
        ];
        assert_eq!(
            HealthStatus::ALL.to_vec(),
            all.iter().map(|(s, _)| *s).collect::<Vec<_>>()
        );
        for (i, (status, text)) in all.iter().enumerate() {
            assert_eq!(status.to_string(), *text);
            // The enum's order is the chain's order.
            if let Some((next, _)) = all.get(i + 1) {
                assert!(status < next);
            }
        }
    }
}
