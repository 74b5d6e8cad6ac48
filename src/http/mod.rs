//! Shared HTTPS plumbing for the enrollment clients (Okta and SCEP): TLS trust, proxies,
//! timeouts, no redirects, and one retry loop with capped, jittered back-off that honours
//! rate-limit headers.
//!
//! `client` builds the one kind of client the agent uses, `retry` sends a request under the
//! retry policy, `answer` reads what came back within its cap and deadline, `failure` says
//! what went wrong in an admin's words, `clock` compares the server's clock with the device's,
//! and `text` formats durations and server text.

mod answer;
mod client;
pub mod clock;
mod failure;
mod retry;
mod text;

use std::time::Duration;

pub use answer::{Reply, MAX_BODY_BYTES};
pub use client::build_client;
#[cfg(test)]
pub(crate) use client::build_client_with;
pub use retry::{rate_limit_wait, send_with_retry, RetryPolicy, Sender};
pub use text::{body_snippet, fmt_duration, one_line, retry_hint};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("the CA file is not a readable PEM bundle: {reason}")]
    CaBundleUnreadable { reason: String },
    #[error("the CA file contains no PEM certificate (no \"BEGIN CERTIFICATE\" block)")]
    CaBundleEmpty,
    #[error("certificate {index} in the CA file is not a usable trust anchor: {reason}")]
    CaCertificateInvalid { index: usize, reason: String },
    #[error("cannot load the platform's trusted root certificates: {reason}")]
    TrustStore { reason: String },
    #[error("cannot set up the HTTPS client: {reason}")]
    ClientSetup { reason: String },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server's certificate is not trusted (unknown CA, wrong host, expired): retrying
    /// will not fix it, an admin must.
    #[error("cannot trust {url}: {reason}")]
    Untrusted { url: String, reason: String },
    /// The server's certificate is not valid at the device's time: not valid yet, or expired.
    /// Either the device's clock is wrong (a user's or a dead battery's doing, set right by the
    /// next time sync) or the server's certificate has lapsed (the service's to fix): the
    /// device cannot tell which, so the run defers rather than fails.
    #[error("cannot trust {url} at the device's clock: {reason}")]
    NotValidNow { url: String, reason: String },
    #[error("no answer from {url} within {}", fmt_duration(*after))]
    Timeout { url: String, after: Duration },
    #[error("{url} is rate limiting us; {}", retry_hint(*reset_at))]
    RateLimited { url: String, reset_at: Option<i64> },
    #[error("the answer from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    /// A 3xx answer. Never followed: a request may carry the org token or a SCEP challenge, and
    /// `Location` is whatever the server (or a proxy, a captive portal) wants it to be.
    #[error("{url} answered HTTP {status}: {REDIRECT_NOT_FOLLOWED}")]
    Redirected { url: String, status: u16 },
}

/// What a redirect means to the agent, for the error that reports one.
pub const REDIRECT_NOT_FOLLOWED: &str = "a redirect, which the agent does not follow: what a \
    request carries (the org token, a SCEP challenge) goes to the configured URL and nowhere \
    else; configure the address the service answers at itself";

/// Everything the clients need to talk HTTPS.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub connect_timeout: Duration,
    /// Total time for one request, answer included.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Extra trust anchors (the `--ca-file` PEM bundle), added to the platform's roots; may be empty.
    pub extra_roots_pem: Vec<u8>,
    pub user_agent: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            extra_roots_pem: Vec::new(),
            user_agent: format!("devicetrust/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
