//! The macOS platform: IOKit's hardware UUID, SystemConfiguration's computer name and console
//! user, `sysctl` for the OS version; no `ioreg` or `system_profiler` subprocess.
//!
//! The FFI is thin and declared here (five CoreFoundation calls are not worth a crate); what can
//! be decided without a Mac (which console user counts, the User-Agent forms) is plain Rust
//! above the `ffi` module and tested on every OS.

// The pure helpers are only called from the macOS backend; elsewhere only their tests use them.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use super::PlatformError;

/// What `SCDynamicStoreCopyConsoleUser` returns when nobody is really logged in at the console:
/// the login window, Setup Assistant's user, or root (fast user switching in transit).
const NOT_A_CONSOLE_USER: [&str; 3] = ["loginwindow", "root", "_mbsetupuser"];

/// The console user worth acting for, from the name the dynamic store reports.
pub(crate) fn console_user_from(name: Option<&str>) -> Option<String> {
    let name = name?.trim();
    if name.is_empty() || NOT_A_CONSOLE_USER.contains(&name) {
        return None;
    }
    Some(name.to_owned())
}

/// `kern.osproductversion` (`15.1`, `10.15.7`) in the User-Agent form (`15_1`, `10_15_7`).
/// Anything else falls back to the version every Mac browser claims, so the header stays valid.
pub(crate) fn ua_os_version(product_version: &str) -> String {
    let v = product_version.trim();
    let well_formed = !v.is_empty()
        && v.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        v.replace('.', "_")
    } else {
        "10_15_7".to_owned()
    }
}

/// `ARM` or `Intel` as the User-Agent says it: the machine's, not the binary's, so an Intel
/// build running under Rosetta on Apple silicon still reports `ARM`.
pub(crate) fn ua_arch(binary_is_arm: bool, translated_by_rosetta: bool) -> &'static str {
    if binary_is_arm || translated_by_rosetta {
        "ARM"
    } else {
        "Intel"
    }
}

/// `IOPlatformUUID` checked for the 8-4-4-4-12 hex shape Okta keys devices on, uppercased.
pub(crate) fn hardware_uuid_from(raw: Option<&str>) -> Result<String, PlatformError> {
    let raw = raw
        .ok_or_else(|| PlatformError::NoDeviceUuid("IOKit has no IOPlatformUUID".into()))?
        .trim();
    let groups: Vec<&str> = raw.split('-').collect();
    let shaped = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !shaped {
        return Err(PlatformError::NoDeviceUuid(format!(
            "IOPlatformUUID {raw:?} is not a UUID"
        )));
    }
    Ok(raw.to_ascii_uppercase())
}

/// The ComputerName (System Settings > General > Sharing), which may hold any Unicode.
pub(crate) fn computer_name_from(raw: Option<&str>) -> Result<String, PlatformError> {
    match raw.map(str::trim) {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        Some(_) => Err(PlatformError::NoDeviceName(
            "the ComputerName is empty".into(),
        )),
        None => Err(PlatformError::NoDeviceName(
            "SystemConfiguration has no ComputerName".into(),
        )),
    }
}

#[cfg(target_os = "macos")]
pub use imp::MacPlatform;

#[cfg(target_os = "macos")]
mod imp {
    use super::super::{unix, Platform, PlatformError};
    use super::ffi;
    use std::path::PathBuf;

    pub struct MacPlatform;

    impl Platform for MacPlatform {
        fn device_uuid(&self) -> Result<String, PlatformError> {
            super::hardware_uuid_from(ffi::platform_uuid().as_deref())
        }

        fn device_name(&self) -> Result<String, PlatformError> {
            super::computer_name_from(ffi::computer_name().as_deref())
        }

        fn console_user(&self) -> Option<String> {
            super::console_user_from(ffi::console_user().as_deref())
        }

        fn home_dir(&self, user: &str) -> PathBuf {
            unix::home_of(user).unwrap_or_else(|| {
                if user == "root" {
                    PathBuf::from("/var/root")
                } else {
                    PathBuf::from("/Users").join(user)
                }
            })
        }

