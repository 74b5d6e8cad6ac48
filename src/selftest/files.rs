//! The checks of a host that keeps everything in files (Linux, and sandbox roots): the stored
//! identity signs, the user's NSS database holds it usable (`certutil -K` and `-L`), every
//! browser's managed policy file holds the entry, and the renewal job is installed. All read
//! only; the NSS tools run every time (the vouch of earlier runs is not taken as evidence).

use super::{signs, Outcome, Report};
use crate::chain::job::JobLink;
use crate::chain::{Context, Held};
use crate::integrations::nss::{NssDb, NssError, ToolRunner};
use crate::integrations::{chrome, schedule};
use crate::paths::Layout;
use crate::pki::CertificateInfo;
use crate::timefmt::rfc3339;

pub const IDENTITY: &str = "identity";
pub const NSS: &str = "nss identity";
pub const JOB: &str = "renewal job";

/// The check of one browser's managed policy, e.g. `browser policy (Google Chrome)`.
pub fn policy_check_name(browser: &str) -> String {
    format!("browser policy ({browser})")
}

pub fn checks(cx: &Context<'_>, report: &mut Report) {
    let certificate = identity(cx, report);
    match certificate {
        Some(certificate) => {
            if cx.home.layout == Layout::Linux {
                match NssDb::for_home(&cx.home.paths.home) {
                    Ok(db) => nss(&db, certificate, report),
                    Err(e) => report.add(NSS, Outcome::Fail, e.to_string()),
                }
            }
            browser_policy(cx, certificate, report);
        }
        None => {
            let why = "no valid identity to look for";
            if cx.home.layout == Layout::Linux {
                report.add(NSS, Outcome::Skip, why);
            }
            report.add(policy_check_name("every browser"), Outcome::Skip, why);
        }
    }
    report.result(JOB, job(cx));
}

