//! The JSON bodies of the Okta Device Trust API (protocol spec §2-4), field for field. The org
//! token stays a `Secret` inside the request body and is exposed only by the serialiser.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize, Serializer};

use crate::secret::Secret;

/// The Okta task version whose behaviour this agent reproduces; Okta may key behaviour on it.
pub const CLIENT_VERSION: &str = "1.3.3";

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceBody<'a> {
    pub uuid: &'a str,
    pub display_name: &'a str,
}

/// `POST .../enroll/macos`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollBody<'a> {
    pub client_version: &'static str,
    #[serde(serialize_with = "expose_secret")]
    pub org_token: &'a Secret,
    pub device: DeviceBody<'a>,
    /// Base64 (standard alphabet, padded) of the DER PKCS#10.
    pub csr: String,
    pub user: &'a str,
}

impl<'a> EnrollBody<'a> {
    pub fn new(
        org_token: &'a Secret,
        device: DeviceBody<'a>,
        csr_der: &[u8],
        user: &'a str,
    ) -> Self {
        EnrollBody {
            client_version: CLIENT_VERSION,
            org_token,
            device,
            csr: STANDARD.encode(csr_der),
            user,
        }
    }
}

/// `POST .../renew/macos`: as enrollment, with the device's CMS-signed token instead of the org's.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewBody<'a> {
    pub client_version: &'static str,
    /// Base64 of the DER CMS SignedData; not a secret (it is short-lived and signed, not bearer).
    pub device_renewal_token: String,
    pub device: DeviceBody<'a>,
    pub csr: String,
    pub user: &'a str,
}

impl<'a> RenewBody<'a> {
    pub fn new(
        renewal_token_der: &[u8],
        device: DeviceBody<'a>,
        csr_der: &[u8],
        user: &'a str,
    ) -> Self {
        RenewBody {
            client_version: CLIENT_VERSION,
            device_renewal_token: STANDARD.encode(renewal_token_der),
            device,
            csr: STANDARD.encode(csr_der),
            user,
        }
    }
}

fn expose_secret<S: Serializer>(secret: &&Secret, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret.expose())
}

/// The 200 answer of enroll and renew. Optional here so that a missing field is reported as
/// such, not as a generic parse error.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCertificate {
    #[serde(default)]
    pub issued_certificate: Option<String>,
}

/// The 200 answer of the metadata endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataBody {
    #[serde(default)]
    pub cert_auth_domain: Option<String>,
}

/// The part of the OpenID discovery document the reachability probe looks at.
#[derive(Debug, Deserialize)]
pub struct DiscoveryBody {
    #[serde(default)]
    pub issuer: Option<String>,
}

/// Okta's error object, sent with non-2xx statuses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaErrorBody {
    #[serde(default)]
    pub error_code: String,
    pub error_summary: String,
    #[serde(default)]
    pub error_link: Option<String>,
    #[serde(default)]
    pub error_id: Option<String>,
    #[serde(default)]
    pub error_causes: Vec<ErrorCause>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCause {
    #[serde(default)]
    pub error_summary: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const DEVICE: DeviceBody<'static> = DeviceBody {
        uuid: "564D8F7A-1B2C-4D5E-8F90-A1B2C3D4E5F6",
        display_name: "Ada's MacBook Pro",
    };

    #[test]
    fn enroll_body_matches_the_spec() {
        let token = Secret::new("00aBcD-org-token");
        let body = EnrollBody::new(&token, DEVICE, &[0x30, 0x82, 0x01, 0xff], "ada");
        let v: Value = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "clientVersion": "1.3.3",
                "orgToken": "00aBcD-org-token",
                "device": {"uuid": "564D8F7A-1B2C-4D5E-8F90-A1B2C3D4E5F6", "displayName": "Ada's MacBook Pro"},
                "csr": "MIIB/w==",
                "user": "ada"
            })
        );
        // Field order as in the spec (Okta should not care, but the old task sent it so).
        let text = serde_json::to_string(&body).unwrap();
        let order: Vec<usize> = ["clientVersion", "orgToken", "device", "csr", "user"]
            .iter()
            .map(|k| text.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn enroll_body_debug_hides_the_token() {
        let token = Secret::new("00aBcD-org-token");
        let body = EnrollBody::new(&token, DEVICE, b"csr", "ada");
        let debug = format!("{body:?} {body:#?}");
        assert!(!debug.contains("00aBcD-org-token"), "{debug}");
        assert!(debug.contains("[redacted]"));
    }

    #[test]
    fn renew_body_matches_the_spec() {
        let body = RenewBody::new(&[1, 2, 3], DEVICE, &[0xfb, 0xff], "ada");
        let v: Value = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v,
            json!({
                "clientVersion": "1.3.3",
                "deviceRenewalToken": "AQID",
                "device": {"uuid": "564D8F7A-1B2C-4D5E-8F90-A1B2C3D4E5F6", "displayName": "Ada's MacBook Pro"},
                "csr": "+/8=",
                "user": "ada"
            })
        );
        assert!(v.get("orgToken").is_none());
    }

    #[test]
    fn answers_parse() {
        let c: IssuedCertificate = serde_json::from_str(r#"{"issuedCertificate":"MIIB"}"#).unwrap();
        assert_eq!(c.issued_certificate.as_deref(), Some("MIIB"));
        let c: IssuedCertificate = serde_json::from_str(r#"{"other":1}"#).unwrap();
        assert_eq!(c.issued_certificate, None);
        let m: MetadataBody =
            serde_json::from_str(r#"{"certAuthDomain":"https://ok1-devicetrust.okta.com"}"#)
                .unwrap();
        assert_eq!(
            m.cert_auth_domain.as_deref(),
            Some("https://ok1-devicetrust.okta.com")
        );
        let e: OktaErrorBody = serde_json::from_str(
            r#"{"errorCode":"E0000001","errorSummary":"Api validation failed: csr","errorLink":"E0000001",
                "errorId":"oaeXyz","errorCauses":[{"errorSummary":"csr: The CSR is invalid."}]}"#,
        )
        .unwrap();
        assert_eq!(e.error_code, "E0000001");
        assert_eq!(e.error_summary, "Api validation failed: csr");
        assert_eq!(e.error_id.as_deref(), Some("oaeXyz"));
        assert_eq!(e.error_link.as_deref(), Some("E0000001"));
        assert_eq!(e.error_causes[0].error_summary, "csr: The CSR is invalid.");
        assert!(serde_json::from_str::<OktaErrorBody>(r#"{"message":"nope"}"#).is_err());
    }
}
