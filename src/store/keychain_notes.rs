//! What the keychain store keeps for the runs that may not read the keychain password (`status`,
//! `ea`): what the last run that needed the password found, and the key's partition list as the
//! last run that read it saw it. A small JSON file in the user's state folder, written by the
//! store, read by its view; a damaged or foreign one reads as empty.
//!
//! The key's access can be read only from an unlocked keychain: securityd decodes a key's blob,
//! ACL included, before it hands out the ACL (`kckey.cpp`, `KeychainKey::instantiateAcl` →
//! `KeychainDatabase::decodeKey`, which calls `makeUnlocked`). So on a locked okta.keychain the
//! view answers from here, and says so.

use super::{PasswordItemState, SeenPartitions};
use crate::partition::Partition;
use serde::{Deserialize, Serialize};

/// The file's name in the state folder.
pub const NOTES_FILE: &str = "keychain-notes.json";
/// A notes file larger than this was not written by the agent.
pub const NOTES_MAX: u64 = 16 * 1024;

/// What the last run that needed the password found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordFound {
    /// Read, and it opened okta.keychain (or there was none to open).
    Readable,
    /// The item did not answer in time, or was refused.
    Unreadable,
    /// Read, and securityd refused it for okta.keychain.
    Wrong,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordNote {
    /// RFC 3339.
    pub time: String,
    pub found: PasswordFound,
    /// Why, for `status`: never the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionsNote {
    /// RFC 3339.
    pub time: String,
    /// The key's application label (SHA-1 of its public key), hex: the note is about that key
    /// only, so a renewed key is not taken for the old one.
    pub key_label: String,
    pub list: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordNote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<PartitionsNote>,
}

impl Notes {
    /// The notes in `bytes`; anything that does not parse is no notes at all.
    pub fn parse(bytes: &[u8]) -> Notes {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings always serialises; an empty file would read back as no notes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The password item as the health check shows it: `present` from its attributes, the rest
    /// from the last run that needed it.
    pub fn password_state(&self, present: bool) -> PasswordItemState {
        if !present {
            return PasswordItemState::Missing;
        }
        match self.password.as_ref().map(|n| n.found) {
            Some(PasswordFound::Unreadable) => PasswordItemState::Unreadable,
            Some(PasswordFound::Wrong) => PasswordItemState::Wrong,
            Some(PasswordFound::Readable) | None => PasswordItemState::Readable,
        }
    }

    /// Why the last run could not use the password, for `status`.
    pub fn password_detail(&self) -> Option<String> {
        let note = self.password.as_ref()?;
        let why = note.detail.as_deref().unwrap_or("no detail recorded");
        match note.found {
            PasswordFound::Readable => None,
            PasswordFound::Unreadable => Some(format!(
                "the run at {} could not read the device_trust password item: {why}",
                note.time
            )),
            PasswordFound::Wrong => Some(format!(
                "the run at {} found that the device_trust password does not open \
                 okta.keychain: {why}",
                note.time
            )),
        }
    }

    /// The recorded partition list of the key labelled `key_label`, if that is the key the
    /// last reading run saw.
    pub fn partitions_of(&self, key_label: &[u8]) -> Option<SeenPartitions> {
        let note = self.partitions.as_ref()?;
        if note.key_label != crate::fsutil::hex(key_label) {
            return None;
        }
        let list = note
            .list
            .iter()
            .map(|p| p.parse::<Partition>())
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(SeenPartitions {
            list,
            recorded_at: Some(note.time.clone()),
        })
    }

    /// These notes with what a run that needed the password found at `time`.
    pub fn with_password(
        self,
        found: PasswordFound,
        detail: Option<String>,
        time: String,
    ) -> Notes {
        Notes {
            password: Some(PasswordNote {
                time,
                found,
                detail,
            }),
            ..self
        }
    }

    /// These notes with the partition list read (or written) at `time` for the key labelled
    /// `key_label`.
    pub fn with_partitions(self, key_label: &[u8], list: &[Partition], time: String) -> Notes {
        Notes {
            partitions: Some(PartitionsNote {
                time,
                key_label: crate::fsutil::hex(key_label),
                list: list.iter().map(ToString::to_string).collect(),
            }),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-01-02T03:04:05Z";

    #[test]
    fn the_item_shows_unreadable_only_after_a_run_could_not_read_it() {
        let none = Notes::default();
        assert_eq!(none.password_state(true), PasswordItemState::Readable);
        assert_eq!(none.password_state(false), PasswordItemState::Missing);
        let unread = none.clone().with_password(
            PasswordFound::Unreadable,
            Some("security did not answer within 30 s".into()),
            T.into(),
        );
        assert_eq!(unread.password_state(true), PasswordItemState::Unreadable);
        // Gone is gone, whatever was recorded.
        assert_eq!(unread.password_state(false), PasswordItemState::Missing);
        let detail = unread.password_detail().unwrap();
        assert!(detail.contains(T) && detail.contains("30 s"), "{detail}");
        let wrong = unread.with_password(PasswordFound::Wrong, None, T.into());
        assert_eq!(wrong.password_state(true), PasswordItemState::Wrong);
        let read = wrong.with_password(PasswordFound::Readable, None, T.into());
        assert_eq!(read.password_state(true), PasswordItemState::Readable);
        assert_eq!(read.password_detail(), None);
    }

    #[test]
    fn a_recorded_list_answers_only_for_the_key_it_was_read_from() {
        let list = vec![Partition::AppleTool, Partition::TeamId("EQHXZ8M8AV".into())];
        let notes = Notes::default().with_partitions(&[0xab, 0x01], &list, T.into());
        let back = Notes::parse(&notes.to_json());
        assert_eq!(
            back.partitions_of(&[0xab, 0x01]),
            Some(SeenPartitions {
                list,
                recorded_at: Some(T.into())
            })
        );
        assert_eq!(back.partitions_of(&[0xab, 0x02]), None);
    }

    #[test]
    fn damaged_notes_are_no_notes() {
        assert_eq!(Notes::parse(b"{not json"), Notes::default());
        assert_eq!(Notes::parse(b""), Notes::default());
        // A list with something that is no partition ID answers nothing rather than a guess.
        let mut notes = Notes::default().with_partitions(&[1], &[Partition::Apple], T.into());
        if let Some(p) = notes.partitions.as_mut() {
            p.list.push("bogus".into());
        }
        assert_eq!(notes.partitions_of(&[1]), None);
    }
}
