//! The verdicts of a Mac's keychain checks: each PASS or FAIL judged from what was measured
//! (`store::keychain_trial`), the measurement itself the evidence. Plain functions, so tests
//! on every platform drive them with made-up measurements.

use super::{Outcome, Report};
use crate::partition::partition_list_string;
use crate::store::keychain_items as items;
use crate::store::keychain_model::{ItemSeen, PasswordProof};
use crate::store::keychain_trial::{PasswordRead, RealState, Seen, Trial, Tried, WrongPassword};
use std::time::Duration;

/// A `security` read slower than this waited for something: a dialog someone answered, or a
/// stuck securityd. Either way the daily job would not have had it.
pub const SLOW_READ: Duration = Duration::from_secs(5);

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The checks of the throwaway keychain, in the order they ran.
pub fn throwaway_checks(trial: &Trial, report: &mut Report) {
    report.result(
        "throwaway keychain made by ensure()",
        trial.created.as_ref().map_err(Clone::clone).map(|path| {
            format!(
                "{}: no keychain and no password item, so the store wrote the item first, then \
                 created the keychain",
                path.display()
            )
        }),
    );
    report.result(
        "user interaction off",
        interaction(&trial.interaction_allowed),
    );
    report.result(
        "password item read without a dialog",
        password_read(&trial.password_read),
    );
    report.result(
        "key generated non-extractable",
        trial
            .key
            .clone()
            .and_then(|k| match (k.bits, k.extractable) {
                (Some(2048), Some(false)) => Ok(
                    "RSA 2048 in the keychain; SecKeyCopyAttributes reports kSecAttrIsExtractable \
                 false"
                        .to_owned(),
                ),
                (bits, extractable) => Err(format!(
                "SecKeyCopyAttributes reports {bits:?} bits, kSecAttrIsExtractable {extractable:?}"
            )),
            }),
    );
    report.result(
        "partition securityd gives this binary",
        own_partition(trial),
    );
    report.result(
        "export refused",
        match &trial.export {
            Ok(None) => {
                Ok("SecKeyCopyExternalRepresentation returned no data for the private key".into())
            }
            Ok(Some(len)) => Err(format!("the private key was exported ({len} bytes)")),
            Err(e) => Err(e.clone()),
        },
    );
    report.result(
        "access: any app, no prompt",
        trial.decrypt_entries.clone().and_then(|seen| {
            if items::opens_to_any_app(&seen) {
                Ok(format!(
                    "{} decrypt entr(ies), application list NULL, prompt selector {:#06x}",
                    seen.len(),
                    seen.first().map_or(0, |e| e.1)
                ))
            } else {
                Err(format!("decrypt entries (any app, prompt): {seen:?}"))
            }
        }),
    );
    report.result(
        "partition list as written",
        trial
            .partitions_written
            .clone()
            .and_then(|(written, read)| {
                if read == written {
                    Ok(format!(
                        "wrote {} with the keychain password; securityd returns {}",
                        partition_list_string(&written),
                        partition_list_string(&read)
                    ))
                } else {
                    Err(format!(
                        "wrote {}, securityd returns {}",
                        partition_list_string(&written),
                        partition_list_string(&read)
                    ))
                }
            }),
    );
    report.result(
        "identity",
        trial.identity.clone().map(|serial| {
            format!(
                "certificate {serial}, stored through the store's replace(), forms a SecIdentity \
                 with the key"
            )
        }),
    );
    report.result(
        "signature without user interaction",
        trial.signature.clone().map(|len| {
            format!(
                "RSA PKCS#1 v1.5 SHA-256 signature of {len} bytes, made with user interaction \
                 off, verified with the certificate's key"
            )
        }),
    );
    report.result(
        "locked keychain read without its password",
        trial.locked_read.clone().and_then(|r| {
            let seen = format!(
                "locked before: {}; certificate found: {}; its key found: {}; locked after: {}; \
                 read by attributes in {}",
                r.locked_before,
                r.certificate_found,
                r.key_found,
                r.locked_after,
                ms(r.elapsed)
            );
            if r.locked_before && r.certificate_found && r.key_found && r.locked_after {
                Ok(seen)
            } else {
                Err(seen)
            }
        }),
    );
    report.result(
        "wrong password refused",
        trial
            .wrong_password
            .clone()
            .and_then(|w| wrong_password(&w)),
    );
    report.result(
        "no set-aside while the password is unreadable",
        trial.unreadable.clone().and_then(|u| {
            let seen = format!(
                "the item seen as {:?}; the store answered: {}; okta.keychain kept: {}; item \
                 kept: {}; set-aside copies: {}",
                u.item, u.answer, u.keychain_kept, u.item_kept, u.asides
            );
            let unreadable = matches!(u.item, ItemSeen::Refused | ItemSeen::TimedOut);
            if unreadable && u.deferred && u.keychain_kept && u.item_kept && u.asides == 0 {
                Ok(seen)
            } else {
                Err(seen)
            }
        }),
    );
    preferences(trial, report);
    for problem in &trial.cleanup {
        report.add("throwaway removed", Outcome::Fail, problem.clone());
    }
}

