//! Safari's identity preferences on macOS (the host's backend of the Safari link): `safari::IdentityPreferences` over
//! `SecIdentitySetPreferred` / `SecIdentityCopyPreferred` (the `iprf` items in the user's
//! default keychain that `security set-identity-preference` writes).
//!
//! `set` finds the identity of a certificate with `SecIdentityCreateWithCertificate` on the
//! user's search list (where okta.keychain is), so the agent must run as the user.
//!
//! Two behaviours of Security.framework to know when checking this on a Mac:
//! - `SecIdentityCopyPreferred` is not an exact lookup: for a URL name it falls back to the
//!   URL's parent paths and then `*.<domain>` wildcards, so `get("https://<host>/")` also
//!   answers with a `*.<cell>` preference when the host has none of its own.
//! - For a URL name (one with a scheme), a caller without the keychain-access-groups `*`
//!   entitlement (everything but Keychain Access and `security`) reads and writes a per-app
//!   name, `https://<host>/ (<the caller's signing identifier>)`. The `*.<cell>` name has no
//!   scheme and is stored as given: that one is what Safari finds.

use crate::integrations::safari::{IdentityPreferences, SafariError};
use crate::platform::cf::Owned;
use crate::store::keychain::status_text;
use core_foundation::base::TCFType;
use core_foundation::data::CFData;
use core_foundation::string::CFString;
use core_foundation_sys::array::CFArrayRef;
use core_foundation_sys::base::OSStatus;
use core_foundation_sys::string::CFStringRef;
use security_framework_sys::base::{SecCertificateRef, SecIdentityRef};
use security_framework_sys::certificate::{SecCertificateCopyData, SecCertificateCreateWithData};
use security_framework_sys::identity::{
    SecIdentityCopyCertificate, SecIdentityCreateWithCertificate,
};
use std::ptr;

const ERR_SEC_ITEM_NOT_FOUND: OSStatus = -25300;

// Calls security-framework-sys does not declare. Signatures from Apple's SecIdentity.h.
#[link(name = "Security", kind = "framework")]
extern "C" {
    fn SecIdentitySetPreferred(
        identity: SecIdentityRef,
        name: CFStringRef,
        key_usage: CFArrayRef,
    ) -> OSStatus;
    fn SecIdentityCopyPreferred(
        name: CFStringRef,
        key_usage: CFArrayRef,
        valid_issuers: CFArrayRef,
    ) -> SecIdentityRef;
}

/// The user's identity preferences, as the Security framework keeps them.
#[derive(Debug, Default)]
pub struct KeychainIdentityPreferences;

fn failed(action: &'static str, name: &str, call: &str, status: OSStatus) -> SafariError {
    SafariError::Backend {
        action,
        name: name.to_owned(),
        reason: format!("{call}: {}", status_text(status)),
    }
}

impl IdentityPreferences for KeychainIdentityPreferences {
    fn set(&mut self, name: &str, certificate_der: &[u8]) -> Result<(), SafariError> {
        const ACTION: &str = "set";
        let data = CFData::from_buffer(certificate_der);
        // SAFETY: data is a live CFData; the result is a +1 reference or NULL (not a
        // certificate).
        let cert = Owned::take(unsafe {
            SecCertificateCreateWithData(ptr::null(), data.as_concrete_TypeRef())
        })
        .ok_or_else(|| SafariError::Backend {
            action: ACTION,
            name: name.to_owned(),
            reason: "SecCertificateCreateWithData: not a DER certificate".to_owned(),
        })?;
        let mut identity: SecIdentityRef = ptr::null_mut();
        // SAFETY: NULL means the user's keychain search list; cert is a live SecCertificateRef;
        // the out-parameter gets a +1 reference on success.
        let status =
            unsafe { SecIdentityCreateWithCertificate(ptr::null(), cert.as_ptr(), &mut identity) };
        if status != 0 {
            return Err(failed(
                ACTION,
                name,
                "SecIdentityCreateWithCertificate",
                status,
            ));
        }
        let identity = Owned::take(identity).ok_or_else(|| {
            failed(
                ACTION,
                name,
                "SecIdentityCreateWithCertificate",
                ERR_SEC_ITEM_NOT_FOUND,
            )
        })?;
        let service = CFString::new(name);
        // SAFETY: identity and service are live; NULL key usage means any. Nothing is returned
        // that we would own.
        let status = unsafe {
            SecIdentitySetPreferred(
                identity.as_ptr(),
                service.as_concrete_TypeRef(),
                ptr::null(),
            )
        };
        if status != 0 {
            return Err(failed(ACTION, name, "SecIdentitySetPreferred", status));
        }
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<bool, SafariError> {
        let service = CFString::new(name);
        // SAFETY: a NULL identity clears the preference for `name`; service is live.
        let status = unsafe {
            SecIdentitySetPreferred(ptr::null_mut(), service.as_concrete_TypeRef(), ptr::null())
        };
        match status {
            0 => Ok(true),
            ERR_SEC_ITEM_NOT_FOUND => Ok(false),
            _ => Err(failed(
                "remove",
                name,
                "SecIdentitySetPreferred(NULL)",
                status,
            )),
        }
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, SafariError> {
        const ACTION: &str = "read";
        let service = CFString::new(name);
        // SAFETY: service is live; NULL key usage and issuers mean any. The result is a +1
        // reference, or NULL when no preference applies (the call reports no status).
        let Some(identity) = Owned::take(unsafe {
            SecIdentityCopyPreferred(service.as_concrete_TypeRef(), ptr::null(), ptr::null())
        }) else {
            return Ok(None);
        };
        let mut cert: SecCertificateRef = ptr::null_mut();
        // SAFETY: identity is a live SecIdentityRef; the out-parameter gets a +1 reference.
        let status = unsafe { SecIdentityCopyCertificate(identity.as_ptr(), &mut cert) };
        if status != 0 {
            return Err(failed(ACTION, name, "SecIdentityCopyCertificate", status));
        }
        let cert = Owned::take(cert).ok_or_else(|| {
            failed(
                ACTION,
                name,
                "SecIdentityCopyCertificate",
                ERR_SEC_ITEM_NOT_FOUND,
            )
        })?;
        // SAFETY: cert is a live SecCertificateRef; the result is a +1 CFData (or NULL), owned
        // by wrap_under_create_rule.
        let der = unsafe {
            let data = SecCertificateCopyData(cert.as_ptr());
            (!data.is_null()).then(|| CFData::wrap_under_create_rule(data).bytes().to_vec())
        };
        Ok(der)
    }
}
