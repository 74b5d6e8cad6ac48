//! Managed preferences through the built binary: a configuration profile's plist under `--root`
//! sits between the environment and the configuration file, and a bad value in it is exit 2.

use std::path::Path;
use std::process::Command;

const COMPUTER: &str = "Library/Managed Preferences/com.devicetrust.agent.plist";
const ALICE: &str = "Library/Managed Preferences/alice/com.devicetrust.agent.plist";

fn plist(root: &Path, rel: &str, body: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>{body}</dict></plist>\n"),
    )
    .unwrap();
}

fn org_url(s: &str) -> String {
    format!("<key>org_url</key><string>https://{s}.okta.com</string>")
}

/// Runs `status --json` for alice under `root`; returns (exit code, the org_url it resolved).
fn status(root: &Path, flags: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_devicetrust"))
        .args(["--root", root.to_str().unwrap(), "--user", "alice"])
        .args(flags)
        .args(["status", "--json"])
        .env_remove("DEVICETRUST_ORG_URL")
        .env_remove("DEVICETRUST_CONFIG")
        .env_remove("DEVICETRUST_ROOT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let url = serde_json::from_str::<serde_json::Value>(&stdout)
        .ok()
        .and_then(|v| v["org_url"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (out.status.code().unwrap_or(-1), url, stdout)
}

#[test]
fn precedence_is_flag_environment_user_profile_computer_profile_file() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let file = r.join("etc/devicetrust/config.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "org_url = \"https://file.okta.com\"\n").unwrap();
    let config = ["--config", file.to_str().unwrap()];

    assert_eq!(status(r, &config, &[]).1, "https://file.okta.com");
    plist(r, COMPUTER, &org_url("computer"));
    assert_eq!(status(r, &config, &[]).1, "https://computer.okta.com");
    plist(r, ALICE, &org_url("user"));
    assert_eq!(status(r, &config, &[]).1, "https://user.okta.com");
    let env = [("DEVICETRUST_ORG_URL", "https://env.okta.com")];
    assert_eq!(status(r, &config, &env).1, "https://env.okta.com");
    let mut flags = config.to_vec();
    flags.extend(["--org-url", "https://flag.okta.com"]);
    assert_eq!(status(r, &flags, &env).1, "https://flag.okta.com");
}

#[test]
fn a_bad_value_in_the_profile_is_exit_2_naming_the_key() {
    let root = tempfile::tempdir().unwrap();
    plist(
        root.path(),
        COMPUTER,
        "<key>network</key><dict><key>max_attempts</key><string>three</string></dict>",
    );
    let (code, _, stdout) = status(root.path(), &[], &[]);
    assert_eq!(code, 2, "{stdout}");
    // `--json` answers with one JSON document even when it fails: the error is in it.
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let error = doc["error"].as_str().unwrap();
    assert!(error.starts_with("managed preferences "), "{error}");
    assert!(error.contains("network.max_attempts"), "{error}");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    // A value of the right type that the agent refuses is the same error as from the file.
    plist(
        root.path(),
        COMPUTER,
        "<key>renew_before_days</key><integer>400</integer>",
    );
    let (code, _, stdout) = status(root.path(), &[], &[]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("renew_before_days"), "{stdout}");
}
