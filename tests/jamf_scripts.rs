//! The Jamf scripts in `pkg/jamf/`, run as Jamf runs them, against a fake agent that records its
//! command line and standard input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOKEN: &str = "jamf-param-secret-0123";

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// A fake `devicetrust` that logs argv and stdin, prints `output` and exits with `code`.
    fn new(output: &str, code: i32) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("devicetrust");
        let script = format!(
            "#!/bin/bash\nprintf '%s\\n' \"$@\" > {argv:?}\nif [[ \" $* \" == *' --org-token-file - '* ]]; then cat > {stdin:?}; fi\nprintf '%s\\n' {output:?}\nexit {code}\n",
            argv = dir.path().join("argv").display().to_string(),
            stdin = dir.path().join("stdin").display().to_string(),
        );
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fake { dir }
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("devicetrust")
    }

    fn argv(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("argv"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn stdin(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdin")).unwrap_or_default()
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pkg/jamf")
        .join(name)
}

/// Runs a Jamf script with Jamf's parameters ($1 mount point, $2 computer, $3 user, $4...).
fn jamf(name: &str, bin: &Path, params: &[&str]) -> (i32, String) {
    let out = Command::new("bash")
        .arg(script(name))
        .args(["/", "Test Mac", "alice"])
        .args(params)
        .env("DEVICETRUST_BIN", bin)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_policy_hands_the_token_on_stdin_never_in_argv() {
    let fake = Fake::new("INFO: enrolled", 0);
    let (code, out) = jamf(
        "devicetrust-policy.sh",
        &fake.bin(),
        &["https://acme.okta.com", TOKEN, "enroll", ""],
    );
    assert_eq!(code, 0);
    assert_eq!(out, "INFO: enrolled\n");
    let argv = fake.argv();
    assert_eq!(
        argv,
        [
            "enroll",
            "--org-url",
            "https://acme.okta.com",
            "--org-token-file",
            "-"
        ]
    );
    assert!(!argv.iter().any(|a| a.contains(TOKEN)));
    assert_eq!(fake.stdin().trim(), TOKEN);
}

#[test]
fn the_policy_propagates_the_agents_exit_code_and_lines() {
    for code in [1, 2, 75] {
        let fake = Fake::new("ERROR: something named", code);
        let (got, out) = jamf(
            "devicetrust-policy.sh",
            &fake.bin(),
            &["https://acme.okta.com", TOKEN, "renew"],
        );
        assert_eq!(got, code);
        assert_eq!(out, "ERROR: something named\n");
    }
}

#[test]
fn the_policy_maps_modes_and_options() {
    let cases: [(&[&str], &[&str]); 6] = [
        (&["", "", "repair"], &["repair"]),
        (&["", "", "uninstall"], &["uninstall"]),
        (
            &["", "", "reenroll", "verbose"],
            &["uninstall", "--reenroll", "--verbose"],
        ),
        (
            &["", "", "renew", "force verbose"],
            &["renew", "--force", "--verbose"],
        ),
        (
            &["", "", "", "scep-url=http://ca.example/scep"],
            &["enroll", "--scep-url", "http://ca.example/scep"],
        ),
        // Okta's Python task looked for "uninstall" in any parameter.
        (&["", "", "", "", "uninstall"], &["uninstall"]),
    ];
    for (params, expected) in cases {
        let fake = Fake::new("INFO: ok", 0);
        let (code, _) = jamf("devicetrust-policy.sh", &fake.bin(), params);
        assert_eq!(code, 0, "{params:?}");
        assert_eq!(fake.argv(), expected, "{params:?}");
        assert_eq!(fake.stdin(), "", "no token, nothing on stdin: {params:?}");
    }
}

#[test]
fn the_policy_refuses_an_unknown_mode_and_a_missing_binary() {
    let fake = Fake::new("INFO: ok", 0);
    let (code, out) = jamf("devicetrust-policy.sh", &fake.bin(), &["", "", "explode"]);
    assert_eq!(code, 2);
    assert!(out.starts_with("ERROR: unknown mode 'explode'"), "{out}");
    assert!(fake.argv().is_empty());
    let (code, out) = jamf(
        "devicetrust-policy.sh",
        Path::new("/nonexistent/devicetrust"),
        &[],
    );
    assert_eq!(code, 1);
    assert!(out.starts_with("ERROR:"), "{out}");
}

#[test]
fn the_extension_attributes_print_one_result_line_whatever_happens() {
    let fake = Fake::new("<result>Healthy</result>", 0);
    assert_eq!(
        jamf("ea-status.sh", &fake.bin(), &[]),
        (0, "<result>Healthy</result>\n".into())
    );
    assert_eq!(fake.argv(), ["ea"]);

    let fake = Fake::new("<result>2027-11-23 19:28:36</result>", 0);
    assert_eq!(
        jamf("ea-expiry.sh", &fake.bin(), &[]),
        (0, "<result>2027-11-23 19:28:36</result>\n".into())
    );
    assert_eq!(fake.argv(), ["ea", "--expiry"]);

    let missing = Path::new("/nonexistent/devicetrust");
    assert_eq!(
        jamf("ea-status.sh", missing, &[]),
        (0, "<result>Not Installed</result>\n".into())
    );
    assert_eq!(
        jamf("ea-expiry.sh", missing, &[]),
        (0, "<result></result>\n".into())
    );

    // A broken agent (no result line) still yields exactly one line.
    let broken = Fake::new("garbage", 1);
    assert_eq!(
        jamf("ea-status.sh", &broken.bin(), &[]),
        (0, "<result>Agent Error</result>\n".into())
    );
    assert_eq!(
        jamf("ea-expiry.sh", &broken.bin(), &[]),
        (0, "<result></result>\n".into())
    );
}

#[test]
fn the_plan_extension_attribute_prints_one_result_line_whatever_happens() {
    let fake = Fake::new("<result>Ready: 1 certificate</result>", 0);
    assert_eq!(
        jamf("ea-plan.sh", &fake.bin(), &[]),
        (0, "<result>Ready: 1 certificate</result>\n".into())
    );
    assert_eq!(fake.argv(), ["ea", "--plan"]);
    assert_eq!(
        jamf("ea-plan.sh", Path::new("/nonexistent/devicetrust"), &[]),
        (0, "<result>Not Installed</result>\n".into())
    );
    let broken = Fake::new("garbage", 1);
    assert_eq!(
        jamf("ea-plan.sh", &broken.bin(), &[]),
        (0, "<result>Agent Error</result>\n".into())
    );
    // The survey ring: the org set in the script, before any profile names it.
    let fake = Fake::new("<result>Ready</result>", 0);
    let edited = fake.dir.path().join("ea-plan.sh");
    let text = std::fs::read_to_string(script("ea-plan.sh")).unwrap();
    assert!(text.contains("\norg_url=\"\"\n"), "{text}");
    std::fs::write(
        &edited,
        text.replace("\norg_url=\"\"\n", "\norg_url=\"https://acme.okta.com\"\n"),
    )
    .unwrap();
    let out = Command::new("bash")
        .arg(&edited)
        .env("DEVICETRUST_BIN", fake.bin())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "<result>Ready</result>\n"
    );
    assert_eq!(
        fake.argv(),
        ["ea", "--plan", "--org-url", "https://acme.okta.com"]
    );

    let (code, out) = jamf(
        "ea-plan.sh",
        Path::new(env!("CARGO_BIN_EXE_devicetrust")),
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("<result>") && out.trim_end().ends_with("</result>"),
        "{out}"
    );
}

#[test]
fn the_real_agent_behind_the_ea_script_prints_one_line() {
    let (code, out) = jamf(
        "ea-status.sh",
        Path::new(env!("CARGO_BIN_EXE_devicetrust")),
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("<result>") && out.trim_end().ends_with("</result>"),
        "{out}"
    );
}

/// The argv and stdin the script should hand the agent for Jamf's `$4`..`$11` in `params`.
struct Expected {
    argv: Vec<&'static str>,
    stdin: &'static str,
}

#[test]
fn each_word_of_the_old_task_works_in_every_parameter_from_4_to_11() {
    const ORG: &str = "https://acme.okta.com";
    for word in ["uninstall", "verbose"] {
        for position in 4..=11usize {
            // Every other parameter empty, then every other one set as a policy sets them.
            for filled in [false, true] {
                let mut params: Vec<String> = (4..=11)
                    .map(|n| match (filled, n) {
                        (true, 4) => ORG.to_owned(),
                        (true, 5) => TOKEN.to_owned(),
                        (true, 6) => "renew".to_owned(),
                        _ => String::new(),
                    })
                    .collect();
                params[position - 4] = word.to_owned();
                let mode_given = filled && position != 6;
                let expected = match word {
                    "uninstall" => Expected {
                        argv: Vec::from(["uninstall"]),
                        stdin: "",
                    },
                    _ => Expected {
                        argv: Vec::from([if mode_given { "renew" } else { "enroll" }, "--verbose"]),
                        stdin: if filled && position != 5 { TOKEN } else { "" },
                    },
                };
                let mut argv = expected.argv;
                if filled && position != 4 {
                    argv.extend(["--org-url", ORG]);
                }
                if !expected.stdin.is_empty() {
                    argv.extend(["--org-token-file", "-"]);
                }

                let fake = Fake::new("INFO: ok", 0);
                let params: Vec<&str> = params.iter().map(String::as_str).collect();
                let (code, out) = jamf("devicetrust-policy.sh", &fake.bin(), &params);
                let case = format!("{word:?} in ${position}, others {params:?}");
                assert_eq!(code, 0, "{case}: {out}");
                assert_eq!(out, "INFO: ok\n", "no warning, no error: {case}");
                assert_eq!(fake.argv(), argv, "{case}");
                assert_eq!(fake.stdin().trim_end(), expected.stdin, "{case}");
            }
        }
    }
    // Among $7's options, or with spaces around it, a word is still that word.
    for (params, argv) in [
        (&["", "", "", "force uninstall"][..], &["uninstall"][..]),
        (
            &["", "", "renew", "verbose force"],
            &["renew", "--force", "--verbose"],
        ),
        (&[" verbose ", "", ""], &["enroll", "--verbose"]),
        (
            &["", "", "", "", "", "", "", "verbose uninstall"],
            &["uninstall", "--verbose"],
        ),
    ] {
        let fake = Fake::new("INFO: ok", 0);
        let (code, out) = jamf("devicetrust-policy.sh", &fake.bin(), params);
        assert_eq!((code, out.as_str()), (0, "INFO: ok\n"), "{params:?}");
        assert_eq!(fake.argv(), argv, "{params:?}");
    }
}

#[test]
fn words_the_script_does_not_know_are_named_and_passed_over() {
    let fake = Fake::new("INFO: ok", 0);
    let (code, out) = jamf(
        "devicetrust-policy.sh",
        &fake.bin(),
        &["", "", "repair", "fast", "", "leftover"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "WARN: ignoring 'leftover' in parameter 9 (only uninstall and verbose are read there)\n\
         WARN: ignoring unknown option 'fast' in parameter 7\nINFO: ok\n"
    );
    assert_eq!(fake.argv(), ["repair"]);
}
