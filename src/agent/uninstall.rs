//! `devicetrust uninstall [--reenroll]`: the chain removed in reverse (Okta's task, the job,
//! browser entries, Safari preferences, then the identity), then the record; with `--reenroll`
//! a fresh enrollment, for the revoke-and-re-enroll flow.

use super::enroll::Enrollment;
use super::{Agent, AgentError};
use crate::chain::{Held, Superseded};
use time::OffsetDateTime;
use tracing::info;

impl Agent {
    pub fn uninstall(&mut self, reenroll: bool) -> Result<(), AgentError> {
        // Read the token before removing anything: a re-enrollment that cannot happen must not
        // leave the device without its identity.
        let token = match (reenroll, self.enrollment()) {
            (false, _) => None,
            (true, Err(e)) => return Err(e),
            (true, Ok(Enrollment::Okta(_))) => Some(self.config.org_token()?),
            (true, Ok(Enrollment::Scep(_))) => None,
        };
        let lock = self.lock()?;
        // A store that cannot be read still has links to remove; they work from the record.
        let held = self
            .held(OffsetDateTime::now_utc())
            .unwrap_or(Held::Nothing);
        let failed = self.with_chain(&held, Superseded::default(), |chain, cx| chain.remove(cx));
        let mut failed = failed.into_iter();
        if let Some((name, first)) = failed.next() {
            // The record stays: the next uninstall still knows what to look for.
            let mut left = vec![name];
            left.extend(failed.map(|(name, _)| name));
            return Err(AgentError::UninstallIncomplete { left, first });
        }
        if self.root_run && self.device_file.remove()? {
            info!("removed {}", self.device_file.path().display());
        }
        if self.record_file.remove()? {
            info!("removed {}", self.record_file.path().display());
        }
        self.record = Default::default();
        if let Some(token) = token {
            let result = self.enroll_locked(Some(token)).map(drop);
            drop(lock);
            return result;
        }
        drop(lock);
        // The lock file, then the state folder if nothing else is left in it; best effort, as
        // another run may be starting.
        let state = self.home.state_place();
        if let Ok(Some(dir)) = state.open() {
            let _ = dir.remove_file(crate::paths::LOCK_FILE);
        }
        let _ = state.remove_if_empty();
        Ok(())
    }
}
