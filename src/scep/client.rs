//! The SCEP exchanges over HTTP: GetCACaps, GetCACert, PKCSReq, RenewalReq and CertPoll, and
//! [`enroll`] / [`renew`], the two calls the agent makes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::cacert::{certificates_of_degenerate, sha256_fingerprint_hex, CaCertificates};
use super::caps::Capabilities;
use super::envelope::{self, ContentCipher};
use super::message::{
    certifies, issuer_and_subject, sign_pki_message, transaction_id, transient_certificate,
    verify_pki_message, MessageDigest, MessageError, MessageType, PkiStatus, ScepAttributes,
    Signer, VerifiedMessage,
};
use super::settings::ScepSettings;
use super::{Operation, ScepError};
use crate::http::{self, HttpSettings};
use crate::pki::{build_csr, verify_issued_by, SigningKey};

pub use super::transport::{HttpTransport, Response, Sleeper, Transport};

/// A certificate the CA issued, checked: it is for our key and signed by the CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub certificate_der: Vec<u8>,
    /// The other certificates the CA returned with it (intermediates), in its order.
    pub chain: Vec<Vec<u8>>,
    /// The CA certificate from GetCACert (pinned when a fingerprint is configured).
    pub ca_certificate_der: Vec<u8>,
}

/// Enrolls `key` with a PKCSReq carrying the challenge.
pub fn enroll(
    settings: &ScepSettings,
    http: &HttpSettings,
    key: &dyn SigningKey,
) -> Result<Issued, ScepError> {
    ScepClient::new(settings, http)?.enroll(key)
}

/// Renews the identity (`current_certificate_der`, `current_key`) onto `new_key`: a RenewalReq
/// signed by the current identity when the CA offers renewal, else a fresh PKCSReq with the
/// challenge. The CA encrypts its answer to the request's signer, so for a RenewalReq it is
/// `current_key` that decrypts ([`SigningKey::decrypt_pkcs1v15`]).
pub fn renew(
    settings: &ScepSettings,
    http: &HttpSettings,
    current_certificate_der: &[u8],
    current_key: &dyn SigningKey,
    new_key: &dyn SigningKey,
) -> Result<Issued, ScepError> {
    ScepClient::new(settings, http)?.renew(current_certificate_der, current_key, new_key)
}

/// The CA's capabilities and certificates, as [`ScepClient::discover`] found them.
pub struct CaFacts {
    caps: Capabilities,
    ca: CaCertificates,
}

impl CaFacts {
    /// Everything GetCACert returned (checked against the pin where one is set), in order.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.ca.all_der
    }
}

/// One SCEP CA, as one payload describes it.
pub struct ScepClient {
    settings: ScepSettings,
    transport: Box<dyn Transport>,
    sleeper: Sleeper,
}

impl fmt::Debug for ScepClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScepClient")
            .field("url", &self.settings.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Everything one request/answer exchange needs besides its content.
struct Exchange<'a> {
    op: Operation,
    caps: &'a Capabilities,
    ca: &'a CaCertificates,
    signers: Vec<Vec<u8>>,
    transaction_id: String,
    signer_certificate_der: Vec<u8>,
    signer: Signer<'a>,
    /// Who the CA encrypts to: the request's signer.
    decryptor: &'a dyn SigningKey,
    /// The key the new certificate must certify.
    new_public_key_der: Vec<u8>,
    cipher: ContentCipher,
    digest: MessageDigest,
}

impl ScepClient {
    pub fn new(settings: &ScepSettings, http: &HttpSettings) -> Result<Self, ScepError> {
        let sleeper: Sleeper = Arc::new(std::thread::sleep);
        let transport = HttpTransport::new(settings.url.clone(), http, sleeper.clone())?;
        Ok(Self::with_transport(settings, Box::new(transport), sleeper))
    }

    /// With another transport and sleeper (the unit tests' simulated CA and recorder).
    pub fn with_transport(
        settings: &ScepSettings,
        transport: Box<dyn Transport>,
        sleeper: Sleeper,
    ) -> Self {
        ScepClient {
            settings: settings.clone(),
            transport,
            sleeper,
        }
    }

