//! The Okta Device Trust HTTP client: metadata, enrollment and renewal calls (protocol spec §2-4),
//! with retries and one-line errors that name the operation and never carry the org token.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::blocking::Client;
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use serde::de::DeserializeOwned;
use url::Url;
use zeroize::Zeroizing;

use super::org::{self, OrgUrl};
use super::wire;
use crate::http::{self, HttpError, HttpSettings, Reply, Sender};
use crate::secret::Secret;

pub use super::wire::CLIENT_VERSION;

/// OpenID discovery: public, cheap, and answered by every Okta org (the health probe).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const METADATA_PATH: &str = "/api/internal/v1/device-trust/metadata?platform=macos";
pub const ENROLL_PATH: &str = "/api/internal/device-trust/ca/v1/enroll/macos";
pub const RENEW_PATH: &str = "/api/internal/device-trust/ca/v1/renew/macos";

/// The product token Okta's own task sends; kept because Okta may key behaviour on it.
const PRODUCT: &str = "Okta Device Registration Task";
/// What Safari and Chrome report on every macOS since 11; used when the version is unknown.
const DEFAULT_OS_VERSION: &str = "10_15_7";
const SNIPPET_CHARS: usize = 80;

/// `Okta Device Registration Task/1.3.3 (Macintosh; ARM Mac OS X 10_15_7) (devicetrust 0.1.0)`.
/// `arch` is `std::env::consts::ARCH` or `uname -m`; the OS version may use dots or underscores.
pub fn user_agent(arch: &str, os_version_underscored: &str) -> String {
    let arch = match arch.trim().to_ascii_lowercase().as_str() {
        "aarch64" | "arm64" | "arm" => "ARM",
        _ => "Intel",
    };
    // Only digits and underscores: this ends up in a header and must stay a valid one.
    let os: String = os_version_underscored
        .trim()
        .chars()
        .map(|c| if c == '.' { '_' } else { c })
        .filter(|c| c.is_ascii_digit() || *c == '_')
        .collect();
    let os = if os.trim_matches('_').is_empty() {
        DEFAULT_OS_VERSION
    } else {
        os.trim_matches('_')
    };
    format!(
        "{PRODUCT}/{CLIENT_VERSION} (Macintosh; {arch} Mac OS X {os}) (devicetrust {})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The device facts Okta records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The hardware UUID.
    pub uuid: String,
    /// The ComputerName.
    pub display_name: String,
}

impl Device {
    fn wire(&self) -> wire::DeviceBody<'_> {
        wire::DeviceBody {
            uuid: &self.uuid,
            display_name: &self.display_name,
        }
    }
}

/// What the metadata endpoint tells the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Host (and port when not 443) of the MTLS handshake, e.g. `ok12-devicetrust.okta.com`.
    pub cert_auth_host: String,
    /// Okta's clock, from the answer's `Date` header, for the check before a certificate
    /// request (`http::clock`).
    pub server_time: Option<time::OffsetDateTime>,
}

/// Which call failed: named in every error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Reachability,
    Metadata,
    Enrollment,
    Renewal,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Reachability => "reachability check",
            Operation::Metadata => "metadata request",
            Operation::Enrollment => "enrollment",
            Operation::Renewal => "renewal",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OktaError {
    /// Okta answered with its error object: the summary is Okta's own words.
    #[error(
        "Okta refused the {op}: {summary}{} ({}HTTP {status})",
        causes_suffix(causes),
        code_prefix(code)
    )]
    Api {
        op: Operation,
        status: u16,
        code: String,
        summary: String,
        causes: Vec<String>,
    },
    #[error("Okta rate-limited the {op}; {}", http::retry_hint(*reset_at))]
    RateLimited {
        op: Operation,
        reset_at: Option<i64>,
    },
    #[error("Okta {op} failed: cannot reach {url}: {reason}")]
    Unreachable {
        op: Operation,
        url: String,
        reason: String,
    },
    #[error("Okta {op} failed: cannot trust {url}: {reason}")]
    Untrusted {
        op: Operation,
        url: String,
        reason: String,
    },
    /// The server's certificate is outside its dates by the device's clock: the clock or the
    /// certificate is wrong, and the device cannot tell which, so the run defers.
    #[error("Okta {op} failed: cannot trust {url} at the device's clock: {reason}")]
    NotValidNow {
        op: Operation,
        url: String,
        reason: String,
    },
    #[error("Okta {op} timed out: no answer from {url} within {}", http::fmt_duration(*after))]
    Timeout {
        op: Operation,
        url: String,
        after: Duration,
    },
    #[error(
        "Okta {op} failed: HTTP {status} from {url} after retries{}",
        snippet_suffix(snippet)
    )]
    ServerError {
        op: Operation,
        status: u16,
        url: String,
        snippet: String,
    },
    /// A non-2xx answer that is not an Okta error object (a proxy's block page, a 404).
    #[error(
        "Okta {op} failed: unexpected HTTP {status} from {url}{}",
        snippet_suffix(snippet)
    )]
    UnexpectedStatus {
        op: Operation,
        status: u16,
        url: String,
        snippet: String,
    },
    #[error("Okta {op} answer is unusable: {what}")]
    BadResponse { op: Operation, what: String },
    #[error("Okta {op} not attempted: {what}")]
    Invalid { op: Operation, what: String },
    #[error("cannot prepare the connection to Okta: {0}")]
    Config(#[source] HttpError),
}

