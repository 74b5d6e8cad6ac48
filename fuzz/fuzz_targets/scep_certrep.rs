//! SCEP PKIOperation answers (CertRep): the signed-data the CA sends back, the enveloped-data in
//! it, and the certificate bundle inside that, decrypted with the fixture device key.
//!
//! The first byte picks what the rest is:
//! * `0`: a raw answer body, checked as the client checks it (signer = the fixture CA) and as the
//!   CA side checks a request (signer = the certificate in the message); whatever verifies is
//!   opened and read on.
//! * `1`: a raw EnvelopedData, opened with the device key, and the certs-only bundle inside it.
//! * `2`: a whole enrollment or renewal through `ScepClient` over a transport that answers with
//!   a CertRep the fixture CA really signs, carrying fuzzed status, failInfo, failInfoText and
//!   content: a signature cannot be fuzzed into validity, so this is how the code behind it runs.
//!   Layout: `[flags][status][failInfo]`, then failInfoText and content as two fields.
#![no_main]

use std::sync::{Arc, OnceLock};

use devicetrust::pki::verify_issued_by;
use devicetrust::scep::cacert::certificates_of_degenerate;
use devicetrust::scep::client::{Response, ScepClient, Transport};
use devicetrust::scep::envelope;
use devicetrust::scep::message::{
    certifies, sign_pki_message, verify_pki_message, FailInfo, MessageDigest, MessageType,
    PkiStatus, ScepAttributes, Signer, VerifiedMessage,
};
use devicetrust::scep::{Operation, ScepError, ScepSettings};
use devicetrust::secret::Secret;
use devicetrust_fuzz::{ca, device_certificate_der, device_key, fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => answer(rest),
        1 => open_envelope(rest),
        _ => exchange(rest),
    }
});

fn ca_signers() -> &'static [Vec<u8>] {
    static SIGNERS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SIGNERS.get_or_init(|| vec![ca().certificate_der().to_vec()])
}

fn device_public_key() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| device_key().public_key_der().expect("fixture key"))
}

fn answer(body: &[u8]) {
    match verify_pki_message(body, Some(ca_signers())) {
        Ok(message) => read_verified(message),
        Err(e) => drop(e.to_string()),
    }
    if let Ok(message) = verify_pki_message(body, None) {
        read_verified(message);
    }
}

fn read_verified(message: VerifiedMessage) {
    let _ = format!("{:?}", message.attributes);
    if let Some(info) = message.attributes.fail_info {
        let _ = info.to_string();
    }
    if let Some(content) = message.content {
        open_envelope(&content);
    }
}

fn open_envelope(der: &[u8]) {
    match envelope::open(der, device_key()) {
        Ok((plain, _cipher)) => read_bundle(&plain),
        Err(e) => drop(e.to_string()),
    }
}

fn read_bundle(der: &[u8]) {
    if let Ok(certificates) = certificates_of_degenerate(der) {
        for certificate in &certificates {
            let _ = certifies(certificate, device_public_key());
            let _ = verify_issued_by(certificate, ca().certificate_der());
        }
    }
}

const FLAG_RENEW: u8 = 1;
const FLAG_WRONG_TRANSACTION: u8 = 1 << 1;
const FLAG_NO_RECIPIENT_NONCE: u8 = 1 << 2;
const FLAG_NO_CONTENT: u8 = 1 << 3;
const FLAG_SHA1: u8 = 1 << 4;
const FLAG_GET: u8 = 1 << 5;
const FLAG_NOT_CERTREP: u8 = 1 << 6;
const FLAG_NO_FAIL_INFO: u8 = 1 << 7;

/// What the fuzzed CA answers to every PKIOperation.
struct FuzzCa {
    flags: u8,
    status: Option<PkiStatus>,
    fail_info: Option<FailInfo>,
    fail_info_text: Option<String>,
    content: Vec<u8>,
}

