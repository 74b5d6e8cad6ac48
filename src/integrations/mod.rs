//! What the device must look like besides the identity itself (spec section 6): browser
//! certificate auto-selection, the key's app allowlist, Safari identity preferences, the renewal job,
//! and on Linux the identity in the user's NSS database, where Chrome and Chromium look for it.
//!
//! Each module is a pure model that tests on any OS; the macOS calls (CFPreferences, keychain
//! partition lists, `SecIdentitySetPreferred`, `launchctl`) are thin backends over these models.
//! Each module also exposes the boolean the health chain needs (`chrome::is_present`,
//! `allowlist::is_complete`, `schedule::is_installed`, `nss::Observation::is_usable`). `nss` is
//! the exception to "pure model": it drives NSS's own tools, behind a runner tests can replace.

pub mod allowlist;
pub mod chrome;
pub mod nss;
pub mod safari;
pub mod schedule;
