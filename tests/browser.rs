//! A real browser, given what the agent wrote: headless Chromium presents the agent's
//! certificate to the certAuthDomain host without a prompt, prefers it to a decoy of the same
//! name because of the policy's issuer filter, presents nothing without the policy, and
//! presents the new certificate after a renewal. On the SCEP path (micromdm's CA, whose name
//! has an O and an OU but no CN) the filter the agent writes selects that CA's certificate.
//!
//! Needs root (Chromium's managed policy lives in /etc), Chromium and NSS's tools; it skips with
//! a message without them, except under CI, where `scripts/test.sh` installs them.

mod common;

use common::browser::{self, Event, PolicyGuard, Presented, Stand, CHROMIUM, CHROMIUM_POLICY_DIR};
use common::scepserver::{ScepServer, CHALLENGE};
use common::*;
use devicetrust::integrations::{chrome, nss};
use devicetrust::pki::{Authority, CertificateInfo, IssueProfile, IssueRequest, PrivateKey};
use devicetrust::sim::{CERT_AUTH_HOST, MTLS_CA_NAME};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use zeroize::Zeroizing;

const DECOY_CA: &str = "Decoy Certificate Authority";

/// Chromium reads one real policy directory: one test at a time writes there.
static REAL_POLICY_DIR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long Chromium may take to load the page before it stops by itself. A visit that gets a
/// certificate ends in well under a second; only the visit without the policy runs this long.
const STOP_AFTER: Duration = Duration::from_secs(8);

/// Whether this machine can run the test; under CI it must.
fn prerequisites() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = [CHROMIUM, "/usr/bin/certutil", "/usr/bin/pk12util"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if root {
        format!("not installed: {}", missing.join(", "))
    } else {
        "needs root (Chromium reads managed policy from /etc)".to_owned()
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "the browser test must run under CI: {why}"
    );
    eprintln!("skipped: the browser test {why}");
    false
}

fn fixture_key(name: &str) -> PrivateKey {
    PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn fixture_authority(cert: &str, key: &str) -> Authority {
    let read = |n: &str| std::fs::read_to_string(fixture(n)).unwrap();
    Authority::from_pem(&read(cert), &read(key)).unwrap()
}

/// The stand-in host's TLS identity, from the same test TLS CA the simulator uses.
fn stand(env: &Env) -> (Stand, Vec<u8>) {
    stand_for(env.sim.mtls_ca_der().to_vec())
}

/// As [`stand`], accepting client certificates of `client_ca_der`.
fn stand_for(client_ca_der: Vec<u8>) -> (Stand, Vec<u8>) {
    let tls_ca = fixture_authority("tls-ca.pem", "tls-ca.key");
    let key = fixture_key("device.key");
    let now = OffsetDateTime::now_utc();
    let cert = tls_ca
        .issue(IssueRequest {
            subject: format!("CN={CERT_AUTH_HOST}"),
            public_key_der: key.public_key_der().unwrap(),
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(7),
            serial: None,
            profile: IssueProfile::TlsServer {
                dns_names: vec![CERT_AUTH_HOST.into()],
                ip_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            },
        })
        .unwrap();
    let stand = Stand {
        host: CERT_AUTH_HOST.to_owned(),
        cert_der: cert,
        key_der: key.to_pkcs8_der().unwrap().to_vec(),
        client_ca_der,
    };
    (stand, tls_ca.certificate_der().to_vec())
}

/// `CN=Okta MTLS`, like ours, from a CA that is not Okta's.
fn decoy() -> (Vec<u8>, Zeroizing<Vec<u8>>) {
    let ca = Authority::self_signed_with_key(
        fixture_key("tls-ca.key"),
        DECOY_CA,
        Duration::from_secs(24 * 3600),
    )
    .unwrap();
    let key = fixture_key("mtls-ca.key");
    let now = OffsetDateTime::now_utc();
    let cert = ca
        .issue(IssueRequest {
            subject: "CN=Okta MTLS".into(),
            public_key_der: key.public_key_der().unwrap(),
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(7),
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .unwrap();
    (cert, key.to_pkcs8_der().unwrap())
}

fn policy_with(issuer_cn: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        chrome::POLICY_KEY: [chrome::policy_entry(CERT_AUTH_HOST, &chrome::IssuerFilter {
            cn: Some(issuer_cn.to_owned()),
            o: None,
            ou: None,
        })]
    }))
    .unwrap()
}

