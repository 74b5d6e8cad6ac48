//! The Mac at the real root: the identity in okta.keychain, Chrome and Edge policy in their
//! preference domains, Safari identity preferences, the renewal job loaded into the user's
//! launchd domain, and root runs re-executed in the console user's session.
//!
//! The preference-domain model (`preferences`) is pure and tested everywhere; the calls into
//! macOS are compiled for macOS only.

pub mod preferences;

#[cfg(target_os = "macos")]
mod identity_prefs;
#[cfg(target_os = "macos")]
pub use imp::MacHost;

#[cfg(any(target_os = "macos", test))]
use crate::{
    chain::{browser::BrowserPolicy, job::JobControl, Chain},
    integrations::safari::IdentityPreferences,
};

/// The Mac's links in chain order, over the given backends: `MacHost::chain` passes the real
/// ones, and the chain tests check this very list on any OS.
#[cfg(any(target_os = "macos", test))]
pub(crate) fn chain_with(
    browser: Box<dyn BrowserPolicy>,
    safari: Box<dyn IdentityPreferences>,
    control: std::rc::Rc<dyn JobControl>,
) -> Chain {
    use crate::chain::allowlist::AllowlistLink;
    use crate::chain::browser::BrowserPolicyLink;
    use crate::chain::identity::{IdentityLink, RenewalLink};
    use crate::chain::job::{BackgroundTaskLink, JobLink};
    use crate::chain::legacy::LegacyTaskLink;
    use crate::chain::safari::SafariLink;
    Chain::new(vec![
        Box::new(IdentityLink),
        Box::new(RenewalLink),
        Box::new(AllowlistLink::for_this_agent()),
        Box::new(BrowserPolicyLink { backend: browser }),
        Box::new(SafariLink::new(safari)),
        Box::new(JobLink {
            control: control.clone(),
        }),
        Box::new(BackgroundTaskLink {
            control: control.clone(),
        }),
        Box::new(LegacyTaskLink { control }),
    ])
}

#[cfg(target_os = "macos")]
mod imp {
    use super::identity_prefs::KeychainIdentityPreferences;
    use crate::chain::browser::BrowserPolicy;
    use crate::chain::job::JobControl;
    use crate::chain::{Chain, LinkError, UserHome};
    use crate::config::StoreSpec;
    use crate::host::{Host, HostError};
    use crate::paths::Layout;
    use crate::platform::launchd;
    use crate::platform::session::{LaunchctlSession, UserSession};
    use crate::platform::Platform;
    use crate::store::{FileStore, IdentityStore, KeychainStore};
    use std::path::Path;
    use std::rc::Rc;

    pub struct MacHost {
        platform: Box<dyn Platform>,
        session: LaunchctlSession,
    }

    impl MacHost {
        pub fn new() -> MacHost {
            MacHost {
                platform: crate::platform::current(),
                session: LaunchctlSession,
            }
        }
    }

    /// Chrome's and Edge's preference domains, through CFPreferences.
    struct CfPreferences;

    impl BrowserPolicy for CfPreferences {
        fn present(&self, entry: &str) -> bool {
            super::preferences::present_everywhere(entry)
        }
        fn put(&self, entry: &str, older: &[String]) -> Result<Vec<String>, LinkError> {
            let mut changes: Vec<String> = older
                .iter()
                .flat_map(|old| super::preferences::remove(old))
                .collect();
            changes.extend(super::preferences::apply(entry));
            Ok(changes)
        }
        fn take_out(&self, entries: &[String]) -> Result<Vec<String>, LinkError> {
            Ok(entries
                .iter()
                .flat_map(|entry| super::preferences::remove(entry))
                .collect())
        }
        fn survey(
            &self,
            entry: Option<&str>,
            older_hosts: &[String],
        ) -> Result<Vec<crate::integrations::chrome::Seen>, LinkError> {
            Ok(super::preferences::survey(entry, older_hosts))
        }
    }

    /// A launchctl that hung says nothing about the job: the run is deferred.
    fn launchd_error(e: launchd::LaunchdError) -> LinkError {
        match e {
            launchd::LaunchdError::TimedOut(stopped) => LinkError::TimedOut(stopped),
            e => LinkError::Platform(e.to_string()),
        }
    }

    /// The user's launchd GUI domain (`gui/<uid>`) and Background Task Management.
    struct Launchd {
        uid: Option<u32>,
    }

    impl JobControl for Launchd {
        fn load(&self, label: &str, plist: &Path) -> Result<(), LinkError> {
            let Some(uid) = self.uid else {
                return Ok(());
            };
            launchd::reload(uid, label, plist).map_err(launchd_error)
        }
        fn unload(&self, label: &str) -> Result<bool, LinkError> {
            let Some(uid) = self.uid else {
                return Ok(false);
            };
            launchd::unload(uid, label).map_err(launchd_error)
        }
        fn is_loaded(&self, label: &str) -> Option<bool> {
            launchd::is_loaded(self.uid?, label)
        }
        fn login_item_enabled(&self, label: &str) -> Option<bool> {
            launchd::login_item_enabled(self.uid?, label)
        }
        fn runs_inside(&self, label: &str) -> bool {
            launchd::runs_inside(label)
        }
        fn loaded_arguments(&self, label: &str) -> Option<Vec<String>> {
            launchd::loaded_arguments(self.uid?, label)
        }
    }

    impl Host for MacHost {
        fn describe(&self) -> &'static str {
            "macOS"
        }

        fn root(&self) -> &Path {
            Path::new("/")
        }

        fn layout(&self) -> Layout {
            Layout::Mac
        }

        fn platform(&self) -> &dyn Platform {
            self.platform.as_ref()
        }

        fn open_store(
            &self,
            spec: Option<&StoreSpec>,
            home: &UserHome,
        ) -> Result<Box<dyn IdentityStore>, HostError> {
            match spec {
                None | Some(StoreSpec::Keychain) => Ok(Box::new(KeychainStore::new(home))),
                Some(StoreSpec::File(dir)) => Ok(Box::new(FileStore::new(dir.clone()))),
            }
        }

        fn chain(&self, home: &UserHome) -> Chain {
            let control: Rc<dyn JobControl> = Rc::new(Launchd {
                uid: crate::platform::uid_of(&home.user),
            });
            super::chain_with(
                Box::new(CfPreferences),
                Box::new(KeychainIdentityPreferences::new(home)),
                control,
            )
        }

        fn user_session(&self) -> Option<&dyn UserSession> {
            Some(&self.session)
        }

        fn self_checks(
            &self,
            cx: &crate::chain::Context<'_>,
            report: &mut crate::selftest::Report,
        ) {
            crate::selftest::macos::checks(cx, report);
        }
    }
}
