//! The renewal job (daily at the device's minute and at login) and, on macOS 13+, the Login
//! Items switch a user can turn it off with. The files are the same everywhere; loading them
//! into a session is the host's [`JobControl`].

use super::plan::{Action, Blocker, Outlook, Step};
use super::{Context, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::integrations::schedule::{self, JobFiles, JobKind, RenewalJob};
use std::path::Path;
use std::rc::Rc;

/// What a service manager does with a job beyond its files.
pub trait JobControl {
    /// Loads (or reloads) `label` from `plist` into the user's session.
    fn load(&self, label: &str, plist: &Path) -> Result<(), LinkError>;
    /// Unloads `label`; returns whether it was loaded.
    fn unload(&self, label: &str) -> Result<bool, LinkError>;
    /// Whether `label` is loaded; `None` when nothing can tell (no service manager to ask).
    fn is_loaded(&self, label: &str) -> Option<bool>;
    /// The Login Items switch for `label`; `None` where there is none or it cannot be read.
    fn login_item_enabled(&self, label: &str) -> Option<bool>;
    /// Whether this very process is a run of `label` the service manager started: unloading
    /// `label` (launchd's `bootout`) would end it before it could load the job again.
    fn runs_inside(&self, _label: &str) -> bool {
        false
    }
    /// The program arguments the service manager has loaded for `label`; `None` when it is not
    /// loaded or that cannot be told.
    fn loaded_arguments(&self, _label: &str) -> Option<Vec<String>> {
        None
    }
}

/// What to do about loading the job after its files were installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Nothing: what is loaded is what is installed.
    No,
    /// Load (or reload) it now.
    Now,
    /// The definition changed under a run that the job itself is: reloading would kill this
    /// process mid-run and leave the job unloaded, so the reload is left to a run the service
    /// manager did not start (the Jamf policy, `repair`), which sees the loaded job is stale.
    Deferred,
}

/// Whether and when to (re)load the job: when its files just `changed`, when it is not
/// `loaded`, or when what is loaded is `stale` (an earlier run deferred the reload). A run
/// `inside` the job never unloads it; loading a job that is not loaded cannot end the caller.
pub fn reload_decision(changed: bool, loaded: Option<bool>, stale: bool, inside: bool) -> Reload {
    if loaded == Some(false) {
        return Reload::Now;
    }
    if !(changed || stale) {
        return Reload::No;
    }
    if inside {
        Reload::Deferred
    } else {
        Reload::Now
    }
}

/// A host whose jobs are files only: systemd picks the timer up at the next login through its
/// `timers.target.wants` link, and a sandbox root must not touch the real service manager.
pub struct FilesOnly;

impl JobControl for FilesOnly {
    fn load(&self, _: &str, _: &Path) -> Result<(), LinkError> {
        Ok(())
    }
    fn unload(&self, _: &str) -> Result<bool, LinkError> {
        Ok(false)
    }
    fn is_loaded(&self, _: &str) -> Option<bool> {
        None
    }
    fn login_item_enabled(&self, _: &str) -> Option<bool> {
        None
    }
}

pub struct JobLink {
    pub control: Rc<dyn JobControl>,
}

impl JobLink {
    fn kind(cx: &Context<'_>) -> JobKind {
        JobKind::for_layout(cx.home.layout)
    }

    /// The job as the scheduler will run it: this binary, `renew` and the enrollment's options.
    pub fn job(cx: &Context<'_>) -> RenewalJob {
        let mut job = RenewalJob::new(&cx.home.home, cx.policy.minute_of_day);
        job.program = cx.program.clone();
        job.options = cx.config.job_args(cx.record);
        job
    }

    /// On macOS the package installs one LaunchAgent for all users; a per-user job of the same
    /// label would be shadowed by it (launchd loads one job per label in a domain).
    fn package_job(cx: &Context<'_>) -> bool {
        Self::kind(cx) == JobKind::LaunchAgent && schedule::package_job_present(&cx.home.root)
    }

    fn plist(cx: &Context<'_>) -> std::path::PathBuf {
        if Self::package_job(cx) {
            schedule::package_launch_agent_path(&cx.home.root)
        } else {
            schedule::launch_agent_path(cx.home)
        }
    }
}

