//! A device holds a valid certificate from one org; an enrollment names another. The agent
//! refuses to move it (a device belongs to one org's Device Trust, and `uninstall` is the way
//! out): one `ERROR:` line naming both orgs, no request to either, and the device as it was.

mod common;

use common::*;
use devicetrust::sim::{SimConfig, Simulator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `dir` but the run lock, path -> bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.file_name().is_some_and(|n| n != "lock") {
            found.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
        }
    }
    found
}

#[test]
fn enrolling_into_another_org_while_a_valid_certificate_is_held_is_refused() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let other = Simulator::start(SimConfig::default()).unwrap();
    let requests = env.sim.requests().len();
    // The identity, the records (the user's and, run as root, root's own) and the config.
    let device = files(env.root.path());
    assert!(
        device.keys().any(|p| p.ends_with("state.json")),
        "{device:?}"
    );

    let run = env.run_with_token(&["enroll", "--org-url", &other.org_url()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.error(),
        format!(
            "ERROR: this device's certificate belongs to {}, not {}; a device belongs to one \
             org's Device Trust: run `devicetrust uninstall` first to move it",
            env.sim.org_url(),
            other.org_url()
        )
    );
    assert!(other.requests().is_empty(), "{:?}", other.requests());
    assert_eq!(
        env.sim.requests().len(),
        requests,
        "the first org asked nothing"
    );
    assert!(files(env.root.path()) == device, "the device changed");
    assert_eq!(env.ea(), "<result>Healthy</result>\n");

    // The org it belongs to is welcome: nothing to request, nothing refused.
    let run = env.run_with_token(&["enroll", "--org-url", &env.sim.org_url()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("INFO: a valid certificate is already installed"),
        "{run:?}"
    );
}
