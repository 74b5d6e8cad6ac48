//! The identity in the user's NSS database (`~/.pki/nssdb`): on Linux, Chrome and Chromium read
//! client certificates from there, not from the agent's store, so without this link the
//! browser policy would select a certificate the browser cannot see.
//!
//! Its status is `App Access Incomplete`: the identity is stored, but the apps that must
//! present it cannot use it (the Linux counterpart of a key whose allowlist lacks an app). It
//! comes before `Browser Policy Missing`, which only matters once the browser has the identity.

use super::{Context, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::integrations::chrome::OKTA_ISSUER_CN;
use crate::integrations::nss::{NssDb, NssError, Ours};
use crate::pki::CertificateInfo;

pub struct NssLink;

impl NssLink {
    fn db(cx: &Context<'_>) -> Result<NssDb, LinkError> {
        NssDb::for_home(&cx.home.paths.home).map_err(nss_error)
    }

    /// Ours: what this identity's issuer issued under our nickname, and the certificates this
    /// run replaced, wherever NSS filed them.
    fn ours(cx: &Context<'_>, certificate: Option<&CertificateInfo>) -> Ours {
        let issuer = certificate
            .and_then(|c| c.issuer_cn.as_deref())
            .unwrap_or(OKTA_ISSUER_CN);
        let mut known = cx.superseded.certificates.clone();
        known.extend(certificate.map(|c| c.der.clone()));
        Ours::issued_by(issuer, known)
    }
}

fn nss_error(e: NssError) -> LinkError {
    LinkError::Platform(e.to_string())
}

impl Link for NssLink {
    fn name(&self) -> &'static str {
        "NSS database"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::AppAccessIncomplete]
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        let Some(certificate) = cx.held.certificate().filter(|_| cx.held.is_valid()) else {
            return Observation::NotApplicable;
        };
        let db = match Self::db(cx) {
            Ok(db) => db,
            Err(e) => return Observation::failing(HealthStatus::AppAccessIncomplete, e.to_string()),
        };
        match db.observe(&certificate.der) {
            Ok(o) if o.is_usable() => Observation::Healthy,
            Ok(_) => Observation::failing(
                HealthStatus::AppAccessIncomplete,
                "the certificate is not in the user's NSS database (~/.pki/nssdb), where Chrome \
                 and Chromium look for it",
            ),
            // No NSS tools and no database: no NSS-based browser has been used here.
            Err(NssError::ToolMissing { .. }) if !db.exists() => Observation::NotApplicable,
            Err(e) => Observation::failing(HealthStatus::AppAccessIncomplete, e.to_string()),
        }
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let Some(certificate) = cx.held.certificate().filter(|_| cx.held.is_valid()) else {
            return Ok(Vec::new());
        };
        let db = Self::db(cx)?;
        if db.observe(&certificate.der).map_err(nss_error)?.is_usable()
            && cx.superseded.certificates.is_empty()
        {
            return Ok(Vec::new());
        }
        let Some(key) = cx.store.export_key_pkcs8() else {
            return Ok(Vec::new());
        };
        let key = key?;
        let removed = db
            .replace_identity(&certificate.der, &key, &Self::ours(cx, None))
            .map_err(nss_error)?;
        let mut changes = vec![format!(
            "certificate {} put in the NSS database {}",
            certificate.serial_hex,
            db.dir().display()
        )];
        changes.extend(removed.into_iter().map(|old| {
            format!(
                "certificate {} removed from the NSS database",
                old.serial_hex
            )
        }));
        Ok(changes)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let db = Self::db(cx)?;
        let removed = db
            .remove_ours(&Self::ours(cx, cx.held.certificate()))
            .map_err(nss_error)?;
        Ok(removed
            .into_iter()
            .map(|old| {
                format!(
                    "removed certificate {} from the NSS database {}",
                    old.serial_hex,
                    db.dir().display()
                )
            })
            .collect())
    }
}
