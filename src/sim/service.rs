//! The simulator's behaviour: one request in, one response out, plus the request log and the
//! record of issued certificates. No sockets here, so every rule is easy to read and to test.

use super::faults::{self, Endpoint, Fault, Injection};
use super::{CERT_AUTH_HOST, MAX_UNBOUND_CERTIFICATES};
use crate::okta::OKTA_SUBJECT_CN;
use crate::pki::{self, Authority, CertificateInfo, IssueProfile, IssueRequest, PrivateKey};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;
use time::OffsetDateTime;

const METADATA_PATH: &str = "/api/internal/v1/device-trust/metadata";
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
const ENROLL_PATH: &str = "/api/internal/device-trust/ca/v1/enroll/macos";
const RENEW_PATH: &str = "/api/internal/device-trust/ca/v1/renew/macos";
const USER_AGENT_PRODUCT: &str = "Okta Device Registration Task/";
/// Clock skew tolerated on the renewal token's times.
const SKEW: i64 = 60;
/// The longest lifetime a renewal token may claim (the agent makes them for one hour).
const MAX_TOKEN_LIFETIME: i64 = 3600;

/// One request as the simulator saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status the simulator answered.
    pub status: u16,
}

impl RequestRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A certificate the simulator issued.
#[derive(Debug, Clone)]
pub struct IssuedRecord {
    pub device_uuid: String,
    pub certificate_der: Vec<u8>,
    pub via: Endpoint,
    /// True once a renewal has replaced it: it no longer counts against the device's limit.
    pub renewed: bool,
}

pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub delay: Option<Duration>,
    /// Send the body one byte at a time, this long apart (a server that trickles).
    pub trickle: Option<Duration>,
}

impl Response {
    fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
            delay: None,
            trickle: None,
        }
    }

    fn raw(status: u16, content_type: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            delay: None,
            trickle: None,
        }
    }
}

/// An Okta error object (`errorCode`, `errorSummary`, ...).
fn okta_error(status: u16, code: &str, summary: &str, causes: &[String]) -> Response {
    let mut id = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
    let id = crate::fsutil::hex(&id);
    Response::json(
        status,
        json!({
            "errorCode": code,
            "errorSummary": summary,
            "errorLink": code,
            "errorId": format!("oae{id}"),
            "errorCauses": causes.iter().map(|c| json!({"errorSummary": c})).collect::<Vec<_>>(),
        }),
    )
}

fn invalid_token(cause: &str) -> Response {
    okta_error(
        401,
        "E0000011",
        "Invalid token provided",
        &[cause.to_owned()],
    )
}

fn validation_failed(causes: &[String]) -> Response {
    okta_error(
        400,
        "E0000001",
        "Api validation failed: enrollRequest",
        causes,
    )
}

pub(crate) struct Service {
    pub org_token: String,
    pub validity: Duration,
    /// How far the service's clock runs ahead of the real one (journeys over simulated days).
    pub clock_offset: time::Duration,
    /// How long before "now" the next certificates' validity starts (a demo's old identity).
    pub backdate: Duration,
    /// The certAuthDomain host the metadata answers with.
    pub cert_auth_host: String,
    pub requests: Vec<RequestRecord>,
    pub issued: Vec<IssuedRecord>,
    pub(crate) faults: Vec<Injection>,
    authority: Authority,
}

impl Service {
    pub fn new(org_token: String, validity: Duration, authority: Authority) -> Self {
        Service {
            org_token,
            validity,
            clock_offset: time::Duration::ZERO,
            backdate: Duration::ZERO,
            cert_auth_host: CERT_AUTH_HOST.to_owned(),
            requests: Vec::new(),
            issued: Vec::new(),
            faults: Vec::new(),
            authority,
        }
    }

