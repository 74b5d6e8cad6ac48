//! Secrets (org token, SCEP challenge, keychain password) as a type that cannot leak by accident.
//!
//! `Secret` has no `Display`, its `Debug` prints `[redacted]`, and its memory is wiped on drop, so a
//! secret can reach a log line or an error message only through an explicit `expose()`.

use std::fmt;
use zeroize::Zeroizing;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret, trimming the surrounding whitespace and newline a file or `echo` adds.
    pub fn new(value: impl Into<String>) -> Self {
        let value: String = value.into();
        let trimmed = value.trim();
        if trimmed.len() == value.len() {
            Secret(Zeroizing::new(value))
        } else {
            let owned = trimmed.to_owned();
            drop(Zeroizing::new(value));
            Secret(Zeroizing::new(owned))
        }
    }

    /// The secret itself: for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-org-token\n");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2-org-token");
    }
}