fn interaction(allowed: &Seen<bool>) -> Result<String, String> {
    match allowed {
        Ok(false) => Ok(
            "SecKeychainGetUserInteractionAllowed answers false in this process (a `security` \
             child has its own flag)"
                .into(),
        ),
        Ok(true) => Err(
            "SecKeychainGetUserInteractionAllowed answers true: a keychain call \
                         could show a dialog"
                .into(),
        ),
        Err(e) => Err(e.clone()),
    }
}

fn password_read(read: &Seen<PasswordRead>) -> Result<String, String> {
    let read = read.as_ref().map_err(Clone::clone)?;
    let how = if read.through_tool {
        "through /usr/bin/security (the item admits any app without a prompt)"
    } else {
        "in this process (our partition is on the item's list)"
    };
    let seen = format!("read {how} in {}", ms(read.elapsed));
    if read.elapsed > SLOW_READ {
        Err(format!(
            "{seen}: longer than {} s, so it waited for something (a dialog, a stuck securityd)",
            SLOW_READ.as_secs()
        ))
    } else {
        Ok(seen)
    }
}

/// securityd names a key's creator on its new partition list: that is what securityd calls
/// this binary, which must be what the agent derives from its own signature.
fn own_partition(trial: &Trial) -> Result<String, String> {
    let given = trial.creator_partitions.as_ref().map_err(Clone::clone)?;
    let derived = trial
        .own_partition
        .as_ref()
        .map_err(|e| format!("securityd gave {}; {e}", partition_list_string(given)))?;
    let seen = format!(
        "securityd put [{}] on the new key; the agent derives {derived} from its own signature",
        partition_list_string(given)
    );
    if given.as_slice() == std::slice::from_ref(derived) {
        Ok(seen)
    } else {
        Err(seen)
    }
}

fn tried(t: &Tried) -> String {
    format!("{:?} ({})", t.proof, t.answer)
}

fn wrong_password(w: &WrongPassword) -> Result<String, String> {
    let seen = format!(
        "a wrong password against the locked keychain: {}; against the unlocked keychain \
         (its key's access rewritten unchanged): {}; the right one against the unlocked \
         keychain: {}",
        tried(&w.wrong_while_locked),
        tried(&w.wrong_while_unlocked),
        tried(&w.right_while_unlocked)
    );
    if w.wrong_while_locked.proof == PasswordProof::Wrong
        && w.wrong_while_unlocked.proof == PasswordProof::Wrong
        && w.right_while_unlocked.proof == PasswordProof::Right
    {
        Ok(seen)
    } else {
        Err(seen)
    }
}