    /// GetCACaps. A CA that answers with an HTTP client error predates the operation: it gets
    /// the RFC baseline (and the warnings that come with it).
    pub fn capabilities(&self) -> Result<Capabilities, ScepError> {
        let op = Operation::GetCaCaps;
        match self
            .transport
            .get(op, "GetCACaps", self.settings.name.as_deref())
        {
            Ok(reply) => {
                let caps = Capabilities::parse(&String::from_utf8_lossy(&reply.body));
                tracing::debug!("SCEP CA capabilities: {}", caps.summary());
                Ok(caps)
            }
            Err(ScepError::HttpStatus { status, .. }) if (400..500).contains(&status) => {
                tracing::warn!(
                    "the SCEP server answered GetCACaps with HTTP {status}; assuming an old CA \
                     without capabilities"
                );
                Ok(Capabilities::default())
            }
            Err(e) => Err(e),
        }
    }

    /// GetCACert, checked against the configured fingerprint. Nothing carrying the key or the
    /// challenge is sent before this has passed.
    pub fn ca_certificates(&self) -> Result<CaCertificates, ScepError> {
        let op = Operation::GetCaCert;
        let reply = self
            .transport
            .get(op, "GetCACert", self.settings.name.as_deref())?;
        // Every request for a certificate comes after GetCACert: checked here, once.
        if let Some(server) = reply.server_time {
            let now = time::OffsetDateTime::now_utc();
            if crate::http::clock::skew(server, now).is_some() {
                return Err(ScepError::ClockSkew {
                    device: crate::timefmt::rfc3339(now),
                    server: crate::timefmt::rfc3339(server),
                });
            }
        }
        let certs = CaCertificates::parse(reply.content_type.as_deref(), &reply.body)
            .map_err(|what| ScepError::BadResponse { op, what })?;
        match &self.settings.ca_fingerprint {
            Some(expected) => {
                certs.check_fingerprint(expected).map_err(|found| {
                    ScepError::FingerprintMismatch {
                        expected: expected
                            .iter()
                            .map(|b| format!("{b:02X}"))
                            .collect::<Vec<_>>()
                            .join(":"),
                        found,
                    }
                })?;
            }
            None => tracing::debug!(
                "no SCEP CA fingerprint configured; trusting the CA the server offers ({})",
                sha256_fingerprint_hex(&certs.ca_der)
            ),
        }
        Ok(certs)
    }

    /// PKCSReq for `key` with the challenge; the answer is encrypted to `key`.
    pub fn enroll(&self, key: &dyn SigningKey) -> Result<Issued, ScepError> {
        let ca = self.discover()?;
        self.enroll_with(&ca, key)
    }

    /// What a PKCSReq needs from the CA before it is made: the settings checked, GetCACaps,
    /// GetCACert (checked against the pinned fingerprint). None of it needs the key, so it
    /// can run while the key is generated.
    pub fn discover(&self) -> Result<CaFacts, ScepError> {
        self.check_settings(Operation::PkcsReq)?;
        Ok(CaFacts {
            caps: self.capabilities()?,
            ca: self.ca_certificates()?,
        })
    }

    /// PKCSReq for `key` to the CA [`ScepClient::discover`] found.
    pub fn enroll_with(&self, facts: &CaFacts, key: &dyn SigningKey) -> Result<Issued, ScepError> {
        self.pkcs_req(&facts.caps, &facts.ca, key)
    }

    /// RenewalReq when the CA offers it, else PKCSReq with the challenge (see [`renew`]).
    pub fn renew(
        &self,
        current_certificate_der: &[u8],
        current_key: &dyn SigningKey,
        new_key: &dyn SigningKey,
    ) -> Result<Issued, ScepError> {
        self.check_current(current_certificate_der, current_key)?;
        let facts = self.discover()?;
        self.renew_checked(&facts, current_certificate_der, current_key, new_key)
    }

    /// The settings a RenewalReq needs, and a current certificate that is the current key's.
    fn check_current(
        &self,
        current_certificate_der: &[u8],
        current_key: &dyn SigningKey,
    ) -> Result<(), ScepError> {
        let op = Operation::RenewalReq;
        self.check_settings(op)?;
        let current_public = current_key.public_key_der().map_err(ScepError::pki(op))?;
        if certifies(current_certificate_der, &current_public) {
            Ok(())
        } else {
            Err(ScepError::Invalid {
                op,
                what: "the current certificate is not for the current key".into(),
            })
        }
    }

