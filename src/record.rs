//! The enrollment record: what a successful enrollment saved for the unattended runs after it,
//! and how the last renewal went.
//!
//! A Jamf policy may enroll with flags only (`--org-url`, `--ca-file`, `--store`); the daily job
//! then runs `devicetrust renew` with nothing else. The record is the configuration layer below
//! the file and above the defaults (cli.md), so that job, `status`, `ea`, `repair` and
//! `uninstall` still know the org, the CA file and the store. It holds no secret.

use crate::pki::CertificateInfo;
use crate::timefmt;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Okta,
    Scep,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Okta => "okta",
            Method::Scep => "scep",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalAttempt {
    /// RFC 3339, UTC.
    pub time: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The record as stored in `state.json`. Every field is optional: a record written by an older
/// agent, or rebuilt after a damaged file, simply knows less.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnrollmentRecord {
    pub method: Option<Method>,
    /// The org the identity belongs to (a device belongs to one org's Device Trust).
    pub org_url: Option<String>,
    /// The SCEP CA a SCEP enrollment came from, and the CA certificate it was pinned to.
    pub scep_url: Option<String>,
    pub scep_ca_fingerprint: Option<String>,
    /// Where the MTLS handshake happens (metadata `certAuthDomain`, host only).
    pub cert_auth_host: Option<String>,
    /// Everything after the first dot of the org host (`okta.com`): Safari's `*.<cell>` name.
    pub cell: Option<String>,
    /// The extra trust anchors the enrollment was given.
    pub ca_file: Option<PathBuf>,
    /// The identity store, when it is not the default (`file:DIR`).
    pub store: Option<String>,
    /// Device facts given as overrides at enrollment (never the OS's own): a renewal must name
    /// the device exactly as the enrollment did.
    pub device_uuid: Option<String>,
    pub device_name: Option<String>,
    pub enrolled_at: Option<String>,
    pub last_renewal: Option<RenewalAttempt>,
}

impl EnrollmentRecord {
    /// True when an enrollment saved where to renew: the record alone configures the device.
    pub fn is_enrollment(&self) -> bool {
        match self.method {
            Some(Method::Okta) => self.org_url.is_some(),
            Some(Method::Scep) => self.scep_url.is_some(),
            None => false,
        }
    }

    pub fn record_renewal(&mut self, result: Result<(), String>) {
        self.last_renewal = Some(RenewalAttempt {
            time: timefmt::now_rfc3339(),
            ok: result.is_ok(),
            error: result.err(),
        });
    }

    /// Whether the last renewal failed while the certificate still needs one (`Renewal Failing`).
    pub fn renewal_failed(&self) -> bool {
        self.last_renewal.as_ref().is_some_and(|r| !r.ok)
    }

    /// A best guess of how a stored identity was enrolled, for a record rebuilt after damage:
    /// Okta's device-trust CA has a fixed issuer name, anything else came from a SCEP CA.
    pub fn infer_method(certificate: &CertificateInfo) -> Method {
        if certificate.issuer_cn.as_deref() == Some(crate::integrations::chrome::OKTA_ISSUER_CN) {
            Method::Okta
        } else {
            Method::Scep
        }
    }
}

/// A record file bigger than this was not written by the agent.
const RECORD_MAX: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot {action} the enrollment record {}: {}", path.display(), crate::fsutil::io_reason(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What reading the record found.
#[derive(Debug)]
pub enum Loaded {
    /// No record: never enrolled, or uninstalled.
    Absent,
    Found(EnrollmentRecord),
    /// The file did not parse; it was renamed to `kept_as` (never overwritten) and the run
    /// goes on without it.
    Damaged { kept_as: PathBuf, reason: String },
}

/// `state.json` in the user's state directory.
#[derive(Debug, Clone)]
pub struct RecordFile {
    path: PathBuf,
}

impl RecordFile {
    pub fn at(path: PathBuf) -> RecordFile {
        RecordFile { path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads the record. A file that does not parse is set aside under a new name, so neither
    /// this run nor a later one overwrites what an admin may want to look at.
    pub fn load(&self) -> Result<Loaded, RecordError> {
        let io = |action, source| RecordError::Io {
            action,
            path: self.path.clone(),
            source,
        };
        let bytes = match crate::fsutil::read_capped(&self.path, RECORD_MAX) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Absent),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(io("read", e))
            }
            // Too big or not a regular file: damaged, set aside like unparsable text.
            Err(e) => return self.set_aside(e.to_string()),
        };
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Loaded::Found(record)),
            Err(e) => self.set_aside(e.to_string()),
        }
    }

    fn set_aside(&self, reason: String) -> Result<Loaded, RecordError> {
        let stamp = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let kept_as = self.path.with_file_name(format!("state.json.damaged-{stamp}"));
        std::fs::rename(&self.path, &kept_as).map_err(|source| RecordError::Io {
            action: "set aside",
            path: self.path.clone(),
            source,
        })?;
        Ok(Loaded::Damaged { kept_as, reason })
    }

    /// Writes the record atomically: a new file, synced, renamed over the old, directory synced.
    pub fn save(&self, record: &EnrollmentRecord) -> Result<(), RecordError> {
        let io = |source| RecordError::Io {
            action: "write",
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(record).map_err(|e| io(std::io::Error::other(e)))?;
        crate::fsutil::atomic_write_private(&self.path, &json).map_err(io)
    }

    /// Removes the record (uninstall); absent is fine.
    pub fn remove(&self) -> Result<bool, RecordError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(RecordError::Io {
                action: "remove",
                path: self.path.clone(),
                source,
            }),
        }
    }
}

pub use crate::timefmt::{now_rfc3339, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_of_the_first_format_still_loads() {
        let old = r#"{"method":"okta","org_url":"https://acme.okta.com",
            "cert_auth_host":"acme.devicetrust.okta.com","scep_url":null,
            "enrolled_at":"2026-01-01T00:00:00Z","last_renewal":null}"#;
        let record: EnrollmentRecord = serde_json::from_str(old).unwrap();
        assert!(record.is_enrollment());
        assert_eq!(record.ca_file, None);
    }

    #[test]
    fn a_damaged_record_is_set_aside_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = RecordFile::at(dir.path().join("state.json"));
        assert!(matches!(file.load().unwrap(), Loaded::Absent));
        std::fs::write(file.path(), b"{\"org_url\": tru").unwrap();
        let Loaded::Damaged { kept_as, .. } = file.load().unwrap() else {
            panic!("not damaged")
        };
        assert_eq!(std::fs::read(&kept_as).unwrap(), b"{\"org_url\": tru");
        assert!(matches!(file.load().unwrap(), Loaded::Absent));
        let record = EnrollmentRecord {
            method: Some(Method::Okta),
            org_url: Some("https://acme.okta.com".into()),
            ..Default::default()
        };
        file.save(&record).unwrap();
        assert!(matches!(file.load().unwrap(), Loaded::Found(r) if r == record));
        assert!(kept_as.exists(), "the damaged copy stays");
    }

    #[test]
    fn only_a_method_with_its_url_is_an_enrollment() {
        let mut record = EnrollmentRecord {
            method: Some(Method::Scep),
            ..Default::default()
        };
        assert!(!record.is_enrollment());
        record.scep_url = Some("https://ca/scep".into());
        assert!(record.is_enrollment());
        assert!(!EnrollmentRecord::default().is_enrollment());
    }
}
