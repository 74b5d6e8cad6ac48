//! Shared HTTPS plumbing for the enrollment clients (Okta now, SCEP later): TLS trust, proxies,
//! timeouts, and one retry loop with capped, jittered back-off that honours rate-limit headers.

use std::error::Error as _;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::RngCore;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use url::Url;

/// Answers larger than this are refused: the APIs we call answer a few kilobytes, and a hostile
/// or broken server must not be able to make the agent buffer without limit.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

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
    #[error("no answer from {url} within {}", fmt_duration(*after))]
    Timeout { url: String, after: Duration },
    #[error("{url} is rate limiting us; {}", retry_hint(*reset_at))]
    RateLimited { url: String, reset_at: Option<i64> },
    #[error("the answer from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
}

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A rate-limit reset further away than this is not waited for: the caller defers instead.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            max_rate_limit_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The largest delay allowed after failed attempt `attempt` (1-based): `base * 2^(attempt-1)`,
    /// capped at `max_delay`.
    pub fn ceiling_for(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// The delay before the next attempt after failed attempt `attempt` (1-based): uniformly
    /// random in `[0, ceiling_for(attempt)]` ("full jitter"), so that a fleet of devices that
    /// failed together does not come back together.
    pub fn delay_for(&self, attempt: u32, rng: &mut dyn RngCore) -> Duration {
        let ceiling_ms = u64::try_from(self.ceiling_for(attempt).as_millis()).unwrap_or(u64::MAX);
        if ceiling_ms == 0 {
            return Duration::ZERO;
        }
        let mut bytes = [0u8; 8];
        match rng.try_fill_bytes(&mut bytes) {
            // `% (ceiling + 1)` has a negligible bias for ceilings of a few minutes in ms.
            Ok(()) => {
                Duration::from_millis(u64::from_le_bytes(bytes) % ceiling_ms.saturating_add(1))
            }
            // No randomness: waiting the full ceiling is still correct, merely less spread out.
            Err(_) => Duration::from_millis(ceiling_ms),
        }
    }
}

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

/// A blocking client with the platform's trust (plus `--ca-file`), proxies from the environment
/// (`HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`, `NO_PROXY`), timeouts, and no redirects.
pub fn build_client(settings: &HttpSettings) -> Result<Client, HttpError> {
    build_client_with(settings, true)
}

/// `env_proxies: false` is for loopback tests, which must not be sent to a proxy the developer's
/// shell happens to export.
pub(crate) fn build_client_with(
    settings: &HttpSettings,
    env_proxies: bool,
) -> Result<Client, HttpError> {
    let extra_roots = parse_extra_roots(&settings.extra_roots_pem)?;
    // The provider is passed explicitly (reqwest is built without one of its own); asking for it
    // also installs it, so a library caller that skipped `app::run` still gets aws-lc-rs.
    let provider = crate::pki::install_crypto_provider();
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| HttpError::TrustStore {
                reason: one_line(&e.to_string()),
            })?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::ClientSetup {
            reason: one_line(&e.to_string()),
        })?
        .dangerous() // not dangerous here: the platform verifier does full chain and name checks
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // reqwest is built without HTTP/2.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    // reqwest without its `system-proxy` feature still reads the proxy environment variables
    // (hyper-util's matcher); only the macOS System Settings proxy is not consulted.
    let mut builder = Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .user_agent(settings.user_agent.as_str())
        // A POST carrying a secret must never be replayed to wherever a Location header points.
        .redirect(reqwest::redirect::Policy::none());
    if !env_proxies {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| HttpError::ClientSetup {
        reason: error_chain(&e),
    })
}

fn parse_extra_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let mut roots = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let cert = item.map_err(|e| HttpError::CaBundleUnreadable {
            reason: one_line(&e.to_string()),
        })?;
        // Checked here, one by one, so the error can say which certificate is bad.
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| HttpError::CaCertificateInvalid {
                index: roots.len() + 1,
                reason: one_line(&e.to_string()),
            })?;
        roots.push(cert);
    }
    if roots.is_empty() {
        return Err(HttpError::CaBundleEmpty);
    }
    Ok(roots)
}

