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

    /// `text` with the secret blanked, and with any run of 8 or more of its leading or
    /// trailing characters blanked too: a page that quotes the request may cut or wrap it, and a
    /// 31-character prefix of a 32-character token is as good as the token. Done before the text
    /// is cut or shown anywhere.
    pub fn redact(&self, text: &str) -> String {
        let secret = self.expose().as_bytes();
        if secret.is_empty() {
            return text.to_owned();
        }
        let min = MIN_FRAGMENT.min(secret.len());
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            // The longest piece of the secret that starts here: a prefix of it, or a suffix.
            let prefix = common_prefix(rest, secret);
            let suffix = (1..secret.len())
                .map(|k| &secret[k..])
                .filter(|tail| tail.len() >= min)
                .find(|tail| rest.starts_with(tail))
                .map_or(0, <[u8]>::len);
            let matched = prefix.max(suffix);
            if matched >= min && text.is_char_boundary(i + matched) {
                out.push_str(REDACTED);
                i += matched;
                continue;
            }
            let width = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + width]);
            i += width;
        }
        out
    }
}

/// What stands where a secret was.
pub const REDACTED: &str = "[redacted]";

/// The environment variables of cli.md that hold a secret or name its file: the configuration
/// reads them, and a root run's re-execution never passes them on through the environment.
pub mod vars {
    pub const ORG_TOKEN: &str = "DEVICETRUST_ORG_TOKEN";
    pub const ORG_TOKEN_FILE: &str = "DEVICETRUST_ORG_TOKEN_FILE";
    pub const SCEP_CHALLENGE: &str = "DEVICETRUST_SCEP_CHALLENGE";
    pub const SCEP_CHALLENGE_FILE: &str = "DEVICETRUST_SCEP_CHALLENGE_FILE";
}
/// The shortest piece of a secret that is blanked on its own.
const MIN_FRAGMENT: usize = 8;

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
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
    fn the_secret_and_its_long_prefixes_and_suffixes_are_blanked() {
        let s = Secret::new("AbCdEfGh0123456789iJkLmNoPqRsTuV");
        let token = s.expose().to_owned();
        let echo = format!("<p>orgToken={token}&amp;x=1</p>");
        assert_eq!(s.redact(&echo), "<p>orgToken=[redacted]&amp;x=1</p>");
        // A page that cut the token after 31 characters.
        let cut = format!("value \"{}…\"", &token[..31]);
        assert!(!s.redact(&cut).contains(&token[..8]), "{}", s.redact(&cut));
        // Its tail, wrapped onto the next line.
        let tail = format!("...\n{} end", &token[20..]);
        assert_eq!(s.redact(&tail), "...\n[redacted] end");
        // Seven characters are not a fragment worth blanking (and would blank ordinary words).
        assert_eq!(s.redact("AbCdEfG"), "AbCdEfG");
        assert_eq!(s.redact("naïve text"), "naïve text");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2-org-token\n");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2-org-token");
    }
}
