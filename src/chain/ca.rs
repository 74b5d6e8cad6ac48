//! The CA a stored identity must come from, and the judgement of a stored certificate against
//! it: what the enrollment record (root's, for root runs) holds or the configuration names,
//! never what the certificate in the user's home says about itself.
//!
//! A user can write their own store, so a certificate found there is data: it is ours only when
//! it names the expected CA as its issuer and, where the CA's key is known (a SCEP CA whose
//! certificates a run that owns the record fetched), carries that key's signature. Okta
//! publishes no key for its device-trust CA, so on the Okta path the issuer name is all there is
//! to check (docs/reliability.md says what that leaves a user able to do to their own report).
//! The browser filter is then built from the expectation (Okta's fixed name, or the recorded
//! SCEP CA's subject), so nothing machine-wide follows a certificate a user planted.

use crate::config::Config;
use crate::integrations::chrome::IssuerFilter;
use crate::okta::OKTA_ISSUER_CN;
use crate::pki::{verify_issued_by, CertificateInfo};
use crate::record::{EnrollmentRecord, Method};
use base64::Engine;
use sha2::Digest;

/// Where the stored identity must come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedCa {
    /// Okta's device-trust CA: issuer CN `MTLS Certificate Authority` (the protocol's
    /// on-device contract; Okta's task wrote the same name into Chrome's filter).
    Okta,
    /// A SCEP CA. `certificates` are the CA's certificates (DER) the record holds; empty while
    /// no run that owns the record has fetched them (an older agent enrolled the device).
    Scep { certificates: Vec<Vec<u8>> },
    /// The identity was enrolled with another method or CA than the configured one: whatever
    /// is stored is left from before the change, and the next `enroll` replaces it.
    Moved {
        enrolled: String,
        configured: String,
    },
}

impl ExpectedCa {
    /// The expectation of this configuration over this record (root's, in root runs).
    pub fn of(config: &Config, record: &EnrollmentRecord) -> ExpectedCa {
        let configured = config.method();
        if let Some(enrolled) = record.method {
            if let Some(moved) = moved(config, record, enrolled, configured) {
                return moved;
            }
        }
        match configured {
            Method::Okta => ExpectedCa::Okta,
            Method::Scep => ExpectedCa::Scep {
                certificates: decoded(&record.scep_ca_certificates),
            },
        }
    }

    /// Whether `certificate` comes from this CA; `Err` says why not, in words for `status`.
    pub fn judge(&self, certificate: &CertificateInfo) -> Result<(), String> {
        match self {
            ExpectedCa::Okta => {
                if certificate.issuer_cn.as_deref() == Some(OKTA_ISSUER_CN) {
                    Ok(())
                } else {
                    Err(format!(
                        "the stored certificate was issued by {}, not by Okta's device-trust CA \
                         (CN={OKTA_ISSUER_CN})",
                        certificate.issuer
                    ))
                }
            }
            // Not fetched yet: an older agent's enrollment, judged once a run as root has
            // fetched the CA's certificates (`Agent::learn_scep_ca`).
            ExpectedCa::Scep { certificates } if certificates.is_empty() => Ok(()),
            ExpectedCa::Scep { certificates } => {
                if certificates
                    .iter()
                    .any(|ca| verify_issued_by(&certificate.der, ca).is_ok())
                {
                    Ok(())
                } else {
                    Err(format!(
                        "the stored certificate (issuer {}) is not signed by the SCEP CA this \
                         device enrolled with",
                        certificate.issuer
                    ))
                }
            }
            ExpectedCa::Moved {
                enrolled,
                configured,
            } => Err(format!(
                "the stored certificate was enrolled with {enrolled}; the configuration now \
                 names {configured}"
            )),
        }
    }

    /// The issuer filter the browsers select our certificate with, for an identity this
    /// expectation has judged ours (`held`), or why none can be built.
    pub fn filter(&self, held: Option<&CertificateInfo>) -> Result<IssuerFilter, NoFilter> {
        match self {
            ExpectedCa::Okta => Ok(IssuerFilter::okta()),
            // A judged certificate's issuer name is, byte for byte, the subject of a recorded
            // CA certificate (`verify_issued_by` compares them), so this is the CA's name.
            ExpectedCa::Scep { certificates } if !certificates.is_empty() => {
                let held = held
                    .filter(|h| self.judge(h).is_ok())
                    .ok_or(NoFilter::NoIdentity)?;
                Some(IssuerFilter::of(held))
                    .filter(|f| !f.is_empty())
                    .ok_or(NoFilter::Nameless)
            }
            ExpectedCa::Scep { .. } => Err(NoFilter::NotRecorded),
            ExpectedCa::Moved { .. } => Err(NoFilter::NoIdentity),
        }
    }

