//! The host that keeps everything in files under a root: Linux at `/`, and any sandbox root
//! (tests, `demo`) on any OS. The identity is in the file store, browser policy in managed
//! JSON files, the renewal job in unit files that the user's systemd picks up at login.

use super::{Host, HostError};
use crate::chain::allowlist::AllowlistLink;
use crate::chain::browser::{BrowserPolicyLink, PolicyFiles};
use crate::chain::identity::{IdentityLink, RenewalLink};
use crate::chain::job::{FilesOnly, JobLink};
use crate::chain::legacy::LegacyTaskLink;
use crate::chain::nss::NssLink;
use crate::chain::{Chain, Link, UserHome};
use crate::config::StoreSpec;
use crate::paths::Layout;
use crate::platform::Platform;
use crate::store::{FileStore, IdentityStore};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub struct FilesHost {
    root: PathBuf,
    layout: Layout,
    platform: Box<dyn Platform>,
}

impl FilesHost {
    pub fn new(root: &Path, layout: Layout) -> FilesHost {
        FilesHost {
            root: root.to_owned(),
            layout,
            platform: crate::platform::current(),
        }
    }
}

impl Host for FilesHost {
    fn describe(&self) -> &'static str {
        if self.root == Path::new("/") {
            "Linux"
        } else {
            "sandbox root"
        }
    }

    fn root(&self) -> &Path {
        &self.root
    }

    fn layout(&self) -> Layout {
        self.layout
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
            None => Ok(Box::new(FileStore::at(home.default_store_place()))),
            // Paths given explicitly are used as given, not under the root.
            Some(StoreSpec::File(dir)) => Ok(Box::new(FileStore::new(dir.clone()))),
            Some(StoreSpec::Keychain) => Err(HostError::KeychainUnavailable),
        }
    }

    fn chain(&self, _: &UserHome) -> Chain {
        let control = Rc::new(FilesOnly);
        let mut links: Vec<Box<dyn Link>> = vec![
            Box::new(IdentityLink),
            Box::new(RenewalLink),
            Box::new(AllowlistLink::for_this_agent()),
        ];
        // Chrome and Chromium on Linux read client identities from the user's NSS database.
        if self.layout == Layout::Linux {
            links.push(Box::new(NssLink::default()));
        }
        links.push(Box::new(BrowserPolicyLink {
            backend: Box::new(PolicyFiles {
                root: self.root.clone(),
            }),
        }));
        links.push(Box::new(JobLink {
            control: control.clone(),
        }));
        links.push(Box::new(LegacyTaskLink { control }));
        Chain::new(links)
    }
}
