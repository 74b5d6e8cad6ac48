//! The keychain store end to end on a real Mac (the macOS CI runners; type-checked elsewhere):
//! enroll against the simulator into an okta.keychain under a temporary home, renew, take over
//! an okta.keychain and password item made the way Okta's task made them (`security
//! add-generic-password -A`), a wrong password, an unreadable item, uninstall.
//!
//! Each test names its own password item (`devicetrust-test-<pid>-<n>`) in the default
//! keychain, so tests running in parallel, or on a developer's enrolled Mac, never meet the
//! real `device_trust` item or each other's. Every `security` call has a time limit: a dialog
//! nobody answers fails the test instead of hanging the job.
#![cfg(target_os = "macos")]

use devicetrust::agent::Agent;
use devicetrust::chain::identity::IdentityLink;
use devicetrust::chain::{Chain, UserHome};
use devicetrust::config::{self, Flags, Layer, StoreSpec};
use devicetrust::host::{Host, HostError};
use devicetrust::paths::Layout;
use devicetrust::platform::Platform;
use devicetrust::securefs::Place;
use devicetrust::sim::{SimConfig, Simulator};
use devicetrust::store::keychain_model::KeychainSeen;
use devicetrust::store::keychain_password::ItemPlace;
use devicetrust::store::{IdentityStore, KeychainStore, PasswordItemState, StoreView};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longer than any `security` call takes; a dialog waits forever.
const SECURITY_LIMIT: Duration = Duration::from_secs(60);

/// A Mac whose okta.keychain is under a temporary home and whose chain is the identity alone.
struct TempKeychainHost {
    root: PathBuf,
    home: PathBuf,
    item: ItemPlace,
    platform: Box<dyn Platform>,
}

impl Host for TempKeychainHost {
    fn describe(&self) -> &'static str {
        "macOS, temporary okta.keychain"
    }
    fn root(&self) -> &Path {
        &self.root
    }
    fn layout(&self) -> Layout {
        Layout::Mac
    }
    fn platform(&self) -> &dyn Platform {
        self.platform.as_ref()
    }
    fn open_store(
        &self,
        _: Option<&StoreSpec>,
        _: &UserHome,
    ) -> Result<Box<dyn IdentityStore>, HostError> {
        Ok(Box::new(store_at(&self.home, &self.item)))
    }
    fn chain(&self, _: &UserHome) -> Chain {
        Chain::new(vec![Box::new(IdentityLink)])
    }
}

fn store_at(home: &Path, item: &ItemPlace) -> KeychainStore {
    KeychainStore::at(home, item.clone(), Place::new(home, "state"))
}

