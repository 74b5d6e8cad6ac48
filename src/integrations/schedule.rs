//! The renewal job: a launchd LaunchAgent (macOS layout) or a systemd user timer (Linux), run
//! daily at the device's own minute (`renewal::RenewalPolicy`) and at login.
//!
//! Files are rendered and installed here; loading them (`launchctl bootstrap`) is the host's
//! job control, told by `Installed::changed` when to do it. The job's command line repeats the
//! options the enrollment used (`--config`, `--store`, `--root`), so running it exactly as
//! installed acts on this device as the enrollment did.

use crate::fsutil;
use crate::paths::{rooted, Layout};
use std::path::{Path, PathBuf};

/// The launchd label, also the plist's file name.
pub const LABEL: &str = "com.devicetrust.renew";
/// Where the pkg installs the binary.
pub const DEFAULT_PROGRAM: &str = "/usr/local/bin/devicetrust";
pub const SERVICE_UNIT: &str = "devicetrust-renew.service";
pub const TIMER_UNIT: &str = "devicetrust-renew.timer";
/// Positive: a background job yields to the user (the old task's `Nice -20` did the opposite).
pub const NICE: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("the renewal job's program {0} must be an absolute path")]
    RelativeProgram(PathBuf),
    #[error(
        "the renewal job's argument {0:?} cannot go into a job definition (it must be UTF-8 \
         without quotes, backslashes or control characters)"
    )]
    UnsafeProgram(String),
    #[error("cannot render the renewal job: {0}")]
    Render(String),
    #[error("cannot write the renewal job file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove the renewal job file {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// The job

/// Which scheduler runs the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `~/Library/LaunchAgents/com.devicetrust.renew.plist`.
    LaunchAgent,
    /// `~/.config/systemd/user/devicetrust-renew.{service,timer}`.
    SystemdUser,
}

impl JobKind {
    pub fn for_layout(layout: Layout) -> JobKind {
        match layout {
            Layout::Mac => JobKind::LaunchAgent,
            Layout::Linux => JobKind::SystemdUser,
        }
    }
}

/// The renewal job of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalJob {
    /// The agent binary as the scheduler will run it.
    pub program: PathBuf,
    /// Options after `renew` (`--config`, `--store`, `--root` when not the defaults).
    pub options: Vec<String>,
    /// The user's home as the scheduler sees it (not under `--root`): paths *inside* the job
    /// are run-time paths, while the files themselves are written under the root.
    pub home: PathBuf,
    /// The daily run's local time, minutes after midnight.
    pub minute_of_day: u32,
}

impl RenewalJob {
    pub fn new(home: &Path, minute_of_day: u32) -> RenewalJob {
        RenewalJob {
            program: PathBuf::from(DEFAULT_PROGRAM),
            options: Vec::new(),
            home: home.to_owned(),
            minute_of_day,
        }
    }

    pub fn hour(&self) -> u32 {
        self.minute_of_day / 60
    }

    pub fn minute(&self) -> u32 {
        self.minute_of_day % 60
    }

    /// The job's log on macOS. launchd does not expand `~`, so the path is absolute.
    pub fn log_path(&self) -> PathBuf {
        self.home.join("Library/Logs/devicetrust/renew.log")
    }

