//! What the agent needs to know about the machine it runs on: device identity, users, running
//! processes, and the OS tools (launchd, the user's session) the macOS host drives.
//!
//! `Platform` is the seam for facts: the macOS implementation asks IOKit and
//! SystemConfiguration, the portable one reads what a Unix system offers, and tests override
//! the facts by flags.

#[cfg(target_os = "macos")]
pub(crate) mod cf;
pub mod children;
pub mod launchd;
pub mod processes;
pub mod session;
// Compiled everywhere: its pure parts (console-user filter, User-Agent forms) are tested on
// Linux; the IOKit/SystemConfiguration backend inside is macOS-only.
mod macos;
// On macOS only its password-database lookup is used.
#[cfg(unix)]
#[cfg_attr(target_os = "macos", allow(dead_code))]
mod unix;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("cannot determine the device's hardware UUID ({0}); pass --device-uuid")]
    NoDeviceUuid(String),
    #[error("cannot determine the computer name ({0}); pass --device-name")]
    NoDeviceName(String),
}

/// The device as Okta sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFacts {
    pub uuid: String,
    pub display_name: String,
}

pub trait Platform {
    fn device_uuid(&self) -> Result<String, PlatformError>;
    fn device_name(&self) -> Result<String, PlatformError>;
    /// The user logged in at the console; `None` at the login window.
    fn console_user(&self) -> Option<String>;
    /// The home folder of `user` (before the root prefix).
    fn home_dir(&self, user: &str) -> PathBuf;
    /// `Intel` or `ARM`, as the User-Agent of Okta's task says it.
    fn arch(&self) -> &'static str {
        if cfg!(target_arch = "aarch64") {
            "ARM"
        } else {
            "Intel"
        }
    }
    /// The OS version in the User-Agent form `10_15_7`.
    fn os_version(&self) -> String;
}

/// The numeric user id of `user`, from the directory.
#[cfg(target_os = "macos")]
pub fn uid_of(user: &str) -> Option<u32> {
    unix::uid_of(user)
}

/// The platform this binary runs on.
pub fn current() -> Box<dyn Platform> {
    #[cfg(target_os = "macos")]
    {
        Box::new(macos::MacPlatform)
    }
    #[cfg(not(target_os = "macos"))]
    {
        Box::new(unix::UnixPlatform)
    }
}

/// Whether this process runs as root: such a run treats every user's home and keychain as
/// the user's to write, and takes no setting from there.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
