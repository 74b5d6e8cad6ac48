//! The portable Unix platform: /etc/machine-id, gethostname(2) and the password database.
//!
//! It serves Linux (development, CI, the demo); on macOS `macos.rs` is used and this module
//! lends it the password-database lookup.

use super::{Platform, PlatformError};
use std::ffi::{CStr, CString};
use std::path::PathBuf;

pub struct UnixPlatform;

impl Platform for UnixPlatform {
    fn device_uuid(&self) -> Result<String, PlatformError> {
        let raw = std::fs::read_to_string("/etc/machine-id")
            .map_err(|e| PlatformError::NoDeviceUuid(format!("/etc/machine-id: {e}")))?;
        machine_id_as_uuid(raw.trim())
            .ok_or_else(|| PlatformError::NoDeviceUuid("/etc/machine-id is malformed".into()))
    }

    fn device_name(&self) -> Result<String, PlatformError> {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
        // when the name fits, and we bound the read to the buffer either way.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc != 0 {
            return Err(PlatformError::NoDeviceName(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
        if name.is_empty() {
            return Err(PlatformError::NoDeviceName("empty host name".into()));
        }
        Ok(name)
    }

    fn console_user(&self) -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if uid == 0 {
            return std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty());
        }
        user_name(uid)
    }

    fn home_dir(&self, user: &str) -> PathBuf {
        home_of(user).unwrap_or_else(|| {
            if user == "root" {
                PathBuf::from("/root")
            } else if cfg!(target_os = "macos") {
                PathBuf::from("/Users").join(user)
            } else {
                PathBuf::from("/home").join(user)
            }
        })
    }

    fn os_version(&self) -> String {
        // Okta's task reports the macOS version; elsewhere report the version every Mac
        // browser claims, which is what the User-Agent grammar expects.
        "10_15_7".into()
    }
}

/// A 32-hex-digit machine id shaped as an uppercase hardware UUID.
fn machine_id_as_uuid(id: &str) -> Option<String> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let u = id.to_ascii_uppercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &u[0..8],
        &u[8..12],
        &u[12..16],
        &u[16..20],
        &u[20..32]
    ))
}

fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; the strings read below live in `buf`.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string in `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Looks `user` up in the password database and hands the entry to `read`, while the
/// strings it points to are still alive in the lookup's buffer.
fn with_passwd<T>(user: &str, read: impl FnOnce(&libc::passwd) -> Option<T>) -> Option<T> {
    let c_user = CString::new(user).ok()?;
    // SAFETY: passwd is plain old data; all-zero is a valid (empty) value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; the entry's strings live in `buf`, which
    // outlives `read`.
    let rc = unsafe {
        libc::getpwnam_r(
            c_user.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    read(&pwd)
}

/// The numeric id the password database records for `user` (`launchctl asuser` takes it).
#[cfg(target_os = "macos")]
pub(super) fn uid_of(user: &str) -> Option<libc::uid_t> {
    with_passwd(user, |pwd| Some(pwd.pw_uid))
}

/// The home folder the password database (Open Directory on macOS) records for `user`.
pub(super) fn home_of(user: &str) -> Option<PathBuf> {
    with_passwd(user, |pwd| {
        if pwd.pw_dir.is_null() {
            return None;
        }
        // SAFETY: the lookup succeeded, so pw_dir points to a NUL-terminated string in the
        // lookup's buffer, alive for this call.
        let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
        Some(PathBuf::from(dir.to_string_lossy().into_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_database_gives_homes_and_knows_who_is_missing() {
        assert_eq!(
            home_of("root"),
            Some(PathBuf::from(if cfg!(target_os = "macos") {
                "/var/root"
            } else {
                "/root"
            }))
        );
        assert_eq!(home_of("no-such-user-devicetrust"), None);
        assert_eq!(home_of("nul\0byte"), None);
    }

    #[test]
    fn machine_id_becomes_a_hardware_uuid() {
        assert_eq!(
            machine_id_as_uuid("0123456789abcdef0123456789abcdef").as_deref(),
            Some("01234567-89AB-CDEF-0123-456789ABCDEF")
        );
        assert_eq!(machine_id_as_uuid("short"), None);
        assert_eq!(machine_id_as_uuid("0123456789abcdef0123456789abcdeg"), None);
    }
}
