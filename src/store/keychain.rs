//! The macOS identity store: the device key and certificate in `~/Library/Keychains/okta.keychain`,
//! unlocked with a random password kept in the login keychain as the `device_trust` item.
//!
//! Everything goes through the Security framework in-process, so neither the keychain password
//! nor the private key ever reaches a child's argv or a file (spec section 9, defects 1 and 2).
//! The file-keychain calls (SecKeychain*, SecAccess*, SecACL*) are deprecated but are the only
//! API for a named keychain with a partition list, which is what the spec asks for; Apple's own
//! `security` tool makes the same calls. The decisions are in `keychain_model` (tested on Linux).

use super::keychain_model::{self as model, PASSWORD_ITEM};
use super::{IdentityStore, StoreError, StoreProbe};
use crate::partition::Partition;
use crate::pki::{CertificateInfo, CheckedIdentity, NewKey, PkiError, PrivateKey, SigningKey};
use crate::platform::cf::Owned;
use crate::secret::Secret;
use core_foundation::array::CFArray;
use core_foundation::base::{CFType, TCFType};
use core_foundation::boolean::CFBoolean;
use core_foundation::data::CFData;
use core_foundation::dictionary::CFDictionary;
use core_foundation::error::CFError;
use core_foundation::string::CFString;
use core_foundation_sys::array::CFArrayRef;
use core_foundation_sys::base::{CFTypeRef, OSStatus};
use core_foundation_sys::data::CFDataRef;
use core_foundation_sys::error::CFErrorRef;
use core_foundation_sys::string::CFStringRef;
use security_framework_sys::base::{
    SecAccessRef, SecCertificateRef, SecIdentityRef, SecKeyRef, SecKeychainItemRef, SecKeychainRef,
};
use security_framework_sys::certificate::{
    SecCertificateAddToKeychain, SecCertificateCopyData, SecCertificateCreateWithData,
};
use security_framework_sys::identity::{SecIdentityCopyCertificate, SecIdentityCopyPrivateKey};
use security_framework_sys::import_export::{
    kSecFormatOpenSSL, SecItemImport, SecItemImportExportKeyParameters,
    SEC_KEY_IMPORT_EXPORT_PARAMS_VERSION,
};
use security_framework_sys::item::{
    kSecAttrAccount, kSecAttrLabel, kSecAttrService, kSecClass, kSecClassGenericPassword,
    kSecClassIdentity, kSecMatchLimit, kSecMatchLimitAll, kSecMatchSearchList, kSecReturnRef,
    kSecUseKeychain, kSecValueData,
};
use security_framework_sys::key::{
    kSecKeyAlgorithmRSAEncryptionPKCS1, kSecKeyAlgorithmRSASignatureMessagePKCS1v15SHA256,
    SecKeyCopyExternalRepresentation, SecKeyCopyPublicKey, SecKeyCreateDecryptedData,
    SecKeyCreateSignature,
};
use security_framework_sys::keychain::{
    SecKeychainCopyDomainDefault, SecKeychainCreate, SecKeychainFindGenericPassword,
    SecKeychainOpen, SecKeychainSetSettings, SecKeychainSetUserInteractionAllowed,
    SecKeychainSettings, SecKeychainUnlock, SecPreferencesDomain, SEC_KEYCHAIN_SETTINGS_VERS1,
};
use security_framework_sys::keychain_item::{
    SecItemAdd, SecItemCopyMatching, SecKeychainItemDelete, SecKeychainItemFreeContent,
};
use std::ffi::{c_char, c_void, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use zeroize::Zeroizing;

const ERR_SEC_ITEM_NOT_FOUND: OSStatus = -25300;
const ERR_SEC_DUPLICATE_ITEM: OSStatus = -25299;
/// SecItemImport's `SecExternalItemType` for a private key (kSecItemTypePrivateKey).
const ITEM_TYPE_PRIVATE_KEY: u32 = 1;
/// The ACL authorization tag `security` reads the decrypt (use) rights from.
const AUTHORIZATION_DECRYPT: &str = "ACLAuthorizationDecrypt";

type SecAclRef = *mut c_void;

// Calls security-framework-sys does not declare. Signatures from Apple's SecKeychain.h,
// SecAccess.h, SecACL.h and SecKeychainItem.h.
#[link(name = "Security", kind = "framework")]
extern "C" {
    static kSecAttrAccess: CFStringRef;
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
    fn SecAccessCreate(
        descriptor: CFStringRef,
        trusted_list: CFArrayRef,
        access_ref: *mut SecAccessRef,
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
    fn SecACLCreateWithSimpleContents(
        access: SecAccessRef,
        application_list: CFArrayRef,
        description: CFStringRef,
        prompt_selector: u16,
        new_acl: *mut SecAclRef,
    ) -> OSStatus;
    fn SecACLUpdateAuthorizations(acl: SecAclRef, authorizations: CFArrayRef) -> OSStatus;
    fn SecKeychainItemCopyAccess(item: SecKeychainItemRef, access: *mut SecAccessRef) -> OSStatus;
    fn SecKeychainItemSetAccessWithPassword(
        item: SecKeychainItemRef,
        access: SecAccessRef,
        password_length: u32,
        password: *const c_void,
    ) -> OSStatus;
}

/// Apple's text for an OSStatus, for one-line errors.
pub(crate) fn status_text(status: OSStatus) -> String {
    // SAFETY: SecCopyErrorMessageString takes any status and a reserved NULL; it returns a +1
    // CFString or NULL, which wrap_under_create_rule then owns.
    let message = unsafe {
        let s = security_framework_sys::base::SecCopyErrorMessageString(status, ptr::null_mut());
        (!s.is_null()).then(|| CFString::wrap_under_create_rule(s).to_string())
    };
    match message {
        Some(m) => format!("OSStatus {status} ({m})"),
        None => format!("OSStatus {status}"),
    }
}

/// The text of a CFError out-parameter, releasing it.
fn cf_error_text(error: CFErrorRef) -> String {
    if error.is_null() {
        return "unknown error".to_owned();
    }
    // SAFETY: a non-NULL CFError out-parameter is a +1 reference that we now own.
    let error = unsafe { CFError::wrap_under_create_rule(error) };
    error.description().to_string()
}

fn cstring(path: &Path) -> Result<CString, StoreError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| StoreError::Os {
        path: path.to_path_buf(),
        action: "naming the keychain",
        reason: "the path contains a NUL byte".to_owned(),
    })
}