impl FuzzCa {
    fn caps(&self) -> &'static str {
        if self.flags & FLAG_GET != 0 {
            "Renewal\nSHA-256\nAES"
        } else {
            "Renewal\nSHA-256\nAES\nPOSTPKIOperation"
        }
    }

    fn pki_operation(&self, op: Operation, request: &[u8]) -> Result<Response, ScepError> {
        let bad = |what: String| ScepError::BadResponse { op, what };
        // The client's own request: it must verify, or the harness is broken.
        let request = verify_pki_message(request, None).map_err(|e| bad(e.to_string()))?;
        let mut attributes = ScepAttributes::request(MessageType::CertRep, "");
        if self.flags & FLAG_NOT_CERTREP != 0 {
            attributes.message_type = MessageType::PkcsReq;
        }
        attributes.transaction_id = if self.flags & FLAG_WRONG_TRANSACTION != 0 {
            "other".to_owned()
        } else {
            request.attributes.transaction_id.clone()
        };
        if self.flags & FLAG_NO_RECIPIENT_NONCE == 0 {
            attributes.recipient_nonce = Some(request.attributes.sender_nonce.clone());
        }
        attributes.pki_status = self.status;
        attributes.fail_info = self.fail_info;
        attributes.fail_info_text = self.fail_info_text.clone();
        let content = (self.flags & FLAG_NO_CONTENT == 0).then_some(self.content.as_slice());
        let digest = if self.flags & FLAG_SHA1 != 0 {
            MessageDigest::Sha1
        } else {
            MessageDigest::Sha256
        };
        let body = sign_pki_message(
            &attributes,
            content,
            ca().certificate_der(),
            Signer::InMemory(ca().key()),
            digest,
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Response {
            content_type: Some("application/x-pki-message".into()),
            body,
        })
    }
}

impl Transport for FuzzCa {
    fn get(
        &self,
        op: Operation,
        operation: &str,
        message: Option<&str>,
    ) -> Result<Response, ScepError> {
        match operation {
            "GetCACaps" => Ok(Response {
                content_type: Some("text/plain".into()),
                body: self.caps().as_bytes().to_vec(),
            }),
            "GetCACert" => Ok(Response {
                content_type: Some("application/x-x509-ca-cert".into()),
                body: ca().certificate_der().to_vec(),
            }),
            _ => {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(message.unwrap_or_default())
                    .map_err(|e| ScepError::BadResponse {
                        op,
                        what: e.to_string(),
                    })?;
                self.pki_operation(op, &decoded)
            }
        }
    }

    fn post(&self, op: Operation, _operation: &str, body: &[u8]) -> Result<Response, ScepError> {
        self.pki_operation(op, body)
    }
}

fn exchange(data: &[u8]) {
    let [head, text, content] = fields::<3>(data);
    let byte = |i: usize| head.get(i).copied().unwrap_or(0);
    let flags = byte(0);
    let status = match byte(1) % 4 {
        0 => Some(PkiStatus::Success),
        1 => Some(PkiStatus::Failure),
        2 => Some(PkiStatus::Pending),
        _ => None,
    };
    let fail_info = (flags & FLAG_NO_FAIL_INFO == 0).then(|| match byte(2) {
        0 => FailInfo::BadAlg,
        1 => FailInfo::BadMessageCheck,
        2 => FailInfo::BadRequest,
        3 => FailInfo::BadTime,
        4 => FailInfo::BadCertId,
        n => FailInfo::Other(u32::from(n)),
    });
    let fail_info_text = (!text.is_empty()).then(|| String::from_utf8_lossy(text).into_owned());
    let fuzz_ca = FuzzCa {
        flags,
        status,
        fail_info,
        fail_info_text,
        content: content.to_vec(),
    };

    let Ok(url) = url::Url::parse("http://ca.invalid/scep") else {
        return;
    };
    let mut settings = ScepSettings::new(url);
    settings.challenge = Some(Secret::new("fuzz-challenge"));
    // One poll is enough to run the PENDING path; each costs RSA operations.
    settings.retries = 1;
    settings.retry_delay = std::time::Duration::ZERO;
    let client = ScepClient::with_transport(&settings, Box::new(fuzz_ca), Arc::new(|_| {}));
    let result = if flags & FLAG_RENEW != 0 {
        client.renew(device_certificate_der(), device_key(), device_key())
    } else {
        client.enroll(device_key())
    };
    match result {
        Ok(issued) => {
            let _ = certifies(&issued.certificate_der, device_public_key());
        }
        Err(e) => drop(e.to_string()),
    }
}
