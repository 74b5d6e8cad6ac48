//! A simulated SCEP CA for the unit tests: `pki::Authority` answers GetCACaps, GetCACert and
//! PKIOperation through the client's `Transport` seam, well or in chosen broken ways.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use time::OffsetDateTime;

use super::cacert::degenerate_pkcs7;
use super::client::{Response, Transport};
use super::envelope::{self, ContentCipher};
use super::message::{
    sign_pki_message, transient_certificate, verify_pki_message, FailInfo, MessageDigest,
    MessageType, PkiStatus, ScepAttributes, Signer,
};
use super::{Operation, ScepError};
use crate::pki::{verify_csr, Authority, IssueProfile, IssueRequest, PrivateKey};

/// How the CA answers PKIOperation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    Issue,
    Fail(FailInfo),
    /// PENDING this many times (request and polls alike), then SUCCESS.
    PendingThen(u32),
    WrongTransactionId,
    WrongRecipientNonce,
    /// Signed by a key that is not the CA's.
    ForgedSignature,
    /// Signed by an unrelated key whose own certificate travels in the answer: it verifies
    /// by itself, just not as the CA.
    UnrelatedSigner,
    /// A well-signed answer carrying a certificate that another CA (named like this one)
    /// signed.
    ForeignIssuer,
}

pub(crate) struct State {
    pub behaviour: Behaviour,
    pub caps: String,
    pub challenge: Option<String>,
    /// (operation, SCEP messageType of a PKIOperation, HTTP method).
    pub log: Vec<(String, Option<MessageType>, &'static str)>,
    pub pending_left: u32,
    /// The cipher and digest of the last request, as the CA saw them.
    pub last_request: Option<(String, MessageDigest)>,
    /// GetCACaps answered with this HTTP status instead (a CA that predates the operation).
    pub caps_status: Option<u16>,
    /// How far the CA's clock (its `Date` header) is from the real one.
    pub clock_offset: time::Duration,
}

#[derive(Clone)]
pub(crate) struct FakeCa {
    pub authority: &'static Authority,
    pub forger: &'static PrivateKey,
    pub state: Arc<Mutex<State>>,
}

impl FakeCa {
    pub fn new(
        authority: &'static Authority,
        forger: &'static PrivateKey,
        caps: &str,
        behaviour: Behaviour,
    ) -> Self {
        let pending_left = match behaviour {
            Behaviour::PendingThen(n) => n,
            _ => 0,
        };
        FakeCa {
            authority,
            forger,
            state: Arc::new(Mutex::new(State {
                behaviour,
                caps: caps.to_owned(),
                challenge: Some("s3cret-challenge".into()),
                log: Vec::new(),
                pending_left,
                last_request: None,
                caps_status: None,
                clock_offset: time::Duration::ZERO,
            })),
        }
    }

    pub fn log(&self) -> Vec<(String, Option<MessageType>, &'static str)> {
        self.state.lock().unwrap().log.clone()
    }