    /// The service's clock.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + self.clock_offset
    }

    pub fn handle(&mut self, req: Request) -> Response {
        let response = self.dispatch(&req);
        self.requests.push(RequestRecord {
            method: req.method,
            path: req.path,
            query: req.query,
            headers: req.headers,
            body: req.body,
            status: response.status,
        });
        response
    }

    fn dispatch(&mut self, req: &Request) -> Response {
        let endpoint = match (req.method.as_str(), req.path.as_str()) {
            ("GET", DISCOVERY_PATH) => Endpoint::Discovery,
            ("GET", METADATA_PATH) => Endpoint::Metadata,
            ("POST", ENROLL_PATH) => Endpoint::Enroll,
            ("POST", RENEW_PATH) => Endpoint::Renew,
            (m, p @ (METADATA_PATH | ENROLL_PATH | RENEW_PATH)) => {
                let summary =
                    format!("The endpoint does not support the provided HTTP method {m} on {p}");
                return okta_error(405, "E0000022", &summary, &[]);
            }
            (_, p) => {
                return okta_error(
                    404,
                    "E0000007",
                    &format!("Not found: Resource not found: {p}"),
                    &[],
                )
            }
        };
        let fault = faults::take(&mut self.faults, endpoint);
        if let Some(Fault::QuotingBlockPage { quoted_bytes }) = fault {
            let quoted = String::from_utf8_lossy(&req.body[..quoted_bytes.min(req.body.len())]);
            let page = format!(
                "<html><body><pre>{quoted}</pre><p>Blocked by policy: POST {}</p></body></html>",
                req.path
            );
            return Response::raw(403, "text/html", &page);
        }
        if let Some(canned) = fault.as_ref().and_then(|f| canned_answer(f, endpoint)) {
            return canned;
        }
        if endpoint == Endpoint::Discovery {
            // Public and header-agnostic, as on a real org.
        } else if let Some(refusal) = check_headers(req, endpoint) {
            return refusal;
        }
        let mut response = match endpoint {
            Endpoint::Discovery => Response::json(200, json!({ "issuer": "https://localhost" })),
            Endpoint::Metadata => metadata(&self.cert_auth_host),
            Endpoint::Enroll => self.enroll(req, fault.as_ref()),
            Endpoint::Renew => self.renew(req, fault.as_ref()),
        };
        match fault {
            Some(Fault::Slow(d)) => response.delay = Some(d),
            Some(Fault::Trickle(d)) => response.trickle = Some(d),
            _ => {}
        }
        response
    }

    fn enroll(&mut self, req: &Request, fault: Option<&Fault>) -> Response {
        let body = match parse_body(&req.body, &["orgToken"]) {
            Ok(b) => b,
            Err(r) => return r,
        };
        if !constant_time_eq(body.secret.as_bytes(), self.org_token.as_bytes()) {
            return invalid_token("the org token is not this org's device-trust secret key");
        }
        let public_key = match check_csr(&body.csr) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let active = self
            .issued
            .iter()
            .filter(|c| !c.renewed && c.device_uuid == body.uuid)
            .count();
        if active >= MAX_UNBOUND_CERTIFICATES {
            return okta_error(
                400,
                "E0000001",
                "Maximum enrollment limit of 5 certificates for a device is reached",
                &[],
            );
        }
        self.issue(&body.uuid, &public_key, Endpoint::Enroll, fault)
    }

    fn renew(&mut self, req: &Request, fault: Option<&Fault>) -> Response {
        let body = match parse_body(&req.body, &["deviceRenewalToken"]) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Ok(token_der) = BASE64.decode(body.secret.trim()) else {
            return validation_failed(&["deviceRenewalToken: not valid base64".into()]);
        };
        let verified = match pki::verify_renewal_token(&token_der) {
            Ok(v) => v,
            Err(e) => return invalid_token(&format!("renewal token: {e}")),
        };
        let Some(signer) = self.issued.iter().position(|c| {
            c.certificate_der == verified.signer_certificate_der && c.device_uuid == body.uuid
        }) else {
            return invalid_token(
                "the renewal token is not signed by a certificate issued to this device",
            );
        };
        let now = self.now();
        match CertificateInfo::parse(&verified.signer_certificate_der) {
            Ok(info) if info.is_valid_at(now) => {}
            _ => return invalid_token("the certificate that signed the renewal token has expired"),
        }
        let claims = &verified.claims;
        if claims.device.uuid != body.uuid || claims.device.display_name != body.display_name {
            return invalid_token("the renewal token names another device");
        }
        let t = now.unix_timestamp();
        // The claims are the client's numbers: saturating, so `exp: i64::MAX` is refused, not
        // an overflow.
        let window_ok = claims.nbf <= t.saturating_add(SKEW)
            && t <= claims.exp.saturating_add(SKEW)
            && claims.iat <= t.saturating_add(SKEW)
            && claims.exp.saturating_sub(claims.iat) <= MAX_TOKEN_LIFETIME
            && claims.iat <= claims.exp;
        if !window_ok {
            return invalid_token("the renewal token is outside its validity window (iat/nbf/exp)");
        }
        let public_key = match check_csr(&body.csr) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let old_key = CertificateInfo::parse(&verified.signer_certificate_der)
            .map(|c| c.public_key_der)
            .unwrap_or_default();
        if public_key == old_key {
            return validation_failed(&["csr: a renewal must carry a new key".into()]);
        }
        let response = self.issue(&body.uuid, &public_key, Endpoint::Renew, fault);
        if response.status == 200 {
            // The old certificate stays usable until it expires (a device that rejected what it
            // was sent must be able to try again); it just stops counting against the limit.
            self.issued[signer].renewed = true;
        }
        response
    }

    fn issue(
        &mut self,
        uuid: &str,
        public_key_der: &[u8],
        via: Endpoint,
        fault: Option<&Fault>,
    ) -> Response {
        // Every certificate gets a fresh validity period from the service's now, so a renewal
        // moves the expiry by as much time as has passed.
        let start = self.now() - self.backdate;
        let now = self.now();
        let mut request = IssueRequest {
            subject: format!("CN={OKTA_SUBJECT_CN}"),
            public_key_der: public_key_der.to_vec(),
            not_before: start - time::Duration::minutes(5),
            not_after: start + self.validity,
            serial: None,
            profile: IssueProfile::ClientAuth,
        };
        match fault {
            Some(Fault::ForeignKeyCertificate) => {
                match PrivateKey::generate_rsa(2048).and_then(|k| k.public_key_der()) {
                    Ok(k) => request.public_key_der = k,
                    Err(e) => return okta_error(500, "E0000009", &e.to_string(), &[]),
                }
            }
            Some(Fault::WrongCommonName) => request.subject = "CN=Not Okta".into(),
            Some(Fault::ExpiredCertificate) => {
                request.not_before = now - time::Duration::days(400);
                request.not_after = now - time::Duration::days(1);
            }
            _ => {}
        }
        let der = match self.authority.issue(request) {
            Ok(der) => der,
            Err(e) => {
                return okta_error(500, "E0000009", &format!("Internal Server Error: {e}"), &[])
            }
        };
        self.issued.push(IssuedRecord {
            device_uuid: uuid.to_owned(),
            certificate_der: der.clone(),
            via,
            renewed: false,
        });
        let encoded = BASE64.encode(der);
        let encoded = if fault == Some(&Fault::MimeWrappedBase64) {
            // Lines of 76 characters with CRLF, as a MIME encoder writes them.
            encoded
                .as_bytes()
                .chunks(76)
                .map(|line| format!("{}\r\n", String::from_utf8_lossy(line)))
                .collect()
        } else {
            encoded
        };
        Response::json(200, json!({ "issuedCertificate": encoded }))
    }
}

