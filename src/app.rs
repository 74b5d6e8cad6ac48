//! The binary's body: parse the command line, run one command, map the outcome to an exit code.
//!
//! Every failure ends here as one `ERROR:` line and the exit code of cli.md.

use crate::agent::{Agent, AgentError, StatusReport};
use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use crate::health::HealthStatus;
use crate::output::{self, Channel};
use crate::{platform, report};
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
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    let machine_output = matches!(
        cli.command,
        Command::Ea { .. } | Command::Status { json: true, .. } | Command::Teamid { .. }
    );
    output::init(
        cli.global.verbose,
        if machine_output {
            Channel::Stderr
        } else {
            Channel::Stdout
        },
    );

    // Root (a Jamf policy) acts through the console user's own session; see platform::session.
    #[cfg(target_os = "macos")]
    if let Some(code) = as_console_user(&cli, args.get(1..).unwrap_or_default()) {
        return code;
    }
    #[cfg(not(target_os = "macos"))]
    let _ = &args;

    match &cli.command {
        Command::Version => {
            println!("devicetrust {}", env!("CARGO_PKG_VERSION"));
            return EXIT_OK;
        }
        Command::Teamid { path } => return teamid(path, cli.global.verbose),
        Command::Ea {
            expiry,
            check_network,
        } => {
            println!("{}", ea(&cli, *expiry, *check_network));
            return EXIT_OK;
        }
        #[cfg(feature = "sim")]
        Command::Demo => return finish(crate::demo::run().map_err(DemoOrAgent::Demo)),
        #[cfg(not(feature = "sim"))]
        Command::Demo => {
            fail("this build has no simulator (built without the `sim` feature)");
            return EXIT_USAGE;
        }
        _ => {}
    }

    let result = load_config(&cli).and_then(|config| {
        let mut agent = Agent::new(config, platform::current())?;
        match &cli.command {
            Command::Enroll => agent.enroll(),
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
                print_status(&report, *json);
                Ok(())
            }
            Command::Ea { .. } | Command::Version | Command::Demo | Command::Teamid { .. } => {
                Ok(())
            }
        }
    });
    finish(result.map_err(DemoOrAgent::Agent))
}

/// Re-executes as the console user when root runs a command of the user's session; `None`
/// means "run here". The child's exit code is ours.
#[cfg(target_os = "macos")]
fn as_console_user(cli: &Cli, args: &[std::ffi::OsString]) -> Option<i32> {
    use platform::session::{self, Decision};
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let decision = session::needs_reexec(
        euid,
        &cli.command,
        platform::current().console_user().as_deref(),
        cli.global.user.as_deref(),
    );
    match decision {
        Decision::RunHere => None,
        Decision::NoConsoleUser => Some(finish(Err(DemoOrAgent::Agent(AgentError::NoUserSession)))),
        Decision::Reexec { user } => {
            let config = load_config(cli).ok();
            match session::reexec(&user, args, config.as_ref(), &cli.command) {
                Ok(code) => Some(code),
                // The EA must still print its one line: fall back to checking from here.
                Err(e) if matches!(cli.command, Command::Ea { .. }) => {
                    tracing::warn!("{e}");
                    None
                }
                Err(e @ session::ReexecError::Secret(_)) => {
                    fail(&e.to_string());
                    Some(EXIT_USAGE)
                }
                Err(e) => {
                    fail(&e.to_string());
                    Some(EXIT_FAILED)
                }
            }
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, AgentError> {
    let env = config::process_env();
    // The user-scope profile is the one of the user we act for: --user, else the console user.
    let user = cli
        .global
        .user
        .clone()
        .or_else(|| platform::current().console_user());
    let root = config::root(&cli.global, &env);
    let managed = config::managed::load(&root, user.as_deref())?;
    Ok(config::load(&cli.global, &env, managed)?)
}

fn print_status(report: &StatusReport, json: bool) {
    if json {
        println!("{}", report::status_json(report));
    } else {
        for line in report::status_lines(report) {
            tracing::info!("{line}");
        }
    }
}

/// `devicetrust teamid`: stdout is the partition line (and, verbose, the identifier), so a
/// script can paste it into the allowlist; warnings go through the usual lines.
fn teamid(path: &std::path::Path, verbose: bool) -> i32 {
    match crate::codesign::team_identity(path) {
        Ok(id) => {
            if id.slices_differ {
                tracing::warn!(
                    "the {} slices of {} are signed differently; this is the first one's",
                    id.slices,
                    path.display()
                );
            }
            println!("{}", id.partition);
            if verbose {
                println!("identifier: {}", id.identifier);
            }
            EXIT_OK
        }
        Err(e) => {
            fail(&format!("{}: {e}", path.display()));
            EXIT_FAILED
        }
    }
}

/// The EA never fails: whatever goes wrong becomes the status that explains it.
fn ea(cli: &Cli, expiry: bool, check_network: bool) -> String {
    let report = match load_config(cli) {
        Err(e) => {
            tracing::warn!("{e}");
            StatusReport::without_user(HealthStatus::NotConfigured, None)
        }
        Ok(config) if !config.is_configured() => {
            StatusReport::without_user(HealthStatus::NotConfigured, Some(&config))
        }
        Ok(config)
            if check_network
                && crate::agent::org_reachable(&config, platform::current().as_ref())
                    == Some(false) =>
        {
            StatusReport::without_user(HealthStatus::OktaUnreachable, Some(&config))
        }
        Ok(config) => {
            let fallback = config.clone();
            match Agent::new(config, platform::current()).and_then(|a| a.status(false)) {
                Ok(report) => report,
                Err(AgentError::NoUserSession) => {
                    StatusReport::without_user(HealthStatus::NoUserSession, Some(&fallback))
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    StatusReport::without_user(HealthStatus::CertificateMissing, Some(&fallback))
                }
            }
        }
    };
    if expiry {
        report::ea_expiry(report.certificate.as_ref())
    } else {
        report::ea_status(report.status)
    }
}

enum DemoOrAgent {
    Agent(AgentError),
    #[cfg(feature = "sim")]
    Demo(crate::demo::DemoError),
}

fn finish(result: Result<(), DemoOrAgent>) -> i32 {
    match result {
        Ok(()) => EXIT_OK,
        // Nobody at the console is not a failure: a later trigger completes the job.
        Err(DemoOrAgent::Agent(e @ AgentError::NoUserSession)) => {
            println!("WARN: {e}");
            e.exit_code()
        }
        Err(DemoOrAgent::Agent(e)) => {
            fail(&e.to_string());
            e.exit_code()
        }
        #[cfg(feature = "sim")]
        Err(DemoOrAgent::Demo(e)) => {
            fail(&e.to_string());
            EXIT_FAILED
        }
    }
}

/// The one `ERROR:` line of a failed run (on stdout, where Jamf policy logs read it).
fn fail(message: &str) {
    println!("ERROR: {}", message.replace('\n', " "));
}
