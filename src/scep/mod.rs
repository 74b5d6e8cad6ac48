//! SCEP (RFC 8894) enrollment for static-challenge CAs (JumpCloud / Okta FastPass, any SCEP CA),
//! configured with the settings of Apple's SCEP payload.
//!
//! The layers, bottom up:
//!
//! * [`caps`]: what the CA says it supports (GetCACaps), and the algorithms that follow from it.
//! * [`cacert`]: the CA and RA certificates (GetCACert), which is the encryption recipient and
//!   who may sign answers, and the CA fingerprint pin.
//! * [`envelope`]: CMS EnvelopedData, sealed to the CA/RA and opened with the device key.
//! * [`message`]: the pkiMessage, a CMS SignedData with SCEP's authenticated attributes.
//! * [`client`]: the exchanges (PKCSReq, RenewalReq, CertPoll) over HTTP, and [`enroll`] /
//!   [`renew`] for the agent.
//! * [`settings`]: [`ScepSettings`], named after Apple's payload keys.
//!
//! SCEP URLs are usually plain `http://`: the challenge and the key never travel in clear,
//! because the request is encrypted to the CA and the answer to the device key. The challenge
//! never appears in an error message or a log line.

pub mod cacert;
pub mod caps;
pub mod client;
pub mod envelope;
pub mod message;
pub mod settings;
pub mod transport;
pub mod types;

#[cfg(test)]
mod testca;

use std::fmt;
use std::time::Duration;

use crate::http::{self, HttpError};
use crate::pki::PkiError;

pub use cacert::{sha256_fingerprint_hex, CaCertificates};
pub use caps::Capabilities;
pub use client::{enroll, renew, CaFacts, Issued, Response, ScepClient, Transport};
pub use envelope::ContentCipher;
pub use message::{FailInfo, MessageDigest, MessageType, PkiStatus};
pub use settings::{
    key_usage_from_apple, parse_fingerprint, KeyType, ScepSettings, ALLOWED_KEY_SIZES,
    DEFAULT_SUBJECT,
};

/// The SCEP operation an error belongs to, as RFC 8894 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    GetCaCaps,
    GetCaCert,
    PkcsReq,
    RenewalReq,
    CertPoll,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::GetCaCaps => "GetCACaps",
            Operation::GetCaCert => "GetCACert",
            Operation::PkcsReq => "PKCSReq",
            Operation::RenewalReq => "RenewalReq",
            Operation::CertPoll => "CertPoll",
        })
    }
}

/// Every failure of a SCEP exchange. One line each; none carries the challenge.
#[derive(Debug, thiserror::Error)]
pub enum ScepError {
    #[error("SCEP {op} failed: cannot reach {url}: {reason}")]
    Unreachable {
        op: Operation,
        url: String,
        reason: String,
    },
    #[error("SCEP {op} failed: cannot trust {url}: {reason}")]
    Untrusted {
        op: Operation,
        url: String,
        reason: String,
    },
    /// The server's certificate is outside its dates by the device's clock: the clock or the
    /// certificate is wrong, and the device cannot tell which, so the run defers.
    #[error("SCEP {op} failed: cannot trust {url} at the device's clock: {reason}")]
    NotValidNow {
        op: Operation,
        url: String,
        reason: String,
    },
    #[error("SCEP {op} timed out: no answer from {url} within {}", http::fmt_duration(*after))]
    Timeout {
        op: Operation,
        url: String,
        after: Duration,
    },
    #[error("SCEP {op}: {url} is rate limiting us; {}", http::retry_hint(*reset_at))]
    RateLimited {
        op: Operation,
        url: String,
        reset_at: Option<i64>,
    },
    #[error(
        "SCEP {op} failed: HTTP {status} from {url}{}",
        snippet_suffix(snippet)
    )]
    HttpStatus {
        op: Operation,
        status: u16,
        url: String,
        snippet: String,
    },
    #[error("SCEP {op} answer is unusable: {what}")]
    BadResponse { op: Operation, what: String },
    /// The device's clock is off from the CA's by more than `http::clock::MAX_CLOCK_SKEW`: a
    /// certificate issued now would not be valid on this device's clock.
    #[error(
        "the device's clock says {device}, the SCEP CA's {server}: more than 5 minutes apart, \
         so no certificate was requested; set the clock right and try again"
    )]
    ClockSkew { device: String, server: String },
    #[error("SCEP {op} answer failed verification: {what}")]
    Verification { op: Operation, what: String },
    #[error(
        "the SCEP server's CA certificate does not match the configured fingerprint {expected} \
         (it offered {found}); nothing was sent to it"
    )]
    FingerprintMismatch { expected: String, found: String },
    #[error("the SCEP CA refused the {op}: {fail_info}{}", text_suffix(text))]
    Rejected {
        op: Operation,
        fail_info: FailInfo,
        /// The CA's own failInfoText (RFC 8894 §3.2.1.4.5), when it sent one.
        text: Option<String>,
    },
    #[error(
        "the SCEP CA still has the {op} pending after {polls} polls over {}; an administrator \
         may need to approve it; try again later",
        http::fmt_duration(*waited)
    )]
    StillPending {
        op: Operation,
        polls: u32,
        waited: Duration,
    },
    #[error("the SCEP CA cannot be used: {0}")]
    UnsupportedCa(String),
    #[error("SCEP {op} not attempted: {what}")]
    Invalid { op: Operation, what: String },
    #[error("SCEP {op} failed: {source}")]
    Pki {
        op: Operation,
        #[source]
        source: PkiError,
    },
    #[error("cannot prepare the connection to the SCEP server: {0}")]
    Config(#[source] HttpError),
}

impl ScepError {
    /// Worth trying again later (the CLI exits 75): the server unreachable, slow, rate limiting,
    /// or still deciding.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ScepError::Unreachable { .. }
                | ScepError::NotValidNow { .. }
                | ScepError::Timeout { .. }
                | ScepError::RateLimited { .. }
                | ScepError::StillPending { .. }
                | ScepError::ClockSkew { .. }
        )
    }

    /// Maps a transport error; `url` is shown instead of the request's, because a GET
    /// PKIOperation URL carries the whole (encrypted) message.
    pub(crate) fn from_http(op: Operation, url: &str, err: HttpError) -> Self {
        let url = url.to_owned();
        match err {
            HttpError::Unreachable { reason, .. } => ScepError::Unreachable { op, url, reason },
            HttpError::Untrusted { reason, .. } => ScepError::Untrusted { op, url, reason },
            HttpError::NotValidNow { reason, .. } => ScepError::NotValidNow { op, url, reason },
            HttpError::Timeout { after, .. } => ScepError::Timeout { op, url, after },
            HttpError::RateLimited { reset_at, .. } => ScepError::RateLimited { op, url, reset_at },
            HttpError::TooLarge { limit, .. } => ScepError::BadResponse {
                op,
                what: format!("the answer is larger than {limit} bytes"),
            },
            HttpError::Redirected { status, .. } => ScepError::HttpStatus {
                op,
                status,
                url,
                snippet: http::REDIRECT_NOT_FOLLOWED.to_owned(),
            },
            other => ScepError::Config(other),
        }
    }

    pub(crate) fn pki(op: Operation) -> impl FnOnce(PkiError) -> ScepError {
        move |source| ScepError::Pki { op, source }
    }
}

fn snippet_suffix(snippet: &str) -> String {
    if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    }
}

fn text_suffix(text: &Option<String>) -> String {
    match text {
        Some(t) if !t.trim().is_empty() => format!(" (the CA says: {})", http::one_line(t)),
        _ => String::new(),
    }
}
