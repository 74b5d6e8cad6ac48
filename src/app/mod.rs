//! The binary's body: parse the command line, run one command, map the outcome to an exit code.
//!
//! Every failure ends here as one `ERROR:` line (or, under `--json`, one JSON document with an
//! `error` field) and the exit code of cli.md.

mod deadline;
mod plan;
mod selftest;
pub mod session;
mod teamid;

use crate::agent::{Agent, AgentError, StatusReport};
use crate::cli::{Cli, Command};
use crate::config::{self, Config, NetworkConfig};
use crate::health::HealthStatus;
use crate::host::{self, Host};
use crate::output::{self, Channel};
use crate::platform::children;
use crate::platform::session::ReexecError;
use crate::record::{DeviceRecordFile, EnrollmentRecord};
use crate::report;
use clap::Parser;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Runs the command line `args` and returns the process exit code.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    crate::pki::install_crypto_provider();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, &args),
    };
    let json = cli.command.json() && !matches!(cli.command, Command::Selftest { .. });
    let machine_output = json
        || matches!(
            cli.command,
            Command::Ea { .. } | Command::Teamid { .. } | Command::Selftest { json: true }
        );
    let vars = config::process_env();
    let verbose = cli.global.verbose
        || vars
            .get(config::env::VERBOSE)
            .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    output::init(
        verbose,
        if machine_output {
            Channel::Stderr
        } else {
            Channel::Stdout
        },
    );

    match &cli.command {
        Command::Version => {
            println!("devicetrust {}", env!("CARGO_PKG_VERSION"));
            return EXIT_OK;
        }
        Command::Teamid { path } => {
            start_run_deadline(&cli.command, None);
            return teamid::run(path, verbose);
        }
        #[cfg(feature = "sim")]
        Command::Demo => {
            start_run_deadline(&cli.command, None);
            return finish(crate::demo::run().map_err(Failure::Demo), false);
        }
        #[cfg(not(feature = "sim"))]
        Command::Demo => {
            fail(
                "this build has no simulator: the installed agent leaves it out. Run the demo \
                 from a source checkout with `cargo run --release -- demo`",
            );
            return EXIT_USAGE;
        }
        _ => {}
    }

    let flags = cli.global.flags();
    let host = host::for_root(&config::root(&flags, &vars));
    start_run_deadline(&cli.command, load_config(&cli, host.as_ref()).ok().as_ref());

    // Root (a Jamf policy) acts through the console user's own session where the host says so.
    if let Some(code) = as_console_user(
        &cli,
        host.as_ref(),
        &vars,
        args.get(1..).unwrap_or_default(),
    ) {
        return code;
    }

    if let Command::Ea {
        expiry,
        plan: want_plan,
        check_network,
    } = &cli.command
    {
        let line = if *want_plan {
            plan::ea_line(load_config(&cli, host.as_ref()), host, *check_network)
        } else {
            ea(&cli, host, *expiry, *check_network)
        };
        return deadline::answer(EXIT_OK, || println!("{line}"));
    }

    if let Command::Plan {
        json,
        check_network,
    } = cli.command
    {
        return plan::run(load_config(&cli, host.as_ref()), host, json, check_network);
    }

    if let Command::Selftest { json } = cli.command {
        return selftest::run(load_config(&cli, host.as_ref()), host, json);
    }

    let result = load_config(&cli, host.as_ref()).and_then(|config| {
        let fallback = config.clone();
        let mut agent = match Agent::new(config, host) {
            // Nobody at the console is a status to show, as the EA shows it, not a failure.
            Err(AgentError::NoUserSession) if matches!(cli.command, Command::Status { .. }) => {
                let detail = "nobody is logged in at the console; the certificate and the \
                              enrollment record are per user, so nothing else is checked"
                    .to_owned();
                let report = StatusReport::without_user(
                    HealthStatus::NoUserSession,
                    Some(&fallback),
                    Some(detail),
                );
                print_status(&report, json);
                return Ok(());
            }
            agent => agent?,
        };
        match &cli.command {
            Command::Enroll { json } => {
                let enrolled = agent.enroll()?;
                if *json {
                    deadline::answer(EXIT_OK, || {
                        println!("{}", plan::enrolled_json(agent.user(), &enrolled))
                    });
                }
                Ok(())
            }
            Command::Renew {
                force,
                renew_before_days,
            } => agent.renew(*force, *renew_before_days).map(|_| ()),
            Command::Uninstall { reenroll } => agent.uninstall(*reenroll),
            Command::Repair => agent.repair(),
            Command::Status {
                json,
                check_network,
            } => {
                let report = agent.status(*check_network)?;
                // A tool that hung was stopped: what the check saw is incomplete.
                if let Some(stopped) = children::stopped() {
                    return Err(AgentError::TimedOut(stopped));
                }
                print_status(&report, *json);
                Ok(())
            }
            Command::Ea { .. }
            | Command::Plan { .. }
            | Command::Version
            | Command::Demo
            | Command::Teamid { .. }
            | Command::Selftest { .. } => Ok(()),
        }
    });
    finish(result.map_err(Failure::Agent), json)
}

