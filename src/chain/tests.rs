//! The chain's order, and links that only a keychain-like store exercises, with an in-memory
//! store standing in for the keychain on Linux.

use super::allowlist::AllowlistLink;
use super::browser::BrowserPolicyLink;
use super::identity::{IdentityLink, RenewalLink};
use super::job::{BackgroundTaskLink, JobControl, JobLink};
use super::legacy::LegacyTaskLink;
use super::safari::SafariLink;
use super::*;
use crate::config::{Flags, Layer};
use crate::host::Host;
use crate::integrations::allowlist::AllowlistConfig;
use crate::integrations::safari::MemoryIdentityPreferences;
use crate::partition::Partition;
use crate::paths::Layout;
use crate::pki::authority::tests::test_certificate;
use crate::pki::{CheckedIdentity, NewKey, PrivateKey, SigningKey};
use crate::store::{SeenPartitions, StoreProbe};
use std::path::Path;
use std::rc::Rc;

/// An in-memory store with a partition list, standing in for the keychain on Linux.
#[derive(Default)]
pub(crate) struct MemoryStore {
    pub partitions: Vec<Partition>,
    pub writes: usize,
}

impl StoreView for MemoryStore {
    fn location(&self) -> String {
        "memory:".into()
    }
    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: Some(true),
            password_item: Some(crate::store::PasswordItemState::Readable),
        }
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    fn has_partition_list(&self) -> bool {
        true
    }
    fn holds_key_of(&self, _: &[u8]) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn seen_partitions(&self) -> Option<Result<Option<SeenPartitions>, StoreError>> {
        Some(Ok(Some(SeenPartitions {
            list: self.partitions.clone(),
            recorded_at: None,
        })))
    }
}

impl IdentityStore for MemoryStore {
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        Ok(None)
    }
    fn generate_key(&mut self, bits: u32) -> Result<Box<dyn NewKey>, StoreError> {
        Ok(Box::new(
            PrivateKey::generate_rsa(bits as usize).map_err(StoreError::KeyGeneration)?,
        ))
    }
    fn replace(&mut self, _: CheckedIdentity, _: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
    fn remove(&mut self) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        Some(Ok(self.partitions.clone()))
    }
    fn set_partition_list(&mut self, list: &[Partition]) -> Option<Result<(), StoreError>> {
        self.partitions = list.to_vec();
        self.writes += 1;
        Some(Ok(()))
    }
}

fn config(root: &Path) -> Config {
    let flags = Flags {
        root: Some(root.to_owned()),
        ..Flags::default()
    };
    crate::config::load(&flags, &Default::default(), Layer::default()).unwrap()
}

fn home(root: &Path) -> UserHome {
    UserHome::new("alice", Path::new("/home/alice"), root, Layout::Linux)
}

fn valid_held() -> Held {
    let der = test_certificate(OffsetDateTime::now_utc());
    Held::Valid(CertificateInfo::parse(&der).unwrap())
}

/// A context as a run builds it, over borrowed parts.
fn context_over<'a>(
    config: &'a Config,
    home: &'a UserHome,
    record: &'a EnrollmentRecord,
    store: &'a mut dyn IdentityStore,
    held: &'a Held,
    superseded: Superseded,
) -> Context<'a> {
    Context {
        config,
        home,
        record,
        store,
        held,
        policy: RenewalPolicy::for_device("x", 30, 14),
        now: OffsetDateTime::now_utc(),
        program: "/usr/local/bin/devicetrust".into(),
        superseded,
    }
}

/// A context over `store` and `held` for a fresh root, with `record`.
fn with_context<R>(
    record: &EnrollmentRecord,
    store: &mut dyn IdentityStore,
    held: &Held,
    superseded_hosts: Vec<String>,
    f: impl FnOnce(&mut Context<'_>) -> R,
) -> R {
    let root = tempfile::tempdir().unwrap();
    let config = config(root.path());
    let home = home(root.path());
    let superseded = Superseded {
        hosts: superseded_hosts,
        ..Superseded::default()
    };
    f(&mut context_over(
        &config, &home, record, store, held, superseded,
    ))
}

/// Every link kind, in the order the hosts build them.
fn every_link() -> Chain {
    let control: Rc<dyn JobControl> = Rc::new(super::job::FilesOnly);
    Chain::new(vec![
        Box::new(IdentityLink),
        Box::new(RenewalLink),
        Box::new(AllowlistLink::for_this_agent()),
        Box::new(super::nss::NssLink::default()),
        Box::new(BrowserPolicyLink {
            backend: Box::new(super::browser::PolicyFiles {
                root: "/nonexistent".into(),
            }),
        }),
        Box::new(SafariLink::new(Box::new(
            MemoryIdentityPreferences::default(),
        ))),
        Box::new(JobLink {
            control: control.clone(),
        }),
        Box::new(BackgroundTaskLink {
            control: control.clone(),
        }),
        Box::new(LegacyTaskLink { control }),
    ])
}

fn statuses(chain: &Chain) -> Vec<HealthStatus> {
    chain
        .links()
        .flat_map(|l| l.statuses().iter().copied())
        .collect()
}

#[test]
fn the_chain_is_ordered_as_the_health_statuses() {
    let all = statuses(&every_link());
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
    // Every status of cli.md from Keychain Missing on has its link.
    for status in [
        HealthStatus::KeychainMissing,
        HealthStatus::KeychainPasswordMissing,
        HealthStatus::CertificateMissing,
        HealthStatus::CertificateFromAnotherCa,
        HealthStatus::PrivateKeyMissing,
        HealthStatus::ClockWrong,
        HealthStatus::CertificateExpired,
        HealthStatus::RenewalFailing,
        HealthStatus::AppAccessIncomplete,
        HealthStatus::BrowserPolicyMissing,
        HealthStatus::RenewalJobMissing,
        HealthStatus::BackgroundTaskDisabled,
    ] {
        assert!(all.contains(&status), "{status:?}");
    }
    let root = tempfile::tempdir().unwrap();
    let host = crate::host::FilesHost::new(root.path(), Layout::Linux);
    let files = statuses(&host.chain(&home(root.path())));
    assert!(files.windows(2).all(|w| w[0] <= w[1]), "{files:?}");
}

/// An agent built locally: ad-hoc signed, so securityd knows it by its code directory hash.
fn ad_hoc_agent() -> Result<Partition, String> {
    Ok(Partition::cdhash(
        "bdffcbeb8533f5d80c51f6285fd2ff15af9222a4",
    ))
}

#[test]
fn the_key_list_written_keeps_the_ad_hoc_agents_own_cdhash() {
    // What securityd put on a key an ad-hoc build generated: the creator's cdhash only.
    let own = ad_hoc_agent().unwrap();
    let mut store = MemoryStore {
        partitions: vec![own.clone()],
        writes: 0,
    };
    let record = EnrollmentRecord::default();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        let link = AllowlistLink::with_own(ad_hoc_agent);
        link.apply(cx).unwrap();
        assert_eq!(link.observe(cx), Observation::Healthy);
    });
    assert_eq!(store.writes, 1);
    assert!(store.partitions.contains(&own), "{:?}", store.partitions);
    assert!(!store.partitions.contains(&Partition::unsigned()));
}

#[test]
fn without_its_own_partition_id_the_agent_writes_no_list() {
    let mut store = MemoryStore {
        partitions: vec![ad_hoc_agent().unwrap()],
        writes: 0,
    };
    let record = EnrollmentRecord::default();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        let link = AllowlistLink::with_own(|| Err("not a Mach-O file".into()));
        let err = link.apply(cx).unwrap_err().to_string();
        assert!(err.contains("left as it is"), "{err}");
        assert!(matches!(
            link.observe(cx),
            Observation::Failing {
                status: HealthStatus::AppAccessIncomplete,
                ..
            }
        ));
    });
    assert_eq!(store.writes, 0);
}

#[test]
fn a_scep_enrollments_key_lets_okta_verify_in() {
    let mut store = MemoryStore {
        partitions: vec![ad_hoc_agent().unwrap()],
        writes: 0,
    };
    let record = EnrollmentRecord {
        method: Some(Method::Scep),
        ..Default::default()
    };
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        AllowlistLink::with_own(ad_hoc_agent).apply(cx).unwrap();
    });
    assert!(store
        .partitions
        .contains(&Partition::TeamId("B7F62B65BN".into())));
}

