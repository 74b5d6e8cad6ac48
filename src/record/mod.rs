//! The enrollment record: what a successful enrollment saved for the unattended runs after it,
//! and how the last renewal went.
//!
//! A Jamf policy may enroll with flags only (`--org-url`, `--ca-file`, `--store`); the daily job
//! then runs `devicetrust renew` with nothing else. The record is the configuration layer below
//! the file and above the defaults (cli.md), so that job, `status`, `ea`, `repair` and
//! `uninstall` still know the org, the CA file and the store. It holds no secret.
//!
//! It exists twice: root runs keep it in a root-owned file ([`DeviceRecordFile`]), the layer
//! they take settings from; the copy in the user's state folder ([`RecordFile`]) is a cache
//! for the user's own runs and the place the user's renewal job notes how it went.

pub mod device;

pub use device::DeviceRecordFile;

use crate::paths::STATE_FILE;
use crate::pki::CertificateInfo;
use crate::securefs::{FileKind, Place, SecureDir, SecureFsError};
use crate::timefmt;
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use time::OffsetDateTime;
use tracing::warn;

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
    /// The SCEP CA's certificates (base64 DER) as a run that owns this record fetched them,
    /// checked against the pin: a stored identity must be signed by one of them
    /// (`chain::ca`). Empty for Okta, whose CA publishes no key, and in older agents' records.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scep_ca_certificates: Vec<String>,
    /// Where the MTLS handshake happens (metadata `certAuthDomain`, host only).
    pub cert_auth_host: Option<String>,
    /// Everything after the first dot of the org host (`okta.com`): Safari's `*.<cell>` name.
    pub cell: Option<String>,
    /// The extra trust anchors the enrollment was given.
    pub ca_file: Option<PathBuf>,
    /// The identity store, when it is not the default (`file:DIR`).
    pub store: Option<String>,
    /// The configuration file the enrollment named with `--config`: its renewal job repeats
    /// it, and a run without the flag still knows that job for this agent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
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

    /// What the record says about the identity's history rather than where it came from: when
    /// it was enrolled and how the last renewal went. A root run takes only this from the
    /// user's copy (the user's renewal job writes it there).
    pub fn history(&self) -> EnrollmentRecord {
        EnrollmentRecord {
            enrolled_at: self.enrolled_at.clone(),
            last_renewal: self.last_renewal.clone(),
            ..EnrollmentRecord::default()
        }
    }

    /// This record with what it lacks taken from `under`, and the later of the two renewal
    /// attempts (RFC 3339 UTC times of the same form compare as text).
    pub fn over(self, under: &EnrollmentRecord) -> EnrollmentRecord {
        let last_renewal = match (self.last_renewal, under.last_renewal.clone()) {
            (Some(a), Some(b)) => Some(if b.time > a.time { b } else { a }),
            (a, b) => a.or(b),
        };
        let pick = |a: Option<String>, b: &Option<String>| a.or_else(|| b.clone());
        // The CA's certificates belong to the CA's URL: another CA's never fill in.
        let scep_ca_certificates = if !self.scep_ca_certificates.is_empty() {
            self.scep_ca_certificates
        } else if self.scep_url.is_none() || self.scep_url == under.scep_url {
            under.scep_ca_certificates.clone()
        } else {
            Vec::new()
        };
        EnrollmentRecord {
            method: self.method.or(under.method),
            org_url: pick(self.org_url, &under.org_url),
            scep_url: pick(self.scep_url, &under.scep_url),
            scep_ca_fingerprint: pick(self.scep_ca_fingerprint, &under.scep_ca_fingerprint),
            scep_ca_certificates,
            cert_auth_host: pick(self.cert_auth_host, &under.cert_auth_host),
            cell: pick(self.cell, &under.cell),
            ca_file: self.ca_file.or_else(|| under.ca_file.clone()),
            store: pick(self.store, &under.store),
            config_file: self.config_file.or_else(|| under.config_file.clone()),
            device_uuid: pick(self.device_uuid, &under.device_uuid),
            device_name: pick(self.device_name, &under.device_name),
            enrolled_at: pick(self.enrolled_at, &under.enrolled_at),
            last_renewal,
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
        if certificate.issuer_cn.as_deref() == Some(crate::okta::OKTA_ISSUER_CN) {
            Method::Okta
        } else {
            Method::Scep
        }
    }
}

/// A record file bigger than this was not written by the agent.
const RECORD_MAX: u64 = 64 * 1024;
/// What `write_file_atomic` and the agents before it named their temporary copies of the
/// record: `.state.json.tmp-<random>`, and `.state.json.tmp-<pid>` before that.
const TEMP_PREFIX: &str = ".state.json.tmp-";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot {action} the enrollment record: {source}")]
    Fs {
        action: &'static str,
        #[source]
        source: SecureFsError,
    },
    #[error("cannot encode the enrollment record: {0}")]
    Encode(#[source] serde_json::Error),
}

impl RecordError {
    /// `map_err` adapter for a file-system step of `action`.
    pub fn from_fs(action: &'static str) -> impl Fn(SecureFsError) -> RecordError {
        move |source| RecordError::Fs { action, source }
    }
}

/// What reading the record found.
#[derive(Debug)]
pub enum Loaded {
    /// No record: never enrolled, or uninstalled.
    Absent,
    Found(EnrollmentRecord),
    /// The file did not parse; it was renamed to `kept_as` (never overwritten) and the run
    /// goes on without it.
    Damaged {
        kept_as: PathBuf,
        reason: String,
    },
}