/// A command line clap refused. `--help` and `--version` print as clap prints them (exit 0); a
/// usage error is one `ERROR:` line and exit 2, as every other failure. Under `ea` the contract
/// is one `<result>` line and exit 0 whatever happens: the line is the one the shipped EA
/// scripts print when the agent gives none, and the error goes to stderr. A command asked for
/// `--json` answers with one JSON document, its `error` field the line it would have printed.
fn usage_error(e: &clap::Error, args: &[std::ffi::OsString]) -> i32 {
    if !e.use_stderr() {
        let _ = e.print();
        return EXIT_OK;
    }
    let message = usage_message(e);
    match attempted(args) {
        Some(Attempted::Ea { expiry }) => {
            eprintln!("ERROR: {message}");
            println!("{}", report::ea_agent_error(expiry));
            EXIT_OK
        }
        Some(Attempted::Json) => {
            println!("{}", report::error_json(&message, EXIT_USAGE));
            EXIT_USAGE
        }
        None => {
            fail(&message);
            EXIT_USAGE
        }
    }
}

/// The commands whose output is for a program, not a person, when clap refused the line.
#[derive(Debug, PartialEq, Eq)]
enum Attempted {
    Ea {
        expiry: bool,
    },
    /// Any command that takes `--json`, given it.
    Json,
}

/// clap's multi-line error as one line: its message, any tip, and the usage it shows.
fn usage_message(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "no command given; `devicetrust --help` lists them".to_owned();
    }
    let rendered = e.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        let line = match line.strip_prefix("Usage: ") {
            Some(usage) => format!("usage: {usage}"),
            None => line.to_owned(),
        };
        parts.push(line);
    }
    parts.push("see --help".to_owned());
    parts.join("; ")
}

/// Whether a command line clap refused was meant for `ea`, or for a command that takes
/// `--json` with `--json` given. The line is read word by word with clap's definitions, not
/// parsed again: a lenient parse stops at the first word it does not know, and would lose the
/// subcommand of `--bogus status --json` and the `--json` of `status --bogus --json`.
fn attempted(args: &[std::ffi::OsString]) -> Option<Attempted> {
    use clap::CommandFactory;
    let cli = Cli::command();
    // Words that are not text cannot name a command or a flag; `--` ends the options.
    let mut words = args
        .iter()
        .skip(1)
        .map(|a| a.to_str().unwrap_or(""))
        .take_while(|w| *w != "--");
    // The command is the first word that is neither an option nor an option's value.
    let subcommand = loop {
        let word = words.next()?;
        let option = match (word.strip_prefix("--"), word.strip_prefix('-')) {
            (Some(long), _) if !long.contains('=') => {
                cli.get_arguments().find(|a| a.get_long() == Some(long))
            }
            (None, Some(short)) if short.chars().count() == 1 => cli
                .get_arguments()
                .find(|a| short.chars().next() == a.get_short()),
            (Some(_), _) | (None, Some(_)) => continue,
            (None, None) => break cli.find_subcommand(word)?,
        };
        if option.is_some_and(|a| a.get_action().takes_values()) {
            words.next();
        }
    };
    let rest: Vec<&str> = words.collect();
    let given = |long: &str| {
        rest.iter().any(|w| {
            w.strip_prefix("--")
                .and_then(|w| w.strip_prefix(long))
                .is_some_and(|value| value.is_empty() || value.starts_with('='))
        })
    };
    let takes = |long: &str| {
        subcommand
            .get_arguments()
            .any(|a| a.get_long() == Some(long))
    };
    if subcommand.get_name() == "ea" {
        Some(Attempted::Ea {
            expiry: given("expiry"),
        })
    } else if takes("json") && given("json") {
        Some(Attempted::Json)
    } else {
        None
    }
}