    /// The job's full argv. Every argument must survive a plist and a unit file unchanged.
    pub fn args(&self) -> Result<Vec<String>, ScheduleError> {
        if !self.program.is_absolute() {
            return Err(ScheduleError::RelativeProgram(self.program.clone()));
        }
        let program = self
            .program
            .to_str()
            .ok_or_else(|| ScheduleError::UnsafeProgram(self.program.display().to_string()))?;
        let mut args = vec![program.to_owned(), "renew".to_owned()];
        args.extend(self.options.iter().cloned());
        for arg in &args {
            if arg.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
                return Err(ScheduleError::UnsafeProgram(arg.clone()));
            }
        }
        Ok(args)
    }

    /// The LaunchAgent property list (XML).
    pub fn launch_agent_plist(&self) -> Result<Vec<u8>, ScheduleError> {
        use plist::{Dictionary, Value};
        let log = self
            .log_path()
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| ScheduleError::Render("the home folder is not UTF-8".into()))?;
        let mut calendar = Dictionary::new();
        calendar.insert(
            "Hour".into(),
            Value::Integer(i64::from(self.hour()).into()),
        );
        calendar.insert(
            "Minute".into(),
            Value::Integer(i64::from(self.minute()).into()),
        );
        let args = self.args()?.into_iter().map(Value::String).collect();
        let mut job = Dictionary::new();
        job.insert("Label".into(), Value::String(LABEL.into()));
        job.insert("ProgramArguments".into(), Value::Array(args));
        // At login, then daily; launchd runs a calendar job missed during sleep on wake.
        job.insert("RunAtLoad".into(), Value::Boolean(true));
        job.insert("StartCalendarInterval".into(), Value::Dictionary(calendar));
        job.insert("StandardOutPath".into(), Value::String(log.clone()));
        job.insert("StandardErrorPath".into(), Value::String(log));
        job.insert("ProcessType".into(), Value::String("Background".into()));
        job.insert("LowPriorityIO".into(), Value::Boolean(true));
        job.insert("Nice".into(), Value::Integer(NICE.into()));
        let mut xml = Vec::new();
        Value::Dictionary(job)
            .to_writer_xml(&mut xml)
            .map_err(|e| ScheduleError::Render(e.to_string()))?;
        xml.push(b'\n');
        Ok(xml)
    }

    /// The systemd user service: one `renew` run, at low CPU and I/O priority.
    pub fn systemd_service(&self) -> Result<String, ScheduleError> {
        // `%` introduces a specifier in unit files; a literal one is written `%%`. An argument
        // with a space is quoted (quotes and backslashes were refused above).
        let exec = self
            .args()?
            .iter()
            .map(|arg| {
                let arg = arg.replace('%', "%%");
                if arg.contains(' ') {
                    format!("\"{arg}\"")
                } else {
                    arg
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        Ok(format!(
            "[Unit]\n\
             Description=Renew the device-trust client certificate when it is due\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             ExecStart={exec}\n\
             Nice={NICE}\n\
             IOSchedulingClass=idle\n"
        ))
    }

    /// The systemd user timer: daily at the device's minute, and shortly after the user's
    /// service manager starts (their first login), the counterpart of launchd's `RunAtLoad`.
    pub fn systemd_timer(&self) -> String {
        format!(
            "[Unit]\n\
             Description=Renew the device-trust client certificate daily and at login\n\
             \n\
             [Timer]\n\
             OnCalendar=*-*-* {hour:02}:{minute:02}:00\n\
             OnStartupSec=2min\n\
             Persistent=true\n\
             Unit={SERVICE_UNIT}\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n",
            hour = self.hour(),
            minute = self.minute(),
        )
    }
}

/// The LaunchAgent's file, under the root.
pub fn launch_agent_path(root: &Path, home: &Path) -> PathBuf {
    rooted(
        root,
        &home
            .join("Library/LaunchAgents")
            .join(format!("{LABEL}.plist")),
    )
}

/// The LaunchAgent the installer package puts in `/Library/LaunchAgents` for every user.
pub fn package_launch_agent_path(root: &Path) -> PathBuf {
    rooted(
        root,
        &Path::new("/Library/LaunchAgents").join(format!("{LABEL}.plist")),
    )
}

/// Whether the package's global LaunchAgent is there and is ours (label and `renew`). It runs
/// for every user at login and daily, so a per-user job of the same label would be shadowed by
/// it: launchd loads one job per label in a user's domain.
pub fn package_job_present(root: &Path) -> bool {
    let Ok(value) = plist::Value::from_file(package_launch_agent_path(root)) else {
        return false;
    };
    let Some(dict) = value.as_dictionary() else {
        return false;
    };
    let label_ok = dict.get("Label").and_then(|v| v.as_string()) == Some(LABEL);
    let renews = dict
        .get("ProgramArguments")
        .and_then(|v| v.as_array())
        .is_some_and(|args| args.iter().any(|a| a.as_string() == Some("renew")));
    label_ok && renews
}

/// The systemd user unit directory, under the root.
pub fn systemd_unit_dir(root: &Path, home: &Path) -> PathBuf {
    rooted(root, &home.join(".config/systemd/user"))
}

/// Where `systemctl --user enable` would link the timer; we make the same link ourselves so
/// the timer is enabled even when root installs it while the user's manager is not running.
fn timer_wants_link(root: &Path, home: &Path) -> PathBuf {
    systemd_unit_dir(root, home)
        .join("timers.target.wants")
        .join(TIMER_UNIT)
}

/// What `install` left on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub files: Vec<PathBuf>,
    /// Something was written: the backend reloads the job (bootstrap, daemon-reload).
    pub changed: bool,
}

/// Writes `bytes` unless the file already holds them; true when written.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, ScheduleError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    // 0644: launchd and systemd refuse job files that others can write, and need to read them.
    fsutil::atomic_write(path, bytes, 0o644).map_err(|source| ScheduleError::Write {
        path: path.to_owned(),
        source,
    })?;
    Ok(true)
}

