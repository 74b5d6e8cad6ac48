//! `status` shows the settings in effect and the layer each came from, so that an admin can
//! confirm a profile or file change: the org in effect, and the enrolled org when it differs.

mod common;

use common::*;

#[test]
fn status_shows_the_org_in_effect_its_source_and_the_enrolled_org_when_they_differ() {
    let env = Env::new(365);
    assert_eq!(env.enroll().code, 0);
    let enrolled = env.sim.org_url();
    let status = env.status_json();
    assert_eq!(status["org_url"], enrolled);
    assert_eq!(status["enrolled_org_url"], serde_json::Value::Null);
    assert_eq!(status["sources"]["org_url"], "file");
    assert_eq!(status["sources"]["ca_file"], "file");
    assert_eq!(status["sources"]["org_token"], serde_json::Value::Null);
    assert_eq!(status["sources"]["renew_before_days"], "default");
    assert_eq!(status["sources"]["cert_auth_host"], "enrollment record");

    // The admin moves the org in the configuration file; the device still holds the old one.
    let moved = "https://moved.okta.com";
    let config = env.etc().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace(&enrolled, moved)).unwrap();
    let status = env.status_json();
    assert_eq!(status["org_url"], moved);
    assert_eq!(status["sources"]["org_url"], "file");
    assert_eq!(status["enrolled_org_url"], enrolled);

    // A flag beats the file, and says so.
    let run = env.run(&["status", "--org-url", &enrolled]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("INFO: org: {enrolled} (from: flag)")),
        "{run:?}"
    );
    assert!(!run.stdout.contains("enrolled org:"), "{run:?}");
    let run = env.run(&["status"]);
    assert!(
        run.stdout
            .contains(&format!("INFO: org: {moved} (from: file)")),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains(&format!("INFO: enrolled org: {enrolled}")),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("renew_before_days (default)"),
        "{run:?}"
    );
}
