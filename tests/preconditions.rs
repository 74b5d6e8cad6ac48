//! A run that could not keep a certificate never asks for one: Okta issues at most five
//! unbound certificates per device, so every local precondition (the store usable and ours,
//! the run lock, a home without planted links) is checked before the first request to the CA,
//! and a refused run leaves the CA's request count at zero. (A held run lock:
//! `failures::a_second_run_waits_for_the_lock_then_defers`.)

mod common;

use common::*;
use std::os::unix::fs::symlink;

/// The run failed with one `ERROR:` line containing `names`, and the CA heard nothing.
fn refused_before_asking(env: &Env, run: &Run, code: i32, names: &str) {
    assert_eq!(run.code, code, "{run:?}");
    assert!(run.error().contains(names), "{run:?}");
    assert_eq!(
        env.sim.requests().len(),
        0,
        "the CA was asked: {:?}",
        env.sim.requests()
    );
}

#[test]
fn a_store_folder_of_other_files_is_refused_before_okta_is_asked() {
    let env = Env::new(365);
    let folder = env.root.path().join("admin-files");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("notes.txt"), b"not the agent's").unwrap();
    let store = format!("file:{}", folder.display());
    let run = env.run_with_token(&["enroll", "--store", &store]);
    refused_before_asking(&env, &run, 1, "admin-files");
    assert_eq!(
        std::fs::read_dir(&folder).unwrap().count(),
        1,
        "nothing was added to the folder"
    );
}

#[test]
fn a_link_planted_where_the_renewal_job_goes_is_refused_before_okta_is_asked() {
    let env = Env::new(365);
    let home = env.root.path().join("home").join(USER);
    let outside = env.root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(home.join(".config/systemd")).unwrap();
    symlink(&outside, home.join(".config/systemd/user")).unwrap();
    let run = env.enroll();
    refused_before_asking(&env, &run, 1, "symbolic link");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!env.store_dir().exists(), "no identity without its job");
}

#[test]
fn a_renewal_that_could_not_be_kept_is_not_asked_for() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let before = env.sim.requests().len();
    let home = env.root.path().join("home").join(USER);
    let outside = env.root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::remove_dir_all(home.join(".config/systemd/user")).unwrap();
    symlink(&outside, home.join(".config/systemd/user")).unwrap();
    let serial = env.certificate().serial_hex;
    let run = env.run(&["renew", "--force"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.error().contains("symbolic link"), "{run:?}");
    assert_eq!(env.sim.requests().len(), before);
    assert_eq!(env.certificate().serial_hex, serial);
}
