//! A real browser against a stand-in for the certAuthDomain host: a loopback HTTPS server that
//! requires a client certificate and reports which one it was offered, headless Chromium, and
//! a guard for the managed policy file Chromium reads from the real /etc.
//!
//! Every wait is on an event (a server record or the browser's exit) with a deadline; nothing
//! sleeps to synchronise.

use devicetrust::pki::CertificateInfo;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Chromium binary Debian's `chromium` package installs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Chromium on Linux reads mandatory policy.
pub const CHROMIUM_POLICY_DIR: &str = "/etc/chromium/policies/managed";

/// A client certificate the server was offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    /// It chains to the device-trust CA and the handshake completed.
    pub accepted: bool,
}

/// What happened, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A handshake got as far as a client certificate.
    Presented(Presented),
    /// The client answered the certificate request with no certificate.
    Declined,
    /// The client hung up after the server asked for a certificate, without answering: what
    /// Chromium does before it asks its policy, or the user, which certificate to send.
    Abandoned,
    /// The browser process ended; what it printed (`--dump-dom`) on stdout.
    BrowserExited { code: Option<i32>, stdout: String },
}

thread_local! {
    /// The certificate offered on this thread's connection (one thread per connection).
    static OFFERED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Requires a client certificate chaining to the device-trust CA, and notes whatever the
/// client offered, accepted or not.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA names in the request: Chromium would otherwise filter its identities by them,
    /// and the decoy would never be a candidate. The policy's filter alone must choose.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        OFFERED.with(|o| *o.borrow_mut() = Some(end_entity.to_vec()));
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The stand-in for the certAuthDomain host, on 127.0.0.1; stops when dropped.
pub struct MtlsServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MtlsServer {
    /// Serves with `cert_der`/`key_der` (PKCS#8) and reports to `events`; client certificates
    /// must chain to `client_ca_der`.
    pub fn start(
        cert_der: Vec<u8>,
        key_der: Vec<u8>,
        client_ca_der: &[u8],
        events: Sender<Event>,
    ) -> MtlsServer {
        let provider = devicetrust::pki::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(client_ca_der.to_vec()))
            .unwrap();
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(Arc::new(RecordingVerifier { inner }))
            .with_single_cert(
                vec![CertificateDer::from(cert_der)],
                PrivateKeyDer::Pkcs8(key_der.into()),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let config = Arc::clone(&config);
                let events = events.clone();
                std::thread::spawn(move || serve(stream, config, events));
            }
        });
        MtlsServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for MtlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn presented(der: &[u8], accepted: bool) -> Presented {
    let info = CertificateInfo::parse(der).unwrap();
    Presented {
        subject: info.subject,
        issuer: info.issuer,
        serial_hex: info.serial_hex,
        accepted,
    }
}

