//! The checks of a Mac: the keychain store's in a throwaway keychain, then the user's real
//! state read only (the user's session, okta.keychain, the password item, the identity, the
//! renewal job loaded, Chrome's and Edge's policy values). The keychain's are measured by
//! `store::keychain::trial` and judged by `selftest::keychain`.

use super::{keychain, Outcome, Report};
use crate::chain::Context;
use crate::integrations::{chrome, schedule};
use crate::platform::launchd;
use crate::store::keychain::trial;

pub fn checks(cx: &Context<'_>, report: &mut Report) {
    keychain::throwaway_checks(&trial::throwaway(), report);
    keychain::real_state_checks(&trial::real_state(cx.home), report);
    let job = match crate::platform::uid_of(&cx.home.user) {
        Some(uid) => match launchd::is_loaded(uid, schedule::LABEL) {
            Some(true) => Ok(format!("{} loaded in gui/{uid}", schedule::LABEL)),
            Some(false) => Err(format!("{} is not loaded in gui/{uid}", schedule::LABEL)),
            None => Err("launchctl could not be asked".to_owned()),
        },
        None => Err(format!("no uid for {}", cx.home.user)),
    };
    report.result("LaunchAgent loaded", job);
    let Some(host) = cx.cert_auth_host() else {
        report.add(
            "browser policy",
            Outcome::Skip,
            "the certAuthDomain is unknown (not enrolled yet)",
        );
        return;
    };
    let issuer = cx
        .held
        .certificate()
        .map(chrome::IssuerFilter::of)
        .unwrap_or_else(chrome::IssuerFilter::okta);
    let entry = chrome::policy_entry(host, &issuer);
    for domain in chrome::MACOS_DOMAINS {
        report.result(
            format!("browser policy ({domain})"),
            match crate::host::macos::preferences::present_in(domain, &entry) {
                Some(true) => Ok(format!("{} holds {entry}", chrome::POLICY_KEY)),
                Some(false) => Err(format!("{} lacks {entry}", chrome::POLICY_KEY)),
                None => Err(format!("{} cannot be read", chrome::POLICY_KEY)),
            },
        );
    }
}