fn preferences(trial: &Trial, report: &mut Report) {
    let p = match &trial.preferences {
        Ok(p) => p,
        Err(e) => return report.add("identity preferences", Outcome::Fail, e.clone()),
    };
    report.result(
        "identity preference for a host",
        match &p.found_by_host {
            Ok(true) => Ok(format!(
                "set for {}, found by SecIdentityCopyPreferred({})",
                p.host, p.host
            )),
            Ok(false) => Err(format!("set for {}, not found by that name", p.host)),
            Err(e) => Err(e.clone()),
        },
    );
    report.result(
        "identity preference for a URL",
        match &p.found_by_url {
            Ok(true) => Ok(format!(
                "{} found through {}; through the bare host alone: {}",
                p.url,
                p.wildcard,
                if p.url_through_host_alone {
                    "found"
                } else {
                    "not found"
                }
            )),
            Ok(false) => Err(format!("{} not found through {}", p.url, p.wildcard)),
            Err(e) => Err(e.clone()),
        },
    );
}

/// The checks of the user's real state, read only.
pub fn real_state_checks(state: &RealState, report: &mut Report) {
    report.result("user session", user_session(state));
    report.result(
        "okta.keychain on the search list",
        state.search_list.clone().and_then(|(list, login)| {
            let same = crate::store::keychain_model::same_keychain;
            let shown = list
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if !list.iter().any(|p| same(p, &state.okta_keychain)) {
                Err(format!("okta.keychain is not in [{shown}]"))
            } else if list.first().is_none_or(|p| !same(p, &login)) {
                Err(format!("the login keychain is not first in [{shown}]"))
            } else {
                Ok(format!("[{shown}]"))
            }
        }),
    );
    report.result(
        "okta.keychain never locks by itself",
        state
            .auto_lock
            .clone()
            .and_then(|(on_sleep, interval)| match (on_sleep, interval) {
                (false, false) => Ok("SecKeychainCopySettings: no lock on sleep, no lock \
                                      interval"
                    .to_owned()),
                _ => Err(format!(
                    "SecKeychainCopySettings: lock on sleep {on_sleep}, lock interval {interval}"
                )),
            }),
    );
    report.result(
        "password item readable by the agent",
        password_read(&state.password_read),
    );
    report.result(
        "okta.keychain identity",
        state.identity.clone().map(|(serial, len)| {
            format!(
                "certificate {serial}: RSA PKCS#1 v1.5 SHA-256 signature of {len} bytes verified \
                 with its key"
            )
        }),
    );
}