/// A complete answer: status, headers and the (size-capped) body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// What `send_with_retry` needs besides the request itself.
pub struct Sender<'a> {
    pub settings: &'a HttpSettings,
    /// Names the other side in log lines: "Okta answered 503; ...".
    pub service: &'a str,
    /// Waits between attempts; `std::thread::sleep` in production, a recorder in tests.
    pub sleeper: &'a dyn Fn(Duration),
    pub rng: &'a mut dyn RngCore,
}

/// Sends the request `build` makes (once per attempt), retrying connection failures, connect
/// timeouts, 5xx and 429 under the settings' policy. Returns the last answer for any status other
/// than 429 (the caller interprets 4xx and a final 5xx); 429 that cannot be waited out is an error.
/// A timeout after the request was sent is not retried: the server may have acted on it.
pub fn send_with_retry(
    sender: &mut Sender<'_>,
    url: &Url,
    mut build: impl FnMut() -> RequestBuilder,
) -> Result<Reply, HttpError> {
    let policy = &sender.settings.retry;
    let max = policy.max_attempts.max(1);
    let shown_url = url.as_str().to_owned();
    for attempt in 1..=max {
        let last = attempt == max;
        // One deadline per request covers connect, headers and body alike.
        let deadline = Instant::now() + sender.settings.timeout;
        let delay = match build().send() {
            Err(e) => {
                let (err, retryable) = classify(&e, &shown_url, sender.settings);
                if !retryable || last {
                    return Err(err);
                }
                let delay = policy.delay_for(attempt, sender.rng);
                tracing::warn!(
                    "{} unreachable ({}); retrying in {} (attempt {} of {})",
                    sender.service,
                    short_reason(&err),
                    fmt_duration(delay),
                    attempt + 1,
                    max
                );
                delay
            }
            Ok(response) => {
                let status = response.status();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    let now = unix_now();
                    let hint = rate_limit_wait(response.headers(), now);
                    let reset_at = hint.map(|(_, at)| at);
                    let delay = match hint {
                        Some((wait, _)) if wait > policy.max_rate_limit_wait => {
                            return Err(HttpError::RateLimited {
                                url: shown_url,
                                reset_at,
                            })
                        }
                        _ if last => {
                            return Err(HttpError::RateLimited {
                                url: shown_url,
                                reset_at,
                            })
                        }
                        // Up to a second of jitter so devices released together do not collide.
                        Some((wait, _)) => wait + jitter_up_to(Duration::from_secs(1), sender.rng),
                        None => policy.delay_for(attempt, sender.rng),
                    };
                    tracing::warn!(
                        "{} answered 429 (rate limited); retrying in {} (attempt {} of {})",
                        sender.service,
                        fmt_duration(delay),
                        attempt + 1,
                        max
                    );
                    delay
                } else if status.is_server_error() && !last {
                    let delay = policy.delay_for(attempt, sender.rng);
                    tracing::warn!(
                        "{} answered {}; retrying in {} (attempt {} of {})",
                        sender.service,
                        status.as_u16(),
                        fmt_duration(delay),
                        attempt + 1,
                        max
                    );
                    delay
                } else {
                    return read_reply(response, &shown_url, sender.settings, deadline);
                }
            }
        };
        (sender.sleeper)(delay);
    }
    // The loop returns on its last attempt; this only satisfies the type checker.
    Err(HttpError::Unreachable {
        url: shown_url,
        reason: "no attempt was made".to_owned(),
    })
}