/// `state.json` in the user's state directory, reached without following links: the folder is
/// the user's, and a link planted at it or at the file is refused, never followed.
#[derive(Debug, Clone)]
pub struct RecordFile {
    dir: Place,
    path: PathBuf,
}

impl RecordFile {
    /// The record in the folder `dir` (the user's state directory).
    pub fn in_dir(dir: Place) -> RecordFile {
        let path = dir.path().join(STATE_FILE);
        RecordFile { dir, path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads the record. A file that does not parse is set aside under a new name, so neither
    /// this run nor a later one overwrites what an admin may want to look at. A link or a
    /// hard-linked file at its name is refused: that is not damage but something planted.
    pub fn load(&self) -> Result<Loaded, RecordError> {
        self.read(true)
    }

    /// Reads the record as [`RecordFile::load`] does, but leaves a damaged file where it is:
    /// `Damaged::kept_as` is then its own path. For runs that change nothing.
    pub fn peek(&self) -> Result<Loaded, RecordError> {
        self.read(false)
    }

    fn read(&self, set_aside: bool) -> Result<Loaded, RecordError> {
        let read = |source| RecordError::Fs {
            action: "read",
            source,
        };
        let Some(dir) = self.dir.open().map_err(read)? else {
            return Ok(Loaded::Absent);
        };
        let bytes = match dir.read_file(STATE_FILE, RECORD_MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(Loaded::Absent),
            Err(e) if e.is_planted() => return Err(read(e)),
            // Too big, a folder or a FIFO: damaged, set aside like unparsable text.
            Err(
                e @ (SecureFsError::TooLarge { .. }
                | SecureFsError::NotRegular { .. }
                | SecureFsError::IsDirectory { .. }),
            ) => return self.set_aside(&dir, e.to_string(), set_aside),
            Err(e) => return Err(read(e)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(record) => Ok(Loaded::Found(record)),
            Err(e) => self.set_aside(&dir, e.to_string(), set_aside),
        }
    }

    fn set_aside(
        &self,
        dir: &SecureDir,
        reason: String,
        set_aside: bool,
    ) -> Result<Loaded, RecordError> {
        if !set_aside {
            return Ok(Loaded::Damaged {
                kept_as: self.path.clone(),
                reason,
            });
        }
        let stamp = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let name = format!("{STATE_FILE}.damaged-{stamp}");
        dir.rename(STATE_FILE, &name)
            .map_err(|source| RecordError::Fs {
                action: "set aside",
                source,
            })?;
        Ok(Loaded::Damaged {
            kept_as: dir.path().join(name),
            reason,
        })
    }

    /// Writes the record atomically (a new file under an unpredictable name, synced, renamed
    /// over the old), owned by the user whose home it is, then sweeps temporary copies that
    /// interrupted writes left. Runs hold the run lock while they save, so no other write is
    /// under way.
    pub fn save(&self, record: &EnrollmentRecord) -> Result<(), RecordError> {
        let write = |source| RecordError::Fs {
            action: "write",
            source,
        };
        let json = serde_json::to_vec_pretty(record).map_err(RecordError::Encode)?;
        let dir = self.dir.create(0o700).map_err(write)?;
        let owner = self.dir.owner().map_err(write)?;
        dir.write_file_atomic(STATE_FILE, &json, 0o600, Some(owner))
            .map_err(write)?;
        for entry in dir.entries().map_err(write)? {
            let leftover = entry.name.as_bytes().starts_with(TEMP_PREFIX.as_bytes());
            // A folder of that name is not a file we wrote; only files and links go.
            if leftover && entry.kind != FileKind::Dir {
                if let Err(e) = dir.remove_file(&entry.name) {
                    warn!("a temporary copy of the enrollment record stays: {e}");
                }
            }
        }
        Ok(())
    }

    /// Removes the record (uninstall); absent is fine.
    pub fn remove(&self) -> Result<bool, RecordError> {
        let remove = |source| RecordError::Fs {
            action: "remove",
            source,
        };
        match self.dir.open().map_err(remove)? {
            Some(dir) => dir.remove_file(STATE_FILE).map_err(remove),
            None => Ok(false),
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
        let file = RecordFile::in_dir(Place::new(dir.path(), "state"));
        assert!(matches!(file.load().unwrap(), Loaded::Absent));
        std::fs::create_dir(dir.path().join("state")).unwrap();
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
    fn a_link_at_the_record_is_refused_and_leftover_copies_are_swept() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"not yours").unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let file = RecordFile::in_dir(Place::new(dir.path(), "state"));

        symlink(&outside, state.join(STATE_FILE)).unwrap();
        let err = file.load().unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert!(
            std::fs::symlink_metadata(state.join(STATE_FILE))
                .unwrap()
                .is_symlink(),
            "a planted link is not damage to set aside"
        );
        std::fs::remove_file(state.join(STATE_FILE)).unwrap();

        // What interrupted writes of this and older agents left, and a folder that is not.
        symlink(&outside, state.join(".state.json.tmp-4242")).unwrap();
        std::fs::write(state.join(".state.json.tmp-0123"), b"{}").unwrap();
        std::fs::create_dir(state.join(".state.json.tmp-dir")).unwrap();
        file.save(&EnrollmentRecord::default()).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".state.json.tmp-dir", STATE_FILE]);
        assert_eq!(std::fs::read(&outside).unwrap(), b"not yours");

        let link = dir.path().join("linked");
        symlink(&state, &link).unwrap();
        let err = RecordFile::in_dir(Place::new(dir.path(), "linked"))
            .save(&EnrollmentRecord::default())
            .unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
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
