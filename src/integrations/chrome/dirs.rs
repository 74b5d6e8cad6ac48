//! Chrome's, Chromium's and Edge's managed policy directories on Linux: which file decides
//! the policy, and our own file in each, written and taken out.

use super::*;

/// One browser's managed policy directory (under the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDir {
    pub browser: &'static str,
    pub path: PathBuf,
}

/// The managed policy directories of the Chromium-based browsers on Linux.
#[derive(Debug, Clone)]
pub struct PolicyDirs {
    dirs: Vec<PolicyDir>,
}

impl PolicyDirs {
    /// Browser name and directory, before the root prefix.
    pub const LOCATIONS: [(&'static str, &'static str); 3] = [
        ("Google Chrome", "/etc/opt/chrome/policies/managed"),
        ("Chromium", "/etc/chromium/policies/managed"),
        ("Microsoft Edge", "/etc/opt/edge/policies/managed"),
    ];

    pub fn under(root: &Path) -> Self {
        let dirs = Self::LOCATIONS
            .iter()
            .map(|(browser, dir)| PolicyDir {
                browser,
                path: rooted(root, Path::new(dir)),
            })
            .collect();
        PolicyDirs { dirs }
    }

    pub fn dirs(&self) -> &[PolicyDir] {
        &self.dirs
    }
}

/// What `apply` and `remove` did, or found and left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Our file now holds the entry once (added, or duplicates collapsed).
    Written(PathBuf),
    /// Our entry is gone from our file (the file too, when nothing else was left in it).
    Removed(PathBuf),
    /// Another tool's file decides the policy in this directory and lacks our entry. Chrome
    /// does not merge a policy across files, so our file could not help; reported, not fought.
    Shadowed { dir: PathBuf, by: PathBuf },
    /// A JSON file of another tool that does not parse: Chrome ignores it, and so do we.
    Unparseable { path: PathBuf, reason: String },
}

/// What one directory says about our entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirReport {
    pub browser: &'static str,
    pub dir: PathBuf,
    /// The file whose value of the policy the browser uses, if any sets it.
    pub effective_file: Option<PathBuf>,
    /// That value holds our entry.
    pub present: bool,
    pub unparseable: Vec<(PathBuf, String)>,
}

/// The `*.json` files of one directory, in the order Chrome reads them.
pub(super) struct DirView {
    /// Files that parse as a JSON object, sorted by name.
    pub(super) objects: Vec<(PathBuf, Map<String, Value>)>,
    pub(super) unparseable: Vec<(PathBuf, String)>,
}

impl DirView {
    /// The directory is root's (under `/etc`), so it is opened, and its files read, as the OS
    /// resolves them, like Chrome does; only regular files count.
    pub(super) fn read(dir: &Path) -> Result<DirView, ChromeError> {
        let mut view = DirView {
            objects: Vec::new(),
            unparseable: Vec::new(),
        };
        let folder = match SecureDir::open_trusted(dir) {
            Ok(folder) => folder,
            Err(e) if e.is_not_found() => return Ok(view),
            Err(e) => return Err(ChromeError::Read(e)),
        };
        for entry in folder.entries().map_err(ChromeError::Read)? {
            let text = entry.name.to_string_lossy();
            // Dot files are temporaries (ours included) or hidden; not policy.
            if !text.ends_with(".json") || text.starts_with('.') {
                continue;
            }
            if !matches!(entry.kind, FileKind::File | FileKind::Symlink) {
                continue;
            }
            let path = dir.join(&entry.name);
            match securefs::read_capped(&path, DOCUMENT_MAX, "the browser policy file") {
                Ok(bytes) => match parse_object(&bytes) {
                    Ok(map) => view.objects.push((path, map)),
                    Err(reason) => view.unparseable.push((path, reason)),
                },
                // A link to a folder or device is not a policy file.
                Err(SecureFsError::NotRegular { .. }) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => view.unparseable.push((path, e.to_string())),
            }
        }
        Ok(view)
    }

