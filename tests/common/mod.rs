//! The test environment: a simulator on loopback, a temporary root, and the built binary.
//!
//! Like a test `Environment` that spawns a real server, it tears everything down on drop.
#![allow(dead_code)]

pub mod browser;
pub mod markdown;
pub mod scepca;
pub mod scepserver;

use devicetrust::pki::{Authority, CertificateInfo};
use devicetrust::sim::{SimConfig, Simulator};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tempfile::TempDir;

pub const USER: &str = "tester";
pub const DEVICE_UUID: &str = "0F3C1D2E-4B5A-4C6D-8E9F-A0B1C2D3E4F5";
pub const DEVICE_NAME: &str = "Test Mac";
pub const DAY: u64 = 24 * 3600;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pki-fixtures")
        .join(name)
}

fn fixture_authority(cert: &str, key: &str) -> Authority {
    let read = |n: &str| std::fs::read_to_string(fixture(n)).unwrap();
    Authority::from_pem(&read(cert), &read(key)).unwrap()
}

pub struct Env {
    pub sim: Simulator,
    pub root: TempDir,
}

impl Env {
    /// A simulator issuing certificates valid for `validity_days`, and a configured root.
    pub fn new(validity_days: u64) -> Env {
        let sim = Simulator::start(SimConfig {
            validity: Duration::from_secs(validity_days * DAY),
            mtls_authority: Some(fixture_authority("mtls-ca.pem", "mtls-ca.key")),
            tls_authority: Some(fixture_authority("tls-ca.pem", "tls-ca.key")),
            ..SimConfig::default()
        })
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        let env = Env { sim, root };
        std::fs::create_dir_all(env.etc()).unwrap();
        std::fs::write(env.etc().join("tls-ca.pem"), env.sim.tls_ca_pem()).unwrap();
        env.write_token(&env.sim.org_token());
        env.write_config("");
        env
    }

    pub fn etc(&self) -> PathBuf {
        self.root.path().join("etc/devicetrust")
    }

    pub fn token_file(&self) -> PathBuf {
        self.etc().join("org-token")
    }

    pub fn write_token(&self, token: &str) {
        std::fs::write(self.token_file(), format!("{token}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.token_file(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }

    /// The configuration file a Jamf admin would deploy, plus `extra` TOML lines.
    pub fn write_config(&self, extra: &str) {
        // Fast retries unless the test sets its own [network] table.
        let network = if extra.contains("[network]") {
            ""
        } else {
            "[network]\nretry_base_delay_ms = 5\ntimeout_secs = 5\nconnect_timeout_secs = 2\n"
        };
        let config = format!(
            "org_url = {:?}\nca_file = {:?}\n{extra}\n{network}",
            self.sim.org_url(),
            self.etc().join("tls-ca.pem").display().to_string(),
        );
        std::fs::write(self.etc().join("config.toml"), config).unwrap();
    }

    /// The binary with this root, user and device, and no DEVICETRUST_* from the outside.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_as(USER, DEVICE_UUID, args)
    }

    /// As [`Env::command`], acting for `user`.
    pub fn command_for(&self, user: &str, args: &[&str]) -> Command {
        self.command_as(user, DEVICE_UUID, args)
    }

    /// `command` on a Mac with another hardware UUID (its own place in the renewal spread).
    pub fn command_for_device(&self, device_uuid: &str, args: &[&str]) -> Command {
        self.command_as(USER, device_uuid, args)
    }

    fn command_as(&self, user: &str, device_uuid: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_devicetrust"));
        cmd.args(args).args(["--root"]).arg(self.root.path()).args([
            "--user",
            user,
            "--device-uuid",
            device_uuid,
            "--device-name",
            DEVICE_NAME,
        ]);
        for (key, _) in std::env::vars() {
            if key.starts_with("DEVICETRUST_") || key.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        Run::from(cmd.output().unwrap())
    }

    /// `args` plus `--org-token-file` pointing at the token.
    pub fn run_with_token(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.arg("--org-token-file").arg(self.token_file());
        Run::from(cmd.output().unwrap())
    }

    pub fn enroll(&self) -> Run {
        self.run_with_token(&["enroll"])
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root
            .path()
            .join("home")
            .join(USER)
            .join(".local/state/devicetrust")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.state_dir().join("identity")
    }

    /// The live generation of the file store.
    pub fn generation(&self) -> PathBuf {
        let name = std::fs::read_to_string(self.store_dir().join("CURRENT")).unwrap();
        self.store_dir().join(name.trim())
    }

    pub fn certificate(&self) -> CertificateInfo {
        let pem = std::fs::read_to_string(self.generation().join("cert.pem")).unwrap();
        CertificateInfo::from_pem(&pem).unwrap()
    }

    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(self.generation().join("key.pem")).unwrap()
    }

    /// Every file under the user's home, path -> bytes: the device as the agent left it.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect(&self.root.path().join("home"), &mut files);
        files
    }

    /// The requests the simulator saw whose path ends with `suffix` (e.g. "/enroll/macos").
    pub fn requests_to(&self, suffix: &str) -> Vec<devicetrust::sim::RequestRecord> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with(suffix))
            .collect()
    }

    pub fn status_json(&self) -> serde_json::Value {
        let run = self.run(&["status", "--json"]);
        assert_eq!(run.code, 0, "{run:?}");
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// `ea --plan`'s output, which always exits 0.
    pub fn ea_plan(&self) -> String {
        let run = self.run(&["ea", "--plan"]);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
    }

    pub fn ea(&self) -> String {
        let run = self.run(&["ea"]);
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
    }
}

