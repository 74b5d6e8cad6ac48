//! Wall time of one SCEP enrollment against micromdm's `scepserver` on loopback: our library
//! (`scep::enroll`) versus micromdm's own `scepclient`, key generation included for both.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devicetrust::http::HttpSettings;
use devicetrust::pki::PrivateKey;
use devicetrust::scep::{self, ScepSettings};
use devicetrust::secret::Secret;

const RUNS: usize = 20;
const KEY_SIZE: usize = 2048;
/// A throwaway challenge for a throwaway loopback CA.
const CHALLENGE: &str = "bench-only-challenge";

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let depot = dir.path().join("depot");
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
    let server = Command::new("scepserver")
        .arg("-depot")
        .arg(&depot)
        .args(["-port", &port.to_string(), "-challenge", CHALLENGE])
        // Every run asks for the same subject; scepserver refuses a second certificate for a
        // subject inside its renewal window (badRequest) unless the window is 0.
        .args(["-allowrenew", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed on drop, so a failed run does not leave the server behind.
    let _server = KillOnDrop(server);
    wait_ready(port);
    let url = format!("http://127.0.0.1:{port}/scep");

    let mut settings = ScepSettings::new(url::Url::parse(&url).unwrap());
    settings.challenge = Some(Secret::new(CHALLENGE));
    let http = HttpSettings::default();
    let ours: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let key = PrivateKey::generate_rsa(KEY_SIZE).unwrap();
            scep::enroll(&settings, &http, &key).unwrap();
            start.elapsed()
        })
        .collect();

    let theirs: Vec<Duration> = (0..RUNS)
        .map(|i| {
            // Fresh paths each run: scepclient generates the key when the file is absent.
            let key = dir.path().join(format!("k{i}.pem"));
            let cert = dir.path().join(format!("c{i}.pem"));
            let start = Instant::now();
            let out = Command::new("scepclient")
                .args(["-server-url", &url, "-challenge", CHALLENGE])
                .args(["-keySize", &KEY_SIZE.to_string()])
                .arg("-private-key")
                .arg(&key)
                .arg("-certificate")
                .arg(&cert)
                .current_dir(dir.path())
                .output()
                .unwrap();
            let elapsed = start.elapsed();
            assert!(
                out.status.success() && cert.exists(),
                "scepclient failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            elapsed
        })
        .collect();

    let (a, b) = (common::median_ms(&ours), common::median_ms(&theirs));
    let range = |s: &[Duration]| {
        let ms = common::sorted_ms(s);
        format!("{:.1}–{:.1}", ms[0], ms[ms.len() - 1])
    };
    let markdown = format!(
        "## SCEP enrollment (`cargo bench --bench scep`)\n\n\
         One full enrollment against micromdm `scepserver` {version} on loopback \
         (GetCACaps, GetCACert, PKCSReq, CertRep), RSA-{KEY_SIZE} key generation included, \
         {RUNS} runs each, on {machine}.\n\n\
         | client | median ms | min–max ms |\n|---|---|---|\n\
         | devicetrust (library `scep::enroll`, in-process) | {a:.1} | {ra} |\n\
         | micromdm `scepclient` (a process per run) | {b:.1} | {rb} |\n\n\
         Ratio devicetrust / scepclient: **{ratio:.2}**. Both medians are dominated by RSA key \
         generation, whose time varies a lot from key to key; `scepclient` also pays a process \
         start per run.\n\n\
         `scepclient` takes the challenge only on its command line; here that is a throwaway \
         challenge of a throwaway loopback CA. The agent itself never passes a secret in argv.\n\n\
         Reproduce: `cargo bench --bench scep` (needs `scepserver` and `scepclient`, Debian \
         package `scep`).",
        version = scep_version(),
        machine = common::machine(),
        ra = range(&ours),
        rb = range(&theirs),
        ratio = a / b,
    );
    println!("{markdown}");
    common::write_section("scep", &markdown);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

fn scep_version() -> String {
    Command::new("scepserver")
        .arg("-version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "(version unknown)".into())
}