/// `/usr/bin/security` with `args`, killed after [`SECURITY_LIMIT`].
fn security(args: &[&str]) -> Output {
    let mut child = Command::new("/usr/bin/security")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("security runs");
    let started = Instant::now();
    while child
        .try_wait()
        .expect("security can be waited for")
        .is_none()
    {
        assert!(
            started.elapsed() < SECURITY_LIMIT,
            "security {args:?} did not finish within {SECURITY_LIMIT:?}: a dialog?"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("security's output")
}

struct Mac {
    sim: Simulator,
    dir: tempfile::TempDir,
    item: ItemPlace,
}

impl Mac {
    fn new() -> Mac {
        static TESTS: AtomicUsize = AtomicUsize::new(0);
        let item = ItemPlace {
            keychain: None,
            name: format!(
                "devicetrust-test-{}-{}",
                std::process::id(),
                TESTS.fetch_add(1, Ordering::SeqCst)
            ),
        };
        let sim = Simulator::start(SimConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), sim.org_token()).unwrap();
        std::fs::write(dir.path().join("tls-ca.pem"), sim.tls_ca_pem()).unwrap();
        std::fs::create_dir_all(dir.path().join("home/Library/Keychains")).unwrap();
        let mac = Mac { sim, dir, item };
        assert!(!mac.item_exists(), "{} exists already", mac.item.name);
        mac
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn keychain(&self) -> PathBuf {
        self.home().join("Library/Keychains/okta.keychain")
    }

    fn agent(&self) -> Agent {
        let flags = Flags {
            root: Some(self.dir.path().join("root")),
            user: std::env::var("USER").ok(),
            org_url: Some(self.sim.org_url()),
            org_token_file: Some(self.dir.path().join("token")),
            ca_file: Some(self.dir.path().join("tls-ca.pem")),
            device_uuid: Some("0F3C1D2E-4B5A-4C6D-8E9F-A0B1C2D3E4F5".into()),
            device_name: Some("CI Mac".into()),
            ..Flags::default()
        };
        let config = config::load(&flags, &Default::default(), Layer::default()).unwrap();
        let host = TempKeychainHost {
            root: self.dir.path().join("root"),
            home: self.home(),
            item: self.item.clone(),
            platform: devicetrust::platform::current(),
        };
        Agent::new(config, Box::new(host)).unwrap()
    }

    fn store(&self) -> KeychainStore {
        store_at(&self.home(), &self.item)
    }

    fn item_exists(&self) -> bool {
        let name = self.item.name.as_str();
        security(&["find-generic-password", "-a", name, "-s", name])
            .status
            .success()
    }

    /// The item replaced the way Okta's task wrote it (the password in argv: a test only).
    fn write_item(&self, password: &str) {
        let name = self.item.name.as_str();
        let out = security(&[
            "add-generic-password",
            "-U",
            "-A",
            "-a",
            name,
            "-s",
            name,
            "-l",
            name,
            "-w",
            password,
        ]);
        assert!(out.status.success(), "{out:?}");
    }

    fn lock(&self) {
        let out = security(&["lock-keychain", self.keychain().to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
    }

    /// Whether okta.keychain is unlocked, as the store's view asks securityd (never unlocking).
    fn unlocked(&self) -> bool {
        self.store().view().lock_state().unwrap() == KeychainSeen::Unlocked
    }

    fn asides(&self) -> usize {
        std::fs::read_dir(self.home().join("Library/Keychains"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".unusable-"))
            .count()
    }
}

impl Drop for Mac {
    fn drop(&mut self) {
        let _ = self.store().remove();
        let name = self.item.name.as_str();
        let _ = security(&["delete-generic-password", "-a", name, "-s", name]);
    }
}

#[test]
fn enroll_renew_and_uninstall_in_a_temporary_okta_keychain() {
    let mac = Mac::new();
    let mut agent = mac.agent();
    agent.enroll().unwrap();
    let store = mac.store();
    let first = store
        .certificate()
        .unwrap()
        .expect("a certificate after enroll");
    assert_eq!(
        store.probe().password_item,
        Some(PasswordItemState::Readable)
    );
    // The key is not extractable and signs without a dialog.
    let key = store.signing_key().unwrap().unwrap();
    key.sign_sha256(b"renewal token").unwrap();

    agent.renew(true, None).unwrap();
    let second = mac.store().certificate().unwrap().unwrap();
    assert_ne!(first, second);

    agent.uninstall(false).unwrap();
    assert_eq!(mac.store().certificate().unwrap(), None);
    assert!(!mac.item_exists());
}

#[test]
fn status_reads_a_locked_okta_keychain_and_leaves_it_locked_and_the_daily_job_unlocks_it() {
    let mac = Mac::new();
    mac.agent().enroll().unwrap();
    mac.lock();
    assert!(!mac.unlocked());
    let report = mac.agent().status(false).unwrap();
    assert!(report.certificate.is_some(), "{report:?}");
    assert!(!mac.unlocked(), "status unlocked okta.keychain");
    // renew, not due: nothing to renew, but the identity made usable again.
    mac.agent().renew(false, None).unwrap();
    assert!(mac.unlocked());
}

#[test]
fn an_okta_keychain_made_by_okta_s_task_is_taken_over_without_a_dialog() {
    let mac = Mac::new();
    // What the old task did, secrets in argv and all (a test only).
    let password = "Old0Task0Password000000000000000000000000";
    let keychain = mac.keychain();
    let out = security(&[
        "create-keychain",
        "-p",
        password,
        keychain.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    mac.write_item(password);
    mac.lock();
    // Its partition list is apple-tool:, so only `security` reads it: the agent must too.
    mac.store().unlock().unwrap();
    assert!(mac.unlocked());
    let mut agent = mac.agent();
    agent.enroll().unwrap();
    assert!(mac.store().certificate().unwrap().is_some());
    assert_eq!(mac.asides(), 0, "nothing was rebuilt");
    agent.uninstall(false).unwrap();
    assert!(!mac.item_exists());
}

#[test]
fn a_wrong_password_is_proven_and_rebuilds_okta_keychain_keeping_the_old_one() {
    let mac = Mac::new();
    mac.agent().enroll().unwrap();
    let first = mac.store().certificate().unwrap().unwrap();
    // Another password in the item while okta.keychain stays unlocked: securityd would unlock
    // it with anything, so the store must prove the password some other way.
    mac.write_item("Wrong000000000000000000000000000000000000");
    assert!(mac.unlocked());
    mac.agent().enroll().unwrap();
    let second = mac.store().certificate().unwrap().unwrap();
    assert_ne!(
        first, second,
        "the device enrolled again into the rebuilt keychain"
    );
    assert_eq!(mac.asides(), 1, "the old okta.keychain is kept aside");
    // Once more: still one copy.
    mac.write_item("Wrong111111111111111111111111111111111111");
    mac.lock();
    mac.agent().enroll().unwrap();
    assert_eq!(mac.asides(), 1, "at most one set-aside copy");
    mac.agent().uninstall(false).unwrap();
}

#[test]
fn an_unreadable_item_defers_and_sets_nothing_aside() {
    let mac = Mac::new();
    mac.agent().enroll().unwrap();
    let name = mac.item.name.as_str();
    // An item only `security` may read, with a password that does not even matter.
    assert!(
        security(&["delete-generic-password", "-a", name, "-s", name])
            .status
            .success()
    );
    let out = security(&["add-generic-password", "-a", name, "-s", name, "-w", "x"]);
    assert!(out.status.success(), "{out:?}");
    mac.lock();
    let error = mac.agent().renew(false, None).unwrap_err();
    assert_eq!(error.exit_code(), 75, "{error}");
    assert!(
        error.to_string().contains("Keychain Password Unreadable"),
        "{error}"
    );
    let certificate = mac.store().certificate().unwrap();
    // enroll keeps the identity it finds; what needs the password defers.
    if let Err(error) = mac.agent().enroll() {
        assert_eq!(error.exit_code(), 75, "{error}");
    }
    assert_eq!(mac.store().certificate().unwrap(), certificate);
    assert_eq!(
        mac.store().view().lock_state().unwrap(),
        KeychainSeen::Locked
    );
    assert_eq!(mac.asides(), 0);
    assert_eq!(
        mac.store().probe().password_item,
        Some(PasswordItemState::Unreadable)
    );
}
