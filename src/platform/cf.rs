//! One owner for Core Foundation references, shared by every macOS backend (keychain,
//! preferences, identity preferences, device facts).
//!
//! CF's Create/Copy rule hands us a +1 reference that must be released exactly once on every
//! path; `Owned` does that on drop, so no early return can leak or double-release.

use core_foundation::base::{CFType, TCFType};
use core_foundation_sys::base::{CFGetTypeID, CFIndex, CFRelease, CFTypeRef};
use core_foundation_sys::string::{
    kCFStringEncodingUTF8, CFStringCreateWithBytes, CFStringGetCString, CFStringGetLength,
    CFStringGetMaximumSizeForEncoding, CFStringGetTypeID, CFStringRef,
};

/// A CF object this code owns (a Create/Copy result), released on drop.
pub(crate) struct Owned(pub(crate) CFTypeRef);

impl Owned {
    /// Takes ownership of a +1 reference; `None` for NULL.
    pub(crate) fn new(object: CFTypeRef) -> Option<Owned> {
        (!object.is_null()).then_some(Owned(object))
    }

    /// `new` for the typed pointers the Security framework returns.
    pub(crate) fn take<T>(ptr: *mut T) -> Option<Owned> {
        Owned::new(ptr as CFTypeRef)
    }

    pub(crate) fn as_ptr<T>(&self) -> *mut T {
        self.0 as *mut T
    }

    /// As a `CFType`, for putting into CF collections (retains; ours stays valid).
    pub(crate) fn as_cf(&self) -> CFType {
        // SAFETY: self.0 is a valid, non-NULL CF object; get_rule retains it.
        unsafe { CFType::wrap_under_get_rule(self.0) }
    }

    /// A new CFString holding `text`.
    pub(crate) fn string(text: &str) -> Option<Owned> {
        let len = CFIndex::try_from(text.len()).ok()?;
        // SAFETY: the pointer and length describe `text`, which outlives the call; CF copies
        // the bytes. A NULL allocator means the default one.
        let string = unsafe {
            CFStringCreateWithBytes(
                std::ptr::null(),
                text.as_ptr(),
                len,
                kCFStringEncodingUTF8,
                0,
            )
        };
        Owned::new(string as CFTypeRef)
    }

    /// The object's text if it is a CFString (IOKit properties can be any CF type).
    pub(crate) fn text(&self) -> Option<String> {
        text_of(self.0)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: Owned is only built from non-NULL +1 references, released exactly once here.
        unsafe { CFRelease(self.0) }
    }
}

/// The text of a CF object we may not own (an array element); `None` unless it is a CFString.
pub(crate) fn text_of(object: CFTypeRef) -> Option<String> {
    // SAFETY: `object` is a live CF object or NULL (checked first); type IDs need nothing more.
    if object.is_null() || unsafe { CFGetTypeID(object) != CFStringGetTypeID() } {
        return None;
    }
    let string = object as CFStringRef;
    // SAFETY: `string` is a live CFString.
    let len = unsafe { CFStringGetLength(string) };
    // SAFETY: no preconditions; the result bounds the UTF-8 size of `len` UTF-16 units.
    let max = unsafe { CFStringGetMaximumSizeForEncoding(len, kCFStringEncodingUTF8) };
    let mut buf = vec![0u8; usize::try_from(max).ok()?.checked_add(1)?];
    let size = CFIndex::try_from(buf.len()).ok()?;
    // SAFETY: `buf` is writable for `size` bytes; CF NUL-terminates within it on success and
    // reports failure if the text would not fit.
    let ok =
        unsafe { CFStringGetCString(string, buf.as_mut_ptr().cast(), size, kCFStringEncodingUTF8) };
    if ok == 0 {
        return None;
    }
    buf.truncate(buf.iter().position(|&b| b == 0)?);
    String::from_utf8(buf).ok()
}