/// Installs (or updates) the job's files.
pub fn install(root: &Path, job: &RenewalJob, kind: JobKind) -> Result<Installed, ScheduleError> {
    match kind {
        JobKind::LaunchAgent => {
            let path = launch_agent_path(root, &job.home);
            let changed = write_if_changed(&path, &job.launch_agent_plist()?)?;
            // launchd opens the log but does not create its folder.
            let log_dir = job.log_path();
            if let Some(dir) = log_dir.parent() {
                let dir = rooted(root, dir);
                std::fs::create_dir_all(&dir)
                    .map_err(|source| ScheduleError::Write { path: dir, source })?;
            }
            Ok(Installed {
                files: vec![path],
                changed,
            })
        }
        JobKind::SystemdUser => {
            let dir = systemd_unit_dir(root, &job.home);
            let service = dir.join(SERVICE_UNIT);
            let timer = dir.join(TIMER_UNIT);
            let mut changed = write_if_changed(&service, job.systemd_service()?.as_bytes())?;
            changed |= write_if_changed(&timer, job.systemd_timer().as_bytes())?;
            let link = timer_wants_link(root, &job.home);
            changed |= ensure_wants_link(&link)?;
            Ok(Installed {
                files: vec![service, timer, link],
                changed,
            })
        }
    }
}

#[cfg(unix)]
fn ensure_wants_link(link: &Path) -> Result<bool, ScheduleError> {
    let target = Path::new("..").join(TIMER_UNIT);
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(false);
    }
    let write_err = |source| ScheduleError::Write {
        path: link.to_owned(),
        source,
    };
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(write_err)?;
    }
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(write_err(e)),
    }
    std::os::unix::fs::symlink(&target, link).map_err(write_err)?;
    Ok(true)
}

#[cfg(not(unix))]
fn ensure_wants_link(_link: &Path) -> Result<bool, ScheduleError> {
    Ok(false)
}

/// Removes the job's files (after the backend has unloaded it); returns what was removed.
pub fn remove(root: &Path, home: &Path, kind: JobKind) -> Result<Vec<PathBuf>, ScheduleError> {
    let paths = match kind {
        JobKind::LaunchAgent => vec![launch_agent_path(root, home)],
        JobKind::SystemdUser => {
            let dir = systemd_unit_dir(root, home);
            vec![
                timer_wants_link(root, home),
                dir.join(TIMER_UNIT),
                dir.join(SERVICE_UNIT),
            ]
        }
    };
    let mut removed = Vec::new();
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ScheduleError::Remove { path, source }),
        }
    }
    Ok(removed)
}

