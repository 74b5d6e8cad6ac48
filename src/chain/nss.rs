//! The identity in the user's NSS database (`~/.pki/nssdb`): on Linux, Chrome and Chromium read
//! client certificates from there, not from the agent's store, so without this link the
//! browser policy would select a certificate the browser cannot see.
//!
//! Its status is `App Access Incomplete`: the identity is stored, but the apps that must
//! present it cannot use it (the Linux counterpart of a key whose allowlist lacks an app). It
//! comes before `Browser Policy Missing`, which only matters once the browser has the identity.

use super::plan::{Action, Blocker, Outlook, Step};
use super::{Context, Held, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::integrations::nss::{
    NssDb, NssError, Ours, SystemRunner, Tool, ToolRunner, Vouch, DATABASE_DIR,
};
use crate::okta::OKTA_ISSUER_CN;
use crate::pki::CertificateInfo;
use std::path::Path;
use tracing::{debug, warn};

/// In the state folder: what the last writing run verified in the NSS database, so that `ea`
/// and `status` need not run the tools while the database is unchanged ([`Vouch`]).
const VOUCH_FILE: &str = "nss-verified.json";
/// A vouch is a few hundred bytes.
const VOUCH_MAX: u64 = 16 * 1024;

pub struct NssLink<R: ToolRunner = SystemRunner> {
    /// How the NSS tools are run for a home folder: the system's tools, as the home's owner;
    /// a test's stand-in where it must take the tools away.
    tools_for: fn(&Path) -> Result<R, NssError>,
}

impl Default for NssLink {
    fn default() -> Self {
        NssLink {
            tools_for: SystemRunner::for_home,
        }
    }
}

impl<R: ToolRunner> NssLink<R> {
    /// The link with `tools_for` in place of the system's tools.
    #[cfg(test)]
    pub fn with_tools(tools_for: fn(&Path) -> Result<R, NssError>) -> Self {
        NssLink { tools_for }
    }

    /// The user's database, its tools not yet looked for. Root reaches its folder from the
    /// home folder without following a link; the tools are told its whole path.
    fn database(&self, cx: &Context<'_>) -> Result<NssDb<R>, LinkError> {
        let tools = (self.tools_for)(&cx.home.paths.home).map_err(nss_error)?;
        Ok(NssDb::at(cx.home.place(DATABASE_DIR), tools))
    }

    /// The user's database with its tools at hand, or `None` where the link does not apply
    /// (no tools and no database, see [`not_applicable`]). Every step asks this first, so
    /// that `preflight`, `observe`, `apply` and `remove` agree.
    fn db(&self, cx: &Context<'_>) -> Result<Option<NssDb<R>>, LinkError> {
        with_tools(self.database(cx)?)
    }

    /// Ours: what this identity's issuer issued under our nickname, and the certificates this
    /// run replaced, wherever NSS filed them.
    fn ours(cx: &Context<'_>, certificate: Option<&CertificateInfo>) -> Ours {
        let issuer = cx
            .expected_ca()
            .issuer_cn(certificate)
            .unwrap_or(OKTA_ISSUER_CN)
            .to_owned();
        let mut known = cx.superseded.certificates.clone();
        known.extend(certificate.map(|c| c.der.clone()));
        Ours::issued_by(&issuer, known)
    }
}

/// The vouch a writing run left, if any and readable.
fn load_vouch(cx: &Context<'_>) -> Option<Vouch> {
    let dir = cx.home.state_place().open().ok()??;
    let bytes = dir.read_file(VOUCH_FILE, VOUCH_MAX).ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Records that `certificate` was just found usable in `db`. Only a shortcut for later
/// read-only runs: failing to keep it costs them time, not correctness.
fn save_vouch<R: ToolRunner>(cx: &Context<'_>, db: &NssDb<R>, certificate: &CertificateInfo) {
    let Some(vouch) = db.vouch(&certificate.der) else {
        return;
    };
    if load_vouch(cx).as_ref() == Some(&vouch) {
        return;
    }
    let place = cx.home.state_place();
    let saved = serde_json::to_vec(&vouch)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            let dir = place.create(0o700).map_err(|e| e.to_string())?;
            let owner = place.owner().map_err(|e| e.to_string())?;
            dir.write_file_atomic(VOUCH_FILE, &json, 0o600, Some(owner))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = saved {
        debug!("the NSS check is not kept for later runs: {e}");
    }
}

fn remove_vouch(cx: &Context<'_>) {
    let removed = match cx.home.state_place().open() {
        Ok(Some(dir)) => dir.remove_file(VOUCH_FILE).map(drop),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = removed {
        warn!("{VOUCH_FILE} stays in the state folder: {e}");
    }
}

/// No NSS tools and no database: no NSS-based browser has been used here, so there is nothing
/// to give the identity to (observe and apply agree, or `repair` would fail where `ea` is
/// satisfied). With a database, missing tools are a gap that names the package.
fn not_applicable(e: &NssError, db_exists: bool) -> bool {
    matches!(e, NssError::ToolMissing { .. }) && !db_exists
}

fn with_tools<R: ToolRunner>(db: NssDb<R>) -> Result<Option<NssDb<R>>, LinkError> {
    match db.check_tools() {
        Ok(()) => Ok(Some(db)),
        Err(e) if not_applicable(&e, db.exists()) => Ok(None),
        Err(e) => Err(nss_error(e)),
    }
}

fn nss_error(e: NssError) -> LinkError {
    match e {
        // A tool that hung says nothing about the database: the run is deferred.
        NssError::TimedOut(stopped) => LinkError::TimedOut(stopped),
        e => LinkError::Platform(e.to_string()),
    }
}

impl<R: ToolRunner> Link for NssLink<R> {
    fn name(&self) -> &'static str {
        "NSS database"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::AppAccessIncomplete]
    }

    /// A browser already uses the user's NSS database: the identity must go in there, so
    /// the tools must be installed. Without a database no NSS-based browser has run here.
    fn preflight(&self, cx: &Context<'_>) -> Result<(), LinkError> {
        self.db(cx).map(drop)
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        let Some(certificate) = cx.held.certificate().filter(|_| cx.held.is_valid()) else {
            return Observation::NotApplicable;
        };
        let failing = |e: &dyn std::fmt::Display| {
            Observation::failing(HealthStatus::AppAccessIncomplete, e.to_string())
        };
        let db = match self.database(cx) {
            Ok(db) => db,
            Err(e) => return failing(&e),
        };
        // What a writing run verified still holds: the browser has the identity, whether or
        // not the tools are still installed.
        if load_vouch(cx).is_some_and(|v| db.vouched(&v, &certificate.der)) {
            return Observation::Healthy;
        }
        let db = match with_tools(db) {
            Ok(Some(db)) => db,
            Ok(None) => return Observation::NotApplicable,
            Err(e) => return failing(&e),
        };
        match db.is_usable(&certificate.der) {
            Ok(true) => Observation::Healthy,
            Ok(false) => Observation::failing(
                HealthStatus::AppAccessIncomplete,
                "the certificate is not in the user's NSS database (~/.pki/nssdb), where Chrome \
                 and Chromium look for it",
            ),
            Err(e) => failing(&e),
        }
    }

    /// The database as `apply` will find it: the vouch, else one `certutil` listing (NSS opens
    /// the database read-only to list it), and the certificates of ours a new identity
    /// replaces there.
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step> {
        let step = Step::new(self.name());
        let gap = |e: &dyn std::fmt::Display| match outlook {
            // A run that requests a certificate checks the tools first, and stops.
            Outlook::New => Blocker::new(Blocker::PREFLIGHT, e.to_string()),
            _ => Blocker::status(HealthStatus::AppAccessIncomplete, e.to_string()),
        };
        if !cx.home.paths.home.exists() {
            // A home folder the first run makes (a fresh sandbox root) holds no database; the
            // identity goes into a new one where the tools are installed.
            let tools = SystemRunner::current_user();
            let step = step.found(format!(
                "the home folder {} does not exist yet, so neither does an NSS database",
                cx.home.paths.home.display()
            ));
            return Some(
                if outlook.valid()
                    && [Tool::Certutil, Tool::Pk12util]
                        .iter()
                        .all(|t| tools.has(*t))
                {
                    step.act(Action::Create, "the identity goes into a new database")
                } else {
                    step
                },
            );
        }
        let db = match self.database(cx) {
            Ok(db) => db,
            Err(e) => return Some(step.found(e.to_string()).blocked(gap(&e))),
        };
        let exists = db.exists();
        let dir = db.dir().display().to_string();
        let step = step.found(if exists {
            format!("the NSS database {dir} exists")
        } else {
            format!("there is no NSS database at {dir}")
        });
        let db = match with_tools(db) {
            Ok(Some(db)) => db,
            Ok(None) => {
                return Some(step.found(
                    "the NSS tools are not installed, and no browser has made a database: no \
                     NSS-based browser has run here",
                ))
            }
            Err(e) if outlook.valid() => return Some(step.found(e.to_string()).blocked(gap(&e))),
            Err(e) => return Some(step.found(e.to_string())),
        };
        let checked = |step: Step, e: NssError| {
            let e = nss_error(e);
            step.found(e.to_string()).blocked(gap(&e))
        };
        let certificate = match outlook {
            Outlook::Stopped => return Some(step),
            Outlook::Kept(certificate) => certificate,
            Outlook::New => {
                // What a new identity replaces: ours by issuer, and a certificate from another
                // CA that the enrollment supersedes.
                let mut ours = Self::ours(cx, None);
                if let Held::Foreign { certificate, .. } = cx.held {
                    ours.known.push(certificate.der.clone());
                }
                return Some(match db.ours_in(&ours, None) {
                    Ok(older) if !older.is_empty() => step
                        .found(format!(
                            "{} older certificate(s) of ours in it",
                            older.len()
                        ))
                        .act(
                            Action::Replace,
                            "the new identity goes in, then the older ones of ours come out",
                        ),
                    Ok(_) => step.act(Action::Create, "the new identity goes in"),
                    Err(e) => checked(step, e),
                });
            }
        };
        if load_vouch(cx).is_some_and(|v| db.vouched(&v, &certificate.der)) {
            return Some(step.found(format!(
                "it holds certificate {} with its key, unchanged since a run checked it",
                certificate.serial_hex
            )));
        }
        match db.is_usable(&certificate.der) {
            Ok(true) => Some(step.found(format!(
                "it holds certificate {} with its key",
                certificate.serial_hex
            ))),
            Ok(false) => {
                let step = step.found(format!(
                    "it lacks certificate {} or its key",
                    certificate.serial_hex
                ));
                Some(
                    match db.ours_in(&Self::ours(cx, None), Some(&certificate.der)) {
                        Ok(older) if !older.is_empty() => step.act(
                            Action::Replace,
                            "the identity goes in, then the older ones of ours come out",
                        ),
                        Ok(_) => step.act(Action::Create, "the identity goes in"),
                        Err(e) => checked(step, e),
                    },
                )
            }
            Err(e) => Some(checked(step, e)),
        }
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let Some(certificate) = cx.held.certificate().filter(|_| cx.held.is_valid()) else {
            return Ok(Vec::new());
        };
        let Some(db) = self.db(cx)? else {
            return Ok(Vec::new());
        };
        let usable = db.is_usable(&certificate.der).map_err(nss_error)?;
        if usable && cx.superseded.certificates.is_empty() {
            save_vouch(cx, &db, certificate);
            return Ok(Vec::new());
        }
        let Some(key) = cx.store.export_key_pkcs8() else {
            return Ok(Vec::new());
        };
        let key = key?;
        let removed = db
            .replace_identity(&certificate.der, &key, &Self::ours(cx, None), usable)
            .map_err(nss_error)?;
        // replace_identity checked the identity after adding it, and removed only others.
        save_vouch(cx, &db, certificate);
        let mut changes = Vec::new();
        if !usable {
            changes.push(format!(
                "certificate {} put in the NSS database {}",
                certificate.serial_hex,
                db.dir().display()
            ));
        }
        changes.extend(removed.into_iter().map(|old| {
            format!(
                "certificate {} removed from the NSS database",
                old.serial_hex
            )
        }));
        Ok(changes)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        remove_vouch(cx);
        let Some(db) = self.db(cx)? else {
            return Ok(Vec::new());
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_matter_only_where_a_database_exists() {
        let missing = || NssError::ToolMissing {
            tool: "certutil",
            package: "libnss3-tools",
        };
        assert!(not_applicable(&missing(), false));
        assert!(!not_applicable(&missing(), true));
        let failed = NssError::PasswordProtected {
            dir: "/home/alice/.pki/nssdb".into(),
        };
        assert!(!not_applicable(&failed, false));
    }
}
