//! The device-trust key's partition list: which apps may use the key without a keychain prompt.
//!
//! The admin edits the spec's default list (add, remove, replace); `apple-tool:` always stays.
//! The desired list is authoritative for the key the agent owns, so `diff` also removes strays.

/// Okta Verify's TeamIdentifier. On the SCEP / FastPass path it signs the management
/// attestation with the device key, and picks a certificate only once it can use the key, so
/// it is on that path's default list.
pub const OKTA_VERIFY_TEAM: &str = "B7F62B65BN";

/// The apps the spec lets use the key by default, by TeamIdentifier.
pub const DEFAULT_TEAMS: [(&str, &str); 5] = [
    ("UBF8T346G9", "Microsoft"),
    ("EQHXZ8M8AV", "Google"),
    ("M683GB7CPW", "Box"),
    ("AL798K98FX", "Skype"),
    ("BQR82RBBHL", "Slack"),
];

pub use crate::partition::{
    parse_partition_list, partition_list_string, Partition, PartitionError,
};
use crate::record::Method;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error("{0} is both added to and removed from the allowlist; keep one")]
    Conflict(String),
    /// Apple's AllowAllAppsAccess cannot be honoured on a key in a file keychain: see
    /// [`AllowlistConfig::allow_all_apps`].
    #[error(
        "{0} = true cannot be honoured: the key already lets any app pass its access list \
         (what AllowAllAppsAccess sets), and macOS checks each app's partition ID against the \
         key's list besides, which has no value meaning every app. Name the apps instead with \
         allowlist.add = [\"teamid:XXXXXXXXXX\"] (`devicetrust teamid /Applications/App.app` \
         prints an app's ID; Okta Verify is on the SCEP path's list already), and set {0} to \
         false or remove it"
    )]
    AllowAllApps(&'static str),
}

/// The spec's default list of the Okta path, in its order.
pub fn defaults() -> Vec<Partition> {
    defaults_for(Method::Okta)
}

/// The default list of an enrollment path: the spec's, plus Okta Verify on the SCEP path.
pub fn defaults_for(method: Method) -> Vec<Partition> {
    let mut list = vec![Partition::AppleTool, Partition::Apple];
    list.extend(
        DEFAULT_TEAMS
            .iter()
            .map(|(id, _)| Partition::TeamId((*id).to_owned())),
    );
    if method == Method::Scep {
        list.push(Partition::TeamId(OKTA_VERIFY_TEAM.to_owned()));
    }
    list
}

/// The admin's edits to the default list (configuration keys of the same names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowlistConfig {
    /// Extra partition IDs, appended in this order.
    pub add: Vec<String>,
    /// IDs taken out (of the defaults or of `replace_defaults`).
    pub remove: Vec<String>,
    /// A list used instead of the spec's defaults.
    pub replace_defaults: Option<Vec<String>>,
    /// Apple's AllowAllAppsAccess, refused when true: in a file keychain "all apps" can only
    /// mean an access list entry with no application list, which the agent's key always has
    /// (as after `security import -A`). Whether an app may use the key without a prompt is
    /// then decided by the partition list alone: securityd (`acls.cpp`,
    /// `SecurityServerAcl::validatePartition`) requires the caller's own partition ID to be on
    /// it, with no wildcard, and offers to extend the list only through a dialog that asks for
    /// okta.keychain's password, which no user knows. So `true` could not do what an admin
    /// ticking it expects; the configuration is refused with what to do instead.
    pub allow_all_apps: bool,
}

fn parse_all(items: &[String]) -> Result<Vec<Partition>, AllowlistError> {
    items
        .iter()
        .map(|s| s.parse().map_err(AllowlistError::from))
        .collect()
}

impl AllowlistConfig {
    /// The Okta path's desired list (what the configuration loader checks).
    pub fn desired(&self) -> Result<Vec<Partition>, AllowlistError> {
        self.desired_for(Method::Okta)
    }

    /// The partition list the key of an enrollment by `method` should carry: base list (that
    /// path's defaults or the replacement) minus removals plus additions, without duplicates,
    /// `apple-tool:` first and always present.
    pub fn desired_for(&self, method: Method) -> Result<Vec<Partition>, AllowlistError> {
        if self.allow_all_apps {
            return Err(AllowlistError::AllowAllApps("allowlist.allow_all_apps"));
        }
        let base = match &self.replace_defaults {
            Some(list) => parse_all(list)?,
            None => defaults_for(method),
        };
        let add = parse_all(&self.add)?;
        let remove = parse_all(&self.remove)?;
        if let Some(both) = add.iter().find(|p| remove.contains(p)) {
            return Err(AllowlistError::Conflict(both.to_string()));
        }
        let mut list = vec![Partition::AppleTool];
        for p in base.into_iter().chain(add) {
            if !list.contains(&p) && !remove.contains(&p) {
                list.push(p);
            }
        }
        Ok(list)
    }

