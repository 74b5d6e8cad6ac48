//! How the NSS tools are started: found in fixed system directories, with an empty stdin, no
//! controlling terminal, a clean environment and a timeout, and, when root works on a user's
//! database, as that user (`setpriv`), so the files stay the user's and no link the user
//! planted is followed with root's rights. Secret material reaches a tool only as a 0600 file
//! in a private temporary directory ([`SecretDir`]), never on its command line.

use super::NssError;
use crate::platform::children::ChildError;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where the tools are looked for. A fixed list rather than `$PATH`: the agent runs as root
/// from an MDM or a timer, and a directory an attacker can write to must not supply `certutil`.
const SEARCH_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// How long one run of a tool may take. `certutil` and `pk12util` finish in milliseconds on a
/// database of a few hundred KiB; one that takes seconds is stuck (a FIFO where the database
/// should be, a PKCS#11 module of the user's that blocks, a process the user stopped, all under
/// the user's uid), and the run's own deadline may cut it shorter still.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// The programs the NSS integration starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Certutil,
    Pk12util,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Certutil => "certutil",
            Tool::Pk12util => "pk12util",
        }
    }

    /// The package that ships the tool, for the error an admin reads.
    pub fn package(self) -> &'static str {
        "libnss3-tools on Debian and Ubuntu, nss-tools on Fedora and RHEL"
    }
}

/// What a tool printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Starts the NSS tools. Tests substitute a recorder to see every argv.
pub trait ToolRunner {
    /// Runs `tool` with `args` (no secret among them) and returns what it printed.
    fn run(&self, tool: Tool, args: &[OsString]) -> Result<ToolOutput, NssError>;

    /// The (uid, gid) the tools run as, when that is not this process's user: files handed to
    /// the tools are given to that user so they can read them.
    fn run_as(&self) -> Option<RunAs>;

    /// Whether `tool` can be run at all: checked before anything is changed, so a device
    /// without NSS's tools is left exactly as it was (no empty database folder).
    fn has(&self, tool: Tool) -> bool {
        let _ = tool;
        true
    }
}

/// A user to run the tools as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// The user has a password-database entry: take its supplementary groups
    /// (`--init-groups`); otherwise drop all (`--clear-groups`), as setpriv cannot look them up.
    pub init_groups: bool,
}

impl RunAs {
    /// The user `uid`: the primary group from the password database, else `fallback_gid`.
    pub fn uid(uid: u32, fallback_gid: u32) -> RunAs {
        match primary_gid(uid) {
            Some(gid) => RunAs {
                uid,
                gid,
                init_groups: true,
            },
            None => RunAs {
                uid,
                gid: fallback_gid,
                init_groups: false,
            },
        }
    }
}

/// Runs the real tools.
#[derive(Debug, Clone)]
pub struct SystemRunner {
    run_as: Option<RunAs>,
    timeout: Duration,
    /// Where the tools are looked for, if not in [`SEARCH_DIRS`]: a test's stand-ins.
    #[cfg(test)]
    tool_dir: Option<PathBuf>,
}

impl SystemRunner {
    /// Runs the tools as this process's user.
    pub fn current_user() -> SystemRunner {
        SystemRunner {
            run_as: None,
            timeout: TOOL_TIMEOUT,
            #[cfg(test)]
            tool_dir: None,
        }
    }

    /// Runs the tools as `run_as` (this process must be root).
    pub fn as_user(run_as: RunAs) -> SystemRunner {
        SystemRunner {
            run_as: Some(run_as),
            ..SystemRunner::current_user()
        }
    }

    /// Gives each run of a tool `timeout` instead of [`TOOL_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> SystemRunner {
        self.timeout = timeout;
        self
    }

    /// Takes the tools from `dir` instead of the system's folders: a test's stand-ins, run
    /// exactly as the real tools are.
    #[cfg(test)]
    pub fn with_tools_from(mut self, dir: &Path) -> SystemRunner {
        self.tool_dir = Some(dir.to_owned());
        self
    }

    fn find_tool(&self, tool: Tool) -> Option<PathBuf> {
        #[cfg(test)]
        if let Some(dir) = &self.tool_dir {
            let path = dir.join(tool.name());
            return path.is_file().then_some(path);
        }
        find(tool.name())
    }

    /// The runner for a database under `home`: as root, the tools run as the home folder's
    /// owner (unless that is root); otherwise as this process's user.
    pub fn for_home(home: &Path) -> Result<SystemRunner, NssError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(SystemRunner::current_user());
        }
        let meta = fs::metadata(home).map_err(|e| NssError::Io {
            action: "reading the home folder's owner",
            path: home.to_owned(),
            reason: e.to_string(),
        })?;
        if meta.uid() == 0 {
            return Ok(SystemRunner::current_user());
        }
        Ok(SystemRunner::as_user(RunAs::uid(meta.uid(), meta.gid())))
    }
}

