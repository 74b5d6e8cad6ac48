//! The HTTP settings every request of a run shares (trust, timeouts, retries), and the
//! reachability probe behind `--check-network`.

use super::AgentError;
use crate::config::{Config, ConfigError};
use crate::http::{HttpSettings, RetryPolicy};
use crate::okta::{self, OktaClient, OrgUrl};
use crate::platform::Platform;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// The configured trust, timeouts and retries (`retry` overrides the policy).
pub fn http_settings(
    config: &Config,
    user_agent: String,
    retry: Option<RetryPolicy>,
) -> Result<HttpSettings, AgentError> {
    let net = &config.network;
    let extra_roots_pem = match &config.ca_file {
        // A CA bundle the size of a whole system trust store is about 250 KiB.
        Some(path) => {
            crate::securefs::read_trusted(path, crate::securefs::DOCUMENT_MAX, "the CA file")
                .map_err(ConfigError::Read)?
                .to_vec()
        }
        None => Vec::new(),
    };
    Ok(HttpSettings {
        connect_timeout: net.connect_timeout,
        timeout: net.timeout,
        retry: retry.unwrap_or(RetryPolicy {
            max_attempts: net.max_attempts,
            base_delay: net.retry_base_delay,
            max_rate_limit_wait: net.max_rate_limit_wait,
            ..RetryPolicy::default()
        }),
        extra_roots_pem,
        user_agent,
    })
}

/// An Okta client speaking as Okta's registration task.
pub fn okta_client(
    config: &Config,
    platform: &dyn Platform,
    org: &OrgUrl,
    retry: Option<RetryPolicy>,
) -> Result<OktaClient, AgentError> {
    let settings = okta_settings(config, platform, retry)?;
    Ok(OktaClient::new(org.clone(), &settings)?)
}

/// The settings of Okta requests: the User-Agent of Okta's registration task.
pub fn okta_settings(
    config: &Config,
    platform: &dyn Platform,
    retry: Option<RetryPolicy>,
) -> Result<HttpSettings, AgentError> {
    let user_agent = okta::user_agent(platform.arch(), &platform.os_version());
    http_settings(config, user_agent, retry)
}

/// The User-Agent of SCEP requests.
pub fn scep_settings(config: &Config) -> Result<HttpSettings, AgentError> {
    let user_agent = format!("devicetrust/{}", env!("CARGO_PKG_VERSION"));
    http_settings(config, user_agent, None)
}

/// Refuses a certificate request while the device's clock is more than five minutes from
/// the server's (`server`, from its `Date` header; no header is no evidence).
pub fn check_clock(server: Option<time::OffsetDateTime>) -> Result<(), AgentError> {
    let Some(server) = server else {
        return Ok(());
    };
    let now = time::OffsetDateTime::now_utc();
    match crate::http::clock::skew(server, now) {
        Some(_) => Err(AgentError::ClockSkew {
            device: crate::timefmt::rfc3339(now),
            server: crate::timefmt::rfc3339(server),
        }),
        None => Ok(()),
    }
}

/// The configured SCEP CA's certificates as GetCACert gives them, checked against the pinned
/// fingerprint where one is set (`ScepClient::discover`).
pub fn scep_ca_certificates(config: &Config) -> Result<Vec<Vec<u8>>, AgentError> {
    let Some(settings) = config.scep_settings()? else {
        return Ok(Vec::new());
    };
    let client = crate::scep::ScepClient::new(&settings, &scep_settings(config)?)?;
    Ok(client.discover()?.certificates().to_vec())
}

/// Whether the org answers, waiting up to `network.wait_for_network_secs` for the network (or
/// a ZTNA tunnel) to come up first, as a login-time check must: a failure right after wake is
/// no verdict. `None` when there is no org to probe (SCEP-only configurations).
pub fn org_reachable(config: &Config, platform: &dyn Platform) -> Option<bool> {
    let org = config.org_url.as_ref()?;
    let deadline = Instant::now() + config.network.wait_for_network;
    let single_try = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let client = match okta_client(config, platform, org, Some(single_try)) {
        Ok(c) => c,
        Err(e) => {
            warn!("cannot check the network: {e}");
            return Some(false);
        }
    };
    loop {
        match client.probe() {
            Ok(()) => return Some(true),
            // A server certificate outside its dates is the clock's (or the server's) doing:
            // waiting for the network does not fix it.
            Err(e)
                if e.is_transient()
                    && !matches!(e, crate::okta::OktaError::NotValidNow { .. })
                    && Instant::now() < deadline =>
            {
                debug!("{e}; waiting for the network");
                // Polling a network that is coming up: a fixed, short pause between probes.
                std::thread::sleep(Duration::from_secs(2));
            }
            Err(e) => {
                warn!("{e}");
                return Some(false);
            }
        }
    }
}