/// One identity found in okta.keychain.
struct Identity {
    identity: Owned,
    certificate_der: Vec<u8>,
}

impl Identity {
    fn certificate(&self) -> Option<Owned> {
        let mut cert: SecCertificateRef = ptr::null_mut();
        // SAFETY: identity is a valid SecIdentityRef; the out-parameter gets a +1 reference.
        let status = unsafe { SecIdentityCopyCertificate(self.identity.as_ptr(), &mut cert) };
        if status == 0 {
            Owned::take(cert)
        } else {
            None
        }
    }

    fn private_key(&self) -> Result<Owned, OSStatus> {
        let mut key: SecKeyRef = ptr::null_mut();
        // SAFETY: identity is a valid SecIdentityRef; the out-parameter gets a +1 reference.
        let status = unsafe { SecIdentityCopyPrivateKey(self.identity.as_ptr(), &mut key) };
        if status != 0 {
            return Err(status);
        }
        Owned::take(key).ok_or(ERR_SEC_ITEM_NOT_FOUND)
    }
}

/// The keychain-backed store for one user's home.
pub struct KeychainStore {
    /// `~/Library/Keychains/okta.keychain`, the name SecKeychainCreate/Open take.
    path: PathBuf,
}

impl KeychainStore {
    pub fn new(home: &Path) -> Self {
        // A background agent has nobody to answer a keychain dialog: fail instead of waiting.
        // SAFETY: a plain setter on the process's Security session state.
        unsafe {
            SecKeychainSetUserInteractionAllowed(0);
        }
        KeychainStore {
            path: model::keychain_path(home),
        }
    }

    fn err(&self, action: &'static str, status: OSStatus) -> StoreError {
        StoreError::Os {
            path: self.path.clone(),
            action,
            reason: status_text(status),
        }
    }

    fn exists(&self) -> bool {
        model::keychain_db_path(&self.path).exists() || self.path.exists()
    }

    /// SecKeychainOpen: a reference by path (it does not check that the file exists).
    fn open(&self) -> Result<Owned, StoreError> {
        let path = cstring(&self.path)?;
        let mut keychain: SecKeychainRef = ptr::null_mut();
        // SAFETY: path is NUL-terminated; the out-parameter gets a +1 reference.
        let status = unsafe { SecKeychainOpen(path.as_ptr(), &mut keychain) };
        match Owned::take(keychain) {
            Some(k) if status == 0 => Ok(k),
            _ => Err(self.err("opening okta.keychain", status)),
        }
    }

    /// SecKeychainCopyDomainDefault(user): the login keychain, where the password item lives.
    fn login_keychain(&self) -> Result<Owned, StoreError> {
        let mut keychain: SecKeychainRef = ptr::null_mut();
        // SAFETY: the out-parameter gets a +1 reference.
        let status =
            unsafe { SecKeychainCopyDomainDefault(SecPreferencesDomain::User, &mut keychain) };
        match Owned::take(keychain) {
            Some(k) if status == 0 => Ok(k),
            _ => Err(self.err("opening the login keychain", status)),
        }
    }

