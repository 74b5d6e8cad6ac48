//! Running as the console user: the child's command line (pure, tested everywhere) and, on
//! macOS, the re-execution itself (`launchctl asuser` + `sudo -u`, the secret on a stdin pipe).
//!
//! Why `sudo` rather than setgid/initgroups/setuid in a `pre_exec` hook: `launchctl asuser`
//! must itself run as root (it only moves the child into the user's bootstrap namespace), so
//! the privilege drop has to happen in a process after it. `sudo -u <user> -H` is the audited
//! tool that does exactly that (initgroups, setgid, setuid, HOME/USER/LOGNAME), and its
//! env_reset clears the parent's environment, so a secret held in an environment variable never
//! reaches the child through it. Our process keeps no unsafe privilege-switching code.

use crate::secret::Secret;
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// launchctl and sudo by absolute path: a root process must not search a caller's PATH.
pub const LAUNCHCTL: &str = "/bin/launchctl";
pub const SUDO: &str = "/usr/bin/sudo";

/// A secret handed to the child on its stdin, named by the flag that reads it from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFlag {
    OrgToken,
    ScepChallenge,
}

impl SecretFlag {
    pub fn flag(self) -> &'static str {
        match self {
            SecretFlag::OrgToken => "--org-token-file",
            SecretFlag::ScepChallenge => "--scep-challenge-file",
        }
    }
}

/// Flags dropped from the child's arguments and set by the parent instead: the secret files
/// (the parent reads them; a root-only file would be unreadable for the user) and `--user`.
const REPLACED_FLAGS: [&str; 3] = ["--org-token-file", "--scep-challenge-file", "--user"];

/// The child's full argv: `launchctl asuser <uid> sudo -n -u <user> -H -- <exe> <args>
/// --user <user>`, with `handover`'s flag set to `-` (stdin).
///
/// `args` are the agent's arguments without `argv[0]`. Their secret-file and `--user` flags are
/// removed whatever their form (`--flag value`, `--flag=value`); nothing else is added, and no
/// flag of the CLI takes a secret as its value, so no secret can reach this argv.
pub fn reexec_argv(
    exe: &Path,
    args: &[OsString],
    user: &str,
    uid: u32,
    handover: Option<SecretFlag>,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = [
        LAUNCHCTL,
        "asuser",
        &uid.to_string(),
        SUDO,
        "-n",
        "-u",
        user,
        "-H",
        "--",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    argv.push(exe.as_os_str().to_owned());
    let mut rest = args.iter();
    let mut after_double_dash = Vec::new();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            // Everything after `--` is positional: ours go before it.
            after_double_dash.push(arg.clone());
            after_double_dash.extend(rest.by_ref().cloned());
            break;
        }
        match replaced_flag(arg) {
            Some(Form::Separate) => {
                rest.next();
            }
            Some(Form::Joined) => {}
            None => argv.push(arg.clone()),
        }
    }
    if let Some(secret) = handover {
        argv.push(secret.flag().into());
        argv.push("-".into());
    }
    argv.push("--user".into());
    argv.push(user.into());
    argv.extend(after_double_dash);
    argv
}

enum Form {
    /// `--flag value`: the next argument goes too.
    Separate,
    /// `--flag=value`.
    Joined,
}

fn replaced_flag(arg: &OsStr) -> Option<Form> {
    let text = arg.to_str()?;
    REPLACED_FLAGS.iter().find_map(|flag| {
        if text == *flag {
            Some(Form::Separate)
        } else if text.strip_prefix(flag)?.starts_with('=') {
            Some(Form::Joined)
        } else {
            None
        }
    })
}

