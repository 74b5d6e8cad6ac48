//! `devicetrust plan [--json] [--check-network]` and `ea --plan`: the plan for an admin's
//! eyes, as one JSON document, or as the EA's one line. Exit 0 Ready, 1 Blocked, 75 deferred
//! (nobody at the console, a tool that did not finish), 2 a configuration that does not load.

use super::{deadline, finish, Failure, EXIT_FAILED, EXIT_OK};
use crate::agent::{Access, Agent, AgentError, Enrolled};
use crate::chain::plan::{Blocker, Plan, Step, Verdict};
use crate::config::Config;
use crate::host::Host;
use crate::platform::children;
use serde_json::{json, Value};

/// What was planned, and for whom.
pub struct Planned {
    pub user: String,
    pub store: String,
    pub plan: Plan,
}

/// Works out the plan with a read-only agent. A tool that hung and was stopped leaves the
/// plan incomplete: deferred, never a verdict.
pub fn planned(
    config: Result<Config, AgentError>,
    host: Box<dyn Host>,
    check_network: bool,
) -> Result<Planned, AgentError> {
    let mut agent = Agent::open(config?, host, Access::ReadOnly)?;
    let plan = agent.plan(check_network)?;
    if let Some(stopped) = children::stopped() {
        return Err(AgentError::TimedOut(stopped));
    }
    Ok(Planned {
        user: agent.user().to_owned(),
        store: agent.store_location(),
        plan,
    })
}

/// `devicetrust plan`.
pub fn run(
    config: Result<Config, AgentError>,
    host: Box<dyn Host>,
    json: bool,
    check_network: bool,
) -> i32 {
    let planned = match planned(config, host, check_network) {
        Ok(planned) => planned,
        Err(e) => return finish(Err(Failure::Agent(e)), json),
    };
    let verdict = planned.plan.verdict();
    let code = if verdict.is_ready() {
        EXIT_OK
    } else {
        EXIT_FAILED
    };
    deadline::answer(code, || {
        if json {
            println!("{}", plan_json(&planned, code));
        } else {
            print(&planned, &verdict);
        }
    })
}

/// `ea --plan`: the verdict's EA words in one `<result>` line, whatever happens. What cannot be
/// known now is `Agent Error` (as for `ea`); nobody at the console is `No User Session`.
pub fn ea_line(
    config: Result<Config, AgentError>,
    host: Box<dyn Host>,
    check_network: bool,
) -> String {
    match planned(config, host, check_network) {
        Ok(planned) => format!("<result>{}</result>", planned.plan.verdict().short()),
        Err(AgentError::NoUserSession) => {
            crate::report::ea_status(crate::health::HealthStatus::NoUserSession)
        }
        Err(AgentError::Config(e)) => {
            tracing::warn!("{e}");
            format!(
                "<result>{}</result>",
                Verdict::Blocked(Blocker::status(
                    crate::health::HealthStatus::NotConfigured,
                    e.to_string()
                ))
                .short()
            )
        }
        Err(e) => {
            tracing::warn!("{e}");
            crate::report::ea_agent_error(false)
        }
    }
}

fn print(planned: &Planned, verdict: &Verdict) {
    tracing::info!(
        "plan for {}: what `devicetrust enroll` would do here; nothing was changed",
        planned.user
    );
    if let Some(blocker) = &planned.plan.blocker {
        tracing::warn!("before any link: {blocker}");
    }
    for step in &planned.plan.steps {
        for line in step_lines(step) {
            tracing::info!("{line}");
        }
        if let Some(blocker) = &step.blocker {
            tracing::warn!("{}: afterwards still {blocker}", step.link);
        }
    }
    match &planned.plan.certificate {
        Some(why) => tracing::info!("a new certificate would be requested: {why}"),
        None => tracing::info!("no certificate would be requested"),
    }
    match verdict {
        Verdict::Ready { .. } => tracing::info!("{verdict}"),
        Verdict::Blocked(_) => tracing::warn!("{verdict}"),
    }
}

/// One step: its action line, then what it found.
fn step_lines(step: &Step) -> Vec<String> {
    let mut lines = vec![match &step.detail {
        Some(detail) => format!("{}: {}: {detail}", step.link, step.action),
        None => format!("{}: {}", step.link, step.action),
    }];
    lines.extend(step.found.iter().map(|f| format!("  found: {f}")));
    lines
}

fn blocker_json(blocker: Option<&Blocker>) -> Value {
    blocker.map_or(Value::Null, |b| json!({"kind": b.kind, "detail": b.detail}))
}

/// The plan as one document: `links` in chain order, each with `action` in the plan's words.
pub fn plan_json(planned: &Planned, exit_code: i32) -> Value {
    let plan = &planned.plan;
    let verdict = plan.verdict();
    let links: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| {
            json!({
                "link": s.link,
                "action": s.action.as_str(),
                "detail": s.detail,
                "found": s.found,
                "blocked": blocker_json(s.blocker.as_ref()),
            })
        })
        .collect();
    let (ready, certificates, blocked) = match &verdict {
        Verdict::Ready { certificates } => (true, Some(*certificates), None),
        Verdict::Blocked(b) => (false, None, Some(b)),
    };
    json!({
        "user": planned.user,
        "store": planned.store,
        "verdict": verdict.short(),
        "ready": ready,
        "certificates": certificates,
        "blocked": blocker_json(blocked),
        "certificate": {
            "requested": plan.certificate.is_some(),
            "why": plan.certificate,
        },
        "links": links,
        "error": null,
        "exit_code": exit_code,
    })
}

/// `enroll --json`: what was done, link by link, in the plan's words, beside what the plan
/// said beforehand.
pub fn enrolled_json(user: &str, enrolled: &Enrolled) -> Value {
    let actions: Vec<Value> = enrolled
        .taken
        .iter()
        .zip(&enrolled.plan.steps)
        .map(|(taken, step)| {
            json!({
                "link": taken.link,
                "action": taken.action.as_str(),
                "planned": step.action.as_str(),
                "changes": taken.changes,
            })
        })
        .collect();
    json!({
        "user": user,
        "planned": enrolled.plan.verdict().short(),
        "certificates": enrolled.certificates,
        "actions": actions,
        "error": null,
        "exit_code": EXIT_OK,
    })
}