/// Reads the body until `deadline`: reqwest bounds each read, not their sum, so a server that
/// sends a byte a second would otherwise hold the run (and its lock) as long as it likes.
fn read_reply(
    response: reqwest::blocking::Response,
    url: &str,
    settings: &HttpSettings,
    deadline: Instant,
) -> Result<Reply, HttpError> {
    let status = response.status();
    let headers = response.headers().clone();
    let timeout = || HttpError::Timeout {
        url: url.to_owned(),
        after: settings.timeout,
    };
    let body = match read_body(response, deadline) {
        Ok(body) => body,
        Err(BodyStop::Deadline) => return Err(timeout()),
        Err(BodyStop::Io(e)) => {
            let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                || e.get_ref()
                    .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                    .is_some_and(reqwest::Error::is_timeout);
            return Err(if timed_out {
                timeout()
            } else {
                HttpError::Unreachable {
                    url: url.to_owned(),
                    reason: format!("connection lost while reading the answer: {}", io_chain(&e)),
                }
            });
        }
    };
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(HttpError::TooLarge {
            url: url.to_owned(),
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Why reading a body stopped short.
#[derive(Debug)]
enum BodyStop {
    Deadline,
    Io(std::io::Error),
}

/// At most `MAX_BODY_BYTES + 1` bytes of `body` (one more than allowed, so that the caller
/// can tell "too large" from "exactly the cap"), read in chunks until the end or `deadline`.
/// A read interrupted by a signal is retried, as `read_to_end` would.
fn read_body(body: impl Read, deadline: Instant) -> Result<Vec<u8>, BodyStop> {
    let mut limited = body.take(MAX_BODY_BYTES + 1);
    let mut read = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err(BodyStop::Deadline);
        }
        match limited.read(&mut chunk) {
            Ok(0) => return Ok(read),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BodyStop::Io(e)),
        }
    }
}

