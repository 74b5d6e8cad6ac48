//! A SCEP CA of the tests' own on loopback, built from the crate's public SCEP pieces, for the
//! answers a real CA does not give: a CertRep signed by an unrelated key, a certificate another
//! CA signed, an answer far over the size cap. `Honest` answers as a CA should, so a refusal
//! seen with a fault is the fault's doing.

use devicetrust::pki::{Authority, IssueProfile, IssueRequest, PrivateKey};
use devicetrust::scep::cacert::degenerate_pkcs7;
use devicetrust::scep::message::{
    sign_pki_message, transient_certificate, verify_pki_message, ScepAttributes, Signer,
};
use devicetrust::scep::{envelope, ContentCipher, FailInfo, MessageDigest, MessageType, PkiStatus};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::scepserver::CHALLENGE;

/// How the CA answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Honest,
    /// CertReps signed by a key that is not the CA's, with that key's own certificate inside:
    /// the message verifies by itself, only not as the CA.
    UnrelatedSigner,
    /// Well-signed CertReps whose certificate a CA with this CA's name, but another key, signed.
    ForeignIssuer,
    /// Every request answered 200 with this many bytes.
    Oversized(u64),
}

struct Keys {
    ca: Authority,
    impostor: Authority,
    unrelated: PrivateKey,
    unrelated_certificate: Vec<u8>,
}

/// The CA's name, which the impostor shares.
pub const CA_NAME: &str = "devicetrust test SCEP CA";

/// A running CA; stops when dropped.
pub struct TestScepCa {
    pub url: url::Url,
    /// The CA certificate (DER), for a device to pin.
    pub ca_der: Vec<u8>,
    answer: Arc<Mutex<Answer>>,
    /// The `operation` of every request, in order.
    operations: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

fn fixture_key(name: &str) -> PrivateKey {
    PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(super::fixture(name)).unwrap()).unwrap()
}

impl TestScepCa {
    pub fn start(answer: Answer) -> TestScepCa {
        // Fixture keys: generating three RSA keys per test is the slow part otherwise.
        let year = Duration::from_secs(365 * 86_400);
        let unrelated = fixture_key("device.key");
        let keys = Arc::new(Keys {
            ca: Authority::self_signed_with_key(fixture_key("mtls-ca.key"), CA_NAME, year).unwrap(),
            impostor: Authority::self_signed_with_key(fixture_key("tls-ca.key"), CA_NAME, year)
                .unwrap(),
            unrelated_certificate: transient_certificate(
                "CN=unrelated signer",
                Signer::InMemory(&unrelated),
            )
            .unwrap(),
            unrelated,
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let ca = TestScepCa {
            url: url::Url::parse(&format!("http://{addr}/scep")).unwrap(),
            ca_der: keys.ca.certificate_der().to_vec(),
            answer: Arc::new(Mutex::new(answer)),
            operations: Arc::default(),
            stop: Arc::default(),
            addr,
        };
        let (answer, operations, stop) =
            (ca.answer.clone(), ca.operations.clone(), ca.stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (keys, answer, operations) = (keys.clone(), answer.clone(), operations.clone());
                // One thread per connection: a client that stops reading blocks only its own.
                std::thread::spawn(move || {
                    let _ = serve(stream, &keys, &answer, &operations);
                });
            }
        });
        ca
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn operations(&self) -> Vec<String> {
        self.operations.lock().unwrap().clone()
    }
}

impl Drop for TestScepCa {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    stream: TcpStream,
    keys: &Keys,
    answer: &Mutex<Answer>,
    operations: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let target = request_line.split(' ').nth(1).unwrap_or("/");
    let url = url::Url::parse(&format!("http://ca{target}")).unwrap();
    let query = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let operation = query("operation").unwrap_or_default();
    operations.lock().unwrap().push(operation.clone());
    let answer = answer.lock().unwrap().clone();

    let mut stream = stream;
    if let Answer::Oversized(size) = answer {
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n\
             Connection: close\r\n\r\n"
        )?;
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        return Ok(());
    }
    let reply = match operation.as_str() {
        "GetCACaps" => Ok((
            "text/plain",
            b"POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\nRenewal\n".to_vec(),
        )),
        "GetCACert" => Ok((
            "application/x-x509-ca-cert",
            keys.ca.certificate_der().to_vec(),
        )),
        "PKIOperation" => {
            let message = match query("message") {
                Some(encoded) => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map_err(|e| e.to_string())
                }
                None => Ok(body),
            };
            message
                .and_then(|m| cert_rep(&m, keys, &answer))
                .map(|der| ("application/x-pki-message", der))
        }
        other => Err(format!("unknown operation {other:?}")),
    };
    let (status, content_type, body) = match reply {
        Ok((content_type, body)) => ("200 OK", content_type, body),
        Err(why) => ("500 Internal Server Error", "text/plain", why.into_bytes()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// The CertRep for one PKCSReq or RenewalReq, as `answer` shapes it.
fn cert_rep(message: &[u8], keys: &Keys, answer: &Answer) -> Result<Vec<u8>, String> {
    let request = verify_pki_message(message, None).map_err(|e| e.to_string())?;
    let sealed = request.content.as_deref().ok_or("no content")?;
    let (csr, _) = envelope::open(sealed, keys.ca.key()).map_err(|e| e.to_string())?;
    let csr = devicetrust::pki::verify_csr(&csr).map_err(|e| e.to_string())?;

    let mut attributes =
        ScepAttributes::request(MessageType::CertRep, &request.attributes.transaction_id);
    attributes.recipient_nonce = Some(request.attributes.sender_nonce.clone());
    let challenge_ok = request.attributes.message_type == MessageType::RenewalReq
        || csr.challenge_password.as_deref() == Some(CHALLENGE);
    let content = if challenge_ok {
        attributes.pki_status = Some(PkiStatus::Success);
        let issuer = match answer {
            Answer::ForeignIssuer => &keys.impostor,
            _ => &keys.ca,
        };
        let now = time::OffsetDateTime::now_utc();
        let certificate = issuer
            .issue(IssueRequest {
                subject: csr.subject.clone(),
                public_key_der: csr.public_key_der.clone(),
                not_before: now - time::Duration::hours(1),
                not_after: now + time::Duration::days(365),
                serial: None,
                profile: IssueProfile::ClientAuth,
            })
            .map_err(|e| e.to_string())?;
        let bundle = degenerate_pkcs7(&[certificate]).map_err(|e| e.to_string())?;
        Some(
            envelope::seal(
                &bundle,
                &request.signer_certificate_der,
                ContentCipher::Aes128Cbc,
            )
            .map_err(|e| e.to_string())?,
        )
    } else {
        attributes.pki_status = Some(PkiStatus::Failure);
        attributes.fail_info = Some(FailInfo::BadRequest);
        None
    };
    let (signer, signer_certificate) = match answer {
        Answer::UnrelatedSigner => (
            Signer::InMemory(&keys.unrelated),
            keys.unrelated_certificate.as_slice(),
        ),
        _ => (Signer::InMemory(keys.ca.key()), keys.ca.certificate_der()),
    };
    sign_pki_message(
        &attributes,
        content.as_deref(),
        signer_certificate,
        signer,
        MessageDigest::Sha256,
    )
    .map_err(|e| e.to_string())
}
