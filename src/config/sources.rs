//! Where each effective setting came from: the layer that won, kept per dotted key
//! (`org_url`, `scep.url`, `network.timeout_secs`) for `status` and for the trust-boundary tests.
//!
//! The sources are read off the layers themselves (the first layer holding a value wins, as in
//! `load`), so a new configuration key gets its provenance without anyone listing it.

use super::layer::Layer;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One layer of the configuration, highest precedence first (cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Source {
    #[serde(rename = "flag")]
    Flag,
    #[serde(rename = "environment")]
    Environment,
    #[serde(rename = "managed preferences")]
    Managed,
    #[serde(rename = "file")]
    File,
    /// The root-owned enrollment record (`/var/lib/devicetrust`, `/Library/Application
    /// Support/devicetrust`): written by root runs only.
    #[serde(rename = "enrollment record")]
    Record,
    /// The copy of the record in the user's home: a cache for the user's own runs, which a
    /// root run never takes a setting from.
    #[serde(rename = "enrollment record (user copy)")]
    UserCopy,
    #[serde(rename = "default")]
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Environment => "environment",
            Source::Managed => "managed preferences",
            Source::File => "file",
            Source::Record => "enrollment record",
            Source::UserCopy => "enrollment record (user copy)",
            Source::Default => "default",
        }
    }

    /// Whether a root run may take where a secret goes, what it trusts, or what a policy names
    /// from this layer: everything but the user's own copy of the record.
    pub fn is_trusted_by_root(self) -> bool {
        self != Source::UserCopy
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The layer each effective setting came from, by dotted key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources(BTreeMap<String, Source>);

impl Sources {
    /// For every key any layer sets, the first such layer.
    pub(super) fn of_layers(layers: &[(Source, &Layer)]) -> Sources {
        let mut sources = Sources::default();
        for (source, layer) in layers {
            // A layer is plain data: serialising it cannot fail, and if it did, the layer
            // would only go unnamed in `status`.
            if let Ok(value) = serde_json::to_value(layer) {
                let mut keys = Vec::new();
                leaf_keys(&value, String::new(), &mut keys);
                for key in keys {
                    sources.0.entry(key).or_insert(*source);
                }
            }
        }
        sources
    }

    pub fn get(&self, key: &str) -> Option<Source> {
        self.0.get(key).copied()
    }

    /// Records `source` for `key` (a value filled from the record, a default).
    pub(super) fn set(&mut self, key: &str, source: Source) {
        self.0.insert(key.to_owned(), source);
    }

    /// Records `source` for `key` unless a layer already set it.
    pub(super) fn set_if_absent(&mut self, key: &str, source: Source) {
        self.0.entry(key.to_owned()).or_insert(source);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Source)> {
        self.0.iter().map(|(k, s)| (k.as_str(), *s))
    }
}

/// The dotted keys of the values set in `value`: tables are walked, anything else (a string,
/// number, list) is one setting; nulls and empty lists are settings no layer gave.
fn leaf_keys(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        Value::Object(map) => {
            for (name, inner) in map {
                let key = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                leaf_keys(inner, key, out);
            }
        }
        _ => out.push(prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Layer {
        Layer::parse(text, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn the_highest_layer_holding_a_key_names_its_source() {
        let managed = parse("org_url = \"https://b.okta.com\"\n[network]\ntimeout_secs = 5\n");
        let file = parse(
            "org_url = \"https://c.okta.com\"\nstore = \"file:/x\"\n\
             [scep]\nsubject_alt_names = { dns = [\"a.example\"] }\n",
        );
        let sources = Sources::of_layers(&[(Source::Managed, &managed), (Source::File, &file)]);
        assert_eq!(sources.get("org_url"), Some(Source::Managed));
        assert_eq!(sources.get("network.timeout_secs"), Some(Source::Managed));
        assert_eq!(sources.get("store"), Some(Source::File));
        assert_eq!(
            sources.get("scep.subject_alt_names.dns"),
            Some(Source::File)
        );
        // Unset keys, and the SAN lists a table leaves empty, have no source.
        assert_eq!(sources.get("scep.subject_alt_names.rfc822"), None);
        assert_eq!(sources.get("ca_file"), None);
        assert_eq!(sources.get("scep"), None);
    }

    #[test]
    fn only_the_users_copy_is_untrusted_by_root() {
        for source in [
            Source::Flag,
            Source::Environment,
            Source::Managed,
            Source::File,
            Source::Record,
            Source::Default,
        ] {
            assert!(source.is_trusted_by_root(), "{source}");
        }
        assert!(!Source::UserCopy.is_trusted_by_root());
    }
}
