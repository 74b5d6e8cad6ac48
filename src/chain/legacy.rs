//! Okta's Python "Device Registration Task": retired once this agent holds a valid identity,
//! removed at uninstall. It maps to no status; it is in the chain so that every workflow
//! treats it the way it treats the agent's own artifacts.
//!
//! Its okta.keychain is the store the macOS keychain backend uses, so an identity it enrolled
//! is adopted (sparing one of the user's five Okta certificates); only its LaunchAgent and
//! script folder go, and only after our identity is valid, so a failed takeover never leaves
//! the device with neither.

use super::job::JobControl;
use super::plan::{Action, Outlook, Step};
use super::{Context, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::migration;
use std::rc::Rc;
use tracing::info;

pub struct LegacyTaskLink {
    pub control: Rc<dyn JobControl>,
}

impl LegacyTaskLink {
    /// Boots the task's job out of launchd, then deletes its files.
    fn retire(
        &self,
        cx: &Context<'_>,
        install: &migration::PythonTaskInstall,
        plan: &migration::MigrationPlan,
    ) -> Result<Vec<String>, LinkError> {
        let mut done = Vec::new();
        if let Some(label) = &plan.bootout_label {
            if self.control.unload(label)? {
                done.push(format!(
                    "unloaded {label} (Okta's Python registration task)"
                ));
            }
        }
        for path in &plan.remove {
            let removed = if install.script_dir.as_ref() == Some(path) {
                migration::remove_folder(cx.home, path)?
            } else {
                migration::remove_file(cx.home, path)?
            };
            if removed {
                done.push(format!(
                    "removed {} (Okta's Python registration task)",
                    path.display()
                ));
            }
        }
        Ok(done)
    }
}

impl Link for LegacyTaskLink {
    fn name(&self) -> &'static str {
        "Okta's Python task"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[]
    }

    fn observe(&self, _: &Context<'_>) -> Observation {
        Observation::NotApplicable
    }

    /// What the task left, and its retirement once a valid identity is stored.
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step> {
        let install = migration::detect(cx.home);
        let step = Step::new(self.name());
        if install.is_empty() {
            return Some(step.found("no trace of Okta's Python Device Registration Task"));
        }
        let mut step = step;
        if let Some(path) = &install.launch_agent {
            let label = install.launch_agent_label.as_deref().unwrap_or_default();
            step = step.found(format!("its LaunchAgent {} ({label})", path.display()));
        }
        if let Some(path) = &install.script_dir {
            let version = install
                .version
                .as_deref()
                .map(|v| format!(", version {v}"))
                .unwrap_or_default();
            step = step.found(format!("its script folder {}{version}", path.display()));
        }
        if let Some(path) = &install.keychain {
            step = step.found(format!(
                "its okta.keychain {} (never removed here: on a Mac it is this agent's store)",
                path.display()
            ));
        }
        if !outlook.valid() {
            return Some(step);
        }
        let plan = migration::plan(&install, true);
        if plan.remove.is_empty() {
            return Some(step);
        }
        let what: Vec<String> = plan
            .remove
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        Some(step.act(
            Action::Remove,
            format!(
                "{}removes {} once the identity is valid",
                plan.bootout_label
                    .map(|label| format!("unloads {label}, then "))
                    .unwrap_or_default(),
                what.join(" and ")
            ),
        ))
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let install = migration::detect(cx.home);
        if install.is_empty() {
            return Ok(Vec::new());
        }
        let plan = migration::plan(&install, cx.held.is_valid());
        for note in &plan.notes {
            info!("{note}");
        }
        self.retire(cx, &install, &plan)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let install = migration::detect(cx.home);
        // Everything of the task but its keychain, which the identity link removes.
        let plan = migration::plan(&install, true);
        self.retire(cx, &install, &plan)
    }
}
