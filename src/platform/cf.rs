//! One owner for the Core Foundation references macOS hands the preference and device-fact
//! backends; the keychain store uses the `security-framework` crate's owned types instead.
//!
//! CF's Create/Copy rule hands us a +1 reference that must be released exactly once on every
//! path; `Owned` keeps it as a `CFType`, which does that on drop, so no early return can leak
//! or double-release.

use core_foundation::base::{CFType, CFTypeRef, TCFType};
use core_foundation::string::CFString;

/// A CF object this code owns (a Create/Copy result), released on drop.
pub(crate) struct Owned(CFType);

impl Owned {
    /// Takes ownership of a +1 reference; `None` for NULL.
    pub(crate) fn new(object: CFTypeRef) -> Option<Owned> {
        if object.is_null() {
            return None;
        }
        // SAFETY: callers pass a +1 reference (Create/Copy rule) they do not use afterwards;
        // the CFType releases it exactly once, on drop.
        Some(Owned(unsafe { CFType::wrap_under_create_rule(object) }))
    }

    /// A new CFString holding `text`.
    pub(crate) fn string(text: &str) -> Owned {
        Owned(CFString::new(text).into_CFType())
    }

    /// The reference, for a C call; valid while `self` lives.
    pub(crate) fn raw(&self) -> CFTypeRef {
        self.0.as_CFTypeRef()
    }

    pub(crate) fn cf(&self) -> &CFType {
        &self.0
    }

    /// The object's text if it is a CFString (IOKit properties can be any CF type).
    pub(crate) fn text(&self) -> Option<String> {
        self.0.downcast::<CFString>().map(|s| s.to_string())
    }
}

/// The text of a CF object we do not own (an array element); `None` unless it is a CFString.
pub(crate) fn text_of(object: CFTypeRef) -> Option<String> {
    if object.is_null() {
        return None;
    }
    // SAFETY: `object` is a live CF object owned elsewhere (checked non-NULL); get_rule takes
    // a reference of its own for the wrapper and gives it back on drop.
    let object = unsafe { CFType::wrap_under_get_rule(object) };
    object.downcast::<CFString>().map(|s| s.to_string())
}
