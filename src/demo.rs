//! `devicetrust demo`: the whole life of a device identity on this machine, with no setup.
//!
//! It starts the simulator, writes a configuration into a temporary root, and runs the same
//! agent code a Jamf policy would: enroll, status and EA, renew, uninstall. Nothing outside the
//! temporary root is touched, and it is deleted at the end.

use crate::agent::{Agent, AgentError, RenewOutcome};
use crate::config::{self, Flags, Layer};
use crate::sim::{SimConfig, SimError, Simulator};
use crate::{host, report};
use std::path::Path;
use std::time::Duration;
use tracing::info;

/// Certificates last a year, as Okta's do.
const VALIDITY_DAYS: u64 = 365;
/// The first certificate is issued as if 340 days ago: 25 days left, so its renewal is due.
const FIRST_CERTIFICATE_AGE_DAYS: u64 = 340;
const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Sim(#[from] SimError),
    #[error("demo: {0}")]
    Agent(#[from] AgentError),
    #[error("demo: cannot prepare the temporary root: {0}")]
    Io(#[from] std::io::Error),
}

pub fn run() -> Result<(), DemoError> {
    let root = tempfile::Builder::new()
        .prefix("devicetrust-demo-")
        .tempdir()?;
    info!("devicetrust demo: a device's certificate from enrollment to uninstall");
    info!("1. starting a local Okta-compatible service with a throwaway CA");
    let sim = Simulator::start(SimConfig {
        validity: DAY * VALIDITY_DAYS as u32,
        ..SimConfig::default()
    })?;
    sim.set_backdate(DAY * FIRST_CERTIFICATE_AGE_DAYS as u32);
    info!(
        "   org URL {}; everything goes under {}",
        sim.org_url(),
        root.path().display()
    );
    write_demo_config(root.path(), &sim)?;

    let agent = || -> Result<Agent, DemoError> {
        let flags = Flags {
            root: Some(root.path().to_owned()),
            user: Some("demo".into()),
            device_uuid: Some("D3M0D3M0-0000-4000-8000-00000000CAFE".into()),
            device_name: Some("Demo Mac".into()),
            ..Flags::default()
        };
        let config = config::load(&flags, &Default::default(), Layer::default())
            .map_err(AgentError::from)?;
        Ok(Agent::new(config, host::for_root(root.path()))?)
    };

    info!("2. enroll: new RSA 2048 key, CSR, POST to the enroll endpoint, checks, store");
    agent()?.enroll()?;
    show(&mut agent()?)?;
    where_the_identity_went(&agent()?);

    info!("3. enroll again: a valid certificate is there, so no request is made");
    agent()?.enroll()?;

    info!(
        "4. renew: {} days left; every device has started renewing by 30 days before expiry",
        VALIDITY_DAYS - FIRST_CERTIFICATE_AGE_DAYS
    );
    info!("   with a CMS renewal token signed by the current key, and a new key");
    sim.set_backdate(Duration::ZERO);
    let before = expiry(&mut agent()?)?;
    let outcome = agent()?.renew(false, None)?;
    if outcome != RenewOutcome::Renewed {
        info!("   (renewal outcome: {outcome:?})");
    }
    let after = expiry(&mut agent()?)?;
    info!("   the expiry moved from {before} to {after}");
    show(&mut agent()?)?;

    info!("5. uninstall: remove the identity and the agent's state");
    agent()?.uninstall(false)?;
    let gone = agent()?.status(false)?;
    info!(
        "   Extension Attribute now: {}",
        report::ea_status(gone.status)
    );

    let requests = sim.requests();
    info!(
        "done: the service saw {} requests ({}); the temporary root is removed",
        requests.len(),
        requests
            .iter()
            .map(|r| format!("{} {}", r.method, r.status))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn write_demo_config(root: &Path, sim: &Simulator) -> Result<(), DemoError> {
    let etc = crate::paths::rooted(root, &crate::paths::system_config_file())
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.to_path_buf());
    // The demo's own temporary root: private folder, token readable by root only.
    {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&etc)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(etc.join("org-token"))?
            .write_all(sim.org_token().as_bytes())?;
    }
    let token = etc.join("org-token");
    let ca = etc.join("simulator-ca.pem");
    std::fs::write(&ca, sim.tls_ca_pem())?;
    let config = format!(
        "org_url = {:?}\norg_token_file = {:?}\nca_file = {:?}\n",
        sim.org_url(),
        token.display().to_string(),
        ca.display().to_string()
    );
    std::fs::write(
        crate::paths::rooted(root, &crate::paths::system_config_file()),
        config,
    )?;
    Ok(())
}

/// On Linux, the NSS database the browsers read the identity from (when NSS's tools are here;
/// without them the run has said so in a `WARN:` line).
fn where_the_identity_went(agent: &Agent) {
    let nssdb = agent
        .paths()
        .home
        .join(crate::integrations::nss::DATABASE_DIR);
    if nssdb.join("cert9.db").exists() {
        info!(
            "   Chrome and Chromium on Linux read the identity from the user's NSS database: {}",
            nssdb.display()
        );
    }
}

/// The stored certificate's expiry, as the expiry attribute shows it.
fn expiry(agent: &mut Agent) -> Result<String, DemoError> {
    let status = agent.status(false)?;
    Ok(status
        .certificate
        .map(|c| crate::timefmt::rfc3339(c.not_after))
        .unwrap_or_else(|| "none".into()))
}

fn show(agent: &mut Agent) -> Result<(), DemoError> {
    let status = agent.status(false)?;
    for line in report::status_lines(&status) {
        info!("   {line}");
    }
    info!(
        "   Extension Attribute: {}",
        report::ea_status(status.status)
    );
    info!(
        "   Expiry attribute:    {}",
        report::ea_expiry(status.certificate.as_ref())
    );
    Ok(())
}
