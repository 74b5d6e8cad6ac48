//! Each link's part of the plan: what it finds and the action it names, against the very
//! `apply` that `enroll` runs, on a Linux-layout home under a temporary root.

use super::browser::{BrowserPolicyLink, PolicyFiles};
use super::identity::RenewalLink;
use super::job::{FilesOnly, JobLink};
use super::legacy::LegacyTaskLink;
use super::plan::{Action, Outlook};
use super::*;
use crate::config::{Flags, Layer};
use crate::paths::Layout;
use crate::pki::authority::tests::test_certificate;
use crate::record::RenewalAttempt;
use crate::store::FileStore;
use std::path::Path;
use std::rc::Rc;

const HOST: &str = "dt.example.okta.com";

/// A home, a record naming the org's certAuthDomain, and a valid identity, under `root`.
struct Device {
    config: Config,
    home: UserHome,
    record: EnrollmentRecord,
    store: FileStore,
    held: Held,
}

impl Device {
    fn new(root: &Path) -> Device {
        let flags = Flags {
            root: Some(root.to_owned()),
            ..Flags::default()
        };
        let config = crate::config::load(&flags, &Default::default(), Layer::default()).unwrap();
        let home = UserHome::new("alice", Path::new("/home/alice"), root, Layout::Linux);
        std::fs::create_dir_all(&home.paths.home).unwrap();
        let record = EnrollmentRecord {
            method: Some(Method::Okta),
            cert_auth_host: Some(HOST.into()),
            ..EnrollmentRecord::default()
        };
        let der = test_certificate(OffsetDateTime::now_utc());
        Device {
            config,
            store: FileStore::at(home.default_store_place()),
            home,
            record,
            held: Held::Valid(CertificateInfo::parse(&der).unwrap()),
        }
    }

