//! Chrome's and Edge's `AutoSelectCertificateForUrls`: our entry, merged by parsed value, once.
//!
//! The policy is a list of strings, each a JSON object; other tools' entries are never touched.
//! On Linux it lives in managed policy files (written here); on macOS in preference domains,
//! for which this module decides what to write and the macOS backend writes it.

use crate::paths::rooted;
use crate::pki::CertificateInfo;
use crate::securefs::{self, FileKind, SecureDir, SecureFsError, DOCUMENT_MAX};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The policy's name, the same in every Chromium-based browser.
pub const POLICY_KEY: &str = "AutoSelectCertificateForUrls";
pub use crate::okta::OKTA_ISSUER_CN;
/// The agent's own file in each managed policy directory.
pub const OUR_FILE: &str = "devicetrust.json";
/// Where the macOS browsers read the policy (through CFPreferences).
pub const MACOS_DOMAINS: [&str; 2] = ["com.google.Chrome", "com.microsoft.Edge"];

#[derive(Debug, thiserror::Error)]
pub enum ChromeError {
    #[error("cannot read the browser policy: {0}")]
    Read(#[source] SecureFsError),
    #[error(
        "the browser policy file {path} is not usable ({reason}); devicetrust does not overwrite \
         it: fix or delete it"
    )]
    OwnFileUnusable { path: PathBuf, reason: String },
    #[error("cannot create the browser policy directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the browser policy: {0}")]
    Write(#[source] SecureFsError),
    #[error("cannot encode the browser policy: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Chrome's `ISSUER` filter for our certificate: the issuer fields Chrome matches on (`CN`,
/// `O`, `OU`), each as the stored certificate's issuer has it. Okta's device-trust CA has a CN
/// only, which gives exactly the spec's entry; a SCEP CA may have no CN at all (micromdm's
/// has an O and an OU), and a filter naming Okta's CN would never select its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerFilter {
    pub cn: Option<String>,
    pub o: Option<String>,
    pub ou: Option<String>,
}

impl IssuerFilter {
    /// The filter that selects certificates issued like `certificate`.
    pub fn of(certificate: &CertificateInfo) -> IssuerFilter {
        IssuerFilter {
            cn: certificate.issuer_cn.clone(),
            o: certificate.issuer_o.clone(),
            ou: certificate.issuer_ou.clone(),
        }
    }

    /// Okta's CA (`CN=MTLS Certificate Authority`), for when no certificate is stored yet.
    pub fn okta() -> IssuerFilter {
        IssuerFilter {
            cn: Some(OKTA_ISSUER_CN.to_owned()),
            o: None,
            ou: None,
        }
    }

    /// A filter with no field would select any certificate at all: never written.
    pub fn is_empty(&self) -> bool {
        self.cn.is_none() && self.o.is_none() && self.ou.is_none()
    }

    /// Whether Chrome would pick `certificate` with this filter: every field given matches
    /// (an O or OU matches any of the issuer's values of that attribute; we name the first).
    pub fn selects(&self, certificate: &CertificateInfo) -> bool {
        let same = |ours: &Option<String>, theirs: &Option<String>| {
            ours.as_ref().is_none_or(|o| Some(o) == theirs.as_ref())
        };
        !self.is_empty()
            && same(&self.cn, &certificate.issuer_cn)
            && same(&self.o, &certificate.issuer_o)
            && same(&self.ou, &certificate.issuer_ou)
    }
}

