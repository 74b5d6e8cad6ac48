//! DNS host names the agent hands to browsers: the certAuthDomain (Chrome's policy pattern,
//! Safari's identity preference) and the org's cell (Safari's `*.<cell>` preference).
//!
//! Whatever names such a host decides which sites get the device certificate without a prompt,
//! so every source (flags, profile, file, enrollment record, Okta's metadata) goes through
//! [`host_name`]: letters, digits and hyphens in dot-separated labels, no scheme, path, port or
//! wildcard, and never a public suffix alone (`com`, `co.uk`, `github.io`).

/// Why a value is not a host name the agent will write into a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostNameError {
    #[error("it is empty")]
    Empty,
    #[error("{0:?} is not a DNS host name: {1}")]
    Invalid(String, &'static str),
    #[error(
        "{0:?} is a public suffix: a policy naming it would hand the certificate to every site \
         below it"
    )]
    PublicSuffix(String),
}

/// The longest DNS name, in its text form without the trailing dot (RFC 1035 §2.3.4).
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// `value` as a lower-case DNS host name with at least two labels, checked as the module says.
/// A trailing dot (the fully qualified form) is dropped.
pub fn host_name(value: &str) -> Result<String, HostNameError> {
    let name = value.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return Err(HostNameError::Empty);
    }
    let invalid = |why| Err(HostNameError::Invalid(value.trim().to_owned(), why));
    if name.len() > MAX_NAME {
        return invalid("longer than 253 characters");
    }
    if name.contains("://") {
        return invalid("it has a scheme; give the host alone");
    }
    if name.contains('*') {
        return invalid("wildcards are not host names");
    }
    if name.contains(':') {
        return invalid("it has a port; give the host alone");
    }
    if name.contains(['/', '?', '#']) {
        return invalid("it has a path; give the host alone");
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return invalid("it has an empty label");
        }
        if label.len() > MAX_LABEL {
            return invalid("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return invalid("only letters, digits, hyphens and dots may appear");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid("a label starts or ends with a hyphen");
        }
    }
    if labels.len() < 2 {
        return Err(HostNameError::PublicSuffix(name));
    }
    // An IPv4 address has a numeric last label; no top-level domain does (RFC 3696 §2).
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return invalid("it is an IP address");
    }
    if psl::suffix_str(&name) == Some(name.as_str()) {
        return Err(HostNameError::PublicSuffix(name));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_device_trust_hosts_and_cells_pass_lower_cased() {
        for (given, expected) in [
            ("acme.devicetrust.okta.com", "acme.devicetrust.okta.com"),
            (
                "OK12-DeviceTrust.okta-emea.com.",
                "ok12-devicetrust.okta-emea.com",
            ),
            ("okta.com", "okta.com"),
            ("oktapreview.com", "oktapreview.com"),
            ("corp.example.co.uk", "corp.example.co.uk"),
            ("sim-devicetrust.localhost", "sim-devicetrust.localhost"),
        ] {
            assert_eq!(host_name(given).as_deref(), Ok(expected), "{given}");
        }
    }

    #[test]
    fn what_is_not_a_single_host_is_refused() {
        for bad in [
            "*",
            "*.okta.com",
            "https://acme.okta.com",
            "acme.okta.com:8443",
            "acme.okta.com/path",
            "acme..okta.com",
            "-acme.okta.com",
            "acme-.okta.com",
            "acme okta.com",
            "acme_x.okta.com",
            "127.0.0.1",
            "[::1]",
            "a\u{e9}.okta.com",
        ] {
            assert!(
                matches!(host_name(bad), Err(HostNameError::Invalid(..))),
                "{bad}: {:?}",
                host_name(bad)
            );
        }
        assert_eq!(host_name("  "), Err(HostNameError::Empty));
        let long_label = format!("{}.okta.com", "a".repeat(64));
        assert!(host_name(&long_label).is_err());
        let long_name = format!("{}okta.com", "abcdefghi.".repeat(25));
        assert!(long_name.len() > 253);
        assert!(host_name(&long_name).is_err());
    }

    #[test]
    fn a_public_suffix_alone_is_refused() {
        for suffix in ["com", "co.uk", "github.io", "localhost", "intranet"] {
            assert_eq!(
                host_name(suffix),
                Err(HostNameError::PublicSuffix(suffix.to_owned())),
                "{suffix}"
            );
        }
        // One label below a suffix is a site of its own.
        assert!(host_name("acme.github.io").is_ok());
    }
}
