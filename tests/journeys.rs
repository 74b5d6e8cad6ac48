//! Admin journeys, driven through the shipped files the way Jamf and the scheduler drive them:
//! the policy script with `$4`..`$7`, the Extension Attribute scripts, and the renewal job's own
//! command line as installed, with nothing added, over a year and more of simulated time.
//!
//! Time: the agent runs under libfaketime (`faketime`, Debian package `faketime`) `N` days
//! ahead, and the simulator's clock is moved by the same offset, so certificates really age.

mod common;

use common::*;
use devicetrust::pki::CertificateInfo;
use devicetrust::sim::{Endpoint, Fault};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One Mac, as Jamf and launchd/systemd see it, with a simulated Okta org.
struct Mac {
    env: Env,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pkg/jamf")
        .join(name)
}

fn faketime_installed() -> bool {
    Command::new("faketime")
        .args(["-f", "+1d", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

impl Mac {
    /// A root with no configuration file and no profile: everything comes from Jamf.
    fn new() -> Option<Mac> {
        if !faketime_installed() {
            // scripts/test.sh installs it; CI must not skip.
            assert!(
                std::env::var("CI").is_err(),
                "faketime is missing (Debian package faketime)"
            );
            eprintln!("skipped: faketime is not installed");
            return None;
        }
        let env = Env::new(365);
        std::fs::remove_file(env.etc().join("config.toml")).unwrap();
        Some(Mac { env })
    }

    fn tls_ca(&self) -> String {
        self.env.etc().join("tls-ca.pem").display().to_string()
    }

    /// `cmd` as the scheduler or Jamf would start it, `day` days from now.
    fn at_day(&self, day: i64, program: &Path) -> Command {
        self.env.sim.set_clock_offset(time::Duration::days(day));
        let mut cmd = Command::new("faketime");
        cmd.args(["-f", &format!("{day:+}d")])
            .arg(program)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        for (key, _) in std::env::vars() {
            if key.starts_with("DEVICETRUST_") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    /// The settings a real Mac provides by itself: the sandbox's root, the console user
    /// (which Jamf also passes as `$3`) and the hardware facts IOKit would report.
    fn as_this_mac(&self, cmd: &mut Command) {
        cmd.env("DEVICETRUST_ROOT", self.env.root.path())
            .env("DEVICETRUST_USER", USER)
            .env("DEVICETRUST_DEVICE_UUID", DEVICE_UUID)
            .env("DEVICETRUST_DEVICE_NAME", DEVICE_NAME)
            .env("DEVICETRUST_BIN", env!("CARGO_BIN_EXE_devicetrust"));
    }

    /// The Jamf policy script with `$4`..`$7`.
    fn policy(&self, day: i64, params: [&str; 4]) -> Run {
        let mut cmd = self.at_day(day, Path::new("/bin/bash"));
        cmd.arg(script("devicetrust-policy.sh"))
            .args(["/", DEVICE_NAME, USER])
            .args(params);
        self.as_this_mac(&mut cmd);
        Run::from(cmd.output().unwrap())
    }

    /// An Extension Attribute script's one line.
    fn ea(&self, day: i64, name: &str) -> String {
        let mut cmd = self.at_day(day, Path::new("/bin/bash"));
        cmd.arg(script(name));
        self.as_this_mac(&mut cmd);
        let run = Run::from(cmd.output().unwrap());
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
    }

    /// The user's NSS database, as Chrome and Chromium on Linux read it.
    fn nss(&self) -> devicetrust::integrations::nss::NssDb {
        let home = self.env.root.path().join("home").join(USER);
        devicetrust::integrations::nss::NssDb::for_home(&home).unwrap()
    }

    /// Where the renewal job's systemd unit goes.
    fn job_unit(&self) -> PathBuf {
        self.env
            .root
            .path()
            .join("home")
            .join(USER)
            .join(".config/systemd/user/devicetrust-renew.service")
    }

    fn installed_job_file(&self) -> Option<PathBuf> {
        let unit = self.job_unit();
        unit.exists().then_some(unit)
    }

    /// The installed renewal job's command line (systemd's `ExecStart`), split as systemd does.
    fn installed_job(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.job_unit()).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap();
        split_exec(exec)
    }

    /// Runs the job exactly as installed. The scheduler runs it as the user, in the user's
    /// session: that is the only thing added, and it is the environment, not an argument.
    fn run_job(&self, day: i64) -> Run {
        let argv = self.installed_job();
        let mut cmd = self.at_day(day, Path::new(&argv[0]));
        cmd.args(&argv[1..]).env("DEVICETRUST_USER", USER);
        Run::from(cmd.output().unwrap())
    }

    fn requests(&self, suffix: &str) -> usize {
        self.env.requests_to(suffix).len()
    }
}

/// `ExecStart`'s words: double quotes group, `%%` is a literal `%`.
fn split_exec(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.into_iter().map(|w| w.replace("%%", "%")).collect()
}

fn ea_date(cert: &CertificateInfo) -> String {
    let t = cert.not_after;
    format!(
        "<result>{:04}-{:02}-{:02} {:02}:{:02}:{:02}</result>\n",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[test]
fn a_policy_given_only_parameters_enrolls_reports_and_renews_unattended_for_years() {
    let Some(mac) = Mac::new() else { return };
    let token = mac.env.sim.org_token();
    let ca_option = format!("ca-file={}", mac.tls_ca());

    // Day 0: Enrollment Complete. $4 org URL, $5 secret, $6 mode, $7 options. No profile.
    let run = mac.policy(0, [&mac.env.sim.org_url(), &token, "", &ca_option]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("INFO: enrolled"), "{run:?}");
    let first = mac.env.certificate();
    assert_eq!(mac.ea(0, "ea-status.sh"), "<result>Healthy</result>\n");
    assert_eq!(mac.ea(0, "ea-expiry.sh"), ea_date(&first));
    // On Linux the browsers find it in the user's NSS database.
    let nss = mac.nss();
    assert!(nss.observe(&first.der).unwrap().is_usable());

    // The user deletes it in Chrome's certificate manager: the EA notices (a healthy answer
    // kept from the enrollment's check must not hide it), and the Fix-It policy puts it back.
    let gone = nss
        .remove_ours(&devicetrust::integrations::nss::Ours {
            known: vec![first.der.clone()],
            issuer_cn: None,
        })
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(
        mac.ea(0, "ea-status.sh"),
        "<result>App Access Incomplete</result>\n"
    );
    let run = mac.policy(0, ["", "", "repair", ""]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("NSS database"), "{run:?}");
    assert!(nss.observe(&first.der).unwrap().is_usable());
    assert_eq!(mac.ea(0, "ea-status.sh"), "<result>Healthy</result>\n");

    // The job carries what this root needs and nothing secret.
    let job = mac.installed_job();
    assert_eq!(job[0], env!("CARGO_BIN_EXE_devicetrust"));
    assert_eq!(job[1], "renew");
    assert!(
        job.contains(&mac.env.root.path().display().to_string()),
        "{job:?}"
    );
    assert!(job.iter().all(|a| !a.contains(&token)), "{job:?}");
    let record = std::fs::read_to_string(mac.env.state_dir().join("state.json")).unwrap();
    assert!(!record.contains(&token));

    // Day 1 and day 300 (65 days left): the daily job runs and asks for nothing.
    for day in [1, 300] {
        let before = mac.env.sim.requests().len();
        let run = mac.run_job(day);
        assert_eq!(run.code, 0, "day {day}: {run:?}");
        assert!(run.stdout.contains("nothing to do"), "day {day}: {run:?}");
        assert_eq!(mac.env.sim.requests().len(), before, "day {day}");
        assert_eq!(mac.ea(day, "ea-status.sh"), "<result>Healthy</result>\n");
    }

    // Day 336: 29 days left. Every device has started renewing by 30 days before expiry.
    let run = mac.run_job(336);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("INFO: renewed"), "{run:?}");
    assert_eq!(mac.requests("/renew/macos"), 1);
    let second = mac.env.certificate();
    assert_ne!(second.serial_hex, first.serial_hex);
    let moved = second.not_after - first.not_after;
    assert!(
        moved >= time::Duration::days(335),
        "expiry moved by {moved}"
    );
    assert_eq!(mac.ea(336, "ea-status.sh"), "<result>Healthy</result>\n");
    assert_eq!(mac.ea(336, "ea-expiry.sh"), ea_date(&second));
    assert!(nss.observe(&second.der).unwrap().is_usable());
    let old = nss.observe(&first.der).unwrap();
    assert!(!old.present && !old.key_present, "{old:?}");
    let run = mac.run_job(337);
    assert!(run.stdout.contains("nothing to do"), "{run:?}");

    // Two years on, nobody renewed (the Mac was off): the job cannot help without the secret,
    // the EA says so, and the next policy run with $5 enrolls afresh.
    let late = 336 + 400;
    let run = mac.run_job(late);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("expired"), "{run:?}");
    assert_eq!(
        mac.ea(late, "ea-status.sh"),
        "<result>Certificate Expired</result>\n"
    );
    assert_eq!(mac.ea(late, "ea-expiry.sh"), ea_date(&second));
    let run = mac.policy(late, [&mac.env.sim.org_url(), &token, "", &ca_option]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(mac.ea(late, "ea-status.sh"), "<result>Healthy</result>\n");
    let third = mac.env.certificate();
    assert!(nss.observe(&third.der).unwrap().is_usable());

    // Revoke and re-enroll's first half: the uninstall mode takes everything out.
    let run = mac.policy(late, ["", "", "uninstall", ""]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!nss.observe(&third.der).unwrap().present);
    assert!(!mac.env.state_dir().exists(), "{run:?}");
    assert!(mac.installed_job_file().is_none());
    assert_eq!(
        mac.ea(late, "ea-status.sh"),
        "<result>Not Configured</result>\n"
    );
}

#[test]
fn a_device_taken_over_from_oktas_task_is_configured_without_a_new_certificate() {
    let Some(mac) = Mac::new() else { return };
    let token = mac.env.sim.org_token();
    let ca_option = format!("ca-file={}", mac.tls_ca());
    let org = mac.env.sim.org_url();
    assert_eq!(mac.policy(0, [&org, &token, "", &ca_option]).code, 0);
    // What a takeover finds: an identity the org issued, and nothing of ours around it.
    let home = mac.env.root.path().join("home").join(USER);
    std::fs::remove_file(mac.env.state_dir().join("state.json")).unwrap();
    std::fs::remove_file(mac.env.generation().join("record.json")).unwrap();
    std::fs::remove_dir_all(home.join(".config/systemd")).unwrap();
    let policy = mac
        .env
        .root
        .path()
        .join("etc/chromium/policies/managed/devicetrust.json");
    std::fs::remove_file(&policy).unwrap();
    let task = home.join("Library/Okta");
    std::fs::create_dir_all(&task).unwrap();
    std::fs::write(task.join("okta_device_trust.py"), "VERSION = '1.3.3'\n").unwrap();
    let enrollments = mac.requests("/enroll/macos");

    // Recurring check-in, org URL only, no secret.
    let run = mac.policy(1, [&org, "", "", &ca_option]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        mac.requests("/enroll/macos"),
        enrollments,
        "no new certificate"
    );
    assert!(policy.exists(), "{run:?}");
    assert!(!task.exists(), "Okta's task is retired: {run:?}");
    assert_eq!(mac.ea(1, "ea-status.sh"), "<result>Healthy</result>\n");

    // Its first renewal, by the installed job.
    let run = mac.run_job(340);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("INFO: renewed"), "{run:?}");
}

#[test]
fn a_renewal_moves_the_browser_entry_when_the_cert_auth_domain_moves() {
    let Some(mac) = Mac::new() else { return };
    let token = mac.env.sim.org_token();
    let ca_option = format!("ca-file={}", mac.tls_ca());
    assert_eq!(
        mac.policy(0, [&mac.env.sim.org_url(), &token, "", &ca_option])
            .code,
        0
    );
    let policy = mac
        .env
        .root
        .path()
        .join("etc/opt/chrome/policies/managed/devicetrust.json");
    let entries = || std::fs::read_to_string(&policy).unwrap();
    assert!(entries().contains(devicetrust::sim::CERT_AUTH_HOST));

    mac.env
        .sim
        .set_cert_auth_host("moved-devicetrust.localhost");
    let run = mac.run_job(340);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        entries().contains("moved-devicetrust.localhost"),
        "{}",
        entries()
    );
    assert!(
        !entries().contains(devicetrust::sim::CERT_AUTH_HOST),
        "{}",
        entries()
    );
    let status = mac.env.status_json();
    assert_eq!(status["cert_auth_host"], "moved-devicetrust.localhost");
}

#[test]
fn an_issued_certificate_in_mime_lines_is_accepted_as_okta_s_task_accepted_it() {
    let env = Env::new(365);
    env.sim
        .inject(Endpoint::Enroll, Fault::MimeWrappedBase64, Some(1));
    let run = env.enroll();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

/// What the agent before CA judgement wrote as root's record of an Okta enrollment: every
/// field it knew, none of the newer ones.
fn earlier_agents_record(mac: &Mac) -> serde_json::Value {
    serde_json::json!({
        "method": "okta",
        "org_url": mac.env.sim.org_url(),
        "scep_url": null,
        "scep_ca_fingerprint": null,
        "cert_auth_host": devicetrust::sim::CERT_AUTH_HOST,
        "cell": null,
        "ca_file": mac.tls_ca(),
        "store": null,
        "device_uuid": DEVICE_UUID,
        "device_name": DEVICE_NAME,
        "enrolled_at": "2026-11-01T09:00:00Z",
        "last_renewal": null
    })
}

#[test]
fn a_device_an_earlier_agent_enrolled_keeps_its_certificate_through_the_upgrade() {
    let Some(mac) = Mac::new() else { return };
    let token = mac.env.sim.org_token();
    let ca_option = format!("ca-file={}", mac.tls_ca());
    let org = mac.env.sim.org_url();
    assert_eq!(mac.policy(0, [&org, &token, "", &ca_option]).code, 0);
    let first = mac.env.certificate();
    // The records as the earlier agent left them, root's and the user's copy.
    let record = serde_json::to_vec_pretty(&earlier_agents_record(&mac)).unwrap();
    let roots = mac
        .env
        .root
        .path()
        .join("var/lib/devicetrust/users")
        .join(format!("{USER}.json"));
    std::fs::write(&roots, &record).unwrap();
    std::fs::write(mac.env.state_dir().join("state.json"), &record).unwrap();
    let enrollments = mac.requests("/enroll/macos");

    // The upgraded package's policy runs again with the secret, the EAs report, the job runs
    // daily: the identity is judged Okta's, and no certificate is asked for.
    let run = mac.policy(1, [&org, &token, "", &ca_option]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("already installed"), "{run:?}");
    for day in [1, 2, 200] {
        assert_eq!(mac.ea(day, "ea-status.sh"), "<result>Healthy</result>\n");
        assert_eq!(mac.run_job(day).code, 0);
    }
    assert_eq!(mac.env.certificate().serial_hex, first.serial_hex);
    let run = mac.run_job(336);
    assert!(run.stdout.contains("INFO: renewed"), "{run:?}");
    assert_eq!(
        mac.requests("/enroll/macos"),
        enrollments,
        "0 certificates spent"
    );
    assert_eq!(mac.ea(336, "ea-status.sh"), "<result>Healthy</result>\n");
}

#[test]
fn a_clock_a_day_behind_is_clock_wrong_and_spends_no_certificate() {
    let Some(mac) = Mac::new() else { return };
    let token = mac.env.sim.org_token();
    let ca_option = format!("ca-file={}", mac.tls_ca());
    let org = mac.env.sim.org_url();

    // A first enrollment on a clock half an hour behind Okta's (its `Date` header): deferred
    // before the certificate request, which would be issued a certificate this clock judges
    // not yet valid. (Half an hour: further back, this clock would judge the simulator's fresh
    // TLS certificate not yet valid first, where Okta's is months old.)
    let mut cmd = Command::new("faketime");
    cmd.args(["-f", "-30m", "/bin/bash"])
        .arg(script("devicetrust-policy.sh"))
        .args(["/", DEVICE_NAME, USER, &org, &token, "", &ca_option])
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    mac.as_this_mac(&mut cmd);
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("clock"), "{run:?}");
    assert_eq!(mac.requests("/enroll/macos"), 0);
    // A day behind, the simulator's TLS certificate (issued an hour ago, where Okta's is
    // months old) is not valid yet on this clock: the handshake fails before any request,
    // and that too is the clock's doing, so the run defers and says so.
    let requests = mac.env.sim.requests().len();
    let run = mac.policy(-1, [&org, &token, "", &ca_option]);
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("at the device's clock"), "{run:?}");
    assert!(run.error().contains("is valid from"), "{run:?}");
    assert_eq!(mac.env.sim.requests().len(), requests, "{run:?}");

    // Enrolled on a right clock, then the clock goes back a day.
    assert_eq!(mac.policy(0, [&org, &token, "", &ca_option]).code, 0);
    let enrolled = mac.env.certificate();
    assert_eq!(mac.ea(-1, "ea-status.sh"), "<result>Clock Wrong</result>\n");
    let mut status = mac.at_day(-1, Path::new(env!("CARGO_BIN_EXE_devicetrust")));
    status.arg("status");
    mac.as_this_mac(&mut status);
    let status = Run::from(status.output().unwrap());
    assert!(status.stdout.contains("status: Clock Wrong"), "{status:?}");
    let not_before = devicetrust::timefmt::rfc3339(enrolled.not_before);
    assert!(status.stdout.contains(&not_before), "{status:?}");
    // Asked whether the org answers, it says why not at once: the simulator's TLS certificate
    // is not valid yet on this clock, and waiting for the network (30 s by default) would not
    // set the clock. (`timeout` ends the run if it waits: the answer must come well before.)
    let mut probe = mac.at_day(-1, Path::new("timeout"));
    probe
        .arg("20")
        .arg(env!("CARGO_BIN_EXE_devicetrust"))
        .args(["status", "--check-network"]);
    mac.as_this_mac(&mut probe);
    let probe = Run::from(probe.output().unwrap());
    assert!(
        probe.stdout.contains("status: Okta Unreachable"),
        "{probe:?}"
    );
    assert!(probe.stdout.contains("at the device's clock"), "{probe:?}");
    // Neither the policy with the token nor the job spends anything on it.
    let requests = mac.env.sim.requests().len();
    let run = mac.policy(-1, [&org, &token, "", &ca_option]);
    assert_eq!(run.code, 75, "{run:?}");
    assert!(run.error().contains("clock"), "{run:?}");
    let run = mac.run_job(-1);
    assert_eq!(run.code, 75, "{run:?}");
    assert_eq!(mac.env.sim.requests().len(), requests);
    assert_eq!(mac.env.certificate().serial_hex, enrolled.serial_hex);
    // The clock put right: healthy, the same certificate.
    assert_eq!(mac.ea(0, "ea-status.sh"), "<result>Healthy</result>\n");
}