/// The policy string selecting our certificate on the certAuthDomain host.
///
/// Built by hand rather than through a `json!` map because the spec fixes the key order
/// (`pattern` before `filter`, then `CN`, `O`, `OU`) and serde_json's default map sorts keys;
/// the values go through serde_json's string escaping, so a strange host cannot break out of
/// the JSON.
pub fn policy_entry(cert_auth_host: &str, issuer: &IssuerFilter) -> String {
    let pattern = Value::String(format!("https://{cert_auth_host}"));
    let fields: Vec<String> = [("CN", &issuer.cn), ("O", &issuer.o), ("OU", &issuer.ou)]
        .into_iter()
        .filter_map(|(name, value)| {
            let value = Value::String(value.clone()?);
            Some(format!(r#""{name}":{value}"#))
        })
        .collect();
    format!(
        r#"{{"pattern":{pattern},"filter":{{"ISSUER":{{{}}}}}}}"#,
        fields.join(",")
    )
}

/// Whether a policy list item is our entry: equal as parsed JSON (key order and spacing do not
/// matter), or byte-equal when `ours` is not JSON at all.
fn is_ours(item: &Value, ours: &str, ours_parsed: Option<&Value>) -> bool {
    let Value::String(text) = item else {
        return false;
    };
    match (ours_parsed, serde_json::from_str::<Value>(text)) {
        (Some(ours), Ok(theirs)) => *ours == theirs,
        _ => text == ours,
    }
}

/// Whether a policy list item is an entry of ours, current or older: ours exactly, or one for
/// the same host (an older filter), or one selecting certificates by the same filter (the host
/// moved, or a value the user planted in the record named another). Browsers must hold one
/// entry of ours, so these are replaced, never kept beside it.
fn is_of_ours(item: &Value, ours: &str, ours_parsed: Option<&Value>) -> bool {
    if is_ours(item, ours, ours_parsed) {
        return true;
    }
    let (Some(ours), Some(Ok(theirs))) = (
        ours_parsed,
        item.as_str().map(serde_json::from_str::<Value>),
    ) else {
        return false;
    };
    let same = |key: &str| {
        ours.get(key)
            .is_some_and(|mine| theirs.get(key) == Some(mine))
    };
    same("pattern") || same("filter")
}

fn parse(ours: &str) -> Option<Value> {
    serde_json::from_str(ours).ok()
}

/// Whether the policy list holds our entry.
pub fn contains(existing: &[Value], ours: &str) -> bool {
    let parsed = parse(ours);
    existing.iter().any(|v| is_ours(v, ours, parsed.as_ref()))
}

/// Whether the policy list holds our entry and no other entry of ours ([`is_of_ours`]).
pub fn holds_only_ours(existing: &[Value], ours: &str) -> bool {
    let parsed = parse(ours);
    contains(existing, ours)
        && existing
            .iter()
            .filter(|v| is_of_ours(v, ours, parsed.as_ref()))
            .all(|v| is_ours(v, ours, parsed.as_ref()))
}

/// The list with our entry exactly once and no older entry of ours, and whether that changed
/// anything.
///
/// An existing copy keeps its place and its spelling (rewriting an equal entry would be churn);
/// further copies and older entries of ours are dropped, ours taking the place of the first;
/// everything else, malformed strings and non-string items included, stays as it is and in
/// order. Absent, ours is appended.
pub fn merge(existing: &[Value], ours: &str) -> (Vec<Value>, bool) {
    let parsed = parse(ours);
    let copy = existing.iter().find(|v| is_ours(v, ours, parsed.as_ref()));
    let mut placed = false;
    let mut merged = Vec::with_capacity(existing.len() + 1);
    for item in existing {
        if is_of_ours(item, ours, parsed.as_ref()) {
            if !placed {
                merged.push(
                    copy.cloned()
                        .unwrap_or_else(|| Value::String(ours.to_owned())),
                );
                placed = true;
            }
            continue;
        }
        merged.push(item.clone());
    }
    if !placed {
        merged.push(Value::String(ours.to_owned()));
    }
    let changed = merged.as_slice() != existing;
    (merged, changed)
}

/// Whether a write of `ours` would replace something of ours: the list holds an older entry
/// of ours (another filter for the host, the filter for another host), or an entry for one of
/// `older_hosts` (hosts this device used before, whose entries go). `ours` is `None` where our
/// entry is not known yet; then only the older hosts count.
pub fn holds_older(existing: &[Value], ours: Option<&str>, older_hosts: &[String]) -> bool {
    let parsed = ours.and_then(parse);
    let patterns: Vec<Value> = older_hosts
        .iter()
        .map(|h| Value::String(format!("https://{h}")))
        .collect();
    existing.iter().any(|item| {
        let older_of_ours = ours.is_some_and(|ours| {
            is_of_ours(item, ours, parsed.as_ref()) && !is_ours(item, ours, parsed.as_ref())
        });
        let for_older_host = item
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|v| v.get("pattern").cloned())
            .is_some_and(|pattern| patterns.contains(&pattern));
        older_of_ours || for_older_host
    })
}

/// One browser's policy as a plan sees it, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The browser (Linux) or its preference domain (macOS).
    pub browser: String,
    /// Where the value the browser uses comes from (a file, a configuration profile, the
    /// user's preferences); `None` when nothing sets it.
    pub decided_by: Option<String>,
    /// That place is the agent's to write: its own file, the user's preferences, or nowhere
    /// yet.
    pub ours_to_write: bool,
    /// The value holds our entry and no other of ours; `None` where our entry is not known yet.
    pub holds_ours: Option<bool>,
    /// A write would replace something of ours ([`holds_older`]).
    pub holds_older: bool,
    /// Why the agent could not write here at all (its own file unusable, a value that is not
    /// a list of strings).
    pub unusable: Option<String>,
}