impl Link for JobLink {
    fn name(&self) -> &'static str {
        "renewal job"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::RenewalJobMissing]
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        let job = Self::job(cx);
        let files = Self::package_job(cx) || schedule::is_installed(cx.home, &job, Self::kind(cx));
        if !files {
            return Observation::failing(
                HealthStatus::RenewalJobMissing,
                "the renewal job is not installed, or does not run this agent's renew",
            );
        }
        // Unknown counts as loaded: a launchctl that cannot run is no evidence against the job.
        if self.control.is_loaded(schedule::LABEL) == Some(false) {
            return Observation::failing(
                HealthStatus::RenewalJobMissing,
                format!("{} is installed but not loaded", schedule::LABEL),
            );
        }
        Observation::Healthy
    }

    /// The job's files against what `install` would write, and whether launchd has it.
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step> {
        let step = Step::new(self.name());
        let launch_agent = Self::kind(cx) == JobKind::LaunchAgent;
        let loaded = if launch_agent {
            self.control.is_loaded(schedule::LABEL)
        } else {
            None
        };
        let loaded_line = match loaded {
            Some(true) => Some(format!("{} is loaded", schedule::LABEL)),
            Some(false) => Some(format!("{} is not loaded", schedule::LABEL)),
            None => None,
        };
        let (step, files) = if Self::package_job(cx) {
            let path = schedule::package_launch_agent_path(&cx.home.root);
            let found = format!(
                "the package's LaunchAgent {} runs renew for every user",
                path.display()
            );
            (step.found(found), JobFiles::Current)
        } else {
            let job = Self::job(cx);
            let files = schedule::files(cx.home, &job, Self::kind(cx));
            let found = match files {
                JobFiles::Absent => "the renewal job is not installed".to_owned(),
                JobFiles::Current => format!(
                    "the renewal job is installed as it would be written (daily at {:02}:{:02} \
                     and at login)",
                    job.hour(),
                    job.minute()
                ),
                JobFiles::Differs => {
                    "the renewal job's files differ from what enroll writes".to_owned()
                }
            };
            (step.found(found), files)
        };
        let step = loaded_line.into_iter().fold(step, Step::found);
        if !outlook.valid() {
            return Some(step);
        }
        if let Err(e) = self.preflight(cx) {
            return Some(step.blocked(Blocker::new(Blocker::PREFLIGHT, e.to_string())));
        }
        Some(match (files, loaded) {
            (JobFiles::Absent, _) => step.act(Action::Create, "the renewal job is installed"),
            (JobFiles::Differs, _) => step.act(Action::Replace, "the renewal job is rewritten"),
            (JobFiles::Current, Some(false)) => step.act(
                Action::Create,
                format!("{} is loaded into launchd", schedule::LABEL),
            ),
            // What launchd runs is not what the file says (an earlier run deferred a reload).
            (JobFiles::Current, Some(true))
                if !Self::package_job(cx)
                    && self
                        .control
                        .loaded_arguments(schedule::LABEL)
                        .zip(Self::job(cx).args().ok())
                        .is_some_and(|(loaded, wanted)| loaded != wanted) =>
            {
                step.act(
                    Action::Replace,
                    format!("{} is reloaded with its current arguments", schedule::LABEL),
                )
            }
            (JobFiles::Current, _) => step,
        })
    }

    fn preflight(&self, cx: &Context<'_>) -> Result<(), LinkError> {
        if !Self::package_job(cx) {
            schedule::check_places(cx.home, Self::kind(cx))?;
        }
        Ok(())
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let mut changes = Vec::new();
        let changed = if Self::package_job(cx) {
            false
        } else {
            let job = Self::job(cx);
            let installed = schedule::install(cx.home, &job, Self::kind(cx))?;
            if installed.changed {
                changes.push(format!(
                    "renewal job installed (daily at {:02}:{:02} and at login)",
                    job.hour(),
                    job.minute()
                ));
            }
            installed.changed
        };
        // The plist is there: the package's was found above, or ours was just installed.
        if Self::kind(cx) == JobKind::LaunchAgent {
            let plist = Self::plist(cx);
            // Only our own plist's arguments are ours to compare.
            let stale = !Self::package_job(cx)
                && match (
                    self.control.loaded_arguments(schedule::LABEL),
                    Self::job(cx).args(),
                ) {
                    (Some(loaded), Ok(wanted)) => loaded != wanted,
                    _ => false,
                };
            let decision = reload_decision(
                changed,
                self.control.is_loaded(schedule::LABEL),
                stale,
                self.control.runs_inside(schedule::LABEL),
            );
            match decision {
                Reload::No => {}
                Reload::Now => {
                    self.control.load(schedule::LABEL, &plist)?;
                    if self.control.is_loaded(schedule::LABEL).is_some() {
                        changes.push(format!("renewal job {} loaded", schedule::LABEL));
                    }
                }
                Reload::Deferred => changes.push(format!(
                    "renewal job {} rewritten; launchd started this run, so the next run it \
                     did not start (the Jamf policy, `devicetrust repair`) or the next login \
                     loads it",
                    schedule::LABEL
                )),
            }
        }
        Ok(changes)
    }

    fn remove(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        let mut removed = Vec::new();
        // Unloaded before its plist goes, or launchd keeps running a job with no file.
        if self.control.unload(schedule::LABEL)? {
            removed.push(format!("unloaded {}", schedule::LABEL));
        }
        for path in schedule::remove(cx.home, Self::kind(cx))? {
            removed.push(format!("removed {}", path.display()));
        }
        Ok(removed)
    }
}

/// The Login Items switch (macOS 13+): observed only; the fix is a Managed Login Items profile.
pub struct BackgroundTaskLink {
    pub control: Rc<dyn JobControl>,
}

impl Link for BackgroundTaskLink {
    fn name(&self) -> &'static str {
        "background task"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::BackgroundTaskDisabled]
    }

    /// Only the user switches it back on (or a Managed Login Items profile): a blocker.
    fn survey(&self, _: &Context<'_>, _: Outlook<'_>) -> Option<Step> {
        let step = Step::new(self.name());
        match self.control.login_item_enabled(schedule::LABEL)? {
            true => Some(step.found("the renewal job is on in Login Items")),
            false => Some(
                step.found("the renewal job is switched off in Login Items")
                    .blocked(Blocker::status(
                        HealthStatus::BackgroundTaskDisabled,
                        "the renewal job is switched off in System Settings > General > Login \
                         Items, which enroll cannot change; a Managed Login Items profile can",
                    )),
            ),
        }
    }

    fn observe(&self, _: &Context<'_>) -> Observation {
        match self.control.login_item_enabled(schedule::LABEL) {
            Some(false) => Observation::failing(
                HealthStatus::BackgroundTaskDisabled,
                "the renewal job is switched off in System Settings > General > Login Items",
            ),
            Some(true) => Observation::Healthy,
            None => Observation::NotApplicable,
        }
    }

    fn apply(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(Vec::new())
    }

    fn remove(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(Vec::new())
    }
}
