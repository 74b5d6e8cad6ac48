//! What went wrong with a request, in an admin's words: a transport error as one of ours, whether
//! trying again could help, and the causes on one line.

use std::error::Error as _;

use super::{fmt_duration, one_line, HttpError, HttpSettings};

/// Maps a transport error to ours, and says whether another attempt could help.
pub(super) fn classify(
    e: &reqwest::Error,
    url: &str,
    settings: &HttpSettings,
) -> (HttpError, bool) {
    if e.is_timeout() {
        // Only a connect timeout is retried: the request has not left the machine.
        let connect = e.is_connect();
        let after = if connect {
            settings.connect_timeout
        } else {
            settings.timeout
        };
        return (
            HttpError::Timeout {
                url: url.to_owned(),
                after,
            },
            connect,
        );
    }
    if e.is_builder() {
        return (
            HttpError::ClientSetup {
                reason: error_chain(e),
            },
            false,
        );
    }
    let tls = tls_error(e);
    if let Some(rustls::Error::InvalidCertificate(cert)) = tls {
        if let Some(reason) = time_failure(cert) {
            // Not retried in the run: a clock is not set right in seconds.
            let url = url.to_owned();
            return (HttpError::NotValidNow { url, reason }, false);
        }
    }
    let reason = match tls {
        Some(rustls::Error::InvalidCertificate(_)) => format!(
            "certificate verification failed ({}); if a proxy or filter inspects HTTPS, pass its CA with --ca-file",
            error_chain(e)
        ),
        Some(_) => format!("TLS failed ({})", error_chain(e)),
        None => error_chain(e),
    };
    let untrusted = matches!(tls, Some(rustls::Error::InvalidCertificate(_)));
    let tls = tls.is_some();
    // A certificate problem does not fix itself in seconds; a refused or reset connect might.
    let retryable = e.is_connect() && !tls;
    let url = url.to_owned();
    let err = if untrusted {
        HttpError::Untrusted { url, reason }
    } else {
        HttpError::Unreachable { url, reason }
    };
    (err, retryable)
}

/// Apple's trust evaluation codes for a certificate outside its dates (`SecBase.h`:
/// `errSecCertificateExpired` -67818, `errSecCertificateNotValidYet` -67819).
/// rustls-platform-verifier maps neither (`verification/apple.rs`, `verify_certificate`): it
/// passes them on as `CertificateError::Other` whose text ends with the code.
const APPLE_EXPIRED: &str = ": -67818";
const APPLE_NOT_VALID_YET: &str = ": -67819";