/// The answer a fault replaces the whole response with, if it is that kind of fault.
fn canned_answer(fault: &Fault, endpoint: Endpoint) -> Option<Response> {
    let field = match endpoint {
        Endpoint::Discovery => "issuer",
        Endpoint::Metadata => "certAuthDomain",
        _ => "issuedCertificate",
    };
    Some(match fault {
        Fault::Status(code) => {
            let (error_code, summary) = match code {
                401 => ("E0000011", "Invalid token provided"),
                403 => (
                    "E0000006",
                    "You do not have permission to perform the requested action",
                ),
                404 => ("E0000007", "Not found: Resource not found"),
                400..=499 => ("E0000001", "Api validation failed"),
                _ => ("E0000009", "Internal Server Error"),
            };
            okta_error(*code, error_code, summary, &[])
        }
        Fault::RateLimited { reset_in_secs } => {
            let mut r = okta_error(
                429,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
                &[],
            );
            let reset = OffsetDateTime::now_utc().unix_timestamp() + *reset_in_secs as i64;
            r.headers.push(("X-Rate-Limit-Reset", reset.to_string()));
            r
        }
        Fault::MalformedJson => {
            Response::raw(200, "application/json", &format!("{{\"{field}\": \"MII"))
        }
        Fault::HtmlBody => Response::raw(
            200,
            "text/html",
            "<html><head><title>Access denied</title></head><body>Blocked by proxy</body></html>",
        ),
        Fault::Redirect { status, location } => {
            let mut r = Response::raw(*status, "text/html", "<html><body>Moved</body></html>");
            r.headers.push(("Location", location.clone()));
            r
        }
        Fault::MissingField => Response::json(200, json!({ "status": "ok" })),
        Fault::BadBase64 => Response::json(200, json!({ field: "%%% not base64 %%%" })),
        _ => return None,
    })
}