    /// SecKeychainFindGenericPassword on the login keychain: the `device_trust` item and,
    /// when `with_data`, its password. The ACL lets any app read it, so this never prompts.
    fn find_password(
        &self,
        with_data: bool,
    ) -> Result<Option<(Owned, Option<Secret>)>, StoreError> {
        let login = self.login_keychain()?;
        let name = PASSWORD_ITEM.as_bytes();
        let mut len: u32 = 0;
        let mut data: *mut c_void = ptr::null_mut();
        let mut item: SecKeychainItemRef = ptr::null_mut();
        // SAFETY: the name buffers outlive the call and their lengths are given; data and item
        // are out-parameters (data only when asked for, freed below with FreeContent).
        let status = unsafe {
            SecKeychainFindGenericPassword(
                login.0,
                name.len() as u32,
                name.as_ptr().cast(),
                name.len() as u32,
                name.as_ptr().cast(),
                if with_data { &mut len } else { ptr::null_mut() },
                if with_data {
                    &mut data
                } else {
                    ptr::null_mut()
                },
                &mut item,
            )
        };
        if status == ERR_SEC_ITEM_NOT_FOUND {
            return Ok(None);
        }
        if status != 0 {
            return Err(self.err("reading the device_trust password", status));
        }
        let item = Owned::take(item)
            .ok_or_else(|| self.err("reading the device_trust password", status))?;
        let secret = if data.is_null() {
            None
        } else {
            // SAFETY: on success data points to len bytes owned by Security until FreeContent;
            // they are copied into a zeroizing buffer first, and FreeContent wipes theirs.
            let bytes = unsafe {
                let copy = Zeroizing::new(
                    std::slice::from_raw_parts(data as *const u8, len as usize).to_vec(),
                );
                SecKeychainItemFreeContent(ptr::null_mut(), data);
                copy
            };
            let text = String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::Damaged {
                path: self.path.clone(),
                what: "the device_trust password",
                reason: "not UTF-8".to_owned(),
            })?;
            Some(Secret::new(text))
        };
        Ok(Some((item, secret)))
    }

    fn read_password(&self) -> Result<Option<Secret>, StoreError> {
        Ok(self.find_password(true)?.and_then(|(_, secret)| secret))
    }

    /// An access whose decrypt ACL trusts every application: SecAccessCreate, then
    /// SecACLSetContents with a NULL application list (NULL means "any app", `security -A`).
    fn any_app_access(&self) -> Result<Owned, StoreError> {
        let descriptor = CFString::new(PASSWORD_ITEM);
        let mut access: SecAccessRef = ptr::null_mut();
        // SAFETY: descriptor is a valid CFString; a NULL trusted list is allowed; the
        // out-parameter gets a +1 reference.
        let status =
            unsafe { SecAccessCreate(descriptor.as_concrete_TypeRef(), ptr::null(), &mut access) };
        let access = match Owned::take(access) {
            Some(a) if status == 0 => a,
            _ => return Err(self.err("creating the password item's access", status)),
        };
        let tag = CFString::new(AUTHORIZATION_DECRYPT);
        for acl in self.acls(&access, &tag) {
            let (_, description, prompt) = self.acl_contents(acl.as_ptr())?;
            // SAFETY: acl is a valid SecACLRef of `access`; NULL application list is allowed.
            let status = unsafe {
                SecACLSetContents(
                    acl.as_ptr(),
                    ptr::null(),
                    description.as_concrete_TypeRef(),
                    prompt,
                )
            };
            if status != 0 {
                return Err(self.err("opening the password item to all apps", status));
            }
        }
        Ok(access)
    }

    /// SecAccessCopyMatchingACLList: the ACL entries of `access` carrying authorization `tag`.
    fn acls(&self, access: &Owned, tag: &CFString) -> Vec<Owned> {
        // SAFETY: access is a valid SecAccessRef and tag a valid CFString; the result is a
        // +1 CFArray or NULL, owned by wrap_under_create_rule.
        let list = unsafe {
            let list = SecAccessCopyMatchingACLList(access.as_ptr(), tag.as_CFTypeRef());
            if list.is_null() {
                return Vec::new();
            }
            CFArray::<CFType>::wrap_under_create_rule(list)
        };
        list.iter()
            .filter_map(|acl| {
                let ptr = acl.as_CFTypeRef();
                // SAFETY: each element is a valid SecACLRef; retain it so Owned may release it.
                Owned::take(unsafe { core_foundation_sys::base::CFRetain(ptr) } as *mut c_void)
            })
            .collect()
    }

    /// SecACLCopyContents: (application list or NULL for any app, description, prompt).
    fn acl_contents(&self, acl: SecAclRef) -> Result<(Option<Owned>, CFString, u16), StoreError> {
        let mut apps: CFArrayRef = ptr::null();
        let mut description: CFStringRef = ptr::null();
        let mut prompt: u16 = 0;
        // SAFETY: acl is a valid SecACLRef; the out-parameters get +1 references or NULL.
        let status = unsafe { SecACLCopyContents(acl, &mut apps, &mut description, &mut prompt) };
        let apps = Owned::take(apps as *mut c_void);
        if status != 0 {
            return Err(self.err("reading a key ACL", status));
        }
        let description = if description.is_null() {
            CFString::new("")
        } else {
            // SAFETY: a non-NULL description out-parameter is a +1 CFString.
            unsafe { CFString::wrap_under_create_rule(description) }
        };
        Ok((apps, description, prompt))
    }

    /// Stores the keychain password in the login keychain as the `device_trust` generic
    /// password (account, service and label), with an any-app access from the start:
    /// SecItemAdd with kSecAttrAccess, so the ACL is never changed afterwards (that prompts).
    fn store_password(&self, password: &Secret) -> Result<(), StoreError> {
        let login = self.login_keychain()?;
        let access = self.any_app_access()?;
        let name = CFString::new(PASSWORD_ITEM);
        let value = CFData::from_buffer(password.expose().as_bytes());
        // SAFETY: the kSec* keys are framework constants valid for the process's lifetime.
        let pairs = unsafe {
            [
                (
                    CFString::wrap_under_get_rule(kSecClass),
                    CFString::wrap_under_get_rule(kSecClassGenericPassword).as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecAttrAccount),
                    name.as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecAttrService),
                    name.as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecAttrLabel),
                    name.as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecValueData),
                    value.as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecAttrAccess),
                    access.as_cf(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecUseKeychain),
                    login.as_cf(),
                ),
            ]
        };
        let attributes = CFDictionary::from_CFType_pairs(&pairs);
        // SAFETY: attributes is a valid dictionary; no result is requested.
        let status = unsafe { SecItemAdd(attributes.as_concrete_TypeRef(), ptr::null_mut()) };
        if status != 0 {
            return Err(self.err("storing the device_trust password", status));
        }
        Ok(())
    }

    /// SecKeychainItemDelete on the `device_trust` item; `Ok(false)` when there was none.
    fn delete_password_item(&self) -> Result<bool, StoreError> {
        let Some((item, _)) = self.find_password(false)? else {
            return Ok(false);
        };
        // SAFETY: item is a valid keychain item reference.
        let status = unsafe { SecKeychainItemDelete(item.as_ptr()) };
        if status != 0 {
            return Err(self.err("deleting the device_trust password", status));
        }
        Ok(true)
    }

    /// SecKeychainUnlock with the password as a buffer (never argv, unlike `security -p`).
    fn unlock(&self, keychain: &Owned, password: &Secret) -> Result<(), StoreError> {
        let bytes = password.expose().as_bytes();
        // SAFETY: keychain is valid; the password buffer outlives the call; usePassword=1.
        let status = unsafe {
            SecKeychainUnlock(
                keychain.as_ptr(),
                bytes.len() as u32,
                bytes.as_ptr().cast(),
                1,
            )
        };
        if status != 0 {
            return Err(self.err("unlocking okta.keychain", status));
        }
        Ok(())
    }

    /// The existing keychain, unlocked when its password is there (reads of certificates work
    /// on a locked keychain; key use then fails instead of prompting). `None` if absent.
    fn existing(&self) -> Result<Option<(Owned, Option<Secret>)>, StoreError> {
        if !self.exists() {
            return Ok(None);
        }
        let keychain = self.open()?;
        let password = self.read_password()?;
        if let Some(p) = &password {
            self.unlock(&keychain, p)?;
        }
        Ok(Some((keychain, password)))
    }

    /// The keychain, created when missing, unlocked, in the search list, without auto-lock.
    fn ensure(&self) -> Result<(Owned, Secret), StoreError> {
        if let Some((keychain, Some(password))) = self.existing()? {
            self.configure(&keychain)?;
            return Ok((keychain, password));
        }
        if self.exists() {
            // A keychain without its password (a crash between creating the two, or a deleted
            // item) can never be unlocked again: nothing in it is usable, so start afresh.
            tracing::warn!("okta.keychain has no device_trust password; recreating it");
            let keychain = self.open()?;
            // SAFETY: keychain is a valid SecKeychainRef.
            let status = unsafe { SecKeychainDelete(keychain.0) };
            if status != 0 {
                return Err(self.err("deleting the unusable okta.keychain", status));
            }
        }
        // The password item first: a crash after it leaves an item the next run replaces,
        // a crash after the keychain leaves a keychain it can unlock.
        self.delete_password_item()?;
        let password = model::generate_keychain_password();
        self.store_password(&password)?;
        let path = cstring(&self.path)?;
        let bytes = password.expose().as_bytes();
        let mut keychain: SecKeychainRef = ptr::null_mut();
        // SecKeychainCreate: the password as a buffer, no prompt, default initial access.
        // SAFETY: path is NUL-terminated, the password buffer outlives the call, NULL access is
        // allowed, and the out-parameter gets a +1 reference.
        let status = unsafe {
            SecKeychainCreate(
                path.as_ptr(),
                bytes.len() as u32,
                bytes.as_ptr().cast(),
                0,
                ptr::null_mut(),
                &mut keychain,
            )
        };
        let keychain = match Owned::take(keychain) {
            Some(k) if status == 0 => k,
            _ => return Err(self.err("creating okta.keychain", status)),
        };
        self.configure(&keychain)?;
        Ok((keychain, password))
    }

    /// SecKeychainSetSettings (no lock on sleep, no lock interval) and the user search list.
    fn configure(&self, keychain: &Owned) -> Result<(), StoreError> {
        let settings = SecKeychainSettings {
            version: SEC_KEYCHAIN_SETTINGS_VERS1,
            lockOnSleep: 0,
            useLockInterval: 0,
            lockInterval: i32::MAX as u32,
        };
        // SAFETY: keychain is valid and settings a fully initialised VERS1 struct.
        let status = unsafe { SecKeychainSetSettings(keychain.as_ptr(), &settings) };
        if status != 0 {
            return Err(self.err("turning off auto-lock on okta.keychain", status));
        }
        self.edit_search_list(|current| model::search_list_with(current, &self.path))
    }

    /// SecKeychainCopyDomainSearchList / SecKeychainSetDomainSearchList (user domain): the
    /// list as paths goes through `edit`, and is written back only if it changed.
    fn edit_search_list(
        &self,
        edit: impl FnOnce(&[PathBuf]) -> Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        let mut list: CFArrayRef = ptr::null();
        // SAFETY: the out-parameter gets a +1 CFArray of SecKeychainRefs.
        let status =
            unsafe { SecKeychainCopyDomainSearchList(SecPreferencesDomain::User, &mut list) };
        if status != 0 || list.is_null() {
            return Err(self.err("reading the keychain search list", status));
        }
        // SAFETY: list is a +1 CFArray now owned by the wrapper.
        let list = unsafe { CFArray::<CFType>::wrap_under_create_rule(list) };
        let mut current = Vec::new();
        for keychain in list.iter() {
            current.push(self.keychain_path_of(keychain.as_CFTypeRef() as SecKeychainRef)?);
        }
        let wanted = edit(&current);
        if wanted == current {
            return Ok(());
        }
        let mut refs = Vec::new();
        for path in &wanted {
            let c = cstring(path)?;
            let mut keychain: SecKeychainRef = ptr::null_mut();
            // SAFETY: c is NUL-terminated; the out-parameter gets a +1 reference.
            let status = unsafe { SecKeychainOpen(c.as_ptr(), &mut keychain) };
            match Owned::take(keychain) {
                Some(k) if status == 0 => refs.push(k.as_cf()),
                _ => return Err(self.err("opening a search-list keychain", status)),
            }
        }
        let array = CFArray::from_CFTypes(&refs);
        // SAFETY: array is a valid CFArray of SecKeychainRefs.
        let status = unsafe {
            SecKeychainSetDomainSearchList(SecPreferencesDomain::User, array.as_concrete_TypeRef())
        };
        if status != 0 {
            return Err(self.err("writing the keychain search list", status));
        }
        Ok(())
    }

    /// SecKeychainGetPath: the file behind a keychain reference.
    fn keychain_path_of(&self, keychain: SecKeychainRef) -> Result<PathBuf, StoreError> {
        let mut buf = vec![0u8; 4096];
        let mut len = buf.len() as u32;
        // SAFETY: buf holds len bytes; Security writes at most len and updates it.
        let status = unsafe { SecKeychainGetPath(keychain, &mut len, buf.as_mut_ptr().cast()) };
        if status != 0 {
            return Err(self.err("reading a search-list entry", status));
        }
        buf.truncate((len as usize).min(buf.len()));
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            buf.truncate(nul);
        }
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&buf)))
    }

    /// SecItemCopyMatching for kSecClassIdentity with kSecMatchSearchList = [okta.keychain]:
    /// only our keychain, never an identity of the same name elsewhere.
    fn identities(&self, keychain: &Owned) -> Result<Vec<Identity>, StoreError> {
        let search = CFArray::from_CFTypes(&[keychain.as_cf()]);
        // SAFETY: the kSec* keys and values are framework constants valid for the process.
        let pairs = unsafe {
            [
                (
                    CFString::wrap_under_get_rule(kSecClass),
                    CFString::wrap_under_get_rule(kSecClassIdentity).as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecMatchSearchList),
                    search.as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecMatchLimit),
                    CFString::wrap_under_get_rule(kSecMatchLimitAll).as_CFType(),
                ),
                (
                    CFString::wrap_under_get_rule(kSecReturnRef),
                    CFBoolean::true_value().as_CFType(),
                ),
            ]
        };
        let query = CFDictionary::from_CFType_pairs(&pairs);
        let mut result: CFTypeRef = ptr::null();
        // SAFETY: query is a valid dictionary; result gets a +1 CFArray (limit all).
        let status = unsafe { SecItemCopyMatching(query.as_concrete_TypeRef(), &mut result) };
        if status == ERR_SEC_ITEM_NOT_FOUND {
            return Ok(Vec::new());
        }
        if status != 0 || result.is_null() {
            return Err(self.err("searching okta.keychain", status));
        }
        // SAFETY: with kSecMatchLimitAll the result is a +1 CFArray of SecIdentityRefs.
        let array = unsafe { CFArray::<CFType>::wrap_under_create_rule(result as CFArrayRef) };
        let mut found = Vec::new();
        for item in array.iter() {
            // SAFETY: each element is a valid SecIdentityRef; retained for Owned to release.
            let identity = unsafe { core_foundation_sys::base::CFRetain(item.as_CFTypeRef()) };
            let Some(identity) = Owned::take(identity as SecIdentityRef) else {
                continue;
            };
            let mut entry = Identity {
                identity,
                certificate_der: Vec::new(),
            };
            if let Some(cert) = entry.certificate() {
                // SAFETY: cert is a valid SecCertificateRef; the result is a +1 CFData.
                let data = unsafe { SecCertificateCopyData(cert.as_ptr()) };
                if !data.is_null() {
                    // SAFETY: +1 CFData owned by the wrapper.
                    entry.certificate_der =
                        unsafe { CFData::wrap_under_create_rule(data) }.to_vec();
                }
            }
            found.push(entry);
        }
        Ok(found)
    }

    /// The live identity (latest notAfter) and the leftovers of an interrupted replacement.
    fn chosen(&self, keychain: &Owned) -> Result<Option<model::Chosen<Identity>>, StoreError> {
        let candidates = self
            .identities(keychain)?
            .into_iter()
            .filter_map(|id| {
                let info = CertificateInfo::parse(&id.certificate_der).ok()?;
                Some((info.not_after, id))
            })
            .collect();
        Ok(model::choose_identity(candidates))
    }

    /// SecKeychainItemDelete on the identity's certificate and private key.
    fn delete_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        if let Ok(key) = identity.private_key() {
            // SAFETY: a file-keychain SecKeyRef is a SecKeychainItemRef.
            let status = unsafe { SecKeychainItemDelete(key.as_ptr()) };
            if status != 0 && status != ERR_SEC_ITEM_NOT_FOUND {
                return Err(self.err("deleting an old private key", status));
            }
        }
        if let Some(cert) = identity.certificate() {
            // SAFETY: a keychain SecCertificateRef is a SecKeychainItemRef.
            let status = unsafe { SecKeychainItemDelete(cert.as_ptr()) };
            if status != 0 && status != ERR_SEC_ITEM_NOT_FOUND {
                return Err(self.err("deleting an old certificate", status));
            }
        }
        Ok(())
    }

    /// SecItemImport of the key as PKCS#1 DER (kSecFormatOpenSSL, private key) into
    /// okta.keychain, from memory: no PKCS#12, nothing on disk. Returns the imported items.
    fn import_key(&self, keychain: &Owned, key: &PrivateKey) -> Result<Vec<Owned>, StoreError> {
        use der::Decode;
        // A PKCS#8 PrivateKeyInfo carries the PKCS#1 RSAPrivateKey DER as its privateKey.
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|e| StoreError::Unsupported(e.to_string()))?;
        let der = pkcs8::PrivateKeyInfo::from_der(&pkcs8)
            .map_err(|e| StoreError::Unsupported(e.to_string()))?
            .private_key;
        let data = CFData::from_buffer(der);
        let mut format = kSecFormatOpenSSL;
        let mut item_type = ITEM_TYPE_PRIVATE_KEY;
        let params = SecItemImportExportKeyParameters {
            version: SEC_KEY_IMPORT_EXPORT_PARAMS_VERSION,
            flags: 0,
            passphrase: ptr::null(),
            alertTitle: ptr::null(),
            alertPrompt: ptr::null(),
            accessRef: ptr::null_mut(),
            keyUsage: ptr::null(),
            keyAttributes: ptr::null(),
        };
        let mut items: CFArrayRef = ptr::null();
        // SAFETY: data, params and keychain are valid for the call; format and type are
        // in/out; items gets a +1 CFArray or NULL.
        let status = unsafe {
            SecItemImport(
                data.as_concrete_TypeRef(),
                ptr::null(),
                &mut format,
                &mut item_type,
                0,
                &params,
                keychain.as_ptr(),
                &mut items,
            )
        };
        let imported: Vec<Owned> = if items.is_null() {
            Vec::new()
        } else {
            // SAFETY: a +1 CFArray; each element retained for its own Owned.
            let array = unsafe { CFArray::<CFType>::wrap_under_create_rule(items) };
            array
                .iter()
                .filter_map(|i| {
                    Owned::take(
                        unsafe { core_foundation_sys::base::CFRetain(i.as_CFTypeRef()) }
                            as *mut c_void,
                    )
                })
                .collect()
        };
        if status != 0 {
            return Err(self.err("importing the private key", status));
        }
        Ok(imported)
    }

    /// SecCertificateCreateWithData + SecCertificateAddToKeychain; a duplicate is fine.
    fn add_certificate(&self, keychain: &Owned, der: &[u8]) -> Result<Option<Owned>, StoreError> {
        let data = CFData::from_buffer(der);
        // SAFETY: data is a valid CFData; the result is a +1 SecCertificateRef or NULL.
        let cert = unsafe { SecCertificateCreateWithData(ptr::null(), data.as_concrete_TypeRef()) };
        let cert = Owned::take(cert).ok_or_else(|| StoreError::Damaged {
            path: self.path.clone(),
            what: "the new certificate",
            reason: "Security could not parse it".to_owned(),
        })?;
        // SAFETY: cert and keychain are valid references.
        let status = unsafe { SecCertificateAddToKeychain(cert.as_ptr(), keychain.as_ptr()) };
        match status {
            0 => Ok(Some(cert)),
            ERR_SEC_DUPLICATE_ITEM => Ok(None),
            _ => Err(self.err("adding the certificate", status)),
        }
    }

    /// The live identity's private key, as a keychain item for its ACL.
    fn live_key(&self) -> Result<Option<(Owned, Secret)>, StoreError> {
        let Some((keychain, Some(password))) = self.existing()? else {
            return Ok(None);
        };
        let Some(chosen) = self.chosen(&keychain)? else {
            return Ok(None);
        };
        let key = chosen
            .live
            .private_key()
            .map_err(|s| self.err("reading the private key", s))?;
        Ok(Some((key, password)))
    }

    /// The key's partition list: SecKeychainItemCopyAccess, then the ACL entry with
    /// authorization ACLAuthorizationPartitionID (SecAccessCopyMatchingACLList +
    /// SecACLCopyContents), whose description `keychain_model` decodes.
    fn read_partitions(&self) -> Result<Vec<Partition>, StoreError> {
        let Some((key, _)) = self.live_key()? else {
            return Ok(Vec::new());
        };
        let access = self.item_access(&key)?;
        let tag = CFString::new(model::PARTITION_AUTHORIZATION);
        let Some(acl) = self.acls(&access, &tag).into_iter().next() else {
            return Ok(Vec::new());
        };
        let (_, description, _) = self.acl_contents(acl.as_ptr())?;
        model::decode_partition_description(&description.to_string()).map_err(|e| {
            StoreError::Damaged {
                path: self.path.clone(),
                what: "the key's partition list",
                reason: e.to_string(),
            }
        })
    }

    fn item_access(&self, item: &Owned) -> Result<Owned, StoreError> {
        let mut access: SecAccessRef = ptr::null_mut();
        // SAFETY: item is a valid keychain item; the out-parameter gets a +1 SecAccessRef.
        let status = unsafe { SecKeychainItemCopyAccess(item.as_ptr(), &mut access) };
        match Owned::take(access) {
            Some(a) if status == 0 => Ok(a),
            _ => Err(self.err("reading the key's access", status)),
        }
    }

    /// What `security set-key-partition-list -S <list> -k <password>` does, in-process:
    /// rewrite (or create) the partition ACL entry, then SecKeychainItemSetAccessWithPassword
    /// with the keychain password, which authorises the change without a dialog.
    fn write_partitions(&self, list: &[Partition]) -> Result<(), StoreError> {
        let Some((key, password)) = self.live_key()? else {
            return Err(StoreError::Unsupported(
                "no key in okta.keychain to set apps on".to_owned(),
            ));
        };
        let access = self.item_access(&key)?;
        let tag = CFString::new(model::PARTITION_AUTHORIZATION);
        let description = CFString::new(&model::encode_partition_description(list));
        match self.acls(&access, &tag).into_iter().next() {
            Some(acl) => {
                let (apps, _, prompt) = self.acl_contents(acl.as_ptr())?;
                let apps_ptr = apps.as_ref().map_or(ptr::null(), |a| a.0 as CFArrayRef);
                // SAFETY: acl belongs to access; apps is NULL or a valid CFArray.
                let status = unsafe {
                    SecACLSetContents(
                        acl.as_ptr(),
                        apps_ptr,
                        description.as_concrete_TypeRef(),
                        prompt,
                    )
                };
                if status != 0 {
                    return Err(self.err("writing the key's partition list", status));
                }
            }
            None => {
                let mut acl: SecAclRef = ptr::null_mut();
                // SAFETY: access is valid; NULL app list; the out-parameter gets a +1 SecACLRef.
                let status = unsafe {
                    SecACLCreateWithSimpleContents(
                        access.as_ptr(),
                        ptr::null(),
                        description.as_concrete_TypeRef(),
                        0,
                        &mut acl,
                    )
                };
                let acl = match Owned::take(acl) {
                    Some(a) if status == 0 => a,
                    _ => return Err(self.err("adding the key's partition list", status)),
                };
                let tags = CFArray::from_CFTypes(&[tag.as_CFType()]);
                // SAFETY: acl is valid; tags a CFArray of authorization strings.
                let status =
                    unsafe { SecACLUpdateAuthorizations(acl.as_ptr(), tags.as_concrete_TypeRef()) };
                if status != 0 {
                    return Err(self.err("adding the key's partition list", status));
                }
            }
        }
        let bytes = password.expose().as_bytes();
        // SAFETY: key and access are valid; the password buffer outlives the call.
        let status = unsafe {
            SecKeychainItemSetAccessWithPassword(
                key.as_ptr(),
                access.as_ptr(),
                bytes.len() as u32,
                bytes.as_ptr().cast(),
            )
        };
        if status != 0 {
            return Err(self.err("saving the key's partition list", status));
        }
        Ok(())
    }
}

