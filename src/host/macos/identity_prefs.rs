//! Safari's identity preferences on macOS (the host's backend of the Safari link): the `iprf`
//! items `security set-identity-preference -c "Okta MTLS" -s NAME` writes, set the same way.
//!
//! `set` takes our identity from okta.keychain (a keychain item, as `security -c` finds it) and
//! calls `SecIdentitySetPreferred(identity, NAME, NULL)`, key usage 0 like `security` without
//! `-u`. Names are bare hosts or `*.<cell>`, which Security stores as given whoever sets them
//! (`keychain_items::stored_preference_name`); a URL-form name, which it would store under the
//! agent's own app identifier where Safari never looks, is refused.
//!
//! `get` is `SecIdentityCopyPreferred`: exact for such names; for a URL it also answers from
//! the URL's parent paths and `*.<domain>` wildcards.

use crate::integrations::safari::{IdentityPreferences, SafariError};
use crate::paths::UserHome;
use crate::store::keychain::{identity_preference, set_identity_preference, status_text};
use crate::store::keychain_items::check_preference_name;
use crate::store::KeychainStore;

/// The user's identity preferences, pointing at identities in the user's okta.keychain.
pub struct KeychainIdentityPreferences {
    store: KeychainStore,
}

impl KeychainIdentityPreferences {
    pub fn new(home: &UserHome) -> Self {
        KeychainIdentityPreferences {
            store: KeychainStore::new(home),
        }
    }
}

fn failed(action: &'static str, name: &str, reason: impl std::fmt::Display) -> SafariError {
    SafariError::Backend {
        action,
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

impl IdentityPreferences for KeychainIdentityPreferences {
    fn set(&mut self, name: &str, certificate_der: &[u8]) -> Result<(), SafariError> {
        const ACTION: &str = "set";
        check_preference_name(name).map_err(|e| failed(ACTION, name, e))?;
        let identity = self
            .store
            .identity_with_certificate(certificate_der)
            .map_err(|e| failed(ACTION, name, e))?
            .ok_or_else(|| {
                failed(
                    ACTION,
                    name,
                    "the certificate has no identity in okta.keychain",
                )
            })?;
        set_identity_preference(Some(&identity), name).map_err(|s| {
            failed(
                ACTION,
                name,
                format!("SecIdentitySetPreferred: {}", status_text(s)),
            )
        })
    }

    /// Security clears a preference whether or not there was one, so "was there one" is what
    /// the lookup answered before and after.
    fn remove(&mut self, name: &str) -> Result<bool, SafariError> {
        let before = self.get(name)?;
        if before.is_none() {
            return Ok(false);
        }
        set_identity_preference(None, name).map_err(|s| {
            failed(
                "remove",
                name,
                format!("SecIdentitySetPreferred(NULL): {}", status_text(s)),
            )
        })?;
        Ok(self.get(name)? != before)
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SafariError> {
        let Some(identity) = identity_preference(name) else {
            return Ok(None);
        };
        let certificate = identity.certificate().map_err(|e| {
            failed(
                "read",
                name,
                format!("SecIdentityCopyCertificate: {}", status_text(e.code())),
            )
        })?;
        Ok(Some(certificate.to_der()))
    }
}
