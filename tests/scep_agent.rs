//! The `devicetrust` binary on the SCEP path (`--scep-url`), against micromdm's real scepserver:
//! enroll, renew, status, the health chain, and the failures an admin will meet; and against the
//! tests' own CA for the answers no real CA gives (a foreign signer or issuer, a huge answer).

mod common;

use common::scepca::{Answer, TestScepCa};
use common::scepserver::{free_port, ScepServer, CHALLENGE};
use common::{Run, USER};
use devicetrust::pki::CertificateInfo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A device root configured for SCEP enrollment against `url`.
struct Device {
    root: tempfile::TempDir,
}

impl Device {
    fn new(url: &str, challenge: &str, extra: &str) -> Device {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc/devicetrust");
        std::fs::create_dir_all(&etc).unwrap();
        let challenge_file = etc.join("scep-challenge");
        std::fs::write(&challenge_file, format!("{challenge}\n")).unwrap();
        std::fs::write(
            etc.join("config.toml"),
            format!(
                "[scep]\nurl = {url:?}\nchallenge_file = {:?}\nsubject = \"CN=devicetrust test,O=Example\"\n{extra}\n[network]\ntimeout_secs = 10\nconnect_timeout_secs = 2\nmax_attempts = 2\nretry_base_delay_ms = 5\n",
                challenge_file.display().to_string()
            ),
        )
        .unwrap();
        Device { root }
    }

    /// A device of `server`'s, pinned to its CA: scepserver speaks plain http, which carries
    /// the challenge safely only to a pinned CA (unless `extra` pins one of its own).
    fn for_server(server: &ScepServer, challenge: &str, extra: &str) -> Device {
        if extra.contains("ca_fingerprint") {
            return Device::new(server.url.as_str(), challenge, extra);
        }
        Device::pinned(server.url.as_str(), &server.ca_der(), challenge, extra)
    }

    /// A device of the tests' own CA, pinned to it.
    fn for_test_ca(ca: &TestScepCa, challenge: &str) -> Device {
        Device::pinned(ca.url.as_str(), &ca.ca_der, challenge, "")
    }

    fn pinned(url: &str, ca_der: &[u8], challenge: &str, extra: &str) -> Device {
        let pin = format!(
            "ca_fingerprint = {:?}\n",
            devicetrust::scep::sha256_fingerprint_hex(ca_der)
        );
        Device::new(url, challenge, &format!("{pin}{extra}"))
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_devicetrust"));
        cmd.args(args).arg("--root").arg(self.root.path()).args([
            "--user",
            USER,
            "--device-uuid",
            "5CE95CE9-0000-4000-8000-000000000001",
            "--device-name",
            "SCEP Mac",
        ]);
        for (key, _) in std::env::vars() {
            if key.starts_with("DEVICETRUST_") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    /// Every file of the device, path -> bytes: the store, the state, the NSS database, the
    /// renewal job and its log, the configuration.
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        files_under(self.root.path())
    }

    /// The host browsers present the certificate to, as an admin adds it to the configuration.
    fn name_cert_auth_host(&self, host: &str) {
        let config = self.root.path().join("etc/devicetrust/config.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("cert_auth_host = {host:?}\n{text}")).unwrap();
    }

    fn challenge_file(&self) -> PathBuf {
        self.root.path().join("etc/devicetrust/scep-challenge")
    }

    fn store_dir(&self) -> PathBuf {
        self.root
            .path()
            .join("home")
            .join(USER)
            .join(".local/state/devicetrust/identity")
    }

    fn certificate(&self) -> CertificateInfo {
        let current = std::fs::read_to_string(self.store_dir().join("CURRENT")).unwrap();
        let pem = std::fs::read_to_string(self.store_dir().join(current.trim()).join("cert.pem"))
            .unwrap();
        CertificateInfo::from_pem(&pem).unwrap()
    }

    fn cert_path(&self) -> PathBuf {
        let current = std::fs::read_to_string(self.store_dir().join("CURRENT")).unwrap();
        self.store_dir().join(current.trim()).join("cert.pem")
    }
}

/// Every regular file below `dir`, path -> bytes; links are not followed.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(entry.path()),
                Ok(t) if t.is_file() => {
                    files.insert(entry.path(), std::fs::read(entry.path()).unwrap());
                }
                _ => {}
            }
        }
    }
    files
}

fn openssl_verifies(ca: &Path, cert: &Path) -> bool {
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(ca)
        .arg(cert)
        .output()
        .unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains(": OK")
}