    fn with<R>(&mut self, f: impl FnOnce(&mut Context<'_>) -> R) -> R {
        let mut cx = Context {
            config: &self.config,
            home: &self.home,
            record: &self.record,
            store: &mut self.store,
            held: &self.held,
            policy: RenewalPolicy::for_device("x", 30, 14),
            now: OffsetDateTime::now_utc(),
            program: "/usr/local/bin/devicetrust".into(),
            superseded: Superseded::default(),
        };
        f(&mut cx)
    }

    /// The link's step with the identity kept.
    fn kept(&mut self, link: &dyn Link) -> Step {
        let held = self.held.clone();
        let Held::Valid(c) = &held else {
            unreachable!()
        };
        self.with(|cx| link.survey(cx, Outlook::Kept(c)).unwrap())
    }
}

fn browser_link(root: &Path) -> BrowserPolicyLink {
    BrowserPolicyLink {
        backend: Box::new(PolicyFiles {
            root: root.to_owned(),
        }),
    }
}

fn chrome_dir(root: &Path) -> std::path::PathBuf {
    root.join("etc/opt/chrome/policies/managed")
}

#[test]
fn the_browser_survey_names_what_apply_writes_and_a_foreign_file_that_decides() {
    let root = tempfile::tempdir().unwrap();
    let mut device = Device::new(root.path());
    let link = browser_link(root.path());

    let fresh = device.kept(&link);
    assert_eq!(fresh.action, Action::Create, "{fresh:?}");
    assert_eq!(fresh.blocker, None);
    assert_eq!(fresh.found.len(), 3, "one line a browser: {fresh:?}");
    assert!(device.with(|cx| !link.apply(cx).unwrap().is_empty()));
    let done = device.kept(&link);
    assert_eq!(
        (done.action, done.blocker.clone()),
        (Action::Nothing, None),
        "{done:?}"
    );

    // Our file with the entry of a host this device no longer uses: replaced.
    let stale = crate::integrations::chrome::policy_entry(
        "old-dt.example.okta.com",
        &crate::integrations::chrome::IssuerFilter::okta(),
    );
    let ours = chrome_dir(root.path()).join("devicetrust.json");
    let doc = serde_json::json!({ "AutoSelectCertificateForUrls": [stale] });
    std::fs::write(&ours, doc.to_string()).unwrap();
    // ...the record's host moved: the old entry has the same filter, so it is ours and older.
    let older = device.kept(&link);
    assert_eq!(older.action, Action::Replace, "{older:?}");
    let changes = device.with(|cx| link.apply(cx).unwrap());
    assert_eq!(Action::taken(older.action, &changes), Action::Replace);

    // A file of the admin's, later in Chrome's order, decides without our entry: enroll
    // leaves it alone, and the device would end in Browser Policy Missing.
    let foreign = chrome_dir(root.path()).join("zz-admin.json");
    let doc =
        serde_json::json!({ "AutoSelectCertificateForUrls": ["{\"pattern\":\"https://x\"}"] });
    std::fs::write(&foreign, doc.to_string()).unwrap();
    let blocked = device.kept(&link);
    let blocker = blocked.blocker.expect("a blocker");
    assert_eq!(blocker.kind, "Browser Policy Missing");
    assert!(blocker.detail.contains("zz-admin.json"), "{blocker:?}");
    assert!(blocked
        .found
        .iter()
        .any(|f| f.contains("zz-admin.json decides")));
    assert_eq!(blocked.action, Action::Nothing);
    assert!(device.with(|cx| link.apply(cx).unwrap().is_empty()));
    assert!(device.with(|cx| link.observe(cx)) != crate::health::Observation::Healthy);
}

#[test]
fn the_job_survey_tells_a_missing_a_current_and_a_changed_job_apart() {
    let root = tempfile::tempdir().unwrap();
    let mut device = Device::new(root.path());
    let link = JobLink {
        control: Rc::new(FilesOnly),
    };
    assert_eq!(device.kept(&link).action, Action::Create);
    let changes = device.with(|cx| link.apply(cx).unwrap());
    assert_eq!(Action::taken(Action::Create, &changes), Action::Create);
    assert_eq!(device.kept(&link).action, Action::Nothing);

    let service = device
        .home
        .paths
        .home
        .join(".config/systemd/user/devicetrust-renew.service");
    let text = std::fs::read_to_string(&service).unwrap();
    std::fs::write(&service, text.replace("renew", "renew --force")).unwrap();
    assert_eq!(device.kept(&link).action, Action::Replace);
    assert!(!device.with(|cx| link.apply(cx).unwrap()).is_empty());
    // Without a valid identity after enroll, nothing is changed.
    let stopped = device.with(|cx| link.survey(cx, Outlook::Stopped).unwrap());
    assert_eq!(stopped.action, Action::Nothing);
}

#[test]
fn the_old_task_is_removed_only_when_a_valid_identity_will_be_there() {
    let root = tempfile::tempdir().unwrap();
    let mut device = Device::new(root.path());
    let link = LegacyTaskLink {
        control: Rc::new(FilesOnly),
    };
    let home = device.home.paths.home.clone();
    let script = home.join("Library/Okta/okta_device_trust.py");
    let agent = home.join("Library/LaunchAgents/com.okta.devicetrust.plist");
    for file in [&script, &agent] {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    }
    std::fs::write(&script, "VERSION = '1.3.3'\n").unwrap();
    std::fs::write(&agent, "<plist/>").unwrap();

    let stopped = device.with(|cx| link.survey(cx, Outlook::Stopped).unwrap());
    assert_eq!(stopped.action, Action::Nothing);
    assert!(
        stopped.found.iter().any(|f| f.contains("version 1.3.3")),
        "{stopped:?}"
    );
    assert!(stopped
        .found
        .iter()
        .any(|f| f.contains("com.okta.devicetrust")));
    let new = device.with(|cx| link.survey(cx, Outlook::New).unwrap());
    assert_eq!(new.action, Action::Remove, "{new:?}");
    assert!(
        script.exists() && agent.exists(),
        "a survey removes nothing"
    );
    let changes = device.with(|cx| link.apply(cx).unwrap());
    assert_eq!(Action::taken(new.action, &changes), Action::Remove);
    assert!(!script.exists() && !agent.exists());
    assert_eq!(device.kept(&link).action, Action::Nothing);
}

#[test]
fn a_failing_renewal_of_an_identity_that_stays_blocks_and_a_new_one_does_not() {
    let root = tempfile::tempdir().unwrap();
    let mut device = Device::new(root.path());
    // Due: a certificate with less than the window left.
    let mut request = crate::pki::authority::tests::client_request(
        crate::pki::key::tests::test_key().public_key_der().unwrap(),
        OffsetDateTime::now_utc(),
    );
    request.not_after = OffsetDateTime::now_utc() + time::Duration::days(3);
    let der = crate::pki::authority::tests::test_authority()
        .issue(request)
        .unwrap();
    device.held = Held::Valid(CertificateInfo::parse(&der).unwrap());
    device.record.last_renewal = Some(RenewalAttempt {
        time: "2026-01-01T00:00:00Z".into(),
        ok: false,
        error: Some("Okta said no".into()),
    });
    let kept = device.kept(&RenewalLink);
    assert_eq!(kept.blocker.unwrap().kind, "Renewal Failing");
    assert!(kept.found[0].contains("Okta said no"));
    let new = device.with(|cx| RenewalLink.survey(cx, Outlook::New).unwrap());
    assert_eq!(new.blocker, None);
}

#[test]
fn surveying_the_whole_chain_changes_nothing_under_the_root() {
    let root = tempfile::tempdir().unwrap();
    let mut device = Device::new(root.path());
    let host = crate::host::FilesHost::new(root.path(), Layout::Linux);
    let chain = crate::host::Host::chain(&host, &device.home);
    let before = tree(root.path());
    let steps = device.with(|cx| chain.survey(cx, Outlook::New));
    assert_eq!(tree(root.path()), before);
    let names: Vec<&str> = steps.iter().map(|s| s.link).collect();
    let order: Vec<&str> = chain
        .links()
        .map(|l| l.name())
        .filter(|n| names.contains(n))
        .collect();
    assert_eq!(names, order, "steps in chain order");
    assert_eq!(names[0], "identity store");
    assert!(names.contains(&"renewal job") && names.contains(&"Okta's Python task"));
}

/// Every path under `dir` with its bytes (folders as empty).
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path.clone());
                out.push((path, Vec::new()));
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}