impl IdentityStore for KeychainStore {
    fn location(&self) -> String {
        format!("keychain:{}", self.path.display())
    }

    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: Some(self.exists()),
            password_item: Some(matches!(self.find_password(false), Ok(Some(_)))),
        }
    }

    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((keychain, _)) = self.existing()? else {
            return Ok(None);
        };
        Ok(self.chosen(&keychain)?.map(|c| c.live.certificate_der))
    }

    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        let Some((keychain, _)) = self.existing()? else {
            return Ok(None);
        };
        let Some(chosen) = self.chosen(&keychain)? else {
            return Ok(None);
        };
        match chosen.live.private_key() {
            Ok(key) => Ok(Some(Box::new(KeychainKey(key)))),
            Err(ERR_SEC_ITEM_NOT_FOUND) => Ok(None),
            Err(status) => Err(self.err("reading the private key", status)),
        }
    }

    /// Import the new key and certificate, check the new identity is findable, and only then
    /// delete the old ones (spec section 9, defect 3). A crash in between leaves two
    /// identities; `choose_identity` picks the newer and the next replace sweeps the other.
    fn generate_key(&mut self, bits: u32) -> Result<Box<dyn NewKey>, StoreError> {
        let key = PrivateKey::generate_rsa(bits as usize).map_err(StoreError::KeyGeneration)?;
        Ok(Box::new(key))
    }

    fn replace(&mut self, identity: CheckedIdentity, _record: &[u8]) -> Result<(), StoreError> {
        let (key, certificate, chain) = identity.into_parts();
        let key = key.into_any().downcast::<PrivateKey>().map_err(|_| {
            StoreError::Unsupported("a key generated by another store cannot be kept here".into())
        })?;
        let certificate_der = certificate.der.as_slice();
        let (keychain, _password) = self.ensure()?;
        let imported_keys = self.import_key(&keychain, &key)?;
        let cert = match self.add_certificate(&keychain, certificate_der) {
            Ok(c) => c,
            Err(e) => {
                for key in &imported_keys {
                    // SAFETY: a key we just imported; best-effort rollback.
                    unsafe { SecKeychainItemDelete(key.as_ptr()) };
                }
                return Err(e);
            }
        };
        for ca in &chain {
            // Issuer certificates help clients build the chain; a failure is not fatal.
            if let Err(e) = self.add_certificate(&keychain, ca) {
                tracing::debug!("issuer certificate not added: {e}");
            }
        }
        let all = self.identities(&keychain)?;
        if !all
            .iter()
            .any(|i| i.certificate_der == certificate_der)
        {
            for key in &imported_keys {
                // SAFETY: items we just added; best-effort rollback.
                unsafe { SecKeychainItemDelete(key.as_ptr()) };
            }
            if let Some(cert) = &cert {
                // SAFETY: as above.
                unsafe { SecKeychainItemDelete(cert.as_ptr()) };
            }
            return Err(StoreError::Os {
                path: self.path.clone(),
                action: "checking the new identity",
                reason: "the imported key and certificate do not form an identity".to_owned(),
            });
        }
        crate::failpoint::hit("store.new-written");
        for old in all
            .iter()
            .filter(|i| i.certificate_der != certificate_der)
        {
            self.delete_identity(old)?;
        }
        Ok(())
    }

    fn remove(&mut self) -> Result<bool, StoreError> {
        let mut removed = false;
        if self.exists() {
            let keychain = self.open()?;
            if let Some(p) = self.read_password()? {
                // Unlocked so the identity's items can be deleted cleanly before the file goes.
                let _ = self.unlock(&keychain, &p);
            }
            if let Some(chosen) = self.chosen(&keychain).ok().flatten() {
                for id in std::iter::once(&chosen.live).chain(chosen.leftovers.iter()) {
                    self.delete_identity(id)?;
                }
            }
            // SecKeychainDelete removes the file; the search-list entry is dropped explicitly.
            // SAFETY: keychain is a valid SecKeychainRef.
            let status = unsafe { SecKeychainDelete(keychain.0) };
            if status != 0 {
                return Err(self.err("deleting okta.keychain", status));
            }
            removed = true;
        }
        self.edit_search_list(|current| model::search_list_without(current, &self.path))?;
        removed |= self.delete_password_item()?;
        Ok(removed)
    }

    fn has_partition_list(&self) -> bool {
        true
    }

    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        Some(self.read_partitions())
    }

    fn set_partition_list(&mut self, list: &[Partition]) -> Option<Result<(), StoreError>> {
        Some(self.write_partitions(list))
    }
}

