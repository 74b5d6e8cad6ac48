//! Chrome's and Edge's `AutoSelectCertificateForUrls` on macOS, through CFPreferences: read the
//! effective value, see whether a profile forces it, write the merged list for the user.
//!
//! Writing goes through `CFPreferencesSetValue` + `CFPreferencesSynchronize` so cfprefsd (which
//! caches every domain) sees it; plist files are never edited behind its back. What to write is
//! `chrome::plan`'s decision; the list conversions are pure and tested on every OS.

// The conversions are used by the macOS backend; elsewhere only by their tests.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use crate::integrations::chrome::{self, Plan, PolicySource};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum PreferencesError {
    #[error(
        "{domain} {key} holds something other than a list of strings; devicetrust leaves it alone"
    )]
    NotStrings { domain: String, key: String },
    #[error("cannot write {key} to {domain}: {reason}")]
    Write {
        domain: String,
        key: String,
        reason: &'static str,
    },
}

/// A preference list as the policy model takes it: every item a JSON string value.
pub fn values_from_strings(items: Vec<String>) -> Vec<Value> {
    items.into_iter().map(Value::String).collect()
}

/// The list to store back: only strings (the policy's type); `None` if any item is not one, so
/// a merge can never turn another tool's item into something else.
pub fn strings_from_values(items: &[Value]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// One domain's current value as the backend read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// `None` when the key is set to something that is not a list of strings.
    pub items: Option<Vec<String>>,
    pub source: PolicySource,
}

/// The plan for one domain, or why there is none.
pub fn plan_for(
    domain: &str,
    current: &Current,
    ours: &str,
    removal: bool,
) -> Result<Plan, PreferencesError> {
    let items = match (&current.items, current.source) {
        (Some(items), _) => values_from_strings(items.clone()),
        (None, PolicySource::Absent) => Vec::new(),
        (None, _) => {
            return Err(PreferencesError::NotStrings {
                domain: domain.to_owned(),
                key: chrome::POLICY_KEY.to_owned(),
            })
        }
    };
    Ok(if removal {
        chrome::plan_removal(&items, current.source, ours)
    } else {
        chrome::plan(&items, current.source, ours)
    })
}

/// Whether the effective value carries our entry (a managed value with it counts).
pub fn is_present(current: &Current, ours: &str) -> bool {
    current
        .items
        .as_ref()
        .is_some_and(|items| chrome::contains(&values_from_strings(items.clone()), ours))
}

#[cfg(target_os = "macos")]
pub use imp::{apply, present_everywhere, remove};

#[cfg(target_os = "macos")]
mod imp {
    use super::{plan_for, strings_from_values, Current, PreferencesError};
    use crate::integrations::chrome::{self, PolicySource};
    use std::ffi::c_void;

    type CFTypeRef = *const c_void;
    type CFStringRef = *const c_void;
    type CFArrayRef = *const c_void;
    type CFAllocatorRef = *const c_void;
    type CFIndex = isize;
    type CFTypeID = usize;
    type Boolean = u8;

    #[repr(C)]
    struct CFArrayCallBacks {
        _private: [u8; 0],
    }

    #[link(name = "CoreFoundation", kind = "framework")]
    extern "C" {
        static kCFPreferencesCurrentUser: CFStringRef;
        static kCFPreferencesAnyHost: CFStringRef;
        static kCFTypeArrayCallBacks: CFArrayCallBacks;

        fn CFGetTypeID(cf: CFTypeRef) -> CFTypeID;
        fn CFArrayGetTypeID() -> CFTypeID;
        fn CFArrayCreate(
            alloc: CFAllocatorRef,
            values: *const CFTypeRef,
            count: CFIndex,
            callbacks: *const CFArrayCallBacks,
        ) -> CFArrayRef;
        fn CFArrayGetCount(array: CFArrayRef) -> CFIndex;
        fn CFArrayGetValueAtIndex(array: CFArrayRef, index: CFIndex) -> CFTypeRef;

        fn CFPreferencesCopyAppValue(key: CFStringRef, app: CFStringRef) -> CFTypeRef;
        fn CFPreferencesAppValueIsForced(key: CFStringRef, app: CFStringRef) -> Boolean;
        fn CFPreferencesSetValue(
            key: CFStringRef,
            value: CFTypeRef,
            app: CFStringRef,
            user: CFStringRef,
            host: CFStringRef,
        );
        fn CFPreferencesSynchronize(
            app: CFStringRef,
            user: CFStringRef,
            host: CFStringRef,
        ) -> Boolean;
    }

