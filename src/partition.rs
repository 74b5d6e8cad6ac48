//! Keychain partition IDs (`apple-tool:`, `apple:`, `teamid:XXXXXXXXXX`): the names macOS gives
//! the apps that may use a key without a prompt, as the allowlist, the store and `teamid` speak them.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error(
        "{0:?} is not a valid TeamIdentifier: it must be exactly 10 characters A-Z or 0-9 \
         (as `codesign -dv` prints it)"
    )]
    BadTeamId(String),
    #[error(
        "{0:?} is not a partition ID: expected apple-tool:, apple: or teamid:XXXXXXXXXX{hint}",
        hint = if looks_like_team_id(.0) { format!(" (did you mean teamid:{}?)", .0) } else { String::new() }
    )]
    BadPartition(String),
}

fn looks_like_team_id(s: &str) -> bool {
    s.len() == 10
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// One partition ID on the key's list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Partition {
    /// `apple-tool:`: Apple's command-line tools (`security`), through which the key is
    /// administered and inspected without prompts; the spec keeps it always.
    AppleTool,
    /// `apple:`: Apple-signed apps, Safari among them.
    Apple,
    /// `teamid:XXXXXXXXXX`: apps signed by one developer team.
    TeamId(String),
    /// Any other `kind:value` ID macOS may put there (`cdhash:…`, `unsigned:`), kept verbatim.
    Other(String),
}

impl Partition {
    /// `unsigned:`: what securityd calls a process without a code signature.
    pub fn unsigned() -> Partition {
        Partition::Other("unsigned:".to_owned())
    }

    /// `cdhash:<hex>`: ad-hoc-signed code, named by its code directory hash.
    pub fn cdhash(hex: &str) -> Partition {
        Partition::Other(format!("cdhash:{hex}"))
    }

    pub fn team_id(id: &str) -> Result<Partition, PartitionError> {
        if looks_like_team_id(id) {
            Ok(Partition::TeamId(id.to_owned()))
        } else {
            Err(PartitionError::BadTeamId(id.to_owned()))
        }
    }
}

impl FromStr for Partition {
    type Err = PartitionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "apple-tool:" => return Ok(Partition::AppleTool),
            "apple:" => return Ok(Partition::Apple),
            _ => {}
        }
        if let Some(id) = s.strip_prefix("teamid:") {
            return Partition::team_id(id);
        }
        // Commas separate IDs in `set-key-partition-list -S`, so one could never be inside one.
        let well_formed = s.split_once(':').is_some_and(|(kind, _)| !kind.is_empty())
            && !s.contains(',')
            && !s.chars().any(char::is_whitespace);
        if well_formed {
            Ok(Partition::Other(s.to_owned()))
        } else {
            Err(PartitionError::BadPartition(s.to_owned()))
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partition::AppleTool => f.write_str("apple-tool:"),
            Partition::Apple => f.write_str("apple:"),
            Partition::TeamId(id) => write!(f, "teamid:{id}"),
            Partition::Other(s) => f.write_str(s),
        }
    }
}

/// The comma form `security set-key-partition-list -S` takes.
pub fn partition_list_string(list: &[Partition]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses the comma form back (as read from the key's ACL); empty items are skipped.
pub fn parse_partition_list(text: &str) -> Result<Vec<Partition>, PartitionError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse_and_print_back() {
        for text in [
            "apple-tool:",
            "apple:",
            "teamid:UBF8T346G9",
            "cdhash:abc123",
            "unsigned:",
        ] {
            let p: Partition = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
        }
        assert_eq!("apple:".parse(), Ok(Partition::Apple));
        assert_eq!(
            "teamid:EQHXZ8M8AV".parse(),
            Ok(Partition::TeamId("EQHXZ8M8AV".into()))
        );
    }

    #[test]
    fn team_ids_are_validated_with_a_clear_error() {
        for bad in [
            "teamid:ubf8t346g9",
            "teamid:UBF8T346G",
            "teamid:UBF8T346G9X",
            "teamid:UBF8-346G9",
        ] {
            let err = bad.parse::<Partition>().unwrap_err();
            assert!(matches!(err, PartitionError::BadTeamId(_)), "{bad}");
            assert!(err.to_string().contains("exactly 10 characters"));
        }
        let err = "UBF8T346G9".parse::<Partition>().unwrap_err();
        assert!(
            err.to_string().contains("did you mean teamid:UBF8T346G9?"),
            "{err}"
        );
        assert!("no colon".parse::<Partition>().is_err());
        assert!("a:b,c".parse::<Partition>().is_err());
    }
}
