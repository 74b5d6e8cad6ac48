//! What the http modules' tests share: a test trust anchor, fixed "randomness", log capture, and
//! a scripted loopback server that answers each connection as told.

use super::*;
use rand_core::RngCore;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use url::Url;

pub(crate) const TEST_ANCHOR_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIULr0M64+TICE+8Uq/+OQBknntVJ8wCgYIKoZIzj0EAwIw
IjEgMB4GA1UEAwwXZGV2aWNldHJ1c3QgdGVzdCBhbmNob3IwIBcNMjYxMTIzMjAw
ODM5WhgPMjEyNjEwMzAyMDA4MzlaMCIxIDAeBgNVBAMMF2RldmljZXRydXN0IHRl
c3QgYW5jaG9yMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEegQAgaKYop3kFH72
IgL5dXjGvhEKXC5o48J4iqMNz0H/FlMVhb35OS7bpMt6IhiJsr4x/kFd+5rybU9a
ZaBqAqNTMFEwHQYDVR0OBBYEFH6099S4Myxq3RHW9DXbhBeL99LXMB8GA1UdIwQY
MBaAFH6099S4Myxq3RHW9DXbhBeL99LXMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDSAAwRQIhALQyod1rHVasp1q1I/bn0Vo8F6L/6i1ONfH2tif4tuSxAiAD
aEQuhAfdcBm6Ua3eL2Nj8IHi19++TvELwVoTW/uwHA==
-----END CERTIFICATE-----
";

/// Deterministic "randomness" for asserting jitter bounds.
pub(crate) struct FixedRng(pub u64);
impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        self.0 as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for (i, b) in dest.iter_mut().enumerate() {
            *b = self.0.to_le_bytes()[i % 8];
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// --- Answers from a scripted loopback server: the size cap, rate limits, broken answers.

pub(super) const MIB: u64 = 1024 * 1024;

/// What the scripted server does once an answer is sent.
#[derive(Clone, Copy)]
pub(super) enum Then {
    /// Waits until the client hangs up, so a client that keeps reading waits for its deadline.
    Wait,
    /// Hangs up.
    Close,
}

/// One answer: the status line and headers (each says `Connection: close`, so every attempt
/// is a connection of its own), `sent` bytes of body (`x`), then `then`.
pub(super) struct Answer {
    head: String,
    sent: u64,
    then: Then,
}

impl Answer {
    /// 200 announcing `announced` body bytes, of which `sent` are sent.
    pub(super) fn ok(announced: u64, sent: u64, then: Then) -> Answer {
        Answer {
            head: format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: {announced}\r\nConnection: close\r\n\r\n"
            ),
            sent,
            then,
        }
    }

    /// A redirect: `status` with `Location: location`.
    pub(super) fn redirect(status: u16, location: &str) -> Answer {
        Answer {
            head: format!(
                "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            sent: 0,
            then: Then::Close,
        }
    }

    /// 429 with `Retry-After: secs`.
    pub(super) fn rate_limited(secs: u64) -> Answer {
        Answer {
            head: format!(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {secs}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
            sent: 0,
            then: Then::Close,
        }
    }
}

/// A loopback server that answers the n-th connection with `answers[n]`, one request each.
/// The URL to ask, and how many connections it took.
pub(super) fn serve(answers: Vec<Answer>) -> (Url, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = taken.clone();
    std::thread::spawn(move || {
        for answer in answers {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte) {
                    Ok(1) => request.push(byte[0]),
                    _ => return,
                }
            }
            let _ = write_answer(&mut stream, &answer);
            if let Then::Wait = answer.then {
                let _ = stream.read(&mut byte);
            }
        }
    });
    (url, taken)
}

pub(super) fn write_answer(
    stream: &mut std::net::TcpStream,
    answer: &Answer,
) -> std::io::Result<()> {
    stream.write_all(answer.head.as_bytes())?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = answer.sent;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// A 200 announcing `announced` bytes, `sent` of them sent, then a server that waits.
pub(super) fn answer_once(announced: u64, sent: u64) -> Url {
    serve(vec![Answer::ok(announced, sent, Then::Wait)]).0
}

pub(super) fn quick_settings(max_attempts: u32) -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts,
            max_rate_limit_wait: Duration::from_secs(5),
            ..RetryPolicy::default()
        },
        ..HttpSettings::default()
    }
}

/// One `send_with_retry` of a GET to `url`; its result and the waits between attempts.
pub(super) fn fetch_with(
    url: &Url,
    settings: &HttpSettings,
) -> (Result<Reply, HttpError>, Vec<Duration>) {
    let client = build_client_with(settings, false).unwrap();
    // 250 ms of every jitter (250 mod the ceiling + 1).
    let mut rng = FixedRng(250);
    let slept = std::cell::RefCell::new(Vec::new());
    let mut sender = Sender {
        settings,
        service: "the test server",
        sleeper: &|d| slept.borrow_mut().push(d),
        rng: &mut rng,
    };
    let result = send_with_retry(&mut sender, url, || client.get(url.clone()));
    (result, slept.into_inner())
}

pub(super) fn fetch(url: &Url) -> Result<Reply, HttpError> {
    let (result, slept) = fetch_with(url, &quick_settings(1));
    assert!(slept.is_empty(), "{slept:?}");
    result
}

/// Makes every log callsite stay enabled for the whole test binary, so that a test's own
/// scoped subscriber sees each line. tracing caches per callsite, process-wide, whether
/// anyone listens; a callsite first reached on a thread without a subscriber (another test,
/// running in parallel) would otherwise be cached as silent, and a capturing test would
/// find its warning missing. A global subscriber at TRACE that discards what it gets keeps
/// that answer "always".
pub(crate) fn keep_every_callsite_enabled() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let discard = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::sink)
            .finish();
        let _ = tracing::subscriber::set_global_default(discard);
    });
}

/// Log lines written while `f` runs (on this thread).
pub(crate) fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    keep_every_callsite_enabled();
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    (result, text)
}
