//! Managed preferences: the `com.devicetrust.agent` payload of a configuration profile, read from
//! `/Library/Managed Preferences` (computer scope, then the user's folder, which wins) as a `Layer`.
//!
//! The plist is converted to a `toml::Value` and deserialized into the same `Layer` as the TOML
//! file, so a profile and a file accept exactly the same keys, types and values. Each key is also
//! deserialized on its own first: serde's messages do not say which key they are about, and an
//! admin with a typo in a Jamf form needs the key named (exit 2, one line).

use super::{io_reason, ConfigError, Layer};
use crate::paths;
use std::path::{Path, PathBuf};

/// The preference domain: the profile payload's `PayloadType` and the plist's file name.
pub const DOMAIN: &str = "com.devicetrust.agent";
/// Where macOS writes the managed preferences of configuration profiles.
pub const MANAGED_PREFERENCES_DIR: &str = "/Library/Managed Preferences";

/// The computer-scope managed preferences file (before the root prefix).
pub fn computer_file() -> PathBuf {
    Path::new(MANAGED_PREFERENCES_DIR).join(format!("{DOMAIN}.plist"))
}

/// The user-scope managed preferences file of `user` (before the root prefix).
pub fn user_file(user: &str) -> PathBuf {
    Path::new(MANAGED_PREFERENCES_DIR)
        .join(user)
        .join(format!("{DOMAIN}.plist"))
}

/// The managed-preferences layer of this run: the computer file overlaid with `user`'s file, key
/// by key (inside `scep`, `network` and `allowlist` too). Absent files are an empty layer: that
/// is every machine without a profile, and every platform but macOS.
pub fn load(root: &Path, user: Option<&str>) -> Result<Layer, ConfigError> {
    let mut merged = toml::Table::new();
    let mut files = vec![paths::rooted(root, &computer_file())];
    if let Some(user) = user {
        // A user name is one path component; anything else would read another folder.
        if user.is_empty() || user.contains('/') || user == "." || user == ".." {
            return Err(ConfigError::Invalid {
                key: "user",
                reason: format!("{user:?} is not a user name"),
            });
        }
        files.push(paths::rooted(root, &user_file(user)));
    }
    for path in files {
        if let Some(table) = read_table(&path)? {
            overlay(&mut merged, table);
        }
    }
    // Every key was checked against `Layer` alone; the merge of two valid tables is valid.
    toml::Value::Table(merged)
        .try_into()
        .map_err(|e| ConfigError::ManagedInvalid {
            path: PathBuf::from(MANAGED_PREFERENCES_DIR),
            key: "(merged)".into(),
            message: one_line(&e.to_string()),
        })
}

/// One managed preferences file as a validated table; `None` when it does not exist.
pub fn read_table(path: &Path) -> Result<Option<toml::Table>, ConfigError> {
    let value = match plist::Value::from_file(path) {
        Ok(v) => v,
        Err(e) if e.as_io().map(|io| io.kind()) == Some(std::io::ErrorKind::NotFound) => {
            return Ok(None)
        }
        Err(e) => {
            return Err(ConfigError::Unreadable {
                what: "managed preferences",
                path: path.to_owned(),
                reason: e
                    .as_io()
                    .map(io_reason)
                    .unwrap_or_else(|| one_line(&e.to_string())),
            })
        }
    };
    let invalid = |key: &str, message: String| ConfigError::ManagedInvalid {
        path: path.to_owned(),
        key: key.to_owned(),
        message,
    };
    if nesting_depth(&value) > MAX_DEPTH {
        dismantle(value);
        return Err(invalid(
            "(top level)",
            format!("nests more than {MAX_DEPTH} levels deep"),
        ));
    }
    let plist::Value::Dictionary(dict) = value else {
        return Err(invalid("(top level)", "is not a dictionary".into()));
    };
    let mut table = toml::Table::new();
    for (key, value) in dict {
        // Apple reserves the Payload* keys (a profile's own bookkeeping); they are not settings.
        if key.starts_with("Payload") {
            continue;
        }
        let value = to_toml(&value).map_err(|m| invalid(&key, m))?;
        check_key(&key, &value).map_err(|(k, m)| invalid(&k, m))?;
        table.insert(key, value);
    }
    Ok(Some(table))
}

