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
        HttpError::Unreachable { reason, .. } | HttpError::Untrusted { reason, .. } => {
            reason.clone()
        }
        HttpError::Timeout { after, .. } => {
            format!("connect timed out after {}", fmt_duration(*after))
        }
        other => other.to_string(),
    }
}