/// A loopback port nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every program `cmd` and its descendants execute, with its whole argv, as the kernel saw it:
/// `cmd` run under `strace -f -e trace=execve`, the record appended to `log`. The account does
/// not rest on the agent's own `-v` lines. `None` where strace is missing (Debian package
/// strace, which scripts/test.sh installs); under CI that fails instead.
pub fn execve_traced(cmd: &Command, log: &Path) -> Option<Command> {
    traced_with(cmd, log, "trace=execve")
}

/// `cmd` under `strace -f -e <filter>` (every process it starts followed), its record in
/// `log`; `None` where strace is missing or cannot trace here (under CI that fails instead).
pub fn traced_with(cmd: &Command, log: &Path, filter: &str) -> Option<Command> {
    let usable = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=execve", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            std::env::var_os("CI").is_none(),
            "strace is missing or cannot trace here (Debian package strace)"
        );
        eprintln!("skipped: strace is not installed; children's argv not traced");
        return None;
    }
    let mut traced = Command::new("strace");
    traced
        .args(["-f", "-qq", "-s", "65535", "-e", filter, "-A", "-o"])
        .arg(log)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => traced.env(key, value),
            None => traced.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        traced.current_dir(dir);
    }
    Some(traced)
}

/// The programs a trace of [`execve_traced`] shows started, each with its argv as strace
/// printed it (`/usr/bin/certutil ["certutil", "-L", ...]`); the first is the traced command.
pub fn executed(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|line| {
            let call = line.split_once("execve(\"")?.1;
            let (program, rest) = call.split_once("\", ")?;
            let argv = &rest[..rest.find("], ")? + 1];
            // A failed attempt (a PATH search) ends "= -1 ENOENT ..."; an interleaved line
            // ends "<unfinished ...>" and still carries the whole argv.
            (!line.contains(") = -1 ")).then(|| format!("{program} {argv}"))
        })
        .collect()
}

fn collect(dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.file_name().is_some_and(|n| n != "lock") {
            files.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
}

/// Runs `cmd` to its end: what it printed and returned, and its peak resident memory in KiB
/// (the kernel's `ru_maxrss` for that one child, from `wait4`; other tests' children in this
/// process do not count).
pub fn run_with_peak_memory(cmd: &mut Command) -> (Run, u64) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr_pipe.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let stderr = stderr.join().unwrap();
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointers are valid for the call; `pid` is our own unwaited child.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "{}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let run = Run {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    (run, u64::try_from(usage.ru_maxrss).unwrap())
}

/// What one run of the binary printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn error_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .filter(|l| l.starts_with("ERROR:"))
            .collect()
    }

    /// The single ERROR line of a failed run.
    pub fn error(&self) -> &str {
        let lines = self.error_lines();
        assert_eq!(lines.len(), 1, "expected exactly one ERROR line: {self:?}");
        lines[0]
    }

    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A FIFO at `path` with `mode`, as `mkfifo` makes it.
pub fn make_fifo(path: &std::path::Path, mode: libc::mode_t) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), mode) };
    assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
}