impl OktaError {
    /// Worth trying again later (the CLI exits 75): rate limits, network trouble, timeouts.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            OktaError::RateLimited { .. }
                | OktaError::Unreachable { .. }
                | OktaError::NotValidNow { .. }
                | OktaError::Timeout { .. }
        )
    }

    fn from_http(op: Operation, err: HttpError) -> Self {
        match err {
            HttpError::Unreachable { url, reason } => OktaError::Unreachable { op, url, reason },
            HttpError::Untrusted { url, reason } => OktaError::Untrusted { op, url, reason },
            HttpError::NotValidNow { url, reason } => OktaError::NotValidNow { op, url, reason },
            HttpError::Timeout { url, after } => OktaError::Timeout { op, url, after },
            HttpError::RateLimited { reset_at, .. } => OktaError::RateLimited { op, reset_at },
            HttpError::TooLarge { limit, .. } => OktaError::BadResponse {
                op,
                what: format!("the answer is larger than {limit} bytes"),
            },
            HttpError::Redirected { url, status } => OktaError::UnexpectedStatus {
                op,
                status,
                url,
                snippet: http::REDIRECT_NOT_FOLLOWED.to_owned(),
            },
            other => OktaError::Config(other),
        }
    }
}

fn causes_suffix(causes: &[String]) -> String {
    causes.iter().map(|c| format!(": {c}")).collect()
}

fn code_prefix(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!("{code}, ")
    }
}

fn snippet_suffix(snippet: &str) -> String {
    if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    }
}

type Sleeper = Box<dyn Fn(Duration) + Send + Sync>;

/// Talks to one Okta org.
pub struct OktaClient {
    base: Url,
    http: Client,
    settings: HttpSettings,
    user_agent: HeaderValue,
    sleeper: Sleeper,
}

impl fmt::Debug for OktaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl OktaClient {
    /// `settings.user_agent` is sent as is when it carries Okta's product token (build it with
    /// [`user_agent`]); otherwise `user_agent(<this machine's arch>, "10_15_7")` is sent.
    pub fn new(org: OrgUrl, settings: &HttpSettings) -> Result<Self, OktaError> {
        let http = http::build_client(settings).map_err(OktaError::Config)?;
        Self::with_parts(
            org.url().clone(),
            http,
            settings,
            Box::new(std::thread::sleep),
        )
    }

    /// Plain http to a loopback test server: only the tests can reach this, `OrgUrl` refuses http.
    #[cfg(test)]
    pub(crate) fn for_loopback_test(
        base: Url,
        settings: &HttpSettings,
        sleeper: Sleeper,
    ) -> Result<Self, OktaError> {
        let http = http::build_client_with(settings, false).map_err(OktaError::Config)?;
        Self::with_parts(base, http, settings, sleeper)
    }

    fn with_parts(
        base: Url,
        http: Client,
        settings: &HttpSettings,
        sleeper: Sleeper,
    ) -> Result<Self, OktaError> {
        let agent = if settings.user_agent.starts_with(PRODUCT) {
            settings.user_agent.clone()
        } else {
            user_agent(std::env::consts::ARCH, DEFAULT_OS_VERSION)
        };
        let user_agent = HeaderValue::from_str(&agent).map_err(|_| {
            OktaError::Config(HttpError::ClientSetup {
                reason: "the User-Agent contains characters not allowed in a header".to_owned(),
            })
        })?;
        Ok(OktaClient {
            base,
            http,
            settings: settings.clone(),
            user_agent,
            sleeper,
        })
    }

    /// `GET {org}/api/internal/v1/device-trust/metadata?platform=macos`.
    pub fn metadata(&self) -> Result<Metadata, OktaError> {
        let op = Operation::Metadata;
        let url = org::join(&self.base, METADATA_PATH);
        let reply = self.send(op, &url, None)?;
        let server_time = crate::http::clock::server_time(&reply.headers);
        let body: wire::MetadataBody = parse_success(op, &url, reply, None)?;
        let domain = body
            .cert_auth_domain
            .ok_or_else(|| bad(op, "the certAuthDomain field is missing"))?;
        let cert_auth_host = org::cert_auth_host(&domain).map_err(|e| bad(op, &e.to_string()))?;
        Ok(Metadata {
            cert_auth_host,
            server_time,
        })
    }

    /// `GET {org}/.well-known/openid-configuration`: Ok when the org answers with its discovery
    /// document, the way a browser on this device would reach it.
    pub fn probe(&self) -> Result<(), OktaError> {
        let op = Operation::Reachability;
        let url = org::join(&self.base, DISCOVERY_PATH);
        let reply = self.send(op, &url, None)?;
        let body: wire::DiscoveryBody = parse_success(op, &url, reply, None)?;
        match body.issuer {
            Some(issuer) if !issuer.is_empty() => Ok(()),
            _ => Err(bad(op, "the discovery document has no issuer")),
        }
    }

