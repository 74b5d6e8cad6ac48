//! The `device_trust` password item in the login keychain, read and written without a dialog,
//! whoever made it: the decisions, over a backend (Security and `/usr/bin/security` on a Mac, a
//! stand-in in the tests).
//!
//! securityd checks a caller's partition ID against an item's partition list before it
//! decrypts the item's data (`acls.cpp`, `validatePartition`). An item made by `security
//! add-generic-password -A` (Okta's task, and the agent) has the list `apple-tool:`: `security`
//! reads it without a prompt, any other process only through a dialog, which a background agent
//! cannot show. So the agent reads such an item through `/usr/bin/security find-generic-password
//! -w`, the secret coming back on a pipe. Its presence is learnt from its attributes, which are
//! not encrypted: `status` and deletion never decrypt it.
//!
//! The agent also creates its own item that way (`security -i`, the command with the secret
//! on its stdin), so every build of the agent can read it: a new item's partition list holds
//! only its creator's ID (securityd `localkey.cpp`, `setOwner`; the client's own partition
//! entries are stripped, `Item.cpp`), and adding another ID needs the login keychain's password
//! (`acls.cpp`, `changeAcl`), which no agent has. An item made by the agent in-process would be
//! readable by that one build only (an ad-hoc build's `cdhash:` changes with every build), and
//! `security` could no longer read it.

use super::keychain_model::{ItemSeen, PASSWORD_ITEM};
use crate::secret::Secret;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `/usr/bin/security` by absolute path (a root process never searches a caller's PATH).
pub const SECURITY: &str = "/usr/bin/security";

/// Where the password item lives and what it is called (its account, service and label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPlace {
    /// `None`: the user's login keychain (the default keychain of the user domain).
    pub keychain: Option<PathBuf>,
    pub name: String,
}

impl ItemPlace {
    /// The agent's item: `device_trust` in the login keychain, where Okta's task kept it.
    pub fn login() -> ItemPlace {
        ItemPlace {
            keychain: None,
            name: PASSWORD_ITEM.to_owned(),
        }
    }
}

/// Why the item's data could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// `security` did not finish in time: a dialog nobody answers, a busy securityd.
    TimedOut(String),
    Failed(String),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::TimedOut(why) | ToolError::Failed(why) => f.write_str(why),
        }
    }
}

/// What the agent can do with the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordItem {
    Missing,
    /// There, but its data cannot be had now without a dialog: whether the try timed out, and
    /// why.
    Unreadable {
        timed_out: bool,
        why: String,
    },
    Readable(Secret),
}

/// The row of the decision table an attempt to read the item gives; an error asking the
/// keychain about the item at all is a refusal.
pub fn seen(item: &Result<PasswordItem, String>) -> ItemSeen {
    match item {
        Ok(PasswordItem::Readable(_)) => ItemSeen::Readable,
        Ok(PasswordItem::Missing) => ItemSeen::Missing,
        Ok(PasswordItem::Unreadable {
            timed_out: true, ..
        }) => ItemSeen::TimedOut,
        Ok(PasswordItem::Unreadable { .. }) | Err(_) => ItemSeen::Refused,
    }
}

/// The calls the decisions are made of.
pub trait PasswordBackend {
    /// Whether the item exists, from its attributes alone (nothing is decrypted).
    fn present(&self) -> Result<bool, String>;
    /// Decrypts its data in this process; refused unless our partition ID is on its list.
    fn read_in_process(&self) -> Result<Secret, String>;
    /// Whether its access list lets any app decrypt it without a prompt (`-A`): only then can
    /// `security` read it without showing a dialog.
    fn open_to_any_app(&self) -> Result<bool, String>;
    /// Reads it through `security find-generic-password -w`, the secret on a pipe.
    fn read_with_tool(&self) -> Result<Secret, ToolError>;
    /// Creates it through `security -i` (`add-generic-password -A`), the secret on a pipe.
    fn create_with_tool(&self, secret: &Secret) -> Result<(), String>;
    /// Deletes it by reference, without reading it; `Ok(false)` when there was none.
    fn delete(&self) -> Result<bool, String>;
}