/// Deserializes `key = value` alone into a `Layer`, and each sub-key of a table alone, so an
/// error can name the dotted key it is about.
fn check_key(key: &str, value: &toml::Value) -> Result<(), (String, String)> {
    let single = |k: &str, v: toml::Value| {
        let mut t = toml::Table::new();
        t.insert(k.to_owned(), v);
        t
    };
    if let toml::Value::Table(sub) = value {
        for (sub_key, sub_value) in sub {
            let probe = single(key, toml::Value::Table(single(sub_key, sub_value.clone())));
            toml::Value::Table(probe).try_into::<Layer>().map_err(|e| {
                let dotted = format!("{key}.{sub_key}");
                let message = message_about(&dotted, &e);
                (dotted, message)
            })?;
        }
    }
    toml::Value::Table(single(key, value.clone()))
        .try_into::<Layer>()
        .map(drop)
        .map_err(|e| (key.to_owned(), message_about(key, &e)))
}

/// Deeper than any setting (`scep.subject_alt_names.dns` is the fourth level). `to_toml` and
/// `plist::Value`'s drop recurse once per level: a plist nested 100,000 arrays deep overflowed
/// the stack, so depth is measured, and a deep value taken apart, without recursion.
const MAX_DEPTH: usize = 16;

/// How deep collections nest in `value`, the top one counting 1.
fn nesting_depth(value: &plist::Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1)];
    while let Some((value, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        match value {
            plist::Value::Array(items) => pending.extend(items.iter().map(|v| (v, depth + 1))),
            plist::Value::Dictionary(dict) => pending.extend(dict.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    deepest
}

/// Drops `value` one collection at a time instead of through its recursive drop.
fn dismantle(value: plist::Value) {
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            plist::Value::Array(items) => pending.extend(items),
            plist::Value::Dictionary(dict) => pending.extend(dict.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// A plist value as the TOML value of the same meaning.
fn to_toml(value: &plist::Value) -> Result<toml::Value, String> {
    Ok(match value {
        plist::Value::String(s) => toml::Value::String(s.clone()),
        plist::Value::Boolean(b) => toml::Value::Boolean(*b),
        plist::Value::Integer(i) => match i.as_signed() {
            Some(n) => toml::Value::Integer(n),
            None => return Err(format!("{i} is too large")),
        },
        plist::Value::Real(r) => toml::Value::Float(*r),
        plist::Value::Array(items) => {
            toml::Value::Array(items.iter().map(to_toml).collect::<Result<_, _>>()?)
        }
        plist::Value::Dictionary(dict) => toml::Value::Table(
            dict.iter()
                .map(|(k, v)| Ok((k.clone(), to_toml(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        plist::Value::Date(_) => return Err("a date is not a valid value here".into()),
        plist::Value::Data(_) => return Err("data is not a valid value here".into()),
        _ => return Err("this plist type is not a valid value here".into()),
    })
}

/// `upper`'s keys replace `base`'s; tables (`scep`, `network`, ...) merge key by key.
fn overlay(base: &mut toml::Table, upper: toml::Table) {
    for (key, value) in upper {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => overlay(b, u),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// toml's message, without the `in \`key\`` it appends: the error names the key already.
fn message_about(key: &str, e: &toml::de::Error) -> String {
    let message = one_line(&e.to_string());
    match message.strip_suffix(&format!(" in `{key}`")) {
        Some(m) => m.to_owned(),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, file: &Path, body: &str) {
        let path = paths::rooted(root, file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>{body}</dict></plist>\n"
        );
        std::fs::write(path, xml).unwrap();
    }

    #[test]
    fn no_file_is_an_empty_layer() {
        let root = tempfile::tempdir().unwrap();
        let layer = load(root.path(), Some("alice")).unwrap();
        assert!(layer.org_url.is_none() && layer.scep.url.is_none());
    }

    #[test]
    fn every_plist_type_maps_to_its_toml_key() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &computer_file(),
            "<key>org_url</key><string>https://acme.okta.com</string>\
             <key>org_token_file</key><string>/var/root/token</string>\
             <key>renew_before_days</key><integer>21</integer>\
             <key>PayloadUUID</key><string>ignored</string>\
             <key>network</key><dict><key>max_attempts</key><integer>3</integer></dict>\
             <key>allowlist</key><dict><key>add</key><array><string>teamid:ABCDE12345</string></array>\
             <key>allow_all_apps</key><false/></dict>\
             <key>scep</key><dict><key>subject_alt_names</key><dict><key>dns</key>\
             <array><string>mac.example.com</string></array></dict></dict>",
        );
        let layer = load(root.path(), None).unwrap();
        assert_eq!(layer.org_url.as_deref(), Some("https://acme.okta.com"));
        assert_eq!(
            layer.org_token_file.as_deref(),
            Some(Path::new("/var/root/token"))
        );
        assert_eq!(layer.renew_before_days, Some(21));
        assert_eq!(layer.network.max_attempts, Some(3));
        assert_eq!(
            layer.allowlist.add,
            Some(vec!["teamid:ABCDE12345".to_owned()])
        );
        assert_eq!(layer.allowlist.allow_all_apps, Some(false));
        assert_eq!(
            layer.scep.subject_alt_names.unwrap().dns,
            vec!["mac.example.com".to_owned()]
        );
    }

    #[test]
    fn the_user_file_wins_key_by_key() {
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &computer_file(),
            "<key>org_url</key><string>computer.okta.com</string>\
             <key>renew_before_days</key><integer>20</integer>\
             <key>network</key><dict><key>max_attempts</key><integer>3</integer>\
             <key>timeout_secs</key><integer>30</integer></dict>",
        );
        write(
            root.path(),
            &user_file("alice"),
            "<key>org_url</key><string>user.okta.com</string>\
             <key>network</key><dict><key>max_attempts</key><integer>5</integer></dict>",
        );
        let alice = load(root.path(), Some("alice")).unwrap();
        assert_eq!(alice.org_url.as_deref(), Some("user.okta.com"));
        assert_eq!(alice.renew_before_days, Some(20));
        assert_eq!(alice.network.max_attempts, Some(5));
        assert_eq!(alice.network.timeout_secs, Some(30));
        let bob = load(root.path(), Some("bob")).unwrap();
        assert_eq!(bob.org_url.as_deref(), Some("computer.okta.com"));
        let nobody = load(root.path(), None).unwrap();
        assert_eq!(nobody.network.max_attempts, Some(3));
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_file_and_the_key() {
        for (body, key) in [
            ("<key>bogus</key><true/>", "bogus"),
            (
                "<key>renew_before_days</key><string>soon</string>",
                "renew_before_days",
            ),
            (
                "<key>network</key><dict><key>max_attempts</key><string>3</string></dict>",
                "network.max_attempts",
            ),
            (
                "<key>scep</key><dict><key>chalenge_file</key><string>/x</string></dict>",
                "scep.chalenge_file",
            ),
            (
                "<key>renew_before_days</key><integer>-3</integer>",
                "renew_before_days",
            ),
            ("<key>ca_file</key><data>AAAA</data>", "ca_file"),
        ] {
            let root = tempfile::tempdir().unwrap();
            write(root.path(), &computer_file(), body);
            let err = load(root.path(), None).unwrap_err();
            let shown = err.to_string();
            assert!(matches!(err, ConfigError::ManagedInvalid { .. }), "{shown}");
            assert!(shown.contains(&format!(" {key}:")), "{body}: {shown}");
            assert!(shown.contains("com.devicetrust.agent.plist"), "{shown}");
            assert!(!shown.contains('\n'), "{shown}");
        }
    }

    #[test]
    fn a_plist_nested_deeper_than_any_setting_is_an_error_not_a_stack_overflow() {
        // The input the config_managed harness overflowed its stack on (past the fuzzer's
        // default input size): 100,000 nested arrays under one key.
        let depth = 100_000;
        let root = tempfile::tempdir().unwrap();
        let nested = format!(
            "<key>scep</key>{}{}",
            "<array>".repeat(depth),
            "</array>".repeat(depth)
        );
        write(root.path(), &computer_file(), &nested);
        let err = load(root.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("(top level): nests more than 16 levels"),
            "{err}"
        );

        // The deepest real setting is well inside the limit.
        let root = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &computer_file(),
            "<key>scep</key><dict><key>subject_alt_names</key><dict><key>dns</key>\
             <array><string>mac.example.com</string></array></dict></dict>",
        );
        assert!(load(root.path(), None).is_ok());
    }

    #[test]
    fn a_broken_file_or_user_name_is_an_error_not_a_silent_default() {
        let root = tempfile::tempdir().unwrap();
        let path = paths::rooted(root.path(), &computer_file());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "not a plist").unwrap();
        let err = load(root.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("managed preferences") && !err.contains('\n'),
            "{err}"
        );

        let root = tempfile::tempdir().unwrap();
        assert!(load(root.path(), Some("../alice")).is_err());
    }
}