/// The health link: the job's files are there and run this program's `renew` (a job with
/// another time of day still renews, so the time is not checked; `repair` rewrites it).
pub fn is_installed(root: &Path, job: &RenewalJob, kind: JobKind) -> bool {
    let Ok(args) = job.args() else {
        return false;
    };
    match kind {
        JobKind::LaunchAgent => {
            let Ok(value) = plist::Value::from_file(launch_agent_path(root, &job.home)) else {
                return false;
            };
            let Some(dict) = value.as_dictionary() else {
                return false;
            };
            let label_ok = dict.get("Label").and_then(|v| v.as_string()) == Some(LABEL);
            let program: Option<Vec<&str>> = dict
                .get("ProgramArguments")
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_string()).collect());
            let expected: Vec<&str> = args.iter().map(String::as_str).collect();
            label_ok && program == Some(expected)
        }
        JobKind::SystemdUser => {
            let dir = systemd_unit_dir(root, &job.home);
            let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
            let (Some(service), Some(timer)) = (read(SERVICE_UNIT), read(TIMER_UNIT)) else {
                return false;
            };
            let Ok(expected) = job.systemd_service() else {
                return false;
            };
            let exec = |text: &str| unit_value(text, "Service", "ExecStart");
            let enabled = cfg!(not(unix)) || timer_wants_link(root, &job.home).exists();
            exec(&service).is_some()
                && exec(&service) == exec(&expected)
                && unit_value(&timer, "Timer", "OnCalendar").is_some()
                && enabled
        }
    }
}

