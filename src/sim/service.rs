//! The simulator's behaviour: one request in, one response out, plus the request log and the
//! record of issued certificates. No sockets here, so every rule is easy to read and to test.

use super::faults::{self, Endpoint, Fault, Injection};
use super::{CERT_AUTH_HOST, MAX_UNBOUND_CERTIFICATES};
use crate::agent::OKTA_SUBJECT_CN;
use crate::pki::{self, Authority, CertificateInfo, IssueProfile, IssueRequest, PrivateKey};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;
use time::OffsetDateTime;

const METADATA_PATH: &str = "/api/internal/v1/device-trust/metadata";
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
}

impl Response {
    fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
            delay: None,
        }
    }

    fn raw(status: u16, content_type: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            delay: None,
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
            requests: Vec::new(),
            issued: Vec::new(),
            faults: Vec::new(),
            authority,
        }
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
        if let Some(canned) = fault.as_ref().and_then(|f| canned_answer(f, endpoint)) {
            return canned;
        }
        if let Some(refusal) = check_headers(req, endpoint) {
            return refusal;
        }
        let mut response = match endpoint {
            Endpoint::Metadata => metadata(req),
            Endpoint::Enroll => self.enroll(req, fault.as_ref()),
            Endpoint::Renew => self.renew(req, fault.as_ref()),
        };
        if let Some(Fault::Slow(d)) = fault {
            response.delay = Some(d);
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
        let now = OffsetDateTime::now_utc();
        match CertificateInfo::parse(&verified.signer_certificate_der) {
            Ok(info) if info.is_valid_at(now) => {}
            _ => return invalid_token("the certificate that signed the renewal token has expired"),
        }
        let claims = &verified.claims;
        if claims.device.uuid != body.uuid || claims.device.display_name != body.display_name {
            return invalid_token("the renewal token names another device");
        }
        let t = now.unix_timestamp();
        let window_ok = claims.nbf <= t + SKEW
            && t <= claims.exp + SKEW
            && claims.iat <= t + SKEW
            && claims.exp - claims.iat <= MAX_TOKEN_LIFETIME
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
        let now = OffsetDateTime::now_utc();
        let mut request = IssueRequest {
            subject: format!("CN={OKTA_SUBJECT_CN}"),
            public_key_der: public_key_der.to_vec(),
            not_before: now - time::Duration::minutes(5),
            not_after: now + self.validity,
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
        Response::json(200, json!({ "issuedCertificate": BASE64.encode(der) }))
    }
}

/// The answer a fault replaces the whole response with, if it is that kind of fault.
fn canned_answer(fault: &Fault, endpoint: Endpoint) -> Option<Response> {
    let field = match endpoint {
        Endpoint::Metadata => "certAuthDomain",
        _ => "issuedCertificate",
    };
    Some(match fault {
        Fault::Status(code) => okta_error(*code, "E0000009", "Internal Server Error", &[]),
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

fn metadata(_req: &Request) -> Response {
    Response::json(
        200,
        json!({ "certAuthDomain": format!("https://{CERT_AUTH_HOST}") }),
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
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    match rsa::RsaPublicKey::from_public_key_der(&info.public_key_der) {
        Ok(k) if k.size() * 8 == 2048 => Ok(info.public_key_der),
        Ok(k) => Err(fail(format!(
            "an RSA 2048 key is required, not {} bits",
            k.size() * 8
        ))),
        Err(_) => Err(fail("an RSA 2048 key is required".into())),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
