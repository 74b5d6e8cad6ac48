//! `devicetrust selftest`: proves on this machine the platform behaviour the agent relies on,
//! one line per check (`PASS`/`FAIL`/`SKIP`, the check's name, the evidence), for a ticket.
//!
//! The report is platform-neutral; the checks are the host's: `files` (Linux, sandbox roots)
//! reads the identity, the NSS database, the browser policy files and the renewal job; `macos`
//! (on a Mac) works in a throwaway keychain, then reads the real state. Nothing here changes
//! the user's real keychain or files.

pub mod files;
pub mod keychain;
#[cfg(target_os = "macos")]
pub mod macos;

use crate::pki::SigningKey;
use serde_json::{json, Value};

/// One check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// Not applicable here, or nothing to look at (said why in the evidence).
    Skip,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    /// What was seen: the value read, the tool's answer, the OSStatus.
    pub evidence: String,
}

/// Every check, in the order run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn add(&mut self, name: impl Into<String>, outcome: Outcome, evidence: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            outcome,
            evidence: evidence.into().replace('\n', " "),
        });
    }

    /// PASS with `Ok`'s evidence, FAIL with `Err`'s.
    pub fn result(&mut self, name: impl Into<String>, result: Result<String, String>) {
        match result {
            Ok(evidence) => self.add(name, Outcome::Pass, evidence),
            Err(evidence) => self.add(name, Outcome::Fail, evidence),
        }
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == outcome).count()
    }

    /// `PASS name: evidence`, one per check.
    pub fn lines(&self) -> Vec<String> {
        self.checks
            .iter()
            .map(|c| format!("{} {}: {}", c.outcome.as_str(), c.name, c.evidence))
            .collect()
    }

    pub fn json(&self) -> Value {
        json!({
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name,
                "result": c.outcome.as_str(),
                "evidence": c.evidence,
            })).collect::<Vec<_>>(),
            "passed": self.count(Outcome::Pass),
            "failed": self.count(Outcome::Fail),
            "skipped": self.count(Outcome::Skip),
        })
    }

    /// 0 when nothing failed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.count(Outcome::Fail) > 0)
    }
}

/// Signs a fixed message with `key` and verifies the signature against `spki_der` (the
/// certificate's public key): the key the store hands out is the certificate's, and usable.
pub fn signs(key: &dyn SigningKey, spki_der: &[u8]) -> Result<String, String> {
    crate::store::keychain_trial::verified_signature(key, spki_der).map(|length| {
        format!(
            "RSA PKCS#1 v1.5 SHA-256 signature of {length} bytes verified with the certificate's key"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_check_and_exit_1_on_any_failure() {
        let mut report = Report::default();
        report.add("identity", Outcome::Pass, "certificate 0a valid");
        report.add("nss identity", Outcome::Skip, "no NSS database");
        assert_eq!(report.exit_code(), 0);
        report.result(
            "renewal timer",
            Err("devicetrust-renew.timer\nis missing".into()),
        );
        assert_eq!(
            report.lines(),
            [
                "PASS identity: certificate 0a valid",
                "SKIP nss identity: no NSS database",
                "FAIL renewal timer: devicetrust-renew.timer is missing",
            ]
        );
        assert_eq!(report.exit_code(), 1);
        let json = report.json();
        assert_eq!(json["failed"], 1);
        assert_eq!(json["checks"][2]["result"], "FAIL");
        assert_eq!(json["checks"][0]["evidence"], "certificate 0a valid");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_fails_the_signature_check() {
        let key = crate::pki::key::tests::test_key();
        let other = crate::pki::key::tests::other_test_key();
        assert!(signs(key, &key.public_key_der().unwrap()).is_ok());
        let err = signs(key, &other.public_key_der().unwrap()).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
    }
}