/// The stored identity: a certificate valid now whose key signs. Returns it when valid.
fn identity<'a>(cx: &'a Context<'_>, report: &mut Report) -> Option<&'a CertificateInfo> {
    let location = cx.store.location();
    let certificate = match cx.held {
        Held::Valid(c) => c,
        Held::Nothing => {
            report.add(
                IDENTITY,
                Outcome::Fail,
                format!("no certificate in {location}"),
            );
            return None;
        }
        Held::Damaged { detail, .. } => {
            report.add(IDENTITY, Outcome::Fail, detail.clone());
            return None;
        }
        Held::KeyMissing(c) => {
            report.add(
                IDENTITY,
                Outcome::Fail,
                format!(
                    "certificate {} has no matching key in {location}",
                    c.serial_hex
                ),
            );
            return None;
        }
        Held::Foreign { reason, .. } => {
            report.add(IDENTITY, Outcome::Fail, reason.clone());
            return None;
        }
        Held::NotYetValid(c) => {
            report.add(
                IDENTITY,
                Outcome::Fail,
                format!(
                    "certificate {} is valid from {}, after the device's clock",
                    c.serial_hex,
                    rfc3339(c.not_before)
                ),
            );
            return None;
        }
        Held::Expired(c) => {
            report.add(
                IDENTITY,
                Outcome::Fail,
                format!(
                    "certificate {} expired on {}",
                    c.serial_hex,
                    rfc3339(c.not_after)
                ),
            );
            return None;
        }
    };
    let signed = match cx.store.signing_key() {
        Ok(Some(key)) => signs(key.as_ref(), &certificate.public_key_der),
        Ok(None) => Err("the key is gone".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    report.result(
        IDENTITY,
        signed.map(|evidence| {
            format!(
                "certificate {} ({}) valid until {} in {location}; {evidence}",
                certificate.serial_hex,
                certificate.subject,
                rfc3339(certificate.not_after)
            )
        }),
    );
    Some(certificate)
}

/// `certutil -K` lists the key, `certutil -L` finds this certificate by the key's id. Without
/// the tools and without a database no NSS-based browser has run here: nothing to check, as
/// the chain's NSS link does not apply there either.
fn nss<R: ToolRunner>(db: &NssDb<R>, certificate: &CertificateInfo, report: &mut Report) {
    if !db.exists() {
        if let Err(NssError::ToolMissing { tool, package }) = db.check_tools() {
            let why = format!(
                "no NSS database, and {tool} is not installed (package: {package}): no NSS-based \
                 browser has run here"
            );
            return report.add(NSS, Outcome::Skip, why);
        }
    }
    report.result(NSS, nss_holds(db, certificate));
}

fn nss_holds<R: ToolRunner>(
    db: &NssDb<R>,
    certificate: &CertificateInfo,
) -> Result<String, String> {
    let dir = db.dir().display().to_string();
    let seen = db.observe(&certificate.der).map_err(|e| e.to_string())?;
    match (seen.present, seen.key_present) {
        (true, true) => Ok(format!(
            "certutil -K lists its key ({}), certutil -L finds certificate sha256:{} in {dir}",
            seen.key_nickname.as_deref().unwrap_or("no nickname"),
            certificate.fingerprint_sha256
        )),
        (false, _) => Err(format!(
            "certutil -L does not find certificate sha256:{} in {dir}",
            certificate.fingerprint_sha256
        )),
        (true, false) => Err(format!("certutil -K does not list its key in {dir}")),
    }
}

/// One check per browser: the file that decides its AutoSelectCertificateForUrls holds ours.
fn browser_policy(cx: &Context<'_>, certificate: &CertificateInfo, report: &mut Report) {
    let Some(host) = cx.cert_auth_host() else {
        report.add(
            policy_check_name("every browser"),
            Outcome::Fail,
            "the certAuthDomain is unknown, so no entry can be looked for",
        );
        return;
    };
    let entry = chrome::policy_entry(host, &chrome::IssuerFilter::of(certificate));
    let reports = match chrome::inspect(&cx.home.root, &entry) {
        Ok(reports) => reports,
        Err(e) => {
            report.add(
                policy_check_name("every browser"),
                Outcome::Fail,
                e.to_string(),
            );
            return;
        }
    };
    for dir in reports {
        let name = policy_check_name(dir.browser);
        match (&dir.effective_file, dir.present) {
            (Some(file), true) => report.add(
                name,
                Outcome::Pass,
                format!("{} holds {entry}", file.display()),
            ),
            (Some(file), false) => report.add(
                name,
                Outcome::Fail,
                format!(
                    "{} decides the policy and lacks {entry}, or holds another entry of ours",
                    file.display()
                ),
            ),
            (None, _) => report.add(
                name,
                Outcome::Fail,
                format!(
                    "no file in {} sets {}",
                    dir.dir.display(),
                    chrome::POLICY_KEY
                ),
            ),
        }
    }
}

/// The job's files are installed and run this agent's `renew` (the systemd timer enabled).
fn job(cx: &Context<'_>) -> Result<String, String> {
    let job = JobLink::job(cx);
    let kind = schedule::JobKind::for_layout(cx.home.layout);
    let at = format!("daily at {:02}:{:02}", job.hour(), job.minute());
    let (installed, file) = match kind {
        schedule::JobKind::SystemdUser => (
            schedule::is_installed(cx.home, &job, kind),
            schedule::systemd_unit_dir(cx.home).join(schedule::TIMER_UNIT),
        ),
        schedule::JobKind::LaunchAgent => {
            let package = schedule::package_job_present(&cx.home.root);
            let file = if package {
                schedule::package_launch_agent_path(&cx.home.root)
            } else {
                schedule::launch_agent_path(cx.home)
            };
            (package || schedule::is_installed(cx.home, &job, kind), file)
        }
    };
    if installed {
        Ok(format!("{} installed and enabled, {at}", file.display()))
    } else {
        Err(format!(
            "{} is missing, disabled, or does not run this agent's renew",
            file.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::nss::tests::NoTools;

    #[test]
    fn without_the_nss_tools_the_nss_check_is_skipped_unless_a_database_exists() {
        let home = tempfile::tempdir().unwrap();
        let db = NssDb::in_home(home.path(), NoTools);
        let der = crate::pki::authority::tests::test_certificate(time::OffsetDateTime::now_utc());
        let certificate = CertificateInfo::parse(&der).unwrap();

        let mut report = Report::default();
        nss(&db, &certificate, &mut report);
        assert_eq!(
            report.lines(),
            [
                "SKIP nss identity: no NSS database, and certutil is not installed (package: \
              libnss3-tools on Debian and Ubuntu, nss-tools on Fedora and RHEL): no NSS-based \
              browser has run here"
            ]
        );

        std::fs::create_dir_all(db.dir()).unwrap();
        std::fs::write(db.dir().join("cert9.db"), b"").unwrap();
        let mut report = Report::default();
        nss(&db, &certificate, &mut report);
        let lines = report.lines();
        assert!(
            lines[0].starts_with("FAIL nss identity: ") && lines[0].contains("libnss3-tools"),
            "{lines:?}"
        );
    }
}