#[test]
fn the_macs_own_chain_is_ordered_and_complete() {
    // The very list MacHost::chain builds, over stand-in backends.
    let mac = crate::host::macos::chain_with(
        Box::new(super::browser::PolicyFiles {
            root: "/nonexistent".into(),
        }),
        Box::new(MemoryIdentityPreferences::default()),
        Rc::new(super::job::FilesOnly),
    );
    let names: Vec<&str> = mac.links().map(|l| l.name()).collect();
    let all = statuses(&mac);
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{names:?}: {all:?}");
    // Every status of cli.md from Keychain Missing to Background Task Disabled, each once,
    // and the item a dialog alone could read, after the missing one.
    let expected = [
        HealthStatus::KeychainMissing,
        HealthStatus::KeychainPasswordMissing,
        HealthStatus::KeychainPasswordUnreadable,
        HealthStatus::CertificateMissing,
        HealthStatus::CertificateFromAnotherCa,
        HealthStatus::PrivateKeyMissing,
        HealthStatus::ClockWrong,
        HealthStatus::CertificateExpired,
        HealthStatus::RenewalFailing,
        HealthStatus::AppAccessIncomplete,
        HealthStatus::BrowserPolicyMissing,
        HealthStatus::RenewalJobMissing,
        HealthStatus::BackgroundTaskDisabled,
    ];
    let mut distinct = all.clone();
    distinct.dedup();
    assert_eq!(distinct, expected, "{names:?}");
    // The NSS database is Linux's; a Mac's browsers read the keychain.
    assert!(
        !names.contains(&super::nss::NssLink::default().name()),
        "{names:?}"
    );
}

/// A store that holds exactly the certificate and key it is given.
struct Holding {
    certificate: Vec<u8>,
    key_pkcs8: Vec<u8>,
}

impl StoreView for Holding {
    fn location(&self) -> String {
        "holding:".into()
    }
    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: None,
            password_item: None,
        }
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(Some(self.certificate.clone()))
    }
    fn holds_key_of(&self, certificate_der: &[u8]) -> Result<bool, StoreError> {
        let key = PrivateKey::from_pkcs8_der(&self.key_pkcs8).unwrap();
        Ok(crate::store::key_matches(&key, certificate_der))
    }
}

impl IdentityStore for Holding {
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        Ok(Some(Box::new(
            PrivateKey::from_pkcs8_der(&self.key_pkcs8).unwrap(),
        )))
    }
    fn generate_key(&mut self, _: u32) -> Result<Box<dyn NewKey>, StoreError> {
        unreachable!("the test only reads")
    }
    fn replace(&mut self, _: CheckedIdentity, _: &[u8]) -> Result<(), StoreError> {
        unreachable!("the test only reads")
    }
    fn remove(&mut self) -> Result<bool, StoreError> {
        unreachable!("the test only reads")
    }
    fn repair(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(vec!["holding: search list restored".into()])
    }
}

#[test]
fn a_certificate_from_another_ca_is_judged_before_its_key_and_a_clock_behind_is_not_expiry() {
    use crate::pki::key::tests::{other_test_key, test_key};
    let now = OffsetDateTime::now_utc();
    let certificate = test_certificate(now);
    let store = Holding {
        certificate: certificate.clone(),
        key_pkcs8: other_test_key().to_pkcs8_der().unwrap().to_vec(),
    };
    // Not Okta's CA: foreign, whatever the key.
    let scep = ExpectedCa::Scep {
        certificates: vec![crate::pki::authority::tests::test_authority()
            .certificate_der()
            .to_vec()],
    };
    let moved = ExpectedCa::Moved {
        enrolled: "Okta's device-trust CA".into(),
        configured: "the SCEP CA https://ca/scep".into(),
    };
    let held = Held::read(&store, now, &moved).unwrap();
    assert!(
        matches!(&held, Held::Foreign { certificate: c, reason } if c.der == certificate
            && reason.contains("https://ca/scep")),
        "{held:?}"
    );
    assert!(held.certificate().is_none(), "nothing is built from it");
    assert_eq!(held.shown().map(|c| &c.der), Some(&certificate));
    // The test CA's own certificate as the recorded SCEP CA: ours, so the key decides.
    let held = Held::read(&store, now, &scep).unwrap();
    assert!(matches!(held, Held::KeyMissing(_)), "{held:?}");

    // Its own key, and a clock an hour and a minute behind the certificate's start.
    let store = Holding {
        certificate,
        key_pkcs8: test_key().to_pkcs8_der().unwrap().to_vec(),
    };
    let behind = now - time::Duration::minutes(61);
    let held = Held::read(&store, behind, &ExpectedCa::Okta).unwrap();
    let Held::NotYetValid(c) = &held else {
        panic!("{held:?}")
    };
    assert!(held.certificate().is_some() && !held.is_valid());
    let record = EnrollmentRecord::default();
    let mut store = store;
    with_context(&record, &mut store, &held, Vec::new(), |cx| {
        cx.now = behind;
        let observed = IdentityLink.observe(cx);
        failing_with(
            observed.clone(),
            HealthStatus::ClockWrong,
            &crate::timefmt::rfc3339(c.not_before),
        );
        failing_with(
            observed,
            HealthStatus::ClockWrong,
            &crate::timefmt::rfc3339(behind),
        );
    });
}

#[test]
fn a_valid_key_of_another_certificate_is_private_key_missing() {
    use crate::pki::key::tests::{other_test_key, test_key};
    let now = OffsetDateTime::now_utc();
    let certificate = test_certificate(now);
    let holding = |key: &PrivateKey| Holding {
        certificate: certificate.clone(),
        key_pkcs8: key.to_pkcs8_der().unwrap().to_vec(),
    };
    // Its own key: valid.
    let held = Held::read(&holding(test_key()), now, &ExpectedCa::Okta).unwrap();
    assert!(matches!(held, Held::Valid(_)), "{held:?}");

    // A key that parses and signs, but is another certificate's.
    let mut store = holding(other_test_key());
    let held = Held::read(&store, now, &ExpectedCa::Okta).unwrap();
    assert!(
        matches!(&held, Held::KeyMissing(c) if c.der == certificate),
        "{held:?}"
    );
    let record = EnrollmentRecord::default();
    with_context(&record, &mut store, &held, Vec::new(), |cx| {
        assert!(matches!(
            IdentityLink.observe(cx),
            Observation::Failing {
                status: HealthStatus::PrivateKeyMissing,
                ..
            }
        ));
    });
}

#[test]
fn a_key_missing_an_app_is_incomplete_until_apply_repairs_it() {
    // A key before the allowlist is applied: a few partitions, not every configured app.
    let mut store = MemoryStore {
        partitions: vec![
            Partition::AppleTool,
            ad_hoc_agent().unwrap(),
            Partition::TeamId("ABCDE12345".into()),
        ],
        writes: 0,
    };
    let record = EnrollmentRecord::default();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        let link = AllowlistLink::with_own(ad_hoc_agent);
        assert!(matches!(
            link.observe(cx),
            Observation::Failing {
                status: HealthStatus::AppAccessIncomplete,
                ..
            }
        ));
        let changes = link.apply(cx).unwrap();
        assert!(changes[0].contains("teamid:EQHXZ8M8AV"), "{changes:?}");
        assert!(
            changes[0].contains("removed: teamid:ABCDE12345"),
            "{changes:?}"
        );
        assert_eq!(link.observe(cx), Observation::Healthy);
        // Already right: no write, no change line.
        assert!(link.apply(cx).unwrap().is_empty());
    });
    assert_eq!(store.writes, 1);
    let desired = AllowlistConfig::default()
        .desired_with(Method::Okta, &ad_hoc_agent().unwrap())
        .unwrap();
    assert!(desired.iter().all(|p| store.partitions.contains(p)));
}

#[test]
fn the_file_store_has_no_allowlist_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = crate::store::FileStore::new(dir.path().join("store"));
    let record = EnrollmentRecord::default();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        let link = AllowlistLink::with_own(ad_hoc_agent);
        assert_eq!(link.observe(cx), Observation::NotApplicable);
        assert!(link.apply(cx).unwrap().is_empty());
    });
}

