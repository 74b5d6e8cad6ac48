//! # devicetrust
//!
//! Puts a device-trust client certificate on every managed Mac and keeps it healthy: the
//! replacement for Okta's Python "Device Registration Task".
//!
//! The crate is layered; each layer knows only those below it:
//!
//! * [`app`] and [`cli`]: the command-line contract; one `ERROR:` line and an exit code.
//! * [`agent`]: the workflows (enroll, renew, status, uninstall), orchestration only. Its rule:
//!   nothing is stored until the new certificate is checked, and the old identity is removed
//!   only after the new one is stored.
//! * [`okta`] and [`http`]: Okta's device-trust wire protocol over rustls, with timeouts and
//!   bounded, jittered retries.
//! * [`pki`]: RSA keys, the CSR, certificate checks, the CMS renewal token, a small CA.
//! * [`store`]: where the identity lives (the macOS keychain, or a private directory), replaced
//!   crash-safely; [`state`] remembers how the last renewal went.
//! * [`health`]: the dependency chain that turns facts into one Jamf-friendly status.
//! * [`integrations`]: what the device must look like besides the identity: browser
//!   certificate auto-selection, the key's app allowlist, Safari identity preferences and the
//!   renewal job (pure models; the macOS calls sit behind them).
//! * [`platform`]: device facts and the console user; [`migration`] plans the takeover from
//!   Okta's Python task.
//! * [`securefs`]: file access for a root process in a user's home (no link followed, exact
//!   owner and mode, atomic replacement) and capped reads of the files an admin names.
//! * [`codesign`]: an app's TeamIdentifier from its code signature (`devicetrust teamid`).
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
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
pub mod timefmt;
