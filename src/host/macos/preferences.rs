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

/// Whether the effective value carries our entry and no other of ours (a managed value with
/// it counts).
pub fn is_present(current: &Current, ours: &str) -> bool {
    current
        .items
        .as_ref()
        .is_some_and(|items| chrome::holds_only_ours(&values_from_strings(items.clone()), ours))
}

/// One domain as a plan sees it, from its current value (`None`: it could not be read).
pub fn seen(
    domain: &str,
    current: Option<&Current>,
    entry: Option<&str>,
    older_hosts: &[String],
) -> chrome::Seen {
    let mut seen = chrome::Seen {
        browser: domain.to_owned(),
        decided_by: None,
        ours_to_write: true,
        holds_ours: None,
        holds_older: false,
        unusable: None,
    };
    let Some(current) = current else {
        seen.unusable = Some(format!(
            "{} cannot be read from {domain}",
            chrome::POLICY_KEY
        ));
        return seen;
    };
    seen.decided_by = match current.source {
        PolicySource::Managed => Some("a configuration profile".to_owned()),
        PolicySource::User => Some("the user's preferences".to_owned()),
        PolicySource::Absent => None,
    };
    seen.ours_to_write = current.source != PolicySource::Managed;
    match &current.items {
        Some(items) => {
            let items = values_from_strings(items.clone());
            seen.holds_ours = entry.map(|e| chrome::holds_only_ours(&items, e));
            seen.holds_older = chrome::holds_older(&items, entry, older_hosts);
        }
        None => {
            seen.holds_ours = entry.map(|_| false);
            seen.unusable = Some(
                PreferencesError::NotStrings {
                    domain: domain.to_owned(),
                    key: chrome::POLICY_KEY.to_owned(),
                }
                .to_string(),
            );
        }
    }
    seen
}

#[cfg(target_os = "macos")]
pub use imp::{apply, present_everywhere, present_in, remove, survey};

#[cfg(target_os = "macos")]
mod imp {
    use super::{plan_for, strings_from_values, Current, PreferencesError};
    use crate::integrations::chrome::{self, PolicySource};
    use crate::platform::cf::{text_of, Owned};
    use core_foundation::array::CFArray;
    use core_foundation::base::TCFType;
    use core_foundation::string::CFString;
    use std::ffi::c_void;

    type CFTypeRef = *const c_void;
    type CFStringRef = *const c_void;
    type Boolean = u8;

    #[link(name = "CoreFoundation", kind = "framework")]
    extern "C" {
        static kCFPreferencesCurrentUser: CFStringRef;
        static kCFPreferencesAnyHost: CFStringRef;

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

    /// The items of a CFArray of CFStrings; `None` if it is not one.
    fn strings_of(value: &Owned) -> Option<Vec<String>> {
        let array = value.cf().downcast::<CFArray>()?;
        array.iter().map(|item| text_of(*item)).collect()
    }

    fn read(domain: &str) -> Option<Current> {
        let key = Owned::string(chrome::POLICY_KEY);
        let app = Owned::string(domain);
        // SAFETY: key and app are live CFStrings. The value follows the Copy rule and goes to
        // `Owned` at once; IsForced returns a plain boolean.
        let (value, forced) = unsafe {
            (
                Owned::new(CFPreferencesCopyAppValue(key.raw(), app.raw())),
                CFPreferencesAppValueIsForced(key.raw(), app.raw()) != 0,
            )
        };
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
        let key = Owned::string(chrome::POLICY_KEY);
        let app = Owned::string(domain);
        let strings: Vec<CFString> = items.iter().map(|s| CFString::new(s)).collect();
        let array = CFArray::from_CFTypes(&strings);
        // SAFETY: key, array and app are live CF objects and the user/host constants are CF
        // globals; SetValue retains what it keeps, Synchronize takes no ownership.
        let synced = unsafe {
            CFPreferencesSetValue(
                key.raw(),
                array.as_CFTypeRef(),
                app.raw(),
                kCFPreferencesCurrentUser,
                kCFPreferencesAnyHost,
            );
            CFPreferencesSynchronize(app.raw(), kCFPreferencesCurrentUser, kCFPreferencesAnyHost)
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

    /// Takes our entries (this one, and older ones like it) out of each browser's user domain.
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

    /// Whether `domain`'s effective value carries our entry; `None` when it cannot be read.
    pub fn present_in(domain: &str, ours: &str) -> Option<bool> {
        read(domain).map(|c| super::is_present(&c, ours))
    }

    /// Every browser domain as a plan sees it. Reads only.
    pub fn survey(entry: Option<&str>, older_hosts: &[String]) -> Vec<chrome::Seen> {
        chrome::MACOS_DOMAINS
            .iter()
            .map(|domain| super::seen(domain, read(domain).as_ref(), entry, older_hosts))
            .collect()
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