/// The item as the agent can use it: in-process when our partition ID is on its list, else
/// through `security` when its access lets any app in, else unreadable.
pub fn read(backend: &dyn PasswordBackend) -> Result<PasswordItem, String> {
    if !backend.present()? {
        return Ok(PasswordItem::Missing);
    }
    let in_process = match backend.read_in_process() {
        Ok(secret) => return Ok(PasswordItem::Readable(secret)),
        Err(e) => e,
    };
    if !backend.open_to_any_app()? {
        return Ok(PasswordItem::Unreadable {
            timed_out: false,
            why: format!(
                "only a dialog could read it (its access list does not admit every app; \
                 in-process: {in_process})"
            ),
        });
    }
    Ok(match backend.read_with_tool() {
        Ok(secret) => PasswordItem::Readable(secret),
        Err(e) => PasswordItem::Unreadable {
            timed_out: matches!(e, ToolError::TimedOut(_)),
            why: format!("neither this process ({in_process}) nor {SECURITY} ({e}) could read it"),
        },
    })
}

/// Replaces the item with one holding `secret`: the old one deleted unread, the new one made by
/// `security`, so any build of the agent can read it later.
pub fn replace(backend: &dyn PasswordBackend, secret: &Secret) -> Result<(), String> {
    backend.delete()?;
    backend.create_with_tool(secret)
}