/// Non-secret settings that come from the environment, with the flag that carries each to the
/// child (sudo resets the environment). The secrets (`DEVICETRUST_ORG_TOKEN`,
/// `DEVICETRUST_SCEP_CHALLENGE`) are deliberately absent: they travel on stdin.
const ENV_FLAGS: [(&str, &str); 9] = [
    ("DEVICETRUST_CONFIG", "--config"),
    ("DEVICETRUST_ROOT", "--root"),
    ("DEVICETRUST_STORE", "--store"),
    ("DEVICETRUST_ORG_URL", "--org-url"),
    ("DEVICETRUST_CA_FILE", "--ca-file"),
    ("DEVICETRUST_DEVICE_UUID", "--device-uuid"),
    ("DEVICETRUST_DEVICE_NAME", "--device-name"),
    ("DEVICETRUST_SCEP_URL", "--scep-url"),
    ("DEVICETRUST_SCEP_CA_FINGERPRINT", "--scep-ca-fingerprint"),
];

/// The flags that carry the environment's non-secret settings to the child, for each setting
/// the command line does not already give (a flag beats the environment, so it stays as is).
pub fn env_as_flags(args: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Vec<OsString> {
    let given = |flag: &str| {
        args.iter().any(|a| {
            a.to_str().is_some_and(|a| {
                a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('='))
            })
        })
    };
    let mut flags = Vec::new();
    for (var, flag) in ENV_FLAGS {
        if given(flag) {
            continue;
        }
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            flags.push(OsString::from(flag));
            flags.push(value);
        }
    }
    flags
}

/// Why the re-execution did not happen; the caller turns it into an exit code.
#[derive(Debug, thiserror::Error)]
pub enum ReexecError {
    #[error("no user named {0:?} in the directory")]
    NoSuchUser(String),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// How root runs this binary in a user's own session.
pub trait UserSession {
    /// Runs this binary with `args` (argv without `argv[0]`) as `user` in their session and
    /// returns the child's exit code; its output goes straight to ours. `secret` is written to
    /// the child's stdin, named by the flag that reads it from there: never argv, never env.
    fn run_as(
        &self,
        user: &str,
        args: &[OsString],
        secret: Option<(SecretFlag, Secret)>,
    ) -> Result<i32, ReexecError>;
}

#[cfg(target_os = "macos")]
pub use imp::LaunchctlSession;

#[cfg(target_os = "macos")]
mod imp {
    use super::{env_as_flags, reexec_argv, ReexecError, SecretFlag, UserSession};
    use crate::secret::Secret;
    use std::ffi::OsString;
    use std::io::Write;
    use std::process::Stdio;

    /// `launchctl asuser` + `sudo -u`: the macOS way into a user's bootstrap namespace.
    pub struct LaunchctlSession;

