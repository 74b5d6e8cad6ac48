//! The key's app allowlist (partition list): the apps that may use the key without a prompt.
//! It exists only where the store's key carries one (the keychain), so elsewhere it is skipped.

use super::plan::{Action, Blocker, Outlook, Step};
use super::{Context, Link, LinkError};
use crate::health::{HealthStatus, Observation};
use crate::integrations::allowlist::{self, partition_list_string};
use crate::partition::Partition;
use crate::store::{IdentityStore, StoreView};

pub struct AllowlistLink {
    /// How the running agent's own partition ID is worked out.
    own: fn() -> Result<Partition, String>,
}

impl AllowlistLink {
    /// The link for this process: its own partition ID read from its executable's signature
    /// as securityd derives it (`teamid:`, `cdhash:` for every ad-hoc local build, or
    /// `unsigned:`), so the agent keeps using the key it created (renewal tokens are signed
    /// with it).
    pub fn for_this_agent() -> AllowlistLink {
        AllowlistLink {
            own: || crate::codesign::own_partition().map_err(|e| e.to_string()),
        }
    }

    /// A link whose agent has the partition ID `own` returns (tests).
    pub fn with_own(own: fn() -> Result<Partition, String>) -> AllowlistLink {
        AllowlistLink { own }
    }

    /// The key's desired partition list for this enrollment's path, the agent's own partition
    /// included. Without the agent's own ID there is no list to write: any list would risk
    /// locking the agent out of its own key.
    fn desired(&self, cx: &Context<'_>) -> Result<Vec<Partition>, LinkError> {
        let own = (self.own)().map_err(|e| {
            LinkError::Platform(format!(
                "the agent's own partition ID cannot be worked out ({e}); the key's app \
                 allowlist is left as it is"
            ))
        })?;
        cx.config
            .allowlist
            .desired_with(cx.method(), &own)
            .map_err(|e| LinkError::Platform(format!("the configured app allowlist: {e}")))
    }
}

/// Whether every desired app is on the key's list (extra IDs do not block access), as far as
/// it can be seen without the keychain password: `Ok` when complete, else what is wrong;
/// `None` where the store keeps no list.
pub fn is_complete(store: &dyn StoreView, desired: &[Partition]) -> Option<Result<(), String>> {
    let wanted = || partition_list_string(desired);
    Some(match store.seen_partitions()? {
        Err(e) => Err(format!("the key's allowlist cannot be read: {e}")),
        // A locked keychain hides the key's access, and no run has recorded it yet.
        Ok(None) => Err(format!(
            "the key's allowlist cannot be read while okta.keychain is locked, and no run has \
             recorded it; `devicetrust repair` checks it for {}",
            wanted()
        )),
        Ok(Some(seen)) if allowlist::is_complete(&seen.list, desired) => Ok(()),
        Ok(Some(seen)) => Err(format!(
            "the key's allowlist lacks some of {}{}",
            wanted(),
            seen.recorded_at
                .map(|t| format!(" (as the run at {t} recorded it: okta.keychain is locked)"))
                .unwrap_or_default()
        )),
    })
}

/// Brings the key's list to `desired` (adding missing apps, removing strays); the change line,
/// or nothing when the list was right.
pub fn bring_to(
    store: &mut dyn IdentityStore,
    desired: &[Partition],
) -> Result<Option<String>, LinkError> {
    let Some(current) = store.partition_list() else {
        return Ok(None);
    };
    let change = allowlist::diff(&current?, desired);
    if change.is_empty() {
        return Ok(None);
    }
    if let Some(result) = store.set_partition_list(desired) {
        result?;
    }
    Ok(Some(format!(
        "key app allowlist set to {} (added: {}; removed: {})",
        partition_list_string(desired),
        or_none(&change.to_add),
        or_none(&change.to_remove),
    )))
}

fn or_none(list: &[Partition]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        partition_list_string(list)
    }
}

impl Link for AllowlistLink {
    fn name(&self) -> &'static str {
        "key app allowlist"
    }

    fn statuses(&self) -> &'static [HealthStatus] {
        &[HealthStatus::AppAccessIncomplete]
    }

    fn observe(&self, cx: &Context<'_>) -> Observation {
        // Working out the desired list reads the agent's own signature: only where it matters.
        if !cx.store.has_partition_list() || !cx.held.is_valid() {
            return Observation::NotApplicable;
        }
        let desired = match self.desired(cx) {
            Ok(d) => d,
            Err(e) => {
                return Observation::failing(HealthStatus::AppAccessIncomplete, e.to_string())
            }
        };
        match is_complete(&*cx.store, &desired) {
            Some(Ok(())) => Observation::Healthy,
            Some(Err(why)) => Observation::failing(HealthStatus::AppAccessIncomplete, why),
            None => Observation::NotApplicable,
        }
    }

    /// The list as far as it can be seen without the keychain password; `enroll` reads it
    /// with the password and completes it.
    fn survey(&self, cx: &Context<'_>, outlook: Outlook<'_>) -> Option<Step> {
        if !cx.store.has_partition_list() {
            return None;
        }
        let step = Step::new(self.name());
        if !outlook.valid() {
            return Some(step.found("left as it is while there is no valid identity"));
        }
        let desired = match self.desired(cx) {
            Ok(desired) => desired,
            Err(e) => {
                let why = e.to_string();
                return Some(
                    step.found(why.clone())
                        .blocked(Blocker::status(HealthStatus::AppAccessIncomplete, why)),
                );
            }
        };
        let wanted = partition_list_string(&desired);
        if let Outlook::New = outlook {
            return Some(step.act(
                Action::Create,
                format!("the new key's app allowlist is set to {wanted}"),
            ));
        }
        Some(match is_complete(&*cx.store, &desired) {
            Some(Ok(())) => step.found(format!("the key's app allowlist holds {wanted}")),
            Some(Err(why)) => step.found(why).act(
                Action::Replace,
                format!("the key's app allowlist is set to {wanted}"),
            ),
            None => step,
        })
    }

    fn apply(&self, cx: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        if !cx.store.has_partition_list() || !cx.held.is_valid() {
            return Ok(Vec::new());
        }
        let desired = self.desired(cx)?;
        Ok(bring_to(cx.store, &desired)?.into_iter().collect())
    }

    /// The list lives on the key, which goes with the identity.
    fn remove(&self, _: &mut Context<'_>) -> Result<Vec<String>, LinkError> {
        Ok(Vec::new())
    }
}