        fn arch(&self) -> &'static str {
            let translated = ffi::sysctl_int("sysctl.proc_translated") == Some(1);
            super::ua_arch(cfg!(target_arch = "aarch64"), translated)
        }

        fn os_version(&self) -> String {
            super::ua_os_version(&ffi::sysctl_string("kern.osproductversion").unwrap_or_default())
        }
    }
}

/// The CoreFoundation, IOKit and SystemConfiguration calls, each wrapped so that every object
/// the caller owns (Create/Copy rule) is released on every path.
#[cfg(target_os = "macos")]
mod ffi {
    use std::ffi::{c_char, c_void, CString};

    type CFTypeRef = *const c_void;
    type CFStringRef = *const c_void;
    type CFDictionaryRef = *const c_void;
    type CFAllocatorRef = *const c_void;
    type SCDynamicStoreRef = *const c_void;
    type CFStringEncoding = u32;
    type MachPort = u32;
    type IoObject = MachPort;
    type KernReturn = i32;

    /// `kIOMainPortDefault` (`kIOMasterPortDefault` before macOS 12): MACH_PORT_NULL.
    const K_IO_MAIN_PORT_DEFAULT: MachPort = 0;

    #[link(name = "CoreFoundation", kind = "framework")]
    extern "C" {}

    #[link(name = "IOKit", kind = "framework")]
    extern "C" {
        fn IOServiceMatching(name: *const c_char) -> CFDictionaryRef;
        fn IOServiceGetMatchingService(main_port: MachPort, matching: CFDictionaryRef) -> IoObject;
        fn IORegistryEntryCreateCFProperty(
            entry: IoObject,
            key: CFStringRef,
            allocator: CFAllocatorRef,
            options: u32,
        ) -> CFTypeRef;
        fn IOObjectRelease(object: IoObject) -> KernReturn;
    }

    #[link(name = "SystemConfiguration", kind = "framework")]
    extern "C" {
        fn SCDynamicStoreCopyComputerName(
            store: SCDynamicStoreRef,
            name_encoding: *mut CFStringEncoding,
        ) -> CFStringRef;
        fn SCDynamicStoreCopyConsoleUser(
            store: SCDynamicStoreRef,
            uid: *mut libc::uid_t,
            gid: *mut libc::gid_t,
        ) -> CFStringRef;
    }

    use crate::platform::cf::Owned;

    /// `IOPlatformUUID` of the IOPlatformExpertDevice: the Hardware UUID of System Information.
    pub fn platform_uuid() -> Option<String> {
        let class = CString::new("IOPlatformExpertDevice").ok()?;
        // SAFETY: `class` is a valid C string for the call. The returned dictionary is consumed
        // by IOServiceGetMatchingService below, so it is not released here.
        let matching = unsafe { IOServiceMatching(class.as_ptr()) };
        if matching.is_null() {
            return None;
        }
        // SAFETY: `matching` is a valid matching dictionary; the call takes its reference.
        let service = unsafe { IOServiceGetMatchingService(K_IO_MAIN_PORT_DEFAULT, matching) };
        if service == 0 {
            return None;
        }
        let key = Owned::string("IOPlatformUUID");
        // SAFETY: `service` is a live registry entry and `key` a live CFString; the result
        // follows the Create rule and is owned by `Owned`.
        let value = Owned::new(unsafe {
            IORegistryEntryCreateCFProperty(service, key.raw(), std::ptr::null(), 0)
        });
        // SAFETY: `service` came from IOServiceGetMatchingService, which returns a reference
        // we must release exactly once; the property was copied out above.
        unsafe { IOObjectRelease(service) };
        value?.text()
    }

    pub fn computer_name() -> Option<String> {
        // SAFETY: a NULL store asks configd directly; a NULL encoding pointer is allowed. The
        // result follows the Copy rule.
        Owned::new(unsafe {
            SCDynamicStoreCopyComputerName(std::ptr::null(), std::ptr::null_mut())
        })?
        .text()
    }