/// Inside the user's security session the login keychain is unlocked. A root run's child
/// that sees it locked landed outside it: `launchctl asuser` moves only the bootstrap port
/// (launchd `support/launchctl.c`, `asuser_cmd`), and such a child would find every item
/// unreadable.
fn user_session(state: &RealState) -> Result<String, String> {
    let by = if state.reexecuted_by_root {
        "this process, re-executed by root as the user,"
    } else {
        "this process"
    };
    match &state.login_unlocked {
        Ok(true) => Ok(format!(
            "{by} sees the login keychain unlocked: it runs in the user's security session"
        )),
        Ok(false) if state.reexecuted_by_root => Err(format!(
            "{}: {by} sees the login keychain locked, so it is not in the user's security \
             session",
            crate::health::HealthStatus::SessionUnreachable
        )),
        Ok(false) => Err(format!(
            "{by} sees the login keychain locked: the password item cannot be read until the \
             user unlocks it"
        )),
        Err(e) => Err(format!(
            "{}: the login keychain cannot be asked: {e}",
            crate::health::HealthStatus::SessionUnreachable
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Partition;
    use crate::store::keychain_trial::{
        KeyFacts, LockedRead, PasswordRead, Preferences, Unreadable,
    };
    use std::path::PathBuf;

    fn tried(proof: PasswordProof) -> Tried {
        Tried {
            proof,
            answer: match proof {
                PasswordProof::Right => "securityd accepted it".into(),
                _ => "securityd answered OSStatus -25293".into(),
            },
        }
    }

    /// What a Mac where everything holds measures.
    fn passing() -> Trial {
        let own = Partition::TeamId("ABCDE12345".into());
        let written = vec![Partition::AppleTool, Partition::Apple, own.clone()];
        Trial {
            created: Ok(PathBuf::from("/tmp/x/home/Library/Keychains/okta.keychain")),
            interaction_allowed: Ok(false),
            password_read: Ok(PasswordRead {
                through_tool: true,
                elapsed: Duration::from_millis(84),
            }),
            key: Ok(KeyFacts {
                bits: Some(2048),
                extractable: Some(false),
            }),
            creator_partitions: Ok(vec![own.clone()]),
            own_partition: Ok(own),
            export: Ok(None),
            decrypt_entries: Ok(vec![(true, 0)]),
            partitions_written: Ok((written.clone(), written)),
            identity: Ok("5f01".into()),
            signature: Ok(256),
            locked_read: Ok(LockedRead {
                locked_before: true,
                certificate_found: true,
                key_found: true,
                locked_after: true,
                elapsed: Duration::from_millis(4),
            }),
            wrong_password: Ok(WrongPassword {
                wrong_while_locked: tried(PasswordProof::Wrong),
                wrong_while_unlocked: tried(PasswordProof::Wrong),
                right_while_unlocked: tried(PasswordProof::Right),
            }),
            unreadable: Ok(Unreadable {
                item: ItemSeen::Refused,
                answer: "Keychain Password Unreadable: …".into(),
                deferred: true,
                keychain_kept: true,
                item_kept: true,
                asides: 0,
            }),
            preferences: Ok(Preferences {
                host: "mtls.x.invalid".into(),
                wildcard: "*.x.invalid".into(),
                url: "https://mtls.x.invalid/p".into(),
                found_by_host: Ok(true),
                found_by_url: Ok(true),
                url_through_host_alone: false,
            }),
            cleanup: Vec::new(),
        }
    }

    fn verdicts(trial: &Trial) -> Vec<(String, Outcome, String)> {
        let mut report = Report::default();
        throwaway_checks(trial, &mut report);
        report
            .checks
            .into_iter()
            .map(|c| (c.name, c.outcome, c.evidence))
            .collect()
    }

    fn failing(trial: &Trial) -> Vec<String> {
        verdicts(trial)
            .into_iter()
            .filter(|(_, o, _)| *o != Outcome::Pass)
            .map(|(name, _, _)| name)
            .collect()
    }

    #[test]
    fn a_mac_where_everything_holds_passes_and_says_what_it_measured() {
        let all = verdicts(&passing());
        assert_eq!(all.len(), 15, "{all:?}");
        assert!(all.iter().all(|(_, o, _)| *o == Outcome::Pass), "{all:?}");
        let evidence = |name: &str| {
            all.iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, _, e)| e.clone())
                .unwrap()
        };
        assert!(evidence("password item read without a dialog").contains("84 ms"));
        assert!(evidence("locked keychain read without its password").contains("4 ms"));
        assert!(evidence("user interaction off").contains("answers false"));
        assert!(evidence("partition securityd gives this binary").contains("teamid:ABCDE12345"));
    }

    #[test]
    fn a_wrong_password_that_was_accepted_fails() {
        for broken in [
            WrongPassword {
                wrong_while_locked: tried(PasswordProof::Right),
                ..passing().wrong_password.unwrap()
            },
            WrongPassword {
                wrong_while_unlocked: tried(PasswordProof::Right),
                ..passing().wrong_password.unwrap()
            },
            // An unlocked keychain that proves nothing either way is no proof.
            WrongPassword {
                wrong_while_unlocked: tried(PasswordProof::NotKnown),
                ..passing().wrong_password.unwrap()
            },
            WrongPassword {
                right_while_unlocked: tried(PasswordProof::Wrong),
                ..passing().wrong_password.unwrap()
            },
        ] {
            let trial = Trial {
                wrong_password: Ok(broken),
                ..passing()
            };
            assert_eq!(failing(&trial), ["wrong password refused"]);
        }
    }

    #[test]
    fn a_set_aside_or_a_rebuild_while_the_item_is_unreadable_fails() {
        let unreadable = passing().unreadable.unwrap();
        for broken in [
            Unreadable {
                asides: 1,
                ..unreadable.clone()
            },
            Unreadable {
                deferred: false,
                answer: "it went ahead and used okta.keychain".into(),
                ..unreadable.clone()
            },
            Unreadable {
                keychain_kept: false,
                ..unreadable.clone()
            },
            Unreadable {
                item_kept: false,
                ..unreadable.clone()
            },
            // The item was readable after all: the check proved nothing.
            Unreadable {
                item: ItemSeen::Readable,
                ..unreadable.clone()
            },
        ] {
            let trial = Trial {
                unreadable: Ok(broken),
                ..passing()
            };
            assert_eq!(
                failing(&trial),
                ["no set-aside while the password is unreadable"]
            );
        }
    }

    #[test]
    fn a_slow_read_or_dialogs_on_fail_with_what_was_measured() {
        let slow = Trial {
            password_read: Ok(PasswordRead {
                through_tool: true,
                elapsed: Duration::from_secs(12),
            }),
            ..passing()
        };
        let verdict = verdicts(&slow);
        let (_, outcome, evidence) = verdict
            .iter()
            .find(|(n, _, _)| n == "password item read without a dialog")
            .unwrap();
        assert_eq!(*outcome, Outcome::Fail);
        assert!(evidence.contains("12000 ms"), "{evidence}");
        let prompts = Trial {
            interaction_allowed: Ok(true),
            ..passing()
        };
        assert_eq!(failing(&prompts), ["user interaction off"]);
    }

    #[test]
    fn a_partition_securityd_gives_otherwise_than_derived_fails() {
        let trial = Trial {
            creator_partitions: Ok(vec![Partition::Other(format!(
                "cdhash:{}",
                "ab".repeat(20)
            ))]),
            ..passing()
        };
        assert_eq!(failing(&trial), ["partition securityd gives this binary"]);
        let underived = Trial {
            own_partition: Err("cannot read the running executable".into()),
            partitions_written: passing().partitions_written,
            ..passing()
        };
        assert_eq!(
            failing(&underived),
            ["partition securityd gives this binary"]
        );
    }

    #[test]
    fn a_lock_that_did_not_hold_or_a_read_that_missed_fails() {
        let read = passing().locked_read.unwrap();
        for broken in [
            LockedRead {
                locked_after: false,
                ..read.clone()
            },
            LockedRead {
                locked_before: false,
                ..read.clone()
            },
            LockedRead {
                key_found: false,
                ..read.clone()
            },
        ] {
            let trial = Trial {
                locked_read: Ok(broken),
                ..passing()
            };
            assert_eq!(
                failing(&trial),
                ["locked keychain read without its password"]
            );
        }
    }

    #[test]
    fn other_measurements_fail_their_own_check_only() {
        let cases: Vec<(Trial, &str)> = vec![
            (
                Trial {
                    export: Ok(Some(1191)),
                    ..passing()
                },
                "export refused",
            ),
            (
                Trial {
                    key: Ok(KeyFacts {
                        bits: Some(2048),
                        extractable: Some(true),
                    }),
                    ..passing()
                },
                "key generated non-extractable",
            ),
            (
                Trial {
                    decrypt_entries: Ok(vec![(false, 1)]),
                    ..passing()
                },
                "access: any app, no prompt",
            ),
            (
                Trial {
                    partitions_written: Ok((vec![Partition::AppleTool], vec![Partition::Apple])),
                    ..passing()
                },
                "partition list as written",
            ),
            (
                Trial {
                    signature: Err("signing failed: -25308".into()),
                    ..passing()
                },
                "signature without user interaction",
            ),
            (
                Trial {
                    created: Err("OSStatus -61".into()),
                    ..passing()
                },
                "throwaway keychain made by ensure()",
            ),
        ];
        for (trial, name) in cases {
            assert_eq!(failing(&trial), [name]);
        }
        let leftover = Trial {
            cleanup: vec!["the search list keeps the throwaway keychain".into()],
            ..passing()
        };
        assert_eq!(failing(&leftover), ["throwaway removed"]);
    }

    fn real() -> RealState {
        RealState {
            search_list: Ok((
                vec![
                    PathBuf::from("/Users/a/Library/Keychains/login.keychain-db"),
                    PathBuf::from("/Users/a/Library/Keychains/okta.keychain-db"),
                ],
                PathBuf::from("/Users/a/Library/Keychains/login.keychain-db"),
            )),
            okta_keychain: PathBuf::from("/Users/a/Library/Keychains/okta.keychain"),
            auto_lock: Ok((false, false)),
            password_read: Ok(PasswordRead {
                through_tool: true,
                elapsed: Duration::from_millis(90),
            }),
            identity: Ok(("5f01".into(), 256)),
            login_unlocked: Ok(true),
            reexecuted_by_root: false,
        }
    }

    fn real_failing(state: &RealState) -> Vec<(String, String)> {
        let mut report = Report::default();
        real_state_checks(state, &mut report);
        report
            .checks
            .into_iter()
            .filter(|c| c.outcome != Outcome::Pass)
            .map(|c| (c.name, c.evidence))
            .collect()
    }

    #[test]
    fn the_real_state_passes_when_it_holds() {
        assert_eq!(real_failing(&real()), []);
    }

    #[test]
    fn a_root_runs_child_outside_the_users_session_is_user_session_unreachable() {
        let outside = RealState {
            login_unlocked: Ok(false),
            reexecuted_by_root: true,
            ..real()
        };
        let failing = real_failing(&outside);
        assert_eq!(failing.len(), 1, "{failing:?}");
        assert_eq!(failing[0].0, "user session");
        assert!(
            failing[0].1.starts_with("User Session Unreachable"),
            "{failing:?}"
        );
        // The user's own run with a locked login keychain is told apart.
        let locked = RealState {
            login_unlocked: Ok(false),
            ..real()
        };
        let failing = real_failing(&locked);
        assert!(!failing[0].1.contains("Unreachable"), "{failing:?}");
    }

    #[test]
    fn a_keychain_that_locks_by_itself_or_is_not_listed_fails() {
        let locking = RealState {
            auto_lock: Ok((true, true)),
            ..real()
        };
        assert_eq!(
            real_failing(&locking)[0].0,
            "okta.keychain never locks by itself"
        );
        let unlisted = RealState {
            search_list: Ok((
                vec![PathBuf::from(
                    "/Users/a/Library/Keychains/login.keychain-db",
                )],
                PathBuf::from("/Users/a/Library/Keychains/login.keychain-db"),
            )),
            ..real()
        };
        assert_eq!(
            real_failing(&unlisted)[0].0,
            "okta.keychain on the search list"
        );
    }

    /// The workflow's list of checks that must pass on a runner, as written in its `jq`.
    fn workflow() -> String {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".github/workflows/macos.yml");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_macos_workflow_requires_every_check_a_runner_can_pass() {
        let yml = workflow();
        let list = yml
            .split_once("as $must")
            .and_then(|(before, _)| before.rsplit_once("jq -e '"))
            .map(|(_, list)| list)
            .expect("the workflow's jq names the checks it requires");
        let required: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
        let mut expected: Vec<String> = verdicts(&passing())
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        expected.push("user session".into());
        assert_eq!(required, expected);
    }

    #[test]
    fn the_macos_workflow_runs_on_live_runners_with_a_time_limit() {
        let yml = workflow();
        assert!(
            yml.contains("runner: [macos-14, macos-15, macos-15-intel, macos-26]"),
            "{yml}"
        );
        // macos-13 was retired on 2025-12-04: a job on it never starts.
        assert!(!yml.contains("macos-13"));
        assert!(
            yml.contains("\n    timeout-minutes: "),
            "the job has a time limit"
        );
        let steps_with_limits = yml.matches("\n        timeout-minutes: ").count();
        assert!(steps_with_limits >= 4, "{steps_with_limits}");
    }
}
