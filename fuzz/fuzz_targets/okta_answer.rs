//! What Okta (or whatever answers in its place: a proxy, a captive portal) sends back: the JSON
//! bodies of enroll/renew, metadata and discovery, Okta's error object, HTML and other text that
//! becomes a one-line snippet, and the rate-limit headers.
//!
//! Layout: `[status selector][content-type selector]`, then a rate-limit header value and the
//! body as two fields. Oracle: no error line may carry the org token, which the server may echo.
#![no_main]

use devicetrust::http::{self, Reply};
use devicetrust::okta::client::{issued_certificate, parse_success};
use devicetrust::okta::wire::{DiscoveryBody, MetadataBody};
use devicetrust::okta::{cert_auth_host, Operation};
use devicetrust::secret::Secret;
use devicetrust_fuzz::fields;
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;

/// The org token of the fuzzed exchange; it appears in the seeds so the fuzzer echoes it.
const ORG_TOKEN: &str = "00FuzzOrgToken-Xq7";

const STATUSES: [u16; 10] = [200, 201, 204, 400, 401, 403, 404, 429, 500, 503];
const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("text/html; charset=utf-8"),
    Some("text/plain"),
    None,
];

fuzz_target!(|data: &[u8]| {
    let [head, header_value, body] = fields::<3>(data);
    let byte = |i: usize| head.get(i).copied().unwrap_or(0);
    let status = StatusCode::from_u16(STATUSES[usize::from(byte(0)) % STATUSES.len()])
        .unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    if let Some(kind) = CONTENT_TYPES[usize::from(byte(1)) % CONTENT_TYPES.len()] {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    }
    if let Ok(value) = HeaderValue::from_bytes(header_value) {
        let name = if byte(1) & 0x80 != 0 {
            "retry-after"
        } else {
            "x-rate-limit-reset"
        };
        headers.insert(name, value);
    }
    let reply = || Reply {
        status,
        headers: headers.clone(),
        body: body.to_vec(),
    };
    let Ok(url) =
        url::Url::parse("https://acme.okta.com/api/internal/device-trust/ca/v1/enroll/macos")
    else {
        return;
    };
    let secret = Secret::new(ORG_TOKEN);

    for op in [Operation::Enrollment, Operation::Renewal] {
        let token = (op == Operation::Enrollment).then_some(&secret);
        if let Err(e) = issued_certificate(op, &url, reply(), token) {
            let line = e.to_string();
            if token.is_some() {
                assert!(
                    !line.contains(ORG_TOKEN),
                    "the org token leaked into {line:?}"
                );
            }
        }
    }
    match parse_success::<MetadataBody>(Operation::Metadata, &url, reply(), None) {
        Ok(MetadataBody {
            cert_auth_domain: Some(domain),
        }) => drop(cert_auth_host(&domain).map_err(|e| e.to_string())),
        Ok(_) => {}
        Err(e) => drop(e.to_string()),
    }
    let _ = parse_success::<DiscoveryBody>(Operation::Reachability, &url, reply(), None)
        .map_err(|e| e.to_string());

    let now = 1_750_000_000;
    if let Some((wait, reset_at)) = http::rate_limit_wait(&headers, now) {
        let _ = (http::fmt_duration(wait), http::retry_hint(Some(reset_at)));
    }
    let snippet = http::body_snippet(body, 80);
    assert!(
        snippet.chars().count() <= 81,
        "snippet longer than its limit"
    );
    assert!(!snippet.contains('\n'), "snippet is not one line");
});