/// Re-executes as the console user when root runs a command of the user's session on a host
/// that has such sessions; `None` means "run here". The child's exit code is ours.
fn as_console_user(
    cli: &Cli,
    host: &dyn Host,
    vars: &std::collections::HashMap<String, String>,
    args: &[std::ffi::OsString],
) -> Option<i32> {
    use session::Decision;
    let user_session = host.user_session()?;
    let euid = effective_uid();
    let explicit_user = config::user(&cli.global.flags(), vars);
    let decision = session::needs_reexec(
        euid,
        &cli.command,
        host.platform().console_user().as_deref(),
        explicit_user.as_deref(),
    );
    match decision {
        Decision::RunHere => None,
        Decision::NoConsoleUser => Some(finish(
            Err(Failure::Agent(AgentError::NoUserSession)),
            cli.command.json(),
        )),
        Decision::Reexec { user } => {
            // Root's view: flags, environment, profile, file and the root-owned record. The
            // child reads the user's copy of the record too, so what decides where the secret
            // goes is handed over as flags, and a secret only when root knows that place.
            let device = DeviceRecordFile::for_user(host.root(), host.layout(), &user);
            let config = load_config(cli, host).and_then(|mut config| {
                if let Some(record) = device.load()? {
                    config.merge_record(&record, config::Source::Record)?;
                }
                config.check_scep_transport()?;
                Ok(config)
            });
            let (child_args, secret) = match &config {
                Ok(config) => match session::handover(config, &cli.command, args) {
                    Ok(handover) => handover,
                    Err(e) => {
                        if cli.command.json() {
                            println!("{}", report::error_json(&e.to_string(), EXIT_USAGE));
                        } else {
                            fail(&e.to_string());
                        }
                        return Some(EXIT_USAGE);
                    }
                },
                // The child meets the same error and reports it its own way (the EA as a
                // status line); it gets nothing of root's.
                Err(_) => (args.to_vec(), None),
            };
            let keep_stdout = matches!(cli.command, Command::Ea { .. });
            let ran = match user_session.run_as(&user, &child_args, secret, keep_stdout) {
                Err(ReexecError::TimedOut(stopped)) => {
                    let json = cli.command.json();
                    return Some(match reexec_timed_out(&cli.command, stopped) {
                        Ok(line) => deadline::answer(EXIT_OK, || println!("{line}")),
                        Err(e) => finish(Err(Failure::Agent(e)), json),
                    });
                }
                ran => ran.map_err(|e| e.to_string()),
            };
            if let (Ok(ran), Ok(config)) = (&ran, &config) {
                if ran.code == EXIT_OK {
                    keep_device_record(&cli.command, config, &device);
                }
            }
            Some(match session::after_reexec(&cli.command, ran) {
                session::AfterReexec::Exit(code) => deadline::answer(code, || {}),
                session::AfterReexec::EaLine { line, warning } => {
                    if let Some(w) = warning {
                        tracing::warn!("{w}");
                    }
                    deadline::answer(EXIT_OK, || println!("{line}"))
                }
                session::AfterReexec::Failed { message, json } => {
                    deadline::answer(EXIT_FAILED, || {
                        if json {
                            println!("{}", report::error_json(&message, EXIT_FAILED));
                        } else {
                            fail(&message);
                        }
                    })
                }
            })
        }
    }
}

