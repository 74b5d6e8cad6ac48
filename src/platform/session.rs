//! Running as the console user: the child's command line (pure, tested everywhere) and, on
//! macOS, the re-execution itself (`launchctl asuser` + `sudo -u`, the secret on a stdin pipe,
//! the other `DEVICETRUST_*` settings through `/usr/bin/env` after sudo's reset).
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

/// launchctl, sudo and env by absolute path: a root process must not search a caller's PATH.
pub const LAUNCHCTL: &str = "/bin/launchctl";
pub const SUDO: &str = "/usr/bin/sudo";
pub const ENV: &str = "/usr/bin/env";

/// The variables that hold a secret or name its file: the parent reads the secret (a
/// root-only file, its stdin, its environment) and hands it over on the child's stdin, never
/// in argv or the environment.
pub const SECRET_VARS: [&str; 4] = [
    crate::secret::vars::ORG_TOKEN,
    crate::secret::vars::ORG_TOKEN_FILE,
    crate::secret::vars::SCEP_CHALLENGE,
    crate::secret::vars::SCEP_CHALLENGE_FILE,
];

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

/// The child's full argv: `launchctl asuser <uid> sudo -n -u <user> -H -- /usr/bin/env
/// <VAR=value…> <exe> <args> --user <user>`, with `handover`'s flag set to `-` (stdin).
///
/// `args` are the agent's arguments without `argv[0]`. Their secret-file and `--user` flags are
/// removed whatever their form (`--flag value`, `--flag=value`); nothing else is added, and no
/// flag of the CLI takes a secret as its value, so no secret can reach this argv. `env` are
/// the settings the child gets in its environment ([`crossing_env`]): after sudo, which resets
/// the environment, so they reach the agent as they reached us (a setting from the environment
/// stays one, and `status` says so).
pub fn reexec_argv(
    exe: &Path,
    args: &[OsString],
    env: &[(String, OsString)],
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
        ENV,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    for (name, value) in env {
        let mut pair = OsString::from(format!("{name}="));
        pair.push(value);
        argv.push(pair);
    }
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

/// The environment the child gets: every `DEVICETRUST_*` variable of ours (verbosity, root,
/// store, configuration file, device facts, test hooks) but the secrets, which travel on stdin.
/// sudo's `env_reset` would drop them all, so they are set again after it. A name with `=` in
/// it could not be set through `env` and does not occur in ours; it is skipped.
pub fn crossing_env(vars: impl IntoIterator<Item = (String, OsString)>) -> Vec<(String, OsString)> {
    let mut crossing: Vec<(String, OsString)> = vars
        .into_iter()
        .filter(|(name, _)| {
            name.starts_with("DEVICETRUST_")
                && !name.contains('=')
                && !SECRET_VARS.contains(&name.as_str())
        })
        .collect();
    crossing.sort();
    crossing
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
    /// The run in the user's session took the time the root run had left, and was stopped
    /// with everything it started.
    #[error(transparent)]
    TimedOut(#[from] crate::platform::children::TimedOut),
}

/// How long the run in the user's session may take when the root run has no deadline: the
/// default of `network.run_deadline_secs`.
pub const REEXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// What the child did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Its exit code (1 when a signal ended it).
    pub code: i32,
    /// Its stdout, when the caller asked to keep it rather than pass it through.
    pub stdout: Option<Vec<u8>>,
}

/// How root runs this binary in a user's own session.
pub trait UserSession {
    /// Runs this binary with `args` (argv without `argv[0]`) as `user` in their session. Its
    /// stderr goes straight to ours, its stdout too unless `keep_stdout` (the EA's one line is
    /// checked before it is printed). `secret` is written to the child's stdin, named by the
    /// flag that reads it from there: never argv, never env.
    fn run_as(
        &self,
        user: &str,
        args: &[OsString],
        secret: Option<(SecretFlag, Secret)>,
        keep_stdout: bool,
    ) -> Result<Ran, ReexecError>;
}

#[cfg(target_os = "macos")]
pub use imp::LaunchctlSession;

#[cfg(target_os = "macos")]
mod imp {
    use super::{crossing_env, reexec_argv, Ran, ReexecError, SecretFlag, UserSession};
    use crate::platform::children::{self, ChildError};
    use crate::secret::Secret;
    use std::ffi::OsString;
    use std::process::Stdio;

    /// `launchctl asuser` + `sudo -u`: the macOS way into a user's bootstrap namespace.
    pub struct LaunchctlSession;

    impl UserSession for LaunchctlSession {
        fn run_as(
            &self,
            user: &str,
            args: &[OsString],
            secret: Option<(SecretFlag, Secret)>,
            keep_stdout: bool,
        ) -> Result<Ran, ReexecError> {
            let uid = crate::platform::uid_of(user)
                .ok_or_else(|| ReexecError::NoSuchUser(user.to_owned()))?;
            let exe = std::env::current_exe().map_err(|source| ReexecError::Spawn {
                what: "the agent as the console user",
                source,
            })?;
            let env = crossing_env(
                std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))),
            );
            let argv = reexec_argv(
                &exe,
                args,
                &env,
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
                .stdout(if keep_stdout {
                    Stdio::piped()
                } else {
                    Stdio::inherit()
                })
                .stderr(Stdio::inherit());
            // The secret as one line on the child's stdin, zeroed once written.
            let line = secret.map(|(_, secret)| {
                let mut line = zeroize::Zeroizing::new(secret.expose().as_bytes().to_vec());
                line.push(b'\n');
                line
            });
            // The child has the time the root run has left: the parent must still answer.
            let timeout = children::time_left().unwrap_or(super::REEXEC_TIMEOUT);
            let ran = children::run(
                &mut command,
                "the agent in the console user's session",
                timeout,
                line.as_deref().map(Vec::as_slice),
            )
            .map_err(|e| match e {
                ChildError::TimedOut(stopped) => ReexecError::TimedOut(stopped),
                ChildError::Spawn { source, .. } => ReexecError::Spawn {
                    what: "launchctl asuser",
                    source,
                },
                ChildError::Wait { source, .. } => ReexecError::Spawn {
                    what: "the agent as the console user",
                    source,
                },
            })?;
            let status = ran.status;
            let stdout = keep_stdout.then_some(ran.stdout);
            // Killed by a signal: a failed run.
            Ok(Ran {
                code: status.code().unwrap_or(1),
                stdout,
            })
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
            &[],
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
                "/usr/bin/env",
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
        // The environment a Jamf script may have set, secrets included.
        let env = crossing_env(
            [
                ("DEVICETRUST_ORG_TOKEN", secret),
                ("DEVICETRUST_SCEP_CHALLENGE", secret),
                ("DEVICETRUST_ORG_TOKEN_FILE", token_arg.as_str()),
                ("DEVICETRUST_SCEP_CHALLENGE_FILE", "/root/challenge"),
                ("DEVICETRUST_ORG_URL", "https://acme.okta.com"),
            ]
            .map(|(k, v)| (k.to_owned(), OsString::from(v))),
        );
        let argv = strings(&reexec_argv(
            Path::new("/usr/local/bin/devicetrust"),
            &args,
            &env,
            "alice",
            501,
            Some(SecretFlag::OrgToken),
        ));
        let tail = &argv[argv.iter().position(|a| a == "/usr/bin/env").unwrap()..];
        assert_eq!(
            tail,
            [
                "/usr/bin/env",
                "DEVICETRUST_ORG_URL=https://acme.okta.com",
                "/usr/local/bin/devicetrust",
                "enroll",
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

    /// Every `DEVICETRUST_*` name the agent's sources mention (the configuration's variables,
    /// `DEVICETRUST_VERBOSE`, the test hooks), found by reading the sources.
    fn variables_in_sources() -> Vec<String> {
        fn walk(dir: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (at, _) in text.match_indices("\"DEVICETRUST_") {
                        let name: String = text[at + 1..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit()
                            })
                            .collect();
                        if !found.contains(&name) {
                            found.push(name);
                        }
                    }
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        found
    }

    #[test]
    fn every_devicetrust_variable_crosses_the_reexec_and_secrets_only_on_stdin() {
        let names = variables_in_sources();
        for expected in [
            "DEVICETRUST_VERBOSE",
            "DEVICETRUST_ROOT",
            "DEVICETRUST_FAILPOINT",
        ] {
            assert!(names.iter().any(|n| n == expected), "{names:?}");
        }
        let env = crossing_env(
            names
                .iter()
                .map(|n| (n.clone(), OsString::from(format!("value of {n}")))),
        );
        let argv = strings(&reexec_argv(
            Path::new("/x/devicetrust"),
            &os(&["ea"]),
            &env,
            "alice",
            501,
            None,
        ));
        // After sudo (whose env_reset would drop them) and before the agent.
        let env_at = argv.iter().position(|a| a == "/usr/bin/env").unwrap();
        let exe_at = argv.iter().position(|a| a == "/x/devicetrust").unwrap();
        assert_eq!(argv[env_at - 1], "--");
        let set = &argv[env_at + 1..exe_at];
        for name in &names {
            let pair = format!("{name}=value of {name}");
            if SECRET_VARS.contains(&name.as_str()) {
                assert!(argv.iter().all(|a| !a.contains(name.as_str())), "{name}");
            } else {
                assert!(set.contains(&pair), "{name} does not cross: {set:?}");
            }
        }
    }

    #[test]
    fn arguments_after_a_double_dash_are_passed_verbatim() {
        let argv = strings(&reexec_argv(
            Path::new("/x/devicetrust"),
            &os(&["status", "--", "--user"]),
            &[],
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