    /// [`ScepClient::renew`] to the CA [`ScepClient::discover`] found, so that the requests
    /// that need no key run while the new key is generated. The current certificate is checked
    /// against the current key before anything is signed with either.
    pub fn renew_with(
        &self,
        facts: &CaFacts,
        current_certificate_der: &[u8],
        current_key: &dyn SigningKey,
        new_key: &dyn SigningKey,
    ) -> Result<Issued, ScepError> {
        self.check_current(current_certificate_der, current_key)?;
        self.renew_checked(facts, current_certificate_der, current_key, new_key)
    }

    /// The renewal itself, once [`ScepClient::check_current`] has passed.
    fn renew_checked(
        &self,
        facts: &CaFacts,
        current_certificate_der: &[u8],
        current_key: &dyn SigningKey,
        new_key: &dyn SigningKey,
    ) -> Result<Issued, ScepError> {
        let op = Operation::RenewalReq;
        let CaFacts { caps, ca } = facts;
        if !caps.can_renew() {
            if caps.renewal {
                tracing::warn!(
                    "the SCEP CA offers renewal only with SHA-1, which the device key cannot sign; \
                     enrolling afresh with the challenge instead"
                );
            } else {
                tracing::info!(
                    "the SCEP CA does not offer renewal; enrolling afresh with the challenge"
                );
            }
            if self.settings.challenge.is_none() {
                return Err(ScepError::Invalid {
                    op,
                    what: "the CA does not offer renewal (no Renewal capability) and no \
                           challenge is configured to enroll afresh"
                        .into(),
                });
            }
            return self.pkcs_req(caps, ca, new_key);
        }

        let new_public = new_key.public_key_der().map_err(ScepError::pki(op))?;
        // RFC 8894 lets a RenewalReq omit the challenge, but CAs built on micromdm's server
        // check it on renewals too; sending it when we have it costs nothing (it is encrypted).
        let profile = self
            .settings
            .csr_profile(true)
            .map_err(|what| ScepError::Invalid { op, what })?;
        let csr = build_csr(&profile, new_key).map_err(ScepError::pki(op))?;
        let exchange = self.exchange(
            op,
            caps,
            ca,
            current_certificate_der.to_vec(),
            Signer::Delegated(current_key),
            current_key,
            new_public,
        );
        self.run(&exchange, MessageType::RenewalReq, &csr)
    }

    fn check_settings(&self, op: Operation) -> Result<(), ScepError> {
        self.settings
            .validate()
            .map_err(|what| ScepError::Invalid { op, what })
    }

    fn pkcs_req(
        &self,
        caps: &Capabilities,
        ca: &CaCertificates,
        key: &dyn SigningKey,
    ) -> Result<Issued, ScepError> {
        let op = Operation::PkcsReq;
        let profile = self
            .settings
            .csr_profile(true)
            .map_err(|what| ScepError::Invalid { op, what })?;
        if profile.challenge_password.is_none() {
            tracing::debug!("no SCEP challenge configured; the request carries none");
        }
        let csr = build_csr(&profile, key).map_err(ScepError::pki(op))?;
        let public = key.public_key_der().map_err(ScepError::pki(op))?;
        let certificate = transient_certificate(&self.settings.subject, Signer::Delegated(key))
            .map_err(ScepError::pki(op))?;
        let exchange = self.exchange(
            op,
            caps,
            ca,
            certificate,
            Signer::Delegated(key),
            key,
            public,
        );
        self.run(&exchange, MessageType::PkcsReq, &csr)
    }