    /// `POST {org}/api/internal/device-trust/ca/v1/enroll/macos`: the DER certificate Okta issued.
    /// Not checked here; the caller verifies it against the CSR before storing it.
    pub fn enroll(
        &self,
        org_token: &Secret,
        device: &Device,
        csr_der: &[u8],
        user: &str,
    ) -> Result<Vec<u8>, OktaError> {
        let op = Operation::Enrollment;
        if org_token.is_empty() {
            return Err(invalid(op, "the org token is empty"));
        }
        check_inputs(op, device, csr_der, user)?;
        let body = wire::EnrollBody::new(org_token, device.wire(), csr_der, user);
        // The serialised body holds the token in clear: wiped when dropped.
        let json = Zeroizing::new(
            serde_json::to_vec(&body)
                .map_err(|e| invalid(op, &format!("cannot encode the request: {e}")))?,
        );
        let url = org::join(&self.base, ENROLL_PATH);
        let reply = self.send(op, &url, Some(&json))?;
        issued_certificate(op, &url, reply, Some(org_token))
    }

    /// `POST {org}/api/internal/device-trust/ca/v1/renew/macos` with the device's CMS renewal
    /// token (DER): the DER certificate Okta issued, unchecked as for `enroll`.
    pub fn renew(
        &self,
        renewal_token_der: &[u8],
        device: &Device,
        csr_der: &[u8],
        user: &str,
    ) -> Result<Vec<u8>, OktaError> {
        let op = Operation::Renewal;
        if renewal_token_der.is_empty() {
            return Err(invalid(op, "the renewal token is empty"));
        }
        check_inputs(op, device, csr_der, user)?;
        let body = wire::RenewBody::new(renewal_token_der, device.wire(), csr_der, user);
        let json = serde_json::to_vec(&body)
            .map_err(|e| invalid(op, &format!("cannot encode the request: {e}")))?;
        let url = org::join(&self.base, RENEW_PATH);
        let reply = self.send(op, &url, Some(&json))?;
        issued_certificate(op, &url, reply, None)
    }

    /// GET when `body` is None, else POST of the JSON body; with the protocol's headers.
    fn send(&self, op: Operation, url: &Url, body: Option<&[u8]>) -> Result<Reply, OktaError> {
        let mut rng = rand_core::OsRng;
        let mut sender = Sender {
            settings: &self.settings,
            service: "Okta",
            sleeper: &*self.sleeper,
            rng: &mut rng,
        };
        http::send_with_retry(&mut sender, url, || {
            let request = match body {
                Some(body) => self
                    .http
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_vec()),
                None => self.http.get(url.clone()),
            };
            request
                .header(ACCEPT, "application/json")
                .header(USER_AGENT, self.user_agent.clone())
        })
        .map_err(|e| OktaError::from_http(op, e))
    }
}

fn check_inputs(
    op: Operation,
    device: &Device,
    csr_der: &[u8],
    user: &str,
) -> Result<(), OktaError> {
    if csr_der.is_empty() {
        return Err(invalid(op, "the CSR is empty"));
    }
    if device.uuid.trim().is_empty() {
        return Err(invalid(op, "the device UUID is empty"));
    }
    if user.trim().is_empty() {
        return Err(invalid(op, "the user name is empty"));
    }
    Ok(())
}

fn bad(op: Operation, what: &str) -> OktaError {
    OktaError::BadResponse {
        op,
        what: what.to_owned(),
    }
}

fn invalid(op: Operation, what: &str) -> OktaError {
    OktaError::Invalid {
        op,
        what: what.to_owned(),
    }
}

/// One line of text from the server, with the org token (or a long piece of it) blanked
/// should the server echo it: blanked first, then folded.
fn clean(text: &str, secret: Option<&Secret>) -> String {
    match secret {
        Some(secret) => http::one_line(&secret.redact(text)),
        None => http::one_line(text),
    }
}

/// A short excerpt of a body that is not Okta's error object, secret blanked before the cut.
fn snippet(body: &[u8], secret: Option<&Secret>) -> String {
    match secret {
        Some(secret) => {
            let redacted = secret.redact(&String::from_utf8_lossy(body));
            http::body_snippet(redacted.as_bytes(), SNIPPET_CHARS)
        }
        None => http::body_snippet(body, SNIPPET_CHARS),
    }
}

/// The DER certificate of an enroll or renew answer, or the error the answer stands for. Public
/// so the fuzz targets can feed it server answers without a server.
pub fn issued_certificate(
    op: Operation,
    url: &Url,
    reply: Reply,
    secret: Option<&Secret>,
) -> Result<Vec<u8>, OktaError> {
    let body: wire::IssuedCertificate = parse_success(op, url, reply, secret)?;
    let encoded = body
        .issued_certificate
        .ok_or_else(|| bad(op, "the issuedCertificate field is missing"))?;
    decode_lenient(&encoded).map_err(|what| bad(op, &format!("the issuedCertificate field {what}")))
}

/// Base64 as Okta's task read it: Python's `b64decode` skips line breaks and other whitespace
/// (MIME-style answers wrap at 76 characters). Everything else stays strict, and the decoded
/// certificate is checked strictly before anything is stored.
fn decode_lenient(encoded: &str) -> Result<Vec<u8>, String> {
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err("is empty".into());
    }
    STANDARD
        .decode(compact)
        .map_err(|e| format!("is not base64: {e}"))
}

