//! The configuration profiles and the Jamf schema in `pkg/profiles/` against the agent's own
//! configuration keys, which `config::keys` derives from the `Layer` type itself so the three
//! cannot drift: add a field to `Layer` and these tests want it in the schema and the template;
//! drop one and the schema's now-unknown key fails them.

use devicetrust::config::keys::{self, Kind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn profile(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pkg/profiles")
        .join(name)
}

/// Every key the agent accepts, dotted (`scep.subject_alt_names.dns`), tables included.
fn agent_keys() -> BTreeSet<String> {
    keys::all().into_keys().collect()
}

/// The dotted keys of a JSON schema's `properties`, recursively.
fn schema_keys(prefix: &str, schema: &serde_json::Value, out: &mut BTreeSet<String>) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (key, prop) in props {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        schema_keys(&dotted, prop, out);
        out.insert(dotted);
    }
}

/// The dotted keys of a plist dictionary, without Apple's Payload* bookkeeping.
fn plist_keys(prefix: &str, dict: &plist::Dictionary, out: &mut BTreeSet<String>) {
    for (key, value) in dict {
        if key.starts_with("Payload") {
            continue;
        }
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let plist::Value::Dictionary(sub) = value {
            plist_keys(&dotted, sub, out);
        }
        out.insert(dotted);
    }
}

