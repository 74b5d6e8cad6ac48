//! # devicetrust
//!
//! Puts a device-trust client certificate on every managed Mac and keeps it healthy: the
//! replacement for Okta's Python "Device Registration Task".
//!
//! The crate is layered; each layer knows only those below it (`docs/architecture.md`):
//!
//! * [`app`] and [`cli`]: the command-line contract; one `ERROR:` line and an exit code.
//! * [`agent`]: the workflows, one file each (enroll, renew and repair, status, uninstall),
//!   orchestration only. Its rule: nothing is stored until the new certificate is checked, and
//!   the old identity is removed only after the new one is stored.
//! * [`host`]: what differs between a Mac, Linux and a test root, chosen once.
//! * [`chain`]: every artifact the agent owns on a device as a link (observe, apply, remove), in
//!   the order of the health statuses.
//! * [`config`] (flags, environment, profile, file, then [`record`], the enrollment record),
//!   [`renewal`] (when this device renews), [`health`] (the statuses), [`lock`], [`migration`].
//! * [`integrations`]: browser policy, the key's allowlist, Safari, the renewal job, the NSS
//!   database (pure models and their file formats).
//! * [`okta`] + [`http`] and [`scep`]: the wire protocols, with deadlines and bounded retries.
//! * [`store`]: where the identity lives (the macOS keychain, or a private directory), replaced
//!   crash-safely; it accepts only a checked identity ([`pki::CheckedIdentity`]).
//! * [`pki`], [`platform`], [`codesign`]: keys and certificates, device facts, code signatures.
//! * [`securefs`]: file access for a root process in a user's home (no link followed, exact
//!   owner and mode, atomic replacement) and capped reads of the files an admin names.
//! * [`selftest`]: `devicetrust selftest`, the host's proof of what the agent relies on.
//! * [`sim`] (feature `sim`): an Okta-compatible service for the demo and the tests.
//!
//! Secrets (the org token, private keys) travel as [`secret::Secret`] or `Zeroizing` buffers,
//! never through argv, log lines or error messages.

pub mod agent;
pub mod app;
pub mod chain;
pub mod cli;
pub mod codesign;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod dns;
pub mod failpoint;
pub mod fsutil;
pub mod health;
pub mod host;
pub mod http;
pub mod integrations;
pub mod lock;
pub mod migration;
pub mod okta;
pub mod output;
pub mod partition;
pub mod paths;
pub mod pki;
pub mod platform;
pub mod record;
pub mod renewal;
pub mod report;
pub mod scep;
pub mod secret;
pub mod securefs;
pub mod selftest;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod timefmt;
