//! The `[scep]` table: validated at load, and turned into the SCEP client's payload settings
//! (Apple's SCEP payload keys, so values admins type into MDM profiles carry over).

use super::layer::Layer;
use super::secret_source::SecretSource;
use super::{Config, ConfigError};
use std::time::Duration;

/// The `[scep]` table, validated; the challenge is located here and read by `scep_settings`.
#[derive(Debug, Clone, Default)]
pub struct ScepConfig {
    pub url: Option<String>,
    pub challenge: Option<SecretSource>,
    pub ca_fingerprint: Option<String>,
    pub name: Option<String>,
    pub subject: Option<String>,
    pub key_size: Option<u32>,
    pub key_type: Option<String>,
    pub key_usage: Option<u8>,
    pub subject_alt_names: Vec<crate::pki::SubjectAltName>,
    pub retries: Option<u32>,
    pub retry_delay_secs: Option<u64>,
    pub renew_before_days: Option<u32>,
    pub renew_spread_days: Option<u32>,
}

impl Config {
    /// The SCEP payload when a SCEP URL is configured, with the challenge read now (if one is
    /// configured: a CA that offers Renewal does not need it to renew).
    pub fn scep_settings(&self) -> Result<Option<crate::scep::ScepSettings>, ConfigError> {
        let scep = &self.scep;
        let Some(url) = &scep.url else {
            return Ok(None);
        };
        self.check_scep_transport()?;
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        let url = url::Url::parse(url).map_err(|e| invalid("scep.url", format!("{url:?}: {e}")))?;
        let mut settings = crate::scep::ScepSettings::new(url);
        settings.name = scep.name.clone();
        if let Some(subject) = &scep.subject {
            settings.subject = subject.clone();
        }
        if let Some(size) = scep.key_size {
            settings.key_size = size;
        }
        if let Some(usage) = scep.key_usage {
            settings.key_usage = usage;
        }
        settings.subject_alt_names = scep.subject_alt_names.clone();
        if let Some(retries) = scep.retries {
            settings.retries = retries;
        }
        if let Some(delay) = scep.retry_delay_secs {
            settings.retry_delay = Duration::from_secs(delay);
        }
        settings.ca_fingerprint = scep
            .ca_fingerprint
            .as_deref()
            .map(crate::scep::parse_fingerprint)
            .transpose()
            .map_err(|reason| invalid("scep.ca_fingerprint", reason))?;
        settings.renew_before_days = scep.renew_before_days;
        settings.challenge = scep
            .challenge
            .as_ref()
            .map(|source| source.read("SCEP challenge"))
            .transpose()?;
        Ok(Some(settings))
    }
}

