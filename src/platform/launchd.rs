//! launchd for the renewal job: load it into the user's GUI domain, unload it (and Okta's
//! Python task), ask whether it is loaded, and whether the user switched it off in Login Items.
//!
//! Every command has a fixed argv built by the pure functions below (no secret is ever an
//! argument) and runs with a timeout (`platform::children`); `sfltool dumpbtm`'s text is parsed
//! here and tested on every OS, the calls themselves are made only on macOS.

// The command builders and the parser are used by the macOS backend; elsewhere by tests.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use super::children::{self, ChildError, TimedOut};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const LAUNCHCTL: &str = "/bin/launchctl";
pub const SFLTOOL: &str = "/usr/bin/sfltool";
/// launchctl answers in milliseconds; `sfltool dumpbtm` reads a database and may take seconds.
pub const LAUNCHCTL_TIMEOUT: Duration = Duration::from_secs(15);
pub const SFLTOOL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LaunchdError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
    #[error("{command} failed ({status}): {message}")]
    Failed {
        command: String,
        status: String,
        message: String,
    },
}

/// `gui/<uid>`: the per-user domain LaunchAgents of a logged-in user live in.
pub fn domain(uid: u32) -> String {
    format!("gui/{uid}")
}

/// `gui/<uid>/<label>`: one service in it.
pub fn service_target(uid: u32, label: &str) -> String {
    format!("gui/{uid}/{label}")
}

pub fn bootstrap_argv(uid: u32, plist: &Path) -> Vec<OsString> {
    vec![
        LAUNCHCTL.into(),
        "bootstrap".into(),
        domain(uid).into(),
        plist.as_os_str().to_owned(),
    ]
}

pub fn bootout_argv(uid: u32, label: &str) -> Vec<OsString> {
    vec![
        LAUNCHCTL.into(),
        "bootout".into(),
        service_target(uid, label).into(),
    ]
}

pub fn print_argv(uid: u32, label: &str) -> Vec<OsString> {
    vec![
        LAUNCHCTL.into(),
        "print".into(),
        service_target(uid, label).into(),
    ]
}

pub fn dumpbtm_argv() -> Vec<OsString> {
    vec![SFLTOOL.into(), "dumpbtm".into()]
}

/// Whether a failed `launchctl bootout` only says the service was not loaded: exit 3 ("No
/// such process"), 113 ("Could not find specified service"), or those words in its message.
pub fn bootout_says_not_loaded(code: Option<i32>, stderr: &str) -> bool {
    matches!(code, Some(3) | Some(113))
        || [
            "No such process",
            "Could not find specified service",
            "not find",
        ]
        .iter()
        .any(|m| stderr.contains(m))
}

/// The `arguments = { … }` block of `launchctl print <service>`: the program arguments launchd
/// has loaded, one per line. `None` when the block is not there (not loaded, or a format this
/// parser does not know, which then says nothing against the job).
pub fn parse_print_arguments(text: &str) -> Option<Vec<String>> {
    let mut lines = text.lines().map(str::trim);
    lines.find(|l| *l == "arguments = {")?;
    let mut arguments = Vec::new();
    for line in lines {
        if line == "}" {
            return Some(arguments);
        }
        arguments.push(line.to_owned());
    }
    None
}

/// launchd sets `XPC_SERVICE_NAME` to a job's label in every process it starts for the job;
/// whether `value` says this process is a run of `label`.
pub fn started_as(value: Option<&str>, label: &str) -> bool {
    value == Some(label)
}

/// What a finished command said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The first non-empty line of stderr (else stdout): a one-line error message.
    pub fn message(&self) -> String {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no message")
            .to_owned()
    }

    pub fn into_error(self, argv: &[OsString]) -> LaunchdError {
        LaunchdError::Failed {
            command: argv
                .iter()
                .take(2)
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            status: self
                .code
                .map_or_else(|| "killed".to_owned(), |c| format!("exit {c}")),
            message: self.message(),
        }
    }
}

