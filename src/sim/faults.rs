//! Faults the simulator can be told to answer with, to prove the agent survives each one.

use std::time::Duration;

/// The service's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`, the reachability probe's target.
    Discovery,
    Metadata,
    Enroll,
    Renew,
}

/// A wrong answer, instead of the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status with an Okta error object.
    Status(u16),
    /// HTTP 429 with `X-Rate-Limit-Reset` this many seconds ahead.
    RateLimited { reset_in_secs: u64 },
    /// A 200 whose body is not JSON at all.
    MalformedJson,
    /// A 200 with an HTML page (a captive portal, a proxy's error page).
    HtmlBody,
    /// A 200 JSON object without the expected field.
    MissingField,
    /// `issuedCertificate` that is not base64.
    BadBase64,
    /// The right certificate, its base64 wrapped in 76-character lines (MIME style), which
    /// Okta's task accepted through Python's `b64decode`.
    MimeWrappedBase64,
    /// A valid certificate, but for a key the agent did not generate.
    ForeignKeyCertificate,
    /// A certificate whose subject CN is not `Okta MTLS`.
    WrongCommonName,
    /// A certificate that has already expired.
    ExpiredCertificate,
    /// The right answer, after this long.
    Slow(Duration),
    /// A filtering proxy's block page (HTTP 403, HTML) that quotes the request body, cut after
    /// this many bytes, the way such pages show "what you sent".
    QuotingBlockPage { quoted_bytes: usize },
    /// Headers at once, then the body one byte at a time, this long apart.
    Trickle(Duration),
    /// A redirect with this status (301, 302, 307, 308) to `location`, as a moved org, a proxy
    /// or a captive portal answers.
    Redirect { status: u16, location: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Injection {
    pub endpoint: Endpoint,
    pub fault: Fault,
    pub remaining: Option<u32>,
}

impl Injection {
    pub fn new(endpoint: Endpoint, fault: Fault, times: Option<u32>) -> Self {
        Injection {
            endpoint,
            fault,
            remaining: times,
        }
    }
}

/// Takes the fault armed for `endpoint`, counting down one-shot injections.
pub(crate) fn take(injections: &mut Vec<Injection>, endpoint: Endpoint) -> Option<Fault> {
    let i = injections.iter().position(|f| f.endpoint == endpoint)?;
    let fault = injections[i].fault.clone();
    if let Some(n) = injections[i].remaining.as_mut() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            injections.remove(i);
        }
    }
    Some(fault)
}
