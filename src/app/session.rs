//! Whether a command runs here or in the console user's session: a Jamf policy starts the agent
//! as root, but the keychain, browser preferences and launchd domain it must change are the
//! console user's. The decision is pure and tested everywhere; the host carries it out.

use crate::cli::Command;
use crate::config::{Config, ConfigError};
use crate::health::HealthStatus;
use crate::platform::session::{Ran, SecretFlag};
use crate::secret::Secret;
use std::ffi::OsString;

/// What a run started with effective uid `euid` should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run in this process: not root, or nothing of the user's session is touched.
    RunHere,
    /// Re-execute as `user` inside their session.
    Reexec { user: String },
    /// Root, a command that changes the user's session, and nobody at the console: exit 75.
    NoConsoleUser,
}

/// Whether `command` reads or changes the user's keychain, preferences or launchd domain.
pub fn touches_user_session(command: &Command) -> bool {
    matches!(
        command,
        Command::Enroll { .. }
            | Command::Renew { .. }
            | Command::Repair
            | Command::Uninstall { .. }
            | Command::Status { .. }
            | Command::Ea { .. }
            | Command::Selftest { .. }
            | Command::Plan { .. }
    )
}

/// Decides whether to re-execute as the user. `--user` wins over the console user (an admin
/// may act for someone else); `--user root` is taken as meant. The EA and `status` report what
/// is there, so without a console user they run here and report "No User Session".
pub fn needs_reexec(
    euid: u32,
    command: &Command,
    console_user: Option<&str>,
    explicit_user: Option<&str>,
) -> Decision {
    if euid != 0 || !touches_user_session(command) {
        return Decision::RunHere;
    }
    match explicit_user.or(console_user) {
        Some("root") => Decision::RunHere,
        Some(user) => Decision::Reexec {
            user: user.to_owned(),
        },
        None if matches!(command, Command::Ea { .. } | Command::Status { .. }) => Decision::RunHere,
        None => Decision::NoConsoleUser,
    }
}

/// What the root parent reports once it tried to run the command as the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterReexec {
    /// The child ran; its output went straight to ours and its exit code is ours.
    Exit(i32),
    /// The EA's one line: the child's own, or, when the child gave none, the status that says
    /// the check could not run as the user (with why, for stderr). Always exit 0.
    EaLine {
        line: String,
        warning: Option<String>,
    },
    /// The re-execution failed: one error (a JSON document for `--json`), exit 1.
    Failed { message: String, json: bool },
}

/// Decides what a root run reports after the re-execution as the user. Nothing ever falls back
/// to running the command here as root: root's keychain and preferences are not the user's,
/// and a check made there would report them under the user's name.
pub fn after_reexec(command: &Command, ran: Result<Ran, String>) -> AfterReexec {
    match command {
        Command::Ea { expiry, .. } => {
            let child_line = ran.as_ref().ok().and_then(|r| {
                let text = String::from_utf8_lossy(r.stdout.as_deref()?).into_owned();
                let mut results = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with("<result>") && l.ends_with("</result>"));
                match (results.next(), results.next()) {
                    (Some(line), None) => Some(line.to_owned()),
                    _ => None,
                }
            });
            match child_line {
                Some(line) => AfterReexec::EaLine {
                    line,
                    warning: None,
                },
                None => AfterReexec::EaLine {
                    // Jamf's "Date" EA takes no words: without a certificate date it is empty.
                    line: if *expiry {
                        crate::report::ea_expiry(None)
                    } else {
                        crate::report::ea_status(HealthStatus::SessionUnreachable)
                    },
                    warning: Some(match ran {
                        Ok(r) => format!(
                            "the check as the console user printed no result (exit {})",
                            r.code
                        ),
                        Err(e) => e,
                    }),
                },
            }
        }
        _ => match ran {
            Ok(r) => AfterReexec::Exit(r.code),
            Err(e) => AfterReexec::Failed {
                message: format!("cannot run as the console user: {e}"),
                json: command.json(),
            },
        },
    }
}

/// Whether `command` may need the enrollment secret (a first enrollment, or the re-enrollment
/// of an expired certificate during renew/repair, or `uninstall --reenroll`).
pub fn may_need_secret(command: &Command) -> bool {
    matches!(
        command,
        Command::Enroll { .. }
            | Command::Renew { .. }
            | Command::Repair
            | Command::Uninstall { reenroll: true }
    )
}

