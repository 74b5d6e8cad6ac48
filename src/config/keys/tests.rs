//! The key list against `Layer`, the readers table against the key list, and every key against
//! `config::load`: a key that is parsed and then changes nothing would be a silent no-op.

use super::*;
use crate::config::tests::load_toml;
use std::collections::BTreeSet;

/// A value for every key that differs from what leaving it out resolves to.
fn non_default(key: &str) -> Option<String> {
    let anchors = concat!(env!("CARGO_MANIFEST_DIR"), "/pki-fixtures/tls-ca.pem");
    Some(match key {
        "org_url" => "\"https://acme.okta.com\"".into(),
        "org_token_file" => "\"/var/root/okta-org-token\"".into(),
        "ca_file" => format!("{anchors:?}"),
        "cert_auth_host" => "\"devicetrust.example.com\"".into(),
        "store" => "\"file:/var/db/devicetrust\"".into(),
        "renew_before_days" => "21".into(),
        "renew_spread_days" => "7".into(),
        "lock_timeout_secs" => "30".into(),
        "scep.url" => "\"https://ca.example/scep\"".into(),
        "scep.challenge_file" => "\"/var/root/scep-challenge\"".into(),
        "scep.ca_fingerprint" => format!("{:?}", vec!["AB"; 32].join(":")),
        "scep.name" => "\"okta\"".into(),
        "scep.subject" => "\"CN=device, O=Example\"".into(),
        "scep.key_size" => "3072".into(),
        "scep.key_type" => "\"RSA\"".into(),
        "scep.key_usage" => "5".into(),
        "scep.subject_alt_names.rfc822" => "[\"it@example.com\"]".into(),
        "scep.subject_alt_names.dns" => "[\"mac.example.com\"]".into(),
        "scep.subject_alt_names.uri" => "[\"urn:device\"]".into(),
        "scep.subject_alt_names.nt_principal_name" => "\"alice@example.com\"".into(),
        "scep.retries" => "5".into(),
        "scep.retry_delay_secs" => "2".into(),
        "scep.renew_before_days" => "14".into(),
        "scep.renew_spread_days" => "3".into(),
        "scep.allow_all_apps_access" => "true".into(),
        "network.connect_timeout_secs" => "3".into(),
        "network.timeout_secs" => "20".into(),
        "network.max_attempts" => "2".into(),
        "network.retry_base_delay_ms" => "500".into(),
        "network.max_rate_limit_wait_secs" => "60".into(),
        "network.wait_for_network_secs" => "5".into(),
        "network.run_deadline_secs" => "300".into(),
        "network.status_deadline_secs" => "20".into(),
        "allowlist.add" => "[\"teamid:ABCDE12345\"]".into(),
        "allowlist.remove" => "[\"teamid:BQR82RBBHL\"]".into(),
        "allowlist.replace_defaults" => "[\"teamid:EQHXZ8M8AV\"]".into(),
        "allowlist.allow_all_apps" => "true".into(),
        _ => return None,
    })
}

/// `key = value` as a TOML file, the dotted key under its table.
fn toml_setting(key: &str, value: &str) -> String {
    match key.rsplit_once('.') {
        Some((table, leaf)) => format!("[{table}]\n{leaf} = {value}\n"),
        None => format!("{key} = {value}\n"),
    }
}

fn value_keys() -> Vec<(String, Kind)> {
    all()
        .into_iter()
        .filter(|(_, k)| *k != Kind::Table)
        .collect()
}

#[test]
fn the_keys_are_those_of_layer_with_their_kinds() {
    let keys = all();
    for (key, kind) in [
        ("org_url", Kind::String),
        ("org_token_file", Kind::String),
        ("renew_before_days", Kind::Integer),
        ("scep", Kind::Table),
        ("scep.key_usage", Kind::Integer),
        ("scep.subject_alt_names", Kind::Table),
        ("scep.subject_alt_names.dns", Kind::Array),
        ("scep.subject_alt_names.nt_principal_name", Kind::String),
        ("network.run_deadline_secs", Kind::Integer),
        ("allowlist.add", Kind::Array),
        ("allowlist.allow_all_apps", Kind::Boolean),
    ] {
        assert_eq!(keys.get(key), Some(&kind), "{key}: {keys:?}");
    }
    // What the environment and flags carry, not keys of the file.
    for internal in ["org_token_env", "scep_challenge_env", "scep.challenge"] {
        assert!(!keys.contains_key(internal), "{internal}");
    }
    // Each key the probe lists is one the file accepts, with a value of its kind.
    for (key, kind) in value_keys() {
        let value = non_default(&key).unwrap_or_else(|| panic!("no example value for {key}"));
        let parsed: toml::Table = toml::from_str(&format!("v = {value}")).unwrap();
        let type_of = match &parsed["v"] {
            toml::Value::String(_) => Kind::String,
            toml::Value::Integer(_) => Kind::Integer,
            toml::Value::Boolean(_) => Kind::Boolean,
            toml::Value::Array(_) => Kind::Array,
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(type_of, kind, "{key}");
        let text = toml_setting(&key, &value);
        crate::config::Layer::parse(&text, std::path::Path::new("probe.toml"))
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

#[test]
fn every_key_has_exactly_one_reader_entry() {
    let listed: Vec<&str> = READERS.iter().map(|(k, _)| *k).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a key listed twice: {listed:?}");
    let keys: BTreeSet<String> = value_keys().into_iter().map(|(k, _)| k).collect();
    let listed: BTreeSet<String> = unique.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        keys.difference(&listed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "keys nobody says who reads"
    );
    assert_eq!(
        listed.difference(&keys).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "readers of keys that do not exist"
    );
    // The keys that take their default only, said as they stand.
    let refused: BTreeSet<&str> = READERS
        .iter()
        .filter(|(_, r)| matches!(r, ReadBy::Refused(_)))
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(
        refused,
        BTreeSet::from(["allowlist.allow_all_apps", "scep.allow_all_apps_access"])
    );
}

#[test]
fn every_key_set_to_another_value_changes_the_resolved_configuration() {
    let root = tempfile::tempdir().unwrap();
    let baseline = format!("{:?}", load_toml(&root, "", &[]).unwrap());
    for (key, _) in value_keys() {
        let value = non_default(&key).unwrap_or_else(|| panic!("no example value for {key}"));
        let refused = READERS
            .iter()
            .any(|(k, r)| *k == key && matches!(r, ReadBy::Refused(_)));
        if refused {
            // Not parsed and ignored either: refused by name.
            let err = load_toml(&root, &toml_setting(&key, &value), &[]).unwrap_err();
            assert!(err.to_string().contains(key.as_str()), "{key}: {err}");
            continue;
        }
        let config = load_toml(&root, &toml_setting(&key, &value), &[])
            .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
        assert_ne!(
            format!("{config:?}"),
            baseline,
            "{key} = {value} is parsed and then changes nothing"
        );
    }
}
