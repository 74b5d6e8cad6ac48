//! How SCEP operations reach the CA: GET or POST of one pkiMessage over the shared HTTP client
//! (timeouts, retries, no redirects; plain http allowed, as SCEP's own protection is CMS), or a
//! simulated CA in unit tests.

use std::sync::Arc;
use std::time::Duration;

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use url::Url;

use super::{Operation, ScepError};
use crate::http::{self, HttpSettings, Sender};

/// Waits between polls and retries: `std::thread::sleep`, or a recorder in tests.
pub type Sleeper = Arc<dyn Fn(Duration) + Send + Sync>;

/// A 2xx answer.
#[derive(Clone, Debug)]
pub struct Response {
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The server's clock, from the `Date` header (`http::clock`).
    pub server_time: Option<time::OffsetDateTime>,
}

/// How SCEP operations reach the server: HTTP in production, a simulated CA in unit tests.
pub trait Transport: Send {
    /// `GET <url>?operation=<operation>[&message=<message>]`.
    fn get(
        &self,
        op: Operation,
        operation: &str,
        message: Option<&str>,
    ) -> Result<Response, ScepError>;
    /// `POST <url>?operation=<operation>` with a binary pkiMessage body.
    fn post(&self, op: Operation, operation: &str, body: &[u8]) -> Result<Response, ScepError>;
}

/// The HTTP transport: the shared client (timeouts, retries, no redirects); plain http allowed.
pub struct HttpTransport {
    url: Url,
    client: Client,
    settings: HttpSettings,
    sleeper: Sleeper,
}

impl HttpTransport {
    pub fn new(url: Url, settings: &HttpSettings, sleeper: Sleeper) -> Result<Self, ScepError> {
        let client = http::build_client(settings).map_err(ScepError::Config)?;
        Ok(HttpTransport {
            url,
            client,
            settings: settings.clone(),
            sleeper,
        })
    }

    fn send(&self, op: Operation, url: &Url, body: Option<&[u8]>) -> Result<Response, ScepError> {
        let mut rng = rand_core::OsRng;
        let mut sender = Sender {
            settings: &self.settings,
            service: "the SCEP server",
            sleeper: &*self.sleeper,
            rng: &mut rng,
        };
        let shown = self.url.as_str();
        let reply = http::send_with_retry(&mut sender, url, || {
            let request = match body {
                Some(body) => self
                    .client
                    .post(url.clone())
                    .header(CONTENT_TYPE, "application/x-pki-message")
                    .body(body.to_vec()),
                None => self.client.get(url.clone()),
            };
            request.header(USER_AGENT, self.settings.user_agent.as_str())
        })
        .map_err(|e| ScepError::from_http(op, shown, e))?;
        if !reply.status.is_success() {
            return Err(ScepError::HttpStatus {
                op,
                status: reply.status.as_u16(),
                url: shown.to_owned(),
                snippet: http::body_snippet(&reply.body, 80),
            });
        }
        Ok(Response {
            content_type: reply
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            server_time: http::clock::server_time(&reply.headers),
            body: reply.body,
        })
    }

    fn url_for(&self, operation: &str, message: Option<&str>) -> Url {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("operation", operation);
            if let Some(message) = message {
                // Percent-encoded here: base64's '+', '/' and '=' are not safe in a query.
                query.append_pair("message", message);
            }
        }
        url
    }
}

impl Transport for HttpTransport {
    fn get(
        &self,
        op: Operation,
        operation: &str,
        message: Option<&str>,
    ) -> Result<Response, ScepError> {
        self.send(op, &self.url_for(operation, message), None)
    }

    fn post(&self, op: Operation, operation: &str, body: &[u8]) -> Result<Response, ScepError> {
        self.send(op, &self.url_for(operation, None), Some(body))
    }
}