/// Maps a transport error to ours, and says whether another attempt could help.
fn classify(e: &reqwest::Error, url: &str, settings: &HttpSettings) -> (HttpError, bool) {
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
fn error_chain(e: &reqwest::Error) -> String {
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

fn io_chain(e: &std::io::Error) -> String {
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

fn short_reason(err: &HttpError) -> String {
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

/// How long a 429 asks us to wait, and until when (epoch seconds): `X-Rate-Limit-Reset` (Okta,
/// epoch seconds) first, else `Retry-After` (seconds or an HTTP date).
pub fn rate_limit_wait(headers: &HeaderMap, now: i64) -> Option<(Duration, i64)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let reset_at = if let Some(reset) =
        header("x-rate-limit-reset").and_then(|v| v.parse::<i64>().ok())
    {
        reset
    } else {
        let value = header("retry-after")?;
        match value.parse::<u64>() {
            Ok(secs) => now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
            Err(_) => {
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?
                    .unix_timestamp()
            }
        }
    };
    let wait = u64::try_from(reset_at.saturating_sub(now)).unwrap_or(0);
    Some((Duration::from_secs(wait), reset_at))
}

fn jitter_up_to(max: Duration, rng: &mut dyn RngCore) -> Duration {
    let policy = RetryPolicy {
        max_attempts: 1,
        base_delay: max,
        max_delay: max,
        max_rate_limit_wait: Duration::ZERO,
    };
    policy.delay_for(1, rng)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// "3s", "1.5s", "250ms": for log lines and messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// "try again after <RFC 3339 time>" or "try again later".
pub fn retry_hint(reset_at: Option<i64>) -> String {
    let when = reset_at
        .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    match when {
        Some(when) => format!("try again after {when}"),
        None => "try again later".to_owned(),
    }
}

/// Collapses any whitespace run (newlines included) into one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A short, single-line excerpt of a non-JSON body (an HTML error page, say) for an error
/// message: tags dropped, whitespace collapsed, control characters removed, cut at `max` chars.
pub fn body_snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut stripped = String::with_capacity(text.len().min(4096));
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                stripped.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_control() => stripped.push(' '),
            c => stripped.push(c),
        }
    }
    let mut line = one_line(&stripped);
    if line.is_empty() {
        line = one_line(
            &text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>(),
        );
    }
    if line.chars().count() > max {
        let mut cut: String = line.chars().take(max).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::mpsc;

    pub(crate) const TEST_ANCHOR_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIULr0M64+TICE+8Uq/+OQBknntVJ8wCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXZGV2aWNldHJ1c3QgdGVzdCBhbmNob3IwIBcNMjYxMTIzMjAw
ODM5WhgPMjEyNjEwMzAyMDA4MzlaMCIxIDAeBgNVBAMMF2RldmljZXRydXN0IHRl
c3QgYW5jaG9yMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEegQAgaKYop3kFH72
IgL5dXjGvhEKXC5o48J4iqMNz0H/FlMVhb35OS7bpMt6IhiJsr4x/kFd+5rybU9a
ZaBqAqNTMFEwHQYDVR0OBBYEFH6099S4Myxq3RHW9DXbhBeL99LXMB8GA1UdIwQY
MBaAFH6099S4Myxq3RHW9DXbhBeL99LXMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDSAAwRQIhALQyod1rHVasp1q1I/bn0Vo8F6L/6i1ONfH2tif4tuSxAiAD
aEQuhAfdcBm6Ua3eL2Nj8IHi19++TvELwVoTW/uwHA==
-----END CERTIFICATE-----
";

    /// Deterministic "randomness" for asserting jitter bounds.
    pub(crate) struct FixedRng(pub u64);
    impl RngCore for FixedRng {
        fn next_u32(&mut self) -> u32 {
            self.0 as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for (i, b) in dest.iter_mut().enumerate() {
                *b = self.0.to_le_bytes()[i % 8];
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    #[test]
    fn retry_ceiling_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling_for(1), Duration::from_secs(2));
        assert_eq!(p.ceiling_for(2), Duration::from_secs(4));
        assert_eq!(p.ceiling_for(3), Duration::from_secs(8));
        assert_eq!(p.ceiling_for(6), Duration::from_secs(60));
        assert_eq!(p.ceiling_for(1000), Duration::from_secs(60));
        assert_eq!(p.ceiling_for(0), Duration::from_secs(2));
    }

    #[test]
    fn retry_delay_is_jittered_within_the_ceiling() {
        let p = RetryPolicy::default();
        let mut os = rand_core::OsRng;
        for attempt in 1..40 {
            for _ in 0..50 {
                let d = p.delay_for(attempt, &mut os);
                assert!(d <= p.ceiling_for(attempt), "{d:?} above ceiling");
                assert!(d <= p.max_delay);
            }
        }
        // The top of the range is reachable and grows with the attempt number.
        let top = |attempt| {
            p.delay_for(
                attempt,
                &mut FixedRng(p.ceiling_for(attempt).as_millis() as u64),
            )
        };
        assert_eq!(top(1), Duration::from_secs(2));
        assert_eq!(top(2), Duration::from_secs(4));
        assert_eq!(top(3), Duration::from_secs(8));
        assert_eq!(p.delay_for(3, &mut FixedRng(0)), Duration::ZERO);
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(zero.delay_for(5, &mut os), Duration::ZERO);
    }

    #[test]
    fn rate_limit_headers_are_understood() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_wait(&h, 1000), None);
        h.insert("retry-after", "30".parse().unwrap());
        assert_eq!(
            rate_limit_wait(&h, 1000),
            Some((Duration::from_secs(30), 1030))
        );
        h.insert("x-rate-limit-reset", "1045".parse().unwrap());
        assert_eq!(
            rate_limit_wait(&h, 1000),
            Some((Duration::from_secs(45), 1045))
        );
        // A reset in the past means "now".
        h.insert("x-rate-limit-reset", "900".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, 1000), Some((Duration::ZERO, 900)));
        let mut d = HeaderMap::new();
        d.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(
            rate_limit_wait(&d, 784111767),
            Some((Duration::from_secs(10), 784111777))
        );
        d.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(rate_limit_wait(&d, 0), None);
    }

    #[test]
    fn durations_and_snippets_read_well() {
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        let html = b"<html>\n<head><title>503 Service Unavailable</title></head>\n<body>\r\n<h1>Down</h1></body></html>";
        assert_eq!(body_snippet(html, 80), "503 Service Unavailable Down");
        assert_eq!(fmt_duration(Duration::from_millis(1000)), "1s");
        assert_eq!(fmt_duration(Duration::from_millis(999)), "999ms");
        let long = "x".repeat(200);
        assert_eq!(body_snippet(long.as_bytes(), 80).chars().count(), 81);
        // Exactly `max` characters stay whole; one more is cut.
        assert_eq!(body_snippet("y".repeat(80).as_bytes(), 80), "y".repeat(80));
        assert_eq!(
            body_snippet("y".repeat(81).as_bytes(), 80),
            format!("{}…", "y".repeat(80))
        );
        // A '>' outside a tag is text; control characters (a terminal escape) are not.
        assert_eq!(body_snippet(b"a > b <i>c</i>", 80), "a > b c");
        assert_eq!(body_snippet(b"\x1b[31mred\x07!", 80), "[31mred !");
        assert_eq!(retry_hint(Some(0)), "try again after 1970-01-01T00:00:00Z");
        assert_eq!(retry_hint(None), "try again later");
    }

    #[test]
    fn build_client_accepts_a_pem_bundle_and_rejects_garbage() {
        let mut settings = HttpSettings::default();
        build_client(&settings).unwrap();
        settings.extra_roots_pem =
            format!("comment line\n{TEST_ANCHOR_PEM}{TEST_ANCHOR_PEM}").into_bytes();
        build_client(&settings).unwrap();

        settings.extra_roots_pem = b"this is not PEM at all\n".to_vec();
        let err = build_client(&settings).unwrap_err();
        assert!(matches!(err, HttpError::CaBundleEmpty), "{err:?}");
        assert!(err.to_string().contains("no PEM certificate"));

        settings.extra_roots_pem =
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
        let err = build_client(&settings).unwrap_err();
        assert!(
            matches!(err, HttpError::CaCertificateInvalid { index: 1, .. }),
            "{err:?}"
        );

        settings.extra_roots_pem = TEST_ANCHOR_PEM
            .replace("-----END CERTIFICATE-----\n", "")
            .into_bytes();
        let err = build_client(&settings).unwrap_err();
        assert!(
            matches!(err, HttpError::CaBundleUnreadable { .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains('\n'));
    }

    // --- Answers from a scripted loopback server: the size cap, rate limits, broken answers.

    const MIB: u64 = 1024 * 1024;

    /// What the scripted server does once an answer is sent.
    #[derive(Clone, Copy)]
    enum Then {
        /// Waits until the client hangs up, so a client that keeps reading waits for its deadline.
        Wait,
        /// Hangs up.
        Close,
    }

    /// One answer: the status line and headers (each says `Connection: close`, so every attempt
    /// is a connection of its own), `sent` bytes of body (`x`), then `then`.
    struct Answer {
        head: String,
        sent: u64,
        then: Then,
    }

    impl Answer {
        /// 200 announcing `announced` body bytes, of which `sent` are sent.
        fn ok(announced: u64, sent: u64, then: Then) -> Answer {
            Answer {
                head: format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {announced}\r\nConnection: close\r\n\r\n"
                ),
                sent,
                then,
            }
        }

        /// 429 with `Retry-After: secs`.
        fn rate_limited(secs: u64) -> Answer {
            Answer {
                head: format!(
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {secs}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                ),
                sent: 0,
                then: Then::Close,
            }
        }
    }

    /// A loopback server that answers the n-th connection with `answers[n]`, one request each.
    /// The URL to ask, and how many connections it took.
    fn serve(answers: Vec<Answer>) -> (Url, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = taken.clone();
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => request.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = write_answer(&mut stream, &answer);
                if let Then::Wait = answer.then {
                    let _ = stream.read(&mut byte);
                }
            }
        });
        (url, taken)
    }

    fn write_answer(stream: &mut std::net::TcpStream, answer: &Answer) -> std::io::Result<()> {
        stream.write_all(answer.head.as_bytes())?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = answer.sent;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(())
    }

    /// A 200 announcing `announced` bytes, `sent` of them sent, then a server that waits.
    fn answer_once(announced: u64, sent: u64) -> Url {
        serve(vec![Answer::ok(announced, sent, Then::Wait)]).0
    }

    fn quick_settings(max_attempts: u32) -> HttpSettings {
        HttpSettings {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts,
                max_rate_limit_wait: Duration::from_secs(5),
                ..RetryPolicy::default()
            },
            ..HttpSettings::default()
        }
    }

    /// One `send_with_retry` of a GET to `url`; its result and the waits between attempts.
    fn fetch_with(url: &Url, settings: &HttpSettings) -> (Result<Reply, HttpError>, Vec<Duration>) {
        let client = build_client_with(settings, false).unwrap();
        // 250 ms of every jitter (250 mod the ceiling + 1).
        let mut rng = FixedRng(250);
        let slept = std::cell::RefCell::new(Vec::new());
        let mut sender = Sender {
            settings,
            service: "the test server",
            sleeper: &|d| slept.borrow_mut().push(d),
            rng: &mut rng,
        };
        let result = send_with_retry(&mut sender, url, || client.get(url.clone()));
        (result, slept.into_inner())
    }

    fn fetch(url: &Url) -> Result<Reply, HttpError> {
        let (result, slept) = fetch_with(url, &quick_settings(1));
        assert!(slept.is_empty(), "{slept:?}");
        result
    }

    #[test]
    fn a_rate_limit_within_the_longest_wait_is_waited_out_with_jitter() {
        // Exactly the longest wait (5 s): waited, plus 250 ms of jitter, then answered.
        let (url, connections) =
            serve(vec![Answer::rate_limited(5), Answer::ok(2, 2, Then::Close)]);
        let (result, slept) = fetch_with(&url, &quick_settings(3));
        let reply = result.unwrap();
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (StatusCode::OK, &b"xx"[..])
        );
        assert_eq!(slept, [Duration::from_millis(5250)]);
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);

        // A second longer: not waited for at all.
        let (url, connections) = serve(vec![Answer::rate_limited(6)]);
        let (result, slept) = fetch_with(&url, &quick_settings(3));
        assert!(
            matches!(
                result,
                Err(HttpError::RateLimited {
                    reset_at: Some(_),
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(slept.is_empty(), "{slept:?}");
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_rate_limit_on_the_last_attempt_is_an_error_not_a_wait() {
        let (url, connections) = serve(vec![Answer::rate_limited(1), Answer::rate_limited(1)]);
        let (result, slept) = fetch_with(&url, &quick_settings(2));
        assert!(
            matches!(
                result,
                Err(HttpError::RateLimited {
                    reset_at: Some(_),
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(slept, [Duration::from_millis(1250)]);
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Makes every log callsite stay enabled for the whole test binary, so that a test's own
    /// scoped subscriber sees each line. tracing caches per callsite, process-wide, whether
    /// anyone listens; a callsite first reached on a thread without a subscriber (another test,
    /// running in parallel) would otherwise be cached as silent, and a capturing test would
    /// find its warning missing. A global subscriber at TRACE that discards what it gets keeps
    /// that answer "always".
    pub(crate) fn keep_every_callsite_enabled() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let discard = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(std::io::sink)
                .finish();
            let _ = tracing::subscriber::set_global_default(discard);
        });
    }

    /// Log lines written while `f` runs (on this thread).
    pub(crate) fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        keep_every_callsite_enabled();
        #[derive(Clone, Default)]
        struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let result = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        (result, text)
    }

    #[test]
    fn a_refused_connection_is_retried_with_its_reason_logged() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let ((result, slept), log) = logged(|| fetch_with(&url, &quick_settings(2)));
        let reason = match result {
            Err(HttpError::Unreachable { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason.contains("Connection refused"), "{reason}");
        assert_eq!(slept, [Duration::from_millis(250)]);
        assert!(
            log.contains(&format!(
                "the test server unreachable ({reason}); retrying in 250ms (attempt 2 of 2)"
            )),
            "{log}"
        );
    }

    #[test]
    fn an_answer_cut_off_is_unreachable_and_one_that_stalls_times_out() {
        let (url, _) = serve(vec![Answer::ok(1000, 10, Then::Close)]);
        match fetch(&url) {
            Err(HttpError::Unreachable { reason, .. }) => {
                // Every cause once, down to the innermost.
                let causes: Vec<&str> = reason.split(": ").collect();
                assert_eq!(
                    causes[0], "connection lost while reading the answer",
                    "{reason}"
                );
                assert!(
                    reason.ends_with("end of file before message length reached"),
                    "{reason}"
                );
                assert!(causes.len() >= 3, "{reason}");
                let distinct: std::collections::BTreeSet<_> = causes.iter().collect();
                assert_eq!(distinct.len(), causes.len(), "{reason}");
            }
            other => panic!("{other:?}"),
        }

        let (url, _) = serve(vec![Answer::ok(1000, 10, Then::Wait)]);
        let settings = HttpSettings {
            timeout: Duration::from_secs(1),
            ..quick_settings(1)
        };
        let (result, slept) = fetch_with(&url, &settings);
        assert!(slept.is_empty());
        match result {
            Err(HttpError::Timeout { after, .. }) => assert_eq!(after, Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
    }

    /// A reader that fails once with the given error, then gives `data`.
    struct FailsOnce {
        error: Option<std::io::ErrorKind>,
        data: std::io::Cursor<Vec<u8>>,
    }

    impl Read for FailsOnce {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.error.take() {
                Some(kind) => Err(std::io::Error::from(kind)),
                None => self.data.read(buf),
            }
        }
    }

    #[test]
    fn a_read_interrupted_by_a_signal_is_retried_and_any_other_error_stops() {
        let later = Instant::now() + Duration::from_secs(60);
        let interrupted = FailsOnce {
            error: Some(std::io::ErrorKind::Interrupted),
            data: std::io::Cursor::new(b"whole".to_vec()),
        };
        assert_eq!(read_body(interrupted, later).unwrap(), b"whole");
        let reset = FailsOnce {
            error: Some(std::io::ErrorKind::ConnectionReset),
            data: std::io::Cursor::new(b"never read".to_vec()),
        };
        match read_body(reset, later) {
            Err(BodyStop::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_read_past_its_deadline_stops_before_reading() {
        let unread = FailsOnce {
            error: None,
            data: std::io::Cursor::new(b"late".to_vec()),
        };
        assert!(matches!(
            read_body(unread, Instant::now()),
            Err(BodyStop::Deadline)
        ));
    }

    #[test]
    fn a_body_is_read_to_one_byte_past_the_cap_and_no_further() {
        let later = Instant::now() + Duration::from_secs(60);
        let over = std::io::repeat(b'x').take(MAX_BODY_BYTES * 3);
        assert_eq!(
            read_body(over, later).unwrap().len() as u64,
            MAX_BODY_BYTES + 1
        );
    }

    #[test]
    fn an_answer_of_exactly_the_cap_is_read_whole() {
        assert_eq!(MAX_BODY_BYTES, MIB);
        let reply = fetch(&answer_once(MIB, MIB)).unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.len() as u64, MIB);
        assert!(reply.body.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn an_answer_over_the_cap_is_refused_without_reading_the_rest() {
        // One byte over; 2 MiB; and 2 MiB of an announced 256 MiB, after which the server waits:
        // only a client that stops reading at the cap answers before its deadline.
        for (announced, sent) in [(MIB + 1, MIB + 1), (2 * MIB, 2 * MIB), (256 * MIB, 2 * MIB)] {
            let url = answer_once(announced, sent);
            match fetch(&url) {
                Err(HttpError::TooLarge { url: shown, limit }) => {
                    assert_eq!((shown.as_str(), limit), (url.as_str(), MIB));
                }
                other => panic!("{announced} bytes announced, {sent} sent: {other:?}"),
            }
            let err = fetch(&answer_once(announced, sent)).unwrap_err();
            assert!(
                err.to_string().ends_with("is larger than 1048576 bytes"),
                "{err}"
            );
        }
    }

    // --- Proxies. The environment is process-wide, so each check runs the test binary again as
    // a child with the variables set, and only the child builds a client from them.

    const PROBE_HOST: &str = "devicetrust-proxy-probe.invalid";

    #[test]
    #[ignore = "run by the proxy_* tests in a child process with a prepared environment"]
    fn proxy_probe_child() {
        let Ok(target) = std::env::var("DEVICETRUST_PROXY_PROBE_URL") else {
            return;
        };
        let settings = HttpSettings {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            ..HttpSettings::default()
        };
        let client = build_client(&settings).unwrap();
        // Fails either way (the fake proxy refuses, the direct target speaks no TLS): the parent
        // asserts on what the listeners saw.
        let _ = client.get(target).send();
    }

    /// Runs the probe child with `env`; returns the first line the fake proxy received and
    /// whether the direct target got a connection.
    fn probe(
        env: &[(&str, String)],
        target: &str,
        direct: Option<TcpListener>,
    ) -> (Option<String>, bool) {
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = proxy.accept() {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = tx.send(text.lines().next().unwrap_or("").to_owned());
                let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let (dtx, drx) = mpsc::channel();
        if let Some(direct) = direct {
            std::thread::spawn(move || {
                if direct.accept().is_ok() {
                    let _ = dtx.send(());
                }
            });
        }
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "http::tests::proxy_probe_child",
            "--ignored",
            "--quiet",
        ]);
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DEVICETRUST_PROXY_PROBE_URL", target);
        for (k, v) in env {
            cmd.env(k, v.replace("{proxy}", &proxy_addr.to_string()));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "probe child failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let seen = rx.recv_timeout(Duration::from_millis(200)).ok();
        let direct_hit = drx.recv_timeout(Duration::from_millis(200)).is_ok();
        (seen, direct_hit)
    }

    #[test]
    fn proxy_https_proxy_variable_is_honoured() {
        let (seen, _) = probe(
            &[("HTTPS_PROXY", "http://{proxy}".into())],
            &format!("https://{PROBE_HOST}/"),
            None,
        );
        assert_eq!(
            seen.as_deref(),
            Some(format!("CONNECT {PROBE_HOST}:443 HTTP/1.1").as_str())
        );
    }

    #[test]
    fn proxy_lowercase_https_proxy_variable_is_honoured() {
        let (seen, _) = probe(
            &[("https_proxy", "http://{proxy}".into())],
            &format!("https://{PROBE_HOST}/"),
            None,
        );
        assert_eq!(
            seen.as_deref(),
            Some(format!("CONNECT {PROBE_HOST}:443 HTTP/1.1").as_str())
        );
    }

    #[test]
    fn proxy_no_proxy_variable_is_honoured() {
        let direct = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = format!("https://127.0.0.1:{}/", direct.local_addr().unwrap().port());
        let (seen, direct_hit) = probe(
            &[
                ("HTTPS_PROXY", "http://{proxy}".into()),
                ("NO_PROXY", "localhost,127.0.0.1".into()),
            ],
            &target,
            Some(direct),
        );
        assert_eq!(seen, None, "the proxy must be bypassed");
        assert!(direct_hit, "the target must be reached directly");
    }
}
