//! micromdm's real `scepserver` (Debian package `scep`) on loopback, for the SCEP tests.
//!
//! Each server has its own depot and port, waits until it answers, and is killed on drop.

use devicetrust::pki::pem_decode_all;
use devicetrust::scep::ScepSettings;
use devicetrust::secret::Secret;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway challenge: it appears in this test server's argv, never in the agent's.
pub const CHALLENGE: &str = "test-only-challenge-7f3a";

/// A `scepserver` with its own depot on a free loopback port; killed on drop.
pub struct ScepServer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: url::Url,
}

impl ScepServer {
    pub fn start(allow_renew: bool) -> ScepServer {
        let dir = tempfile::tempdir().unwrap();
        let depot = dir.path().join("depot");
        let status = Command::new("scepserver")
            .args(["ca", "-init", "-keySize", "2048", "-depot"])
            .arg(&depot)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("scepserver is installed (Debian package scep)");
        assert!(status.success(), "scepserver ca -init failed");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut command = Command::new("scepserver");
        command.arg("-depot").arg(&depot).args([
            "-port",
            &port.to_string(),
            "-challenge",
            CHALLENGE,
            "-debug",
        ]);
        if allow_renew {
            command.args(["-allowrenew", "0"]);
        }
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = ScepServer {
            child,
            dir,
            url: url::Url::parse(&format!("http://127.0.0.1:{port}/scep")).unwrap(),
        };
        server.wait_ready(port);
        server
    }

    /// Polls GetCACaps until it answers 200; bounded, so a broken server fails the test.
    fn wait_ready(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.write_all(
                    b"GET /scep?operation=GetCACaps HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                );
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("scepserver did not become ready: {}", self.log());
    }

    pub fn depot(&self) -> PathBuf {
        self.dir.path().join("depot")
    }

    pub fn ca_der(&self) -> Vec<u8> {
        let pem = std::fs::read_to_string(self.depot().join("ca.pem")).unwrap();
        pem_decode_all(&pem).unwrap().remove(0).1
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn settings(&self, challenge: &str) -> ScepSettings {
        let mut settings = ScepSettings::new(self.url.clone());
        settings.challenge = Some(Secret::new(challenge));
        settings.subject = "CN=devicetrust test,O=Example".into();
        settings
    }
}

impl Drop for ScepServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use super::free_port;
