//! The enrollment record as the configuration's lowest layer, checked like every other layer,
//! and what a root run may take from a copy of it that the user could have written.
//!
//! Root takes settings only from root-owned places (flags, environment, managed preferences,
//! the configuration file, the root-owned record). A record in the user's home is the user's to
//! edit: a root run migrates one only where it agrees with the configuration, and otherwise
//! leaves it aside with a `WARN:`.

use super::{check_ca_file, Config, ConfigError, Source, StoreSpec};
use crate::okta::OrgUrl;
use crate::record::{EnrollmentRecord, Method};

impl Config {
    /// Fills what no other layer set from `record`, each value checked as a layer's would be;
    /// `source` says which record it is (root's, or the user's copy).
    pub fn merge_record(
        &mut self,
        record: &EnrollmentRecord,
        source: Source,
    ) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| ConfigError::RecordInvalid {
            layer: source,
            key,
            reason,
        };
        check_record_hosts(record, source)?;
        if !self.is_configured() {
            match record.method {
                Some(Method::Scep) => {
                    if let Some(url) = &record.scep_url {
                        super::check_scep_url(url).map_err(|r| invalid("scep_url", r))?;
                        self.scep.url = Some(url.clone());
                        self.sources.set("scep.url", source);
                    }
                }
                Some(Method::Okta) | None => {
                    if let Some(url) = &record.org_url {
                        let org =
                            OrgUrl::parse(url).map_err(|e| invalid("org_url", e.to_string()))?;
                        self.org_url = Some(org);
                        self.sources.set("org_url", source);
                    }
                }
            }
        }
        let same_ca = self.scep.url.is_some() && self.scep.url == record.scep_url;
        if same_ca && self.scep.ca_fingerprint.is_none() {
            if let Some(fingerprint) = &record.scep_ca_fingerprint {
                crate::scep::parse_fingerprint(fingerprint)
                    .map_err(|r| invalid("scep_ca_fingerprint", r))?;
                self.scep.ca_fingerprint = Some(fingerprint.clone());
                self.sources.set("scep.ca_fingerprint", source);
            }
        }
        if let (None, Some(path)) = (&self.ca_file, &record.ca_file) {
            check_ca_file(path)?;
            self.ca_file = Some(path.clone());
            self.sources.set("ca_file", source);
        }
        if let (None, Some(spec)) = (&self.store, &record.store) {
            let spec = StoreSpec::parse(spec).map_err(|e| invalid("store", e.to_string()))?;
            self.store = Some(spec);
            self.sources.set("store", source);
        }
        // Okta's certAuthDomain and the org's cell live in the record itself (the metadata
        // gave them); they are settings in effect all the same.
        if record.cert_auth_host.is_some() {
            self.sources.set_if_absent("cert_auth_host", source);
        }
        if record.cell.is_some() {
            self.sources.set_if_absent("cell", source);
        }
        if let (None, Some(uuid)) = (&self.device_uuid, &record.device_uuid) {
            self.device_uuid = Some(uuid.clone());
            self.sources.set("device_uuid", source);
        }
        if let (None, Some(name)) = (&self.device_name, &record.device_name) {
            self.device_name = Some(name.clone());
            self.sources.set("device_name", source);
        }
        Ok(())
    }

    /// The record of where and how this configuration enrolls (no history): what root keeps so
    /// that later runs with no flags know the org, the CA and the store.
    pub fn settings_record(&self) -> EnrollmentRecord {
        let mut record = EnrollmentRecord {
            method: self.is_configured().then(|| self.method()),
            ca_file: self.ca_file.clone(),
            store: self.store.as_ref().map(ToString::to_string),
            config_file: self.file.clone().filter(|_| self.file_explicit),
            device_uuid: self.device_uuid.clone(),
            device_name: self.device_name.clone(),
            ..EnrollmentRecord::default()
        };
        match self.method() {
            Method::Okta => {
                record.org_url = self.org_url.as_ref().map(|o| o.as_str().to_owned());
                record.cell = self.org_url.as_ref().and_then(OrgUrl::cell);
            }
            Method::Scep => {
                record.scep_url =
                    self.scep.url.as_deref().map(|u| {
                        url::Url::parse(u).map_or_else(|_| u.to_owned(), |u| u.to_string())
                    });
                record.scep_ca_fingerprint = self.scep.ca_fingerprint.clone();
                record.cert_auth_host = self.cert_auth_host.clone();
            }
        }
        record
    }

    /// What a root run may migrate from a record the user could have written: nothing unless
    /// it names the org (or SCEP CA) this configuration names; of its other settings only those
    /// the configuration states alike; its certAuthDomain only where the configuration gives
    /// one (Okta's comes from Okta's metadata again). `Err` says how they disagree.
    pub fn agreeing_part(&self, copy: &EnrollmentRecord) -> Result<EnrollmentRecord, String> {
        let agrees = match copy.method {
            Some(Method::Okta) => {
                self.scep.url.is_none()
                    && matches!(
                        (&copy.org_url, &self.org_url),
                        (Some(theirs), Some(ours)) if OrgUrl::parse(theirs).is_ok_and(|t| t == *ours)
                    )
            }
            Some(Method::Scep) => copy.scep_url.is_some() && copy.scep_url == self.scep.url,
            None => false,
        };
        if !agrees {
            return Err(format!(
                "it names {} where the configuration names {}",
                destination(copy.method, &copy.org_url, &copy.scep_url),
                destination(
                    Some(self.method()),
                    &self.org_url.as_ref().map(|o| o.as_str().to_owned()),
                    &self.scep.url
                )
            ));
        }
        let alike = |theirs: &Option<String>, ours: Option<String>| {
            theirs.clone().filter(|t| Some(t) == ours.as_ref())
        };
        let okta = copy.method == Some(Method::Okta);
        Ok(EnrollmentRecord {
            method: copy.method,
            org_url: copy.org_url.clone().filter(|_| okta),
            scep_url: copy.scep_url.clone().filter(|_| !okta),
            scep_ca_fingerprint: copy
                .scep_ca_fingerprint
                .clone()
                .filter(|t| same_fingerprint(t, self.scep.ca_fingerprint.as_deref())),
            // What a user could have written never says which CA the identity must come from.
            scep_ca_certificates: Vec::new(),
            cert_auth_host: alike(&copy.cert_auth_host, self.cert_auth_host.clone()),
            cell: self
                .org_url
                .as_ref()
                .and_then(OrgUrl::cell)
                .filter(|_| okta),
            ca_file: copy
                .ca_file
                .clone()
                .filter(|t| Some(t) == self.ca_file.as_ref()),
            store: alike(&copy.store, self.store.as_ref().map(ToString::to_string)),
            config_file: None,
            device_uuid: alike(&copy.device_uuid, self.device_uuid.clone()),
            device_name: alike(&copy.device_name, self.device_name.clone()),
            enrolled_at: copy.enrolled_at.clone(),
            last_renewal: copy.last_renewal.clone(),
        })
    }

    /// The options the renewal job must repeat so that running it exactly as installed acts
    /// on this device as the enrollment did: a non-default configuration file (this run's
    /// `--config`, else the one the enrollment `record` names), store and root. A run without
    /// the enrollment's options so expects the job the enrollment installed, never reading them
    /// from the job file in the user's home.
    pub fn job_args(&self, record: &EnrollmentRecord) -> Vec<String> {
        let mut args = Vec::new();
        let file = match (self.file_explicit, &self.file) {
            (true, Some(file)) => Some(file),
            _ => record.config_file.as_ref(),
        };
        if let Some(file) = file {
            args.push("--config".to_owned());
            args.push(file.display().to_string());
        }
        if let Some(store) = &self.store {
            args.push("--store".to_owned());
            args.push(store.to_string());
        }
        if self.root != std::path::Path::new("/") {
            args.push("--root".to_owned());
            args.push(self.root.display().to_string());
        }
        args
    }

    /// SCEP over plain http is safe only with the CA pinned: the challenge travels encrypted to
    /// the CA certificate, and an unpinned one could be anybody's (Apple's payload allows http
    /// with a fingerprint, as NDES often serves). Checked once every layer is merged.
    pub fn check_scep_transport(&self) -> Result<(), ConfigError> {
        match &self.scep.url {
            Some(url) if is_plain_http(url) && self.scep.ca_fingerprint.is_none() => {
                Err(ConfigError::Invalid {
                    key: "scep.url",
                    reason: format!(
                        "{url} is plain http, and no CA is pinned: set scep.ca_fingerprint \
                         (the SHA-256 of the CA certificate) or use https"
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}

/// The record's certAuthDomain and cell name hosts in browser policies and Safari
/// preferences, read from the record itself: they must be DNS host names, never a suffix.
fn check_record_hosts(record: &EnrollmentRecord, source: Source) -> Result<(), ConfigError> {
    let invalid = |key: &'static str, reason: String| ConfigError::RecordInvalid {
        layer: source,
        key,
        reason,
    };
    if let Some(host) = &record.cert_auth_host {
        crate::dns::host_name(host).map_err(|e| invalid("cert_auth_host", e.to_string()))?;
    }
    if let Some(cell) = &record.cell {
        crate::dns::host_name(cell).map_err(|e| invalid("cell", e.to_string()))?;
    }
    Ok(())
}

fn is_plain_http(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "http")
}

fn same_fingerprint(theirs: &str, ours: Option<&str>) -> bool {
    match (
        crate::scep::parse_fingerprint(theirs),
        ours.map(crate::scep::parse_fingerprint),
    ) {
        (Ok(t), Some(Ok(o))) => t == o,
        _ => false,
    }
}

fn destination(method: Option<Method>, org: &Option<String>, scep: &Option<String>) -> String {
    match (method, org, scep) {
        (Some(Method::Scep), _, Some(url)) => format!("the SCEP CA {url}"),
        (Some(Method::Okta), Some(org), _) => format!("the org {org}"),
        _ => "no org".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(file: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, file).unwrap();
        let flags = super::super::Flags {
            config: Some(path),
            ..Default::default()
        };
        super::super::load(&flags, &HashMap::new(), Default::default()).unwrap()
    }

    fn copy() -> EnrollmentRecord {
        EnrollmentRecord {
            method: Some(Method::Okta),
            org_url: Some("https://acme.okta.com".into()),
            cert_auth_host: Some("acme.devicetrust.okta.com".into()),
            cell: Some("okta.com".into()),
            store: Some("file:/somewhere".into()),
            device_uuid: Some("UUID-1".into()),
            enrolled_at: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_copy_naming_the_configured_org_keeps_only_what_the_configuration_states() {
        let config = config("org_url = \"acme.okta.com\"\n");
        let part = config.agreeing_part(&copy()).unwrap();
        assert_eq!(part.org_url.as_deref(), Some("https://acme.okta.com"));
        assert_eq!(part.cell.as_deref(), Some("okta.com"));
        // Neither the store nor the device facts nor Okta's host are the configuration's word.
        assert_eq!(part.store, None);
        assert_eq!(part.device_uuid, None);
        assert_eq!(part.cert_auth_host, None);
        assert_eq!(part.enrolled_at.as_deref(), Some("2026-01-01T00:00:00Z"));

        let config = config_with_store();
        let part = config.agreeing_part(&copy()).unwrap();
        assert_eq!(part.store.as_deref(), Some("file:/somewhere"));
    }

    fn config_with_store() -> Config {
        config("org_url = \"https://acme.okta.com\"\nstore = \"file:/somewhere\"\n")
    }

    #[test]
    fn a_copy_naming_another_destination_is_not_migrated() {
        let err = config("org_url = \"https://other.okta.com\"\n")
            .agreeing_part(&copy())
            .unwrap_err();
        assert_eq!(
            err,
            "it names the org https://acme.okta.com where the configuration names the org \
             https://other.okta.com"
        );
        assert!(config("").agreeing_part(&copy()).is_err());
        let scep = config("[scep]\nurl = \"https://ca.example/scep\"\n");
        assert!(scep.agreeing_part(&copy()).is_err());
    }

    #[test]
    fn record_hosts_are_checked_as_host_names() {
        let mut config = config("");
        let mut record = copy();
        record.cert_auth_host = Some("*".into());
        let err = config.merge_record(&record, Source::Record).unwrap_err();
        assert!(err.to_string().contains("cert_auth_host"), "{err}");
        let mut record = copy();
        record.cell = Some("com".into());
        assert!(config.merge_record(&record, Source::UserCopy).is_err());
        assert!(
            config.org_url.is_none(),
            "nothing merged from a refused record"
        );
    }

    #[test]
    fn plain_http_scep_needs_a_pinned_ca() {
        let config = config("[scep]\nurl = \"http://ca.example/scep\"\n");
        let err = config.check_scep_transport().unwrap_err();
        assert!(err.to_string().contains("scep.ca_fingerprint"), "{err}");
        let pinned = self::config(&format!(
            "[scep]\nurl = \"http://ca.example/scep\"\nca_fingerprint = \"{}\"\n",
            "ab".repeat(32)
        ));
        pinned.check_scep_transport().unwrap();
        self::config("[scep]\nurl = \"https://ca.example/scep\"\n")
            .check_scep_transport()
            .unwrap();
    }
}