/// Picks and validates the `[scep]` values other than the URL and the challenge.
pub(super) fn resolve_scep(
    layers: &[Layer],
    url: Option<String>,
    challenge: Option<SecretSource>,
) -> Result<ScepConfig, ConfigError> {
    macro_rules! pick {
        ($field:ident) => {
            layers.iter().find_map(|l| l.scep.$field.clone())
        };
    }
    let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
    let ca_fingerprint = pick!(ca_fingerprint);
    if let Some(fp) = &ca_fingerprint {
        crate::scep::parse_fingerprint(fp).map_err(|r| invalid("scep.ca_fingerprint", r))?;
    }
    let subject = pick!(subject);
    if let Some(subject) = &subject {
        crate::pki::cert::parse_name(subject).map_err(|_| {
            invalid(
                "scep.subject",
                format!("{subject:?} is not an RFC 4514 name"),
            )
        })?;
    }
    let key_size = pick!(key_size);
    if let Some(size) = key_size {
        if !crate::scep::ALLOWED_KEY_SIZES.contains(&size) {
            return Err(invalid(
                "scep.key_size",
                format!("{size} is not one of 2048, 3072, 4096"),
            ));
        }
    }
    let key_type = pick!(key_type);
    if let Some(kind) = &key_type {
        if !kind.eq_ignore_ascii_case("rsa") {
            return Err(invalid(
                "scep.key_type",
                format!("{kind:?}: only RSA is supported (SCEP needs an RSA key)"),
            ));
        }
    }
    let key_usage = pick!(key_usage);
    if let Some(usage) = key_usage {
        crate::scep::key_usage_from_apple(usage).map_err(|r| invalid("scep.key_usage", r))?;
    }
    let retries = pick!(retries);
    if let Some(n) = retries {
        if n > 100 {
            return Err(invalid("scep.retries", format!("{n} is more than 100")));
        }
    }
    let retry_delay_secs = pick!(retry_delay_secs);
    if let Some(secs) = retry_delay_secs {
        if secs > 3600 {
            return Err(invalid(
                "scep.retry_delay_secs",
                format!("{secs} is more than an hour"),
            ));
        }
    }
    let renew_before_days = pick!(renew_before_days);
    if let Some(days) = renew_before_days {
        if !(1..=365).contains(&days) {
            return Err(invalid(
                "scep.renew_before_days",
                format!("{days} is not between 1 and 365"),
            ));
        }
    }
    let renew_spread_days = pick!(renew_spread_days);
    if let Some(days) = renew_spread_days {
        if days > super::MAX_SPREAD_DAYS {
            return Err(invalid(
                "scep.renew_spread_days",
                format!("{days} is more than {}", super::MAX_SPREAD_DAYS),
            ));
        }
    }
    // Apple's AllowAllAppsAccess: `false` is what the agent does anyway; `true` cannot be
    // honoured on a file keychain (integrations::allowlist::AllowlistConfig::allow_all_apps).
    if pick!(allow_all_apps_access) == Some(true) {
        let refused = crate::integrations::allowlist::AllowlistError::AllowAllApps(
            "scep.allow_all_apps_access",
        );
        return Err(invalid("scep.allow_all_apps_access", refused.to_string()));
    }
    let mut subject_alt_names = Vec::new();
    if let Some(sans) = pick!(subject_alt_names) {
        use crate::pki::SubjectAltName as San;
        let ascii = |key, v: &String| {
            if v.is_ascii() && !v.trim().is_empty() {
                Ok(())
            } else {
                Err(invalid(key, format!("{v:?} is empty or not ASCII")))
            }
        };
        for v in &sans.rfc822 {
            ascii("scep.subject_alt_names.rfc822", v)?;
            if !v.contains('@') {
                return Err(invalid(
                    "scep.subject_alt_names.rfc822",
                    format!("{v:?} is not an email address"),
                ));
            }
            subject_alt_names.push(San::Rfc822(v.clone()));
        }
        for v in &sans.dns {
            ascii("scep.subject_alt_names.dns", v)?;
            subject_alt_names.push(San::Dns(v.clone()));
        }
        for v in &sans.uri {
            url::Url::parse(v)
                .map_err(|e| invalid("scep.subject_alt_names.uri", format!("{v:?}: {e}")))?;
            subject_alt_names.push(San::Uri(v.clone()));
        }
        if let Some(v) = &sans.nt_principal_name {
            if v.trim().is_empty() {
                return Err(invalid(
                    "scep.subject_alt_names.nt_principal_name",
                    "it is empty".into(),
                ));
            }
            subject_alt_names.push(San::NtPrincipalName(v.clone()));
        }
    }
    Ok(ScepConfig {
        url,
        challenge,
        ca_fingerprint,
        name: pick!(name).filter(|n| !n.trim().is_empty()),
        subject,
        key_size,
        key_type,
        key_usage,
        subject_alt_names,
        retries,
        retry_delay_secs,
        renew_before_days,
        renew_spread_days,
    })
}

#[cfg(test)]
mod scep_tests {
    use super::super::tests::*;
    use super::*;
    use crate::pki::SubjectAltName;
    use std::time::Duration;

    #[test]
    fn a_full_scep_table_becomes_the_payload_settings() {
        let root = tempfile::tempdir().unwrap();
        let challenge = root.path().join("challenge");
        std::fs::write(&challenge, "static-challenge\n").unwrap();
        let toml = format!(
            r#"[scep]
url = "http://ca.example/scep"
name = "okta"
subject = "CN=device, O=Example"
challenge_file = "{}"
ca_fingerprint = "{}"
key_size = 3072
key_type = "RSA"
key_usage = 5
subject_alt_names = {{ rfc822 = ["it@example.com"], dns = ["mac.example.com"], uri = ["urn:x"], nt_principal_name = "u@example" }}
retries = 5
retry_delay_secs = 2
renew_before_days = 14
allow_all_apps_access = false
"#,
            challenge.display(),
            vec!["AB"; 32].join(":")
        );
        let config = load_toml(&root, &toml, &[]).unwrap();
        let s = config.scep_settings().unwrap().unwrap();
        assert_eq!(s.url.as_str(), "http://ca.example/scep");
        assert_eq!(s.name.as_deref(), Some("okta"));
        assert_eq!(s.subject, "CN=device, O=Example");
        assert_eq!(s.challenge.as_ref().unwrap().expose(), "static-challenge");
        assert_eq!(s.ca_fingerprint, Some([0xab; 32]));
        assert_eq!((s.key_size, s.key_usage, s.retries), (3072, 5, 5));
        assert_eq!(s.retry_delay, Duration::from_secs(2));
        assert_eq!(s.renew_before_days, Some(14));
        assert_eq!(
            s.subject_alt_names,
            vec![
                SubjectAltName::Rfc822("it@example.com".into()),
                SubjectAltName::Dns("mac.example.com".into()),
                SubjectAltName::Uri("urn:x".into()),
                SubjectAltName::NtPrincipalName("u@example".into()),
            ]
        );
        // The challenge never shows in Debug output.
        assert!(!format!("{s:?}").contains("static-challenge"));
    }

