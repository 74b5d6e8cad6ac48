//! An Okta-compatible Device Trust service on loopback, for `devicetrust demo` and the tests.
//!
//! It speaks the wire protocol of `../shared/spec/okta-device-trust-protocol.md` over HTTPS with
//! throwaway CAs, and it is strict on purpose: it rejects what Okta would reject (a wrong org
//! token, a CSR whose signature fails, a renewal token not signed by a certificate it issued to
//! that device, stale tokens, missing fields, a wrong content type, a sixth unbound certificate),
//! so that it catches the agent's mistakes instead of mirroring them. Faults can be injected per
//! endpoint, and every request is logged for tests to assert on.

mod faults;
mod server;
mod service;

pub use faults::{Endpoint, Fault};
pub use service::{IssuedRecord, RequestRecord};

use crate::pki::{Authority, PkiError};
use service::Service;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The issuer CN of Okta's device-trust CA.
pub const MTLS_CA_NAME: &str = "MTLS Certificate Authority";
/// The certAuthDomain the simulator's metadata answers with.
pub const CERT_AUTH_HOST: &str = "sim-devicetrust.localhost";
/// Okta issues at most this many unbound certificates per device.
pub const MAX_UNBOUND_CERTIFICATES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator: {0}")]
    Pki(#[from] PkiError),
    #[error("simulator: {0}")]
    Io(#[from] std::io::Error),
    #[error("simulator: TLS setup failed: {0}")]
    Tls(String),
}

/// How a simulator starts.
pub struct SimConfig {
    /// The org secret key the service accepts.
    pub org_token: String,
    /// Lifetime of issued certificates (Okta: one year).
    pub validity: Duration,
    /// The device-trust CA; a throwaway one when `None`.
    pub mtls_authority: Option<Authority>,
    /// The CA of the HTTPS server certificate; a throwaway one when `None`.
    pub tls_authority: Option<Authority>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            org_token: "sim-org-token-0123456789".into(),
            validity: Duration::from_secs(365 * 24 * 3600),
            mtls_authority: None,
            tls_authority: None,
        }
    }
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    tls_ca_pem: String,
    mtls_ca_der: Vec<u8>,
    service: Arc<Mutex<Service>>,
    server: Option<server::Running>,
}

impl Simulator {
    pub fn start(config: SimConfig) -> Result<Simulator, SimError> {
        crate::pki::install_crypto_provider();
        let tls_authority = match config.tls_authority {
            Some(a) => a,
            None => Authority::new_self_signed("devicetrust simulator TLS CA", TEN_YEARS)?,
        };
        let mtls_authority = match config.mtls_authority {
            Some(a) => a,
            None => Authority::new_self_signed(MTLS_CA_NAME, TEN_YEARS)?,
        };
        let tls_ca_pem = tls_authority.certificate_pem();
        let mtls_ca_der = mtls_authority.certificate_der().to_vec();
        let service = Arc::new(Mutex::new(Service::new(
            config.org_token,
            config.validity,
            mtls_authority,
        )));
        let server = server::start(&tls_authority, Arc::clone(&service))?;
        Ok(Simulator {
            addr: server.addr,
            tls_ca_pem,
            mtls_ca_der,
            service,
            server: Some(server),
        })
    }

    /// The org URL to enroll with.
    pub fn org_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The trust anchor of the HTTPS endpoint (pass it as `--ca-file`).
    pub fn tls_ca_pem(&self) -> &str {
        &self.tls_ca_pem
    }

    /// The device-trust CA certificate that signs issued certificates.
    pub fn mtls_ca_der(&self) -> &[u8] {
        &self.mtls_ca_der
    }

    pub fn org_token(&self) -> String {
        self.with(|s| s.org_token.clone())
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.with(|s| s.requests.clone())
    }

    /// Every certificate issued so far.
    pub fn issued(&self) -> Vec<IssuedRecord> {
        self.with(|s| s.issued.clone())
    }

    /// Lifetime of certificates issued from now on.
    pub fn set_validity(&self, validity: Duration) {
        self.with(|s| s.validity = validity);
    }

    /// Moves the service's clock `offset` ahead of the real one (run the agent with the same
    /// offset, e.g. under `faketime`, to walk a device through simulated days).
    pub fn set_clock_offset(&self, offset: time::Duration) {
        self.with(|s| s.clock_offset = offset);
    }

    /// Certificates issued from now on start `backdate` in the past: the demo's way of showing
    /// an identity near its expiry, and a renewal that moves the expiry.
    pub fn set_backdate(&self, backdate: Duration) {
        self.with(|s| s.backdate = backdate);
    }

    /// The certAuthDomain the metadata answers with from now on (an org whose domain moved).
    pub fn set_cert_auth_host(&self, host: &str) {
        self.with(|s| s.cert_auth_host = host.to_owned());
    }

    /// Answers the next `times` requests to `endpoint` with `fault` (`None`: until cleared).
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: Option<u32>) {
        self.with(|s| {
            s.faults
                .push(faults::Injection::new(endpoint, fault, times))
        });
    }

    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear());
    }

    fn with<T>(&self, f: impl FnOnce(&mut Service) -> T) -> T {
        // A panic in a request handler must not take the test's view of the log with it.
        let mut guard = match self.service.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }
}

const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
