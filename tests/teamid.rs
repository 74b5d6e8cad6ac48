//! `devicetrust teamid` on the committed Mach-O fixtures: the line the allowlist takes, and one
//! `ERROR:` line with exit 1 for unsigned, ad-hoc and non-Mach-O input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/macho")
        .join(name)
}

fn teamid(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devicetrust"))
        .arg("teamid")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn signed_thin_and_universal_binaries_print_the_partition() {
    for name in ["signed-arm64", "universal-signed"] {
        let out = teamid(&[fixture(name).as_os_str()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert_eq!(stdout(&out), "teamid:BQR82RBBHL\n", "{name}");
    }
}

#[test]
fn verbose_adds_the_identifier() {
    let out = teamid(&[fixture("signed-arm64").as_os_str(), "-v".as_ref()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "teamid:BQR82RBBHL\nidentifier: com.tinyspeck.slackmacgap\n"
    );
}

#[test]
fn an_app_bundle_is_read_through_its_info_plist() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("Slack.app");
    std::fs::create_dir_all(app.join("Contents/MacOS")).unwrap();
    std::fs::write(
        app.join("Contents/Info.plist"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict><key>CFBundleExecutable</key><string>Slack</string></dict></plist>
"#,
    )
    .unwrap();
    std::fs::copy(
        fixture("universal-signed"),
        app.join("Contents/MacOS/Slack"),
    )
    .unwrap();
    let out = teamid(&[app.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "teamid:BQR82RBBHL\n");
}

fn assert_one_error(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("ERROR: "), "{text}");
    assert!(lines[0].contains(needle), "{text}");
}

#[test]
fn unsigned_and_ad_hoc_binaries_fail_with_one_error_line() {
    assert_one_error(
        &teamid(&[fixture("unsigned-x86_64").as_os_str()]),
        "not signed",
    );
}

#[test]
fn ad_hoc_code_prints_its_cdhash_partition_and_fails() {
    // The hashes were computed outside the crate (tests/fixtures/macho/README.md).
    for (name, hash, identifier) in [
        (
            "adhoc-arm64",
            "bdffcbeb8533f5d80c51f6285fd2ff15af9222a4",
            "a.out",
        ),
        (
            "adhoc-dual-hash-arm64",
            "50dd21e595f78f45cc5256361b5c828a03c1581f",
            "com.devicetrust.agent",
        ),
    ] {
        for verbose in [false, true] {
            let path = fixture(name);
            let mut args = vec![path.as_os_str()];
            if verbose {
                args.push("-v".as_ref());
            }
            let out = teamid(&args);
            assert_eq!(out.status.code(), Some(1), "{out:?}");
            let text = stdout(&out);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines[0], format!("cdhash:{hash}"), "{text}");
            let error = lines.last().unwrap();
            assert!(
                error.starts_with("ERROR: ")
                    && error.contains(&format!("ad-hoc signed ({identifier})"))
                    && error.contains("cannot be allowed fleet-wide"),
                "{text}"
            );
            if verbose {
                assert!(lines.contains(&format!("identifier: {identifier}").as_str()));
                assert!(lines.contains(&format!("arm64: cdhash:{hash}").as_str()));
            } else {
                assert_eq!(lines.len(), 2, "{text}");
            }
        }
    }
}

#[test]
fn a_non_mach_o_file_is_named_as_such() {
    let readme = fixture("README.md");
    assert_one_error(&teamid(&[readme.as_os_str()]), "not a Mach-O file");
    assert_one_error(&teamid(&["/nonexistent/App.app".as_ref()]), "cannot read");
}