/// The secret the configured enrollment uses, read here as root (a root-only file, our stdin,
/// an environment variable) for the child's stdin: the SCEP challenge when a SCEP URL is set,
/// else the org token. An explicit file flag that cannot be read fails the run now, as it would
/// in the child; an unreadable configured source is only a warning, because the command may not
/// need it (a renewal that is not due).
pub fn read_secret(config: &Config) -> Result<Option<(SecretFlag, Secret)>, ConfigError> {
    let (flag, source, what) = if config.scep.url.is_some() {
        (
            SecretFlag::ScepChallenge,
            config.scep.challenge.as_ref(),
            "SCEP challenge",
        )
    } else {
        (SecretFlag::OrgToken, config.org_token.as_ref(), "org token")
    };
    let Some(source) = source else {
        return Ok(None);
    };
    match source.read(what) {
        Ok(secret) => Ok(Some((flag, secret))),
        Err(e) if source_is_flag(flag) => Err(e),
        Err(e) => {
            tracing::warn!("{e}; the run as the console user goes on without it");
            Ok(None)
        }
    }
}

/// What root hands the child it runs as the user: its arguments with root's settings added as
/// flags ([`trusted_flags`]), and the secret, read here, only when the command may enroll and
/// root itself knows where it goes (an org or SCEP CA from a root-owned place). Without one,
/// the child runs without the secret and says what is missing.
pub fn handover(
    config: &Config,
    command: &Command,
    args: &[OsString],
) -> Result<(Vec<OsString>, Option<(SecretFlag, Secret)>), ConfigError> {
    let secret = if config.is_configured() && may_need_secret(command) {
        read_secret(config)?
    } else {
        None
    };
    let mut child_args = args.to_vec();
    child_args.extend(trusted_flags(config, args));
    Ok((child_args, secret))
}

/// The settings root hands the child as flags: where the device enrolls (org or SCEP CA and
/// its pin), the extra trust anchors and the store, as root resolved them from root-owned
/// places. The child runs as the user and also reads the copy of the record in the user's
/// home; flags beat every other layer, so nothing there can send the secret elsewhere, trust
/// another CA or pick another store. Settings `args` already carries stay as they are.
pub fn trusted_flags(config: &Config, args: &[OsString]) -> Vec<OsString> {
    let given = |flag: &str| {
        args.iter().any(|a| {
            a.to_str().is_some_and(|a| {
                a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('='))
            })
        })
    };
    let settings = [
        (
            "--org-url",
            config.org_url.as_ref().map(|o| o.as_str().to_owned()),
        ),
        ("--scep-url", config.scep.url.clone()),
        ("--scep-ca-fingerprint", config.scep.ca_fingerprint.clone()),
        (
            "--ca-file",
            config.ca_file.as_ref().map(|p| p.display().to_string()),
        ),
        ("--store", config.store.as_ref().map(ToString::to_string)),
    ];
    let mut flags = Vec::new();
    for (flag, value) in settings {
        if let (false, Some(value)) = (given(flag), value) {
            flags.push(OsString::from(flag));
            flags.push(OsString::from(value));
        }
    }
    flags
}

