//! The Security.framework calls the `security-framework` crate does not wrap: the user's keychain
//! search list, a keychain's lock state, locking and deletion, access objects and their ACL
//! entries, identity preferences.
//!
//! Each is one small function over the crate's owned types, so the rest of the store never holds
//! a raw reference. Signatures are those of Apple's SecKeychain.h, SecAccess.h, SecACL.h,
//! SecKeychainItem.h, SecIdentity.h and SecItem.h.

use crate::store::keychain_items::Attr;
use core_foundation::array::{CFArray, CFArrayRef};
use core_foundation::base::{CFType, CFTypeID, CFTypeRef, OSStatus, TCFType};
use core_foundation::string::{CFString, CFStringRef};
use core_foundation::{declare_TCFType, impl_TCFType};
use security_framework::identity::SecIdentity;
use security_framework::key::SecKey;
use security_framework::os::macos::access::SecAccess;
use security_framework::os::macos::keychain::SecKeychain;
use security_framework::os::macos::keychain_item::SecKeychainItem;
use security_framework_sys::base::{
    SecAccessRef, SecIdentityRef, SecKeychainItemRef, SecKeychainRef,
};
use security_framework_sys::item::{
    kSecAttrIsPermanent, kSecAttrKeySizeInBits, kSecAttrKeyType, kSecAttrKeyTypeRSA, kSecAttrLabel,
    kSecUseKeychain,
};
use security_framework_sys::keychain::SecPreferencesDomain;
use std::ffi::{c_char, c_void, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;

/// `errSecParam`: what a call that gave neither a status nor a result is reported as.
const ERR_SEC_PARAM: OSStatus = -50;
/// Longest keychain path `SecKeychainGetPath` is given room for (`MAXPATHLEN` is 1024).
const PATH_BUFFER: usize = 4096;

#[doc(hidden)]
pub enum OpaqueSecAcl {}
type SecAclRef = *mut OpaqueSecAcl;

declare_TCFType! {
    /// One ACL entry of an access (`SecACLRef`).
    SecAcl, SecAclRef
}
impl_TCFType!(SecAcl, SecAclRef, SecACLGetTypeID);

#[link(name = "Security", kind = "framework")]
extern "C" {
    static kSecAttrAccess: CFStringRef;
    static kSecAttrIsExtractable: CFStringRef;
    static kSecAttrApplicationTag: CFStringRef;

    fn SecACLGetTypeID() -> CFTypeID;
    fn SecKeychainCopyDomainSearchList(
        domain: SecPreferencesDomain,
        search_list: *mut CFArrayRef,
    ) -> OSStatus;
    fn SecKeychainSetDomainSearchList(
        domain: SecPreferencesDomain,
        search_list: CFArrayRef,
    ) -> OSStatus;
    fn SecKeychainGetPath(
        keychain: SecKeychainRef,
        io_path_length: *mut u32,
        path_name: *mut c_char,
    ) -> OSStatus;
    fn SecKeychainDelete(keychain_or_array: CFTypeRef) -> OSStatus;
    fn SecKeychainGetStatus(keychain: SecKeychainRef, status: *mut u32) -> OSStatus;
    fn SecKeychainCopySettings(
        keychain: SecKeychainRef,
        settings: *mut security_framework_sys::keychain::SecKeychainSettings,
    ) -> OSStatus;
    fn SecKeychainLock(keychain: SecKeychainRef) -> OSStatus;
    fn SecAccessCreate(
        descriptor: CFStringRef,
        trusted_list: CFArrayRef,
        access: *mut SecAccessRef,
    ) -> OSStatus;
    fn SecAccessCopyMatchingACLList(
        access: SecAccessRef,
        authorization_tag: CFTypeRef,
    ) -> CFArrayRef;
    fn SecACLCopyContents(
        acl: SecAclRef,
        application_list: *mut CFArrayRef,
        description: *mut CFStringRef,
        prompt_selector: *mut u16,
    ) -> OSStatus;
    fn SecACLSetContents(
        acl: SecAclRef,
        application_list: CFArrayRef,
        description: CFStringRef,
        prompt_selector: u16,
    ) -> OSStatus;
    fn SecKeychainItemCopyAccess(item: SecKeychainItemRef, access: *mut SecAccessRef) -> OSStatus;
    fn SecKeychainItemSetAccessWithPassword(
        item: SecKeychainItemRef,
        access: SecAccessRef,
        password_length: u32,
        password: *const c_void,
    ) -> OSStatus;
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

fn check(status: OSStatus) -> Result<(), OSStatus> {
    if status == 0 {
        Ok(())
    } else {
        Err(status)
    }
}

/// A `kSec…` constant: an attribute name, or the constant value the store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sym {
    Attr(Attr),
    KeyTypeRsa,
}

/// The CFString a [`Sym`] stands for.
pub(super) fn sym(sym: Sym) -> CFString {
    // SAFETY: each static is an immutable CFString exported by Security.framework and valid for
    // the life of the process; reading it copies the pointer, and get_rule retains it.
    unsafe {
        CFString::wrap_under_get_rule(match sym {
            Sym::Attr(Attr::KeyType) => kSecAttrKeyType,
            Sym::Attr(Attr::KeySizeInBits) => kSecAttrKeySizeInBits,
            Sym::Attr(Attr::IsPermanent) => kSecAttrIsPermanent,
            Sym::Attr(Attr::IsExtractable) => kSecAttrIsExtractable,
            Sym::Attr(Attr::Label) => kSecAttrLabel,
            Sym::Attr(Attr::ApplicationTag) => kSecAttrApplicationTag,
            Sym::Attr(Attr::UseKeychain) => kSecUseKeychain,
            Sym::Attr(Attr::Access) => kSecAttrAccess,
            Sym::KeyTypeRsa => kSecAttrKeyTypeRSA,
        })
    }
}

/// The user domain's keychain search list, each keychain with its file (`SecKeychainGetPath`).
pub(super) fn user_search_list() -> Result<Vec<(SecKeychain, PathBuf)>, OSStatus> {
    let mut list: CFArrayRef = ptr::null();
    // SAFETY: on success the out-parameter holds a +1 CFArray of SecKeychainRefs, owned (and
    // released once) by the wrapper, which hands out retained elements.
    let list = unsafe {
        check(SecKeychainCopyDomainSearchList(
            SecPreferencesDomain::User,
            &mut list,
        ))?;
        if list.is_null() {
            return Err(ERR_SEC_PARAM);
        }
        CFArray::<SecKeychain>::wrap_under_create_rule(list)
    };
    list.iter()
        .map(|keychain| Ok((keychain.clone(), keychain_path(&keychain)?)))
        .collect()
}

/// The file of a keychain (`SecKeychainGetPath`).
pub(super) fn keychain_path(keychain: &SecKeychain) -> Result<PathBuf, OSStatus> {
    let mut buf = vec![0u8; PATH_BUFFER];
    let mut len = PATH_BUFFER as u32;
    // SAFETY: `keychain` is live; SecKeychainGetPath writes at most `len` bytes into `buf` and
    // sets `len` to what it wrote.
    check(unsafe {
        SecKeychainGetPath(
            keychain.as_concrete_TypeRef(),
            &mut len,
            buf.as_mut_ptr().cast(),
        )
    })?;
    buf.truncate((len as usize).min(PATH_BUFFER));
    if let Some(nul) = buf.iter().position(|&b| b == 0) {
        buf.truncate(nul);
    }
    Ok(PathBuf::from(OsStr::from_bytes(&buf)))
}

/// Replaces the user domain's keychain search list.
pub(super) fn set_user_search_list(list: &[SecKeychain]) -> Result<(), OSStatus> {
    let array = CFArray::from_CFTypes(list);
    // SAFETY: `array` is a live CFArray of live SecKeychainRefs; Security retains what it keeps.
    check(unsafe {
        SecKeychainSetDomainSearchList(SecPreferencesDomain::User, array.as_concrete_TypeRef())
    })
}

/// `kSecUnlockStateStatus` of `SecKeychainGetStatus`.
const UNLOCK_STATE_STATUS: u32 = 1;

/// Whether the keychain is unlocked now (`SecKeychainGetStatus`): a question to securityd
/// about the database, which never prompts and changes nothing.
pub(super) fn is_unlocked(keychain: &SecKeychain) -> Result<bool, OSStatus> {
    let mut status: u32 = 0;
    // SAFETY: `keychain` is live and `status` a u32 Security writes the status bits into.
    check(unsafe { SecKeychainGetStatus(keychain.as_concrete_TypeRef(), &mut status) })?;
    Ok(status & UNLOCK_STATE_STATUS != 0)
}

/// Whether the keychain locks by itself: (lock on sleep, lock after an interval)
/// (`SecKeychainCopySettings`). securityd unlocks a keychain to hand out its settings
/// (`kcdatabase.cpp`, `KeychainDatabase::getParameters`): in this process, with dialogs off,
/// a locked one is an error instead of a password dialog.
pub(super) fn auto_lock(keychain: &SecKeychain) -> Result<(bool, bool), OSStatus> {
    let mut settings = security_framework_sys::keychain::SecKeychainSettings {
        version: security_framework_sys::keychain::SEC_KEYCHAIN_SETTINGS_VERS1,
        lockOnSleep: 0,
        useLockInterval: 0,
        lockInterval: 0,
    };
    // SAFETY: `keychain` is live and `settings` a correctly versioned struct Security fills.
    check(unsafe { SecKeychainCopySettings(keychain.as_concrete_TypeRef(), &mut settings) })?;
    Ok((settings.lockOnSleep != 0, settings.useLockInterval != 0))
}

/// Locks the keychain (`SecKeychainLock`).
pub(super) fn lock(keychain: &SecKeychain) -> Result<(), OSStatus> {
    // SAFETY: `keychain` is a live SecKeychainRef.
    check(unsafe { SecKeychainLock(keychain.as_concrete_TypeRef()) })
}

/// Deletes the keychain's file (`SecKeychainDelete`); the reference stays valid but unusable.
pub(super) fn delete_keychain(keychain: &SecKeychain) -> Result<(), OSStatus> {
    // SAFETY: `keychain` is a live SecKeychainRef, which the call accepts as its CFTypeRef.
    check(unsafe { SecKeychainDelete(keychain.as_CFTypeRef()) })
}

/// `SecAccessCreate(descriptor, NULL)`: the standard access Security gives a new item (owner,
/// an open encrypt entry, and a decrypt/sign/export entry trusting this application).
pub(super) fn create_access(descriptor: &str) -> Result<SecAccess, OSStatus> {
    let descriptor = CFString::new(descriptor);
    let mut access: SecAccessRef = ptr::null_mut();
    // SAFETY: `descriptor` is a live CFString and a NULL trusted list is documented; on success
    // the out-parameter holds a +1 SecAccessRef, owned from here by the wrapper.
    unsafe {
        check(SecAccessCreate(
            descriptor.as_concrete_TypeRef(),
            ptr::null(),
            &mut access,
        ))?;
        if access.is_null() {
            return Err(ERR_SEC_PARAM);
        }
        Ok(SecAccess::wrap_under_create_rule(access))
    }
}

/// What one ACL entry says: its application list (`None`: any application), description and
/// prompt selector.
pub(super) struct AclContents {
    pub applications: Option<CFArray<CFType>>,
    pub description: String,
    pub prompt: u16,
}

/// The ACL entries of `access` carrying authorization `tag`, with their contents
/// (`SecAccessCopyMatchingACLList` + `SecACLCopyContents`).
pub(super) fn acl_entries(
    access: &SecAccess,
    tag: &str,
) -> Result<Vec<(SecAcl, AclContents)>, OSStatus> {
    let tag = CFString::new(tag);
    let mut entries = Vec::new();
    // SAFETY: `access` and `tag` are live. The list is a +1 CFArray of SecACLRefs (or NULL when
    // no entry carries the tag), owned by the wrapper; each element is a live SecACLRef of it.
    // SecACLCopyContents fills three out-parameters with +1 references or NULL, each taken by
    // a wrapper before anything can return.
    unsafe {
        let list = SecAccessCopyMatchingACLList(access.as_concrete_TypeRef(), tag.as_CFTypeRef());
        if list.is_null() {
            return Ok(entries);
        }
        let list = CFArray::<SecAcl>::wrap_under_create_rule(list);
        for acl in list.iter() {
            let mut applications: CFArrayRef = ptr::null();
            let mut description: CFStringRef = ptr::null();
            let mut prompt: u16 = 0;
            let status = SecACLCopyContents(
                acl.as_concrete_TypeRef(),
                &mut applications,
                &mut description,
                &mut prompt,
            );
            let applications = (!applications.is_null())
                .then(|| CFArray::<CFType>::wrap_under_create_rule(applications));
            let description = (!description.is_null())
                .then(|| CFString::wrap_under_create_rule(description).to_string());
            check(status)?;
            entries.push((
                acl.clone(),
                AclContents {
                    applications,
                    description: description.unwrap_or_default(),
                    prompt,
                },
            ));
        }
    }
    Ok(entries)
}

/// Rewrites one ACL entry of an access not yet applied to an item (`SecACLSetContents`).
pub(super) fn set_acl_contents(acl: &SecAcl, contents: &AclContents) -> Result<(), OSStatus> {
    let description = CFString::new(&contents.description);
    let applications = contents
        .applications
        .as_ref()
        .map_or(ptr::null(), |a| a.as_concrete_TypeRef());
    // SAFETY: `acl` and `description` are live; the application list is a live CFArray or
    // NULL, which means "any application". Security copies what it keeps.
    check(unsafe {
        SecACLSetContents(
            acl.as_concrete_TypeRef(),
            applications,
            description.as_concrete_TypeRef(),
            contents.prompt,
        )
    })
}

/// What `SecKeychainItemCopyAccess` and `SecKeychainItemSetAccessWithPassword` take: an item
/// of a file keychain. Apple documents a key or certificate found in one as usable wherever a
/// `SecKeychainItemRef` is.
pub(super) trait KeychainItem {
    fn item_ref(&self) -> SecKeychainItemRef;
}

impl KeychainItem for SecKeychainItem {
    fn item_ref(&self) -> SecKeychainItemRef {
        self.as_concrete_TypeRef()
    }
}

impl KeychainItem for SecKey {
    fn item_ref(&self) -> SecKeychainItemRef {
        self.as_concrete_TypeRef().cast()
    }
}

/// The access of a keychain item (`SecKeychainItemCopyAccess`): its ACL, not its data.
pub(super) fn item_access(item: &dyn KeychainItem) -> Result<SecAccess, OSStatus> {
    let mut access: SecAccessRef = ptr::null_mut();
    // SAFETY: `item_ref` is a live item of a file keychain (see `KeychainItem`); on success the
    // out-parameter holds a +1 SecAccessRef, owned from here by the wrapper.
    unsafe {
        check(SecKeychainItemCopyAccess(item.item_ref(), &mut access))?;
        if access.is_null() {
            return Err(ERR_SEC_PARAM);
        }
        Ok(SecAccess::wrap_under_create_rule(access))
    }
}

/// Applies `access` to the key, authorised by the keychain's password instead of a dialog:
/// what `security set-key-partition-list -k` does.
pub(super) fn set_key_access_with_password(
    key: &SecKey,
    access: &SecAccess,
    password: &[u8],
) -> Result<(), OSStatus> {
    let len = u32::try_from(password.len()).map_err(|_| ERR_SEC_PARAM)?;
    // SAFETY: `key` is a keychain item (see `KeychainItem`), `access` is live, and the password
    // buffer outlives the call, which only reads `len` bytes of it.
    check(unsafe {
        SecKeychainItemSetAccessWithPassword(
            key.item_ref(),
            access.as_concrete_TypeRef(),
            len,
            password.as_ptr().cast(),
        )
    })
}

/// `SecIdentitySetPreferred(identity, name, NULL)`: key usage 0, as `security
/// set-identity-preference` without `-u`. `None` clears the preference for `name` (Security
/// then succeeds whether or not one existed).
pub(crate) fn set_identity_preference(
    identity: Option<&SecIdentity>,
    name: &str,
) -> Result<(), OSStatus> {
    let name = CFString::new(name);
    let identity = identity.map_or(ptr::null_mut(), |i| i.as_concrete_TypeRef());
    // SAFETY: `identity` is live or NULL (documented as "clear"), `name` is live, and a NULL
    // key-usage array means any usage. Nothing is returned that we would own.
    check(unsafe { SecIdentitySetPreferred(identity, name.as_concrete_TypeRef(), ptr::null()) })
}

/// `SecIdentityCopyPreferred(name, NULL, NULL)`: the identity preferred for `name`, with
/// Security's fallbacks for a URL-form name (its parent paths, then `*.domain` wildcards).
pub(crate) fn identity_preference(name: &str) -> Option<SecIdentity> {
    let name = CFString::new(name);
    // SAFETY: `name` is live; NULL key usage and issuers mean any. The result is a +1
    // SecIdentityRef or NULL, owned from here by the wrapper.
    unsafe {
        let identity =
            SecIdentityCopyPreferred(name.as_concrete_TypeRef(), ptr::null(), ptr::null());
        (!identity.is_null()).then(|| SecIdentity::wrap_under_create_rule(identity))
    }
}
