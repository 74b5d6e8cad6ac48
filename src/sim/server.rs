//! The simulator's HTTPS front: a tokio runtime on its own thread, rustls, hyper HTTP/1.1.
//!
//! The agent under test uses blocking HTTP on its own thread, so the simulator must not share
//! its runtime; stopping sends a signal and joins the thread, which ends every connection.

use super::service::{Request, Service};
use super::{SimError, CERT_AUTH_HOST};
use crate::pki::{Authority, IssueProfile, IssueRequest, PrivateKey};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// Requests larger than this are refused; the agent's are a few kilobytes.
const MAX_BODY: usize = 64 * 1024;

pub(crate) struct Running {
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Running {
    pub fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.thread.join();
    }
}

pub(crate) fn start(
    tls_authority: &Authority,
    service: Arc<Mutex<Service>>,
) -> Result<Running, SimError> {
    let acceptor = tls_acceptor(tls_authority)?;
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (shutdown, stop) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("devicetrust-sim".into())
        .spawn(move || runtime.block_on(serve(listener, acceptor, service, stop)))?;
    Ok(Running {
        addr,
        shutdown,
        thread,
    })
}

fn tls_acceptor(authority: &Authority) -> Result<TlsAcceptor, SimError> {
    let key = PrivateKey::generate_rsa(2048)?;
    let now = OffsetDateTime::now_utc();
    let certificate = authority.issue(IssueRequest {
        subject: "CN=localhost".into(),
        public_key_der: key.public_key_der()?,
        not_before: now - time::Duration::hours(1),
        // Long enough for journeys that run the agent years ahead under a simulated clock.
        not_after: now + time::Duration::days(5 * 365),
        serial: None,
        profile: IssueProfile::TlsServer {
            dns_names: vec!["localhost".into(), CERT_AUTH_HOST.into()],
            ip_addresses: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        },
    })?;
    let tls = |e: rustls::Error| SimError::Tls(e.to_string());
    let provider = crate::pki::install_crypto_provider();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_pkcs8_der()?.to_vec().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(vec![certificate.into()], key_der)
        .map_err(tls)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    service: Arc<Mutex<Service>>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let service = Arc::clone(&service);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let handler = service_fn(move |req| answer(req, Arc::clone(&service)));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), handler)
                        .await;
                });
            }
        }
    }
}

/// A response body: all at once, or one byte per tick (a server that trickles its answer).
enum SimBody {
    Full(Full<Bytes>),
    Trickle {
        bytes: Bytes,
        next: usize,
        tick: tokio::time::Interval,
    },
}

impl SimBody {
    fn trickle(bytes: Vec<u8>, every: Duration) -> SimBody {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        SimBody::Trickle {
            bytes: Bytes::from(bytes),
            next: 0,
            tick,
        }
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            SimBody::Full(full) => Pin::new(full).poll_frame(cx),
            SimBody::Trickle { bytes, next, tick } => {
                if *next >= bytes.len() {
                    return Poll::Ready(None);
                }
                match tick.poll_tick(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(_) => {
                        let byte = bytes.slice(*next..*next + 1);
                        *next += 1;
                        Poll::Ready(Some(Ok(Frame::data(byte))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(full) => full.is_end_stream(),
            SimBody::Trickle { bytes, next, .. } => *next >= bytes.len(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(full) => full.size_hint(),
            SimBody::Trickle { bytes, next, .. } => {
                SizeHint::with_exact(bytes.len().saturating_sub(*next) as u64)
            }
        }
    }
}

async fn answer(
    req: hyper::Request<Incoming>,
    service: Arc<Mutex<Service>>,
) -> Result<hyper::Response<SimBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return Ok(plain(413, "request body too large"));
    };
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_bytes().to_vec(),
    };
    let (response, now) = {
        let mut service = match service.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = service.now();
        (service.handle(request), now)
    };
    if let Some(delay) = response.delay {
        tokio::time::sleep(delay).await;
    }
    // The simulator's own clock (which tests move ahead) in the `Date` header, as a server
    // states its time: the agent compares it with the device's before asking for a certificate.
    let mut builder = hyper::Response::builder()
        .status(response.status)
        .header("content-type", response.content_type)
        .header("date", http_date(now));
    for (name, value) in &response.headers {
        builder = builder.header(*name, value);
    }
    let body = match response.trickle {
        Some(every) => SimBody::trickle(response.body, every),
        None => SimBody::Full(Full::new(Bytes::from(response.body))),
    };
    Ok(builder
        .body(body)
        .unwrap_or_else(|_| plain(500, "response could not be built")))
}

/// `now` as an HTTP `Date` (IMF-fixdate, RFC 9110 §5.6.7).
fn http_date(now: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    now.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}

fn plain(status: u16, text: &'static str) -> hyper::Response<SimBody> {
    let mut response = hyper::Response::new(SimBody::Full(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    response
}