/// The list without any entry of ours, current or older, and whether that changed anything.
pub fn remove(existing: &[Value], ours: &str) -> (Vec<Value>, bool) {
    let parsed = parse(ours);
    let kept: Vec<Value> = existing
        .iter()
        .filter(|v| !is_of_ours(v, ours, parsed.as_ref()))
        .cloned()
        .collect();
    let changed = kept.len() != existing.len();
    (kept, changed)
}

// ---------------------------------------------------------------------------------------------
// macOS: preference domains

/// Where a macOS browser's current policy value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// Forced by a configuration profile (managed preferences): MDM owns it; we don't fight it.
    Managed,
    /// The user's own preferences domain: ours to merge into.
    User,
    /// Not set anywhere.
    Absent,
}

/// What to do to one macOS preference domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The new value for the user's domain, or `None` to leave it alone.
    pub write: Option<Vec<Value>>,
    /// Something `status` and the run's log should say (a managed value lacking our entry).
    pub note: Option<String>,
}

/// Decides the write that puts our entry in a domain whose current value is `current`.
pub fn plan(current: &[Value], source: PolicySource, ours: &str) -> Plan {
    match source {
        PolicySource::Managed => Plan {
            write: None,
            note: (!contains(current, ours)).then(|| managed_note(ours)),
        },
        PolicySource::User | PolicySource::Absent => {
            let (merged, changed) = merge(current, ours);
            Plan {
                write: changed.then_some(merged),
                note: None,
            }
        }
    }
}

/// Decides the write that takes our entry out of a domain (uninstall). A managed value is the
/// profile's to change, so it is left alone, with a note if it still carries our entry.
pub fn plan_removal(current: &[Value], source: PolicySource, ours: &str) -> Plan {
    match source {
        PolicySource::Managed => Plan {
            write: None,
            note: contains(current, ours).then(|| {
                format!(
                    "{POLICY_KEY} is set by a configuration profile that still carries the \
                     device-trust entry; remove it from the profile"
                )
            }),
        },
        PolicySource::User | PolicySource::Absent => {
            let (kept, changed) = remove(current, ours);
            Plan {
                write: changed.then_some(kept),
                note: None,
            }
        }
    }
}

fn managed_note(ours: &str) -> String {
    format!(
        "{POLICY_KEY} is set by a configuration profile without the device-trust entry; \
         add {ours} to the profile"
    )
}