    /// Like `desired_for`, plus the running agent's own partition ID (`teamid:`, `cdhash:` or
    /// `unsigned:`, as securityd names it), which stays whatever the configuration removes:
    /// without it the agent could no longer sign renewal tokens with the key it created.
    pub fn desired_with(
        &self,
        method: Method,
        agent: &Partition,
    ) -> Result<Vec<Partition>, AllowlistError> {
        let mut list = self.desired_for(method)?;
        if !list.contains(agent) {
            list.push(agent.clone());
        }
        Ok(list)
    }

    /// What the run should say with a `WARN:` line: edits the agent refuses to make.
    pub fn warnings(&self) -> Vec<String> {
        let removes_tool = self
            .remove
            .iter()
            .any(|s| s.parse() == Ok(Partition::AppleTool));
        let replaced_without_tool = self
            .replace_defaults
            .as_ref()
            .is_some_and(|list| !list.iter().any(|s| s.parse() == Ok(Partition::AppleTool)));
        let mut warnings = Vec::new();
        if removes_tool || replaced_without_tool {
            warnings.push(
                "apple-tool: stays on the key's allowlist whatever the configuration says: \
                 Apple's security tools administer the key and would otherwise prompt the user"
                    .to_owned(),
            );
        }
        warnings
    }
}

/// The minimal edit from the key's current list to the desired one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowlistChange {
    /// Desired IDs the key lacks, in desired order.
    pub to_add: Vec<Partition>,
    /// IDs on the key that are not desired, in their current order.
    pub to_remove: Vec<Partition>,
}

impl AllowlistChange {
    pub fn is_empty(&self) -> bool {
        self.to_add.is_empty() && self.to_remove.is_empty()
    }
}

/// The desired list is authoritative: the agent created this key for device trust alone, so an
/// ID on it that the admin did not configure is access nobody decided to grant (an app the
/// admin removed, or one added by hand). `to_remove` therefore includes foreign IDs too.
pub fn diff(current: &[Partition], desired: &[Partition]) -> AllowlistChange {
    AllowlistChange {
        to_add: desired
            .iter()
            .filter(|p| !current.contains(p))
            .cloned()
            .collect(),
        to_remove: current
            .iter()
            .filter(|p| !desired.contains(p))
            .cloned()
            .collect(),
    }
}