/// The device key inside okta.keychain: it never leaves; Security signs and decrypts.
struct KeychainKey(Owned);

impl SigningKey for KeychainKey {
    /// SecKeyCopyPublicKey + SecKeyCopyExternalRepresentation (PKCS#1), wrapped as SPKI.
    fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
        // SAFETY: self.0 is a valid SecKeyRef; the result is a +1 SecKeyRef or NULL.
        let public =
            Owned::take(unsafe { SecKeyCopyPublicKey(self.0.as_ptr()) }).ok_or_else(|| {
                PkiError::InvalidPublicKey("the keychain key has no public key".to_owned())
            })?;
        let mut error: CFErrorRef = ptr::null_mut();
        // SAFETY: public is valid; the result is a +1 CFData or NULL with error set.
        let data: CFDataRef =
            unsafe { SecKeyCopyExternalRepresentation(public.as_ptr(), &mut error) };
        if data.is_null() {
            return Err(PkiError::InvalidPublicKey(cf_error_text(error)));
        }
        // SAFETY: +1 CFData owned by the wrapper.
        let pkcs1 = unsafe { CFData::wrap_under_create_rule(data) };
        model::rsa_pkcs1_to_spki(&pkcs1)
    }

    /// SecKeyCreateSignature with RSASignatureMessagePKCS1v15SHA256 (Security hashes).
    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        let data = CFData::from_buffer(message);
        let mut error: CFErrorRef = ptr::null_mut();
        // SAFETY: key, algorithm constant and data are valid; +1 CFData or NULL with error.
        let sig = unsafe {
            SecKeyCreateSignature(
                self.0.as_ptr(),
                kSecKeyAlgorithmRSASignatureMessagePKCS1v15SHA256,
                data.as_concrete_TypeRef(),
                &mut error,
            )
        };
        if sig.is_null() {
            return Err(PkiError::Signing(cf_error_text(error)));
        }
        // SAFETY: +1 CFData owned by the wrapper.
        Ok(unsafe { CFData::wrap_under_create_rule(sig) }.to_vec())
    }

    /// SecKeyCreateDecryptedData with RSAEncryptionPKCS1; the error detail is dropped so it
    /// cannot serve as a padding oracle (as with the in-memory key).
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let data = CFData::from_buffer(ciphertext);
        let mut error: CFErrorRef = ptr::null_mut();
        // SAFETY: key, algorithm constant and data are valid; +1 CFData or NULL with error.
        let plain = unsafe {
            SecKeyCreateDecryptedData(
                self.0.as_ptr(),
                kSecKeyAlgorithmRSAEncryptionPKCS1,
                data.as_concrete_TypeRef(),
                &mut error,
            )
        };
        if plain.is_null() {
            let _ = cf_error_text(error);
            return Err(PkiError::Decryption);
        }
        // SAFETY: +1 CFData owned by the wrapper; copied into a zeroizing buffer.
        let plain = unsafe { CFData::wrap_under_create_rule(plain) };
        Ok(Zeroizing::new(plain.to_vec()))
    }
}