mod dirs;
#[cfg(test)]
use dirs::DirView;
pub use dirs::{
    apply, inspect, is_present, remove_from_dirs, survey, Change, DirReport, PolicyDir, PolicyDirs,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOST: &str = "abc-devicetrust.okta.com";

    fn ours() -> String {
        policy_entry(HOST, &IssuerFilter::okta())
    }

    fn s(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    const FOREIGN: &str = r#"{"pattern":"https://other.example","filter":{}}"#;

    #[test]
    fn the_entry_is_exactly_the_spec_string() {
        assert_eq!(
            ours(),
            r#"{"pattern":"https://abc-devicetrust.okta.com","filter":{"ISSUER":{"CN":"MTLS Certificate Authority"}}}"#
        );
        // Escaping keeps a hostile host inside its string.
        let odd = policy_entry(r#"x"y"#, &IssuerFilter::okta());
        let parsed: Value = serde_json::from_str(&odd).unwrap();
        assert_eq!(parsed["pattern"], json!("https://x\"y"));
    }

    #[test]
    fn merge_appends_once_and_keeps_foreign_entries_in_order() {
        let existing = vec![s(FOREIGN), s("not json {"), json!(42)];
        let (merged, changed) = merge(&existing, &ours());
        assert!(changed);
        assert_eq!(
            merged,
            vec![s(FOREIGN), s("not json {"), json!(42), s(&ours())]
        );
        let (again, changed) = merge(&merged, &ours());
        assert!(!changed);
        assert_eq!(again, merged);
    }

    #[test]
    fn merge_compares_by_parsed_value_and_collapses_duplicates() {
        let reordered = r#"{ "filter": {"ISSUER": {"CN": "MTLS Certificate Authority"}},
            "pattern": "https://abc-devicetrust.okta.com" }"#;
        let existing = vec![s(reordered), s(FOREIGN), s(&ours()), s(reordered)];
        let (merged, changed) = merge(&existing, &ours());
        assert!(changed);
        assert_eq!(merged, vec![s(reordered), s(FOREIGN)]);
        assert!(contains(&[s(reordered)], &ours()));
        // A substring match on the cell (the old task's test) is not a match.
        let other_host = policy_entry("zzz-devicetrust.okta.com", &IssuerFilter::okta());
        assert!(!contains(&[s(&other_host)], &ours()));
    }

    #[test]
    fn remove_takes_only_our_entries() {
        let existing = vec![s(&ours()), s(FOREIGN), json!({"k": 1}), s(&ours())];
        let (kept, changed) = remove(&existing, &ours());
        assert!(changed);
        assert_eq!(kept, vec![s(FOREIGN), json!({"k": 1})]);
        let (_, changed) = remove(&kept, &ours());
        assert!(!changed);
    }

    #[test]
    fn macos_plans_never_write_over_a_managed_value() {
        let lacking = [s(FOREIGN)];
        let p = plan(&lacking, PolicySource::Managed, &ours());
        assert_eq!(p.write, None);
        assert!(p.note.unwrap().contains("configuration profile"));
        let with = [s(&ours())];
        assert_eq!(
            plan(&with, PolicySource::Managed, &ours()),
            Plan {
                write: None,
                note: None
            }
        );
        assert_eq!(
            plan(&lacking, PolicySource::User, &ours()).write,
            Some(vec![s(FOREIGN), s(&ours())])
        );
        assert_eq!(plan(&with, PolicySource::User, &ours()).write, None);
        assert_eq!(
            plan(&[], PolicySource::Absent, &ours()).write,
            Some(vec![s(&ours())])
        );
        let r = plan_removal(&with, PolicySource::Managed, &ours());
        assert_eq!(r.write, None);
        assert!(r.note.is_some());
        assert_eq!(
            plan_removal(&[s(&ours()), s(FOREIGN)], PolicySource::User, &ours()).write,
            Some(vec![s(FOREIGN)])
        );
    }

    fn chrome_dir(root: &Path) -> PathBuf {
        root.join("etc/opt/chrome/policies/managed")
    }

    fn read(path: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn apply_writes_our_file_in_every_dir_and_is_idempotent() {
        let root = tempfile::tempdir().unwrap();
        assert!(!is_present(root.path(), &ours()));
        let changes = apply(root.path(), &ours()).unwrap();
        assert_eq!(changes.len(), 3);
        for (_, dir) in PolicyDirs::LOCATIONS {
            let file = rooted(root.path(), Path::new(dir)).join(OUR_FILE);
            assert_eq!(read(&file), json!({ POLICY_KEY: [ours()] }));
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&file).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o644);
            }
        }
        assert!(is_present(root.path(), &ours()));
        assert_eq!(apply(root.path(), &ours()).unwrap(), vec![]);
    }

    #[test]
    fn the_policy_file_is_written_under_an_unpredictable_temporary_name() {
        let root = tempfile::tempdir().unwrap();
        let dir = chrome_dir(root.path());
        std::fs::create_dir_all(&dir).unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let predictable = dir.join(format!(".{OUR_FILE}.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &predictable).unwrap();
        apply(root.path(), &ours()).unwrap();
        assert_eq!(read(&dir.join(OUR_FILE)), json!({ POLICY_KEY: [ours()] }));
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&predictable)
            .unwrap()
            .is_symlink());
    }

    #[test]
    fn apply_keeps_other_keys_of_our_file_and_never_touches_other_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = chrome_dir(root.path());
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join(OUR_FILE);
        std::fs::write(
            &own,
            serde_json::to_vec(
                &json!({"HomepageLocation": "x", POLICY_KEY: [FOREIGN, ours(), ours()]}),
            )
            .unwrap(),
        )
        .unwrap();
        let other = dir.join("a-other.json");
        let other_text = br#"{"BookmarkBarEnabled": true}"#;
        std::fs::write(&other, other_text).unwrap();
        let broken = dir.join("b-broken.json");
        std::fs::write(&broken, b"{oops").unwrap();

        let changes = apply(root.path(), &ours()).unwrap();
        assert!(changes.contains(&Change::Written(own.clone())));
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Unparseable { path, .. } if *path == broken)));
        assert_eq!(
            read(&own),
            json!({"HomepageLocation": "x", POLICY_KEY: [FOREIGN, ours()]})
        );
        assert_eq!(std::fs::read(&other).unwrap(), other_text);
        assert_eq!(std::fs::read(&broken).unwrap(), b"{oops");
    }

    #[test]
    fn a_later_file_of_another_tool_decides_and_is_reported_not_rewritten() {
        let root = tempfile::tempdir().unwrap();
        apply(root.path(), &ours()).unwrap();
        let dir = chrome_dir(root.path());
        // Sorts after devicetrust.json, so Chrome uses its value.
        let theirs = dir.join("zz-corp.json");
        let text = serde_json::to_vec(&json!({ POLICY_KEY: [FOREIGN] })).unwrap();
        std::fs::write(&theirs, &text).unwrap();
        assert!(!is_present(root.path(), &ours()));
        let changes = apply(root.path(), &ours()).unwrap();
        assert_eq!(
            changes,
            vec![Change::Shadowed {
                dir: dir.clone(),
                by: theirs.clone()
            }]
        );
        assert_eq!(std::fs::read(&theirs).unwrap(), text);

        // Their file carrying our entry counts as present.
        let with_ours = serde_json::to_vec(&json!({ POLICY_KEY: [FOREIGN, ours()] })).unwrap();
        std::fs::write(&theirs, with_ours).unwrap();
        assert!(is_present(root.path(), &ours()));
        let report = inspect(root.path(), &ours()).unwrap();
        assert_eq!(report[0].effective_file.as_deref(), Some(theirs.as_path()));
    }

    #[test]
    fn a_missing_folder_is_empty_and_an_unreadable_one_an_error() {
        let root = tempfile::tempdir().unwrap();
        let view = DirView::read(&root.path().join("absent")).unwrap();
        assert!(view.objects.is_empty() && view.unparseable.is_empty());
        // Something not a folder where the policy folder should be: said, not taken for none.
        let file = root.path().join("policies");
        std::fs::write(&file, b"{}").unwrap();
        assert!(matches!(DirView::read(&file), Err(ChromeError::Read(_))));
    }

    #[test]
    fn a_dangling_link_is_no_policy_file_and_a_link_to_one_is_read() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("policies");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(dir.join("gone.json"), dir.join("a-dangling.json")).unwrap();
        let target = root.path().join("corp.json");
        std::fs::write(&target, br#"{"Other": 1}"#).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("b-linked.json")).unwrap();
        let view = DirView::read(&dir).unwrap();
        assert!(view.unparseable.is_empty(), "{:?}", view.unparseable);
        let read: Vec<&Path> = view.objects.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(read, [dir.join("b-linked.json")]);
    }

    #[test]
    fn only_visible_json_files_are_policy_and_one_that_cannot_be_read_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("policies");
        std::fs::create_dir(&dir).unwrap();
        let object = br#"{"Other": 1}"#;
        // Chromium reads `*.json` only; a dot file is a temporary (ours included) or hidden.
        for name in [".hidden.json", "notes.txt", "corp.json"] {
            std::fs::write(dir.join(name), object).unwrap();
        }
        // Larger than a policy file may be: reported, not passed over as if it were absent.
        std::fs::write(dir.join("huge.json"), vec![b' '; DOCUMENT_MAX as usize + 1]).unwrap();
        let view = DirView::read(&dir).unwrap();
        let read: Vec<&Path> = view.objects.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(read, [dir.join("corp.json")]);
        let reported: Vec<&Path> = view.unparseable.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(reported, [dir.join("huge.json")]);
    }

    #[test]
    fn removal_skips_browsers_without_a_folder_and_stops_at_one_it_cannot_read() {
        let root = tempfile::tempdir().unwrap();
        apply(root.path(), &ours()).unwrap();
        // Chrome's folder only: the other browsers' are not there.
        let others: Vec<PathBuf> = PolicyDirs::under(root.path())
            .dirs()
            .iter()
            .map(|d| d.path.clone())
            .filter(|p| *p != chrome_dir(root.path()))
            .collect();
        assert!(!others.is_empty());
        for other in &others {
            std::fs::remove_dir_all(other).unwrap();
        }
        let removed = remove_from_dirs(root.path(), &ours()).unwrap();
        assert_eq!(
            removed,
            [Change::Removed(chrome_dir(root.path()).join(OUR_FILE))]
        );

        // A file where a browser's folder should be is an error, not "nothing to remove".
        apply(root.path(), &ours()).unwrap();
        std::fs::remove_dir_all(&others[0]).unwrap();
        std::fs::write(&others[0], b"{}").unwrap();
        assert!(matches!(
            remove_from_dirs(root.path(), &ours()),
            Err(ChromeError::Read(_))
        ));
    }

    #[test]
    fn an_unusable_own_file_is_an_error_and_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = chrome_dir(root.path());
        std::fs::create_dir_all(&dir).unwrap();
        let own = dir.join(OUR_FILE);
        std::fs::write(&own, b"[1,").unwrap();
        let err = apply(root.path(), &ours()).unwrap_err();
        assert!(matches!(err, ChromeError::OwnFileUnusable { .. }), "{err}");
        assert_eq!(std::fs::read(&own).unwrap(), b"[1,");
        std::fs::write(&own, br#"{"AutoSelectCertificateForUrls": "x"}"#).unwrap();
        assert!(apply(root.path(), &ours()).is_err());
    }

    #[test]
    fn remove_takes_our_entry_and_deletes_a_file_left_empty() {
        let root = tempfile::tempdir().unwrap();
        apply(root.path(), &ours()).unwrap();
        let dir = chrome_dir(root.path());
        let own = dir.join(OUR_FILE);
        std::fs::write(
            &own,
            serde_json::to_vec(&json!({"HomepageLocation": "x", POLICY_KEY: [ours()]})).unwrap(),
        )
        .unwrap();
        let other = dir.join("other.json");
        std::fs::write(
            &other,
            serde_json::to_vec(&json!({ POLICY_KEY: [ours()] })).unwrap(),
        )
        .unwrap();

        let changes = remove_from_dirs(root.path(), &ours()).unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(read(&own), json!({"HomepageLocation": "x"}));
        assert!(!root
            .path()
            .join("etc/chromium/policies/managed")
            .join(OUR_FILE)
            .exists());
        // Another tool's copy of the entry is theirs.
        assert_eq!(read(&other), json!({ POLICY_KEY: [ours()] }));
        assert_eq!(remove_from_dirs(root.path(), &ours()).unwrap(), vec![]);
    }

    /// A certificate whose issuer has these attributes (the rest does not matter here).
    fn issued_by(cn: Option<&str>, o: Option<&str>, ou: Option<&str>) -> CertificateInfo {
        let now = time::OffsetDateTime::now_utc();
        CertificateInfo {
            der: Vec::new(),
            subject: "CN=device".into(),
            issuer: String::new(),
            subject_cn: Some("device".into()),
            issuer_cn: cn.map(str::to_owned),
            issuer_o: o.map(str::to_owned),
            issuer_ou: ou.map(str::to_owned),
            serial_hex: "01".into(),
            not_before: now,
            not_after: now,
            fingerprint_sha256: String::new(),
            public_key_der: Vec::new(),
        }
    }

    #[test]
    fn the_filter_names_what_the_issuer_has_cn_o_and_ou() {
        // micromdm's SCEP CA: an O and an OU, no CN.
        let scep = issued_by(None, Some("MICROMDM SCEP CA"), Some("SCEP CA"));
        let filter = IssuerFilter::of(&scep);
        assert_eq!(
            policy_entry("dt.example.com", &filter),
            r#"{"pattern":"https://dt.example.com","filter":{"ISSUER":{"O":"MICROMDM SCEP CA","OU":"SCEP CA"}}}"#
        );
        assert!(filter.selects(&scep));
        assert!(
            !IssuerFilter::okta().selects(&scep),
            "Okta's CN never selects it"
        );

        let okta = issued_by(Some(OKTA_ISSUER_CN), None, None);
        assert_eq!(IssuerFilter::of(&okta), IssuerFilter::okta());
        assert!(IssuerFilter::okta().selects(&okta));
        assert!(!filter.selects(&okta));
        let all = issued_by(Some("Corp CA"), Some("Corp"), Some("PKI"));
        assert_eq!(
            policy_entry("h.example.com", &IssuerFilter::of(&all)),
            r#"{"pattern":"https://h.example.com","filter":{"ISSUER":{"CN":"Corp CA","O":"Corp","OU":"PKI"}}}"#
        );
        assert!(!IssuerFilter {
            cn: None,
            o: None,
            ou: None
        }
        .selects(&all));
        // Any one field is a filter, and selects by that field alone.
        for (cn, o, ou) in [
            (Some("Corp CA"), None, None),
            (None, Some("Corp"), None),
            (None, None, Some("PKI")),
        ] {
            let one = IssuerFilter {
                cn: cn.map(str::to_owned),
                o: o.map(str::to_owned),
                ou: ou.map(str::to_owned),
            };
            assert!(!one.is_empty() && one.selects(&all), "{one:?}");
        }
    }

    #[test]
    fn older_entries_of_ours_are_replaced_never_kept_beside_ours() {
        let moved = policy_entry("moved.okta.com", &IssuerFilter::okta());
        let wildcard = policy_entry("*", &IssuerFilter::okta());
        let other_filter =
            r#"{"pattern":"https://abc-devicetrust.okta.com","filter":{"ISSUER":{"CN":"Old CA"}}}"#;
        let existing = vec![s(FOREIGN), s(&wildcard), s(other_filter), s(&moved)];
        assert!(!holds_only_ours(&existing, &ours()));
        let (merged, changed) = merge(&existing, &ours());
        assert!(changed);
        assert_eq!(merged, vec![s(FOREIGN), s(&ours())]);
        assert!(holds_only_ours(&merged, &ours()));
        // Ours beside an older one is not healthy either, and the older one goes.
        let beside = vec![s(&ours()), s(&wildcard)];
        assert!(contains(&beside, &ours()));
        assert!(!holds_only_ours(&beside, &ours()));
        assert_eq!(merge(&beside, &ours()).0, vec![s(&ours())]);
        let (kept, changed) = remove(&existing, &ours());
        assert!(changed);
        assert_eq!(kept, vec![s(FOREIGN)]);
    }

    #[test]
    fn after_any_sequence_of_hosts_each_policy_file_holds_one_entry_of_ours() {
        let root = tempfile::tempdir().unwrap();
        for host in ["a.okta.com", "b.okta.com", "a.okta.com", "c.example.com"] {
            let entry = policy_entry(host, &IssuerFilter::okta());
            apply(root.path(), &entry).unwrap();
            for (_, dir) in PolicyDirs::LOCATIONS {
                let file = rooted(root.path(), Path::new(dir)).join(OUR_FILE);
                assert_eq!(read(&file), json!({ POLICY_KEY: [entry] }), "{host}");
            }
            assert!(is_present(root.path(), &entry));
        }
        // A stale entry of ours planted beside ours in our file (an admin's own stays): not
        // present, and the next apply leaves ours alone there.
        let dir = chrome_dir(root.path());
        let ours = policy_entry("c.example.com", &IssuerFilter::okta());
        let planted = policy_entry("*", &IssuerFilter::okta());
        std::fs::write(
            dir.join(OUR_FILE),
            serde_json::to_vec(&json!({ POLICY_KEY: [ours, FOREIGN, planted] })).unwrap(),
        )
        .unwrap();
        assert!(!is_present(root.path(), &ours));
        apply(root.path(), &ours).unwrap();
        assert_eq!(
            read(&dir.join(OUR_FILE)),
            json!({ POLICY_KEY: [ours, FOREIGN] })
        );
        assert!(is_present(root.path(), &ours));
    }
}