/// The JSON of a 2xx answer, or the error a non-2xx answer stands for (public for the fuzz
/// targets, like [`issued_certificate`]).
pub fn parse_success<T: DeserializeOwned>(
    op: Operation,
    url: &Url,
    reply: Reply,
    secret: Option<&Secret>,
) -> Result<T, OktaError> {
    let status = reply.status.as_u16();
    if !reply.status.is_success() {
        return Err(status_error(op, url, &reply, secret));
    }
    let is_html = reply
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("html"))
        || reply.body.trim_ascii_start().starts_with(b"<");
    if is_html {
        let snippet = snippet(&reply.body, secret);
        return Err(bad(
            op,
            &format!(
                "expected JSON, got an HTML page (HTTP {status}){}",
                snippet_suffix(&snippet)
            ),
        ));
    }
    if reply.body.trim_ascii().is_empty() {
        return Err(bad(op, &format!("the body is empty (HTTP {status})")));
    }
    // serde_json quotes string values in its messages ("invalid type: string \"...\""), so an
    // answer that echoes the org token as a bare JSON string would carry it into the error line.
    serde_json::from_slice(&reply.body).map_err(|e| {
        bad(
            op,
            &clean(&format!("malformed JSON (HTTP {status}): {e}"), secret),
        )
    })
}

fn status_error(op: Operation, url: &Url, reply: &Reply, secret: Option<&Secret>) -> OktaError {
    let status = reply.status.as_u16();
    if let Ok(err) = serde_json::from_slice::<wire::OktaErrorBody>(&reply.body) {
        let summary = clean(&err.error_summary, secret);
        if !summary.is_empty() {
            return OktaError::Api {
                op,
                status,
                code: clean(&err.error_code, secret),
                summary,
                causes: err
                    .error_causes
                    .iter()
                    .map(|c| clean(&c.error_summary, secret))
                    .filter(|c| !c.is_empty())
                    .collect(),
            };
        }
    }
    let snippet = snippet(&reply.body, secret);
    let url = url.as_str().to_owned();
    if reply.status.is_server_error() {
        OktaError::ServerError {
            op,
            status,
            url,
            snippet,
        }
    } else {
        OktaError::UnexpectedStatus {
            op,
            status,
            url,
            snippet,
        }
    }
}

#[cfg(test)]
mod lenient_tests {
    use super::*;

    #[test]
    fn line_breaks_and_spaces_are_skipped_but_nothing_else() {
        let der: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        let plain = STANDARD.encode(&der);
        let wrapped: String = plain
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\r\n", String::from_utf8_lossy(c)))
            .collect();
        assert_eq!(decode_lenient(&wrapped).unwrap(), der);
        assert_eq!(decode_lenient(&format!(" {plain}\t\n")).unwrap(), der);
        assert!(decode_lenient(&format!("{plain}*")).is_err());
        assert!(decode_lenient(" \n ").unwrap_err().contains("empty"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    const TOKEN: &str = "00TOPSECRET-org-token-value";
    const CERT_DER: &[u8] = &[0x30, 0x82, 0x01, 0x0a, 0xde, 0xad, 0xbe, 0xef];

    enum Step {
        Reply(String),
        /// Read the request, then hold the connection open without answering.
        Hang,
    }

    struct Server {
        base: Url,
        requests: mpsc::Receiver<String>,
    }

    impl Server {
        fn requests(&self) -> Vec<String> {
            self.requests.try_iter().collect()
        }
    }

    /// A loopback HTTP/1.1 server answering one scripted step per connection.
    fn serve(steps: Vec<Step>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for step in steps {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let request = read_request(&mut stream);
                let _ = tx.send(request);
                match step {
                    Step::Reply(reply) => {
                        let _ = stream.write_all(reply.as_bytes());
                    }
                    Step::Hang => {
                        // Returns when the client gives up and closes.
                        let mut sink = [0u8; 64];
                        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    }
                }
            }
        });
        Server { base, requests: rx }
    }

    fn read_request(stream: &mut TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&data).to_string()
    }

    fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> Step {
        let mut text = format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(body);
        Step::Reply(text)
    }

    fn json(status: &str, body: &str) -> Step {
        reply(status, &[("Content-Type", "application/json")], body)
    }

    fn cert_reply() -> Step {
        json(
            "200 OK",
            &format!(
                "{{\"issuedCertificate\":\"{}\\n\"}}",
                STANDARD.encode(CERT_DER)
            ),
        )
    }

    fn settings() -> HttpSettings {
        HttpSettings {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            user_agent: user_agent("arm64", "14.6.1"),
            ..HttpSettings::default()
        }
    }

    fn client(server: &Server, settings: &HttpSettings) -> (OktaClient, Arc<Mutex<Vec<Duration>>>) {
        let slept = Arc::new(Mutex::new(Vec::new()));
        let record = slept.clone();
        let client = OktaClient::for_loopback_test(
            server.base.clone(),
            settings,
            Box::new(move |d| record.lock().unwrap().push(d)),
        )
        .unwrap();
        (client, slept)
    }

