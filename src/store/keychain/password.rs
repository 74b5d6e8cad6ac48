//! The `device_trust` item in the login keychain through Security and `/usr/bin/security`:
//! the calls `keychain_password` decides over. Found by its attributes, deleted by reference,
//! read in-process when our partition ID is on its list, else through `security` on a pipe.

use super::view::KeychainView;
use super::{ffi, status_text, ERR_SEC_ITEM_NOT_FOUND};
use crate::secret::Secret;
use crate::store::keychain_items as items;
use crate::store::keychain_password::{self as password, PasswordBackend, ToolError};
use crate::store::StoreError;
use security_framework::item::{ItemClass, ItemSearchOptions, Limit, Reference, SearchResult};
use security_framework::os::macos::keychain::SecKeychain;
use security_framework::os::macos::keychain_item::SecKeychainItem;
use security_framework::os::macos::passwords::find_generic_password;
use std::process::{Command, Stdio};
use std::time::Duration;
use zeroize::Zeroizing;

/// `security` answers in well under a second; a hung one must not hold the run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// The item in one user's login keychain (or where the store's `ItemPlace` puts it).
pub(super) struct LoginItem {
    login: SecKeychain,
    name: String,
}

impl LoginItem {
    pub(super) fn new(view: &KeychainView) -> Result<LoginItem, StoreError> {
        Ok(LoginItem {
            login: view.item_keychain()?,
            name: view.item.name.clone(),
        })
    }

    /// The item's reference, found by class, account and service: its data stays encrypted.
    fn item(&self) -> Result<Option<SecKeychainItem>, String> {
        let found = ItemSearchOptions::new()
            .class(ItemClass::generic_password())
            .keychains(std::slice::from_ref(&self.login))
            .service(&self.name)
            .account(&self.name)
            .load_refs(true)
            .limit(Limit::Max(1))
            .search();
        match found {
            Ok(results) => Ok(results.into_iter().find_map(|r| match r {
                SearchResult::Ref(Reference::KeychainItem(item)) => Some(item),
                _ => None,
            })),
            Err(e) if e.code() == ERR_SEC_ITEM_NOT_FOUND => Ok(None),
            Err(e) => Err(status_text(e.code())),
        }
    }

    fn login_path(&self) -> Result<std::path::PathBuf, String> {
        ffi::keychain_path(&self.login).map_err(status_text)
    }

    /// Creates the item through `security -i`, open to any app (`-A`) or to `security` alone.
    fn create(&self, secret: &Secret, open_to_any_app: bool) -> Result<(), String> {
        let command =
            password::add_command_with(&self.name, &self.login_path()?, secret, open_to_any_app)?;
        self.tool(&password::interactive_argv(), Some(command.as_bytes()))
            .map_err(|e| e.to_string())?;
        if self.item()?.is_none() {
            return Err(format!("{} did not create it", password::SECURITY));
        }
        Ok(())
    }

    /// An item only `security` may read: what the selftest makes to see the store defer.
    pub(super) fn create_guarded(&self, secret: &Secret) -> Result<(), String> {
        self.create(secret, false)
    }

    /// Runs `security` with `argv`, `stdin` written to it, and returns its stdout on exit 0.
    fn tool(
        &self,
        argv: &[std::ffi::OsString],
        stdin: Option<&[u8]>,
    ) -> Result<Zeroizing<Vec<u8>>, ToolError> {
        let failed = |why: String| ToolError::Failed(why);
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| failed("empty command line".into()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            // Its messages may quote what it was given; they are not passed on.
            .stderr(Stdio::null());
        let done =
            crate::platform::children::run(&mut command, password::SECURITY, TOOL_TIMEOUT, stdin)
                .map_err(|e| match e {
                crate::platform::children::ChildError::TimedOut(t) => {
                    ToolError::TimedOut(t.to_string())
                }
                other => failed(other.to_string()),
            })?;
        let out = Zeroizing::new(done.stdout);
        if done.status.success() {
            Ok(out)
        } else {
            Err(failed(format!(
                "{} exited with {}",
                password::SECURITY,
                done.status
                    .code()
                    .map_or("a signal".to_owned(), |c| c.to_string())
            )))
        }
    }
}

impl PasswordBackend for LoginItem {
    fn present(&self) -> Result<bool, String> {
        Ok(self.item()?.is_some())
    }

    fn read_in_process(&self) -> Result<Secret, String> {
        let (data, _) = find_generic_password(
            Some(std::slice::from_ref(&self.login)),
            &self.name,
            &self.name,
        )
        .map_err(|e| status_text(e.code()))?;
        let bytes = Zeroizing::new(data.to_vec());
        let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8".to_owned())?;
        Ok(Secret::new(text))
    }

    fn open_to_any_app(&self) -> Result<bool, String> {
        let Some(item) = self.item()? else {
            return Ok(false);
        };
        let access = ffi::item_access(&item).map_err(status_text)?;
        let entries =
            ffi::acl_entries(&access, items::DECRYPT_AUTHORIZATION).map_err(status_text)?;
        let entries: Vec<(bool, u16)> = entries
            .iter()
            .map(|(_, c)| (c.applications.is_none(), c.prompt))
            .collect();
        Ok(items::opens_to_any_app(&entries))
    }

    fn read_with_tool(&self) -> Result<Secret, ToolError> {
        let login = self.login_path().map_err(ToolError::Failed)?;
        let out = self.tool(&password::find_argv(&self.name, &login), None)?;
        password::parse_tool_output(&out).map_err(ToolError::Failed)
    }

    fn create_with_tool(&self, secret: &Secret) -> Result<(), String> {
        self.create(secret, true)
    }

    /// SecKeychainItemDelete by reference (the crate's call reports no status, so the item is
    /// looked for again); an item only `security` may delete (one it made) is deleted by it.
    fn delete(&self) -> Result<bool, String> {
        let Some(item) = self.item()? else {
            return Ok(false);
        };
        item.delete();
        if self.item()?.is_some() {
            self.tool(
                &password::delete_argv(&self.name, &self.login_path()?),
                None,
            )
            .map_err(|e| e.to_string())?;
        }
        if self.item()?.is_some() {
            return Err("it is still there".to_owned());
        }
        Ok(true)
    }
}
