//! What the device must look like besides the identity itself (spec section 6): browser
//! certificate auto-selection, the key's app allowlist, Safari identity preferences, the renewal job.
//!
//! Each module is a pure model that tests on any OS; the macOS calls (CFPreferences, keychain
//! partition lists, `SecIdentitySetPreferred`, `launchctl`) are thin backends over these models.
//! Each module also exposes the boolean the health chain needs (`chrome::is_present`,
//! `allowlist::is_complete`, `schedule::is_installed`).

pub mod allowlist;
pub mod chrome;
pub mod nss;
pub mod safari;
pub mod schedule;
