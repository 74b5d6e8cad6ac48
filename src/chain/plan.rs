//! What `enroll` would do on this device, link by link, worked out without changing anything:
//! the value `devicetrust plan` prints and `enroll` carries out.
//!
//! Each link contributes a [`Step`] ([`super::Link::survey`]): what it finds, the one
//! [`Action`] `enroll` would take on it, and what would still be wrong afterwards (a
//! [`Blocker`]). The identity's work decides the rest ([`identity_work`]): whether a certificate
//! is requested, and so what the other links will be built around ([`Outlook`]). The verdict is
//! `Ready` with the certificates it spends, or `Blocked` with the first reason `enroll` would
//! fail or end in a status other than `Healthy`.

use super::Held;
use crate::health::HealthStatus;
use crate::pki::CertificateInfo;
use crate::store::{PasswordItemState, StoreProbe};
use crate::timefmt::rfc3339;
use time::OffsetDateTime;

/// What `enroll` does to one link. The words are stable: `plan --json`, `enroll --json` and
/// the docs use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Takes what is there as its own (an identity Okta's task enrolled).
    Adopt,
    /// Makes what is not there.
    Create,
    /// Puts something new in the place of what is there.
    Replace,
    /// Keeps what is there under another name, out of use, for diagnosis.
    SetAside,
    /// Deletes it (only ever what is ours or the old task's).
    Remove,
    Nothing,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Adopt,
        Action::Create,
        Action::Replace,
        Action::SetAside,
        Action::Remove,
        Action::Nothing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Adopt => "adopt",
            Action::Create => "create",
            Action::Replace => "replace",
            Action::SetAside => "set aside",
            Action::Remove => "remove",
            Action::Nothing => "nothing",
        }
    }

    /// The action a link's change lines stand for, given the one the plan listed: a link that
    /// changed nothing did nothing; one that changed what the plan did not foresee rewrote
    /// what was there.
    pub fn taken(planned: Action, changes: &[String]) -> Action {
        match (changes.is_empty(), planned) {
            (true, _) => Action::Nothing,
            (false, Action::Nothing) => Action::Replace,
            (false, planned) => planned,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `enroll` would fail, or leave the device in a status other than `Healthy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// A short, stable name: a health status, or what stops `enroll` ([`Blocker::NO_TOKEN`]
    /// and the like). The EA prints only this, for Smart Groups.
    pub kind: &'static str,
    pub detail: String,
}

impl Blocker {
    /// A certificate is needed and no org token is configured.
    pub const NO_TOKEN: &'static str = "No Org Token";
    /// The stored identity belongs to another org than the configured one.
    pub const OTHER_ORG: &'static str = "Another Org";
    /// A place `enroll` must write is not usable (a planted link, a foreign store, a tool
    /// missing where a browser needs it).
    pub const PREFLIGHT: &'static str = "Cannot Keep A Certificate";

    pub fn new(kind: &'static str, detail: impl Into<String>) -> Blocker {
        Blocker {
            kind,
            detail: detail.into(),
        }
    }

    /// The device would end in `status`.
    pub fn status(status: HealthStatus, detail: impl Into<String>) -> Blocker {
        Blocker::new(status.as_str(), detail)
    }
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// One link's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The link's name (`Link::name`).
    pub link: &'static str,
    /// What is there now, one fact a line.
    pub found: Vec<String>,
    pub action: Action,
    /// What the action does here, in words; `None` for nothing.
    pub detail: Option<String>,
    /// What would still be wrong after `enroll`.
    pub blocker: Option<Blocker>,
}

impl Step {
    pub fn new(link: &'static str) -> Step {
        Step {
            link,
            found: Vec::new(),
            action: Action::Nothing,
            detail: None,
            blocker: None,
        }
    }

    pub fn found(mut self, fact: impl Into<String>) -> Step {
        self.found.push(fact.into());
        self
    }

    pub fn act(mut self, action: Action, detail: impl Into<String>) -> Step {
        self.action = action;
        self.detail = Some(detail.into());
        self
    }

    pub fn blocked(mut self, blocker: Blocker) -> Step {
        // The first reason is the one to show.
        self.blocker.get_or_insert(blocker);
        self
    }
}

/// What the identity will be once `enroll` has done its certificate work: what the other
/// links are built around.
#[derive(Debug, Clone, Copy)]
pub enum Outlook<'a> {
    /// This valid certificate stays.
    Kept(&'a CertificateInfo),
    /// A new certificate takes the place of whatever is stored.
    New,
    /// `enroll` stops at the identity: nothing else is changed.
    Stopped,
}

impl Outlook<'_> {
    /// Whether a valid identity will be there for the links that need one.
    pub fn valid(&self) -> bool {
        !matches!(self, Outlook::Stopped)
    }
}

/// The identity's part: what `enroll` does with the store and whether it asks for a
/// certificate. Worked out from what the store holds alone ([`identity_work`]); the agent adds
/// what needs the configuration (the org token, the org) as blockers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityWork {
    pub action: Action,
    pub detail: String,
    /// Why a new certificate is requested; `None`: none is.
    pub certificate: Option<String>,
    /// The store itself is set aside and made anew first (okta.keychain that can no longer be
    /// opened), whatever its identity reads.
    pub rebuild_store: bool,
    pub blocker: Option<Blocker>,
}

impl IdentityWork {
    fn keep(action: Action, detail: impl Into<String>) -> IdentityWork {
        IdentityWork {
            action,
            detail: detail.into(),
            certificate: None,
            rebuild_store: false,
            blocker: None,
        }
    }

    fn enroll(action: Action, why: impl Into<String>) -> IdentityWork {
        let why = why.into();
        IdentityWork {
            action,
            detail: format!("{why}; a new certificate takes its place"),
            certificate: Some(why),
            rebuild_store: false,
            blocker: None,
        }
    }

    /// What the links after the identity will find.
    pub fn outlook<'a>(&self, held: &'a Held) -> Outlook<'a> {
        match (&self.blocker, &self.certificate, held) {
            (Some(_), ..) => Outlook::Stopped,
            (None, Some(_), _) => Outlook::New,
            (None, None, Held::Valid(certificate)) => Outlook::Kept(certificate),
            (None, None, _) => Outlook::Stopped,
        }
    }
}

/// Decides the identity's work from the store's probe (its password item by attributes) and
/// what it holds, as `enroll` does: a store that cannot be opened is rebuilt; a valid identity
/// stays (adopted when no record of ours names it, `recorded` false); anything else is
/// replaced by a new certificate, a damaged one kept aside; a clock before the certificate's
/// notBefore stops everything (a new certificate would not be valid either); a password that
/// cannot be read now stops it too (nothing is rebuilt for that).
pub fn identity_work(
    probe: &StoreProbe,
    held: &Held,
    recorded: bool,
    now: OffsetDateTime,
) -> IdentityWork {
    match probe.password_item {
        Some(PasswordItemState::Unreadable) => {
            let mut work = IdentityWork::keep(Action::Nothing, "left as it is");
            work.blocker = Some(Blocker::status(
                HealthStatus::KeychainPasswordUnreadable,
                "the device_trust password item cannot be read now (the login keychain is \
                 locked, or reading it was refused); enroll would defer",
            ));
            return work;
        }
        Some(state @ (PasswordItemState::Missing | PasswordItemState::Wrong))
            if probe.exists == Some(true) =>
        {
            let why = match state {
                PasswordItemState::Missing => "the device_trust password item is gone",
                _ => "the device_trust password item does not open it",
            };
            let mut work = IdentityWork::enroll(
                Action::SetAside,
                format!("okta.keychain can no longer be opened ({why})"),
            );
            work.detail = format!(
                "okta.keychain can no longer be opened ({why}): it is kept aside and a new one \
                 made, with a new certificate"
            );
            work.rebuild_store = true;
            return work;
        }
        _ => {}
    }
    let missing_store = probe.exists == Some(false);
    match held {
        Held::Valid(c) if recorded => IdentityWork::keep(
            Action::Nothing,
            format!(
                "certificate {} stays ({} days left); no new certificate",
                c.serial_hex,
                c.days_left(now)
            ),
        ),
        Held::Valid(c) => IdentityWork::keep(
            Action::Adopt,
            format!(
                "certificate {} ({} days left) becomes this agent's, without a new \
                 certificate; the enrollment record learns how it was enrolled",
                c.serial_hex,
                c.days_left(now)
            ),
        ),
        Held::NotYetValid(c) => {
            let mut work = IdentityWork::keep(Action::Nothing, "left as it is");
            work.blocker = Some(Blocker::status(
                HealthStatus::ClockWrong,
                format!(
                    "the device's clock says {}, before the certificate's notBefore {}; set \
                     the clock right (a new certificate would not be valid either)",
                    rfc3339(now),
                    rfc3339(c.not_before)
                ),
            ));
            work
        }
        Held::Nothing if missing_store => IdentityWork::enroll(
            Action::Create,
            "there is no okta.keychain; it is made, with a new certificate in it",
        ),
        Held::Nothing => IdentityWork::enroll(Action::Create, "no certificate is stored"),
        Held::Damaged { detail, .. } => {
            let mut work = IdentityWork::enroll(Action::SetAside, detail.clone());
            work.detail = format!("{detail}: it is kept aside, and a new certificate enrolled");
            work
        }
        Held::Foreign { reason, .. } => IdentityWork::enroll(Action::Replace, reason.clone()),
        Held::KeyMissing(_) => IdentityWork::enroll(
            Action::Replace,
            "the stored certificate has no matching private key",
        ),
        Held::Expired(c) => IdentityWork::enroll(
            Action::Replace,
            format!("the stored certificate expired on {}", rfc3339(c.not_after)),
        ),
    }
}

/// What `enroll` would do on this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// A reason `enroll` stops before any link (nothing configured, the org unreachable).
    pub blocker: Option<Blocker>,
    /// The links in chain order.
    pub steps: Vec<Step>,
    /// Why a new certificate is requested; `None`: none is.
    pub certificate: Option<String>,
}

/// The one line a plan ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready { certificates: u32 },
    Blocked(Blocker),
}

impl Verdict {
    /// `Ready`, `Ready: 1 certificate`, `Blocked: <kind>`: the EA's words, stable for Smart
    /// Groups.
    pub fn short(&self) -> String {
        match self {
            Verdict::Ready { certificates: 0 } => "Ready".to_owned(),
            Verdict::Ready { certificates: 1 } => "Ready: 1 certificate".to_owned(),
            Verdict::Ready { certificates } => format!("Ready: {certificates} certificates"),
            Verdict::Blocked(b) => format!("Blocked: {}", b.kind),
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Verdict::Ready { .. })
    }
}

impl std::fmt::Display for Verdict {
    /// The plan's last line: the EA's words, and for a blocker why.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Ready { .. } => f.write_str(&self.short()),
            Verdict::Blocked(b) => write!(f, "Blocked: {b}"),
        }
    }
}

impl Plan {
    /// The first blocker, in chain order after the plan's own, or `Ready` with the
    /// certificates `enroll` would spend.
    pub fn verdict(&self) -> Verdict {
        let first = self
            .blocker
            .iter()
            .chain(self.steps.iter().filter_map(|s| s.blocker.as_ref()))
            .next();
        match first {
            Some(b) => Verdict::Blocked(b.clone()),
            None => Verdict::Ready {
                certificates: u32::from(self.certificate.is_some()),
            },
        }
    }

    /// The link and action of each step: what `enroll --json` must report having done.
    pub fn actions(&self) -> Vec<(&'static str, Action)> {
        self.steps.iter().map(|s| (s.link, s.action)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::tests::{client_request, test_authority};
    use crate::pki::key::tests::test_key;
    use time::Duration;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// A certificate valid from `not_before` for `days`.
    fn certificate(not_before: OffsetDateTime, days: i64) -> CertificateInfo {
        let mut request = client_request(test_key().public_key_der().unwrap(), now());
        request.not_before = not_before;
        request.not_after = not_before + Duration::days(days);
        CertificateInfo::parse(&test_authority().issue(request).unwrap()).unwrap()
    }

    fn file_store() -> StoreProbe {
        StoreProbe {
            exists: None,
            password_item: None,
        }
    }

    fn keychain(exists: bool, item: PasswordItemState) -> StoreProbe {
        StoreProbe {
            exists: Some(exists),
            password_item: Some(item),
        }
    }

    #[test]
    fn a_valid_identity_stays_and_is_adopted_only_without_a_record_of_ours() {
        let c = certificate(now() - Duration::days(1), 300);
        let held = Held::Valid(c.clone());
        let ours = identity_work(&file_store(), &held, true, now());
        assert_eq!(
            (ours.action, ours.certificate.clone()),
            (Action::Nothing, None)
        );
        assert!(matches!(ours.outlook(&held), Outlook::Kept(k) if k.der == c.der));
        let taken_over = identity_work(&file_store(), &held, false, now());
        assert_eq!(taken_over.action, Action::Adopt);
        assert_eq!(
            taken_over.certificate, None,
            "a takeover spends no certificate"
        );
    }

    #[test]
    fn each_unusable_identity_is_replaced_by_a_new_certificate_the_damaged_kept_aside() {
        let expired = certificate(now() - Duration::days(400), 365);
        let cases = [
            (Held::Nothing, Action::Create, "no certificate"),
            (
                Held::Damaged {
                    status: HealthStatus::CertificateMissing,
                    detail: "cert.pem does not parse".into(),
                },
                Action::SetAside,
                "cert.pem",
            ),
            (
                Held::Foreign {
                    certificate: expired.clone(),
                    reason: "issued by CN=Else".into(),
                },
                Action::Replace,
                "CN=Else",
            ),
            (Held::KeyMissing(expired.clone()), Action::Replace, "key"),
            (Held::Expired(expired), Action::Replace, "expired"),
        ];
        for (held, action, why) in cases {
            let work = identity_work(&file_store(), &held, true, now());
            assert_eq!(work.action, action, "{held:?}");
            assert!(
                work.certificate.as_ref().is_some_and(|w| w.contains(why)),
                "{work:?}"
            );
            assert!(matches!(work.outlook(&held), Outlook::New), "{held:?}");
            assert_eq!(work.blocker, None);
        }
    }

    #[test]
    fn a_wrong_clock_and_an_unreadable_password_stop_enroll_without_a_certificate() {
        let future = certificate(now() + Duration::days(3), 365);
        let held = Held::NotYetValid(future);
        let work = identity_work(&file_store(), &held, true, now());
        assert_eq!(work.certificate, None);
        assert_eq!(work.blocker.as_ref().unwrap().kind, "Clock Wrong");
        assert!(matches!(work.outlook(&held), Outlook::Stopped));

        let valid = Held::Valid(certificate(now() - Duration::days(1), 300));
        let locked = keychain(true, PasswordItemState::Unreadable);
        let work = identity_work(&locked, &valid, true, now());
        assert_eq!(
            work.certificate, None,
            "nothing is rebuilt for a password not read now"
        );
        assert_eq!(work.blocker.unwrap().kind, "Keychain Password Unreadable");
    }

    #[test]
    fn a_keychain_that_can_no_longer_be_opened_is_set_aside_whatever_it_holds() {
        let valid = Held::Valid(certificate(now() - Duration::days(1), 300));
        // The plan says which of the two it found: the admin's next step differs.
        for (item, why) in [
            (PasswordItemState::Missing, "password item is gone"),
            (PasswordItemState::Wrong, "password item does not open it"),
        ] {
            let work = identity_work(&keychain(true, item), &valid, true, now());
            assert_eq!(work.action, Action::SetAside);
            assert!(work.rebuild_store);
            assert!(work.certificate.is_some());
            assert!(work.detail.contains(why), "{item:?}: {}", work.detail);
        }
        // No keychain at all: made, not set aside, and said so.
        let work = identity_work(
            &keychain(false, PasswordItemState::Missing),
            &Held::Nothing,
            false,
            now(),
        );
        assert_eq!((work.action, work.rebuild_store), (Action::Create, false));
        assert!(
            work.detail.contains("there is no okta.keychain"),
            "{}",
            work.detail
        );
        let file = identity_work(&file_store(), &Held::Nothing, false, now());
        assert!(
            !file.detail.contains("okta.keychain"),
            "a file store has no keychain: {}",
            file.detail
        );
    }

    #[test]
    fn the_verdict_is_the_first_blocker_in_chain_order_else_ready_with_the_certificates() {
        let step = |link, blocker: Option<Blocker>| Step {
            blocker,
            ..Step::new(link)
        };
        let mut plan = Plan {
            blocker: None,
            steps: vec![step("identity store", None), step("renewal job", None)],
            certificate: None,
        };
        assert_eq!(plan.verdict(), Verdict::Ready { certificates: 0 });
        assert_eq!(plan.verdict().short(), "Ready");
        plan.certificate = Some("no certificate is stored".into());
        assert_eq!(plan.verdict().to_string(), "Ready: 1 certificate");
        plan.steps[1].blocker = Some(Blocker::status(HealthStatus::RenewalJobMissing, "x"));
        plan.steps[0].blocker = Some(Blocker::status(HealthStatus::ClockWrong, "clock"));
        assert_eq!(plan.verdict().short(), "Blocked: Clock Wrong");
        assert_eq!(plan.verdict().to_string(), "Blocked: Clock Wrong: clock");
        plan.blocker = Some(Blocker::status(HealthStatus::NotConfigured, "no org"));
        assert_eq!(plan.verdict().short(), "Blocked: Not Configured");
        assert!(!plan.verdict().is_ready());
        assert!(Verdict::Ready { certificates: 1 }.is_ready());
    }

    #[test]
    fn actions_are_the_steps_links_and_actions_in_chain_order_and_read_as_their_words() {
        let step = |link, action| Step {
            action,
            ..Step::new(link)
        };
        let plan = Plan {
            blocker: None,
            steps: vec![
                step("identity store", Action::Adopt),
                step("renewal job", Action::Create),
            ],
            certificate: None,
        };
        assert_eq!(
            plan.actions(),
            vec![
                ("identity store", Action::Adopt),
                ("renewal job", Action::Create)
            ]
        );
        for action in Action::ALL {
            assert_eq!(action.to_string(), action.as_str());
        }
        assert_eq!(Action::SetAside.to_string(), "set aside");
    }

    #[test]
    fn an_action_taken_is_the_planned_one_only_when_something_changed() {
        let changed = vec!["written".to_owned()];
        assert_eq!(Action::taken(Action::Create, &changed), Action::Create);
        assert_eq!(Action::taken(Action::Create, &[]), Action::Nothing);
        assert_eq!(Action::taken(Action::Nothing, &changed), Action::Replace);
        let words: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            words,
            [
                "adopt",
                "create",
                "replace",
                "set aside",
                "remove",
                "nothing"
            ]
        );
    }
}
