//! Every configuration key the file and a profile accept, derived from the `Layer` type itself,
//! and for each key what reads it: a field added to `Layer` is a key here at once.
//!
//! The derivation is a small serde `Deserializer` that deserializes `Layer` out of nothing: serde
//! derive hands it each table's field list (`deserialize_struct`), and it answers every field
//! with an empty value of the type asked for, descending into nested tables. Nothing is parsed;
//! the types say what the keys are. The Jamf schema, the template profile and the docs are
//! checked against this list, and the list against [`READERS`].

use super::layer::Layer;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a key holds, as a TOML file, a plist and a JSON schema name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Boolean,
    Array,
    Table,
}

impl Kind {
    /// The JSON schema `type` of this kind (Jamf's custom schema).
    pub fn json_type(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Boolean => "boolean",
            Kind::Array => "array",
            Kind::Table => "object",
        }
    }
}

/// Every key `Layer` accepts, dotted (`scep.subject_alt_names.dns`), tables included, with
/// what it holds.
pub fn all() -> BTreeMap<String, Kind> {
    let mut keys = BTreeMap::new();
    let probe = Probe {
        path: String::new(),
        keys: &mut keys,
    };
    // Every type in `Layer` is one the probe answers; anything else is a bug found here.
    if let Err(e) = Layer::deserialize(probe) {
        panic!("the configuration keys cannot be derived from Layer: {e}");
    }
    keys
}