    pub fn console_user() -> Option<String> {
        let mut uid: libc::uid_t = 0;
        let mut gid: libc::gid_t = 0;
        // SAFETY: a NULL store asks configd directly; uid and gid are valid out-pointers. The
        // result follows the Copy rule.
        Owned::new(unsafe { SCDynamicStoreCopyConsoleUser(std::ptr::null(), &mut uid, &mut gid) })?
            .text()
    }

    pub fn sysctl_string(name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        let mut buf = [0u8; 256];
        let mut len = buf.len();
        // SAFETY: `name` is a C string; `buf` is writable for `len` bytes, and sysctl updates
        // `len` to what it wrote (failing with ENOMEM rather than overrunning).
        let rc = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return None;
        }
        let text = buf.get(..len.min(buf.len()))?;
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        std::str::from_utf8(text.get(..end)?)
            .ok()
            .map(str::to_owned)
    }

    pub fn sysctl_int(name: &str) -> Option<i32> {
        let name = CString::new(name).ok()?;
        let mut value: i32 = 0;
        let mut len = std::mem::size_of::<i32>();
        // SAFETY: `value` is writable for `len` bytes; sysctl writes at most that many.
        let rc = unsafe {
            libc::sysctlbyname(
                name.as_ptr(),
                (&mut value as *mut i32).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        // `sysctl.proc_translated` does not exist on Intel Macs: ENOENT means "not translated".
        (rc == 0 && len == std::mem::size_of::<i32>()).then_some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_window_setup_assistant_root_and_nobody_are_no_console_user() {
        for name in [
            None,
            Some(""),
            Some("  "),
            Some("loginwindow"),
            Some("root"),
            Some("_mbsetupuser"),
        ] {
            assert_eq!(console_user_from(name), None, "{name:?}");
        }
        assert_eq!(console_user_from(Some("alice")).as_deref(), Some("alice"));
        assert_eq!(
            console_user_from(Some("Alice Smith")).as_deref(),
            Some("Alice Smith")
        );
    }

    #[test]
    fn product_version_becomes_the_user_agent_form() {
        assert_eq!(ua_os_version("10.15.7"), "10_15_7");
        assert_eq!(ua_os_version("15.1\n"), "15_1");
        assert_eq!(ua_os_version("26.0.1"), "26_0_1");
        for garbage in ["", "15.", "15..1", "15.1 beta", "1x.2"] {
            assert_eq!(ua_os_version(garbage), "10_15_7", "{garbage:?}");
        }
    }

    #[test]
    fn rosetta_reports_the_machine_not_the_binary() {
        assert_eq!(ua_arch(true, false), "ARM");
        assert_eq!(ua_arch(false, true), "ARM");
        assert_eq!(ua_arch(false, false), "Intel");
    }

    #[test]
    fn hardware_uuid_is_checked_and_uppercased() {
        assert_eq!(
            hardware_uuid_from(Some("0f3c1d2e-4b5a-4c6d-8e9f-a0b1c2d3e4f5")).unwrap(),
            "0F3C1D2E-4B5A-4C6D-8E9F-A0B1C2D3E4F5"
        );
        for bad in [
            None,
            Some(""),
            Some("0F3C1D2E4B5A4C6D8E9FA0B1C2D3E4F5"),
            Some("0F3C1D2E-4B5A-4C6D-8E9F-A0B1C2D3E4FG"),
        ] {
            assert!(
                matches!(hardware_uuid_from(bad), Err(PlatformError::NoDeviceUuid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn computer_name_is_trimmed_and_must_not_be_empty() {
        assert_eq!(
            computer_name_from(Some(" Alice’s MacBook Pro ")).unwrap(),
            "Alice’s MacBook Pro"
        );
        assert!(matches!(
            computer_name_from(Some(" ")),
            Err(PlatformError::NoDeviceName(_))
        ));
        assert!(matches!(
            computer_name_from(None),
            Err(PlatformError::NoDeviceName(_))
        ));
    }
}