fn schema() -> serde_json::Value {
    let text = std::fs::read_to_string(profile("jamf-schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A profile's payloads.
fn payloads(name: &str) -> (plist::Dictionary, Vec<plist::Dictionary>) {
    let top = plist::Value::from_file(profile(name)).unwrap();
    let top = top.into_dictionary().expect("a profile is a dictionary");
    assert_eq!(
        top.get("PayloadType").and_then(|v| v.as_string()),
        Some("Configuration"),
        "{name}"
    );
    for key in ["PayloadIdentifier", "PayloadUUID", "PayloadDisplayName"] {
        assert!(
            top.get(key).and_then(|v| v.as_string()).is_some(),
            "{name}: {key}"
        );
    }
    assert_eq!(
        top.get("PayloadVersion")
            .and_then(|v| v.as_signed_integer()),
        Some(1)
    );
    let content = top
        .get("PayloadContent")
        .and_then(|v| v.as_array())
        .expect("PayloadContent")
        .iter()
        .map(|p| p.as_dictionary().expect("a payload dictionary").clone())
        .collect::<Vec<_>>();
    for p in &content {
        for key in ["PayloadType", "PayloadIdentifier", "PayloadUUID"] {
            assert!(
                p.get(key).and_then(|v| v.as_string()).is_some(),
                "{name}: {key}"
            );
        }
    }
    (top, content)
}

/// The dotted keys of a JSON schema with their `type`.
fn schema_types(prefix: &str, schema: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    for (key, prop) in schema["properties"].as_object().into_iter().flatten() {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        schema_types(&dotted, prop, out);
        out.insert(dotted, prop["type"].as_str().unwrap_or("").to_owned());
    }
}

#[test]
fn the_jamf_schema_gives_each_key_the_type_the_agent_takes() {
    let mut types = BTreeMap::new();
    schema_types("", &schema(), &mut types);
    for (key, kind) in keys::all() {
        assert_eq!(
            types.get(&key).map(String::as_str),
            Some(kind.json_type()),
            "{key}"
        );
    }
    assert_eq!(keys::all()["scep"], Kind::Table);
}

#[test]
fn the_jamf_schema_names_exactly_the_agents_keys() {
    let mut in_schema = BTreeSet::new();
    schema_keys("", &schema(), &mut in_schema);
    let agent = agent_keys();
    let missing: Vec<_> = agent.difference(&in_schema).collect();
    let unknown: Vec<_> = in_schema.difference(&agent).collect();
    assert!(
        missing.is_empty(),
        "keys missing from jamf-schema.json: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "jamf-schema.json names unknown keys: {unknown:?}"
    );
}

#[test]
fn every_schema_property_is_a_complete_jamf_form_field() {
    fn check(key: &str, prop: &serde_json::Value) {
        for field in ["title", "description", "type"] {
            assert!(prop[field].is_string(), "{key}: {field}");
        }
        let kind = prop["type"].as_str().unwrap();
        assert!(
            ["string", "integer", "boolean", "array", "object"].contains(&kind),
            "{key}: {kind}"
        );
        if kind == "array" {
            assert_eq!(prop["items"]["type"], "string", "{key}");
        }
        if let Some(default) = prop.get("default") {
            let ok = match kind {
                "string" => default.is_string(),
                "integer" => default.is_i64(),
                "boolean" => default.is_boolean(),
                _ => false,
            };
            assert!(ok, "{key}: default {default} is not a {kind}");
            if let Some(choices) = prop["enum"].as_array() {
                assert!(choices.contains(default), "{key}: default not in enum");
            }
        }
        if let Some(props) = prop["properties"].as_object() {
            assert_eq!(kind, "object", "{key}");
            for (sub, p) in props {
                check(&format!("{key}.{sub}"), p);
            }
        }
    }
    let schema = schema();
    assert!(schema["title"].is_string() && schema["description"].is_string());
    for (key, prop) in schema["properties"].as_object().unwrap() {
        check(key, prop);
    }
}

#[test]
fn the_template_profile_sets_exactly_the_agents_keys() {
    let (_, content) = payloads("devicetrust.mobileconfig");
    assert_eq!(content.len(), 1);
    let payload = &content[0];
    assert_eq!(
        payload.get("PayloadType").and_then(|v| v.as_string()),
        Some(devicetrust::config::managed::DOMAIN)
    );
    let mut keys = BTreeSet::new();
    plist_keys("", payload, &mut keys);
    assert_eq!(keys, agent_keys());
}

/// Writes `payload` as the computer's managed preferences under a fresh root and runs the
/// agent's `status` there: every value must pass the agent's own validation.
fn status_with_managed(payload: &plist::Dictionary) -> (i32, String) {
    let root = tempfile::tempdir().unwrap();
    let file = root
        .path()
        .join("Library/Managed Preferences/com.devicetrust.agent.plist");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    plist::Value::Dictionary(payload.clone())
        .to_file_xml(&file)
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_devicetrust"))
        .args(["--root", root.path().to_str().unwrap(), "--user", "alice"])
        .args(["status", "--json"])
        .env_remove("DEVICETRUST_CONFIG")
        .env_remove("DEVICETRUST_ORG_URL")
        .env_remove("DEVICETRUST_SCEP_URL")
        .env_remove("DEVICETRUST_STORE")
        .env(
            "DEVICETRUST_STORE",
            format!("file:{}", root.path().join("store").display()),
        )
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_template_values_and_the_schema_defaults_are_valid_configuration() {
    let (_, content) = payloads("devicetrust.mobileconfig");
    let mut template = content[0].clone();
    // The agent reads the extra CA file at load (an empty or broken one is a configuration
    // error): point the template's at a real bundle.
    assert!(template.contains_key("ca_file"));
    let anchors = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pki-fixtures/tls-ca.pem");
    template.insert(
        "ca_file".into(),
        plist::Value::String(anchors.display().to_string()),
    );
    let (code, out) = status_with_managed(&template);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"method\":\"scep\""), "{out}");

    fn defaults(schema: &serde_json::Value) -> plist::Dictionary {
        let mut dict = plist::Dictionary::new();
        for (key, prop) in schema["properties"].as_object().into_iter().flatten() {
            let value = match &prop["default"] {
                serde_json::Value::String(s) => plist::Value::String(s.clone()),
                serde_json::Value::Bool(b) => plist::Value::Boolean(*b),
                serde_json::Value::Number(n) => plist::Value::Integer(n.as_i64().unwrap().into()),
                _ if prop["type"] == "object" => plist::Value::Dictionary(defaults(prop)),
                _ => continue,
            };
            dict.insert(key.clone(), value);
        }
        dict
    }
    let mut dict = defaults(&schema());
    // The keychain store is macOS's; this run checks the values, on any platform.
    dict.remove("store");
    let (code, out) = status_with_managed(&dict);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_icloud_keychain_profile_disables_keychain_sync() {
    let (_, content) = payloads("disable-icloud-keychain.mobileconfig");
    let [restrictions] = content.as_slice() else {
        panic!("one payload")
    };
    assert_eq!(
        restrictions.get("PayloadType").and_then(|v| v.as_string()),
        Some("com.apple.applicationaccess")
    );
    assert_eq!(
        restrictions
            .get("allowCloudKeychainSync")
            .and_then(|v| v.as_boolean()),
        Some(false)
    );
}

#[test]
fn the_managed_login_items_profile_names_the_renewal_job() {
    let (_, content) = payloads("managed-login-items.mobileconfig");
    let [sm] = content.as_slice() else {
        panic!("one payload")
    };
    assert_eq!(
        sm.get("PayloadType").and_then(|v| v.as_string()),
        Some("com.apple.servicemanagement")
    );
    let rules: Vec<(String, String)> = sm
        .get("Rules")
        .and_then(|v| v.as_array())
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_dictionary().unwrap();
            let s = |k: &str| r.get(k).and_then(|v| v.as_string()).unwrap().to_owned();
            (s("RuleType"), s("RuleValue"))
        })
        .collect();
    assert!(rules.contains(&(
        "Label".into(),
        devicetrust::integrations::schedule::LABEL.into()
    )));
    assert!(rules.iter().any(|(t, _)| t == "TeamIdentifier"));
}