    use crate::platform::cf::{text_of, Owned};

    /// The items of a CFArray of CFStrings; `None` if it is not one.
    fn strings_of(array: &Owned) -> Option<Vec<String>> {
        // SAFETY: array.0 is a live CF object we own.
        if unsafe { CFGetTypeID(array.0) != CFArrayGetTypeID() } {
            return None;
        }
        // SAFETY: array.0 is a live CFArray.
        let count = unsafe { CFArrayGetCount(array.0) };
        (0..count)
            // SAFETY: 0 <= i < count; the element is borrowed (Get rule), alive with the array.
            .map(|i| text_of(unsafe { CFArrayGetValueAtIndex(array.0, i) }))
            .collect()
    }

    fn read(domain: &str) -> Option<Current> {
        let key = Owned::string(chrome::POLICY_KEY)?;
        let app = Owned::string(domain)?;
        // SAFETY: key and app are live CFStrings; the result follows the Copy rule.
        let value = Owned::new(unsafe { CFPreferencesCopyAppValue(key.0, app.0) });
        // SAFETY: as above; no ownership is transferred.
        let forced = unsafe { CFPreferencesAppValueIsForced(key.0, app.0) } != 0;
        Some(match value {
            None => Current {
                items: Some(Vec::new()),
                source: PolicySource::Absent,
            },
            Some(value) => Current {
                items: strings_of(&value),
                source: if forced {
                    PolicySource::Managed
                } else {
                    PolicySource::User
                },
            },
        })
    }

    fn write(domain: &str, items: &[String]) -> Result<(), PreferencesError> {
        let failed = |reason| PreferencesError::Write {
            domain: domain.to_owned(),
            key: chrome::POLICY_KEY.to_owned(),
            reason,
        };
        let key = Owned::string(chrome::POLICY_KEY).ok_or_else(|| failed("bad key"))?;
        let app = Owned::string(domain).ok_or_else(|| failed("bad domain"))?;
        let strings: Vec<Owned> = items
            .iter()
            .map(|s| Owned::string(s))
            .collect::<Option<_>>()
            .ok_or_else(|| failed("an item is not valid text"))?;
        let pointers: Vec<CFTypeRef> = strings.iter().map(|s| s.0).collect();
        let count = CFIndex::try_from(pointers.len()).map_err(|_| failed("too many items"))?;
        // SAFETY: `pointers` holds `count` live CFStrings; the type callbacks retain each, so
        // the array stays valid after `strings` is dropped. The result follows the Create rule.
        let array = Owned::new(unsafe {
            CFArrayCreate(
                std::ptr::null(),
                pointers.as_ptr(),
                count,
                &kCFTypeArrayCallBacks,
            )
        })
        .ok_or_else(|| failed("cannot build the list"))?;
        // SAFETY: all arguments are live CF objects; the user/host constants are CF globals.
        // SetValue retains what it keeps.
        let synced = unsafe {
            CFPreferencesSetValue(
                key.0,
                array.0,
                app.0,
                kCFPreferencesCurrentUser,
                kCFPreferencesAnyHost,
            );
            CFPreferencesSynchronize(app.0, kCFPreferencesCurrentUser, kCFPreferencesAnyHost)
        };
        if synced == 0 {
            return Err(failed("cfprefsd did not accept the change"));
        }
        Ok(())
    }

    /// Puts our entry in each browser's domain; returns the changes to print. A profile-forced
    /// value is never overwritten: its note becomes a `WARN:`.
    pub fn apply(ours: &str) -> Vec<String> {
        change(ours, false)
    }

    /// Takes only our entry out of each browser's user domain (uninstall).
    pub fn remove(ours: &str) -> Vec<String> {
        change(ours, true)
    }