#[test]
fn safari_follows_a_moved_cert_auth_domain_and_uninstall_takes_ours() {
    use crate::integrations::safari::IdentityPreferences;
    let record = EnrollmentRecord {
        method: Some(Method::Okta),
        org_url: Some("https://acme.okta.com".into()),
        cell: Some("okta.com".into()),
        cert_auth_host: Some("new-devicetrust.okta.com".into()),
        ..Default::default()
    };
    let held = valid_held();
    let der = held.certificate().unwrap().der.clone();
    let mut prefs = MemoryIdentityPreferences::default();
    // Okta's task left a bare-host preference for the old host; our first version a URL one.
    prefs.set("old-devicetrust.okta.com", &der).unwrap();
    prefs
        .set("https://old-devicetrust.okta.com/", &der)
        .unwrap();
    let link = SafariLink::new(Box::new(prefs));
    let mut store = MemoryStore::default();
    let superseded = vec!["old-devicetrust.okta.com".to_owned()];
    with_context(&record, &mut store, &held, superseded, |cx| {
        assert!(matches!(link.observe(cx), Observation::Failing { .. }));
        let changes = link.apply(cx).unwrap();
        assert_eq!(link.observe(cx), Observation::Healthy, "{changes:?}");
        assert!(changes
            .iter()
            .any(|c| c.contains("removed") && c.contains("old-devicetrust.okta.com")));
        cx.superseded.hosts.clear();
        let removed = link.remove(cx).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(matches!(link.observe(cx), Observation::Failing { .. }));
    });
}

/// A link that cannot be applied, as the NSS link without `certutil` where a database exists.
struct Unappliable;

impl Link for Unappliable {
    fn name(&self) -> &'static str {
        "NSS database"
    }
    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::AppAccessIncomplete]
    }
    fn observe(&self, _: &Context<'_>) -> Observation {
        Observation::failing(HealthStatus::AppAccessIncomplete, "not in the database")
    }
    fn survey(&self, _: &Context<'_>, _: Outlook<'_>) -> Option<Step> {
        None
    }
    fn apply(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let missing = crate::integrations::nss::NssError::ToolMissing {
            tool: "certutil",
            package: "libnss3-tools",
        };
        Err(LinkError::Platform(missing.to_string()))
    }
    fn remove(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(Vec::new())
    }
}

/// launchd as the job model sees it: what is loaded, whether this run is the job itself, and
/// whether anything booted out the job from inside it (which on a Mac kills the run).
#[derive(Default)]
struct FakeLaunchd {
    inside: std::cell::Cell<bool>,
    loaded: std::cell::RefCell<Option<Vec<String>>>,
    loads: std::cell::Cell<usize>,
    killed_itself: std::cell::Cell<bool>,
}

impl JobControl for FakeLaunchd {
    /// launchd's reload: bootout (ending the job's running process), then bootstrap.
    fn load(&self, _: &str, plist: &Path) -> Result<(), LinkError> {
        if self.inside.get() && self.loaded.borrow().is_some() {
            self.killed_itself.set(true);
        }
        let value = plist::Value::from_file(plist).unwrap();
        let args = value.as_dictionary().unwrap()["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_string().unwrap().to_owned())
            .collect();
        *self.loaded.borrow_mut() = Some(args);
        self.loads.set(self.loads.get() + 1);
        Ok(())
    }
    fn unload(&self, _: &str) -> Result<bool, LinkError> {
        Ok(self.loaded.borrow_mut().take().is_some())
    }
    fn is_loaded(&self, _: &str) -> Option<bool> {
        Some(self.loaded.borrow().is_some())
    }
    fn login_item_enabled(&self, _: &str) -> Option<bool> {
        None
    }
    fn runs_inside(&self, _: &str) -> bool {
        self.inside.get()
    }
    fn loaded_arguments(&self, _: &str) -> Option<Vec<String>> {
        self.loaded.borrow().clone()
    }
}

/// Applies the job link on a Mac-layout home under `root`, as `program`, from inside the job
/// or not; returns the change lines.
fn apply_job(root: &Path, link: &JobLink, program: &str) -> Vec<String> {
    let config = config(root);
    let home = UserHome::new("alice", Path::new("/Users/alice"), root, Layout::Mac);
    let record = EnrollmentRecord::default();
    let mut store = MemoryStore::default();
    let held = valid_held();
    let mut cx = context_over(
        &config,
        &home,
        &record,
        &mut store,
        &held,
        Superseded::default(),
    );
    cx.program = program.into();
    link.apply(&mut cx).unwrap()
}

#[test]
fn a_run_launchd_started_never_boots_out_its_own_job() {
    let root = tempfile::tempdir().unwrap();
    let launchd = Rc::new(FakeLaunchd::default());
    let link = JobLink {
        control: launchd.clone(),
    };
    // The Jamf policy installs and loads the job.
    apply_job(root.path(), &link, "/usr/local/bin/devicetrust");
    assert_eq!(launchd.loads.get(), 1);
    // The job's own run finds its definition changed (the agent moved): it writes the plist
    // but leaves the loaded job alone.
    launchd.inside.set(true);
    let changes = apply_job(root.path(), &link, "/opt/devicetrust/bin/devicetrust");
    assert!(
        !launchd.killed_itself.get(),
        "the run booted out its own job"
    );
    assert_eq!(launchd.loads.get(), 1);
    assert!(
        changes
            .iter()
            .any(|c| c.contains("launchd started this run")),
        "{changes:?}"
    );
    let loaded = launchd.loaded.borrow().clone().unwrap();
    assert_eq!(loaded[0], "/usr/local/bin/devicetrust");
    // The next run launchd did not start sees the loaded job is stale, though the plist on
    // disk no longer changes, and reloads it.
    launchd.inside.set(false);
    let changes = apply_job(root.path(), &link, "/opt/devicetrust/bin/devicetrust");
    assert_eq!(launchd.loads.get(), 2, "{changes:?}");
    assert_eq!(
        launchd.loaded.borrow().clone().unwrap()[0],
        "/opt/devicetrust/bin/devicetrust"
    );
    // Up to date: neither kind of run touches it.
    for inside in [true, false] {
        launchd.inside.set(inside);
        assert!(apply_job(root.path(), &link, "/opt/devicetrust/bin/devicetrust").is_empty());
    }
    assert_eq!(launchd.loads.get(), 2);
    assert!(!launchd.killed_itself.get());
}

#[test]
fn reload_decisions() {
    use super::job::{reload_decision, Reload};
    // (changed, loaded, stale, inside)
    assert_eq!(
        reload_decision(true, Some(true), false, true),
        Reload::Deferred
    );
    assert_eq!(
        reload_decision(false, Some(true), true, true),
        Reload::Deferred
    );
    assert_eq!(reload_decision(true, Some(true), false, false), Reload::Now);
    assert_eq!(reload_decision(false, Some(true), true, false), Reload::Now);
    // Not loaded: loading cannot end the caller, whoever it is.
    assert_eq!(
        reload_decision(false, Some(false), false, true),
        Reload::Now
    );
    assert_eq!(reload_decision(false, Some(true), false, true), Reload::No);
    assert_eq!(reload_decision(false, None, false, false), Reload::No);
    assert_eq!(reload_decision(true, None, false, false), Reload::Now);
}

/// A keychain-like store whose password item is in `state`, holding nothing else.
struct PasswordOnly(crate::store::PasswordItemState);

impl StoreView for PasswordOnly {
    fn location(&self) -> String {
        "keychain:okta.keychain".into()
    }
    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: Some(true),
            password_item: Some(self.0),
        }
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
    fn holds_key_of(&self, _: &[u8]) -> Result<bool, StoreError> {
        Ok(false)
    }
}

impl IdentityStore for PasswordOnly {
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        Ok(None)
    }
    fn generate_key(&mut self, _: u32) -> Result<Box<dyn NewKey>, StoreError> {
        Err(StoreError::Unsupported("not here".into()))
    }
    fn replace(&mut self, _: CheckedIdentity, _: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
    fn remove(&mut self) -> Result<bool, StoreError> {
        Ok(false)
    }
}

#[test]
fn apply_each_hands_over_the_links_it_could_not_apply_and_applies_the_rest() {
    let chain = Chain::new(vec![
        Box::new(Unappliable),
        Box::new(AllowlistLink::with_own(ad_hoc_agent)),
    ]);
    let mut store = MemoryStore {
        partitions: vec![Partition::AppleTool],
        writes: 0,
    };
    let record = EnrollmentRecord::default();
    let applied = with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        chain.apply_each(cx).unwrap()
    });
    // The link after the failing one was still applied.
    assert_eq!(store.writes, 1);
    assert_eq!(applied.changes.len(), 1, "{:?}", applied.changes);
    let [(name, e)] = applied.failed.as_slice() else {
        panic!("one failed link: {:?}", applied.failed)
    };
    assert_eq!(*name, "NSS database");
    // The Fix-It's one ERROR line names the link and the package to install; exit 1.
    let failure = crate::agent::AgentError::RepairIncomplete {
        link: name,
        source: LinkError::Platform(e.to_string()),
    };
    let line = failure.to_string();
    assert!(
        line.starts_with("NSS database could not be repaired: certutil is not installed")
            && line.contains("(package: libnss3-tools)"),
        "{line}"
    );
    assert_eq!(failure.exit_code(), 1);
}