    /// The issuer CN of the identities this CA issues (the NSS nickname's issuer part).
    pub fn issuer_cn<'a>(&self, held: Option<&'a CertificateInfo>) -> Option<&'a str> {
        match self {
            ExpectedCa::Okta => Some(OKTA_ISSUER_CN),
            _ => held.and_then(|c| c.issuer_cn.as_deref()),
        }
    }

    /// Whether a SCEP CA's certificates are still to be fetched for this record.
    pub fn needs_scep_ca(&self) -> bool {
        matches!(self, ExpectedCa::Scep { certificates } if certificates.is_empty())
    }
}

/// Why no browser filter can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoFilter {
    #[error(
        "the SCEP CA's certificates are not recorded yet, so the browsers' issuer filter is \
         unknown; `devicetrust repair` run as root fetches them"
    )]
    NotRecorded,
    #[error("the CA's name has no CN, O or OU for the browsers' issuer filter")]
    Nameless,
    #[error("no certificate from the expected CA is stored")]
    NoIdentity,
}

/// The enrollment the record describes, when the configuration names another method or CA.
fn moved(
    config: &Config,
    record: &EnrollmentRecord,
    enrolled: Method,
    configured: Method,
) -> Option<ExpectedCa> {
    let describe = |method: Method, scep: Option<&str>| match (method, scep) {
        (Method::Scep, Some(url)) => format!("the SCEP CA {url}"),
        (Method::Scep, None) => "a SCEP CA".to_owned(),
        (Method::Okta, _) => "Okta's device-trust CA".to_owned(),
    };
    let moved = |enrolled_scep: Option<&str>, configured_scep: Option<&str>| {
        Some(ExpectedCa::Moved {
            enrolled: describe(enrolled, enrolled_scep),
            configured: describe(configured, configured_scep),
        })
    };
    if enrolled != configured {
        return moved(record.scep_url.as_deref(), config.scep.url.as_deref());
    }
    if configured != Method::Scep {
        return None;
    }
    let (Some(ours), Some(theirs)) = (config.scep.url.as_deref(), record.scep_url.as_deref())
    else {
        return None;
    };
    if normalized(ours) != normalized(theirs) {
        return moved(Some(theirs), Some(ours));
    }
    // The same URL with another CA pinned: the CA was replaced behind the same address.
    let pin = |text: Option<&String>| text.and_then(|t| crate::scep::parse_fingerprint(t).ok());
    let pinned = pin(config.scep.ca_fingerprint.as_ref());
    let recorded_pin = pin(record.scep_ca_fingerprint.as_ref());
    let recorded = decoded(&record.scep_ca_certificates);
    let other_pin = match (pinned, recorded_pin) {
        (Some(now), Some(then)) => now != then,
        (Some(now), None) if !recorded.is_empty() => !recorded
            .iter()
            .any(|der| sha2::Sha256::digest(der).as_slice() == now),
        _ => false,
    };
    other_pin.then(|| ExpectedCa::Moved {
        enrolled: format!("the SCEP CA {theirs} as pinned then"),
        configured: format!("the SCEP CA {ours} with another CA pinned"),
    })
}

/// A URL as the record keeps it (`Config::settings_record` normalises it the same way).
fn normalized(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.to_string())
}

/// The record's base64 certificates. One that does not decode stays as an empty certificate,
/// which verifies nothing: a damaged entry makes the judgement stricter, never laxer.
fn decoded(certificates: &[String]) -> Vec<Vec<u8>> {
    certificates
        .iter()
        .map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default()
        })
        .collect()
}

