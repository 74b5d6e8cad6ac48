//! The agent against the tools an admin would compare it with, whole processes each, measured in
//! interleaved pairs (ours, theirs, ours, theirs, ...) so that whatever else the machine does
//! falls on both alike. Each figure is the median of the per-pair ratios, with min and max.
//!
//! * SCEP enrollment vs micromdm `scepclient`, against the same `scepserver` on loopback;
//! * Okta enrollment against the simulator vs `openssl req -new -newkey rsa:2048 -nodes`;
//! * `ea` on a healthy device vs `openssl x509 -noout -checkend 2592000`;
//! * peak RSS of each, and the stripped binary's size with and without the simulator.
//!
//! Run by `scripts/bench.sh`, which builds the binary without the simulator first.

mod common;

use devicetrust::sim::{SimConfig, Simulator};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_devicetrust");
/// A throwaway challenge for a throwaway loopback CA.
const CHALLENGE: &str = "bench-only-challenge";

/// One process run: wall time and peak resident set size.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    max_rss_kib: u64,
}

/// Runs `cmd` to completion; panics on failure (a benchmark of a failing run means nothing).
fn measure(mut cmd: Command) -> Sample {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd.spawn().expect("the command starts");
    let (status, rusage) = wait_with_rusage(child);
    let wall = start.elapsed();
    assert!(status.success(), "{cmd:?} failed: {status}");
    Sample {
        wall,
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(rusage.ru_maxrss).unwrap_or(0),
    }
}

/// `wait4` gives the child's own resource usage (peak RSS), which `Child::wait` does not.
fn wait_with_rusage(mut child: Child) -> (std::process::ExitStatus, libc::rusage) {
    let mut stderr = child.stderr.take();
    let pid = i32::try_from(child.id()).expect("a pid");
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child, which nothing else reaps.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: status and rusage are valid for writes; pid is our child.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
    assert_eq!(waited, pid, "wait4 failed");
    if let Some(mut e) = stderr.take() {
        let mut text = String::new();
        let _ = e.read_to_string(&mut text);
        if !std::process::ExitStatus::from_raw(status).success() {
            eprintln!("{text}");
        }
    }
    (std::process::ExitStatus::from_raw(status), rusage)
}

/// `pairs` interleaved runs of `ours` and `theirs` (each called with the pair's index).
fn pairs(
    n: usize,
    mut ours: impl FnMut(usize) -> Command,
    mut theirs: impl FnMut(usize) -> Command,
) -> (Vec<Sample>, Vec<Sample>) {
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for i in 0..n {
        a.push(measure(ours(i)));
        b.push(measure(theirs(i)));
    }
    (a, b)
}

struct Comparison {
    name: &'static str,
    ours: &'static str,
    theirs: &'static str,
    goal: f64,
    dominated_by: &'static str,
    a: Vec<Sample>,
    b: Vec<Sample>,
}

impl Comparison {
    fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .a
            .iter()
            .zip(&self.b)
            .map(|(a, b)| a.wall.as_secs_f64() / b.wall.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }

    fn median_ms_ours(&self) -> f64 {
        let v: Vec<Duration> = self.a.iter().map(|x| x.wall).collect();
        common::median_ms(&v)
    }