    /// The file that decides the policy. Chromium's directory loader merges the files so that
    /// the lexicographically last one setting a policy wins; the others' values are ignored.
    fn effective(&self) -> Option<(&Path, &Value)> {
        self.objects
            .iter()
            .rev()
            .find_map(|(path, map)| map.get(POLICY_KEY).map(|v| (path.as_path(), v)))
    }
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

fn value_holds_only_ours(value: &Value, ours: &str) -> bool {
    value
        .as_array()
        .is_some_and(|items| holds_only_ours(items, ours))
}

/// Reports every managed policy directory (for `status`).
pub fn inspect(root: &Path, entry: &str) -> Result<Vec<DirReport>, ChromeError> {
    PolicyDirs::under(root)
        .dirs()
        .iter()
        .map(|dir| {
            let view = DirView::read(&dir.path)?;
            let effective = view.effective();
            Ok(DirReport {
                browser: dir.browser,
                dir: dir.path.clone(),
                effective_file: effective.map(|(p, _)| p.to_owned()),
                present: effective.is_some_and(|(_, v)| value_holds_only_ours(v, entry)),
                unparseable: view.unparseable.clone(),
            })
        })
        .collect()
}

/// Every managed policy directory as a plan sees it: which file decides, and what writing
/// `entry` (when known) would do there. Reads only.
pub fn survey(
    root: &Path,
    entry: Option<&str>,
    older_hosts: &[String],
) -> Result<Vec<Seen>, ChromeError> {
    PolicyDirs::under(root)
        .dirs()
        .iter()
        .map(|dir| {
            let view = DirView::read(&dir.path)?;
            let own = dir.path.join(OUR_FILE);
            let effective = view.effective();
            let items = effective
                .and_then(|(_, v)| v.as_array().cloned())
                .unwrap_or_default();
            Ok(Seen {
                browser: dir.browser.to_owned(),
                decided_by: effective.map(|(p, _)| p.display().to_string()),
                ours_to_write: effective.is_none_or(|(p, _)| p == own),
                holds_ours: entry
                    .map(|e| effective.is_some_and(|(_, v)| value_holds_only_ours(v, e))),
                holds_older: holds_older(&items, entry, older_hosts),
                unusable: own_policy(&view, &own).err().map(|e| e.to_string()),
            })
        })
        .collect()
}

/// The health link: every browser's effective policy holds our entry, and no other of ours.
pub fn is_present(root: &Path, entry: &str) -> bool {
    inspect(root, entry).is_ok_and(|reports| reports.iter().all(|r| r.present))
}

/// Our file's object and its policy list, refusing to go on with a file we cannot read as ours.
fn own_policy(view: &DirView, own: &Path) -> Result<(Map<String, Value>, Vec<Value>), ChromeError> {
    if let Some((_, reason)) = view.unparseable.iter().find(|(p, _)| p == own) {
        return Err(ChromeError::OwnFileUnusable {
            path: own.to_owned(),
            reason: reason.clone(),
        });
    }
    let map = view
        .objects
        .iter()
        .find(|(p, _)| p == own)
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let list = match map.get(POLICY_KEY) {
        None => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => {
            return Err(ChromeError::OwnFileUnusable {
                path: own.to_owned(),
                reason: format!("{POLICY_KEY} is not a list"),
            })
        }
    };
    Ok((map, list))
}

/// Writes our file in the policy directory `dir` (created if missing: it is root's, under
/// `/etc`). The temporary name is unpredictable, like every write of the agent's.
fn write_object(dir: &Path, map: Map<String, Value>) -> Result<(), ChromeError> {
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(map)).map_err(ChromeError::Encode)?;
    bytes.push(b'\n');
    std::fs::create_dir_all(dir).map_err(|source| ChromeError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    // 0644: the browser runs as the user and must read a file root wrote.
    SecureDir::open_trusted(dir)
        .and_then(|folder| folder.write_file_atomic(OUR_FILE, &bytes, 0o644, None))
        .map_err(ChromeError::Write)
}

/// Makes `entry` the one entry of ours in our own file in every browser's managed policy
/// directory; other tools' files are never touched.
pub fn apply(root: &Path, entry: &str) -> Result<Vec<Change>, ChromeError> {
    let mut changes = Vec::new();
    for dir in PolicyDirs::under(root).dirs() {
        let view = DirView::read(&dir.path)?;
        let own = dir.path.join(OUR_FILE);
        changes.extend(
            view.unparseable
                .iter()
                .filter(|(p, _)| *p != own)
                .map(|(path, reason)| Change::Unparseable {
                    path: path.clone(),
                    reason: reason.clone(),
                }),
        );
        let (mut map, list) = own_policy(&view, &own)?;
        if let Some((by, value)) = view.effective().filter(|(p, _)| *p != own) {
            if !value_holds_only_ours(value, entry) {
                changes.push(Change::Shadowed {
                    dir: dir.path.clone(),
                    by: by.to_owned(),
                });
            }
            continue;
        }
        // Older entries of ours (another host, another filter) are replaced: left beside ours
        // they would select our certificate for sites it was never meant for. An admin's own
        // entries stay: Chrome reads the list from one file only, so they may live in ours.
        let (merged, changed) = merge(&list, entry);
        if changed {
            map.insert(POLICY_KEY.to_owned(), Value::Array(merged));
            write_object(&dir.path, map)?;
            changes.push(Change::Written(own));
        }
    }
    Ok(changes)
}

/// Takes our entries (`entry` and older ones like it) out of our own files (uninstall); other
/// tools' files are never touched.
pub fn remove_from_dirs(root: &Path, entry: &str) -> Result<Vec<Change>, ChromeError> {
    let mut changes = Vec::new();
    for dir in PolicyDirs::under(root).dirs() {
        let own = dir.path.join(OUR_FILE);
        let folder = match SecureDir::open_trusted(&dir.path) {
            Ok(folder) => folder,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(ChromeError::Read(e)),
        };
        if folder
            .metadata(OUR_FILE)
            .map_err(ChromeError::Read)?
            .is_none()
        {
            continue;
        }
        let view = DirView::read(&dir.path)?;
        let (mut map, list) = own_policy(&view, &own)?;
        let (kept, changed) = remove(&list, entry);
        if !changed {
            continue;
        }
        if kept.is_empty() {
            map.remove(POLICY_KEY);
        } else {
            map.insert(POLICY_KEY.to_owned(), Value::Array(kept));
        }
        if map.is_empty() {
            folder.remove_file(OUR_FILE).map_err(ChromeError::Write)?;
        } else {
            write_object(&dir.path, map)?;
        }
        changes.push(Change::Removed(own));
    }
    Ok(changes)
}