/// After the user's session did the work, root keeps its own record of where the device
/// enrolls (the child, running as the user, cannot write there); an uninstall removes it.
fn keep_device_record(command: &Command, config: &Config, device: &DeviceRecordFile) {
    let result = match command {
        Command::Uninstall { reenroll: false } => device.remove().map(drop),
        Command::Enroll { .. }
        | Command::Renew { .. }
        | Command::Repair
        | Command::Uninstall { reenroll: true }
            if config.is_configured() =>
        {
            let kept = device.load().ok().flatten().unwrap_or_default();
            device.save(&with_scep_ca(config, config.settings_record().over(&kept)))
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!("{e}");
    }
}

/// Root's record of a SCEP enrollment with the CA's certificates it lacks, fetched by root from
/// the configured CA (pinned where a fingerprint is set): the child that enrolled runs as the
/// user and cannot vouch for them, so root fetches them itself, and from then on the stored
/// identity is judged by the CA's signature. A failure leaves them to the next run.
fn with_scep_ca(config: &Config, mut record: EnrollmentRecord) -> EnrollmentRecord {
    let needs = record.method == Some(crate::record::Method::Scep)
        && record.scep_ca_certificates.is_empty();
    if needs {
        match crate::agent::net::scep_ca_certificates(config) {
            Ok(certificates) => {
                record.scep_ca_certificates = crate::chain::ca::encoded(&certificates)
            }
            Err(e) => tracing::warn!("the SCEP CA's certificates could not be fetched: {e}"),
        }
    }
    record
}

/// Every command's upper bound. `status` and `ea`, which a Jamf inventory waits for (it runs
/// each Extension Attribute in turn and, as far as Jamf documents, without a limit of its own),
/// have `network.status_deadline_secs` (default 60 s: a healthy `ea` takes milliseconds, and the
/// default `--check-network` wait of 30 s fits); every other command has
/// `network.run_deadline_secs` (retries, back-off, rate-limit waits and slow servers together).
/// Past it the run gives up with exit 75 (`ea`: its `Agent Error` line, exit 0) and the next
/// trigger continues; exiting releases the run lock with the process, and every store write is
/// crash-safe at each step. No child the run starts outlives it. Without a configuration that
/// loads, the defaults hold.
fn start_run_deadline(command: &Command, config: Option<&Config>) {
    let network = config.map_or_else(NetworkConfig::default, |c| c.network.clone());
    let (limit, key) = match command {
        Command::Ea { .. }
        | Command::Status { .. }
        | Command::Plan { .. }
        | Command::Teamid { .. } => (network.status_deadline, "network.status_deadline_secs"),
        _ => (network.run_deadline, "network.run_deadline_secs"),
    };
    let on_expiry = match command {
        Command::Ea { expiry, .. } => deadline::OnExpiry::Ea { expiry: *expiry },
        Command::Status { json: true, .. }
        | Command::Selftest { json: true }
        | Command::Plan { json: true, .. } => deadline::OnExpiry::Json,
        _ => deadline::OnExpiry::Line,
    };
    deadline::start(limit, key, on_expiry);
}

/// The run in the user's session took the time the root run had left and was stopped with
/// everything it started: the EA's answer is `Agent Error` (the line the shipped EA scripts
/// print when the agent gives none; it writes nothing), every other command is deferred.
fn reexec_timed_out(command: &Command, stopped: children::TimedOut) -> Result<String, AgentError> {
    match command {
        Command::Ea { expiry, .. } => {
            tracing::warn!("{stopped}");
            Ok(report::ea_agent_error(*expiry))
        }
        _ => Err(AgentError::TimedOut(stopped)),
    }
}

/// The effective uid: root runs decide whether to act through the user's session.
fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn load_config(cli: &Cli, host: &dyn Host) -> Result<Config, AgentError> {
    let vars = config::process_env();
    let flags = cli.global.flags();
    // The user-scope profile is the one of the user we act for: --user, else the console user.
    let user = config::user(&flags, &vars).or_else(|| host.platform().console_user());
    let managed = config::managed::load(host.root(), user.as_deref())?;
    Ok(config::load(&flags, &vars, managed)?)
}

fn print_status(report: &StatusReport, json: bool) {
    deadline::answer(EXIT_OK, || {
        if json {
            println!("{}", report::status_json(report));
        } else {
            for line in report::status_lines(report) {
                tracing::info!("{line}");
            }
        }
    });
}

/// The EA never fails: whatever goes wrong becomes the status that explains it. What cannot be
/// known now (a tool that hung and was stopped, a deferred error) is `Agent Error`, the line the
/// shipped EA scripts print when the agent gives none: never a health status a Smart Group
/// would act on. The expiry date is the stored certificate's, whatever the chain looked like.
fn ea(cli: &Cli, host: Box<dyn Host>, expiry: bool, check_network: bool) -> String {
    let report = match load_config(cli, host.as_ref()) {
        Err(AgentError::Config(e)) => {
            tracing::warn!("{e}");
            StatusReport::without_user(HealthStatus::NotConfigured, None, Some(e.to_string()))
        }
        Err(e) => {
            tracing::warn!("{e}");
            StatusReport::without_user(HealthStatus::NotConfigured, None, Some(e.to_string()))
        }
        Ok(config) => {
            let fallback = config.clone();
            match Agent::new(config, host).and_then(|mut a| a.status(check_network)) {
                Ok(report) => report,
                Err(AgentError::NoUserSession) => {
                    StatusReport::without_user(HealthStatus::NoUserSession, Some(&fallback), None)
                }
                // An error is no status: a store that could not be read says nothing about
                // the certificate. The EA scripts' own line for it, the error on stderr.
                Err(e) => {
                    tracing::warn!("{e}");
                    return report::ea_agent_error(expiry);
                }
            }
        }
    };
    if expiry {
        report::ea_expiry(report.certificate.as_ref())
    } else if let Some(stopped) = children::stopped() {
        tracing::warn!("{stopped}");
        report::ea_agent_error(false)
    } else {
        report::ea_status(report.status)
    }
}

enum Failure {
    Agent(AgentError),
    #[cfg(feature = "sim")]
    Demo(crate::demo::DemoError),
}

/// The outcome as an exit code, with one `ERROR:` line, or for `--json` one JSON document
/// that says what failed.
fn finish(result: Result<(), Failure>, json: bool) -> i32 {
    let (message, code, warn_only) = match result {
        Ok(()) => return deadline::answer(EXIT_OK, || {}),
        // Nobody at the console is not a failure: a later trigger completes the job.
        Err(Failure::Agent(e @ AgentError::NoUserSession)) => (e.to_string(), e.exit_code(), true),
        Err(Failure::Agent(e)) => {
            tracing::debug!("{}", report::error_chain(&e));
            (e.to_string(), e.exit_code(), false)
        }
        #[cfg(feature = "sim")]
        Err(Failure::Demo(e)) => (e.to_string(), EXIT_FAILED, false),
    };
    deadline::answer(code, || {
        if json {
            println!("{}", report::error_json(&message, code));
        } else if warn_only {
            println!("WARN: {}", output::one_line(&message));
        } else {
            fail(&message);
        }
    })
}

/// The one `ERROR:` line of a failed run (on stdout, where Jamf policy logs read it).
fn fail(message: &str) {
    println!("ERROR: {}", output::one_line(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_in_the_users_session_that_was_stopped_is_agent_error_or_deferred() {
        let stopped = || children::TimedOut {
            program: "the agent in the console user's session".into(),
            after: std::time::Duration::from_secs(54),
        };
        let ea = |expiry| Command::Ea {
            expiry,
            plan: false,
            check_network: false,
        };
        assert_eq!(
            reexec_timed_out(&ea(false), stopped()).unwrap(),
            "<result>Agent Error</result>"
        );
        assert_eq!(
            reexec_timed_out(&ea(true), stopped()).unwrap(),
            "<result></result>"
        );
        let status = Command::Status {
            json: true,
            check_network: false,
        };
        let e = reexec_timed_out(&status, stopped()).unwrap_err();
        assert_eq!(e.exit_code(), 75);
        assert!(e.to_string().contains("did not finish within 54 s"), "{e}");
    }
}