    fn device() -> Device {
        Device {
            uuid: "564D8F7A-1B2C-4D5E-8F90-A1B2C3D4E5F6".into(),
            display_name: "Ada's MacBook".into(),
        }
    }

    fn enroll(client: &OktaClient) -> Result<Vec<u8>, OktaError> {
        client.enroll(&Secret::new(TOKEN), &device(), b"\x30\x82csr", "ada")
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn user_agent_has_the_okta_product_token() {
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(
            user_agent("arm64", "10_15_7"),
            format!("Okta Device Registration Task/1.3.3 (Macintosh; ARM Mac OS X 10_15_7) (devicetrust {v})")
        );
        assert_eq!(
            user_agent("x86_64", "14.6.1"),
            format!("Okta Device Registration Task/1.3.3 (Macintosh; Intel Mac OS X 14_6_1) (devicetrust {v})")
        );
        assert!(user_agent("aarch64", "\r\nX: y").contains("ARM Mac OS X 10_15_7)"));
    }

    #[test]
    fn enroll_sends_the_protocol_request_and_decodes_the_certificate() {
        let server = serve(vec![cert_reply()]);
        let (client, slept) = client(&server, &settings());
        assert_eq!(enroll(&client).unwrap(), CERT_DER);
        assert!(slept.lock().unwrap().is_empty());

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        let raw = &requests[0];
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        assert_eq!(
            lines.next(),
            Some("POST /api/internal/device-trust/ca/v1/enroll/macos HTTP/1.1")
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect();
        let header = |name: &str| {
            let values: Vec<&str> = headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(values.len(), 1, "{name} sent {} times", values.len());
            values[0].to_owned()
        };
        assert_eq!(header("accept"), "application/json");
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("user-agent"), user_agent("arm64", "14_6_1"));
        let sent: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({
                "clientVersion": "1.3.3",
                "orgToken": TOKEN,
                "device": {"uuid": "564D8F7A-1B2C-4D5E-8F90-A1B2C3D4E5F6", "displayName": "Ada's MacBook"},
                "csr": STANDARD.encode(b"\x30\x82csr"),
                "user": "ada"
            })
        );
    }

    #[test]
    fn renew_posts_the_renewal_token() {
        let server = serve(vec![cert_reply()]);
        let (client, _) = client(&server, &settings());
        assert_eq!(
            client.renew(b"cms", &device(), b"csr2", "ada").unwrap(),
            CERT_DER
        );
        let raw = server.requests().remove(0);
        assert!(raw.starts_with("POST /api/internal/device-trust/ca/v1/renew/macos HTTP/1.1\r\n"));
        let sent: serde_json::Value =
            serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(sent["deviceRenewalToken"], STANDARD.encode(b"cms"));
        assert!(sent.get("orgToken").is_none());
    }

    #[test]
    fn metadata_returns_the_cert_auth_host() {
        let server = serve(vec![json(
            "200 OK",
            r#"{"certAuthDomain":"https://ok12-devicetrust.okta.com/"}"#,
        )]);
        let (client, _) = client(&server, &settings());
        assert_eq!(
            client.metadata().unwrap().cert_auth_host,
            "ok12-devicetrust.okta.com"
        );
        let raw = server.requests().remove(0);
        assert!(
            raw.starts_with(
                "GET /api/internal/v1/device-trust/metadata?platform=macos HTTP/1.1\r\n"
            ),
            "{raw}"
        );
        assert!(raw
            .to_ascii_lowercase()
            .contains("\r\naccept: application/json\r\n"));
    }