    #[allow(clippy::too_many_arguments)] // one call site per request kind; a builder is noise
    fn exchange<'a>(
        &self,
        op: Operation,
        caps: &'a Capabilities,
        ca: &'a CaCertificates,
        signer_certificate_der: Vec<u8>,
        signer: Signer<'a>,
        decryptor: &'a dyn SigningKey,
        new_public_key_der: Vec<u8>,
    ) -> Exchange<'a> {
        let cipher = caps.content_cipher();
        if cipher == ContentCipher::Des3Cbc {
            tracing::warn!(
                "the SCEP CA does not offer AES; encrypting the request with DES-EDE3-CBC"
            );
        }
        let digest = caps.digest();
        if digest == MessageDigest::Sha1 {
            tracing::warn!("the SCEP CA does not offer SHA-256; signing the request with SHA-1");
        }
        Exchange {
            op,
            caps,
            ca,
            signers: ca.answer_signers(),
            transaction_id: transaction_id(&new_public_key_der),
            signer_certificate_der,
            signer,
            decryptor,
            new_public_key_der,
            cipher,
            digest,
        }
    }

    /// Sends the request and follows PENDING with up to `retries` CertPolls.
    fn run(
        &self,
        exchange: &Exchange<'_>,
        message_type: MessageType,
        content: &[u8],
    ) -> Result<Issued, ScepError> {
        let mut op = exchange.op;
        let mut reply = self.send(exchange, op, message_type, content)?;
        let mut polls = 0;
        let mut waited = Duration::ZERO;
        loop {
            match reply.attributes.pki_status {
                Some(PkiStatus::Success) => return self.issued(exchange, op, reply),
                Some(PkiStatus::Failure) => {
                    return Err(match reply.attributes.fail_info {
                        Some(fail_info) => ScepError::Rejected {
                            op,
                            fail_info,
                            text: reply.attributes.fail_info_text,
                        },
                        None => ScepError::BadResponse {
                            op,
                            what: "the CA answered FAILURE without saying why (no failInfo)".into(),
                        },
                    })
                }
                Some(PkiStatus::Pending) => {
                    if polls >= self.settings.retries {
                        return Err(ScepError::StillPending {
                            op: exchange.op,
                            polls,
                            waited,
                        });
                    }
                    polls += 1;
                    tracing::info!(
                        "the SCEP CA has the {} pending; asking again in {} ({} of {})",
                        exchange.op,
                        http::fmt_duration(self.settings.retry_delay),
                        polls,
                        self.settings.retries
                    );
                    (self.sleeper)(self.settings.retry_delay);
                    waited += self.settings.retry_delay;
                    op = Operation::CertPoll;
                    let poll = issuer_and_subject(&exchange.ca.ca_der, &self.settings.subject)
                        .map_err(ScepError::pki(op))?;
                    reply = self.send(exchange, op, MessageType::CertPoll, &poll)?;
                }
                None => {
                    return Err(ScepError::BadResponse {
                        op,
                        what: "the CertRep has no pkiStatus".into(),
                    })
                }
            }
        }
    }

    /// One request and its verified, matching CertRep.
    fn send(
        &self,
        exchange: &Exchange<'_>,
        op: Operation,
        message_type: MessageType,
        content: &[u8],
    ) -> Result<VerifiedMessage, ScepError> {
        let attributes = ScepAttributes::request(message_type, &exchange.transaction_id);
        let sealed = envelope::seal(content, &exchange.ca.recipient_der, exchange.cipher)
            .map_err(ScepError::pki(op))?;
        let message = sign_pki_message(
            &attributes,
            Some(&sealed),
            &exchange.signer_certificate_der,
            exchange.signer,
            exchange.digest,
        )
        .map_err(ScepError::pki(op))?;

        let reply = if exchange.caps.uses_post() {
            self.transport.post(op, "PKIOperation", &message)?
        } else {
            let encoded = STANDARD.encode(&message);
            self.transport.get(op, "PKIOperation", Some(&encoded))?
        };
        let verified =
            verify_pki_message(&reply.body, Some(&exchange.signers)).map_err(|e| match e {
                MessageError::Malformed(what) => ScepError::BadResponse {
                    op,
                    what: format!(
                        "{what} (Content-Type {})",
                        reply.content_type.as_deref().unwrap_or("missing")
                    ),
                },
                MessageError::Verification(what) => ScepError::Verification { op, what },
            })?;
        let got = &verified.attributes;
        let mismatch = |what: String| ScepError::Verification { op, what };
        if got.message_type != MessageType::CertRep {
            return Err(mismatch(format!(
                "the answer is a {:?}, not a CertRep",
                got.message_type
            )));
        }
        if got.transaction_id != attributes.transaction_id {
            return Err(mismatch(
                "the CertRep's transactionID is not our request's".into(),
            ));
        }
        // The nonce ties the answer to this very request: a replayed CertRep is refused.
        if got.recipient_nonce.as_deref() != Some(attributes.sender_nonce.as_slice()) {
            return Err(mismatch(
                "the CertRep's recipientNonce is not our request's senderNonce".into(),
            ));
        }
        Ok(verified)
    }

    /// Opens a SUCCESS CertRep and checks the certificate in it.
    fn issued(
        &self,
        exchange: &Exchange<'_>,
        op: Operation,
        reply: VerifiedMessage,
    ) -> Result<Issued, ScepError> {
        let content = reply.content.ok_or_else(|| ScepError::BadResponse {
            op,
            what: "the SUCCESS CertRep carries no certificate".into(),
        })?;
        let (bundle, cipher) =
            envelope::open(&content, exchange.decryptor).map_err(|e| ScepError::BadResponse {
                op,
                what: e.to_string(),
            })?;
        tracing::debug!(
            "the SCEP CA signed its answer with {} and encrypted it with {cipher}",
            reply.digest.name()
        );
        if cipher.starts_with("DES-CBC") {
            tracing::warn!(
                "the SCEP CA encrypted its answer with single DES; only the public certificate \
                 was in it, but the CA should be configured for AES"
            );
        }
        let mut certificates = certificates_of_degenerate(&bundle)
            .map_err(|what| ScepError::BadResponse { op, what })?;
        let position = certificates
            .iter()
            .position(|c| certifies(c, &exchange.new_public_key_der))
            .ok_or_else(|| ScepError::Verification {
                op,
                what: format!(
                    "none of the {} certificates in the CertRep is for our key",
                    certificates.len()
                ),
            })?;
        let certificate_der = certificates.remove(position);
        let issuers = exchange.ca.all_der.iter().chain(certificates.iter());
        let mut last_error = None;
        let mut signed_by_ca = false;
        for issuer in issuers {
            match verify_issued_by(&certificate_der, issuer) {
                Ok(()) => {
                    signed_by_ca = true;
                    break;
                }
                Err(e) => last_error = Some(e),
            }
        }
        if !signed_by_ca {
            return Err(ScepError::Verification {
                op,
                what: format!(
                    "the issued certificate is not signed by the SCEP CA{}",
                    last_error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            });
        }
        Ok(Issued {
            certificate_der,
            chain: certificates,
            ca_certificate_der: exchange.ca.ca_der.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::tests::test_authority;
    use crate::pki::key::tests::{other_test_key, test_key};
    use crate::scep::message::FailInfo;
    use crate::scep::testca::{Behaviour, FakeCa};
    use crate::secret::Secret;
    use sha2::{Digest, Sha256};
    use std::sync::Mutex;

    const MICROMDM_CAPS: &str =
        "Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\nPOSTPKIOperation";
    const CHALLENGE: &str = "s3cret-challenge";

    fn settings() -> ScepSettings {
        let mut s = ScepSettings::new(url::Url::parse("http://ca.test/scep").unwrap());
        s.challenge = Some(Secret::new(CHALLENGE));
        s
    }

    /// A client on the fake CA whose sleeper records instead of sleeping.
    fn client_on(ca: &FakeCa, settings: &ScepSettings) -> (ScepClient, Arc<Mutex<Vec<Duration>>>) {
        let slept = Arc::new(Mutex::new(Vec::new()));
        let record = slept.clone();
        let sleeper: Sleeper = Arc::new(move |d| record.lock().unwrap().push(d));
        (
            ScepClient::with_transport(settings, Box::new(ca.clone()), sleeper),
            slept,
        )
    }

    fn fake(caps: &str, behaviour: Behaviour) -> FakeCa {
        FakeCa::new(test_authority(), other_test_key(), caps, behaviour)
    }

    fn operations(ca: &FakeCa) -> Vec<String> {
        ca.log()
            .into_iter()
            .map(|(op, kind, method)| match kind {
                Some(kind) => format!("{method} {op} {kind:?}"),
                None => format!("{method} {op}"),
            })
            .collect()
    }

    #[test]
    fn success_yields_a_certificate_for_our_key_signed_by_the_ca() {
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let (client, slept) = client_on(&ca, &settings());
        let issued = client.enroll(test_key()).unwrap();
        assert!(certifies(
            &issued.certificate_der,
            &test_key().public_key_der().unwrap()
        ));
        verify_issued_by(&issued.certificate_der, test_authority().certificate_der()).unwrap();
        assert_eq!(
            issued.ca_certificate_der,
            test_authority().certificate_der()
        );
        assert!(issued.chain.is_empty());
        assert_eq!(
            operations(&ca),
            [
                "GET GetCACaps",
                "GET GetCACert",
                "POST PKIOperation PkcsReq"
            ]
        );
        let (cipher, digest) = ca.state.lock().unwrap().last_request.clone().unwrap();
        assert_eq!(
            (cipher.as_str(), digest),
            ("AES-128-CBC", MessageDigest::Sha256)
        );
        assert!(slept.lock().unwrap().is_empty());
    }

    #[test]
    fn no_certificate_is_requested_while_the_clocks_are_more_than_five_minutes_apart() {
        for (offset, refused) in [(-10, true), (10, true), (4, false), (-4, false)] {
            let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
            ca.state.lock().unwrap().clock_offset = time::Duration::minutes(offset);
            let (client, _) = client_on(&ca, &settings());
            let result = client.enroll(test_key());
            if refused {
                let err = result.err().expect("refused");
                assert!(
                    matches!(err, ScepError::ClockSkew { .. }),
                    "{offset}: {err}"
                );
                assert!(err.is_transient(), "deferred, exit 75");
                assert_eq!(
                    operations(&ca),
                    ["GET GetCACaps", "GET GetCACert"],
                    "{offset}"
                );
            } else {
                assert!(result.is_ok(), "{offset} minutes is within the tolerance");
            }
        }
    }

    const NO_AES: &str = "does not offer AES; encrypting the request with DES-EDE3-CBC";
    const NO_SHA256: &str = "does not offer SHA-256; signing the request with SHA-1";

    #[test]
    fn a_ca_certificate_outside_its_dates_defers_and_shows_the_configured_url() {
        // What the HTTP layer says of a handshake the device's clock failed (its own tests
        // and Okta's show the TLS side); a GET PKIOperation URL carries the whole message, so
        // the configured one is shown instead.
        let err = ScepError::from_http(
            Operation::GetCaCaps,
            "https://ca.test/scep",
            crate::http::HttpError::NotValidNow {
                url: "https://ca.test/scep?operation=PKIOperation&message=MIIB".into(),
                reason: "the server's certificate is not valid yet; set it right".into(),
            },
        );
        assert!(matches!(err, ScepError::NotValidNow { .. }), "{err:?}");
        assert!(err.is_transient(), "the device's clock: exit 75, not 1");
        let text = err.to_string();
        assert!(
            text.contains("cannot trust https://ca.test/scep at the device's clock"),
            "{text}"
        );
        assert!(!text.contains("MIIB"), "{text}");
    }

    #[test]
    fn a_ca_without_post_aes_or_sha256_gets_get_des3_and_sha1() {
        let ca = fake("", Behaviour::Issue);
        let (client, _) = client_on(&ca, &settings());
        let (issued, log) = crate::http::tests::logged(|| client.enroll(test_key()));
        issued.unwrap();
        assert_eq!(operations(&ca)[2], "GET PKIOperation PkcsReq");
        let (cipher, digest) = ca.state.lock().unwrap().last_request.clone().unwrap();
        assert_eq!(
            (cipher.as_str(), digest),
            ("DES-EDE3-CBC", MessageDigest::Sha1)
        );
        // Said once each, as warnings.
        for warning in [NO_AES, NO_SHA256] {
            assert_eq!(log.matches(warning).count(), 1, "{log}");
        }
        assert_eq!(log.matches(" WARN ").count(), 2, "{log}");

        // A CA that offers both: no warning.
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let (client, _) = client_on(&ca, &settings());
        let (issued, log) = crate::http::tests::logged(|| client.enroll(test_key()));
        issued.unwrap();
        assert!(!log.contains(" WARN "), "{log}");
    }

    #[test]
    fn a_ca_that_predates_get_ca_caps_gets_the_baseline_and_a_server_error_stops() {
        // HTTP 4xx to GetCACaps: an old CA; the RFC baseline (GET, DES3, SHA-1) follows.
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        ca.state.lock().unwrap().caps_status = Some(404);
        let (client, _) = client_on(&ca, &settings());
        client.enroll(test_key()).unwrap();
        assert_eq!(
            operations(&ca)[1..],
            ["GET GetCACert", "GET PKIOperation PkcsReq"]
        );
        // HTTP 5xx: the server is broken, not old.
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        ca.state.lock().unwrap().caps_status = Some(500);
        let (client, _) = client_on(&ca, &settings());
        let err = client.enroll(test_key()).unwrap_err();
        assert!(
            matches!(err, ScepError::HttpStatus { status: 500, .. }),
            "{err}"
        );
        assert_eq!(operations(&ca), ["GET GetCACaps"]);
    }

    #[test]
    fn invalid_settings_stop_before_any_request() {
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let mut s = settings();
        s.key_size = 1024;
        let (client, _) = client_on(&ca, &s);
        let err = client.enroll(test_key()).unwrap_err();
        assert!(matches!(err, ScepError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("key size 1024"), "{err}");
        assert!(operations(&ca).is_empty());
    }

    #[test]
    fn debug_shows_the_url_and_never_the_challenge() {
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let (client, _) = client_on(&ca, &settings());
        assert_eq!(
            format!("{client:?}"),
            "ScepClient { url: \"http://ca.test/scep\", .. }"
        );
    }

    #[test]
    fn each_fail_info_is_a_clear_rejection_without_the_challenge() {
        for (info, name) in [
            (FailInfo::BadAlg, "badAlg"),
            (FailInfo::BadMessageCheck, "badMessageCheck"),
            (FailInfo::BadRequest, "badRequest"),
            (FailInfo::BadTime, "badTime"),
            (FailInfo::BadCertId, "badCertId"),
        ] {
            let ca = fake(MICROMDM_CAPS, Behaviour::Fail(info));
            let (client, _) = client_on(&ca, &settings());
            let err = client.enroll(test_key()).unwrap_err();
            assert!(matches!(err, ScepError::Rejected { fail_info, .. } if fail_info == info));
            let shown = err.to_string();
            assert!(shown.contains(name) && shown.contains("PKCSReq"), "{shown}");
            assert!(
                !shown.contains(CHALLENGE) && !shown.contains('\n'),
                "{shown}"
            );
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn a_wrong_challenge_is_bad_request() {
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let mut s = settings();
        s.challenge = Some(Secret::new("wrong-one"));
        let (client, _) = client_on(&ca, &s);
        let err = client.enroll(test_key()).unwrap_err();
        assert!(err.to_string().contains("badRequest"), "{err}");
        assert!(!err.to_string().contains("wrong-one"));
    }

    #[test]
    fn pending_is_polled_after_retry_delay_until_success() {
        let ca = fake(MICROMDM_CAPS, Behaviour::PendingThen(2));
        let mut s = settings();
        s.retries = 3;
        s.retry_delay = Duration::from_secs(10);
        let (client, slept) = client_on(&ca, &s);
        let issued = client.enroll(test_key()).unwrap();
        assert!(certifies(
            &issued.certificate_der,
            &test_key().public_key_der().unwrap()
        ));
        assert_eq!(*slept.lock().unwrap(), vec![Duration::from_secs(10); 2]);
        assert_eq!(
            operations(&ca)[2..],
            [
                "POST PKIOperation PkcsReq",
                "POST PKIOperation CertPoll",
                "POST PKIOperation CertPoll"
            ]
        );
    }

    #[test]
    fn pending_beyond_the_retries_is_a_transient_error() {
        let ca = fake(MICROMDM_CAPS, Behaviour::PendingThen(10));
        let mut s = settings();
        s.retries = 3;
        s.retry_delay = Duration::from_secs(7);
        let (client, slept) = client_on(&ca, &s);
        let err = client.enroll(test_key()).unwrap_err();
        assert!(
            matches!(err, ScepError::StillPending { polls: 3, .. }),
            "{err}"
        );
        assert!(err.is_transient());
        assert_eq!(*slept.lock().unwrap(), vec![Duration::from_secs(7); 3]);
        assert_eq!(operations(&ca).len(), 2 + 1 + 3);
    }

    #[test]
    fn a_forged_signature_is_refused() {
        let ca = fake(MICROMDM_CAPS, Behaviour::ForgedSignature);
        let (client, _) = client_on(&ca, &settings());
        let err = client.enroll(test_key()).unwrap_err();
        assert!(matches!(err, ScepError::Verification { .. }), "{err}");
        assert!(err.to_string().contains("signature"), "{err}");
    }

    #[test]
    fn an_answer_signed_by_anyone_but_the_ca_is_refused() {
        // The message verifies by the certificate it carries; that certificate is not the CA's.
        let ca = fake(MICROMDM_CAPS, Behaviour::UnrelatedSigner);
        let (client, _) = client_on(&ca, &settings());
        let err = client.enroll(test_key()).unwrap_err();
        assert!(matches!(err, ScepError::Verification { .. }), "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains("CN=unrelated signer") && shown.contains("not a certificate of this CA"),
            "{shown}"
        );
    }

    #[test]
    fn a_certificate_another_ca_signed_is_refused() {
        let ca = fake(MICROMDM_CAPS, Behaviour::ForeignIssuer);
        let (client, _) = client_on(&ca, &settings());
        let err = client.enroll(test_key()).unwrap_err();
        assert!(matches!(err, ScepError::Verification { .. }), "{err}");
        let shown = err.to_string();
        assert!(
            shown.contains("not signed by the SCEP CA") && shown.contains("does not verify"),
            "{shown}"
        );
        // The same, on renewal.
        let honest = fake(MICROMDM_CAPS, Behaviour::Issue);
        let (client, _) = client_on(&honest, &settings());
        let current = client.enroll(other_test_key()).unwrap();
        let (client, _) = client_on(&ca, &settings());
        let err = client
            .renew(&current.certificate_der, other_test_key(), test_key())
            .unwrap_err();
        assert!(
            err.to_string().contains("not signed by the SCEP CA"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_transaction_id_or_recipient_nonce_is_refused() {
        for (behaviour, word) in [
            (Behaviour::WrongTransactionId, "transactionID"),
            (Behaviour::WrongRecipientNonce, "recipientNonce"),
        ] {
            let ca = fake(MICROMDM_CAPS, behaviour);
            let (client, _) = client_on(&ca, &settings());
            let err = client.enroll(test_key()).unwrap_err();
            assert!(matches!(err, ScepError::Verification { .. }), "{err}");
            assert!(err.to_string().contains(word), "{err}");
        }
    }

    #[test]
    fn a_fingerprint_mismatch_stops_before_any_pki_operation() {
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let mut s = settings();
        s.ca_fingerprint = Some([0x11; 32]);
        let (client, _) = client_on(&ca, &s);
        let err = client.enroll(test_key()).unwrap_err();
        assert!(
            matches!(err, ScepError::FingerprintMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("11:11:11"), "{err}");
        assert_eq!(operations(&ca), ["GET GetCACaps", "GET GetCACert"]);

        // The right pin lets it through.
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        s.ca_fingerprint = Some(Sha256::digest(test_authority().certificate_der()).into());
        let (client, _) = client_on(&ca, &s);
        client.enroll(test_key()).unwrap();
    }

    #[test]
    fn renewal_is_signed_by_the_current_identity_and_decrypted_by_its_key() {
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let (client, _) = client_on(&ca, &settings());
        let current = client.enroll(other_test_key()).unwrap();
        let renewed = client
            .renew(&current.certificate_der, other_test_key(), test_key())
            .unwrap();
        assert!(certifies(
            &renewed.certificate_der,
            &test_key().public_key_der().unwrap()
        ));
        assert_eq!(operations(&ca)[5], "POST PKIOperation RenewalReq");
    }

    #[test]
    fn without_the_renewal_capability_renewal_enrolls_afresh_or_says_why_not() {
        let ca = fake("SHA-256\nAES\nPOSTPKIOperation", Behaviour::Issue);
        let (client, _) = client_on(&ca, &settings());
        let current = client.enroll(other_test_key()).unwrap();
        client
            .renew(&current.certificate_der, other_test_key(), test_key())
            .unwrap();
        assert_eq!(operations(&ca)[5], "POST PKIOperation PkcsReq");

        let mut s = settings();
        s.challenge = None;
        let (client, _) = client_on(&ca, &s);
        let err = client
            .renew(&current.certificate_der, other_test_key(), test_key())
            .unwrap_err();
        assert!(err.to_string().contains("no challenge"), "{err}");
    }

    #[test]
    fn renewal_refuses_a_certificate_of_another_key() {
        let ca = fake(MICROMDM_CAPS, Behaviour::Issue);
        let (client, _) = client_on(&ca, &settings());
        let current = client.enroll(other_test_key()).unwrap();
        let err = client
            .renew(&current.certificate_der, test_key(), test_key())
            .unwrap_err();
        assert!(matches!(err, ScepError::Invalid { .. }), "{err}");
    }
}