    impl UserSession for LaunchctlSession {
        fn run_as(
            &self,
            user: &str,
            args: &[OsString],
            secret: Option<(SecretFlag, Secret)>,
        ) -> Result<i32, ReexecError> {
            let uid = crate::platform::uid_of(user)
                .ok_or_else(|| ReexecError::NoSuchUser(user.to_owned()))?;
            let exe = std::env::current_exe().map_err(|source| ReexecError::Spawn {
                what: "the agent as the console user",
                source,
            })?;
            let mut full_args = args.to_vec();
            full_args.extend(env_as_flags(args, |var| std::env::var_os(var)));
            let argv = reexec_argv(
                &exe,
                &full_args,
                user,
                uid,
                secret.as_ref().map(|(flag, _)| *flag),
            );
            tracing::debug!("running as {user} (uid {uid}) in the console session");
            let (program, rest) = argv.split_first().ok_or(ReexecError::Spawn {
                what: "launchctl",
                source: std::io::Error::other("empty command line"),
            })?;
            let mut command = std::process::Command::new(program);
            command
                .args(rest)
                .stdin(if secret.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::inherit()
                })
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit());
            let mut child = crate::platform::children::spawn(&mut command).map_err(|source| {
                ReexecError::Spawn {
                    what: "launchctl asuser",
                    source,
                }
            })?;
            if let (Some((_, secret)), Some(mut stdin)) = (secret, child.stdin.take()) {
                // One short line fits the pipe buffer; a child that exits without reading it
                // (EPIPE) reports its own error, so the write's outcome is not ours to judge.
                let mut line = zeroize::Zeroizing::new(secret.expose().as_bytes().to_vec());
                line.push(b'\n');
                let _ = stdin.write_all(&line);
                drop(stdin);
            }
            let status = child.wait().map_err(|source| ReexecError::Spawn {
                what: "the agent as the console user",
                source,
            })?;
            // Killed by a signal: a failed run.
            Ok(status.code().unwrap_or(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn argv_runs_sudo_inside_the_users_bootstrap_and_appends_the_user() {
        let argv = reexec_argv(
            Path::new("/usr/local/bin/devicetrust"),
            &os(&["enroll", "-v", "--org-url", "https://acme.okta.com"]),
            "alice",
            501,
            None,
        );
        assert_eq!(
            strings(&argv),
            [
                "/bin/launchctl",
                "asuser",
                "501",
                "/usr/bin/sudo",
                "-n",
                "-u",
                "alice",
                "-H",
                "--",
                "/usr/local/bin/devicetrust",
                "enroll",
                "-v",
                "--org-url",
                "https://acme.okta.com",
                "--user",
                "alice"
            ]
        );
    }

    #[test]
    fn secret_file_flags_become_stdin_and_no_secret_reaches_argv() {
        let secret = "00abcdefSECRETtoken";
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, secret).unwrap();
        let token_arg = token.to_string_lossy().into_owned();
        let args = os(&[
            "enroll",
            "--org-token-file",
            &token_arg,
            "--scep-challenge-file=/root/challenge",
            "--user",
            "mallory",
            "--user=eve",
        ]);
        // The environment a Jamf script may have set, secret included.
        let env = |var: &str| match var {
            "DEVICETRUST_ORG_TOKEN" | "DEVICETRUST_SCEP_CHALLENGE" => Some(secret.into()),
            "DEVICETRUST_ORG_URL" => Some("https://acme.okta.com".into()),
            _ => None,
        };
        let mut full = args.clone();
        full.extend(env_as_flags(&args, env));
        let argv = strings(&reexec_argv(
            Path::new("/usr/local/bin/devicetrust"),
            &full,
            "alice",
            501,
            Some(SecretFlag::OrgToken),
        ));
        let tail = &argv[argv.iter().position(|a| a == "enroll").unwrap()..];
        assert_eq!(
            tail,
            [
                "enroll",
                "--org-url",
                "https://acme.okta.com",
                "--org-token-file",
                "-",
                "--user",
                "alice"
            ]
        );
        assert!(argv.iter().all(|a| !a.contains(secret)), "{argv:?}");
        assert!(argv.iter().all(|a| !a.contains(&token_arg)), "{argv:?}");
        assert!(argv.iter().all(|a| !a.contains("challenge")), "{argv:?}");
    }

    #[test]
    fn flags_beat_the_environment_and_secrets_never_become_flags() {
        let args = os(&["status", "--root=/tmp/r"]);
        let env = |var: &str| Some(OsString::from(format!("value-of-{var}")));
        let flags = strings(&env_as_flags(&args, env));
        assert!(!flags.contains(&"--root".to_owned()));
        assert!(flags
            .iter()
            .all(|f| !f.contains("TOKEN") && !f.contains("CHALLENGE")));
        assert!(flags.contains(&"value-of-DEVICETRUST_ORG_URL".to_owned()));
        // Every non-secret setting but --root (given as a flag), each as flag and value.
        assert_eq!(flags.len(), 16);
    }

    #[test]
    fn arguments_after_a_double_dash_are_passed_verbatim() {
        let argv = strings(&reexec_argv(
            Path::new("/x/devicetrust"),
            &os(&["status", "--", "--user"]),
            "alice",
            501,
            None,
        ));
        assert!(argv.ends_with(&[
            "status".into(),
            "--user".into(),
            "alice".into(),
            "--".into(),
            "--user".into()
        ]));
    }
}