impl ToolRunner for SystemRunner {
    fn run(&self, tool: Tool, args: &[OsString]) -> Result<ToolOutput, NssError> {
        let program = self.find_tool(tool).ok_or(NssError::ToolMissing {
            tool: tool.name(),
            package: tool.package(),
        })?;
        let (program, argv) = match self.run_as {
            None => (program, args.to_vec()),
            Some(run_as) => {
                let setpriv = find("setpriv").ok_or(NssError::ToolMissing {
                    tool: "setpriv",
                    package: "util-linux",
                })?;
                (setpriv, setpriv_argv(run_as, &program, args))
            }
        };
        let mut command = Command::new(&program);
        command
            .args(&argv)
            .env_clear()
            .env("PATH", SEARCH_DIRS.join(":"))
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // In a session of its own the tool has no controlling terminal: NSS prompts for a
        // database password on /dev/tty, so a database with one fails at once.
        let output = crate::platform::children::run(&mut command, tool.name(), self.timeout, None)
            .map_err(|e| match e {
                ChildError::TimedOut(stopped) => NssError::TimedOut(stopped),
                other => NssError::Spawn {
                    tool: tool.name(),
                    reason: other.to_string(),
                },
            })?;
        Ok(ToolOutput {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    fn has(&self, tool: Tool) -> bool {
        self.find_tool(tool).is_some()
    }

    fn run_as(&self) -> Option<RunAs> {
        self.run_as
    }
}

/// `setpriv` arguments that run `program args` as `run_as`.
pub fn setpriv_argv(run_as: RunAs, program: &Path, args: &[OsString]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        format!("--reuid={}", run_as.uid).into(),
        format!("--regid={}", run_as.gid).into(),
        if run_as.init_groups {
            "--init-groups"
        } else {
            "--clear-groups"
        }
        .into(),
        "--".into(),
        program.as_os_str().to_owned(),
    ];
    argv.extend(args.iter().cloned());
    argv
}

fn find(name: &str) -> Option<PathBuf> {
    SEARCH_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| {
            fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn primary_gid(uid: u32) -> Option<u32> {
    // SAFETY: passwd is plain old data; all-zero is a valid value to be filled in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call and `buf` outlives it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_gid)
}

/// A private temporary directory for the files a tool must read (the PKCS#12 and its
/// password), removed with everything in it when dropped.
///
/// When the tools run as another user the directory stays root's with mode 0711, so that user
/// can open the files by name but cannot list, add or swap anything in it; each file is 0600
/// and given to that user. Otherwise the directory is 0700 and the files 0600.
pub struct SecretDir {
    dir: tempfile::TempDir,
    owner: Option<RunAs>,
}

impl SecretDir {
    pub fn new(owner: Option<RunAs>) -> Result<SecretDir, NssError> {
        let io = |e: std::io::Error| NssError::Io {
            action: "creating a private temporary directory",
            path: std::env::temp_dir(),
            reason: e.to_string(),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".devicetrust-nss-");
        let mode = if owner.is_some() { 0o711 } else { 0o700 };
        builder.permissions(fs::Permissions::from_mode(mode));
        let dir = builder.tempdir().map_err(io)?;
        // The umask may have narrowed the mode; 0711 must really allow traversal.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).map_err(io)?;
        Ok(SecretDir { dir, owner })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to a new file `name` (0600, created exclusively, never through a
    /// link) and hands it to the tools' user; returns its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, NssError> {
        let path = self.dir.path().join(name);
        let io = |e: std::io::Error| NssError::Io {
            action: "writing a private temporary file",
            path: path.clone(),
            reason: e.to_string(),
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io)?;
        file.write_all(contents).map_err(io)?;
        if let Some(owner) = self.owner {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(io)?;
        }
        Ok(path)
    }
}

/// `OsString` from anything path-like or textual, for building argv.
pub fn arg(value: impl AsRef<OsStr>) -> OsString {
    value.as_ref().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_another_user_the_tool_runs_under_setpriv_with_numeric_ids() {
        let args = vec![arg("-L"), arg("-d"), arg("sql:/home/u/.pki/nssdb")];
        let known = RunAs {
            uid: 1000,
            gid: 1000,
            init_groups: true,
        };
        assert_eq!(
            setpriv_argv(known, Path::new("/usr/bin/certutil"), &args),
            [
                "--reuid=1000",
                "--regid=1000",
                "--init-groups",
                "--",
                "/usr/bin/certutil",
                "-L",
                "-d",
                "sql:/home/u/.pki/nssdb"
            ]
            .map(OsString::from)
        );
        let unknown = RunAs {
            uid: 4242,
            gid: 4243,
            init_groups: false,
        };
        let argv = setpriv_argv(unknown, Path::new("/usr/bin/pk12util"), &[]);
        assert_eq!(argv[2], "--clear-groups");
    }

    #[test]
    fn run_as_looks_up_the_primary_group_and_falls_back_for_unknown_uids() {
        assert_eq!(
            RunAs::uid(0, 99),
            RunAs {
                uid: 0,
                gid: 0,
                init_groups: true
            }
        );
        // No password-database entry: numeric ids from the home folder, no groups.
        let unknown = RunAs::uid(3_999_999_999, 77);
        assert_eq!(
            unknown,
            RunAs {
                uid: 3_999_999_999,
                gid: 77,
                init_groups: false
            }
        );
    }

    #[test]
    fn secret_files_are_private_and_gone_after_drop() {
        let dir = SecretDir::new(None).unwrap();
        let path = dir.write("pw", b"secret").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&path), 0o600);
        // Never overwrites or follows what is already there.
        assert!(dir.write("pw", b"again").is_err());
        let root = dir.path().to_owned();
        drop(dir);
        assert!(!root.exists());
    }

    #[test]
    fn a_missing_tool_is_named_with_its_package() {
        assert!(find("definitely-not-a-tool-devicetrust").is_none());
        let err = NssError::ToolMissing {
            tool: Tool::Certutil.name(),
            package: Tool::Certutil.package(),
        };
        let text = err.to_string();
        assert!(text.contains("certutil"), "{text}");
        assert!(text.contains("libnss3-tools"), "{text}");
    }
}