    fn change(ours: &str, removal: bool) -> Vec<String> {
        let mut changes = Vec::new();
        for domain in chrome::MACOS_DOMAINS {
            let Some(current) = read(domain) else {
                tracing::warn!("cannot read {} from {domain}", chrome::POLICY_KEY);
                continue;
            };
            let plan = match plan_for(domain, &current, ours, removal) {
                Ok(plan) => plan,
                Err(e) => {
                    tracing::warn!("{e}");
                    continue;
                }
            };
            if let Some(note) = plan.note {
                tracing::warn!("{domain}: {note}");
            }
            let Some(items) = plan.write else {
                continue;
            };
            let Some(items) = strings_from_values(&items) else {
                tracing::warn!(
                    "{domain}: the merged {} is not all strings",
                    chrome::POLICY_KEY
                );
                continue;
            };
            match write(domain, &items) {
                Ok(()) if removal => changes.push(format!(
                    "removed our {} entry from {domain}",
                    chrome::POLICY_KEY
                )),
                Ok(()) => changes.push(format!(
                    "browser auto-selection written to {domain} {}",
                    chrome::POLICY_KEY
                )),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        changes
    }

    /// The health link: every browser domain's effective value carries our entry.
    pub fn present_everywhere(ours: &str) -> bool {
        chrome::MACOS_DOMAINS
            .iter()
            .all(|domain| read(domain).is_some_and(|c| super::is_present(&c, ours)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = r#"{"pattern":"https://acme.okta.com","filter":{"ISSUER":{"CN":"MTLS Certificate Authority"}}}"#;

    #[test]
    fn lists_convert_both_ways_and_refuse_non_strings() {
        let items = vec!["a".to_owned(), OURS.to_owned()];
        let values = values_from_strings(items.clone());
        assert_eq!(strings_from_values(&values), Some(items));
        assert_eq!(
            strings_from_values(&[Value::String("a".into()), Value::Bool(true)]),
            None
        );
    }

    #[test]
    fn a_user_value_is_merged_and_a_managed_one_only_noted() {
        let other = r#"{"pattern":"https://other","filter":{}}"#.to_owned();
        let user = Current {
            items: Some(vec![other.clone()]),
            source: PolicySource::User,
        };
        let plan = plan_for("com.google.Chrome", &user, OURS, false).unwrap();
        assert_eq!(
            plan.write.as_deref().and_then(strings_from_values),
            Some(vec![other.clone(), OURS.to_owned()])
        );
        let managed = Current {
            source: PolicySource::Managed,
            ..user.clone()
        };
        let plan = plan_for("com.google.Chrome", &managed, OURS, false).unwrap();
        assert_eq!(plan.write, None);
        assert!(plan.note.is_some());
        let absent = Current {
            items: Some(Vec::new()),
            source: PolicySource::Absent,
        };
        let plan = plan_for("com.microsoft.Edge", &absent, OURS, false).unwrap();
        assert_eq!(plan.write, Some(vec![Value::String(OURS.into())]));
    }

    #[test]
    fn removal_takes_only_ours_and_never_touches_a_profile() {
        let other = "not json".to_owned();
        let user = Current {
            items: Some(vec![other.clone(), OURS.into(), OURS.into()]),
            source: PolicySource::User,
        };
        let plan = plan_for("com.google.Chrome", &user, OURS, true).unwrap();
        assert_eq!(plan.write, Some(vec![Value::String(other)]));
        let managed = Current {
            source: PolicySource::Managed,
            ..user
        };
        let plan = plan_for("com.google.Chrome", &managed, OURS, true).unwrap();
        assert_eq!(plan.write, None);
        assert!(plan.note.is_some());
    }

    #[test]
    fn a_value_of_the_wrong_type_is_left_alone() {
        let odd = Current {
            items: None,
            source: PolicySource::User,
        };
        assert!(matches!(
            plan_for("com.google.Chrome", &odd, OURS, false),
            Err(PreferencesError::NotStrings { .. })
        ));
        assert!(!is_present(&odd, OURS));
    }

    #[test]
    fn a_managed_value_with_our_entry_counts_as_present() {
        let managed = Current {
            items: Some(vec![OURS.replace(',', ", ")]),
            source: PolicySource::Managed,
        };
        assert!(is_present(&managed, OURS));
    }
}
