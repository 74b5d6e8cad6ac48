//! The HTTPS client: the platform's trust plus `--ca-file`, proxies from the environment,
//! timeouts, and no redirects, so a request carrying a secret goes to the URL it names or nowhere.

use std::sync::Arc;

use reqwest::blocking::Client;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::failure::error_chain;
use super::{one_line, HttpError, HttpSettings};

/// A blocking client with the platform's trust (plus `--ca-file`), proxies from the environment
/// (`HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`, `NO_PROXY`), timeouts, and no redirects.
pub fn build_client(settings: &HttpSettings) -> Result<Client, HttpError> {
    build_client_with(settings, true)
}

/// `env_proxies: false` is for loopback tests, which must not be sent to a proxy the developer's
/// shell happens to export.
pub(crate) fn build_client_with(
    settings: &HttpSettings,
    env_proxies: bool,
) -> Result<Client, HttpError> {
    let extra_roots = parse_extra_roots(&settings.extra_roots_pem)?;
    // The provider is passed explicitly (reqwest is built without one of its own); asking for it
    // also installs it, so a library caller that skipped `app::run` still gets aws-lc-rs.
    let provider = crate::pki::install_crypto_provider();
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| HttpError::TrustStore {
                reason: one_line(&e.to_string()),
            })?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::ClientSetup {
            reason: one_line(&e.to_string()),
        })?
        .dangerous() // not dangerous here: the platform verifier does full chain and name checks
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // reqwest is built without HTTP/2.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    // reqwest without its `system-proxy` feature still reads the proxy environment variables
    // (hyper-util's matcher); only the macOS System Settings proxy is not consulted.
    let mut builder = Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .user_agent(settings.user_agent.as_str())
        // A POST carrying a secret must never be replayed to wherever a Location header points.
        .redirect(reqwest::redirect::Policy::none());
    if !env_proxies {
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| HttpError::ClientSetup {
        reason: error_chain(&e),
    })
}