    fn row(&self) -> String {
        let r = self.ratios();
        let median = median(&r);
        let ms = |s: &[Sample]| {
            let v: Vec<Duration> = s.iter().map(|x| x.wall).collect();
            common::median_ms(&v)
        };
        let rss = |s: &[Sample]| s.iter().map(|x| x.max_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        format!(
            "| {} | {} vs {} | **{median:.2}** ({:.2}–{:.2}) | ≤ {:.1} {} | {:.1} / {:.1} | {:.1} / {:.1} |",
            self.name,
            self.ours,
            self.theirs,
            r[0],
            r[r.len() - 1],
            self.goal,
            if median <= self.goal { "met" } else { "**not met**" },
            ms(&self.a),
            ms(&self.b),
            rss(&self.a),
            rss(&self.b),
        )
    }
}

/// The NSS step of an enrollment on its own, `n` times, each into a new database: the agent's
/// own calls (`NssDb::replace_identity` as the NSS link makes it) with the identity of the
/// certificate `cert` (the file store keeps `key.pem` beside it). Median milliseconds.
fn nss_step_ms(cert: &Path, work: &Path, n: usize) -> f64 {
    use devicetrust::integrations::nss::{parse_pem_certificates, NssDb, Ours, SystemRunner};
    let pem = std::fs::read_to_string(cert).unwrap();
    let cert_der = parse_pem_certificates(&pem).unwrap().remove(0);
    let key_pem = std::fs::read_to_string(cert.with_file_name("key.pem")).unwrap();
    let key = devicetrust::pki::PrivateKey::from_pkcs8_pem(&key_pem)
        .unwrap()
        .to_pkcs8_der()
        .unwrap();
    let ours = Ours::issued_by(
        devicetrust::integrations::chrome::OKTA_ISSUER_CN,
        Vec::new(),
    );
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let home = work.join(format!("nss-{i}"));
        std::fs::create_dir_all(&home).unwrap();
        let db = NssDb::in_home(&home, SystemRunner::current_user());
        let start = Instant::now();
        db.replace_identity(&cert_der, &key, &ours, false).unwrap();
        times.push(start.elapsed());
    }
    common::median_ms(&times)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn main() {
    let n: usize = std::env::var("PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let work = tempfile::tempdir().unwrap();

    // --- SCEP: the agent's whole enrollment vs scepclient, same scepserver.
    let scep = ScepServer::start(work.path());
    let scep_root = |i: usize| work.path().join(format!("scep-{i}"));
    let challenge_file = work.path().join("challenge");
    std::fs::write(&challenge_file, CHALLENGE).unwrap();
    let (a, b) = pairs(
        n,
        |i| {
            let mut cmd = agent(&scep_root(i));
            cmd.arg("enroll")
                .args(["--scep-url", &scep.url])
                .args(["--scep-ca-fingerprint", &scep.fingerprint])
                .arg("--scep-challenge-file")
                .arg(&challenge_file);
            cmd
        },
        |i| {
            let mut cmd = Command::new("scepclient");
            cmd.args(["-server-url", &scep.url, "-challenge", CHALLENGE])
                .args(["-keySize", "2048"])
                .arg("-private-key")
                .arg(work.path().join(format!("k{i}.pem")))
                .arg("-certificate")
                .arg(work.path().join(format!("c{i}.pem")))
                .current_dir(work.path());
            cmd
        },
    );
    let scep_row = Comparison {
        name: "SCEP enrollment",
        ours: "`devicetrust enroll` (SCEP)",
        theirs: "micromdm `scepclient`",
        goal: 0.8,
        dominated_by: "RSA-2048 key generation in both (its time varies widely from key to key; \
                       the agent asks GetCACaps and GetCACert meanwhile), then for the agent the \
                       NSS step below, which `scepclient` has no counterpart for, and the store \
                       and job writes",
        a,
        b,
    };

    // --- Okta: the agent's whole enrollment against the simulator vs openssl making a CSR.
    let sim = Simulator::start(SimConfig::default()).unwrap();
    let tls_ca = work.path().join("sim-ca.pem");
    std::fs::write(&tls_ca, sim.tls_ca_pem()).unwrap();
    let token = work.path().join("token");
    std::fs::write(&token, sim.org_token()).unwrap();
    let okta_root = |i: usize| work.path().join(format!("okta-{i}"));
    let (a, b) = pairs(
        n,
        |i| {
            let mut cmd = agent(&okta_root(i));
            cmd.arg("enroll")
                .args(["--org-url", &sim.org_url()])
                .arg("--ca-file")
                .arg(&tls_ca)
                .arg("--org-token-file")
                .arg(&token)
                // A device per run: the simulator allows five certificates per device.
                .args(["--device-uuid", &format!("00000000-0000-4000-8000-{i:012}")]);
            cmd
        },
        |_| {
            let mut cmd = Command::new("openssl");
            cmd.args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
                .args([
                    "-keyout",
                    "/dev/null",
                    "-out",
                    "/dev/null",
                    "-subj",
                    "/CN=Okta MTLS",
                ]);
            cmd
        },
    );
    let okta_row = Comparison {
        name: "Okta enrollment",
        ours: "`devicetrust enroll` (simulator)",
        theirs: "`openssl req -new -newkey rsa:2048 -nodes`",
        goal: 1.0,
        dominated_by: "RSA-2048 key generation in both; the agent fetches the metadata over TLS \
                       meanwhile, then sends the CSR, checks the certificate, stores it and runs \
                       the NSS step below; openssl pays its own start (about 40 ms here)",
        a,
        b,
    };

    // --- ea on a healthy device vs openssl's expiry check of the same certificate.
    let healthy = okta_root(0);
    let cert = std::fs::read_dir(healthy.join("home/bench/.local/state/devicetrust/identity"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("cert.pem").exists())
        .map(|p| p.join("cert.pem"))
        .expect("the enrolled certificate");
    let (a, b) = pairs(
        n,
        |_| {
            let mut cmd = agent(&healthy);
            cmd.arg("ea");
            cmd
        },
        |_| {
            let mut cmd = Command::new("openssl");
            cmd.args(["x509", "-noout", "-checkend", "2592000", "-in"])
                .arg(&cert);
            cmd
        },
    );
    let ea_row = Comparison {
        name: "Extension Attribute",
        ours: "`devicetrust ea` (healthy device)",
        theirs: "`openssl x509 -noout -checkend 2592000`",
        goal: 0.2,
        dominated_by: "process start and reading the configuration, record and store; the \
                       agent checks the whole chain (key, job, policy files, the NSS database by \
                       the digest the last writing run left), openssl one date",
        a,
        b,
    };

    let nss_ms = nss_step_ms(&cert, work.path(), n);

    let rows = [&scep_row, &okta_row, &ea_row];
    let mut table = String::from(
        "| what | compared | ratio, median (min–max) | goal | median ms, ours / theirs | peak RSS MiB, ours / theirs |\n|---|---|---|---|---|---|\n",
    );
    for row in rows {
        table.push_str(&row.row());
        table.push('\n');
    }
    let mut dominated = String::new();
    for row in rows {
        dominated.push_str(&format!("* **{}**: {}.\n", row.name, row.dominated_by));
    }
    let sizes = binary_sizes();
    let markdown = format!(
        "## The agent against its peers (`scripts/bench.sh`)\n\n\
         Whole processes, {n} interleaved pairs each (ours, theirs, ours, ...), on {machine}; \
         the figure is the median of the per-pair ratios of wall time (lower is better for \
         us), with the smallest and largest ratio. Peak RSS is the largest `ru_maxrss` seen \
         (goal ≤ 16 MiB).\n\n{table}\n\
         What dominates each:\n\n{dominated}\n\
         **The NSS step** (Linux only: create the user's database as Chrome does, import the \
         identity, check it; two runs: `pk12util`, which creates the database, and one \
         `certutil -L`), timed alone with \
         the same library calls: median **{nss_ms:.1} ms** of each enrollment above. A Mac has \
         no such step; without it the medians above would be about {scep_without:.0} ms (SCEP) \
         and {okta_without:.0} ms (Okta).\n\n{sizes}\n\
         Reproduce: `scripts/bench.sh` (`PAIRS=41` for more pairs); it needs `scepserver` and \
         `scepclient` (Debian package `scep`) and `openssl`.",
        machine = common::machine(),
        scep_without = scep_row.median_ms_ours() - nss_ms,
        okta_without = okta_row.median_ms_ours() - nss_ms,
    );
    println!("{markdown}");
    common::write_section("ratios", &markdown);
}

/// The agent with its own root, user and device facts.
/// The agent on a fresh device: `root` is made first, as a real device's `/` exists.
fn agent(root: &Path) -> Command {
    std::fs::create_dir_all(root).expect("the device's root");
    let mut cmd = Command::new(AGENT);
    cmd.arg("--root").arg(root).args([
        "--user",
        "bench",
        "--device-uuid",
        "0B0B0B0B-0000-4000-8000-000000000001",
        "--device-name",
        "Bench Mac",
    ]);
    for (key, _) in std::env::vars() {
        if key.starts_with("DEVICETRUST_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The stripped release binary, with the simulator (what `cargo bench` built) and without it
/// (what `scripts/bench.sh` built for the package, in `target/nosim`).
fn binary_sizes() -> String {
    let strip_size = |path: &Path| -> Option<f64> {
        let copy = std::env::temp_dir().join(format!("devicetrust-size-{}", std::process::id()));
        std::fs::copy(path, &copy).ok()?;
        let ok = Command::new("strip").arg(&copy).status().ok()?.success();
        let size = std::fs::metadata(&copy).ok()?.len();
        let _ = std::fs::remove_file(&copy);
        ok.then_some(size as f64 / 1_000_000.0)
    };
    let with = strip_size(Path::new(AGENT));
    let without = strip_size(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/nosim/release/devicetrust"),
    );
    let show = |s: Option<f64>| s.map_or("not built".to_owned(), |mb| format!("{mb:.2} MB"));
    format!(
        "Stripped binary (x86_64 Linux, release): **{}** without the simulator (the package; \
         goal ≤ 6 MB), {} with it (`cargo run -- demo`).\n",
        show(without),
        show(with)
    )
}

struct ScepServer {
    url: String,
    /// The CA's SHA-256 fingerprint: plain http carries the challenge only to a pinned CA.
    fingerprint: String,
    child: Child,
}

impl ScepServer {
    fn start(dir: &Path) -> ScepServer {
        let depot = dir.join("depot");
        let ok = Command::new("scepserver")
            .args(["ca", "-init", "-keySize", "2048", "-depot"])
            .arg(&depot)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("scepserver (Debian package scep) is installed")
            .success();
        assert!(ok, "scepserver ca -init failed");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("scepserver")
            .arg("-depot")
            .arg(&depot)
            .args(["-port", &port.to_string(), "-challenge", CHALLENGE])
            // Every run asks for the same subject; scepserver refuses a second certificate
            // for a subject inside its renewal window unless the window is 0.
            .args(["-allowrenew", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ca_pem = std::fs::read_to_string(depot.join("ca.pem")).expect("the depot's CA");
        let ca_der = devicetrust::pki::pem_decode_all(&ca_pem)
            .expect("the depot's CA is PEM")
            .remove(0)
            .1;
        let server = ScepServer {
            url: format!("http://127.0.0.1:{port}/scep"),
            fingerprint: devicetrust::scep::sha256_fingerprint_hex(&ca_der),
            child,
        };
        wait_ready(port);
        server
    }
}

impl Drop for ScepServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until `scepserver` answers: readiness of a separate process has no signal to wait on.
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream
                .write_all(b"GET /scep?operation=GetCACaps HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.contains(" 200 ") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("scepserver did not become ready");
}