/// What a certificate error says about time, in an admin's words, when it is about time: the
/// certificate's dates against the device's clock where the verifier gives them (webpki's
/// `NotValidYetContext` / `ExpiredContext`), and what to check either way.
fn time_failure(cert: &rustls::CertificateError) -> Option<String> {
    use rustls::CertificateError as E;
    let at = |t: &rustls::pki_types::UnixTime| {
        i64::try_from(t.as_secs())
            .ok()
            .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
            .map(crate::timefmt::rfc3339)
            .unwrap_or_else(|| "an unreadable time".to_owned())
    };
    let behind = "if the device's clock is behind, set it right (nothing was sent)";
    let either = "either the device's clock is ahead (set it right) or the server's certificate \
        has lapsed (nothing was sent)";
    Some(match cert {
        E::NotValidYetContext { time, not_before } => format!(
            "the server's certificate is valid from {}, and the device's clock says {}; {behind}",
            at(not_before),
            at(time)
        ),
        E::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired {}, and the device's clock says {}; {either}",
            at(not_after),
            at(time)
        ),
        E::NotValidYet => format!("the server's certificate is not valid yet; {behind}"),
        E::Expired => format!("the server's certificate has expired; {either}"),
        E::Other(other) => {
            let text = other.to_string();
            if text.ends_with(APPLE_NOT_VALID_YET) {
                format!("the server's certificate is not valid yet ({text}); {behind}")
            } else if text.ends_with(APPLE_EXPIRED) {
                format!("the server's certificate has expired ({text}); {either}")
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

fn tls_error(e: &reqwest::Error) -> Option<&rustls::Error> {
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // tokio-rustls wraps the rustls error in an io::Error, which hyper-util wraps in another;
        // `io::Error::source` skips the wrapped error itself, so unwrap them by hand.
        let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(io) = inner.and_then(|e| e.downcast_ref::<std::io::Error>()) {
            inner = io
                .get_ref()
                .map(|e| e as &(dyn std::error::Error + 'static));
            if let Some(tls) = inner.and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Some(tls);
            }
        }
        source = err.source();
    }
    None
}

/// The causes of a reqwest error, innermost detail last, on one line. The top-level message
/// ("error sending request for url (...)") is skipped: callers name the URL themselves.
pub(super) fn error_chain(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(err) = source {
        let text = one_line(&err.to_string());
        // hyper-util wraps everything in "client error (Connect)"; it adds nothing.
        let noise = text.starts_with("client error (");
        if !noise && !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = err.source();
    }
    if parts.is_empty() {
        let text = e.to_string();
        let text = match e.url() {
            Some(url) => text.replace(&format!(" ({url})"), ""),
            None => text,
        };
        one_line(&text)
    } else {
        parts.join(": ")
    }
}

pub(super) fn io_chain(e: &std::io::Error) -> String {
    let mut parts = vec![one_line(&e.to_string())];
    let mut source = e.source();
    while let Some(err) = source {
        let text = one_line(&err.to_string());
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = err.source();
    }
    parts.join(": ")
}

pub(super) fn short_reason(err: &HttpError) -> String {
    match err {
        HttpError::Unreachable { reason, .. }
        | HttpError::Untrusted { reason, .. }
        | HttpError::NotValidNow { reason, .. } => reason.clone(),
        HttpError::Timeout { after, .. } => {
            format!("connect timed out after {}", fmt_duration(*after))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::UnixTime;
    use rustls::{CertificateError, OtherError};

    use super::time_failure;

    /// What rustls-platform-verifier hands on for a code it does not map on a Mac: the trust
    /// error's description and the code (`invalid_certificate(format!("{trust_error}: {code}"))`).
    fn apple(code: i32) -> CertificateError {
        let text = format!("The operation couldn't be completed. (OSStatus error {code}.): {code}");
        CertificateError::Other(OtherError(Arc::from(Box::<
            dyn std::error::Error + Send + Sync,
        >::from(text))))
    }

    #[test]
    fn dates_in_the_error_are_shown_against_the_devices_clock() {
        let reason = time_failure(&CertificateError::NotValidYetContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
            not_before: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
        })
        .unwrap();
        assert!(
            reason.contains("valid from 2027-01-15T08:00:00Z"),
            "{reason}"
        );
        assert!(
            reason.contains("clock says 2023-11-14T22:13:20Z"),
            "{reason}"
        );
        let reason = time_failure(&CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
        })
        .unwrap();
        assert!(reason.contains("expired 2023-11-14T22:13:20Z"), "{reason}");
        assert!(reason.contains("ahead"), "{reason}");
    }

    #[test]
    fn apples_date_codes_are_time_failures_and_nothing_else_is() {
        let yet = time_failure(&apple(-67819)).unwrap();
        assert!(
            yet.contains("not valid yet") && yet.contains("behind"),
            "{yet}"
        );
        let expired = time_failure(&apple(-67818)).unwrap();
        assert!(
            expired.contains("has expired") && expired.contains("ahead"),
            "{expired}"
        );
        assert!(time_failure(&CertificateError::NotValidYet).is_some());
        assert!(time_failure(&CertificateError::Expired).is_some());
        // Another trust code (errSecNotTrusted), an unknown issuer, a wrong name: not the clock.
        assert_eq!(time_failure(&apple(-67843)), None);
        assert_eq!(time_failure(&CertificateError::UnknownIssuer), None);
        assert_eq!(time_failure(&CertificateError::NotValidForName), None);
    }
}
