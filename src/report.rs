//! Renders a `StatusReport` for its three readers: an admin (lines), a script (`--json`) and
//! Jamf (`<result>` lines). The format is chosen here, by the command, never inside the logic.

use crate::agent::StatusReport;
use crate::config::Sources;
use crate::health::HealthStatus;
use crate::pki::CertificateInfo;
use crate::timefmt;
use serde_json::{json, Value};
use time::macros::format_description;

/// `status --json`: every field of cli.md; certificate fields null when there is none.
pub fn status_json(r: &StatusReport) -> Value {
    let cert = r.certificate.as_ref();
    json!({
        "status": r.status.as_str(),
        "detail": r.detail,
        "error": null,
        "method": r.method.as_str(),
        "user": r.user,
        "org_url": r.org_url,
        "enrolled_org_url": r.enrolled_org_url,
        "cert_auth_host": r.cert_auth_host,
        "scep_url": r.scep_url,
        "subject": cert.map(|c| &c.subject),
        "issuer": cert.map(|c| &c.issuer),
        "serial": cert.map(|c| &c.serial_hex),
        "not_before": cert.map(|c| timefmt::rfc3339(c.not_before)),
        "not_after": cert.map(|c| timefmt::rfc3339(c.not_after)),
        "days_left": cert.map(|c| c.days_left(r.now)),
        "fingerprint_sha256": cert.map(|c| &c.fingerprint_sha256),
        "store": r.store,
        "certificate_pem": cert.map(|c| c.to_pem()),
        "renews_below_days": r.renews_below_days,
        "renews_from": r.renews_from.map(timefmt::rfc3339),
        "last_renewal": r.last_renewal.as_ref().map(|l| json!({
            "time": l.time, "ok": l.ok, "error": l.error,
        })),
        "sources": sources_json(&r.sources),
    })
}

/// `{"org_url": "file", "network.timeout_secs": "default", ...}`.
fn sources_json(sources: &Sources) -> Value {
    Value::Object(
        sources
            .iter()
            .map(|(key, source)| (key.to_owned(), Value::from(source.as_str())))
            .collect(),
    )
}

/// `status`: one `label: value` per line, for a terminal or a Jamf policy log.
pub fn status_lines(r: &StatusReport) -> Vec<String> {
    let mut lines = vec![format!("status: {}", r.status)];
    if let Some(detail) = &r.detail {
        lines.push(format!("problem: {detail}"));
    }
    let mut push = |label: &str, value: Option<String>| {
        if let Some(v) = value {
            lines.push(format!("{label}: {v}"));
        }
    };
    push("method", Some(r.method.as_str().to_owned()));
    push("user", r.user.clone());
    let from = |key: &str| {
        r.sources
            .get(key)
            .map(|s| format!(" (from: {s})"))
            .unwrap_or_default()
    };
    push(
        "org",
        r.org_url
            .as_ref()
            .map(|o| format!("{o}{}", from("org_url"))),
    );
    push("enrolled org", r.enrolled_org_url.clone());
    push(
        "certificate auth host",
        r.cert_auth_host
            .as_ref()
            .map(|h| format!("{h}{}", from("cert_auth_host"))),
    );
    push(
        "scep ca",
        r.scep_url
            .as_ref()
            .map(|u| format!("{u}{}", from("scep.url"))),
    );
    push("store", r.store.clone());
    match &r.certificate {
        None => push("certificate", Some("none".into())),
        Some(c) => {
            push("subject", Some(c.subject.clone()));
            push("issuer", Some(c.issuer.clone()));
            push("serial", Some(c.serial_hex.clone()));
            push("not before", Some(timefmt::rfc3339(c.not_before)));
            push("not after", Some(timefmt::rfc3339(c.not_after)));
            push("days left", Some(c.days_left(r.now).to_string()));
            push("sha-256 fingerprint", Some(c.fingerprint_sha256.clone()));
            push(
                "renews",
                r.renews_from.zip(r.renews_below_days).map(|(from, days)| {
                    format!(
                        "from {} ({days} days before expiry)",
                        timefmt::rfc3339(from)
                    )
                }),
            );
        }
    }
    let settings: Vec<String> = r
        .sources
        .iter()
        .map(|(key, source)| format!("{key} ({source})"))
        .collect();
    if !settings.is_empty() {
        push("settings", Some(settings.join(", ")));
    }
    if let Some(l) = &r.last_renewal {
        let outcome = match (&l.error, l.ok) {
            (_, true) => "succeeded".to_owned(),
            (Some(e), false) => format!("failed: {e}"),
            (None, false) => "failed".to_owned(),
        };
        push("last renewal", Some(format!("{} {outcome}", l.time)));
    }
    lines
}

/// `status --json` when the command failed: the same document, every field null but the
/// error and its exit code, so a script parsing it never meets an `ERROR:` line instead.
pub fn error_json(message: &str, exit_code: i32) -> Value {
    json!({
        "status": null,
        "error": message,
        "exit_code": exit_code,
        "method": null, "user": null, "org_url": null, "enrolled_org_url": null,
        "cert_auth_host": null, "sources": null,
        "scep_url": null, "subject": null, "issuer": null, "serial": null,
        "not_before": null, "not_after": null, "days_left": null,
        "fingerprint_sha256": null, "store": null, "certificate_pem": null,
        "renews_below_days": null, "renews_from": null, "last_renewal": null, "detail": null,
    })
}

/// An error with its causes, for `-v`: `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("; caused by: {cause}"));
        source = cause.source();
    }
    text
}

/// The Extension Attribute line.
pub fn ea_status(status: HealthStatus) -> String {
    format!("<result>{}</result>", status.as_str())
}

/// The EA's line when the agent cannot tell the status (its command line was refused): what the
/// shipped EA scripts print when the agent prints no result line, `Agent Error` for the status
/// and an empty date for the expiry.
pub fn ea_agent_error(expiry: bool) -> String {
    if expiry {
        "<result></result>".to_owned()
    } else {
        "<result>Agent Error</result>".to_owned()
    }
}

/// The expiry Extension Attribute in Jamf's "Date" format (UTC), empty without a certificate.
pub fn ea_expiry(cert: Option<&CertificateInfo>) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let date = cert
        .and_then(|c| {
            c.not_after
                .to_offset(time::UtcOffset::UTC)
                .format(&fmt)
                .ok()
        })
        .unwrap_or_default();
    format!("<result>{date}</result>")
}
