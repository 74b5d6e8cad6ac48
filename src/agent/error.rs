//! Every way a workflow fails, with the exit code of cli.md each maps to.

use crate::chain::LinkError;
use crate::config::ConfigError;
use crate::host::HostError;
use crate::lock::LockError;
use crate::okta::OktaError;
use crate::pki::{IssuedCertError, PkiError};
use crate::platform::PlatformError;
use crate::record::RecordError;
use crate::scep::{FailInfo, ScepError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
    #[error("no user is logged in at the console; nothing to do until one is (try again later)")]
    NoUserSession,
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A link of the chain refused something planted in the user's home.
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Okta(#[from] OktaError),
    #[error("SCEP: {0}")]
    Scep(#[from] ScepError),
    /// micromdm's scepserver (and CAs built on it) refuse a second certificate for a subject
    /// until `-allowrenew` days (14 by default) before the current one expires; a device that
    /// renews by 30 days meets that refusal first, every day, until the windows agree.
    #[error(
        "the SCEP CA refused the renewal ({}) with {days_left} days left on the certificate. \
         CAs built on micromdm's scepserver refuse a new certificate for a subject until their \
         renewal window opens (`-allowrenew`, 14 days before expiry by default); this device \
         renews from {threshold} days before expiry. Let the CA renew from at least \
         {threshold} days before expiry (`scepserver -allowrenew {threshold}`) or set \
         `scep.renew_before_days` inside the CA's window; the current certificate stays",
        fail_info.name()
    )]
    ScepRenewalTooEarly {
        fail_info: FailInfo,
        days_left: i64,
        threshold: u32,
        #[source]
        source: ScepError,
    },
    #[error("the CA issued an unusable certificate, nothing was stored: {0}")]
    Issued(#[from] IssuedCertError),
    /// `repair` could not make a link right: the Fix-It failed, and the status stays.
    #[error("{link} could not be repaired: {source}")]
    RepairIncomplete {
        link: &'static str,
        #[source]
        source: LinkError,
    },
    #[error("no device certificate is installed; run `devicetrust enroll`")]
    NotEnrolled,
    #[error(
        "{detail}; run `devicetrust enroll` to enroll afresh (the damaged identity is kept aside)"
    )]
    Damaged { detail: String },
    #[error(
        "the certificate's private key is missing or does not match it; \
         run `devicetrust uninstall --reenroll`"
    )]
    KeyMissing,
    #[error(
        "the certificate expired on {not_after}; an expired certificate cannot sign a renewal, \
         so supply an org token to enroll afresh"
    )]
    Expired { not_after: String },
    #[error(
        "this device's certificate belongs to {stored}, not {configured}; a device belongs to \
         one org's Device Trust: run `devicetrust uninstall` first to move it"
    )]
    OtherOrg { stored: String, configured: String },
    #[error(
        "the certificate expired on {not_after}; an expired certificate cannot be renewed over \
         SCEP without the CA's challenge: configure scep.challenge_file or DEVICETRUST_SCEP_CHALLENGE"
    )]
    ExpiredNoChallenge { not_after: String },
    #[error(
        "uninstall left {} in place ({first}{}); run it again once fixed",
        .left.join(", "),
        if .left.len() > 1 { "; see the WARN lines" } else { "" }
    )]
    UninstallIncomplete {
        left: Vec<&'static str>,
        /// Why the first of them stayed.
        #[source]
        first: LinkError,
    },
    /// The store holds a certificate the expected CA did not issue.
    #[error(
        "{reason}; run `devicetrust enroll` with the org token or SCEP challenge to replace it"
    )]
    FromAnotherCa { reason: String },
    /// The device's clock is behind the certificate's notBefore: no certificate is requested
    /// (one issued now would not be valid on this device either).
    #[error(
        "the device's clock says {now}, before the certificate's notBefore {not_before}; set \
         the clock right and try again (no certificate was requested)"
    )]
    ClockWrong { now: String, not_before: String },
    /// The device's clock is more than `http::clock::MAX_CLOCK_SKEW` from Okta's: a
    /// certificate issued now would not be valid on this device's clock.
    #[error(
        "the device's clock says {device}, Okta's {server}: more than 5 minutes apart, so no \
         certificate was requested; set the clock right and try again"
    )]
    ClockSkew { device: String, server: String },
    #[error(
        "gave up after {secs} s, the longest one run may take ({key}); the next run continues"
    )]
    RunDeadline { secs: u64, key: &'static str },
    /// A tool the run started hung and was stopped: what the run saw is incomplete.
    #[error(transparent)]
    TimedOut(#[from] crate::platform::children::TimedOut),
}

impl AgentError {
    /// The exit code of cli.md: 2 configuration, 75 try later, 1 everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Config(_) | AgentError::Host(HostError::KeychainUnavailable) => 2,
            AgentError::NoUserSession
            | AgentError::RunDeadline { .. }
            | AgentError::ClockWrong { .. }
            | AgentError::ClockSkew { .. } => 75,
            AgentError::TimedOut(_)
            | AgentError::Link(LinkError::TimedOut(_))
            | AgentError::RepairIncomplete {
                source: LinkError::TimedOut(_),
                ..
            }
            | AgentError::UninstallIncomplete {
                first: LinkError::TimedOut(_),
                ..
            } => 75,
            AgentError::Lock(LockError::Busy { .. }) => 75,
            AgentError::Store(e) if e.is_deferred() => 75,
            // A link the Fix-It could not apply because the store cannot be read now (an item
            // that could not be read, a locked login keychain): deferred, like the store itself.
            AgentError::Link(LinkError::Store(e))
            | AgentError::RepairIncomplete {
                source: LinkError::Store(e),
                ..
            } if e.is_deferred() => 75,
            AgentError::Okta(e) if e.is_transient() => 75,
            AgentError::Scep(e) if e.is_transient() => 75,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deferred() -> StoreError {
        StoreError::Deferred {
            status: "Keychain Password Unreadable",
            reason: "the item did not answer".into(),
        }
    }

    #[test]
    fn a_store_that_cannot_be_read_now_defers_however_it_is_wrapped() {
        assert_eq!(AgentError::Store(deferred()).exit_code(), 75);
        assert_eq!(
            AgentError::Link(LinkError::Store(deferred())).exit_code(),
            75
        );
        let repair = AgentError::RepairIncomplete {
            link: "key app allowlist",
            source: LinkError::Store(deferred()),
        };
        assert_eq!(repair.exit_code(), 75);
        // A store that is broken, not busy, fails.
        let broken = AgentError::RepairIncomplete {
            link: "key app allowlist",
            source: LinkError::Store(StoreError::Unsupported("no".into())),
        };
        assert_eq!(broken.exit_code(), 1);
    }

    #[test]
    fn a_clock_to_set_right_defers() {
        let wrong = AgentError::ClockWrong {
            now: "2026-01-01T00:00:00Z".into(),
            not_before: "2026-01-02T00:00:00Z".into(),
        };
        assert_eq!(wrong.exit_code(), 75);
        let skew = AgentError::ClockSkew {
            device: "a".into(),
            server: "b".into(),
        };
        assert_eq!(skew.exit_code(), 75);
        assert_eq!(
            AgentError::FromAnotherCa { reason: "x".into() }.exit_code(),
            1
        );
    }
}
