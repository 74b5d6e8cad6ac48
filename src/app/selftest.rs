//! `devicetrust selftest [--json]`: the host's checks, printed one line each (or as one JSON
//! document), exit 1 when any failed.

use super::EXIT_FAILED;
use crate::agent::{Agent, AgentError};
use crate::config::Config;
use crate::host::Host;
use crate::selftest::Report;

pub fn run(config: Result<Config, AgentError>, host: Box<dyn Host>, json: bool) -> i32 {
    let report = config.and_then(|config| Agent::new(config, host)?.selftest());
    match report {
        Ok(report) => {
            if json {
                println!("{}", report.json());
            } else {
                print(&report);
            }
            report.exit_code()
        }
        Err(e) => {
            let code = e.exit_code().max(EXIT_FAILED);
            if json {
                println!("{}", crate::report::error_json(&e.to_string(), code));
            } else {
                super::fail(&e.to_string());
            }
            code
        }
    }
}

fn print(report: &Report) {
    for line in report.lines() {
        println!("{}", crate::output::one_line(&line));
    }
    use crate::selftest::Outcome;
    tracing::info!(
        "selftest: {} passed, {} failed, {} skipped",
        report.count(Outcome::Pass),
        report.count(Outcome::Fail),
        report.count(Outcome::Skip)
    );
}