/// One connection: the handshake, then one page naming the certificate it was made with.
fn serve(tcp: TcpStream, config: Arc<rustls::ServerConfig>, events: Sender<Event>) {
    // A stalled client must not pin the thread for ever.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    OFFERED.with(|o| *o.borrow_mut() = None);
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut hello_seen = false;
    let mut failure = None;
    while tls.conn.is_handshaking() {
        let result = tls.conn.complete_io(&mut tls.sock);
        hello_seen |= tls.conn.server_name().is_some();
        if let Err(e) = result {
            failure = Some(e);
            break;
        }
    }
    let offered = OFFERED.with(|o| o.borrow_mut().take());
    if let Some(e) = failure {
        let event = match offered {
            Some(der) => Event::Presented(presented(&der, false)),
            None if e.to_string().contains("NoCertificatesPresented")
                || e.to_string().contains("no certificates presented") =>
            {
                Event::Declined
            }
            None if hello_seen => Event::Abandoned,
            // A connection that never said hello (a probe, or our own wake-up).
            None => return,
        };
        let _ = events.send(event);
        return;
    }
    let Some(der) = offered else { return };
    let seen = presented(&der, true);
    let _ = events.send(Event::Presented(seen.clone()));

    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!(
        "<html><body><p id=\"mtls\">subject={} issuer={} serial={}</p></body></html>",
        seen.subject, seen.issuer, seen.serial_hex
    );
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.write_all(response.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
}

/// Installs a policy file in Chromium's real managed policy directory for the length of a test,
/// and removes it when dropped, also when the test fails.
pub struct PolicyGuard {
    path: PathBuf,
    created_dir: Option<PathBuf>,
}

impl PolicyGuard {
    /// Writes `contents` as `<CHROMIUM_POLICY_DIR>/<name>`; refuses to replace a file that is
    /// already there (it would be someone else's).
    pub fn install(name: &str, contents: &[u8]) -> PolicyGuard {
        let dir = Path::new(CHROMIUM_POLICY_DIR);
        let created_dir = (!dir.exists()).then(|| dir.to_owned());
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        assert!(
            !path.exists(),
            "{} exists already; not replacing it",
            path.display()
        );
        std::fs::write(&path, contents).unwrap();
        PolicyGuard { path, created_dir }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.created_dir {
            // Only the directories this guard made, and only when left empty.
            let mut dir = dir.as_path();
            while dir != Path::new("/etc") && std::fs::remove_dir(dir).is_ok() {
                match dir.parent() {
                    Some(parent) => dir = parent,
                    None => break,
                }
            }
        }
    }
}

/// The stand-in host's TLS identity and the CA its clients' certificates must chain to.
pub struct Stand {
    pub host: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub client_ca_der: Vec<u8>,
}

/// One headless Chromium visit to `https://<host>/`, served by a fresh [`MtlsServer`] (so no
/// event of an earlier visit can arrive late), with `home` as HOME so NSS opens
/// `<home>/.pki/nssdb`. Returns every event up to and including the browser's exit.
///
/// `stop_after` is Chromium's own `--timeout`: a page not loaded by then (the browser waits for
/// a certificate choice nobody makes) is stopped, and the browser exits.
pub fn visit(stand: &Stand, home: &Path, stop_after: Duration) -> Vec<Event> {
    let (sender, events) = std::sync::mpsc::channel();
    let server = MtlsServer::start(
        stand.cert_der.clone(),
        stand.key_der.clone(),
        &stand.client_ca_der,
        sender.clone(),
    );
    // The URL keeps the policy's form (https://host, port 443); the rule sends that host and
    // port to the loopback server.
    let host_rule = format!("MAP {} 127.0.0.1:{}", stand.host, server.addr.port());
    let url = format!("https://{}/", stand.host);
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--host-resolver-rules={host_rule}"))
        .arg(format!("--timeout={}", stop_after.as_millis()))
        .arg("--dump-dom")
        .arg(&url)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    {
        // Its own process group, so a browser that hangs can be ended with its helpers.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let child = command.spawn().unwrap();
    let pid = child.id();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let (code, stdout, stderr) = match output {
            Ok(o) => (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            ),
            Err(e) => (None, String::new(), e.to_string()),
        };
        let _ = sender.send(Event::BrowserExited { code, stdout });
        stderr
    });

    let deadline = Instant::now() + stop_after + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => {
                let done = matches!(event, Event::BrowserExited { .. });
                seen.push(event);
                if done {
                    break;
                }
            }
            Err(_) => {
                // The browser outlived its own timeout by a minute. It has not been reaped (the
                // waiter still waits), so its process group is still the one created above.
                // SAFETY: kill with a negative pid signals that process group.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                let _ = waiter.join();
                panic!("chromium did not finish; events so far: {seen:?}");
            }
        }
    }
    let stderr = waiter.join().unwrap_or_default();
    if std::env::var_os("DEVICETRUST_TEST_VERBOSE").is_some() {
        eprintln!("chromium stderr:\n{stderr}");
    }
    drop(server);
    eprintln!("visit {url}: {seen:?}");
    seen
}

/// The first certificate the server was offered, if any.
pub fn first_presented(events: &[Event]) -> Option<&Presented> {
    events.iter().find_map(|e| match e {
        Event::Presented(p) => Some(p),
        _ => None,
    })
}