#[test]
fn a_password_item_only_a_dialog_could_read_is_not_reported_missing() {
    use crate::store::PasswordItemState::*;
    let record = EnrollmentRecord::default();
    for (state, status) in [
        (Missing, Some(HealthStatus::KeychainPasswordMissing)),
        (Unreadable, Some(HealthStatus::KeychainPasswordUnreadable)),
        (Readable, Some(HealthStatus::CertificateMissing)),
    ] {
        let mut store = PasswordOnly(state);
        with_context(
            &record,
            &mut store,
            &Held::Nothing,
            Vec::new(),
            |cx| match IdentityLink.observe(cx) {
                Observation::Failing { status: got, .. } => assert_eq!(Some(got), status),
                other => panic!("{state:?}: {other:?}"),
            },
        );
    }
}

/// A link that says what `apply` changed, fails as told, and records what ran.
struct Scripted {
    name: &'static str,
    apply: fn() -> Result<Vec<String>, LinkError>,
    preflight: fn() -> Result<(), LinkError>,
    remove: fn() -> Result<Vec<String>, LinkError>,
}

impl Scripted {
    fn ok(name: &'static str) -> Scripted {
        Scripted {
            name,
            apply: || Ok(vec!["changed one thing".into()]),
            preflight: || Ok(()),
            remove: || Ok(vec!["removed one thing".into()]),
        }
    }
}

impl Link for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }
    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::RenewalJobMissing]
    }
    fn observe(&self, _: &Context<'_>) -> Observation {
        Observation::Healthy
    }
    fn survey(&self, _: &Context<'_>, _: Outlook<'_>) -> Option<Step> {
        None
    }
    fn preflight(&self, _: &Context<'_>) -> Result<(), LinkError> {
        (self.preflight)()
    }
    fn apply(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        (self.apply)()
    }
    fn remove(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        (self.remove)()
    }
}

fn planted() -> LinkError {
    LinkError::Fs(crate::securefs::SecureFsError::Symlink {
        path: "/home/alice/.config/systemd/user".into(),
    })
}

fn broken() -> LinkError {
    LinkError::Platform("launchctl said no".into())
}

#[test]
fn the_chain_returns_what_its_links_changed_and_the_first_planted_link_fails_it() {
    let record = EnrollmentRecord::default();
    let mut store = MemoryStore::default();
    let held = Held::Nothing;
    let two = Chain::new(vec![
        Box::new(Scripted::ok("one")),
        Box::new(Scripted::ok("two")),
    ]);
    with_context(&record, &mut store, &held, Vec::new(), |cx| {
        assert_eq!(
            two.apply(cx).unwrap(),
            ["changed one thing", "changed one thing"]
        );
        assert_eq!(two.preflight(cx).unwrap(), ());
        assert!(two.remove(cx).is_empty());
    });

    // A plain failure is handed over (apply_each) or only said (apply); a planted link fails
    // the whole run, after the other links were applied.
    let mixed = Chain::new(vec![
        Box::new(Scripted {
            apply: || Err(broken()),
            preflight: || Err(broken()),
            remove: || Err(broken()),
            ..Scripted::ok("broken")
        }),
        Box::new(Scripted {
            apply: || Err(planted()),
            preflight: || Err(planted()),
            ..Scripted::ok("planted")
        }),
        Box::new(Scripted::ok("fine")),
    ]);
    with_context(&record, &mut store, &held, Vec::new(), |cx| {
        let err = mixed.apply(cx).unwrap_err();
        assert!(matches!(err, LinkError::Fs(_)), "{err}");
        assert!(matches!(mixed.apply_each(cx), Err(LinkError::Fs(_))));
        // The first link's preflight failure is the answer.
        assert!(matches!(mixed.preflight(cx), Err(LinkError::Platform(_))));
        let failed = mixed.remove(cx);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "broken");
    });
    let unplanted = Chain::new(vec![
        Box::new(Scripted {
            apply: || Err(broken()),
            ..Scripted::ok("broken")
        }),
        Box::new(Scripted::ok("fine")),
    ]);
    with_context(&record, &mut store, &held, Vec::new(), |cx| {
        assert_eq!(unplanted.apply(cx).unwrap(), ["changed one thing"]);
        let applied = unplanted.apply_each(cx).unwrap();
        assert_eq!(applied.changes, ["changed one thing"]);
        assert_eq!(applied.failed.len(), 1);
        assert_eq!(applied.failed[0].0, "broken");
    });
}

#[test]
fn every_link_is_named_for_the_log_lines() {
    let names: Vec<&str> = every_link().links().map(|l| l.name()).collect();
    assert_eq!(
        names,
        [
            "identity store",
            "renewal",
            "key app allowlist",
            "NSS database",
            "browser auto-selection",
            "Safari identity preferences",
            "renewal job",
            "background task",
            "Okta's Python task",
        ]
    );
}

/// A store whose certificate or key cannot be read, with `error`.
struct Failing {
    certificate: Result<Option<Vec<u8>>, fn() -> StoreError>,
    key: fn() -> StoreError,
}

impl StoreView for Failing {
    fn location(&self) -> String {
        "failing:".into()
    }
    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: None,
            password_item: None,
        }
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.certificate.clone().map_err(|e| e())
    }
    fn holds_key_of(&self, _: &[u8]) -> Result<bool, StoreError> {
        Err((self.key)())
    }
}

impl IdentityStore for Failing {
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        Err((self.key)())
    }
    fn generate_key(&mut self, _: u32) -> Result<Box<dyn NewKey>, StoreError> {
        unreachable!("the test only reads")
    }
    fn replace(&mut self, _: CheckedIdentity, _: &[u8]) -> Result<(), StoreError> {
        unreachable!("the test only reads")
    }
    fn remove(&mut self) -> Result<bool, StoreError> {
        unreachable!("the test only reads")
    }
}

fn damage() -> StoreError {
    StoreError::Damaged {
        path: "/store".into(),
        what: "the key",
        reason: "truncated".into(),
    }
}

fn io() -> StoreError {
    StoreError::Os {
        path: "/store".into(),
        action: "read",
        reason: "the disk is gone".into(),
    }
}

#[test]
fn a_damaged_store_is_a_status_and_an_unreachable_one_an_error() {
    let now = OffsetDateTime::now_utc();
    let Held::Valid(info) = valid_held() else {
        unreachable!()
    };
    let read = |certificate, key| Held::read(&Failing { certificate, key }, now, &ExpectedCa::Okta);
    assert!(matches!(
        read(Err(damage), io),
        Ok(Held::Damaged {
            status: HealthStatus::CertificateMissing,
            ..
        })
    ));
    assert!(read(Err(io), damage).is_err());
    assert!(matches!(
        read(Ok(Some(info.der.clone())), damage),
        Ok(Held::Damaged {
            status: HealthStatus::PrivateKeyMissing,
            ..
        })
    ));
    assert!(read(Ok(Some(info.der.clone())), io).is_err());

    assert!(valid_held().is_valid());
    for held in [
        Held::Nothing,
        Held::KeyMissing(info.clone()),
        Held::Expired(info.clone()),
        Held::Damaged {
            status: HealthStatus::CertificateMissing,
            detail: String::new(),
        },
    ] {
        assert!(!held.is_valid(), "{held:?}");
    }
}

#[test]
fn the_host_and_cell_come_from_the_record_for_okta_and_the_configuration_for_scep() {
    let mut store = MemoryStore::default();
    let held = Held::Nothing;
    let okta = EnrollmentRecord {
        method: Some(crate::record::Method::Okta),
        cert_auth_host: Some("acme.devicetrust.okta.com".into()),
        cell: Some("okta.com".into()),
        ..EnrollmentRecord::default()
    };
    with_context(&okta, &mut store, &held, Vec::new(), |cx| {
        assert_eq!(cx.cert_auth_host(), Some("acme.devicetrust.okta.com"));
        assert_eq!(cx.cell().as_deref(), Some("okta.com"));
    });
    let unknown = EnrollmentRecord {
        method: Some(crate::record::Method::Okta),
        ..EnrollmentRecord::default()
    };
    with_context(&unknown, &mut store, &held, Vec::new(), |cx| {
        assert_eq!(cx.cert_auth_host(), None);
        assert_eq!(cx.cell(), None, "no org configured either");
    });
    let scep = EnrollmentRecord {
        method: Some(crate::record::Method::Scep),
        cert_auth_host: Some("dt.example.com".into()),
        cell: Some("example.com".into()),
        ..EnrollmentRecord::default()
    };
    with_context(&scep, &mut store, &held, Vec::new(), |cx| {
        assert_eq!(cx.cert_auth_host(), Some("dt.example.com"));
        assert_eq!(cx.cell(), None, "no `*.<cell>` on the SCEP path");
    });
}