#[test]
fn scep_enrollment_stores_a_certificate_the_ca_vouches_for() {
    let server = ScepServer::start(false);
    let device = Device::for_server(&server, CHALLENGE, "");
    let run = device.run(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", server.log());
    assert!(
        run.stdout.contains("INFO: enrolled: certificate"),
        "{run:?}"
    );
    assert!(openssl_verifies(
        &server.depot().join("ca.pem"),
        &device.cert_path()
    ));
    assert_eq!(
        device.certificate().subject_cn.as_deref(),
        Some("devicetrust test")
    );

    let status: serde_json::Value =
        serde_json::from_str(&device.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["method"], "scep");
    assert_eq!(status["scep_url"], server.url.as_str());
    assert_eq!(status["status"], "Healthy", "{status}");
    assert_eq!(device.run(&["ea"]).stdout, "<result>Healthy</result>\n");

    // A second enroll asks the CA for nothing.
    let before = server.log().matches("PKIOperation").count();
    let run = device.run(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(server.log().matches("PKIOperation").count(), before);
}

#[test]
fn a_wrong_challenge_names_the_fail_info_and_stores_nothing() {
    let server = ScepServer::start(false);
    let device = Device::for_server(&server, "not-the-challenge", "");
    let run = device.run(&["enroll"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("badRequest"), "{run:?}");
    assert!(!run.all_output().contains("not-the-challenge"));
    assert!(!device.store_dir().exists());
}

#[test]
fn a_ca_fingerprint_mismatch_is_refused_before_the_key_is_sent() {
    let server = ScepServer::start(false);
    let wrong = vec!["00"; 32].join(":");
    let device = Device::for_server(&server, CHALLENGE, &format!("ca_fingerprint = {wrong:?}"));
    let run = device.run(&["enroll"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.error().to_lowercase().contains("fingerprint"),
        "{run:?}"
    );
    assert!(!server.log().contains("PKIOperation"), "{}", server.log());
    assert!(!device.store_dir().exists());
}

#[test]
fn scep_renewal_replaces_the_identity() {
    let server = ScepServer::start(true);
    let device = Device::for_server(&server, CHALLENGE, "");
    assert_eq!(device.run(&["enroll"]).code, 0);
    let old = device.certificate();
    let run = device.run(&["renew", "--force"]);
    assert_eq!(run.code, 0, "{run:?}\n{}", server.log());
    let new = device.certificate();
    assert_ne!(new.serial_hex, old.serial_hex);
    assert_ne!(new.public_key_der, old.public_key_der);
    assert!(openssl_verifies(
        &server.depot().join("ca.pem"),
        &device.cert_path()
    ));
    let status: serde_json::Value =
        serde_json::from_str(&device.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["last_renewal"]["ok"], true);
}

#[test]
fn plain_http_without_a_pinned_ca_is_refused_before_any_request() {
    let server = ScepServer::start(false);
    let device = Device::new(server.url.as_str(), CHALLENGE, "");
    let run = device.run(&["enroll"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.error().contains("scep.ca_fingerprint"), "{run:?}");
    assert!(!server.log().contains("GetCACert"), "{}", server.log());
    assert!(!device.store_dir().exists());
}

#[test]
fn a_scep_server_that_is_down_defers_with_exit_75() {
    let device = Device::new(
        &format!("http://127.0.0.1:{}/scep", free_port()),
        CHALLENGE,
        &format!("ca_fingerprint = {:?}", "ab".repeat(32)),
    );
    let run = device.run(&["enroll"]);
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("127.0.0.1"), "{run:?}");
    assert!(!device.store_dir().exists());
}

#[test]
fn the_challenge_never_appears_in_output_files_or_argv() {
    let server = ScepServer::start(true);
    let device = Device::for_server(&server, CHALLENGE, "");
    let scratch = tempfile::tempdir().unwrap();
    let trace_log = scratch.path().join("execve.log");
    // The agent's temporary files land here, to be searched with the rest.
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut output = String::new();
    let mut traced = false;
    for args in [
        &["enroll", "-v"][..],
        &["renew", "--force", "-v"],
        &["repair", "-v"],
        &["status", "-v"],
        &["status", "--json"],
        &["ea"],
    ] {
        let mut cmd = device.command(args);
        cmd.env("TMPDIR", &tmp);
        if let Some(under_strace) = common::execve_traced(&cmd, &trace_log) {
            cmd = under_strace;
            traced = true;
        }
        let run = Run::from(cmd.output().unwrap());
        assert!(run.code == 0, "{args:?}: {run:?}\n{}", server.log());
        output.push_str(&run.all_output());
    }
    // The output (and so every log line), with the -v lines that name each child.
    assert!(output.contains("INFO: renewed"), "{output}");
    assert!(output.contains("DEBUG: starting "), "{output}");
    assert!(!output.contains(CHALLENGE), "{output}");

    // Every file under the root but the admin's own challenge file, and every temporary one.
    let mut files = device.files();
    assert!(files.remove(&device.challenge_file()).is_some());
    let state = device.store_dir().parent().unwrap().join("state.json");
    let nss = device
        .root
        .path()
        .join("home")
        .join(USER)
        .join(".pki/nssdb");
    for must in [device.cert_path(), state] {
        assert!(
            files.contains_key(&must),
            "{must:?} not among {:?}",
            files.keys()
        );
    }
    assert!(
        files.keys().any(|p| p.starts_with(&nss)),
        "{:?}",
        files.keys()
    );
    files.extend(files_under(&tmp));
    for (path, bytes) in &files {
        assert!(
            !String::from_utf8_lossy(bytes).contains(CHALLENGE),
            "the challenge is in {}",
            path.display()
        );
    }

    // What really ran: the NSS tools, none with the challenge in its command line.
    if traced {
        let trace = std::fs::read_to_string(&trace_log).unwrap();
        let ran = common::executed(&trace);
        assert!(ran.iter().any(|c| c.contains("/certutil ")), "{ran:#?}");
        assert!(!trace.contains(CHALLENGE), "{ran:#?}");
    }
}

#[test]
fn a_renewal_the_ca_finds_too_early_says_why_and_what_to_change() {
    // scepserver's default: no second certificate for a subject until 14 days before the
    // current one expires. A device renewing by 30 days meets that refusal first.
    let server = ScepServer::start(false);
    let device = Device::for_server(&server, CHALLENGE, "");
    assert_eq!(device.run(&["enroll"]).code, 0);
    let old = device.certificate();
    let run = device.run(&["renew", "--force"]);
    assert_eq!(run.code, 1, "{run:?}\n{}", server.log());
    let error = run.error();
    assert!(error.contains("refused the renewal"), "{run:?}");
    assert!(error.contains("renewal window"), "{run:?}");
    assert!(error.contains("-allowrenew"), "{run:?}");
    assert!(!run.all_output().contains(CHALLENGE));
    assert_eq!(device.certificate().serial_hex, old.serial_hex);
}

#[test]
fn the_browser_filter_names_the_scep_cas_issuer_and_a_stale_one_is_replaced() {
    let server = ScepServer::start(false);
    let device = Device::for_server(&server, CHALLENGE, "");
    device.name_cert_auth_host("dt.example.com");
    assert_eq!(device.run(&["enroll"]).code, 0);
    let policy = device
        .root
        .path()
        .join("etc/chromium/policies/managed/devicetrust.json");
    let read = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&policy).unwrap()).unwrap()
    };
    // micromdm's CA is `C=US, O=scep-ca, OU=SCEP CA`: no CN to filter on.
    let entry = r#"{"pattern":"https://dt.example.com","filter":{"ISSUER":{"O":"scep-ca","OU":"SCEP CA"}}}"#;
    assert_eq!(
        read(),
        serde_json::json!({ "AutoSelectCertificateForUrls": [entry] })
    );
    assert_eq!(device.run(&["ea"]).stdout, "<result>Healthy</result>\n");

    // What an older agent wrote here: Okta's CA name, which this certificate's issuer lacks.
    let stale = r#"{"pattern":"https://dt.example.com","filter":{"ISSUER":{"CN":"MTLS Certificate Authority"}}}"#;
    std::fs::write(
        &policy,
        serde_json::json!({ "AutoSelectCertificateForUrls": [stale] }).to_string(),
    )
    .unwrap();
    assert_eq!(
        device.run(&["ea"]).stdout,
        "<result>Browser Policy Missing</result>\n"
    );
    let run = device.run(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        read(),
        serde_json::json!({ "AutoSelectCertificateForUrls": [entry] })
    );
    assert_eq!(device.run(&["ea"]).stdout, "<result>Healthy</result>\n");
}

/// A CA that turns to `fault`: a fresh device's enrollment and an enrolled device's renewal are
/// both refused with one ERROR line naming `cause`, and the store is exactly as it was. The
/// same CA answering honestly enrolls the device first, so the refusal is the fault's doing.
fn refused_with_the_store_kept(fault: Answer, cause: &str) {
    let ca = TestScepCa::start(fault.clone());
    let fresh = Device::for_test_ca(&ca, CHALLENGE);
    let run = fresh.run(&["enroll"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains(cause), "{run:?}");
    assert!(!fresh.store_dir().exists());
    assert!(ca.operations().contains(&"PKIOperation".to_owned()));

    ca.set_answer(Answer::Honest);
    let device = Device::for_test_ca(&ca, CHALLENGE);
    let run = device.run(&["enroll"]);
    assert_eq!(run.code, 0, "{run:?}");
    let before = files_under(&device.store_dir());
    ca.set_answer(fault);
    let run = device.run(&["renew", "--force"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("RenewalReq"), "{run:?}");
    assert!(run.error().contains(cause), "{run:?}");
    assert!(
        files_under(&device.store_dir()) == before,
        "the store changed"
    );
    assert_eq!(device.run(&["ea"]).stdout, "<result>Healthy</result>\n");
}

#[test]
fn a_cert_rep_signed_by_anyone_but_the_ca_is_refused() {
    refused_with_the_store_kept(
        Answer::UnrelatedSigner,
        "it is signed by CN=unrelated signer",
    );
}

#[test]
fn a_certificate_another_ca_signed_is_refused() {
    refused_with_the_store_kept(
        Answer::ForeignIssuer,
        "the issued certificate is not signed by the SCEP CA",
    );
}

#[test]
fn an_oversized_answer_is_refused_and_memory_stays_bounded() {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    let ca = TestScepCa::start(Answer::Oversized(2 * KIB));
    let device = Device::for_test_ca(&ca, CHALLENGE);
    let enroll = |size: u64| {
        ca.set_answer(Answer::Oversized(size));
        common::run_with_peak_memory(&mut device.command(&["enroll"]))
    };
    // A small answer (garbage, so the enrollment fails further on): the agent's own footprint.
    let (small, baseline) = enroll(2 * KIB);
    assert_ne!(small.code, 0, "{small:?}");
    assert!(!small.all_output().contains("larger than"), "{small:?}");
    for size in [2 * MIB, 64 * MIB] {
        let (run, peak) = enroll(size);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.error().ends_with(
                "SCEP GetCACaps answer is unusable: the answer is larger than 1048576 bytes"
            ),
            "{run:?}"
        );
        assert!(!device.store_dir().exists());
        // At most the 1 MiB cap (and its buffer) above the small answer's peak; an agent that
        // read the whole 64 MiB would hold all of it.
        eprintln!("peak {peak} KiB with a {size}-byte answer; {baseline} KiB with 2 KiB");
        assert!(
            peak < baseline + 8 * 1024,
            "{size}-byte answer: peak {peak} KiB, {baseline} KiB with 2 KiB"
        );
    }
}

/// A device an older agent enrolled over SCEP: root's record names the CA by URL and pin but
/// holds none of its certificates. Nothing is spent: the first run as root with the network
/// fetches them, and from then on the stored identity is judged by the CA's signature.
#[test]
fn an_upgraded_scep_device_learns_its_cas_certificates_without_a_new_certificate() {
    let server = ScepServer::start(false);
    let device = Device::for_server(&server, CHALLENGE, "");
    device.name_cert_auth_host("dt.example.com");
    assert_eq!(device.run(&["enroll"]).code, 0);
    let serial = device.certificate().serial_hex;
    let issued = server.log().matches("PKIOperation").count();

    let record_path = device
        .root
        .path()
        .join("var/lib/devicetrust/users")
        .join(format!("{USER}.json"));
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    let fetched = record["scep_ca_certificates"].clone();
    assert!(!fetched.as_array().unwrap().is_empty(), "{record}");
    record
        .as_object_mut()
        .unwrap()
        .remove("scep_ca_certificates");
    std::fs::write(&record_path, serde_json::to_vec(&record).unwrap()).unwrap();

    // Until root fetches them, the browsers' filter cannot be built from the record.
    let status = device.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["status"], "Browser Policy Missing", "{status}");
    assert!(
        status["detail"].as_str().unwrap().contains("repair"),
        "{status}"
    );

    let run = device.run(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(device.run(&["ea"]).stdout, "<result>Healthy</result>\n");
    assert_eq!(device.certificate().serial_hex, serial);
    assert_eq!(
        server.log().matches("PKIOperation").count(),
        issued,
        "no certificate spent"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert_eq!(record["scep_ca_certificates"], fetched);
}