/// The health link: every desired ID is on the key (extra IDs do not block access, so they do
/// not make the status `App Access Incomplete`; `repair` removes them).
pub fn is_complete(current: &[Partition], desired: &[Partition]) -> bool {
    desired.iter().all(|p| current.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_DEFAULT: &str = "apple-tool:,apple:,teamid:UBF8T346G9,teamid:EQHXZ8M8AV,\
                                teamid:M683GB7CPW,teamid:AL798K98FX,teamid:BQR82RBBHL";

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_are_the_spec_list() {
        assert_eq!(partition_list_string(&defaults()), SPEC_DEFAULT);
        let desired = AllowlistConfig::default().desired().unwrap();
        assert_eq!(partition_list_string(&desired), SPEC_DEFAULT);
        assert_eq!(parse_partition_list(SPEC_DEFAULT).unwrap(), desired);
    }

    #[test]
    fn edits_add_remove_in_stable_order_without_duplicates() {
        let config = AllowlistConfig {
            add: strings(&[
                "teamid:ABCDE12345",
                "teamid:UBF8T346G9",
                "teamid:ABCDE12345",
            ]),
            remove: strings(&["teamid:AL798K98FX", "teamid:ZZZZZ99999"]),
            ..Default::default()
        };
        assert_eq!(
            partition_list_string(&config.desired().unwrap()),
            "apple-tool:,apple:,teamid:UBF8T346G9,teamid:EQHXZ8M8AV,teamid:M683GB7CPW,\
             teamid:BQR82RBBHL,teamid:ABCDE12345"
        );
        let conflict = AllowlistConfig {
            add: strings(&["teamid:ABCDE12345"]),
            remove: strings(&["teamid:ABCDE12345"]),
            ..Default::default()
        };
        assert!(matches!(
            conflict.desired(),
            Err(AllowlistError::Conflict(_))
        ));
        let bad = AllowlistConfig {
            add: strings(&["teamid:abc"]),
            ..Default::default()
        };
        assert!(matches!(
            bad.desired(),
            Err(AllowlistError::Partition(PartitionError::BadTeamId(_)))
        ));
    }

    #[test]
    fn apple_tool_is_always_kept_with_a_warning() {
        let config = AllowlistConfig {
            remove: strings(&["apple-tool:", "apple:"]),
            ..Default::default()
        };
        let desired = config.desired().unwrap();
        assert_eq!(desired[0], Partition::AppleTool);
        assert!(!desired.contains(&Partition::Apple));
        assert_eq!(config.warnings().len(), 1);
        let replaced = AllowlistConfig {
            replace_defaults: Some(strings(&["teamid:ABCDE12345"])),
            ..Default::default()
        };
        assert_eq!(
            partition_list_string(&replaced.desired().unwrap()),
            "apple-tool:,teamid:ABCDE12345"
        );
        assert_eq!(replaced.warnings().len(), 1);
        assert!(AllowlistConfig::default().warnings().is_empty());
    }

    #[test]
    fn the_agents_own_partition_is_kept_whatever_is_removed() {
        for own in [
            Partition::TeamId("ABCDE12345".into()),
            Partition::cdhash("bdffcbeb8533f5d80c51f6285fd2ff15af9222a4"),
            Partition::unsigned(),
        ] {
            let removing = AllowlistConfig {
                remove: vec![own.to_string()],
                replace_defaults: Some(strings(&["apple:"])),
                ..Default::default()
            };
            for config in [AllowlistConfig::default(), removing] {
                for method in [Method::Okta, Method::Scep] {
                    let list = config.desired_with(method, &own).unwrap();
                    assert_eq!(list.last(), Some(&own), "{config:?}");
                    assert_eq!(list.iter().filter(|p| **p == own).count(), 1);
                }
            }
        }
    }

    #[test]
    fn okta_verify_is_on_the_scep_paths_default_list_only() {
        let verify = Partition::TeamId(OKTA_VERIFY_TEAM.into());
        let config = AllowlistConfig::default();
        let scep = config.desired_for(Method::Scep).unwrap();
        assert_eq!(
            partition_list_string(&scep),
            format!("{SPEC_DEFAULT},teamid:B7F62B65BN")
        );
        assert!(!config.desired_for(Method::Okta).unwrap().contains(&verify));
        // An admin may still take it out.
        let without = AllowlistConfig {
            remove: strings(&["teamid:B7F62B65BN"]),
            ..Default::default()
        };
        assert!(!without.desired_for(Method::Scep).unwrap().contains(&verify));
    }

    #[test]
    fn allow_all_apps_is_refused_with_what_to_do_instead() {
        let config = AllowlistConfig {
            allow_all_apps: true,
            ..Default::default()
        };
        for method in [Method::Okta, Method::Scep] {
            let err = config.desired_for(method).unwrap_err();
            assert_eq!(
                err,
                AllowlistError::AllowAllApps("allowlist.allow_all_apps")
            );
            let text = err.to_string();
            assert!(text.contains("allowlist.allow_all_apps = true cannot be honoured"));
            assert!(text.contains("allowlist.add"));
        }
        assert!(AllowlistConfig::default().desired().is_ok());
    }

    #[test]
    fn diff_is_minimal_and_authoritative() {
        let desired = AllowlistConfig::default().desired().unwrap();
        let current =
            parse_partition_list("apple-tool:,teamid:UBF8T346G9,teamid:QQQQQ11111").unwrap();
        let change = diff(&current, &desired);
        assert_eq!(
            partition_list_string(&change.to_add),
            "apple:,teamid:EQHXZ8M8AV,teamid:M683GB7CPW,teamid:AL798K98FX,teamid:BQR82RBBHL"
        );
        assert_eq!(
            change.to_remove,
            vec![Partition::TeamId("QQQQQ11111".into())]
        );
        assert!(diff(&desired, &desired).is_empty());
    }

    #[test]
    fn completeness_needs_every_desired_id_but_tolerates_extras() {
        let desired = AllowlistConfig::default().desired().unwrap();
        assert!(!is_complete(&desired[..desired.len() - 1], &desired));
        let mut more = desired.clone();
        more.push(Partition::TeamId("QQQQQ11111".into()));
        assert!(is_complete(&more, &desired));
    }
}
