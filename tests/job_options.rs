//! The renewal job carries the options the enrollment used (`--config`, `--store`, `--root`),
//! and a later run without them still knows that job for this agent's: it expects what root's
//! record says the enrollment used, never what the job file in the user's home says.

mod common;

use common::*;
use std::path::PathBuf;

fn unit(env: &Env) -> PathBuf {
    env.root
        .path()
        .join("home")
        .join(USER)
        .join(".config/systemd/user/devicetrust-renew.service")
}

fn exec_start(env: &Env) -> String {
    let text = std::fs::read_to_string(unit(env)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_owned()
}

#[test]
fn a_device_enrolled_with_its_own_configuration_file_is_healthy_to_a_plain_ea() {
    let env = Env::new(365);
    // The admin's configuration lives in another file than the default.
    let alt = env.etc().join("alt.toml");
    std::fs::rename(env.etc().join("config.toml"), &alt).unwrap();
    let alt_flag = alt.display().to_string();
    let run = env.run_with_token(&["enroll", "--config", &alt_flag]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        exec_start(&env).contains(&format!("--config {alt_flag}")),
        "{}",
        exec_start(&env)
    );
    let with = env.run(&["ea", "--config", &alt_flag]);
    assert_eq!(with.stdout, "<result>Healthy</result>\n");
    // What pkg/jamf/ea-status.sh runs: no --config.
    assert_eq!(env.ea(), with.stdout);
    let status = env.status_json();
    assert_eq!(status["status"], "Healthy", "{status}");
    // A plain Fix-It keeps the job as the enrollment installed it.
    let before = exec_start(&env);
    assert_eq!(env.run(&["repair"]).code, 0);
    assert_eq!(exec_start(&env), before);
}

#[test]
fn a_device_enrolled_into_its_own_store_is_healthy_to_a_plain_ea() {
    let env = Env::new(365);
    let store = env.root.path().join("srv/identity");
    std::fs::create_dir_all(store.parent().unwrap()).unwrap();
    let spec = format!("file:{}", store.display());
    assert_eq!(env.run_with_token(&["enroll", "--store", &spec]).code, 0);
    assert!(exec_start(&env).contains(&format!("--store {spec}")));
    assert_eq!(env.run(&["ea", "--store", &spec]).stdout, env.ea());
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}

#[test]
fn a_device_enrolled_under_a_root_given_by_flag_is_healthy_when_the_root_comes_from_the_environment(
) {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    assert!(exec_start(&env).contains("--root"));
    // The same root, from DEVICETRUST_ROOT instead of the flag.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_devicetrust"));
    cmd.args(["ea", "--user", USER, "--device-uuid", DEVICE_UUID])
        .env("DEVICETRUST_ROOT", env.root.path());
    let run = Run::from(cmd.output().unwrap());
    assert_eq!(run.stdout, "<result>Healthy</result>\n", "{run:?}");
}

#[test]
fn a_job_file_the_user_edited_is_not_taken_for_the_enrollments() {
    let env = Env::new(365);
    let alt = env.etc().join("alt.toml");
    std::fs::rename(env.etc().join("config.toml"), &alt).unwrap();
    let alt_flag = alt.display().to_string();
    assert_eq!(
        env.run_with_token(&["enroll", "--config", &alt_flag]).code,
        0
    );
    // The user points their job at a configuration of their own.
    let text = std::fs::read_to_string(unit(&env)).unwrap();
    let theirs = env.root.path().join("home").join(USER).join("mine.toml");
    std::fs::write(
        unit(&env),
        text.replace(&alt_flag, theirs.to_str().unwrap()),
    )
    .unwrap();
    assert_eq!(env.ea(), "<result>Renewal Job Missing</result>\n");
    let run = env.run(&["repair"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(exec_start(&env).contains(&format!("--config {alt_flag}")));
    assert_eq!(env.ea(), "<result>Healthy</result>\n");
}