/// Okta's API is picky about what it is sent: so is the simulator.
fn check_headers(req: &Request, endpoint: Endpoint) -> Option<Response> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if !header("user-agent").is_some_and(|ua| ua.starts_with(USER_AGENT_PRODUCT)) {
        return Some(okta_error(
            400,
            "E0000001",
            "Api validation failed: User-Agent",
            &["User-Agent: not the Okta Device Registration Task".into()],
        ));
    }
    if !header("accept").is_some_and(|a| a.contains("application/json")) {
        return Some(okta_error(
            406,
            "E0000001",
            "Api validation failed: Accept",
            &[],
        ));
    }
    if endpoint == Endpoint::Metadata {
        if req.query.as_deref() != Some("platform=macos") {
            return Some(okta_error(
                400,
                "E0000001",
                "Api validation failed: platform",
                &[],
            ));
        }
        return None;
    }
    let json_body = header("content-type").is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json_body {
        return Some(okta_error(
            415,
            "E0000001",
            "Unsupported Media Type: the request body must be application/json",
            &[],
        ));
    }
    None
}

fn metadata(cert_auth_host: &str) -> Response {
    Response::json(
        200,
        json!({ "certAuthDomain": format!("https://{cert_auth_host}") }),
    )
}

struct Body {
    secret: String,
    uuid: String,
    display_name: String,
    csr: String,
}