/// The last value of `key` in `[section]` of a unit file (systemd's own rule for repeated
/// single-valued keys). Comments and blank lines are skipped; enough for our own units.
fn unit_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = "";
    let mut found = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
        } else if let Some((k, v)) = line.split_once('=') {
            if current == section && k.trim() == key {
                found = Some(v.trim().to_owned());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(program: &str) -> RenewalJob {
        RenewalJob {
            program: PathBuf::from(program),
            options: Vec::new(),
            home: PathBuf::from("/Users/alice"),
            minute_of_day: 7 * 60 + 5,
        }
    }

    #[test]
    fn the_launch_agent_parses_back_with_every_key() {
        let xml = job("/usr/local/bin/devicetrust")
            .launch_agent_plist()
            .unwrap();
        let value = plist::Value::from_reader_xml(xml.as_slice()).unwrap();
        let d = value.as_dictionary().unwrap();
        let s = |k: &str| d.get(k).and_then(|v| v.as_string()).unwrap().to_owned();
        assert_eq!(s("Label"), LABEL);
        let args: Vec<_> = d["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(args, ["/usr/local/bin/devicetrust", "renew"]);
        assert_eq!(d["RunAtLoad"].as_boolean(), Some(true));
        let cal = d["StartCalendarInterval"].as_dictionary().unwrap();
        assert_eq!(cal["Hour"].as_signed_integer(), Some(7));
        assert_eq!(cal["Minute"].as_signed_integer(), Some(5));
        assert_eq!(
            s("StandardOutPath"),
            "/Users/alice/Library/Logs/devicetrust/renew.log"
        );
        assert_eq!(s("StandardErrorPath"), s("StandardOutPath"));
        assert_eq!(s("ProcessType"), "Background");
        assert_eq!(d["LowPriorityIO"].as_boolean(), Some(true));
        assert!(d["Nice"].as_signed_integer().unwrap() > 0);
    }

    #[test]
    fn the_enrollments_options_are_on_the_jobs_command_line() {
        let mut j = job("/usr/local/bin/devicetrust");
        j.options = ["--store", "file:/srv/dt store", "--root", "/tmp/r"]
            .map(String::from)
            .to_vec();
        let xml = j.launch_agent_plist().unwrap();
        let value = plist::Value::from_reader_xml(xml.as_slice()).unwrap();
        let args: Vec<_> = value.as_dictionary().unwrap()["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap().to_owned())
            .collect();
        assert_eq!(args, j.args().unwrap());
        assert_eq!(&args[1..3], ["renew", "--store"]);
        let service = j.systemd_service().unwrap();
        assert_eq!(
            unit_value(&service, "Service", "ExecStart").unwrap(),
            "/usr/local/bin/devicetrust renew --store \"file:/srv/dt store\" --root /tmp/r"
        );
        for kind in [JobKind::LaunchAgent, JobKind::SystemdUser] {
            let root = tempfile::tempdir().unwrap();
            install(root.path(), &j, kind).unwrap();
            assert!(is_installed(root.path(), &j, kind));
            // The same job without the options is not the one installed.
            assert!(!is_installed(root.path(), &job("/usr/local/bin/devicetrust"), kind));
        }
        j.options.push("--config=/a\"b".into());
        assert!(matches!(j.args(), Err(ScheduleError::UnsafeProgram(_))));
    }

    #[test]
    fn program_paths_are_checked_and_escaped() {
        assert!(matches!(
            job("devicetrust").launch_agent_plist(),
            Err(ScheduleError::RelativeProgram(_))
        ));
        assert!(matches!(
            job("/opt/x\"y/devicetrust").systemd_service(),
            Err(ScheduleError::UnsafeProgram(_))
        ));
        let service = job("/opt/Device Trust/100%/devicetrust")
            .systemd_service()
            .unwrap();
        assert_eq!(
            unit_value(&service, "Service", "ExecStart").unwrap(),
            "\"/opt/Device Trust/100%%/devicetrust\" renew"
        );
    }

    #[test]
    fn the_systemd_units_say_what_we_mean() {
        let j = job("/usr/local/bin/devicetrust");
        let service = j.systemd_service().unwrap();
        let timer = j.systemd_timer();
        let v = |text: &str, sec: &str, key: &str| unit_value(text, sec, key).unwrap();
        assert_eq!(v(&service, "Service", "Type"), "oneshot");
        assert_eq!(
            v(&service, "Service", "ExecStart"),
            "/usr/local/bin/devicetrust renew"
        );
        assert_eq!(v(&service, "Service", "Nice"), "10");
        assert_eq!(v(&service, "Service", "IOSchedulingClass"), "idle");
        assert_eq!(v(&timer, "Timer", "OnCalendar"), "*-*-* 07:05:00");
        assert_eq!(v(&timer, "Timer", "Persistent"), "true");
        assert!(unit_value(&timer, "Timer", "OnStartupSec").is_some());
        assert_eq!(v(&timer, "Install", "WantedBy"), "timers.target");
    }

    #[test]
    fn systemd_analyze_accepts_the_units() {
        let dir = tempfile::tempdir().unwrap();
        // verify checks that ExecStart's program exists and is executable.
        let program = dir.path().join("devicetrust");
        std::fs::write(&program, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut j = job("/");
        j.program = program;
        let service = dir.path().join(SERVICE_UNIT);
        let timer = dir.path().join(TIMER_UNIT);
        std::fs::write(&service, j.systemd_service().unwrap()).unwrap();
        std::fs::write(&timer, j.systemd_timer()).unwrap();
        assert!(timer.exists() && service.exists());
        // The user manager wants a runtime directory; a private one works without a session.
        let runtime = dir.path().join("runtime");
        std::fs::create_dir(&runtime).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let verify = |files: &[&Path]| {
            std::process::Command::new("systemd-analyze")
                .args(["verify", "--user", "--man=no"])
                .args(files)
                .env("XDG_RUNTIME_DIR", &runtime)
                .env("SYSTEMD_LOG_LEVEL", "warning")
                .output()
                .map(|out| String::from_utf8_lossy(&out.stderr).into_owned())
        };
        let Ok(stderr) = verify(&[&service, &timer]) else {
            eprintln!("note: systemd-analyze is not installed; the unit texts were checked above");
            return;
        };
        if stderr.contains("Failed to initialize manager") {
            eprintln!("note: systemd-analyze cannot start a user manager here: {stderr}");
            return;
        }
        // Its complaints name the file and line; nothing may name ours.
        let about = |stderr: &str, file: &Path| stderr.contains(&*file.to_string_lossy());
        assert!(
            !about(&stderr, &service) && !about(&stderr, &timer),
            "systemd-analyze: {stderr}"
        );
        // And the check does catch a broken timer, so its silence above means something.
        let broken = dir.path().join("broken.timer");
        std::fs::write(
            &broken,
            j.systemd_timer()
                .replace("Persistent=true", "Persistent=maybe"),
        )
        .unwrap();
        assert!(about(&verify(&[&service, &broken]).unwrap(), &broken));
    }

    #[test]
    fn install_is_idempotent_rooted_and_detectable_for_both_kinds() {
        for kind in [JobKind::LaunchAgent, JobKind::SystemdUser] {
            let root = tempfile::tempdir().unwrap();
            let j = job("/usr/local/bin/devicetrust");
            assert!(!is_installed(root.path(), &j, kind));
            let first = install(root.path(), &j, kind).unwrap();
            assert!(first.changed);
            for f in &first.files {
                assert!(f.starts_with(root.path().join("Users/alice")), "{f:?}");
                assert!(f.exists(), "{f:?}");
            }
            assert!(is_installed(root.path(), &j, kind), "{kind:?}");
            assert!(!install(root.path(), &j, kind).unwrap().changed);

            // Another program is not our job.
            let mut other = j.clone();
            other.program = PathBuf::from("/opt/other/devicetrust");
            assert!(!is_installed(root.path(), &other, kind));

            // A new time of day rewrites the job.
            let mut later = j.clone();
            later.minute_of_day += 1;
            assert!(install(root.path(), &later, kind).unwrap().changed);

            let removed = remove(root.path(), &j.home, kind).unwrap();
            assert!(!removed.is_empty());
            assert!(!is_installed(root.path(), &j, kind));
            assert!(remove(root.path(), &j.home, kind).unwrap().is_empty());
        }
        let root = tempfile::tempdir().unwrap();
        let j = job("/usr/local/bin/devicetrust");
        install(root.path(), &j, JobKind::LaunchAgent).unwrap();
        assert!(root
            .path()
            .join("Users/alice/Library/Logs/devicetrust")
            .is_dir());
        assert!(root
            .path()
            .join("Users/alice/Library/LaunchAgents/com.devicetrust.renew.plist")
            .is_file());
    }

    #[test]
    fn a_damaged_or_disabled_job_is_not_installed() {
        let root = tempfile::tempdir().unwrap();
        let j = job("/usr/local/bin/devicetrust");
        install(root.path(), &j, JobKind::LaunchAgent).unwrap();
        std::fs::write(launch_agent_path(root.path(), &j.home), b"<plist").unwrap();
        assert!(!is_installed(root.path(), &j, JobKind::LaunchAgent));

        install(root.path(), &j, JobKind::SystemdUser).unwrap();
        std::fs::remove_file(timer_wants_link(root.path(), &j.home)).unwrap();
        assert!(!is_installed(root.path(), &j, JobKind::SystemdUser));
        assert!(
            install(root.path(), &j, JobKind::SystemdUser)
                .unwrap()
                .changed
        );
        assert!(is_installed(root.path(), &j, JobKind::SystemdUser));
    }

    #[test]
    fn the_packages_global_launch_agent_is_recognised() {
        let root = tempfile::tempdir().unwrap();
        assert!(!package_job_present(root.path()));
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pkg/payload/Library/LaunchAgents/com.devicetrust.renew.plist");
        let target = package_launch_agent_path(root.path());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&shipped, &target).unwrap();
        assert!(package_job_present(root.path()));
        // Another tool's job under our file name is not ours.
        std::fs::write(&target, b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>Label</key><string>com.example.other</string></dict></plist>").unwrap();
        assert!(!package_job_present(root.path()));
    }
}