/// The record's form of a CA's certificates.
pub fn encoded(certificates: &[Vec<u8>]) -> Vec<String> {
    certificates
        .iter()
        .map(|der| base64::engine::general_purpose::STANDARD.encode(der))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Flags, Layer};
    use crate::pki::authority::tests::{client_request, test_certificate};
    use crate::pki::authority::Authority;
    use crate::pki::key::tests::{other_test_key, test_key};
    use crate::pki::PrivateKey;
    use std::time::Duration;
    use time::OffsetDateTime;

    fn config(scep_url: Option<&str>, pin: Option<String>) -> Config {
        let flags = Flags {
            scep_url: scep_url.map(str::to_owned),
            scep_ca_fingerprint: pin,
            org_url: scep_url
                .is_none()
                .then(|| "https://acme.okta.com".to_owned()),
            ..Flags::default()
        };
        crate::config::load(&flags, &Default::default(), Layer::default()).unwrap()
    }

    /// A CA over a copy of `key` (generating keys is the slow part of these tests).
    fn authority(key: &PrivateKey, name: &str) -> Authority {
        let copy = PrivateKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap();
        Authority::self_signed_with_key(copy, name, Duration::from_secs(86_400)).unwrap()
    }

    fn issued_by(ca: &Authority) -> CertificateInfo {
        let now = OffsetDateTime::now_utc();
        let request = client_request(test_key().public_key_der().unwrap(), now);
        CertificateInfo::parse(&ca.issue(request).unwrap()).unwrap()
    }

    fn scep_record(url: &str, certificates: &[&[u8]]) -> EnrollmentRecord {
        EnrollmentRecord {
            method: Some(Method::Scep),
            scep_url: Some(url.to_owned()),
            scep_ca_certificates: encoded(
                &certificates.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
            ),
            ..EnrollmentRecord::default()
        }
    }

    const SCEP: &str = "https://ca.example.com/scep";

    #[test]
    fn on_the_okta_path_only_okta_s_ca_name_passes_and_the_filter_is_okta_s() {
        let okta = CertificateInfo::parse(&test_certificate(OffsetDateTime::now_utc())).unwrap();
        let expected = ExpectedCa::of(&config(None, None), &EnrollmentRecord::default());
        assert_eq!(expected, ExpectedCa::Okta);
        assert_eq!(expected.judge(&okta), Ok(()));

        let planted = issued_by(&authority(other_test_key(), "Attacker Chosen Issuer"));
        let why = expected.judge(&planted).unwrap_err();
        assert!(why.contains("CN=Attacker Chosen Issuer"), "{why}");
        // Whatever is stored, the browsers are told Okta's name.
        assert_eq!(expected.filter(Some(&planted)), Ok(IssuerFilter::okta()));
        assert_eq!(expected.issuer_cn(Some(&planted)), Some(OKTA_ISSUER_CN));
    }

    #[test]
    fn a_recorded_scep_ca_passes_only_what_its_key_signed_even_under_its_own_name() {
        let ca = authority(test_key(), "Acme Device CA");
        let ours = issued_by(&ca);
        let record = scep_record(SCEP, &[ca.certificate_der()]);
        let expected = ExpectedCa::of(&config(Some(SCEP), None), &record);
        assert_eq!(expected.judge(&ours), Ok(()));
        assert_eq!(expected.filter(Some(&ours)), Ok(IssuerFilter::of(&ours)));

        // A namesake CA (same name, another key): the name matches, the signature does not.
        let namesake = issued_by(&authority(other_test_key(), "Acme Device CA"));
        assert_eq!(namesake.issuer, ours.issuer);
        let why = expected.judge(&namesake).unwrap_err();
        assert!(why.contains("not signed by the SCEP CA"), "{why}");
        assert_eq!(expected.filter(Some(&namesake)), Err(NoFilter::NoIdentity));
        // Okta's name means nothing on the SCEP path either.
        let okta = CertificateInfo::parse(&test_certificate(OffsetDateTime::now_utc())).unwrap();
        assert!(expected.judge(&okta).is_err());
    }

    #[test]
    fn a_record_entry_that_does_not_decode_passes_nothing() {
        let ca = authority(test_key(), "Acme Device CA");
        let mut record = scep_record(SCEP, &[]);
        record.scep_ca_certificates = vec!["not base64!".into()];
        let expected = ExpectedCa::of(&config(Some(SCEP), None), &record);
        assert!(!expected.needs_scep_ca());
        assert!(expected.judge(&issued_by(&ca)).is_err());
    }

    #[test]
    fn a_scep_ca_not_recorded_yet_passes_but_names_no_filter() {
        let ca = authority(test_key(), "Acme Device CA");
        let held = issued_by(&ca);
        let expected = ExpectedCa::of(&config(Some(SCEP), None), &scep_record(SCEP, &[]));
        assert!(expected.needs_scep_ca());
        assert_eq!(expected.judge(&held), Ok(()));
        assert_eq!(expected.filter(Some(&held)), Err(NoFilter::NotRecorded));

        // An older agent's record keeps neither a pin nor the CA's certificates: a pin
        // configured now has nothing to differ from, so it is no move, and no certificate is
        // spent on the upgrade; the first root run fetches the CA's certificates under the pin.
        let pinned = config(
            Some(SCEP),
            Some(crate::scep::sha256_fingerprint_hex(ca.certificate_der())),
        );
        let upgraded = ExpectedCa::of(&pinned, &scep_record(SCEP, &[]));
        assert!(upgraded.needs_scep_ca(), "{upgraded:?}");
        assert_eq!(upgraded.judge(&held), Ok(()));
    }

    #[test]
    fn another_method_url_or_pin_than_the_enrollment_s_is_a_move() {
        let okta = CertificateInfo::parse(&test_certificate(OffsetDateTime::now_utc())).unwrap();
        let okta_record = EnrollmentRecord {
            method: Some(Method::Okta),
            org_url: Some("https://acme.okta.com".into()),
            ..EnrollmentRecord::default()
        };
        // Okta to SCEP: Okta's certificate is left from before.
        let to_scep = ExpectedCa::of(&config(Some(SCEP), None), &okta_record);
        assert!(matches!(to_scep, ExpectedCa::Moved { .. }), "{to_scep:?}");
        let why = to_scep.judge(&okta).unwrap_err();
        assert!(
            why.contains("Okta's device-trust CA") && why.contains(SCEP),
            "{why}"
        );

        // SCEP to Okta.
        let ca = authority(test_key(), "Acme Device CA");
        let scep = scep_record(SCEP, &[ca.certificate_der()]);
        let to_okta = ExpectedCa::of(&config(None, None), &scep);
        assert!(matches!(to_okta, ExpectedCa::Moved { .. }), "{to_okta:?}");
        assert!(to_okta.judge(&issued_by(&ca)).is_err());

        // Another SCEP URL; the same one spelled differently is no move.
        let other = ExpectedCa::of(&config(Some("https://ca2.example.com/scep"), None), &scep);
        assert!(matches!(other, ExpectedCa::Moved { .. }), "{other:?}");
        let same = ExpectedCa::of(
            &config(Some("HTTPS://CA.example.com:443/scep"), None),
            &scep,
        );
        assert!(matches!(same, ExpectedCa::Scep { .. }), "{same:?}");

        // The same URL with another CA pinned, against the record's pin or its certificates.
        let pin = |der: &[u8]| crate::scep::sha256_fingerprint_hex(der);
        let other_ca = authority(other_test_key(), "Acme Device CA");
        let repinned = config(Some(SCEP), Some(pin(other_ca.certificate_der())));
        let by_certificates = ExpectedCa::of(&repinned, &scep);
        assert!(matches!(by_certificates, ExpectedCa::Moved { .. }));
        let mut pinned = scep.clone();
        pinned.scep_ca_fingerprint = Some(pin(ca.certificate_der()));
        pinned.scep_ca_certificates.clear();
        assert!(matches!(
            ExpectedCa::of(&repinned, &pinned),
            ExpectedCa::Moved { .. }
        ));
        let kept = config(Some(SCEP), Some(pin(ca.certificate_der())));
        assert!(matches!(
            ExpectedCa::of(&kept, &scep),
            ExpectedCa::Scep { .. }
        ));
        assert!(matches!(
            ExpectedCa::of(&kept, &pinned),
            ExpectedCa::Scep { .. }
        ));
    }

    #[test]
    fn a_device_never_enrolled_expects_the_configured_ca() {
        assert_eq!(
            ExpectedCa::of(&config(None, None), &EnrollmentRecord::default()),
            ExpectedCa::Okta
        );
        assert_eq!(
            ExpectedCa::of(&config(Some(SCEP), None), &EnrollmentRecord::default()),
            ExpectedCa::Scep {
                certificates: Vec::new()
            }
        );
    }
}
