//! What differs between a Mac, a Linux desktop and a sandbox root, chosen once at start-up.
//!
//! A host decides which identity store is the default, which links make up the chain and with
//! which backends (policy files or preference domains, a plain job file or one loaded into
//! launchd), and whether a root run re-executes in the user's session. `for_root` is the one
//! place that asks which OS this is and whether `--root` is the real root: the workflows never
//! do, so the same code runs on a Mac, on Linux and in the tests' temporary roots.

mod files;
pub mod macos;

use crate::chain::{Chain, UserHome};
use crate::config::StoreSpec;
use crate::paths::Layout;
use crate::platform::Platform;
use crate::store::IdentityStore;
use std::path::Path;

pub use files::FilesHost;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "the keychain store is only available on macOS at the real root; use --store file:DIR"
    )]
    KeychainUnavailable,
}

/// One platform's choices.
pub trait Host {
    /// `macOS`, `Linux` or `sandbox root`, for `status` and debug lines.
    fn describe(&self) -> &'static str;
    fn root(&self) -> &Path;
    fn layout(&self) -> Layout;
    /// Device facts and users.
    fn platform(&self) -> &dyn Platform;
    /// The identity store `spec` names, or this host's default.
    fn open_store(
        &self,
        spec: Option<&StoreSpec>,
        home: &UserHome,
    ) -> Result<Box<dyn IdentityStore>, HostError>;
    /// The links of the chain, in the order of the health statuses, with this host's backends.
    fn chain(&self, home: &UserHome) -> Chain;
    /// How root reaches the user's own session (the keychain, preferences and launchd domain a
    /// root process cannot use for them); `None` where a root run acts directly.
    fn user_session(&self) -> Option<&dyn crate::platform::session::UserSession> {
        None
    }
    /// `devicetrust selftest`'s checks of this host, over what is stored now (read only).
    fn self_checks(&self, cx: &crate::chain::Context<'_>, report: &mut crate::selftest::Report) {
        crate::selftest::files::checks(cx, report);
    }
}

/// The host for this run: the real Mac at `/` on macOS, else files under the root (Linux at
/// any root, and a sandbox root on a Mac, so `demo` never touches the real keychain).
pub fn for_root(root: &Path) -> Box<dyn Host> {
    #[cfg(target_os = "macos")]
    if root == Path::new("/") {
        return Box::new(macos::MacHost::new());
    }
    Box::new(FilesHost::new(root, Layout::native()))
}