    #[test]
    fn metadata_without_cert_auth_domain_is_a_bad_response() {
        let server = serve(vec![json("200 OK", r#"{"other":"x"}"#)]);
        let (client, _) = client(&server, &settings());
        let err = client.metadata().unwrap_err();
        assert_eq!(
            err.to_string(),
            "Okta metadata request answer is unusable: the certAuthDomain field is missing"
        );
    }

    #[test]
    fn okta_error_object_becomes_an_api_error_with_the_summary() {
        let server = serve(vec![json(
            "401 Unauthorized",
            r#"{"errorCode":"E0000011","errorSummary":"Invalid token provided","errorLink":"E0000011","errorId":"oae1","errorCauses":[]}"#,
        )]);
        let (client, slept) = client(&server, &settings());
        let err = enroll(&client).unwrap_err();
        assert!(
            matches!(&err, OktaError::Api { status: 401, code, .. } if code == "E0000011"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "Okta refused the enrollment: Invalid token provided (E0000011, HTTP 401)"
        );
        assert!(!err.is_transient());
        assert!(slept.lock().unwrap().is_empty(), "4xx is not retried");
    }

    #[test]
    fn api_error_display_appends_causes() {
        let err = OktaError::Api {
            op: Operation::Enrollment,
            status: 400,
            code: "E0000001".into(),
            summary: "Maximum enrollment limit of 5 certificates for a device is reached".into(),
            causes: vec![],
        };
        assert_eq!(
            err.to_string(),
            "Okta refused the enrollment: Maximum enrollment limit of 5 certificates for a device is reached (E0000001, HTTP 400)"
        );
        let err = OktaError::Api {
            op: Operation::Renewal,
            status: 400,
            code: String::new(),
            summary: "Api validation failed: csr".into(),
            causes: vec!["csr: The CSR is invalid.".into()],
        };
        assert_eq!(err.to_string(), "Okta refused the renewal: Api validation failed: csr: csr: The CSR is invalid. (HTTP 400)");
    }

    #[test]
    fn a_503_is_retried_once_then_succeeds() {
        let server = serve(vec![
            reply(
                "503 Service Unavailable",
                &[("Content-Type", "text/html")],
                "<html>down</html>",
            ),
            cert_reply(),
        ]);
        let (client, slept) = client(&server, &settings());
        assert_eq!(enroll(&client).unwrap(), CERT_DER);
        let slept = slept.lock().unwrap();
        assert_eq!(slept.len(), 1);
        assert!(slept[0] <= Duration::from_secs(2), "{:?}", slept[0]);
        assert_eq!(server.requests().len(), 2);
    }

    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn retries_are_logged_without_secrets() {
        let server = serve(vec![
            json(
                "503 Service Unavailable",
                &format!("{{\"echo\":\"{TOKEN}\"}}"),
            ),
            cert_reply(),
        ]);
        let (client, _) = client(&server, &settings());
        crate::http::tests::keep_every_callsite_enabled();
        let logs = LogBuffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || enroll(&client).unwrap());
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("Okta answered 503; retrying in "), "{text}");
        assert!(text.contains("(attempt 2 of 4)"), "{text}");
        assert!(!text.contains(TOKEN), "{text}");
    }

    #[test]
    fn persistent_5xx_gives_a_server_error_with_a_snippet() {
        let page = "<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>";
        let server = serve(
            (0..4)
                .map(|_| reply("502 Bad Gateway", &[("Content-Type", "text/html")], page))
                .collect(),
        );
        let (client, slept) = client(&server, &settings());
        let err = enroll(&client).unwrap_err();
        let url = format!(
            "{}api/internal/device-trust/ca/v1/enroll/macos",
            server.base
        );
        assert_eq!(
            err.to_string(),
            format!(
                "Okta enrollment failed: HTTP 502 from {url} after retries: 502 Bad Gateway nginx"
            )
        );
        let slept = slept.lock().unwrap();
        assert_eq!(slept.len(), 3);
        assert!(slept[1] <= Duration::from_secs(4) && slept[2] <= Duration::from_secs(8));
        assert!(!err.is_transient());
    }

    #[test]
    fn a_far_rate_limit_reset_defers_without_waiting() {
        let reset = now() + 3600;
        let server = serve(vec![json(
            "429 Too Many Requests",
            r#"{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}"#,
        )
        .with_header("X-Rate-Limit-Reset", &reset.to_string())]);
        let (client, slept) = client(&server, &settings());
        let started = Instant::now();
        let err = enroll(&client).unwrap_err();
        assert!(
            matches!(err, OktaError::RateLimited { reset_at: Some(r), op: Operation::Enrollment } if r == reset),
            "{err:?}"
        );
        assert!(err.is_transient());
        assert!(
            err.to_string()
                .starts_with("Okta rate-limited the enrollment; try again after "),
            "{err}"
        );
        assert!(slept.lock().unwrap().is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn a_near_rate_limit_reset_is_waited_out() {
        let server = serve(vec![
            json("429 Too Many Requests", "{}")
                .with_header("X-Rate-Limit-Reset", &(now() + 5).to_string()),
            cert_reply(),
        ]);
        let (client, slept) = client(&server, &settings());
        assert_eq!(enroll(&client).unwrap(), CERT_DER);
        let slept = slept.lock().unwrap();
        assert_eq!(slept.len(), 1);
        assert!(
            slept[0] >= Duration::from_secs(3) && slept[0] <= Duration::from_secs(7),
            "{:?}",
            slept[0]
        );
    }

    #[test]
    fn html_on_200_is_a_bad_response() {
        let server = serve(vec![reply(
            "200 OK",
            &[("Content-Type", "text/html; charset=utf-8")],
            "<!DOCTYPE html><html><head><title>Sign in to the Wi-Fi</title></head></html>",
        )]);
        let (client, _) = client(&server, &settings());
        let err = enroll(&client).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Okta enrollment answer is unusable: expected JSON, got an HTML page (HTTP 200): Sign in to the Wi-Fi"
        );
    }

    #[test]
    fn malformed_answers_name_the_problem() {
        for (body, expected) in [
            (
                "{\"issuedCertificate\":",
                "malformed JSON (HTTP 200): EOF while parsing",
            ),
            ("{}", "the issuedCertificate field is missing"),
            (
                "{\"issuedCertificate\":\"  \"}",
                "the issuedCertificate field is empty",
            ),
            (
                "{\"issuedCertificate\":\"***\"}",
                "the issuedCertificate field is not base64",
            ),
            ("", "the body is empty (HTTP 200)"),
        ] {
            let server = serve(vec![json("200 OK", body)]);
            let (client, _) = client(&server, &settings());
            let err = enroll(&client).unwrap_err();
            assert!(matches!(err, OktaError::BadResponse { .. }), "{err:?}");
            assert!(err.to_string().contains(expected), "{body}: {err}");
        }
    }

    #[test]
    fn a_bare_json_string_echoing_the_org_token_does_not_carry_it_into_the_error() {
        // The okta_answer fuzz target's oracle (no error line carries the org token) on this.
        let token = Secret::new("00FuzzOrgToken-Xq7");
        let reply = Reply {
            status: reqwest::StatusCode::OK,
            headers: reqwest::header::HeaderMap::new(),
            body: br#""00FuzzOrgToken-Xq7""#.to_vec(),
        };
        let url = Url::parse("https://acme.okta.com/api/internal/device-trust/ca/v1/enroll/macos")
            .unwrap();
        let err = issued_certificate(Operation::Enrollment, &url, reply, Some(&token)).unwrap_err();
        let shown = err.to_string();
        assert!(matches!(err, OktaError::BadResponse { .. }), "{shown}");
        assert!(!shown.contains(token.expose()), "{shown}");
        assert!(
            shown.contains("invalid type: string \"[redacted]\""),
            "{shown}"
        );
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let server = serve(vec![Step::Hang]);
        let settings = HttpSettings {
            timeout: Duration::from_millis(400),
            ..settings()
        };
        let (client, slept) = client(&server, &settings);
        let started = Instant::now();
        let err = enroll(&client).unwrap_err();
        assert!(
            matches!(err, OktaError::Timeout { after, .. } if after == Duration::from_millis(400)),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(err.is_transient());
        assert!(
            err.to_string()
                .starts_with("Okta enrollment timed out: no answer from http://127.0.0.1:"),
            "{err}"
        );
        assert!(
            slept.lock().unwrap().is_empty(),
            "a sent request is not retried after a timeout"
        );
    }

    #[test]
    fn a_refused_connection_is_retried_then_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server {
            base: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            requests: mpsc::channel().1,
        };
        let (client, slept) = client(&server, &settings());
        let err = client.metadata().unwrap_err();
        assert!(matches!(err, OktaError::Unreachable { .. }), "{err:?}");
        assert!(err.is_transient());
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "Okta metadata request failed: cannot reach http://127.0.0.1:{port}/"
            )),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(!text.contains('\n'));
        assert_eq!(slept.lock().unwrap().len(), 3);
    }

    #[test]
    fn a_tls_failure_is_named_and_not_retried() {
        // Answers plain text to the ClientHello, like a misconfigured port or an odd middlebox.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let _ = stream.and_then(|mut s| s.write_all(b"HTTP/1.1 200 OK\r\n\r\nnot TLS"));
            }
        });
        let tls_server = Server {
            base: Url::parse(&format!("https://127.0.0.1:{port}/")).unwrap(),
            requests: mpsc::channel().1,
        };
        let (client, slept) = client(&tls_server, &settings());
        let err = client.metadata().unwrap_err();
        assert!(matches!(err, OktaError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("TLS failed ("), "{err}");
        assert!(slept.lock().unwrap().is_empty());
    }

    const UNTRUSTED_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgoRzuptjQ29DiNkTB