fn source_is_flag(flag: SecretFlag) -> bool {
    std::env::args_os().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag.flag() || a.starts_with(&format!("{}=", flag.flag())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn root_reexecutes_session_commands_as_the_console_user() {
        let reexec = Decision::Reexec {
            user: "alice".into(),
        };
        for command in [
            Command::Enroll { json: false },
            Command::Repair,
            Command::Uninstall { reenroll: false },
            Command::Status {
                json: true,
                check_network: false,
            },
            Command::Ea {
                expiry: false,
                plan: false,
                check_network: false,
            },
            Command::Renew {
                force: false,
                renew_before_days: None,
            },
        ] {
            assert_eq!(needs_reexec(0, &command, Some("alice"), None), reexec);
            // Not root: already the user (or a test); run here.
            assert_eq!(
                needs_reexec(501, &command, Some("alice"), None),
                Decision::RunHere
            );
        }
    }

    #[test]
    fn explicit_user_wins_and_root_stays_root() {
        assert_eq!(
            needs_reexec(
                0,
                &Command::Enroll { json: false },
                Some("alice"),
                Some("bob")
            ),
            Decision::Reexec { user: "bob".into() }
        );
        assert_eq!(
            needs_reexec(0, &Command::Enroll { json: false }, None, Some("bob")),
            Decision::Reexec { user: "bob".into() }
        );
        assert_eq!(
            needs_reexec(
                0,
                &Command::Enroll { json: false },
                Some("alice"),
                Some("root")
            ),
            Decision::RunHere
        );
    }

    #[test]
    fn no_console_user_defers_except_the_reports_which_say_so() {
        assert_eq!(
            needs_reexec(0, &Command::Enroll { json: false }, None, None),
            Decision::NoConsoleUser
        );
        let ea = Command::Ea {
            expiry: false,
            plan: false,
            check_network: false,
        };
        assert_eq!(needs_reexec(0, &ea, None, None), Decision::RunHere);
        let status = Command::Status {
            json: false,
            check_network: false,
        };
        assert_eq!(needs_reexec(0, &status, None, None), Decision::RunHere);
    }

    #[test]
    fn commands_outside_the_session_run_here() {
        for command in [
            Command::Version,
            Command::Demo,
            Command::Teamid {
                path: PathBuf::from("/Applications/Slack.app"),
            },
        ] {
            assert_eq!(
                needs_reexec(0, &command, Some("alice"), None),
                Decision::RunHere
            );
        }
    }

    fn ea(expiry: bool) -> Command {
        Command::Ea {
            expiry,
            plan: false,
            check_network: false,
        }
    }

    #[test]
    fn a_failed_reexec_of_the_ea_says_so_and_never_runs_here() {
        let failed = after_reexec(&ea(false), Err("cannot start launchctl asuser".into()));
        assert_eq!(
            failed,
            AfterReexec::EaLine {
                line: "<result>User Session Unreachable</result>".into(),
                warning: Some("cannot start launchctl asuser".into()),
            }
        );
        // sudo refused: the child exits 1 and prints no result line.
        let refused = Ok(Ran {
            code: 1,
            stdout: Some(Vec::new()),
        });
        assert!(matches!(
            after_reexec(&ea(false), refused.clone()),
            AfterReexec::EaLine { line, warning: Some(_) } if line == "<result>User Session Unreachable</result>"
        ));
        assert!(matches!(
            after_reexec(&ea(true), refused),
            AfterReexec::EaLine { line, .. } if line == "<result></result>"
        ));
        // The child's own line is passed on as it is.
        let healthy = Ok(Ran {
            code: 0,
            stdout: Some(b"<result>Healthy</result>\n".to_vec()),
        });
        assert_eq!(
            after_reexec(&ea(false), healthy),
            AfterReexec::EaLine {
                line: "<result>Healthy</result>".into(),
                warning: None
            }
        );
    }

    #[test]
    fn a_failed_reexec_of_status_is_an_error_in_its_own_format() {
        let status = |json| Command::Status {
            json,
            check_network: false,
        };
        assert_eq!(
            after_reexec(&status(true), Err("no user named \"bob\"".into())),
            AfterReexec::Failed {
                message: "cannot run as the console user: no user named \"bob\"".into(),
                json: true
            }
        );
        assert!(matches!(
            after_reexec(&status(false), Err("x".into())),
            AfterReexec::Failed { json: false, .. }
        ));
        assert!(matches!(
            after_reexec(&Command::Selftest { json: true }, Err("x".into())),
            AfterReexec::Failed { json: true, .. }
        ));
        assert_eq!(
            after_reexec(
                &status(false),
                Ok(Ran {
                    code: 3,
                    stdout: None
                })
            ),
            AfterReexec::Exit(3)
        );
    }

    #[test]
    fn the_child_gets_roots_settings_as_flags_beside_those_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "org_url = \"https://acme.okta.com\"\nstore = \"file:/var/dt\"\n",
        )
        .unwrap();
        let flags = crate::config::Flags {
            config: Some(file),
            ..Default::default()
        };
        let config = crate::config::load(&flags, &Default::default(), Default::default()).unwrap();
        let given: Vec<OsString> = ["enroll", "--store=file:/var/dt"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(
            trusted_flags(&config, &given),
            vec![
                OsString::from("--org-url"),
                OsString::from("https://acme.okta.com")
            ]
        );
    }

    /// The settings that decide where the device enrolls, whom it trusts and where its key
    /// lives, as a root run holds them.
    fn trust_settings(config: &Config) -> [Option<String>; 5] {
        [
            config.org_url.as_ref().map(|o| o.as_str().to_owned()),
            config.scep.url.clone(),
            config.scep.ca_fingerprint.clone(),
            config.ca_file.as_ref().map(|p| p.display().to_string()),
            config.store.as_ref().map(ToString::to_string),
        ]
    }

    #[test]
    fn the_child_gets_every_trust_setting_root_holds_and_they_alone_rebuild_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let fingerprint = "AB".repeat(32);
        let ca_file = dir.path().join("proxy-ca.pem");
        std::fs::write(&ca_file, crate::http::tests::TEST_ANCHOR_PEM).unwrap();
        let ca_file = ca_file.display().to_string();
        std::fs::write(
            &file,
            format!(
                "org_url = \"https://acme.okta.com\"\nca_file = {ca_file:?}\n\
                 store = \"file:/var/dt\"\n[scep]\nurl = \"https://ca.example.com/scep\"\n\
                 ca_fingerprint = \"{fingerprint}\"\n"
            ),
        )
        .unwrap();
        let load = |flags: crate::config::Flags| {
            crate::config::load(&flags, &Default::default(), Default::default()).unwrap()
        };
        let roots = load(crate::config::Flags {
            config: Some(file),
            root: Some(dir.path().to_owned()),
            ..Default::default()
        });
        assert!(
            trust_settings(&roots).iter().all(Option::is_some),
            "{:?}",
            trust_settings(&roots)
        );
        let args = [OsString::from("enroll")];
        let flags = trusted_flags(&roots, &args);
        for (flag, value) in [
            ("--org-url", "https://acme.okta.com"),
            ("--scep-url", "https://ca.example.com/scep"),
            ("--scep-ca-fingerprint", fingerprint.as_str()),
            ("--ca-file", ca_file.as_str()),
            ("--store", "file:/var/dt"),
        ] {
            assert!(
                flags.windows(2).any(|w| w == [flag, value]),
                "{flag} {value} missing from {flags:?}"
            );
        }
        // The child's command line alone, with no file to read, carries all of them.
        use clap::Parser;
        let child = crate::cli::Cli::try_parse_from(
            std::iter::once(OsString::from("devicetrust"))
                .chain(args.iter().cloned())
                .chain(flags),
        )
        .unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let childs = load(crate::config::Flags {
            root: Some(elsewhere.path().to_owned()),
            ..child.global.flags()
        });
        assert_eq!(childs.file, None);
        assert_eq!(trust_settings(&childs), trust_settings(&roots));
    }

    #[test]
    fn the_secret_goes_to_the_child_only_with_a_destination_root_knows() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "org-secret\n").unwrap();
        let load = |org: Option<&str>| {
            let flags = crate::config::Flags {
                org_url: org.map(str::to_owned),
                org_token_file: Some(token.clone()),
                root: Some(dir.path().to_owned()),
                ..Default::default()
            };
            crate::config::load(&flags, &Default::default(), Default::default()).unwrap()
        };
        let args = [OsString::from("enroll")];
        let (child, secret) =
            handover(&load(None), &Command::Enroll { json: false }, &args).unwrap();
        assert!(
            secret.is_none(),
            "no org known to root: no secret for the child"
        );
        assert_eq!(child, args);
        let (child, secret) = handover(
            &load(Some("https://acme.okta.com")),
            &Command::Enroll { json: false },
            &args,
        )
        .unwrap();
        let (flag, secret) = secret.unwrap();
        assert_eq!(
            (flag, secret.expose()),
            (SecretFlag::OrgToken, "org-secret")
        );
        assert_eq!(
            child,
            ["enroll", "--org-url", "https://acme.okta.com"].map(OsString::from)
        );
        let status = Command::Status {
            json: false,
            check_network: false,
        };
        let (_, secret) = handover(&load(Some("https://acme.okta.com")), &status, &args).unwrap();
        assert!(secret.is_none());
    }

    #[test]
    fn only_commands_that_may_enroll_get_the_secret() {
        assert!(may_need_secret(&Command::Enroll { json: false }));
        assert!(may_need_secret(&Command::Uninstall { reenroll: true }));
        assert!(!may_need_secret(&Command::Uninstall { reenroll: false }));
        assert!(!may_need_secret(&Command::Status {
            json: false,
            check_network: false
        }));
    }
}