/// Who reads a key once `config::load` has resolved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy {
    /// The code path that acts on the value.
    Code(&'static str),
    /// Only its default is accepted; any other value is refused at load (exit 2): why.
    Refused(&'static str),
}

/// For every key that holds a value (tables are their keys), what reads it.
pub const READERS: &[(&str, ReadBy)] = &[
    ("org_url", ReadBy::Code("Config::org_url: agent::enroll and agent::renew talk to this org (agent::net::okta_client); status --check-network probes it (agent::net::org_reachable)")),
    ("org_token_file", ReadBy::Code("Config::org_token: read by Config::org_token() when an Okta enrollment needs the secret (agent::enroll, app::session::read_secret)")),
    ("ca_file", ReadBy::Code("Config::ca_file: extra trust anchors of every request (agent::net::http_settings); saved in the enrollment record")),
    ("cert_auth_host", ReadBy::Code("Config::cert_auth_host: the host of the browser policy and Safari's identity preferences on the SCEP path (chain::Context::cert_auth_host)")),
    ("store", ReadBy::Code("Config::store: which identity store the host opens (Host::open_store)")),
    ("renew_before_days", ReadBy::Code("Config::renew_before_days: the latest renewal start (Config::renewal_policy: renew, status, the renewal job)")),
    ("renew_spread_days", ReadBy::Code("Config::renew_spread_days: the fleet's spread before the latest start (Config::renewal_policy)")),
    ("lock_timeout_secs", ReadBy::Code("Config::lock_timeout: how long a run waits for the user's run lock (Agent::lock)")),
    ("scep.url", ReadBy::Code("ScepConfig::url: switches enrollment and renewal to SCEP (Config::method, Config::scep_settings, scep::enroll, scep::renew)")),
    ("scep.challenge_file", ReadBy::Code("ScepConfig::challenge: the static challenge of a SCEP request, read by Config::scep_settings")),
    ("scep.ca_fingerprint", ReadBy::Code("ScepSettings::ca_fingerprint: the CA certificate the SCEP client accepts (scep::client)")),
    ("scep.name", ReadBy::Code("ScepSettings::name: the CA instance name of GetCACaps/GetCACert/PKIOperation (scep::client)")),
    ("scep.subject", ReadBy::Code("ScepSettings::subject: the subject of the CSR and of the request's signer certificate (ScepSettings::csr_profile, scep::client)")),
    ("scep.key_size", ReadBy::Code("ScepSettings::key_size: the RSA key the store generates for SCEP (agent::enroll, agent::renew)")),
    ("scep.key_type", ReadBy::Code("config::scep::resolve_scep: refuses anything but RSA, the only key type of the SCEP path")),
    ("scep.key_usage", ReadBy::Code("ScepSettings::key_usage: the CSR's key usage extension (ScepSettings::csr_profile)")),
    ("scep.subject_alt_names.rfc822", ReadBy::Code("ScepSettings::subject_alt_names: the CSR's subjectAltName (ScepSettings::csr_profile)")),
    ("scep.subject_alt_names.dns", ReadBy::Code("ScepSettings::subject_alt_names: the CSR's subjectAltName (ScepSettings::csr_profile)")),
    ("scep.subject_alt_names.uri", ReadBy::Code("ScepSettings::subject_alt_names: the CSR's subjectAltName (ScepSettings::csr_profile)")),
    ("scep.subject_alt_names.nt_principal_name", ReadBy::Code("ScepSettings::subject_alt_names: one otherName UPN in the CSR's subjectAltName (ScepSettings::csr_profile)")),
    ("scep.retries", ReadBy::Code("ScepSettings::retries: CertPoll attempts while the CA answers PENDING (scep::client)")),
    ("scep.retry_delay_secs", ReadBy::Code("ScepSettings::retry_delay: the wait between CertPoll attempts (scep::client)")),
    ("scep.renew_before_days", ReadBy::Code("ScepConfig::renew_before_days: the SCEP path's own latest renewal start (Config::renewal_policy)")),
    ("scep.renew_spread_days", ReadBy::Code("ScepConfig::renew_spread_days: the SCEP path's own spread (Config::renewal_policy)")),
    ("scep.allow_all_apps_access", ReadBy::Refused("Apple's AllowAllAppsAccess: `true` cannot be honoured, securityd checks every caller against the key's partition list (config::scep::resolve_scep); `false` is what the agent does anyway")),
    ("network.connect_timeout_secs", ReadBy::Code("NetworkConfig::connect_timeout: every request's connect timeout (agent::net::http_settings)")),
    ("network.timeout_secs", ReadBy::Code("NetworkConfig::timeout: every request's timeout (agent::net::http_settings)")),
    ("network.max_attempts", ReadBy::Code("NetworkConfig::max_attempts: the retry policy of every request (agent::net::http_settings)")),
    ("network.retry_base_delay_ms", ReadBy::Code("NetworkConfig::retry_base_delay: the retry back-off (agent::net::http_settings)")),
    ("network.max_rate_limit_wait_secs", ReadBy::Code("NetworkConfig::max_rate_limit_wait: the longest wait a 429 may ask for (agent::net::http_settings)")),
    ("network.wait_for_network_secs", ReadBy::Code("NetworkConfig::wait_for_network: how long --check-network waits (agent::net::org_reachable)")),
    ("network.run_deadline_secs", ReadBy::Code("NetworkConfig::run_deadline: the longest one run may take (app::start_run_deadline)")),
    ("network.status_deadline_secs", ReadBy::Code("NetworkConfig::status_deadline: the longest status and ea may take (app::start_run_deadline)")),
    ("allowlist.add", ReadBy::Code("AllowlistConfig::add: the key's partition list (chain::allowlist, AllowlistConfig::desired)")),
    ("allowlist.remove", ReadBy::Code("AllowlistConfig::remove: the key's partition list (chain::allowlist, AllowlistConfig::desired)")),
    ("allowlist.replace_defaults", ReadBy::Code("AllowlistConfig::replace_defaults: the key's partition list (chain::allowlist, AllowlistConfig::desired)")),
    ("allowlist.allow_all_apps", ReadBy::Refused("`true` cannot be honoured, securityd checks every caller against the key's partition list (AllowlistConfig::desired); list the apps in allowlist.add instead")),
];

/// The probe: deserializes `Layer` from nothing, recording each field serde asks for.
struct Probe<'a> {
    path: String,
    keys: &'a mut BTreeMap<String, Kind>,
}

impl Probe<'_> {
    fn record(&mut self, kind: Kind) {
        // The top level is the whole file, not a key.
        if !self.path.is_empty() {
            self.keys.insert(self.path.clone(), kind);
        }
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom(format!(
            "{}: a type the key probe does not know",
            self.path
        )))
    }

    fn deserialize_bool<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Kind::Boolean);
        visitor.visit_bool(false)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Kind::Integer);
        visitor.visit_u64(0)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Kind::String);
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        self.record(Kind::Array);
        visitor.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<String>()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.record(Kind::Table);
        visitor.visit_map(Fields {
            path: self.path,
            fields: fields.iter(),
            current: "",
            keys: self.keys,
        })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u128 f32 f64 char bytes byte_buf unit unit_struct newtype_struct
        tuple tuple_struct map enum identifier ignored_any
    }
}

/// One table's fields, each answered by a probe one level down.
struct Fields<'a> {
    path: String,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
    keys: &'a mut BTreeMap<String, Kind>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(field.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let path = if self.path.is_empty() {
            self.current.to_owned()
        } else {
            format!("{}.{}", self.path, self.current)
        };
        seed.deserialize(Probe {
            path,
            keys: self.keys,
        })
    }
}

#[cfg(test)]
mod tests;