#[test]
fn the_allowlist_is_left_alone_without_a_valid_identity_and_has_nothing_to_remove() {
    let record = EnrollmentRecord::default();
    let link = AllowlistLink::with_own(ad_hoc_agent);
    let mut store = MemoryStore {
        partitions: vec![Partition::AppleTool],
        writes: 0,
    };
    with_context(&record, &mut store, &Held::Nothing, Vec::new(), |cx| {
        assert!(matches!(link.observe(cx), Observation::NotApplicable));
        assert!(link.apply(cx).unwrap().is_empty());
        assert!(link.remove(cx).unwrap().is_empty());
    });
    assert_eq!(store.writes, 0);
}

#[test]
fn the_policy_files_say_what_they_wrote_and_removed() {
    use super::browser::{BrowserPolicy, PolicyFiles};
    use crate::integrations::chrome::{policy_entry, IssuerFilter};
    let root = tempfile::tempdir().unwrap();
    let files = PolicyFiles {
        root: root.path().to_owned(),
    };
    let entry = policy_entry("dt.example.com", &IssuerFilter::okta());
    assert!(!files.present(&entry));
    let written = files.put(&entry, &[]).unwrap();
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(written
        .iter()
        .all(|w| w.starts_with("browser auto-selection written to ")));
    assert!(files.present(&entry));
    assert!(files.put(&entry, &[]).unwrap().is_empty());
    let removed = files.take_out(std::slice::from_ref(&entry)).unwrap();
    assert_eq!(removed.len(), 3, "{removed:?}");
    assert!(removed
        .iter()
        .all(|r| r.starts_with("removed our browser auto-selection entry from ")));
    assert!(!files.present(&entry));
    assert!(files.take_out(&[entry]).unwrap().is_empty());
}

/// Browser policy as a list of entries, recording what the link asked of it.
#[derive(Default)]
struct PolicyLog {
    entries: Vec<String>,
    puts: Vec<(String, Vec<String>)>,
    taken: Vec<String>,
}

struct LoggedPolicy(Rc<std::cell::RefCell<PolicyLog>>);

impl super::browser::BrowserPolicy for LoggedPolicy {
    fn present(&self, entry: &str) -> bool {
        self.0.borrow().entries == [entry]
    }
    fn put(&self, entry: &str, older: &[String]) -> Result<Vec<String>, LinkError> {
        let mut log = self.0.borrow_mut();
        log.entries = vec![entry.to_owned()];
        log.puts.push((entry.to_owned(), older.to_vec()));
        Ok(vec![format!("put {entry}")])
    }
    fn take_out(&self, entries: &[String]) -> Result<Vec<String>, LinkError> {
        let mut log = self.0.borrow_mut();
        log.entries.retain(|e| !entries.contains(e));
        log.taken.extend_from_slice(entries);
        Ok(entries.iter().map(|e| format!("took {e}")).collect())
    }
    fn survey(
        &self,
        entry: Option<&str>,
        _: &[String],
    ) -> Result<Vec<crate::integrations::chrome::Seen>, LinkError> {
        let log = self.0.borrow();
        Ok(vec![crate::integrations::chrome::Seen {
            browser: "logged".into(),
            decided_by: (!log.entries.is_empty()).then(|| "our file".into()),
            ours_to_write: true,
            holds_ours: entry.map(|e| log.entries == [e]),
            holds_older: entry.is_some_and(|e| log.entries.iter().any(|x| x != e)),
            unusable: None,
        }])
    }
}

fn logged_browser_link() -> (BrowserPolicyLink, Rc<std::cell::RefCell<PolicyLog>>) {
    let log = Rc::new(std::cell::RefCell::new(PolicyLog::default()));
    let link = BrowserPolicyLink {
        backend: Box::new(LoggedPolicy(log.clone())),
    };
    (link, log)
}

fn failing_with(observation: Observation, expected: HealthStatus, words: &str) {
    match observation {
        Observation::Failing { status, detail } => {
            assert_eq!(status, expected);
            assert!(detail.contains(words), "{detail}");
        }
        other => panic!("expected {expected:?}: {other:?}"),
    }
}

#[test]
fn the_browser_link_puts_one_entry_for_the_host_replacing_older_ones_and_takes_it_out() {
    use crate::integrations::chrome::{policy_entry, IssuerFilter};
    let (link, log) = logged_browser_link();
    let mut store = MemoryStore::default();
    let held = valid_held();
    let filter = IssuerFilter::of(held.certificate().unwrap());
    assert!(!filter.is_empty());
    let host = "acme.devicetrust.okta.com";
    let entry = policy_entry(host, &filter);
    let record = EnrollmentRecord {
        method: Some(crate::record::Method::Okta),
        cert_auth_host: Some(host.into()),
        ..EnrollmentRecord::default()
    };
    let superseded = vec!["old.devicetrust.okta.com".to_owned(), host.to_owned()];
    with_context(&record, &mut store, &held, superseded, |cx| {
        failing_with(
            link.observe(cx),
            HealthStatus::BrowserPolicyMissing,
            "lacks the one entry",
        );
        assert_eq!(link.apply(cx).unwrap(), [format!("put {entry}")]);
        assert!(matches!(link.observe(cx), Observation::Healthy));
        assert_eq!(link.remove(cx).unwrap(), [format!("took {entry}")]);
        failing_with(
            link.observe(cx),
            HealthStatus::BrowserPolicyMissing,
            "lacks the one entry",
        );
    });
    let log = log.borrow();
    // The older host's entry is replaced; the current host is not "older" than itself.
    let older = vec![policy_entry("old.devicetrust.okta.com", &filter)];
    assert_eq!(log.puts, [(entry.clone(), older)]);
    assert_eq!(log.taken, [entry]);
}

#[test]
fn the_browser_link_without_a_host_or_a_filter_writes_nothing_and_says_why() {
    let (link, log) = logged_browser_link();
    let mut store = MemoryStore::default();
    let held = valid_held();
    // Okta always has a certAuthDomain: not knowing it is a failure. SCEP may have none.
    let okta = EnrollmentRecord {
        method: Some(crate::record::Method::Okta),
        ..EnrollmentRecord::default()
    };
    with_context(&okta, &mut store, &held, Vec::new(), |cx| {
        failing_with(
            link.observe(cx),
            HealthStatus::BrowserPolicyMissing,
            "certAuthDomain is unknown",
        );
        assert!(link.apply(cx).unwrap().is_empty());
        assert!(link.remove(cx).unwrap().is_empty());
    });
    let scep = EnrollmentRecord {
        method: Some(crate::record::Method::Scep),
        ..EnrollmentRecord::default()
    };
    with_context(&scep, &mut store, &held, Vec::new(), |cx| {
        assert!(matches!(link.observe(cx), Observation::NotApplicable));
    });

    // A SCEP CA whose certificates no run has recorded yet: the filter cannot be known, and
    // nothing is taken from the stored certificate instead.
    let root = tempfile::tempdir().unwrap();
    let flags = Flags {
        root: Some(root.path().to_owned()),
        scep_url: Some("https://ca.example.com/scep".into()),
        ..Flags::default()
    };
    let config = crate::config::load(&flags, &Default::default(), Layer::default()).unwrap();
    let scep = EnrollmentRecord {
        method: Some(crate::record::Method::Scep),
        scep_url: Some("https://ca.example.com/scep".into()),
        cert_auth_host: Some("dt.example.com".into()),
        ..EnrollmentRecord::default()
    };
    let home = home(root.path());
    let mut cx = context_over(
        &config,
        &home,
        &scep,
        &mut store,
        &held,
        Superseded::default(),
    );
    failing_with(
        link.observe(&cx),
        HealthStatus::BrowserPolicyMissing,
        "not recorded yet",
    );
    assert!(link.apply(&mut cx).unwrap().is_empty());
    let log = log.borrow();
    assert!(log.puts.is_empty() && log.entries.is_empty());
}

