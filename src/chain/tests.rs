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
use crate::pki::authority::tests::{client_request, test_authority};
use crate::pki::{CheckedIdentity, NewKey, PrivateKey, SigningKey};
use crate::store::StoreProbe;
use std::path::Path;
use std::rc::Rc;

/// An in-memory store with a partition list, standing in for the keychain on Linux.
pub(crate) struct MemoryStore {
    pub partitions: Vec<Partition>,
    pub writes: usize,
}

impl IdentityStore for MemoryStore {
    fn location(&self) -> String {
        "memory:".into()
    }
    fn probe(&self) -> StoreProbe {
        StoreProbe {
            exists: Some(true),
            password_item: Some(true),
        }
    }
    fn certificate(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
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
    fn has_partition_list(&self) -> bool {
        true
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
    let key = crate::pki::key::tests::test_key();
    let der = test_authority()
        .issue(client_request(
            key.public_key_der().unwrap(),
            OffsetDateTime::now_utc(),
        ))
        .unwrap();
    Held::Valid(CertificateInfo::parse(&der).unwrap())
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
    let mut cx = Context {
        config: &config,
        home: &home,
        record,
        store,
        held,
        policy: RenewalPolicy::for_device("x", 30, 14),
        now: OffsetDateTime::now_utc(),
        program: "/usr/local/bin/devicetrust".into(),
        superseded: Superseded {
            hosts: superseded_hosts,
            certificates: Vec::new(),
        },
    };
    f(&mut cx)
}

/// Every link kind, in the order the hosts build them.
fn every_link() -> Chain {
    let control: Rc<dyn JobControl> = Rc::new(super::job::FilesOnly);
    Chain::new(vec![
        Box::new(IdentityLink),
        Box::new(RenewalLink),
        Box::new(AllowlistLink),
        Box::new(super::nss::NssLink),
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
        HealthStatus::PrivateKeyMissing,
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
    // Every status of cli.md from Keychain Missing to Background Task Disabled, each once.
    let expected = [
        HealthStatus::KeychainMissing,
        HealthStatus::KeychainPasswordMissing,
        HealthStatus::CertificateMissing,
        HealthStatus::PrivateKeyMissing,
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
    assert!(!names.contains(&super::nss::NssLink.name()), "{names:?}");
}

/// A store that holds exactly the certificate and key it is given.
struct Holding {
    certificate: Vec<u8>,
    key_pkcs8: Vec<u8>,
}

impl IdentityStore for Holding {
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
}

#[test]
fn a_valid_key_of_another_certificate_is_private_key_missing() {
    use crate::pki::key::tests::{other_test_key, test_key};
    let now = OffsetDateTime::now_utc();
    let certificate = test_authority()
        .issue(client_request(test_key().public_key_der().unwrap(), now))
        .unwrap();
    let holding = |key: &PrivateKey| Holding {
        certificate: certificate.clone(),
        key_pkcs8: key.to_pkcs8_der().unwrap().to_vec(),
    };
    // Its own key: valid.
    let held = Held::read(&holding(test_key()), now).unwrap();
    assert!(matches!(held, Held::Valid(_)), "{held:?}");

    // A key that parses and signs, but is another certificate's.
    let mut store = holding(other_test_key());
    let held = Held::read(&store, now).unwrap();
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
            Partition::Other("unsigned:".into()),
            Partition::TeamId("ABCDE12345".into()),
        ],
        writes: 0,
    };
    let record = EnrollmentRecord::default();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        let link = AllowlistLink;
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
        .desired_with(Some(Partition::Other("unsigned:".into())))
        .unwrap();
    assert!(desired.iter().all(|p| store.partitions.contains(p)));
}

#[test]
fn the_file_store_has_no_allowlist_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = crate::store::FileStore::new(dir.path().join("store"));
    let record = EnrollmentRecord::default();
    with_context(&record, &mut store, &valid_held(), Vec::new(), |cx| {
        assert_eq!(AllowlistLink.observe(cx), Observation::NotApplicable);
        assert!(AllowlistLink.apply(cx).unwrap().is_empty());
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
    let mut store = MemoryStore {
        partitions: vec![],
        writes: 0,
    };
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
