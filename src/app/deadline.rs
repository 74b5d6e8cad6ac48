//! The upper bound of every command, and the one answer a command gives whatever happens first:
//! its own, or its deadline's.
//!
//! A run can hang where no timeout of its own reaches (a child in uninterruptible sleep, a file
//! read on a stuck network volume): a thread ends the process at the deadline, after killing
//! the children still running. The command's final output and the deadline's answer take the
//! same lock, so exactly one of them is printed: `ea` prints one `<result>` line, `status
//! --json` one JSON document, and every other command one `ERROR:` line.

use crate::agent::AgentError;
use crate::platform::children;
use crate::report;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// What the deadline prints when it comes before the command's own answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExpiry {
    /// `ea`: the line the shipped EA scripts print when the agent gives none, and exit 0.
    Ea { expiry: bool },
    /// `status --json`: one JSON document with the error, exit 75.
    Json,
    /// Everything else: one `ERROR:` line, exit 75.
    Line,
}

/// `Some(code)` once an answer was printed: the command's own, or the deadline's.
static ANSWERED: Mutex<Option<i32>> = Mutex::new(None);

/// Prints the command's answer with `print` and returns `code`, unless the deadline answered
/// first (then this never returns: the deadline is ending the process).
pub fn answer(code: i32, print: impl FnOnce()) -> i32 {
    let mut answered = ANSWERED.lock().unwrap_or_else(PoisonError::into_inner);
    if answered.is_none() {
        print();
        *answered = Some(code);
    }
    code
}

/// Starts the deadline of this run: no child runs past it ([`children::set_deadline`]), and at
/// `limit` the process prints `on_expiry`'s answer (naming `key`, the setting that sets the
/// limit) and exits, unless the command has answered by then.
pub fn start(limit: Duration, key: &'static str, on_expiry: OnExpiry) {
    children::set_deadline(limit);
    let spawned = std::thread::Builder::new()
        .name("run-deadline".into())
        .spawn(move || {
            std::thread::sleep(limit);
            expire(limit, key, on_expiry)
        });
    if let Err(e) = spawned {
        tracing::warn!("no run deadline: {e}");
    }
}

fn expire(limit: Duration, key: &'static str, on_expiry: OnExpiry) -> ! {
    let mut answered = ANSWERED.lock().unwrap_or_else(PoisonError::into_inner);
    children::stop_all();
    // The command answered and then did not end: end it with its own code.
    if let Some(code) = *answered {
        std::process::exit(code);
    }
    let e = AgentError::RunDeadline {
        secs: limit.as_secs(),
        key,
    };
    let message = e.to_string();
    let code = match on_expiry {
        OnExpiry::Ea { expiry } => {
            eprintln!("ERROR: {message}");
            println!("{}", report::ea_agent_error(expiry));
            0
        }
        OnExpiry::Json => {
            println!("{}", report::error_json(&message, e.exit_code()));
            e.exit_code()
        }
        OnExpiry::Line => {
            println!("ERROR: {message}");
            e.exit_code()
        }
    };
    *answered = Some(code);
    std::process::exit(code)
}
