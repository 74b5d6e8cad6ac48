//! Safari's identity preferences: which certificate to present, per service name, without asking.
//!
//! This module names the services and defines the store as a trait; the macOS backend implements
//! it with `SecIdentitySetPreferred`, tests with an in-memory map.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafariError {
    #[error("{0:?} is not a host name an identity preference can name")]
    BadHost(String),
    #[error("cannot {action} the identity preference for {name}: {reason}")]
    Backend {
        action: &'static str,
        name: String,
        reason: String,
    },
}

/// The service names to prefer our identity for: the bare certAuthDomain host and `*.<cell>`.
///
/// These are the names `security set-identity-preference -c "Okta MTLS" -s NAME` stores and
/// Okta's task used. Per Apple's `SecIdentity.cpp`, a URL-form name (one with a scheme) set by
/// any caller but `security` or Keychain Access is stored with that caller's app identifier
/// appended, which Safari never finds; a bare host or `*.domain` is stored as given whoever sets
/// it, and a lookup for a URL tries the host forms, so the bare host serves Safari.
pub fn identity_preference_hosts(cert_auth_host: &str, org_cell: Option<&str>) -> Vec<String> {
    let host = bare_host(cert_auth_host);
    let mut names = Vec::with_capacity(2);
    if !host.is_empty() {
        names.push(host.to_owned());
    }
    if let Some(cell) = org_cell.map(bare_host).filter(|c| !c.is_empty()) {
        let wildcard = format!("*.{cell}");
        if !names.contains(&wildcard) {
            names.push(wildcard);
        }
    }
    names
}

/// Names earlier setups used for the same host, removed with ours: this agent's first version
/// set `https://<host>/`.
pub fn legacy_names(cert_auth_host: &str) -> Vec<String> {
    let host = bare_host(cert_auth_host);
    if host.is_empty() {
        Vec::new()
    } else {
        vec![format!("https://{host}/")]
    }
}

/// Tolerates a URL where a host is expected (state files and metadata have held both).
fn bare_host(value: &str) -> &str {
    let value = value.trim();
    let value = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .unwrap_or(value);
    value.trim_end_matches('/')
}

/// Where identity preferences live: the user's keychain on macOS, a map in tests.
pub trait IdentityPreferences {
    /// Prefers the identity whose certificate is `certificate_der` for `name`.
    fn set(&mut self, name: &str, certificate_der: &[u8]) -> Result<(), SafariError>;
    /// Removes the preference for `name`; returns whether there was one (absent is no error).
    fn remove(&mut self, name: &str) -> Result<bool, SafariError>;
    /// The preferred certificate for `name`, if any.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SafariError>;
}

/// Points every name at our certificate; returns the names that changed (so a renewal, which
/// changes the certificate, re-points them all, and a repair touches only what is wrong).
pub fn apply(
    prefs: &mut dyn IdentityPreferences,
    names: &[String],
    certificate_der: &[u8],
) -> Result<Vec<String>, SafariError> {
    let mut changed = Vec::new();
    for name in names {
        if prefs.get(name)?.as_deref() != Some(certificate_der) {
            prefs.set(name, certificate_der)?;
            changed.push(name.clone());
        }
    }
    Ok(changed)
}

/// Whether every name prefers our certificate.
pub fn is_complete(
    prefs: &dyn IdentityPreferences,
    names: &[String],
    certificate_der: &[u8],
) -> Result<bool, SafariError> {
    for name in names {
        if prefs.get(name)?.as_deref() != Some(certificate_der) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes the preferences at uninstall. A name goes when it points at one of `ours` (current
/// or older device-trust certificates) or at nothing that still exists (the old task's
/// preference after its certificate was replaced); a preference the user set for another
/// identity on `*.okta.com` is theirs.
pub fn remove_ours(
    prefs: &mut dyn IdentityPreferences,
    names: &[String],
    ours: &[&[u8]],
) -> Result<Vec<String>, SafariError> {
    let mut removed = Vec::new();
    for name in names {
        let goes = match prefs.get(name)? {
            Some(der) => ours.contains(&der.as_slice()),
            None => true,
        };
        if goes && prefs.remove(name)? {
            removed.push(name.clone());
        }
    }
    Ok(removed)
}

/// Identity preferences in memory, for tests and the portable store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryIdentityPreferences {
    prefs: BTreeMap<String, Vec<u8>>,
}

impl MemoryIdentityPreferences {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.prefs.keys().map(String::as_str)
    }
}

impl IdentityPreferences for MemoryIdentityPreferences {
    fn set(&mut self, name: &str, certificate_der: &[u8]) -> Result<(), SafariError> {
        if name.is_empty() || name.chars().any(char::is_whitespace) {
            return Err(SafariError::BadHost(name.to_owned()));
        }
        self.prefs.insert(name.to_owned(), certificate_der.to_vec());
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<bool, SafariError> {
        Ok(self.prefs.remove(name).is_some())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SafariError> {
        Ok(self.prefs.get(name).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_host_url_and_the_cell_wildcard() {
        assert_eq!(
            identity_preference_hosts("abc-devicetrust.okta.com", Some("okta.com")),
            vec!["abc-devicetrust.okta.com", "*.okta.com"]
        );
        assert_eq!(
            identity_preference_hosts("https://abc-devicetrust.okta.com/", Some("okta.com")),
            vec!["abc-devicetrust.okta.com", "*.okta.com"]
        );
        // An org without a cell (a bare IP in tests) gets the host only.
        assert_eq!(
            identity_preference_hosts("127.0.0.1:8443", None),
            vec!["127.0.0.1:8443"]
        );
        assert_eq!(
            legacy_names("abc-devicetrust.okta.com"),
            vec!["https://abc-devicetrust.okta.com/"]
        );
    }

    #[test]
    fn apply_points_every_name_at_the_certificate_and_is_idempotent() {
        let names = identity_preference_hosts("abc-devicetrust.okta.com", Some("okta.com"));
        let mut prefs = MemoryIdentityPreferences::default();
        assert!(!is_complete(&prefs, &names, b"cert-1").unwrap());
        assert_eq!(apply(&mut prefs, &names, b"cert-1").unwrap(), names);
        assert!(is_complete(&prefs, &names, b"cert-1").unwrap());
        assert!(apply(&mut prefs, &names, b"cert-1").unwrap().is_empty());
        // A renewed certificate moves every preference.
        assert_eq!(apply(&mut prefs, &names, b"cert-2").unwrap(), names);
        assert!(!is_complete(&prefs, &names, b"cert-1").unwrap());
    }

    #[test]
    fn uninstall_removes_only_preferences_pointing_at_our_certificates() {
        let names = identity_preference_hosts("abc-devicetrust.okta.com", Some("okta.com"));
        let mut prefs = MemoryIdentityPreferences::default();
        apply(&mut prefs, &names, b"ours").unwrap();
        prefs.set("*.okta.com", b"users-own").unwrap();
        let removed = remove_ours(&mut prefs, &names, &[b"ours", b"older"]).unwrap();
        assert_eq!(removed, vec!["abc-devicetrust.okta.com"]);
        assert_eq!(prefs.names().collect::<Vec<_>>(), vec!["*.okta.com"]);
        // Nothing left to remove: nothing reported.
        assert!(remove_ours(&mut prefs, &names[..1], &[b"ours"])
            .unwrap()
            .is_empty());
    }
}
