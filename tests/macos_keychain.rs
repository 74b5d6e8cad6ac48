//! The keychain store end to end on a real Mac (the macOS CI runners; type-checked elsewhere):
//! enroll against the simulator into an okta.keychain under a temporary home, renew, take over
//! an okta.keychain and `device_trust` item made the way Okta's task made them (`security
//! add-generic-password -A`), uninstall. The `device_trust` item lives in the login keychain,
//! so the test refuses to run where one exists already (a developer's Mac enrolled for real).
#![cfg(target_os = "macos")]

use devicetrust::agent::Agent;
use devicetrust::chain::identity::IdentityLink;
use devicetrust::chain::{Chain, UserHome};
use devicetrust::config::{self, Flags, Layer, StoreSpec};
use devicetrust::host::{Host, HostError};
use devicetrust::paths::Layout;
use devicetrust::platform::Platform;
use devicetrust::sim::{SimConfig, Simulator};
use devicetrust::store::{IdentityStore, KeychainStore, PasswordItemState};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Mac whose okta.keychain is under a temporary home and whose chain is the identity alone.
struct TempKeychainHost {
    root: PathBuf,
    home: PathBuf,
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
        Ok(Box::new(KeychainStore::new(&self.home)))
    }
    fn chain(&self, _: &UserHome) -> Chain {
        Chain::new(vec![Box::new(IdentityLink)])
    }
}

fn security(args: &[&str]) -> std::process::Output {
    Command::new("/usr/bin/security")
        .args(args)
        .output()
        .unwrap()
}

fn device_trust_item_exists() -> bool {
    security(&[
        "find-generic-password",
        "-a",
        "device_trust",
        "-s",
        "device_trust",
    ])
    .status
    .success()
}

struct Mac {
    sim: Simulator,
    dir: tempfile::TempDir,
}

impl Mac {
    fn new() -> Mac {
        assert!(
            !device_trust_item_exists(),
            "a device_trust item is in this login keychain: run on a machine not enrolled"
        );
        let sim = Simulator::start(SimConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), sim.org_token()).unwrap();
        std::fs::write(dir.path().join("tls-ca.pem"), sim.tls_ca_pem()).unwrap();
        std::fs::create_dir_all(dir.path().join("home/Library/Keychains")).unwrap();
        Mac { sim, dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
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
            platform: devicetrust::platform::current(),
        };
        Agent::new(config, Box::new(host)).unwrap()
    }

    fn store(&self) -> KeychainStore {
        KeychainStore::new(&self.home())
    }
}

impl Drop for Mac {
    fn drop(&mut self) {
        let _ = self.store().remove();
        let _ = security(&[
            "delete-generic-password",
            "-a",
            "device_trust",
            "-s",
            "device_trust",
        ]);
    }
}

#[test]
fn enroll_renew_take_over_and_uninstall_in_a_temporary_okta_keychain() {
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
    assert!(!device_trust_item_exists());
}

#[test]
fn an_okta_keychain_made_by_okta_s_task_is_taken_over_without_a_dialog() {
    let mac = Mac::new();
    // What the old task did, secrets in argv and all (a test only).
    let password = "Old0Task0Password000000000000000000000000";
    let keychain = mac.home().join("Library/Keychains/okta.keychain");
    let keychain = keychain.to_str().unwrap();
    assert!(security(&["create-keychain", "-p", password, keychain])
        .status
        .success());
    assert!(security(&[
        "add-generic-password",
        "-A",
        "-a",
        "device_trust",
        "-s",
        "device_trust",
        "-l",
        "device_trust",
        "-w",
        password,
    ])
    .status
    .success());
    // Its partition list is apple-tool:, so only `security` reads it: the agent must too.
    assert_eq!(
        mac.store().probe().password_item,
        Some(PasswordItemState::Readable)
    );
    let mut agent = mac.agent();
    agent.enroll().unwrap();
    assert!(mac.store().certificate().unwrap().is_some());
    agent.uninstall(false).unwrap();
    assert!(!device_trust_item_exists());
}

#[test]
fn a_wrong_keychain_password_rebuilds_okta_keychain_and_re_enrolls() {
    let mac = Mac::new();
    let mut agent = mac.agent();
    agent.enroll().unwrap();
    // Another password in the item, and the keychain locked: nothing in it can be used again.
    assert!(security(&[
        "add-generic-password",
        "-U",
        "-A",
        "-a",
        "device_trust",
        "-s",
        "device_trust",
        "-w",
        "Wrong000000000000000000000000000000000000",
    ])
    .status
    .success());
    let keychain = mac.home().join("Library/Keychains/okta.keychain");
    assert!(security(&["lock-keychain", keychain.to_str().unwrap()])
        .status
        .success());
    let mut agent = mac.agent();
    agent.enroll().unwrap();
    assert!(mac.store().certificate().unwrap().is_some());
    let kept = std::fs::read_dir(mac.home().join("Library/Keychains"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".unusable-"));
    assert!(kept, "the old okta.keychain is kept aside");
    agent.uninstall(false).unwrap();
}