Q2MoEsuJekhhji5W9TJ6rXMoUeChRANCAAR4wYpH+QxxmdJ6BuYW/bUcXI4MeC05
6qSes3Gnsoiv2ooU/pxrbq9EodGVMA5ssE1X3uT19CMhiUeG1tlMa8Ao
-----END PRIVATE KEY-----
";
    const UNTRUSTED_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBkDCCATagAwIBAgIUfndd2jDU2XXqxQF8m3NVX+I+LWQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyMzIwMTQxNFoYDzIxMjYxMDMw
MjAxNDE0WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAR4wYpH+QxxmdJ6BuYW/bUcXI4MeC056qSes3Gnsoiv2ooU/pxrbq9E
odGVMA5ssE1X3uT19CMhiUeG1tlMa8Aoo2QwYjAdBgNVHQ4EFgQUp8Dww4HUU/M8
/M/IRSyVsfjKwpMwHwYDVR0jBBgwFoAUp8Dww4HUU/M8/M/IRSyVsfjKwpMwDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0gAMEUC
IDpAsjb8qax4/eHGpNKzy9XksdYmbtiHW2XsSI1cIMFQAiEAgQZ2/J/aKG7L3tEu
8XwBSF2QfvMq4Z2uXtqRbt/vfYU=
-----END CERTIFICATE-----
";

    /// A loopback TLS server presenting `certificate`, which reads each ClientHello and never
    /// gets to a request: these tests are about the handshake.
    fn tls_server(
        certificate: rustls::pki_types::CertificateDer<'static>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Server {
        let provider = crate::pki::install_crypto_provider();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate], key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(4) {
                let Ok(stream) = stream else { return };
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut buf = [0u8; 512];
                let _ = tls.read(&mut buf);
            }
        });
        Server {
            base: Url::parse(&format!("https://127.0.0.1:{port}/")).unwrap(),
            requests: mpsc::channel().1,
        }
    }

    #[test]
    fn an_untrusted_server_certificate_is_recognisable() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let server = tls_server(
            CertificateDer::from_pem_slice(UNTRUSTED_CERT.as_bytes()).unwrap(),
            PrivateKeyDer::from_pem_slice(UNTRUSTED_KEY.as_bytes()).unwrap(),
        );
        let (client, slept) = client(&server, &settings());
        let err = client.metadata().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OktaError::Untrusted { .. }), "{err:?}");
        assert!(!err.is_transient(), "an admin must act: exit 1, not 75");
        assert!(
            text.contains("certificate verification failed (invalid peer certificate"),
            "{text}"
        );
        assert!(text.contains("--ca-file"), "{text}");
        assert!(slept.lock().unwrap().is_empty(), "not retried");
    }

    /// Okta's server certificate as a device whose clock is `offset` from the real time sees
    /// it: issued for 127.0.0.1 by a CA the settings trust, valid `from` .. `to` the real time.
    fn dated_server(from: time::Duration, to: time::Duration) -> (Server, HttpSettings) {
        use crate::pki::authority::tests::test_authority;
        use crate::pki::{IssueProfile, IssueRequest};
        let key = crate::pki::key::tests::test_key();
        let now = time::OffsetDateTime::now_utc();
        let certificate = test_authority()
            .issue(IssueRequest {
                subject: "CN=127.0.0.1".into(),
                public_key_der: key.public_key_der().unwrap(),
                not_before: now + from,
                not_after: now + to,
                serial: None,
                profile: IssueProfile::TlsServer {
                    dns_names: Vec::new(),
                    ip_addresses: vec![std::net::Ipv4Addr::LOCALHOST.into()],
                },
            })
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_pkcs8_der().unwrap().to_vec().into());
        let server = tls_server(certificate.into(), key);
        let settings = HttpSettings {
            extra_roots_pem: test_authority().certificate_pem().into_bytes(),
            ..settings()
        };
        (server, settings)
    }

    #[test]
    fn a_server_certificate_not_valid_yet_points_at_the_clock_and_defers() {
        let (server, settings) = dated_server(time::Duration::days(2), time::Duration::days(30));
        let (client, slept) = client(&server, &settings);
        let err = client.metadata().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OktaError::NotValidNow { .. }), "{err:?}");
        assert!(err.is_transient(), "the device's clock: exit 75, not 1");
        assert!(text.contains("at the device's clock"), "{text}");
        assert!(text.contains("is valid from 20"), "the notBefore: {text}");
        assert!(text.contains("the device's clock says 20"), "{text}");
        assert!(text.contains("if the device's clock is behind"), "{text}");
        assert!(!text.contains("--ca-file"), "no trust to add: {text}");
        assert!(slept.lock().unwrap().is_empty(), "not retried in the run");
    }

    #[test]
    fn an_expired_server_certificate_names_both_causes_and_defers() {
        let (server, settings) = dated_server(-time::Duration::days(30), -time::Duration::days(1));
        let (client, _) = client(&server, &settings);
        let err = client.metadata().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, OktaError::NotValidNow { .. }), "{err:?}");
        assert!(err.is_transient(), "{err:?}");
        assert!(
            text.contains("the server's certificate expired 20"),
            "{text}"
        );
        assert!(text.contains("the device's clock is ahead"), "{text}");
        assert!(text.contains("has lapsed"), "{text}");
    }

    #[test]
    fn the_org_token_never_appears_in_errors() {
        let echo = format!(
            r#"{{"errorCode":"E0000011","errorSummary":"Invalid token {TOKEN}","errorCauses":[{{"errorSummary":"token {TOKEN} unknown"}}]}}"#
        );
        let server = serve(vec![
            json("403 Forbidden", &echo),
            reply("418 I'm a teapot", &[], &format!("no {TOKEN} here")),
        ]);
        let (client, _) = client(&server, &settings());
        for _ in 0..2 {
            let err = enroll(&client).unwrap_err();
            let shown = format!("{err} {err:?} {err:#?}");
            assert!(!shown.contains(TOKEN), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        let debug = format!("{client:?}");
        assert!(!debug.contains(TOKEN));
    }

    #[test]
    fn empty_inputs_are_refused_before_sending() {
        let server = serve(vec![]);
        let (client, _) = client(&server, &settings());
        let err = client
            .enroll(&Secret::new("  \n"), &device(), b"csr", "ada")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Okta enrollment not attempted: the org token is empty"
        );
        let err = client.renew(b"cms", &device(), b"", "ada").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Okta renewal not attempted: the CSR is empty"
        );
    }

    #[test]
    fn a_non_okta_user_agent_is_replaced() {
        let server = serve(vec![cert_reply()]);
        let plain = HttpSettings {
            user_agent: "curl/8".into(),
            ..settings()
        };
        let (client, _) = client(&server, &plain);
        enroll(&client).unwrap();
        let raw = server.requests().remove(0);
        assert!(
            raw.contains("Okta Device Registration Task/1.3.3 (Macintosh; "),
            "{raw}"
        );
        assert!(!raw.contains("curl/8"));
    }

    trait WithHeader {
        fn with_header(self, name: &str, value: &str) -> Self;
    }

    impl WithHeader for Step {
        fn with_header(self, name: &str, value: &str) -> Self {
            match self {
                Step::Reply(text) => {
                    Step::Reply(text.replacen("\r\n", &format!("\r\n{name}: {value}\r\n"), 1))
                }
                other => other,
            }
        }
    }
}