/// Runs `argv` with no stdin, capturing its output, killing it (and its process group) after
/// `timeout` or when the run's deadline comes first.
pub fn run(argv: &[OsString], timeout: Duration) -> Result<Finished, LaunchdError> {
    let program = argv
        .first()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut command = Command::new(argv.first().ok_or_else(|| LaunchdError::Spawn {
        program: program.clone(),
        source: std::io::Error::other("empty command line"),
    })?);
    command
        .args(argv.iter().skip(1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let done = children::run(&mut command, &program, timeout, None).map_err(|e| match e {
        ChildError::TimedOut(stopped) => LaunchdError::TimedOut(stopped),
        ChildError::Spawn { source, .. } | ChildError::Wait { source, .. } => {
            LaunchdError::Spawn { program, source }
        }
    })?;
    Ok(Finished {
        code: done.status.code(),
        stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Background Task Management (`sfltool dumpbtm`, macOS 13+)

/// One login/background item as `sfltool dumpbtm` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtmItem {
    /// The uid of the `Records for UID n` section it is listed under.
    pub uid: Option<u32>,
    pub name: Option<String>,
    pub identifier: Option<String>,
    pub developer: Option<String>,
    pub url: Option<String>,
    /// From `Disposition: [enabled, allowed, ...]`: `Some(false)` when the user turned it off.
    pub enabled: Option<bool>,
}

impl BtmItem {
    /// Whether this item is the launchd job `label`: its identifier is the label (BTM prefixes
    /// it with the item type, `16.com.devicetrust.renew`), or its plist is `<label>.plist`.
    pub fn is_job(&self, label: &str) -> bool {
        let by_identifier = self.identifier.as_deref().is_some_and(|id| {
            id == label
                || id.strip_suffix(label).is_some_and(|prefix| {
                    prefix
                        .strip_suffix('.')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
        });
        let plist = format!("/{label}.plist");
        by_identifier || self.url.as_deref().is_some_and(|u| u.ends_with(&plist))
    }
}

/// Parses `sfltool dumpbtm`: `Records for UID n` sections, items starting at `#n:` lines,
/// each with `Key: value` lines. Unknown lines are skipped, so a new macOS field is harmless.
pub fn parse_dumpbtm(text: &str) -> Vec<BtmItem> {
    let mut items = Vec::new();
    let mut uid = None;
    let mut current: Option<BtmItem> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Records for UID") {
            items.extend(current.take());
            uid = rest
                .trim()
                .split(|c: char| !c.is_ascii_digit() && c != '-')
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .and_then(|n| u32::try_from(n).ok());
            continue;
        }
        if line.starts_with('#') && line.ends_with(':') {
            items.extend(current.take());
            current = Some(BtmItem {
                uid,
                ..BtmItem::default()
            });
            continue;
        }
        let (Some(item), Some((key, value))) = (current.as_mut(), line.split_once(':')) else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Name" => item.name = Some(value.to_owned()),
            "Identifier" => item.identifier = Some(value.to_owned()),
            "Developer Name" => item.developer = Some(value.to_owned()),
            "URL" => item.url = Some(value.to_owned()),
            "Disposition" => item.enabled = disposition_enabled(value),
            _ => {}
        }
    }
    items.extend(current);
    items
}

/// `[enabled, allowed, visible, notified] (0xb)` → `Some(true)`; `[disabled, ...]` → `Some(false)`.
fn disposition_enabled(value: &str) -> Option<bool> {
    let inside = value.strip_prefix('[')?.split(']').next()?;
    let flags: Vec<&str> = inside.split(',').map(str::trim).collect();
    if flags.contains(&"disabled") {
        Some(false)
    } else if flags.contains(&"enabled") {
        Some(true)
    } else {
        None
    }
}

/// Whether the user lets the job `label` run: `Some(false)` when any of its items for `uid`
/// (or listed outside a user section) is disabled, `None` when BTM does not know the job.
pub fn background_task_enabled(items: &[BtmItem], uid: u32, label: &str) -> Option<bool> {
    let mine: Vec<&BtmItem> = items
        .iter()
        .filter(|i| i.uid.is_none_or(|u| u == uid) && i.is_job(label))
        .collect();
    if mine.is_empty() {
        return None;
    }
    if mine.iter().any(|i| i.enabled == Some(false)) {
        Some(false)
    } else if mine.iter().any(|i| i.enabled == Some(true)) {
        Some(true)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The calls (macOS)

/// Loads (or reloads) the LaunchAgent `plist` with `label` into the user's GUI domain: bootout
/// first, so a changed plist takes effect, then bootstrap.
pub fn reload(uid: u32, label: &str, plist: &Path) -> Result<(), LaunchdError> {
    unload(uid, label)?;
    let argv = bootstrap_argv(uid, plist);
    let done = run(&argv, LAUNCHCTL_TIMEOUT)?;
    if done.success() {
        Ok(())
    } else {
        Err(done.into_error(&argv))
    }
}

/// Unloads `label` from the user's GUI domain; not loaded is fine. Returns whether it was.
pub fn unload(uid: u32, label: &str) -> Result<bool, LaunchdError> {
    let argv = bootout_argv(uid, label);
    let done = run(&argv, LAUNCHCTL_TIMEOUT)?;
    if done.success() {
        Ok(true)
    } else if bootout_says_not_loaded(done.code, &done.stderr) {
        Ok(false)
    } else {
        Err(done.into_error(&argv))
    }
}

/// Whether launchd has `label` loaded in the user's GUI domain; `None` if launchctl cannot run.
pub fn is_loaded(uid: u32, label: &str) -> Option<bool> {
    run(&print_argv(uid, label), LAUNCHCTL_TIMEOUT)
        .ok()
        .map(|d| d.success())
}

/// The program arguments launchd has loaded for `label` in the user's GUI domain.
pub fn loaded_arguments(uid: u32, label: &str) -> Option<Vec<String>> {
    let done = run(&print_argv(uid, label), LAUNCHCTL_TIMEOUT).ok()?;
    if !done.success() {
        return None;
    }
    parse_print_arguments(&done.stdout)
}

/// Whether launchd started this process as a run of `label`.
pub fn runs_inside(label: &str) -> bool {
    started_as(std::env::var("XPC_SERVICE_NAME").ok().as_deref(), label)
}

/// The Login Items switch for `label`, from `sfltool dumpbtm`; `None` when it cannot tell
/// (before macOS 13, or the tool refuses a non-admin caller).
pub fn login_item_enabled(uid: u32, label: &str) -> Option<bool> {
    let done = run(&dumpbtm_argv(), SFLTOOL_TIMEOUT).ok()?;
    if !done.success() {
        tracing::debug!("sfltool dumpbtm: {}", done.message());
        return None;
    }
    background_task_enabled(&parse_dumpbtm(&done.stdout), uid, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `sfltool dumpbtm` prints on macOS 13–15 (trimmed, values invented).
    const DUMPBTM: &str = "\
========================
 Records for UID -2 : FFFFEEEE-DDDD-CCCC-BBBB-AAAAFFFFFFFE
========================

 ServiceManagement migrated: true
 SharedFileList migrated: true

 Items:

========================
 Records for UID 501 : 5B6E1E0A-1C1D-4C8E-9E52-2F0D9E1C7A11
========================

 ServiceManagement migrated: true
 SharedFileList migrated: true

 Items:

 #1:
                 UUID: 0C7E4F7C-8D8B-4B0E-A4C1-9A8F2B6C1D11
                 Name: Example Updater
       Developer Name: Example Inc.
      Team Identifier: ABCDE12345
                 Type: legacy agent (0x10010)
                Flags: [  ] (0)
          Disposition: [enabled, allowed, visible, notified] (0xb)
           Identifier: 16.com.example.updater
                  URL: file:///Library/LaunchAgents/com.example.updater.plist
      Executable Path: /Library/Application Support/Example/updater
           Generation: 1
    Parent Identifier: Example Inc.

 #2:
                 UUID: 3A1F9C22-5E1B-4F3A-9C7D-1E2B3C4D5E6F
                 Name: devicetrust
       Developer Name: Unknown Developer
                 Type: legacy agent (0x10010)
                Flags: [  ] (0)
          Disposition: [disabled, allowed, visible, notified] (0xa)
           Identifier: 16.com.devicetrust.renew
                  URL: file:///Users/alice/Library/LaunchAgents/com.devicetrust.renew.plist
      Executable Path: /usr/local/bin/devicetrust
           Generation: 4
    Parent Identifier: Unknown Developer

========================
 Records for UID 502 : 7C8D9E0F-1A2B-3C4D-5E6F-708192A3B4C5
========================

 Items:

 #1:
                 UUID: 9E8D7C6B-5A49-3827-1605-F4E3D2C1B0A9
                 Name: devicetrust
       Developer Name: Unknown Developer
          Disposition: [enabled, allowed, visible, notified] (0xb)
           Identifier: 16.com.devicetrust.renew
                  URL: file:///Library/LaunchAgents/com.devicetrust.renew.plist
";

    #[test]
    fn dumpbtm_items_are_parsed_per_user() {
        let items = parse_dumpbtm(DUMPBTM);
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].uid, Some(501));
        assert_eq!(items[0].name.as_deref(), Some("Example Updater"));
        assert_eq!(items[0].developer.as_deref(), Some("Example Inc."));
        assert_eq!(items[0].enabled, Some(true));
        assert_eq!(
            items[1].identifier.as_deref(),
            Some("16.com.devicetrust.renew")
        );
        assert_eq!(items[1].enabled, Some(false));
        assert_eq!(items[2].uid, Some(502));
    }

    #[test]
    fn the_users_switch_decides_background_task_enabled() {
        let items = parse_dumpbtm(DUMPBTM);
        let label = "com.devicetrust.renew";
        assert_eq!(background_task_enabled(&items, 501, label), Some(false));
        assert_eq!(background_task_enabled(&items, 502, label), Some(true));
        // A user BTM has no record of: unknown, not "disabled".
        assert_eq!(background_task_enabled(&items, 503, label), None);
        assert_eq!(background_task_enabled(&[], 501, label), None);
        assert_eq!(
            background_task_enabled(&items, 501, "com.example.updater"),
            Some(true)
        );
    }

    #[test]
    fn an_identifier_only_matches_the_whole_label() {
        let item = |id: &str| BtmItem {
            identifier: Some(id.into()),
            ..BtmItem::default()
        };
        let label = "com.devicetrust.renew";
        assert!(item("com.devicetrust.renew").is_job(label));
        assert!(item("16.com.devicetrust.renew").is_job(label));
        assert!(!item("x.com.devicetrust.renew").is_job(label));
        assert!(!item("16.evilcom.devicetrust.renew").is_job(label));
        assert!(!item("com.devicetrust.renewal").is_job(label));
    }

    #[test]
    fn dispositions() {
        assert_eq!(
            disposition_enabled("[enabled, allowed, visible, notified] (0xb)"),
            Some(true)
        );
        assert_eq!(
            disposition_enabled("[disabled, allowed, visible] (0xa)"),
            Some(false)
        );
        assert_eq!(disposition_enabled("garbage"), None);
    }

    #[test]
    fn launchctl_argv_is_fixed() {
        assert_eq!(
            bootstrap_argv(501, Path::new("/Users/a/Library/LaunchAgents/x.plist")),
            [
                "/bin/launchctl",
                "bootstrap",
                "gui/501",
                "/Users/a/Library/LaunchAgents/x.plist"
            ]
            .map(OsString::from)
        );
        assert_eq!(
            bootout_argv(501, "com.devicetrust.renew"),
            ["/bin/launchctl", "bootout", "gui/501/com.devicetrust.renew"].map(OsString::from)
        );
        assert_eq!(
            print_argv(501, "com.okta.devicetrust"),
            ["/bin/launchctl", "print", "gui/501/com.okta.devicetrust"].map(OsString::from)
        );
    }

    /// `launchctl print gui/501/com.devicetrust.renew` on macOS 14 (trimmed).
    const PRINT: &str = "\
gui/501/com.devicetrust.renew = {
\tactive count = 1
\tpath = /Users/alice/Library/LaunchAgents/com.devicetrust.renew.plist
\ttype = LaunchAgent
\tstate = running

\tprogram = /usr/local/bin/devicetrust
\targuments = {
\t\t/usr/local/bin/devicetrust
\t\trenew
\t\t--store
\t\tfile:/Users/alice/dt
\t}

\tenvironment = {
\t\tXPC_SERVICE_NAME => com.devicetrust.renew
\t}

\tevent triggers = {
\t}
}
";

    #[test]
    fn the_loaded_arguments_are_read_from_launchctl_print() {
        assert_eq!(
            parse_print_arguments(PRINT),
            Some(
                [
                    "/usr/local/bin/devicetrust",
                    "renew",
                    "--store",
                    "file:/Users/alice/dt"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            parse_print_arguments("gui/501/x = {\n\tstate = waiting\n}\n"),
            None
        );
        // A block that never closes is not trusted.
        assert_eq!(parse_print_arguments("\targuments = {\n\t\t/x\n"), None);
    }

    #[test]
    fn a_run_started_by_launchd_for_the_job_is_recognised() {
        assert!(started_as(
            Some("com.devicetrust.renew"),
            "com.devicetrust.renew"
        ));
        assert!(!started_as(
            Some("application.com.apple.Terminal.1"),
            "com.devicetrust.renew"
        ));
        assert!(!started_as(Some("0"), "com.devicetrust.renew"));
        assert!(!started_as(None, "com.devicetrust.renew"));
    }

    #[test]
    fn not_loaded_is_recognised() {
        assert!(bootout_says_not_loaded(Some(3), ""));
        assert!(bootout_says_not_loaded(
            Some(5),
            "Boot-out failed: 113: Could not find specified service"
        ));
        assert!(!bootout_says_not_loaded(
            Some(5),
            "Boot-out failed: 5: Input/output error"
        ));
    }

    #[cfg(unix)]
    #[test]
    fn run_captures_output_and_enforces_the_timeout() {
        let sh = |script: &str| ["/bin/sh", "-c", script].map(OsString::from).to_vec();
        let done = run(
            &sh("echo out; echo err >&2; exit 7"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(done.code, Some(7));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.message(), "err");
        let started = std::time::Instant::now();
        let slow = run(&sh("kill -STOP $$"), Duration::from_millis(200));
        assert!(
            matches!(&slow, Err(LaunchdError::TimedOut(t)) if t.program == "/bin/sh"),
            "{slow:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(matches!(
            run(&["/nonexistent/x".into()], Duration::from_secs(1)),
            Err(LaunchdError::Spawn { .. })
        ));
    }
}