/// The fields both requests share, plus the credential field (`orgToken` or the renewal token).
fn parse_body(raw: &[u8], credential: &[&str]) -> Result<Body, Response> {
    let Ok(v) = serde_json::from_slice::<Value>(raw) else {
        return Err(okta_error(
            400,
            "E0000003",
            "The request body was not well-formed.",
            &[],
        ));
    };
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(&v, |node, key| node.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let required: [&[&str]; 6] = [
        &["clientVersion"],
        credential,
        &["device", "uuid"],
        &["device", "displayName"],
        &["csr"],
        &["user"],
    ];
    let missing: Vec<String> = required
        .iter()
        .filter(|p| text(p).is_none())
        .map(|p| format!("{}: The field cannot be left blank", p.join(".")))
        .collect();
    if !missing.is_empty() {
        return Err(validation_failed(&missing));
    }
    Ok(Body {
        secret: text(credential).unwrap_or_default(),
        uuid: text(&["device", "uuid"]).unwrap_or_default(),
        display_name: text(&["device", "displayName"]).unwrap_or_default(),
        csr: text(&["csr"]).unwrap_or_default(),
    })
}

/// Okta's device-trust CA accepts what its own task sends: a signed RSA-2048 CSR for Okta MTLS.
fn check_csr(b64: &str) -> Result<Vec<u8>, Response> {
    let fail = |cause: String| validation_failed(&[format!("csr: {cause}")]);
    let der = BASE64
        .decode(b64.trim())
        .map_err(|_| fail("not valid base64".into()))?;
    let info = pki::verify_csr(&der).map_err(|e| fail(e.to_string()))?;
    if info.subject_cn.as_deref() != Some(OKTA_SUBJECT_CN) {
        return Err(fail(format!(
            "the subject must be CN={OKTA_SUBJECT_CN}, not {:?}",
            info.subject
        )));
    }
    match crate::pki::key::rsa_public_key_from_der(&info.public_key_der) {
        Ok(k) if k.bits() == 2048 => Ok(info.public_key_der),
        Ok(k) => Err(fail(format!(
            "an RSA 2048 key is required, not {} bits",
            k.bits()
        ))),
        Err(_) => Err(fail("an RSA 2048 key is required".into())),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{build_csr, sign_renewal_token, CsrProfile, RenewalClaims};
    use std::sync::OnceLock;

    const TOKEN: &str = "org-secret";
    const UUID: &str = "A1B2C3D4-0000-4000-8000-000000000001";
    const NAME: &str = "Unit Mac";

    fn key() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate_rsa(2048).unwrap())
    }

    fn other_key() -> &'static PrivateKey {
        static KEY: OnceLock<PrivateKey> = OnceLock::new();
        KEY.get_or_init(|| PrivateKey::generate_rsa(2048).unwrap())
    }

    fn service() -> Service {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/pki-fixtures/");
        let read = |n: &str| std::fs::read_to_string(format!("{fixtures}{n}")).unwrap();
        let ca = Authority::from_pem(&read("mtls-ca.pem"), &read("mtls-ca.key")).unwrap();
        Service::new(TOKEN.into(), Duration::from_secs(365 * 86400), ca)
    }

    fn headers() -> Vec<(String, String)> {
        vec![
            (
                "user-agent".into(),
                "Okta Device Registration Task/1.3.3 (Macintosh; ARM Mac OS X 10_15_7)".into(),
            ),
            ("accept".into(), "application/json".into()),
            ("content-type".into(), "application/json".into()),
        ]
    }

    fn post(path: &str, body: &Value) -> Request {
        Request {
            method: "POST".into(),
            path: path.into(),
            query: None,
            headers: headers(),
            body: body.to_string().into_bytes(),
        }
    }

    fn csr_b64(key: &PrivateKey, profile: &CsrProfile) -> String {
        BASE64.encode(build_csr(profile, key).unwrap())
    }

    fn enroll_body(key: &PrivateKey) -> Value {
        json!({
            "clientVersion": "1.3.3",
            "orgToken": TOKEN,
            "device": {"uuid": UUID, "displayName": NAME},
            "csr": csr_b64(key, &CsrProfile::okta()),
            "user": "alice",
        })
    }

    fn error(r: &Response) -> (u16, String, String) {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let causes = v["errorCauses"].to_string();
        (
            r.status,
            v["errorCode"].as_str().unwrap_or_default().to_owned(),
            format!(
                "{} {causes}",
                v["errorSummary"].as_str().unwrap_or_default()
            ),
        )
    }

    /// Enrolls `key` and returns the issued certificate.
    fn enrolled(s: &mut Service, key: &PrivateKey) -> Vec<u8> {
        let r = s.handle(post(ENROLL_PATH, &enroll_body(key)));
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        BASE64
            .decode(v["issuedCertificate"].as_str().unwrap())
            .unwrap()
    }

    fn renew_body(token: &[u8], new_key: &PrivateKey) -> Value {
        json!({
            "clientVersion": "1.3.3",
            "deviceRenewalToken": BASE64.encode(token),
            "device": {"uuid": UUID, "displayName": NAME},
            "csr": csr_b64(new_key, &CsrProfile::okta()),
            "user": "alice",
        })
    }

    fn token(cert: &[u8], key: &PrivateKey, claims: RenewalClaims) -> Vec<u8> {
        sign_renewal_token(&claims, cert, key).unwrap()
    }

    fn now() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_good_enrollment_is_issued_and_logged() {
        let mut s = service();
        let cert = enrolled(&mut s, key());
        let info = CertificateInfo::parse(&cert).unwrap();
        assert_eq!(info.subject_cn.as_deref(), Some("Okta MTLS"));
        assert_eq!(
            info.issuer_cn.as_deref(),
            Some("MTLS Certificate Authority")
        );
        assert_eq!(info.public_key_der, key().public_key_der().unwrap());
        assert_eq!(s.requests.len(), 1);
        assert_eq!(s.requests[0].status, 200);
    }

    #[test]
    fn a_wrong_org_token_is_refused_as_okta_does() {
        let mut s = service();
        let mut body = enroll_body(key());
        body["orgToken"] = json!("guess");
        let (status, code, summary) = error(&s.handle(post(ENROLL_PATH, &body)));
        assert_eq!((status, code.as_str()), (401, "E0000011"));
        assert!(summary.starts_with("Invalid token provided"), "{summary}");
        assert!(s.issued.is_empty());
    }

    #[test]
    fn each_missing_field_is_named() {
        for path in [
            &["clientVersion"][..],
            &["orgToken"],
            &["device", "uuid"],
            &["device", "displayName"],
            &["csr"],
            &["user"],
        ] {
            let mut s = service();
            let mut body = enroll_body(key());
            match path {
                [field] => body.as_object_mut().unwrap().remove(*field),
                [outer, inner] => body[*outer].as_object_mut().unwrap().remove(*inner),
                _ => unreachable!(),
            };
            let (status, code, summary) = error(&s.handle(post(ENROLL_PATH, &body)));
            assert_eq!((status, code.as_str()), (400, "E0000001"), "{path:?}");
            assert!(summary.contains(&path.join(".")), "{path:?}: {summary}");
        }
    }

    #[test]
    fn wrong_content_type_accept_or_user_agent_are_refused() {
        for (header, value, status) in [
            ("content-type", "application/x-www-form-urlencoded", 415),
            ("accept", "text/html", 406),
            ("user-agent", "curl/8.0", 400),
        ] {
            let mut s = service();
            let mut req = post(ENROLL_PATH, &enroll_body(key()));
            req.headers.retain(|(n, _)| n != header);
            req.headers.push((header.into(), value.into()));
            assert_eq!(s.handle(req).status, status, "{header}");
            assert!(s.issued.is_empty());
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_refused() {
        let mut s = service();
        let mut req = post(ENROLL_PATH, &json!({}));
        req.body = b"orgToken=x".to_vec();
        let (status, code, _) = error(&s.handle(req));
        assert_eq!((status, code.as_str()), (400, "E0000003"));
    }

    #[test]
    fn a_csr_whose_signature_fails_is_refused() {
        let mut s = service();
        let mut der = build_csr(&CsrProfile::okta(), key()).unwrap();
        // Flip one bit inside the subject: still DER, no longer what was signed.
        let at = der.windows(4).position(|w| w == b"Okta").unwrap();
        der[at] ^= 0x20;
        let mut body = enroll_body(key());
        body["csr"] = json!(BASE64.encode(der));
        let (status, _, summary) = error(&s.handle(post(ENROLL_PATH, &body)));
        assert_eq!(status, 400);
        assert!(summary.contains("csr"), "{summary}");
    }

    #[test]
    fn a_subject_other_than_okta_mtls_is_refused() {
        let mut s = service();
        let profile = CsrProfile {
            subject: "CN=Somebody Else,O=Okta".into(),
            ..CsrProfile::okta()
        };
        let mut body = enroll_body(key());
        body["csr"] = json!(csr_b64(key(), &profile));
        let (status, _, summary) = error(&s.handle(post(ENROLL_PATH, &body)));
        assert_eq!(status, 400);
        assert!(summary.contains("CN=Okta MTLS"), "{summary}");
    }

    #[test]
    fn only_rsa_2048_keys_are_accepted() {
        let mut s = service();
        let large = PrivateKey::generate_rsa(3072).unwrap();
        let (status, _, summary) = error(&s.handle(post(ENROLL_PATH, &enroll_body(&large))));
        assert_eq!(status, 400);
        assert!(
            summary.contains("RSA 2048") && summary.contains("3072"),
            "{summary}"
        );
    }

    #[test]
    fn a_sixth_unbound_certificate_is_refused_with_oktas_message() {
        let mut s = service();
        for _ in 0..MAX_UNBOUND_CERTIFICATES {
            enrolled(&mut s, key());
        }
        let (status, _, summary) = error(&s.handle(post(ENROLL_PATH, &enroll_body(key()))));
        assert_eq!(status, 400);
        assert!(summary
            .starts_with("Maximum enrollment limit of 5 certificates for a device is reached"));
    }

    #[test]
    fn a_good_renewal_is_issued_and_replaces_the_old_certificate_in_the_count() {
        let mut s = service();
        let cert = enrolled(&mut s, key());
        let t = token(&cert, key(), RenewalClaims::new(UUID, NAME, now()));
        let r = s.handle(post(RENEW_PATH, &renew_body(&t, other_key())));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(s.issued[0].renewed && !s.issued[1].renewed);
    }

    #[test]
    fn a_renewal_token_from_a_certificate_it_did_not_issue_is_refused() {
        let mut s = service();
        enrolled(&mut s, key());
        // Same CA, same key, but not a certificate this service issued to the device.
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/pki-fixtures/");
        let cert = CertificateInfo::from_pem(
            &std::fs::read_to_string(format!("{fixtures}device.pem")).unwrap(),
        )
        .unwrap();
        let device_key = PrivateKey::from_pkcs8_pem(
            &std::fs::read_to_string(format!("{fixtures}device.key")).unwrap(),
        )
        .unwrap();
        let t = token(
            &cert.der,
            &device_key,
            RenewalClaims::new(UUID, NAME, now()),
        );
        let (status, code, summary) =
            error(&s.handle(post(RENEW_PATH, &renew_body(&t, other_key()))));
        assert_eq!((status, code.as_str()), (401, "E0000011"));
        assert!(
            summary.contains("not signed by a certificate issued to this device"),
            "{summary}"
        );
    }

    #[test]
    fn a_renewal_token_out_of_its_time_window_is_refused() {
        let stale = RenewalClaims::new(UUID, NAME, now() - 2 * 3600);
        let future = RenewalClaims::new(UUID, NAME, now() + 2 * 3600);
        let mut too_long = RenewalClaims::new(UUID, NAME, now());
        too_long.exp += 24 * 3600;
        // `exp + SKEW` overflowed (a panic in debug builds, a wrapped comparison in release).
        let mut never_expires = RenewalClaims::new(UUID, NAME, now());
        never_expires.exp = i64::MAX;
        for claims in [stale, future, too_long, never_expires] {
            let mut s = service();
            let cert = enrolled(&mut s, key());
            let t = token(&cert, key(), claims.clone());
            let (status, _, summary) =
                error(&s.handle(post(RENEW_PATH, &renew_body(&t, other_key()))));
            assert_eq!(status, 401, "{claims:?}");
            assert!(summary.contains("window"), "{claims:?}: {summary}");
        }
    }

    #[test]
    fn a_renewal_token_for_another_device_is_refused() {
        let mut s = service();
        let cert = enrolled(&mut s, key());
        let t = token(
            &cert,
            key(),
            RenewalClaims::new("SOME-OTHER-UUID", NAME, now()),
        );
        let (status, _, summary) = error(&s.handle(post(RENEW_PATH, &renew_body(&t, other_key()))));
        assert_eq!(status, 401);
        assert!(summary.contains("another device"), "{summary}");
    }

    #[test]
    fn a_tampered_renewal_token_is_refused() {
        let mut s = service();
        let cert = enrolled(&mut s, key());
        let mut t = token(&cert, key(), RenewalClaims::new(UUID, NAME, now()));
        let at = t.windows(4).position(|w| w == b"Unit").unwrap();
        t[at] = b'X';
        let (status, code, _) = error(&s.handle(post(RENEW_PATH, &renew_body(&t, other_key()))));
        assert_eq!((status, code.as_str()), (401, "E0000011"));
    }

    #[test]
    fn a_renewal_signed_by_an_expired_certificate_is_refused() {
        let mut s = service();
        s.faults.push(Injection::new(
            Endpoint::Enroll,
            Fault::ExpiredCertificate,
            Some(1),
        ));
        let cert = enrolled(&mut s, key());
        let t = token(&cert, key(), RenewalClaims::new(UUID, NAME, now()));
        let (status, _, summary) = error(&s.handle(post(RENEW_PATH, &renew_body(&t, other_key()))));
        assert_eq!(status, 401);
        assert!(summary.contains("expired"), "{summary}");
    }

    #[test]
    fn a_renewal_must_carry_a_new_key() {
        let mut s = service();
        let cert = enrolled(&mut s, key());
        let t = token(&cert, key(), RenewalClaims::new(UUID, NAME, now()));
        let (status, _, summary) = error(&s.handle(post(RENEW_PATH, &renew_body(&t, key()))));
        assert_eq!(status, 400);
        assert!(summary.contains("new key"), "{summary}");
    }

    #[test]
    fn a_renewal_does_not_take_an_org_token() {
        let mut s = service();
        let mut body = enroll_body(key());
        body.as_object_mut().unwrap().remove("orgToken");
        body["deviceRenewalToken"] = json!("");
        let (status, _, summary) = error(&s.handle(post(RENEW_PATH, &body)));
        assert_eq!(status, 400);
        assert!(summary.contains("deviceRenewalToken"), "{summary}");
    }

    #[test]
    fn metadata_needs_the_platform_and_answers_the_cert_auth_domain() {
        let mut s = service();
        let get = |query: Option<&str>| Request {
            method: "GET".into(),
            path: METADATA_PATH.into(),
            query: query.map(Into::into),
            headers: headers(),
            body: Vec::new(),
        };
        assert_eq!(s.handle(get(None)).status, 400);
        let r = s.handle(get(Some("platform=macos")));
        assert_eq!(r.status, 200);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["certAuthDomain"], format!("https://{CERT_AUTH_HOST}"));
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let mut s = service();
        let mut req = post("/api/v1/users", &json!({}));
        assert_eq!(s.handle(req).status, 404);
        req = post(METADATA_PATH, &json!({}));
        assert_eq!(s.handle(req).status, 405);
    }

    #[test]
    fn one_shot_faults_count_down_and_persistent_ones_stay() {
        let mut s = service();
        s.faults.push(Injection::new(
            Endpoint::Enroll,
            Fault::Status(503),
            Some(2),
        ));
        assert_eq!(s.handle(post(ENROLL_PATH, &enroll_body(key()))).status, 503);
        assert_eq!(s.handle(post(ENROLL_PATH, &enroll_body(key()))).status, 503);
        assert_eq!(s.handle(post(ENROLL_PATH, &enroll_body(key()))).status, 200);
        s.faults
            .push(Injection::new(Endpoint::Enroll, Fault::HtmlBody, None));
        for _ in 0..3 {
            assert_eq!(
                s.handle(post(ENROLL_PATH, &enroll_body(key())))
                    .content_type,
                "text/html"
            );
        }
    }
}