fn parse_extra_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, HttpError> {
    if pem.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let mut roots = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem) {
        let cert = item.map_err(|e| HttpError::CaBundleUnreadable {
            reason: one_line(&e.to_string()),
        })?;
        // Checked here, one by one, so the error can say which certificate is bad.
        rustls::RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| HttpError::CaCertificateInvalid {
                index: roots.len() + 1,
                reason: one_line(&e.to_string()),
            })?;
        roots.push(cert);
    }
    if roots.is_empty() {
        return Err(HttpError::CaBundleEmpty);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::TEST_ANCHOR_PEM;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;
    use url::Url;

    /// A second server, where a redirect points: every request it gets (head and body) is sent
    /// on the channel before it answers 200, so once the client has its answer the channel holds
    /// whatever arrived.
    fn recorder() -> (Url, mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!(
            "http://{}/elsewhere",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = Vec::new();
                let mut byte = [0u8; 1];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => request.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body);
                request.extend(body);
                let _ = tx.send(request);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        (url, rx)
    }

    #[test]
    fn no_redirect_is_followed_and_what_a_request_carries_never_reaches_its_location() {
        use crate::http::tests::{quick_settings, serve, Answer, FixedRng};
        use crate::http::{send_with_retry, Sender};
        const SECRET: &str = "org-token-that-must-stay-home";
        let settings = quick_settings(3);
        let client = build_client_with(&settings, false).unwrap();
        for status in [301u16, 302, 303, 307, 308] {
            for post in [false, true] {
                let (elsewhere, arrived) = recorder();
                let (url, connections) = serve(vec![
                    Answer::redirect(status, elsewhere.as_str()),
                    Answer::redirect(status, elsewhere.as_str()),
                ]);
                let mut rng = FixedRng(0);
                let mut sender = Sender {
                    settings: &settings,
                    service: "the test server",
                    sleeper: &|d| panic!("a redirect is not retried (slept {d:?})"),
                    rng: &mut rng,
                };
                let result = send_with_retry(&mut sender, &url, || match post {
                    true => client.post(url.clone()).body(SECRET),
                    false => client.get(url.clone()),
                });
                let case = format!("{status}, {}", if post { "POST" } else { "GET" });
                // What reached the Location, first: the clearest failure if anything did.
                let reached: Vec<String> = arrived
                    .try_iter()
                    .map(|r| String::from_utf8_lossy(&r).into_owned())
                    .collect();
                assert!(reached.is_empty(), "{case}: the Location got {reached:?}");
                match result {
                    Err(ref e @ HttpError::Redirected { status: got, .. }) => {
                        assert_eq!(got, status, "{case}");
                        let shown = e.to_string();
                        assert!(
                            shown.starts_with(&format!("{url} answered HTTP {status}: a redirect")),
                            "{case}: {shown}"
                        );
                        assert!(shown.contains("configured URL"), "{case}: {shown}");
                        assert!(!shown.contains(elsewhere.as_str()), "{case}: {shown}");
                    }
                    other => panic!("{case}: {other:?}"),
                }
                assert_eq!(
                    connections.load(std::sync::atomic::Ordering::SeqCst),
                    1,
                    "{case}: asked once"
                );
            }
        }
    }

    #[test]
    fn build_client_accepts_a_pem_bundle_and_rejects_garbage() {
        let mut settings = HttpSettings::default();
        build_client(&settings).unwrap();
        settings.extra_roots_pem =
            format!("comment line\n{TEST_ANCHOR_PEM}{TEST_ANCHOR_PEM}").into_bytes();
        build_client(&settings).unwrap();

        settings.extra_roots_pem = b"this is not PEM at all\n".to_vec();
        let err = build_client(&settings).unwrap_err();
        assert!(matches!(err, HttpError::CaBundleEmpty), "{err:?}");
        assert!(err.to_string().contains("no PEM certificate"));

        settings.extra_roots_pem =
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
        let err = build_client(&settings).unwrap_err();
        assert!(
            matches!(err, HttpError::CaCertificateInvalid { index: 1, .. }),
            "{err:?}"
        );

        settings.extra_roots_pem = TEST_ANCHOR_PEM
            .replace("-----END CERTIFICATE-----\n", "")
            .into_bytes();
        let err = build_client(&settings).unwrap_err();
        assert!(
            matches!(err, HttpError::CaBundleUnreadable { .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains('\n'));
    }

    // --- Proxies. The environment is process-wide, so each check runs the test binary again as
    // a child with the variables set, and only the child builds a client from them.

    const PROBE_HOST: &str = "devicetrust-proxy-probe.invalid";

    #[test]
    #[ignore = "run by the proxy_* tests in a child process with a prepared environment"]
    fn proxy_probe_child() {
        let Ok(target) = std::env::var("DEVICETRUST_PROXY_PROBE_URL") else {
            return;
        };
        let settings = HttpSettings {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            ..HttpSettings::default()
        };
        let client = build_client(&settings).unwrap();
        // Fails either way (the fake proxy refuses, the direct target speaks no TLS): the parent
        // asserts on what the listeners saw.
        let _ = client.get(target).send();
    }

    /// Runs the probe child with `env`; returns the first line the fake proxy received and
    /// whether the direct target got a connection.
    fn probe(
        env: &[(&str, String)],
        target: &str,
        direct: Option<TcpListener>,
    ) -> (Option<String>, bool) {
        let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = proxy.accept() {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let _ = tx.send(text.lines().next().unwrap_or("").to_owned());
                let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let (dtx, drx) = mpsc::channel();
        if let Some(direct) = direct {
            std::thread::spawn(move || {
                if direct.accept().is_ok() {
                    let _ = dtx.send(());
                }
            });
        }
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "http::client::tests::proxy_probe_child",
            "--ignored",
            "--quiet",
        ]);
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("DEVICETRUST_PROXY_PROBE_URL", target);
        for (k, v) in env {
            cmd.env(k, v.replace("{proxy}", &proxy_addr.to_string()));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "probe child failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let seen = rx.recv_timeout(Duration::from_millis(200)).ok();
        let direct_hit = drx.recv_timeout(Duration::from_millis(200)).is_ok();
        (seen, direct_hit)
    }

    #[test]
    fn proxy_https_proxy_variable_is_honoured() {
        let (seen, _) = probe(
            &[("HTTPS_PROXY", "http://{proxy}".into())],
            &format!("https://{PROBE_HOST}/"),
            None,
        );
        assert_eq!(
            seen.as_deref(),
            Some(format!("CONNECT {PROBE_HOST}:443 HTTP/1.1").as_str())
        );
    }

    #[test]
    fn proxy_lowercase_https_proxy_variable_is_honoured() {
        let (seen, _) = probe(
            &[("https_proxy", "http://{proxy}".into())],
            &format!("https://{PROBE_HOST}/"),
            None,
        );
        assert_eq!(
            seen.as_deref(),
            Some(format!("CONNECT {PROBE_HOST}:443 HTTP/1.1").as_str())
        );
    }

    #[test]
    fn proxy_no_proxy_variable_is_honoured() {
        let direct = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = format!("https://127.0.0.1:{}/", direct.local_addr().unwrap().port());
        let (seen, direct_hit) = probe(
            &[
                ("HTTPS_PROXY", "http://{proxy}".into()),
                ("NO_PROXY", "localhost,127.0.0.1".into()),
            ],
            &target,
            Some(direct),
        );
        assert_eq!(seen, None, "the proxy must be bypassed");
        assert!(direct_hit, "the target must be reached directly");
    }
}