#[test]
fn the_identity_link_checks_the_store_first_reports_repairs_and_removals() {
    let dir = tempfile::tempdir().unwrap();
    let record = EnrollmentRecord::default();
    // A folder of someone else's files is not a store to enroll into.
    std::fs::write(dir.path().join("theirs.txt"), b"x").unwrap();
    let mut theirs = crate::store::file::FileStore::new(dir.path());
    with_context(&record, &mut theirs, &Held::Nothing, Vec::new(), |cx| {
        assert!(IdentityLink.preflight(cx).is_err());
    });
    let mut empty = crate::store::file::FileStore::new(dir.path().join("store"));
    let location = empty.location();
    with_context(&record, &mut empty, &Held::Nothing, Vec::new(), |cx| {
        IdentityLink.preflight(cx).unwrap();
        assert_eq!(
            IdentityLink.remove(cx).unwrap(),
            [format!("no identity to remove in {location}")]
        );
    });
    let mut holding = Holding {
        certificate: Vec::new(),
        key_pkcs8: Vec::new(),
    };
    with_context(&record, &mut holding, &Held::Nothing, Vec::new(), |cx| {
        assert_eq!(
            IdentityLink.apply(cx).unwrap(),
            ["holding: search list restored"]
        );
    });
}

#[test]
fn renewal_fails_only_when_due_and_the_last_attempt_failed() {
    let mut store = MemoryStore::default();
    let held = valid_held();
    let certificate = held.certificate().unwrap().clone();
    assert!(certificate.not_after - certificate.not_before > time::Duration::days(60));
    let attempt = |ok| EnrollmentRecord {
        last_renewal: Some(crate::record::RenewalAttempt {
            time: "2026-12-01T03:00:00Z".into(),
            ok,
            error: (!ok).then(|| "Okta answered 500".into()),
        }),
        ..EnrollmentRecord::default()
    };
    // A day before expiry is due under any spread; a day after issue is not.
    let due = certificate.not_after - time::Duration::days(1);
    let early = certificate.not_before + time::Duration::days(1);
    for (ok, now, failing) in [
        (false, due, true),
        (true, due, false),
        (false, early, false),
        (true, early, false),
    ] {
        with_context(&attempt(ok), &mut store, &held, Vec::new(), |cx| {
            cx.now = now;
            let observed = RenewalLink.observe(cx);
            if failing {
                failing_with(observed, HealthStatus::RenewalFailing, "Okta answered 500");
            } else {
                assert!(
                    matches!(observed, Observation::Healthy),
                    "{ok} {now}: {observed:?}"
                );
            }
            // The renewal itself is the `renew` command's: the link changes nothing.
            assert!(RenewalLink.apply(cx).unwrap().is_empty());
            assert!(RenewalLink.remove(cx).unwrap().is_empty());
        });
    }
}

/// A service manager that says whether a job is loaded and no more: not whether this process
/// is a run of it, nor what it loaded (the trait's defaults).
#[derive(Default)]
struct LoadedOnly {
    loads: std::cell::Cell<usize>,
}

impl JobControl for LoadedOnly {
    fn load(&self, _: &str, _: &Path) -> Result<(), LinkError> {
        self.loads.set(self.loads.get() + 1);
        Ok(())
    }
    fn unload(&self, _: &str) -> Result<bool, LinkError> {
        Ok(true)
    }
    fn is_loaded(&self, _: &str) -> Option<bool> {
        Some(true)
    }
    fn login_item_enabled(&self, _: &str) -> Option<bool> {
        None
    }
}

#[test]
fn a_service_manager_that_cannot_tell_more_reloads_on_a_change_only() {
    // Not knowing that this run is the job's is not being inside it, and not knowing what is
    // loaded is not a stale job: a change reloads at once, and nothing else does.
    let root = tempfile::tempdir().unwrap();
    let control = Rc::new(LoadedOnly::default());
    let link = JobLink {
        control: control.clone(),
    };
    apply_job(root.path(), &link, "/usr/local/bin/devicetrust");
    assert_eq!(control.loads.get(), 1);
    assert!(apply_job(root.path(), &link, "/usr/local/bin/devicetrust").is_empty());
    assert_eq!(control.loads.get(), 1);
    apply_job(root.path(), &link, "/opt/devicetrust/bin/devicetrust");
    assert_eq!(control.loads.get(), 2);
}

#[test]
fn a_host_of_files_only_never_claims_a_job_loaded_or_unloaded() {
    // Linux: systemd picks the timer up by its link at the next login.
    let link = JobLink {
        control: Rc::new(super::job::FilesOnly),
    };
    let record = EnrollmentRecord::default();
    let mut store = MemoryStore::default();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        let installed = link.apply(cx).unwrap();
        assert!(!installed.is_empty());
        assert!(
            installed.iter().all(|c| !c.contains("loaded")),
            "{installed:?}"
        );
        assert!(matches!(link.observe(cx), Observation::Healthy));
        // No Login Items switch to read: not "switched off".
        let switch = BackgroundTaskLink {
            control: link.control.clone(),
        };
        assert!(matches!(switch.observe(cx), Observation::NotApplicable));
        // The switch is the user's (or a profile's): nothing for the agent to turn on or off.
        assert!(switch.apply(cx).unwrap().is_empty());
        assert!(switch.remove(cx).unwrap().is_empty());
        let removed = link.remove(cx).unwrap();
        assert!(!removed.is_empty());
        assert!(
            removed.iter().all(|c| c.starts_with("removed ")),
            "{removed:?}"
        );
    });
    // A Mac-layout sandbox root: the LaunchAgent is written, and no launchd is asked or claimed.
    let root = tempfile::tempdir().unwrap();
    let installed = apply_job(root.path(), &link, "/usr/local/bin/devicetrust");
    assert!(!installed.is_empty());
    assert!(
        installed.iter().all(|c| !c.contains("loaded")),
        "{installed:?}"
    );
}

#[test]
fn with_the_packages_launch_agent_no_per_user_job_is_written() {
    // launchd loads one job per label in a session: a user's own copy would be shadowed.
    let root = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pkg/payload/Library/LaunchAgents/com.devicetrust.renew.plist");
    let global = crate::integrations::schedule::package_launch_agent_path(root.path());
    std::fs::create_dir_all(global.parent().unwrap()).unwrap();
    std::fs::copy(&shipped, &global).unwrap();
    let launchd = Rc::new(FakeLaunchd::default());
    let link = JobLink {
        control: launchd.clone(),
    };
    apply_job(root.path(), &link, "/usr/local/bin/devicetrust");
    let home = UserHome::new("alice", Path::new("/Users/alice"), root.path(), Layout::Mac);
    let own = crate::integrations::schedule::launch_agent_path(&home);
    assert!(!own.exists(), "{} was written", own.display());
    // The package's job is loaded instead.
    assert_eq!(launchd.loads.get(), 1);
}

/// The package's LaunchAgent runs a plain `renew`, which takes the enrollment's options from
/// root's record: a device enrolled with `--config` or `--store` and plain runs after it all
/// see it as this agent's job.
#[test]
fn the_packages_launch_agent_is_this_agents_job_whatever_options_the_enrollment_used() {
    let root = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pkg/payload/Library/LaunchAgents/com.devicetrust.renew.plist");
    let global = crate::integrations::schedule::package_launch_agent_path(root.path());
    std::fs::create_dir_all(global.parent().unwrap()).unwrap();
    std::fs::copy(&shipped, &global).unwrap();
    let link = JobLink {
        control: Rc::new(super::job::FilesOnly),
    };
    let home = UserHome::new("alice", Path::new("/Users/alice"), root.path(), Layout::Mac);
    let mut store = MemoryStore::default();
    let held = valid_held();
    let record = EnrollmentRecord {
        config_file: Some("/Library/Application Support/devicetrust/alt.toml".into()),
        store: Some("file:/Users/Shared/identity".into()),
        ..EnrollmentRecord::default()
    };
    for config in [
        config(root.path()),
        crate::config::load(
            &Flags {
                root: Some(root.path().to_owned()),
                store: Some("file:/Users/Shared/identity".into()),
                ..Flags::default()
            },
            &Default::default(),
            Layer::default(),
        )
        .unwrap(),
    ] {
        let cx = context_over(
            &config,
            &home,
            &record,
            &mut store,
            &held,
            Superseded::default(),
        );
        assert_eq!(link.observe(&cx), Observation::Healthy);
    }
    std::fs::remove_file(&global).unwrap();
    let config = config(root.path());
    let cx = context_over(
        &config,
        &home,
        &record,
        &mut store,
        &held,
        Superseded::default(),
    );
    assert!(matches!(link.observe(&cx), Observation::Failing { .. }));
}