fn assert_presented(events: &[Event], cert: &CertificateInfo, accepted: bool) {
    let expected = Presented {
        subject: cert.subject.clone(),
        issuer: cert.issuer.clone(),
        serial_hex: cert.serial_hex.clone(),
        accepted,
    };
    assert_eq!(
        browser::first_presented(events),
        Some(&expected),
        "events: {events:?}"
    );
}

fn page(events: &[Event]) -> &str {
    events
        .iter()
        .find_map(|e| match e {
            Event::BrowserExited { stdout, .. } => Some(stdout.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

#[test]
fn chromium_presents_the_agents_certificate_to_the_cert_auth_host() {
    if !prerequisites() {
        return;
    }
    let _policy_dir = REAL_POLICY_DIR.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let env = Env::new(365);
    let home = env.root.path().join("home").join(USER);
    std::fs::create_dir_all(&home).unwrap();
    let db = nss::NssDb::for_home(&home).unwrap();
    db.ensure().unwrap();

    // The host is trusted the way a real one is: its CA is a trust anchor in the user's NSS
    // database (no certificate checks are turned off).
    let (stand, tls_ca_der) = stand(&env);
    db.add_trusted_ca("devicetrust test TLS CA", &tls_ca_der)
        .unwrap();

    // The decoy goes in first, so NSS even files our identity under the decoy's nickname.
    let (decoy_cert, decoy_key) = decoy();
    let decoy_db = nss::NssDb::for_home(&home).unwrap().with_nickname("decoy");
    decoy_db.add_identity(&decoy_cert, &decoy_key).unwrap();
    let decoy = CertificateInfo::parse(&decoy_cert).unwrap();

    // The agent enrolls and puts its identity in the user's NSS database itself.
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("put in the NSS database"), "{run:?}");
    let first = env.certificate();
    assert_eq!(first.issuer_cn.as_deref(), Some(MTLS_CA_NAME));
    assert!(db.observe(&first.der).unwrap().is_usable());
    assert_eq!(env.ea(), "<result>Healthy</result>\n");

    // The policy file the agent wrote under its root, as Chromium will read it from /etc.
    let agent_policy = || {
        std::fs::read(
            env.root
                .path()
                .join(CHROMIUM_POLICY_DIR.trim_start_matches('/'))
                .join(chrome::OUR_FILE),
        )
        .unwrap()
    };
    let entry = chrome::policy_entry(CERT_AUTH_HOST, &chrome::IssuerFilter::okta());

    // 1. With the agent's policy, Chromium presents the agent's certificate, unprompted.
    {
        let guard = PolicyGuard::install(chrome::OUR_FILE, &agent_policy());
        let report = chrome::inspect(Path::new("/"), &entry).unwrap();
        let chromium = report.iter().find(|r| r.browser == "Chromium").unwrap();
        assert_eq!(chromium.effective_file.as_deref(), Some(guard.path()));
        assert!(chromium.present);
        let events = browser::visit(&stand, &home, STOP_AFTER);
        assert_presented(&events, &first, true);
        assert!(
            page(&events).contains(&format!("serial={}", first.serial_hex)),
            "{events:?}"
        );
    }

    // 2. The policy's issuer filter is what chooses: naming the decoy's issuer instead, the
    //    decoy is presented (and refused by the host).
    {
        let _guard = PolicyGuard::install(chrome::OUR_FILE, &policy_with(DECOY_CA));
        let events = browser::visit(&stand, &home, STOP_AFTER);
        assert_presented(&events, &decoy, false);
    }

    // 3. Without the policy, nothing is presented: the browser is asked for a certificate (it
    //    hangs up to consult its policy) and then waits for a choice nobody makes, until its
    //    own timeout.
    {
        let events = browser::visit(&stand, &home, STOP_AFTER);
        assert_eq!(browser::first_presented(&events), None, "{events:?}");
        assert!(events.contains(&Event::Abandoned), "{events:?}");
        assert!(!events.contains(&Event::Declined), "{events:?}");
    }

    // 4. After a renewal (the agent puts the new identity in, then takes the old one out), the
    //    host sees the new certificate.
    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    let second = env.certificate();
    assert_ne!(second.serial_hex, first.serial_hex);
    let old = db.observe(&first.der).unwrap();
    assert!(!old.present && !old.key_present, "{old:?}");
    assert!(decoy_db.observe(&decoy_cert).unwrap().is_usable());
    {
        // Read again: the file as the renewal left it.
        let _guard = PolicyGuard::install(chrome::OUR_FILE, &agent_policy());
        let events = browser::visit(&stand, &home, STOP_AFTER);
        assert_presented(&events, &second, true);
    }
    assert!(!Path::new(CHROMIUM_POLICY_DIR)
        .join(chrome::OUR_FILE)
        .exists());
    eprintln!("browser test: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn chromium_picks_the_scep_certificate_by_the_filter_the_agent_wrote() {
    if !prerequisites() {
        return;
    }
    let _policy_dir = REAL_POLICY_DIR.lock().unwrap_or_else(|e| e.into_inner());
    let server = ScepServer::start(false);
    let env = Env::new(365);
    let challenge = env.etc().join("scep-challenge");
    std::fs::write(&challenge, CHALLENGE).unwrap();
    std::fs::write(
        env.etc().join("config.toml"),
        format!(
            "cert_auth_host = {CERT_AUTH_HOST:?}\n[scep]\nurl = {:?}\nchallenge_file = {:?}\n\
             ca_fingerprint = {:?}\nsubject = \"CN=Okta MTLS\"\n",
            server.url.as_str(),
            challenge.display().to_string(),
            devicetrust::scep::sha256_fingerprint_hex(&server.ca_der()),
        ),
    )
    .unwrap();
    let home = env.root.path().join("home").join(USER);
    std::fs::create_dir_all(&home).unwrap();
    let db = nss::NssDb::for_home(&home).unwrap();
    db.ensure().unwrap();
    let (stand, tls_ca_der) = stand_for(server.ca_der());
    db.add_trusted_ca("devicetrust test TLS CA", &tls_ca_der)
        .unwrap();
    // A decoy of the same subject from a CA with a CN, in first.
    let (decoy_cert, decoy_key) = decoy();
    nss::NssDb::for_home(&home)
        .unwrap()
        .with_nickname("decoy")
        .add_identity(&decoy_cert, &decoy_key)
        .unwrap();

    let run = env.run(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", server.log());
    let ours = env.certificate();
    assert_eq!(
        ours.issuer_cn, None,
        "micromdm's CA has no CN: {}",
        ours.issuer
    );
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
    let written = std::fs::read(
        env.root
            .path()
            .join(CHROMIUM_POLICY_DIR.trim_start_matches('/'))
            .join(chrome::OUR_FILE),
    )
    .unwrap();
    let policy: serde_json::Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(
        policy[chrome::POLICY_KEY],
        serde_json::json!([chrome::policy_entry(
            CERT_AUTH_HOST,
            &chrome::IssuerFilter::of(&ours)
        )])
    );

    // What the agent wrote selects the SCEP certificate, unprompted.
    {
        let _guard = PolicyGuard::install(chrome::OUR_FILE, &written);
        let events = browser::visit(&stand, &home, STOP_AFTER);
        assert_presented(&events, &ours, true);
    }
    // The filter an older agent wrote on this path (Okta's CA name) selects nothing.
    {
        let _guard = PolicyGuard::install(chrome::OUR_FILE, &policy_with(chrome::OKTA_ISSUER_CN));
        let events = browser::visit(&stand, &home, STOP_AFTER);
        assert_eq!(browser::first_presented(&events), None, "{events:?}");
    }
}