/// `security find-generic-password -a device_trust -s device_trust -w <login keychain>`: no
/// secret in it; the password comes back on stdout.
pub fn find_argv(item: &str, login_keychain: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = [
        SECURITY,
        "find-generic-password",
        "-a",
        item,
        "-s",
        item,
        "-w",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    argv.push(login_keychain.as_os_str().to_owned());
    argv
}

/// `security delete-generic-password -a <item> -s <item> <keychain>`: deletes the item by its
/// attributes, never printing it. securityd lets only an app on an item's partition list delete
/// it without a dialog (`acls.cpp`, `SecurityServerAcl::validate` → `validatePartition`), so an
/// item `security` made is deleted by `security`.
pub fn delete_argv(item: &str, keychain: &Path) -> Vec<OsString> {
    let mut argv: Vec<OsString> = [SECURITY, "delete-generic-password", "-a", item, "-s", item]
        .iter()
        .map(OsString::from)
        .collect();
    argv.push(keychain.as_os_str().to_owned());
    argv
}

/// `security -i`: the argv of the creating run, which reads its command from stdin.
pub fn interactive_argv() -> Vec<OsString> {
    vec![SECURITY.into(), "-i".into()]
}

/// The one command line `security -i` reads on its stdin to create the item (`-A`: any app
/// passes its access list, as Okta's task made it), quoted as its `split_line` takes it. A path
/// or secret it could not quote safely is refused rather than mangled.
pub fn add_command(
    item: &str,
    login_keychain: &Path,
    secret: &Secret,
) -> Result<zeroize::Zeroizing<String>, String> {
    add_command_with(item, login_keychain, secret, true)
}

/// [`add_command`], or without `-A` (`open_to_any_app` false): an item whose access list
/// admits `security` alone, which any other app could read only through a dialog. The
/// selftest makes one to see the store refuse to rebuild over an item it cannot read.
pub fn add_command_with(
    item: &str,
    login_keychain: &Path,
    secret: &Secret,
    open_to_any_app: bool,
) -> Result<zeroize::Zeroizing<String>, String> {
    let quotable = |s: &str| !s.chars().any(|c| c == '"' || c == '\\' || c.is_control());
    let path = login_keychain
        .to_str()
        .filter(|p| quotable(p))
        .ok_or_else(|| format!("cannot name {} to security", login_keychain.display()))?;
    if !quotable(secret.expose()) || !quotable(item) {
        return Err("the keychain password has characters security -i cannot take".to_owned());
    }
    let any_app = if open_to_any_app { " -A" } else { "" };
    Ok(zeroize::Zeroizing::new(format!(
        "add-generic-password -a \"{item}\" -s \"{item}\" -l \"{item}\"{any_app} -w \"{}\" \"{path}\"\n",
        secret.expose()
    )))
}

/// The password `security find-generic-password -w` printed: its one line, without the
/// newline. Empty output is no password.
pub fn parse_tool_output(stdout: &[u8]) -> Result<Secret, String> {
    let text = std::str::from_utf8(stdout).map_err(|_| "security printed no text".to_owned())?;
    let line = text.strip_suffix('\n').unwrap_or(text);
    if line.is_empty() || line.contains('\n') {
        return Err("security printed no single password line".to_owned());
    }
    Ok(Secret::new(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// An item as securityd would treat it for a caller outside its partition list.
    #[derive(Default)]
    struct Item {
        present: bool,
        /// Our partition ID is on its list.
        ours: bool,
        /// `-A`: any app passes its access list.
        any_app: bool,
        /// `security` (apple-tool:) is on its list.
        apple_tool: bool,
        /// `security` hangs (a dialog nobody answers).
        hangs: bool,
        secret: Option<&'static str>,
        decrypted: Cell<usize>,
        deleted: Cell<bool>,
        created: RefCell<Option<String>>,
    }

    impl PasswordBackend for Item {
        fn present(&self) -> Result<bool, String> {
            Ok(self.present)
        }
        fn read_in_process(&self) -> Result<Secret, String> {
            self.decrypted.set(self.decrypted.get() + 1);
            if self.ours {
                Ok(Secret::new(self.secret.unwrap()))
            } else {
                Err("OSStatus -25308 (User interaction is not allowed.)".into())
            }
        }
        fn open_to_any_app(&self) -> Result<bool, String> {
            Ok(self.any_app)
        }
        fn read_with_tool(&self) -> Result<Secret, ToolError> {
            self.decrypted.set(self.decrypted.get() + 1);
            if self.hangs {
                Err(ToolError::TimedOut("did not finish within 30 s".into()))
            } else if self.apple_tool && self.any_app {
                Ok(Secret::new(self.secret.unwrap()))
            } else {
                Err(ToolError::Failed("exit 51".into()))
            }
        }
        fn create_with_tool(&self, secret: &Secret) -> Result<(), String> {
            *self.created.borrow_mut() = Some(secret.expose().to_owned());
            Ok(())
        }
        fn delete(&self) -> Result<bool, String> {
            self.deleted.set(true);
            Ok(self.present)
        }
    }

    /// What `security add-generic-password -A` made: Okta's task's item, and the agent's.
    fn made_by_security() -> Item {
        Item {
            present: true,
            any_app: true,
            apple_tool: true,
            secret: Some("Okta0task0password0000000000000000000000"),
            ..Item::default()
        }
    }

    #[test]
    fn an_apple_tool_item_is_read_through_security_without_a_dialog() {
        let item = made_by_security();
        assert_eq!(
            read(&item).unwrap(),
            PasswordItem::Readable(Secret::new("Okta0task0password0000000000000000000000"))
        );
    }

    #[test]
    fn present_but_unreadable_is_told_apart_from_missing() {
        assert_eq!(read(&Item::default()).unwrap(), PasswordItem::Missing);
        // An item someone made with an access list that would prompt: security would show a
        // dialog, so it is not even asked.
        let guarded = Item {
            any_app: false,
            ..made_by_security()
        };
        let unread = read(&guarded);
        assert!(
            matches!(&unread, Ok(PasswordItem::Unreadable { timed_out: false, why }) if why.contains("dialog")),
            "{unread:?}"
        );
        assert_eq!(seen(&unread), ItemSeen::Refused);
        assert_eq!(guarded.decrypted.get(), 1);
        // Open to any app but not to security's partition.
        let foreign = Item {
            apple_tool: false,
            ..made_by_security()
        };
        let unread = read(&foreign);
        assert!(matches!(unread, Ok(PasswordItem::Unreadable { .. })));
        assert_eq!(seen(&unread), ItemSeen::Refused);
        assert_eq!(seen(&read(&Item::default())), ItemSeen::Missing);
        assert_eq!(seen(&read(&made_by_security())), ItemSeen::Readable);
        // A keychain that cannot even be asked is a refusal too, never a missing item.
        assert_eq!(seen(&Err("OSStatus -25294".into())), ItemSeen::Refused);
    }

    #[test]
    fn a_security_that_hangs_is_told_apart_from_a_refusal() {
        let item = Item {
            hangs: true,
            ..made_by_security()
        };
        let unread = read(&item);
        assert!(
            matches!(
                &unread,
                Ok(PasswordItem::Unreadable {
                    timed_out: true,
                    ..
                })
            ),
            "{unread:?}"
        );
        assert_eq!(seen(&unread), ItemSeen::TimedOut);
    }

    #[test]
    fn an_item_on_our_partition_list_is_read_in_process() {
        let item = Item {
            ours: true,
            any_app: false,
            ..made_by_security()
        };
        assert!(matches!(read(&item).unwrap(), PasswordItem::Readable(_)));
        assert_eq!(item.decrypted.get(), 1);
    }

    #[test]
    fn replacing_never_reads_the_old_secret() {
        let item = made_by_security();
        replace(&item, &Secret::new("Fresh")).unwrap();
        assert!(item.deleted.get());
        assert_eq!(item.decrypted.get(), 0);
        assert_eq!(item.created.borrow().as_deref(), Some("Fresh"));
    }

    #[test]
    fn the_tools_argv_never_holds_the_secret() {
        let login = Path::new("/Users/a/Library/Keychains/login.keychain-db");
        let argv: Vec<String> = find_argv("device_trust", login)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            argv,
            [
                "/usr/bin/security",
                "find-generic-password",
                "-a",
                "device_trust",
                "-s",
                "device_trust",
                "-w",
                "/Users/a/Library/Keychains/login.keychain-db"
            ]
        );
        assert_eq!(
            interactive_argv(),
            ["/usr/bin/security", "-i"].map(OsString::from)
        );
        assert_eq!(
            delete_argv("device_trust", login),
            [
                "/usr/bin/security",
                "delete-generic-password",
                "-a",
                "device_trust",
                "-s",
                "device_trust",
                "/Users/a/Library/Keychains/login.keychain-db"
            ]
            .map(OsString::from)
        );
        let secret = Secret::new("Abc123");
        let command = add_command("device_trust", login, &secret).unwrap();
        assert_eq!(
            command.as_str(),
            "add-generic-password -a \"device_trust\" -s \"device_trust\" -l \"device_trust\" -A \
             -w \"Abc123\" \"/Users/a/Library/Keychains/login.keychain-db\"\n"
        );
        assert_eq!(
            add_command_with("t", login, &secret, false)
                .unwrap()
                .as_str(),
            "add-generic-password -a \"t\" -s \"t\" -l \"t\" -w \"Abc123\" \
             \"/Users/a/Library/Keychains/login.keychain-db\"\n"
        );
        assert!(add_command("device_trust", Path::new("/Users/x\"y/login"), &secret).is_err());
        assert!(add_command("device_trust", login, &Secret::new("a\"b")).is_err());
    }

    #[test]
    fn the_tools_output_is_one_password_line() {
        assert_eq!(parse_tool_output(b"Abc123\n").unwrap().expose(), "Abc123");
        assert!(parse_tool_output(b"").is_err());
        assert!(parse_tool_output(b"\n").is_err());
        assert!(parse_tool_output(b"a\nb\n").is_err());
    }
}