#[test]
fn the_job_is_not_installed_through_a_link_planted_in_the_home() {
    let link = JobLink {
        control: Rc::new(super::job::FilesOnly),
    };
    let record = EnrollmentRecord::default();
    let mut store = MemoryStore::default();
    let outside = tempfile::tempdir().unwrap();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        link.preflight(cx).unwrap();
        let config = cx.home.place(".config").path();
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(outside.path(), &config).unwrap();
        let err = link.preflight(cx).unwrap_err();
        assert!(err.to_string().contains("link"), "{err}");
    });
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn each_link_declares_the_statuses_its_observe_reports() {
    use HealthStatus::*;
    // From each link's `observe`: what it can fail with. The legacy task only retires Okta's
    // files and never fails the chain.
    let expected: &[(&str, &[HealthStatus])] = &[
        (
            "identity store",
            &[
                KeychainMissing,
                KeychainPasswordMissing,
                KeychainPasswordUnreadable,
                CertificateMissing,
                CertificateFromAnotherCa,
                PrivateKeyMissing,
                ClockWrong,
                CertificateExpired,
            ],
        ),
        ("renewal", &[RenewalFailing]),
        ("key app allowlist", &[AppAccessIncomplete]),
        ("NSS database", &[AppAccessIncomplete]),
        ("browser auto-selection", &[BrowserPolicyMissing]),
        ("Safari identity preferences", &[BrowserPolicyMissing]),
        ("renewal job", &[RenewalJobMissing]),
        ("background task", &[BackgroundTaskDisabled]),
        ("Okta's Python task", &[]),
    ];
    let chain = every_link();
    let declared: Vec<(&str, &[HealthStatus])> =
        chain.links().map(|l| (l.name(), l.statuses())).collect();
    assert_eq!(declared, expected);
}

/// A store holding a fresh identity issued by the test CA, and what is held.
fn enroll_into(store: &mut dyn IdentityStore) -> Held {
    crate::store::file::tests::hold(store);
    Held::read(store, OffsetDateTime::now_utc(), &ExpectedCa::Okta).unwrap()
}

/// A user's home, made, and a file store beside it: what the NSS link works on.
struct NssHome {
    _dirs: [tempfile::TempDir; 2],
    store: crate::store::file::FileStore,
    config: Config,
    home: UserHome,
    record: EnrollmentRecord,
}

impl NssHome {
    fn new() -> NssHome {
        let store_dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let home = home(root.path());
        std::fs::create_dir_all(&home.paths.home).unwrap();
        NssHome {
            store: crate::store::file::FileStore::new(store_dir.path().join("store")),
            config: config(root.path()),
            home,
            record: EnrollmentRecord::default(),
            _dirs: [store_dir, root],
        }
    }
}

#[test]
fn the_nss_link_puts_the_identity_in_once_renews_it_and_takes_it_out() {
    if crate::integrations::nss::tests::real_tools().is_none() {
        return;
    }
    let NssHome {
        _dirs,
        mut store,
        config,
        home,
        record,
    } = NssHome::new();
    let database = home.paths.home.join(".pki/nssdb");
    let link = super::nss::NssLink::default();
    let put_line = |serial: &str| {
        format!(
            "certificate {serial} put in the NSS database {}",
            database.display()
        )
    };

    let first = enroll_into(&mut store);
    let first_cert = first.certificate().unwrap().clone();
    let mut cx = context_over(
        &config,
        &home,
        &record,
        &mut store,
        &first,
        Superseded::default(),
    );
    link.preflight(&cx).unwrap();
    failing_with(
        link.observe(&cx),
        HealthStatus::AppAccessIncomplete,
        "not in the user's NSS database",
    );
    assert_eq!(
        link.apply(&mut cx).unwrap(),
        [put_line(&first_cert.serial_hex)]
    );
    let vouch = home.state_place().path().join("nss-verified.json");
    assert!(vouch.is_file(), "the check is kept for read-only runs");
    assert!(matches!(link.observe(&cx), Observation::Healthy));
    assert!(link.apply(&mut cx).unwrap().is_empty(), "once");

    // Renewed: the new identity goes in and exactly the replaced one comes out.
    let renewed = enroll_into(&mut store);
    let serial = renewed.certificate().unwrap().serial_hex.clone();
    let mut cx = context_over(
        &config,
        &home,
        &record,
        &mut store,
        &renewed,
        Superseded {
            certificates: vec![first_cert.der.clone()],
            ..Superseded::default()
        },
    );
    assert_eq!(
        link.apply(&mut cx).unwrap(),
        [
            put_line(&serial),
            format!(
                "certificate {} removed from the NSS database",
                first_cert.serial_hex
            ),
        ]
    );
    assert!(matches!(link.observe(&cx), Observation::Healthy));

    // Uninstall takes ours out, and the check kept for read-only runs with it.
    assert_eq!(
        link.remove(&mut cx).unwrap(),
        [format!(
            "removed certificate {serial} from the NSS database {}",
            database.display()
        )]
    );
    assert!(!vouch.exists());
    failing_with(
        link.observe(&cx),
        HealthStatus::AppAccessIncomplete,
        "not in the user's NSS database",
    );
    link.apply(&mut cx).unwrap();

    // A damaged database: a failure to report, not a link that does not apply.
    std::fs::remove_file(&vouch).unwrap();
    for file in ["cert9.db", "key4.db"] {
        std::fs::write(database.join(file), b"not a database").unwrap();
    }
    let mut cx = context_over(
        &config,
        &home,
        &record,
        &mut store,
        &renewed,
        Superseded::default(),
    );
    failing_with(
        link.observe(&cx),
        HealthStatus::AppAccessIncomplete,
        "bad database",
    );
    let err = link.apply(&mut cx).unwrap_err();
    assert!(err.to_string().contains("bad database"), "{err}");
}

#[test]
fn without_the_nss_tools_the_nss_link_matters_only_where_a_database_exists() {
    let link = super::nss::NssLink::with_tools(|_| Ok(crate::integrations::nss::tests::NoTools));
    let NssHome {
        _dirs,
        mut store,
        config,
        home,
        record,
    } = NssHome::new();
    let held = enroll_into(&mut store);
    let mut cx = context_over(
        &config,
        &home,
        &record,
        &mut store,
        &held,
        Superseded::default(),
    );

    // No database: no NSS-based browser has run here, so there is nothing to give the
    // identity to, and every step agrees, leaving the home as it was.
    link.preflight(&cx).unwrap();
    assert_eq!(link.observe(&cx), Observation::NotApplicable);
    assert!(link.apply(&mut cx).unwrap().is_empty());
    assert!(link.remove(&mut cx).unwrap().is_empty());
    assert!(!home.paths.home.join(".pki").exists());

    // A database a browser made: the identity must go in, so the missing package is named
    // before anything is asked of a CA, and by every step after.
    let database = home.paths.home.join(".pki/nssdb");
    std::fs::create_dir_all(&database).unwrap();
    std::fs::write(database.join("cert9.db"), b"").unwrap();
    let err = link.preflight(&cx).unwrap_err();
    assert!(err.to_string().contains("libnss3-tools"), "{err}");
    failing_with(
        link.observe(&cx),
        HealthStatus::AppAccessIncomplete,
        "libnss3-tools",
    );
    let err = link.apply(&mut cx).unwrap_err();
    assert!(err.to_string().contains("libnss3-tools"), "{err}");
    let err = link.remove(&mut cx).unwrap_err();
    assert!(err.to_string().contains("libnss3-tools"), "{err}");

    // The tools uninstalled after a run put the identity in and vouched for it: the browser
    // still has the identity, so the device is healthy.
    let der = &held.certificate().unwrap().der;
    let vouch = crate::integrations::nss::Vouch::now(
        &home.place(crate::integrations::nss::DATABASE_DIR),
        der,
    )
    .unwrap();
    let state = home.state_place().path();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("nss-verified.json"),
        serde_json::to_vec(&vouch).unwrap(),
    )
    .unwrap();
    assert_eq!(link.observe(&cx), Observation::Healthy);
}

/// A keychain-like store that answers what its view may be asked and panics at everything else:
/// what `status` and `ea` reach, and what they must not (the password, unlocking, writing).
struct ViewOnly {
    certificate: Vec<u8>,
    password_item: crate::store::PasswordItemState,
    partitions: Option<SeenPartitions>,
}

impl StoreView for ViewOnly {
    fn location(&self) -> String {
        "keychain:okta.keychain".into()
    }
    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: Some(true),
            password_item: Some(self.password_item),
        }
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(Some(self.certificate.clone()))
    }
    fn holds_key_of(&self, _: &[u8]) -> Result<bool, StoreError> {
        Ok(true)
    }
    fn has_partition_list(&self) -> bool {
        true
    }
    fn seen_partitions(&self) -> Option<Result<Option<SeenPartitions>, StoreError>> {
        Some(Ok(self.partitions.clone()))
    }
}