    fn pki_operation(&self, message: &[u8]) -> Vec<u8> {
        let request = verify_pki_message(message, None).unwrap();
        let (content, cipher) =
            envelope::open(request.content.as_deref().unwrap(), self.authority.key()).unwrap();
        let mut state = self.state.lock().unwrap();
        state.log.last_mut().unwrap().1 = Some(request.attributes.message_type);
        state.last_request = Some((cipher.to_owned(), request.digest));

        let mut status = PkiStatus::Success;
        let mut fail_info = None;
        let mut certificate = None;
        match request.attributes.message_type {
            MessageType::PkcsReq | MessageType::RenewalReq => {
                let csr = verify_csr(&content).unwrap();
                let challenge_ok = request.attributes.message_type == MessageType::RenewalReq
                    || csr.challenge_password == state.challenge;
                if !challenge_ok {
                    status = PkiStatus::Failure;
                    fail_info = Some(FailInfo::BadRequest);
                } else if state.behaviour == Behaviour::ForeignIssuer {
                    certificate = Some(issue(&self.impostor(), &csr.subject, csr.public_key_der));
                } else {
                    certificate = Some(issue(self.authority, &csr.subject, csr.public_key_der));
                }
            }
            MessageType::CertPoll => {
                // The test CA remembers nothing: it issues for the poller's own key.
                let signer =
                    crate::pki::CertificateInfo::parse(&request.signer_certificate_der).unwrap();
                certificate = Some(issue(self.authority, "CN=polled", signer.public_key_der));
            }
            other => panic!("unexpected {other:?}"),
        }
        match state.behaviour.clone() {
            Behaviour::Fail(info) => {
                status = PkiStatus::Failure;
                fail_info = Some(info);
            }
            Behaviour::PendingThen(_) if state.pending_left > 0 => {
                state.pending_left -= 1;
                status = PkiStatus::Pending;
            }
            _ => {}
        }

        let mut attributes = ScepAttributes::request(MessageType::CertRep, "");
        attributes.transaction_id = request.attributes.transaction_id.clone();
        attributes.recipient_nonce = Some(request.attributes.sender_nonce.clone());
        attributes.pki_status = Some(status);
        attributes.fail_info = fail_info;
        match state.behaviour {
            Behaviour::WrongTransactionId => attributes.transaction_id = "other".into(),
            Behaviour::WrongRecipientNonce => attributes.recipient_nonce = Some(vec![0; 16]),
            _ => {}
        }
        let content = match (status, certificate) {
            (PkiStatus::Success, Some(cert)) => {
                let bundle = degenerate_pkcs7(&[cert]).unwrap();
                // Encrypted to the request's signer, as every SCEP CA does.
                Some(
                    envelope::seal(
                        &bundle,
                        &request.signer_certificate_der,
                        ContentCipher::Aes128Cbc,
                    )
                    .unwrap(),
                )
            }
            _ => None,
        };
        let (signer, signer_certificate) = match state.behaviour {
            Behaviour::ForgedSignature => (
                Signer::InMemory(self.forger),
                self.authority.certificate_der().to_vec(),
            ),
            Behaviour::UnrelatedSigner => (
                Signer::InMemory(self.forger),
                transient_certificate("CN=unrelated signer", Signer::InMemory(self.forger))
                    .unwrap(),
            ),
            _ => (
                Signer::InMemory(self.authority.key()),
                self.authority.certificate_der().to_vec(),
            ),
        };
        sign_pki_message(
            &attributes,
            content.as_deref(),
            &signer_certificate,
            signer,
            MessageDigest::Sha256,
        )
        .unwrap()
    }

    /// A CA with the forger's key and this CA's name.
    fn impostor(&self) -> Authority {
        let name = crate::pki::CertificateInfo::parse(self.authority.certificate_der())
            .unwrap()
            .subject_cn
            .unwrap();
        let key = PrivateKey::from_pkcs8_der(&self.forger.to_pkcs8_der().unwrap()).unwrap();
        Authority::self_signed_with_key(key, &name, std::time::Duration::from_secs(86_400)).unwrap()
    }
}

fn issue(authority: &Authority, subject: &str, public_key_der: Vec<u8>) -> Vec<u8> {
    let now = OffsetDateTime::now_utc();
    authority
        .issue(IssueRequest {
            subject: subject.to_owned(),
            public_key_der,
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(30),
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .unwrap()
}

impl Transport for FakeCa {
    fn get(
        &self,
        op: Operation,
        operation: &str,
        message: Option<&str>,
    ) -> Result<Response, ScepError> {
        self.state
            .lock()
            .unwrap()
            .log
            .push((operation.to_owned(), None, "GET"));
        let caps_status = self.state.lock().unwrap().caps_status;
        if let (Some(status), "GetCACaps") = (caps_status, operation) {
            return Err(ScepError::HttpStatus {
                op,
                status,
                url: "http://ca.test/scep".into(),
                snippet: String::new(),
            });
        }
        let server_time = Some(OffsetDateTime::now_utc() + self.state.lock().unwrap().clock_offset);
        Ok(match operation {
            "GetCACaps" => Response {
                content_type: Some("text/plain".into()),
                body: self.state.lock().unwrap().caps.clone().into_bytes(),
                server_time,
            },
            "GetCACert" => Response {
                content_type: Some("application/x-x509-ca-cert".into()),
                body: self.authority.certificate_der().to_vec(),
                server_time,
            },
            "PKIOperation" => Response {
                content_type: Some("application/x-pki-message".into()),
                body: self.pki_operation(&STANDARD.decode(message.unwrap()).unwrap()),
                server_time,
            },
            other => panic!("unexpected operation {other}"),
        })
    }

    fn post(&self, _op: Operation, operation: &str, body: &[u8]) -> Result<Response, ScepError> {
        assert_eq!(operation, "PKIOperation");
        self.state
            .lock()
            .unwrap()
            .log
            .push((operation.to_owned(), None, "POST"));
        Ok(Response {
            content_type: Some("application/x-pki-message".into()),
            body: self.pki_operation(body),
            server_time: None,
        })
    }
}