    #[test]
    fn the_scep_table_sets_its_own_renewal_window_and_spread() {
        let devices: Vec<String> = (0..20).map(|i| format!("DEVICE-{i}")).collect();
        let thresholds = |toml: &str| {
            let root = tempfile::tempdir().unwrap();
            let config = load_toml(&root, toml, &[]).unwrap();
            devices
                .iter()
                .map(|d| config.renewal_policy(d).threshold_days())
                .collect::<Vec<u32>>()
        };
        let scep = "[scep]\nurl = \"http://ca.example/scep\"\nrenew_before_days = 10\n";
        // The top-level spread (60 days before the SCEP window) spreads the fleet...
        let spread = thresholds(&format!("renew_spread_days = 60\n{scep}"));
        assert!(spread.iter().all(|&t| (10..=70).contains(&t)), "{spread:?}");
        assert!(spread.iter().any(|&t| t > 10), "{spread:?}");
        // ...and the SCEP table's own spread wins: 0 starts every device at its window.
        let none = thresholds(&format!(
            "renew_spread_days = 60\n{scep}renew_spread_days = 0\n"
        ));
        assert!(none.iter().all(|&t| t == 10), "{none:?}");
        // Without a SCEP URL the device enrolls with Okta, and the top-level values apply.
        let okta = thresholds(
            "renew_before_days = 20\nrenew_spread_days = 0\n[scep]\nrenew_spread_days = 30\n",
        );
        assert!(okta.iter().all(|&t| t == 20), "{okta:?}");
    }

    #[test]
    fn the_challenge_comes_from_the_environment_and_defaults_apply() {
        let root = tempfile::tempdir().unwrap();
        let config = load_toml(
            &root,
            "[scep]\nurl = \"https://ca.example/scep\"",
            &[("DEVICETRUST_SCEP_CHALLENGE", "from-env")],
        )
        .unwrap();
        let s = config.scep_settings().unwrap().unwrap();
        assert_eq!(s.challenge.unwrap().expose(), "from-env");
        assert_eq!(
            (s.subject.as_str(), s.key_size, s.retries),
            ("CN=devicetrust", 2048, 3)
        );
        let none = load_toml(&root, "", &[]).unwrap();
        assert!(none.scep_settings().unwrap().is_none());
    }

    #[test]
    fn each_bad_scep_value_is_one_clear_error_naming_its_key() {
        for (line, key) in [
            ("ca_fingerprint = \"abcd\"", "scep.ca_fingerprint"),
            ("subject = \"no equals sign\"", "scep.subject"),
            ("key_size = 1024", "scep.key_size"),
            ("key_type = \"EC\"", "scep.key_type"),
            ("key_usage = 2", "scep.key_usage"),
            ("retries = 1000", "scep.retries"),
            ("retry_delay_secs = 86400", "scep.retry_delay_secs"),
            ("renew_before_days = 0", "scep.renew_before_days"),
            ("renew_spread_days = 91", "scep.renew_spread_days"),
            ("allow_all_apps_access = true", "scep.allow_all_apps_access"),
            (
                "subject_alt_names = { rfc822 = [\"nobody\"] }",
                "scep.subject_alt_names.rfc822",
            ),
            (
                "subject_alt_names = { uri = [\"not a uri\"] }",
                "scep.subject_alt_names.uri",
            ),
        ] {
            let root = tempfile::tempdir().unwrap();
            let toml = format!("[scep]\nurl = \"http://ca.example/scep\"\n{line}");
            let err = load_toml(&root, &toml, &[]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { .. }), "{line}: {err}");
            let shown = err.to_string();
            assert!(
                shown.contains(key) && !shown.contains('\n'),
                "{line}: {shown}"
            );
        }
        // There is no configuration key for the challenge itself.
        let root = tempfile::tempdir().unwrap();
        let err = load_toml(&root, "[scep]\nchallenge = \"secret\"", &[]).unwrap_err();
        assert!(!err.to_string().contains("secret\""), "{err}");
    }
}