impl IdentityStore for ViewOnly {
    fn signing_key(&self) -> Result<Option<Box<dyn SigningKey>>, StoreError> {
        panic!("the health check asked for the key, which unlocks with the password")
    }
    fn generate_key(&mut self, _: u32) -> Result<Box<dyn NewKey>, StoreError> {
        panic!("the health check wrote")
    }
    fn replace(&mut self, _: CheckedIdentity, _: &[u8]) -> Result<(), StoreError> {
        panic!("the health check wrote")
    }
    fn remove(&mut self) -> Result<bool, StoreError> {
        panic!("the health check wrote")
    }
    fn unlock(&self) -> Result<(), StoreError> {
        panic!("the health check unlocked the store")
    }
    fn partition_list(&self) -> Option<Result<Vec<Partition>, StoreError>> {
        panic!("the health check read the key's list the way that unlocks")
    }
}

/// The health check's part of the chain for a keychain-like store: Held read, then the verdict.
fn observe_view_only(store: &mut ViewOnly) -> Verdict {
    let now = OffsetDateTime::now_utc();
    let held = Held::read(&*store, now, &ExpectedCa::Okta).unwrap();
    let chain = Chain::new(vec![
        Box::new(IdentityLink),
        Box::new(RenewalLink),
        Box::new(AllowlistLink::with_own(ad_hoc_agent)),
    ]);
    let record = EnrollmentRecord::default();
    with_context(&record, store, &held, Vec::new(), |cx| chain.verdict(cx))
}

#[test]
fn the_health_check_reads_the_store_through_its_view_only() {
    let desired = AllowlistConfig::default()
        .desired_with(Method::Okta, &ad_hoc_agent().unwrap())
        .unwrap();
    let mut store = ViewOnly {
        certificate: test_certificate(OffsetDateTime::now_utc()),
        password_item: crate::store::PasswordItemState::Readable,
        partitions: Some(SeenPartitions {
            list: desired.clone(),
            recorded_at: None,
        }),
    };
    assert_eq!(observe_view_only(&mut store).status, HealthStatus::Healthy);

    // Locked: the list the last verifying run recorded, and the evidence says so.
    store.partitions = Some(SeenPartitions {
        list: desired[..1].to_vec(),
        recorded_at: Some("2026-01-02T03:04:05Z".into()),
    });
    let verdict = observe_view_only(&mut store);
    assert_eq!(verdict.status, HealthStatus::AppAccessIncomplete);
    let detail = verdict.detail.unwrap();
    assert!(
        detail.contains("as the run at 2026-01-02T03:04:05Z recorded it"),
        "{detail}"
    );
    // Locked and never recorded: said, not guessed.
    store.partitions = None;
    let verdict = observe_view_only(&mut store);
    assert_eq!(verdict.status, HealthStatus::AppAccessIncomplete);
    assert!(verdict.detail.unwrap().contains("no run has recorded it"));
}

#[test]
fn the_password_item_shows_what_the_last_run_that_needed_it_found() {
    let mut store = ViewOnly {
        certificate: test_certificate(OffsetDateTime::now_utc()),
        password_item: crate::store::PasswordItemState::Unreadable,
        partitions: None,
    };
    let verdict = observe_view_only(&mut store);
    assert_eq!(verdict.status, HealthStatus::KeychainPasswordUnreadable);
    assert!(
        verdict
            .detail
            .as_deref()
            .unwrap()
            .contains("nothing is rebuilt"),
        "{verdict:?}"
    );
    // A password proven wrong cannot open the keychain, like a missing one.
    store.password_item = crate::store::PasswordItemState::Wrong;
    let verdict = observe_view_only(&mut store);
    assert_eq!(verdict.status, HealthStatus::KeychainPasswordMissing);
    assert!(
        verdict.detail.as_deref().unwrap().contains("does not open"),
        "{verdict:?}"
    );
}

/// NSS's tools as a user who can move their database folder while a tool runs (a PKCS#11
/// module's destructor can): every `certutil` says the identity is there with its key, and,
/// when `<home>/../swap-during-run` exists, first swaps `~/.pki/nssdb` for a link to
/// `<home>/../root-only`.
struct SwappingTools {
    home: std::path::PathBuf,
}

impl crate::integrations::nss::ToolRunner for SwappingTools {
    fn run(
        &self,
        _: crate::integrations::nss::Tool,
        _: &[std::ffi::OsString],
    ) -> Result<crate::integrations::nss::ToolOutput, crate::integrations::nss::NssError> {
        let outside = self.home.parent().unwrap();
        let database = self.home.join(".pki/nssdb");
        if outside.join("swap-during-run").exists() && !database.is_symlink() {
            std::fs::rename(&database, self.home.join(".pki/nssdb.real")).unwrap();
            std::os::unix::fs::symlink(outside.join("root-only"), &database).unwrap();
        }
        let der = std::fs::read(outside.join("cert.der")).unwrap();
        Ok(crate::integrations::nss::ToolOutput {
            success: true,
            code: Some(0),
            stdout: crate::integrations::nss::tests::printout(&der, true),
            stderr: String::new(),
        })
    }

    fn run_as(&self) -> Option<crate::integrations::nss::RunAs> {
        None
    }
}

#[test]
fn root_never_reads_the_nss_files_through_a_link_on_the_way_not_even_one_swapped_in_a_run() {
    use sha2::Digest as _;
    use std::os::unix::fs::PermissionsExt;
    for case in [
        "a link at ~/.pki",
        "a link at ~/.pki/nssdb",
        "swapped during certutil",
    ] {
        let NssHome {
            _dirs,
            mut store,
            config,
            home,
            record,
        } = NssHome::new();
        let held = enroll_into(&mut store);
        let der = held.certificate().unwrap().der.clone();
        let home_dir = home.paths.home.clone();
        let outside = home_dir.parent().unwrap().to_owned();
        std::fs::write(outside.join("cert.der"), &der).unwrap();
        // Root's files, in a folder only root may enter, named as NSS names its own.
        let secrets = outside.join("root-only");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(secrets.join("cert9.db"), b"root's secret").unwrap();
        std::fs::write(secrets.join("key4.db"), b"another secret of root's").unwrap();
        let database = home_dir.join(".pki/nssdb");
        std::fs::create_dir_all(&database).unwrap();
        std::fs::write(database.join("cert9.db"), b"the user's certificates").unwrap();
        std::fs::write(database.join("key4.db"), b"the user's keys").unwrap();
        match case {
            "a link at ~/.pki" => {
                let theirs = outside.join("their-pki");
                std::fs::create_dir(&theirs).unwrap();
                std::os::unix::fs::symlink(&secrets, theirs.join("nssdb")).unwrap();
                std::fs::rename(home_dir.join(".pki"), outside.join("pki.real")).unwrap();
                std::os::unix::fs::symlink(&theirs, home_dir.join(".pki")).unwrap();
            }
            "a link at ~/.pki/nssdb" => {
                std::fs::rename(&database, home_dir.join(".pki/nssdb.real")).unwrap();
                std::os::unix::fs::symlink(&secrets, &database).unwrap();
            }
            _ => std::fs::write(outside.join("swap-during-run"), b"").unwrap(),
        }
        let link = super::nss::NssLink::with_tools(|home| {
            Ok(SwappingTools {
                home: home.to_owned(),
            })
        });
        let mut cx = context_over(
            &config,
            &home,
            &record,
            &mut store,
            &held,
            Superseded::default(),
        );
        // The tools say the identity is there: nothing to change, and the look is one a
        // later read-only run could take as true, were the files root read the database's.
        assert_eq!(link.apply(&mut cx).unwrap(), Vec::<String>::new(), "{case}");
        assert!(database.is_symlink(), "{case}");
        let vouch = home.state_place().path().join("nss-verified.json");
        if let Ok(kept) = std::fs::read_to_string(&vouch) {
            for secret in ["cert9.db", "key4.db"] {
                let digest = crate::fsutil::hex(&sha2::Sha256::digest(
                    std::fs::read(secrets.join(secret)).unwrap(),
                ));
                assert!(!kept.contains(&digest), "{case}: root hashed {secret}");
            }
        }
        assert!(!vouch.exists(), "{case}: a vouch for files behind a link");
        // And the read-only look does not take anything behind the link as vouched for.
        assert_eq!(link.observe(&cx), Observation::Healthy, "{case}");
    }
}
