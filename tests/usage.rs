//! The command line's own contract (cli.md): `--version`, usage errors as one `ERROR:` line and
//! exit 2, and the EA's one `<result>` line and exit 0 even for a command line it refuses.

mod common;

use common::Run;
use std::process::Command;

/// The binary with `args` in an empty root, nothing from the outside environment.
fn run(args: &[&str]) -> Run {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devicetrust"));
    cmd.args(args).env("DEVICETRUST_ROOT", root.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("DEVICETRUST_") && key != "DEVICETRUST_ROOT" {
            cmd.env_remove(key);
        }
    }
    Run::from(cmd.output().unwrap())
}

#[test]
fn version_prints_the_version_and_exits_0_as_flag_and_command() {
    let expected = format!("devicetrust {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-V"], &["version"]] {
        let run = run(args);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, expected.as_str()),
            "{args:?}: {run:?}"
        );
        assert!(run.stderr.is_empty(), "{args:?}: {run:?}");
    }
}

#[test]
fn a_usage_error_is_one_error_line_and_exit_2() {
    for (args, names) in [
        (&["renew", "--days", "3"][..], "'--days'"),
        (&["bogus"], "'bogus'"),
        (&["--bogus", "status"], "'--bogus'"),
        (&["status", "--bogus"], "'--bogus'"),
        (&["renew", "--renew-before-days", "soon"], "'soon'"),
        (&["teamid"], "<PATH>"),
        (&[], "no command"),
    ] {
        let run = run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {run:?}");
        assert!(lines[0].starts_with("ERROR: "), "{args:?}: {run:?}");
        assert!(lines[0].contains(names), "{args:?}: {run:?}");
        assert!(run.stderr.is_empty(), "{args:?}: {run:?}");
    }
    // The line still says how the command is used.
    let run = run(&["renew", "--days", "3"]);
    assert!(
        run.stdout.contains("usage: devicetrust renew [OPTIONS]"),
        "{run:?}"
    );
}

#[test]
fn help_is_not_an_error() {
    for args in [&["--help"][..], &["help"], &["ea", "--help"]] {
        let run = run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(
            run.stdout.contains("Usage: devicetrust"),
            "{args:?}: {run:?}"
        );
    }
}

#[test]
fn the_ea_answers_a_command_line_it_refuses_with_one_result_line_and_exit_0() {
    for (args, line) in [
        (&["ea", "--bogus"][..], "<result>Agent Error</result>\n"),
        (
            &["ea", "--check-network", "yes"],
            "<result>Agent Error</result>\n",
        ),
        // The Date EA's fallback, as ea-expiry.sh prints it: no date.
        (&["ea", "--expiry", "--bogus"], "<result></result>\n"),
        (&["ea", "--bogus", "--expiry"], "<result></result>\n"),
        (&["--bogus", "ea", "--expiry"], "<result></result>\n"),
    ] {
        let run = run(args);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, line),
            "{args:?}: {run:?}"
        );
        // Why, for whoever runs it by hand; Jamf reads stdout only.
        assert!(run.stderr.starts_with("ERROR: "), "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {run:?}");
    }
}

/// The commands whose definition takes `--json`, as clap has them: one added later is covered.
fn commands_with_json() -> Vec<String> {
    use clap::CommandFactory;
    devicetrust::cli::Cli::command()
        .get_subcommands()
        .filter(|c| c.get_arguments().any(|a| a.get_long() == Some("json")))
        .map(|c| c.get_name().to_owned())
        .collect()
}

#[test]
fn every_command_with_json_answers_a_command_line_it_refuses_with_one_json_document() {
    let commands = commands_with_json();
    for known in ["status", "selftest"] {
        assert!(commands.iter().any(|c| c == known), "{commands:?}");
    }
    for name in &commands {
        let name = name.as_str();
        for (args, named) in [
            (&[name, "--json", "--bogus"][..], "'--bogus'"),
            (&[name, "--bogus", "--json"], "'--bogus'"),
            (&["--bogus", name, "--json"], "'--bogus'"),
            (
                &["-v", "--root", "/nonexistent", name, "--json", "stray"],
                "'stray'",
            ),
            (&[name, "--json=yes"], "'yes'"),
        ] {
            let run = run(args);
            assert_eq!(run.code, 2, "{args:?}: {run:?}");
            let doc: serde_json::Value = serde_json::from_str(&run.stdout)
                .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {run:?}"));
            assert_eq!(doc["exit_code"], 2, "{args:?}: {doc}");
            let error = doc["error"].as_str().unwrap_or_default();
            assert!(error.contains(named), "{args:?}: {doc}");
            assert!(!error.contains('\n'), "{args:?}: {doc}");
            assert!(run.stderr.is_empty(), "{args:?}: {run:?}");
        }
        // Without --json the same mistake is one ERROR: line.
        let run = run(&[name, "--bogus"]);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stdout.starts_with("ERROR: "), "{run:?}");
        assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
    }
}
