//! Wall time of the commands an admin and a fleet run, measured on the release binary against
//! the simulator on loopback; writes `docs/benchmarks.md`.
//!
//!     cargo bench --bench wall_time            # 10 runs each (default)
//!     RUNS=20 cargo bench --bench wall_time

mod common;

use devicetrust::pki::Authority;
use devicetrust::sim::{SimConfig, Simulator};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_devicetrust");

fn fixture_authority(name: &str) -> Authority {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pki-fixtures");
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{name}.{ext}"))).unwrap();
    Authority::from_pem(&read("pem"), &read("key")).unwrap()
}

/// A configured root for one device.
fn device_root(sim: &Simulator) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/devicetrust");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("ca.pem"), sim.tls_ca_pem()).unwrap();
    let token = etc.join("token");
    std::fs::write(&token, sim.org_token()).unwrap();
    std::fs::write(
        etc.join("config.toml"),
        format!(
            "org_url = {:?}\nca_file = {:?}\norg_token_file = {:?}\n",
            sim.org_url(),
            etc.join("ca.pem").display().to_string(),
            token.display().to_string()
        ),
    )
    .unwrap();
    (root, token)
}

fn run(args: &[&str], root: Option<&Path>, device: usize) -> Duration {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if let Some(root) = root {
        cmd.arg("--root")
            .arg(root)
            .args(["--user", "bench", "--device-name", "Bench Mac"]);
        cmd.arg("--device-uuid")
            .arg(format!("BE9C0000-0000-4000-8000-{device:012}"));
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    elapsed
}

struct Row {
    what: &'static str,
    samples: Vec<Duration>,
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let sim = Simulator::start(SimConfig {
        mtls_authority: Some(fixture_authority("mtls-ca")),
        tls_authority: Some(fixture_authority("tls-ca")),
        ..SimConfig::default()
    })
    .unwrap();

    let mut rows = Vec::new();
    rows.push(Row {
        what: "`devicetrust demo` (whole cycle, simulator included)",
        samples: (0..runs).map(|_| run(&["demo"], None, 0)).collect(),
    });

    // A fresh device each time: one enrollment = metadata + key + CSR + enroll + checks + store.
    let mut enroll = Vec::new();
    let mut ea = Vec::new();
    let mut renew_noop = Vec::new();
    for i in 0..runs {
        let (root, _token) = device_root(&sim);
        enroll.push(run(&["enroll"], Some(root.path()), i));
        ea.push(run(&["ea"], Some(root.path()), i));
        renew_noop.push(run(&["renew"], Some(root.path()), i));
    }
    rows.push(Row {
        what: "`devicetrust enroll` (one enrollment against the simulator)",
        samples: enroll,
    });
    rows.push(Row {
        what: "`devicetrust ea` on a healthy device",
        samples: ea,
    });
    rows.push(Row {
        what: "`devicetrust renew` outside the window (no network)",
        samples: renew_noop,
    });

    let mut md = format!(
        "## Agent wall time\n\nThe release binary, {runs} runs each, on {}. The simulator runs in \
         the bench process on loopback; each enrollment is a fresh device (RSA 2048 key \
         generation included).\n\n| command | median | min | max |\n|---|---|---|---|\n",
        common::machine()
    );
    for row in &rows {
        let s = common::sorted_ms(&row.samples);
        let median = common::median_ms(&row.samples);
        md.push_str(&format!(
            "| {} | {median:.0} ms | {:.0} ms | {:.0} ms |\n",
            row.what,
            s[0],
            s[s.len() - 1]
        ));
        println!("{:<70} median {median:>7.1} ms", row.what);
    }
    md.push_str("\nReproduce: `cargo bench --bench wall_time` (`RUNS=20` for more samples).\n");
    common::write_section("wall_time", &md);
}
