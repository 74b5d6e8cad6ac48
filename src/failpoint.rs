//! Crash injection for tests: `DEVICETRUST_FAILPOINT=<name>` aborts the process at that point.
//!
//! The crash-safety promise of the store ("old or new identity, never none") can only be tested
//! by dying between its steps, the way a power cut or `kill -9` would.

/// Aborts the process, without unwinding or cleanup, if the named failpoint is armed.
pub fn hit(name: &str) {
    if std::env::var_os("DEVICETRUST_FAILPOINT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}
