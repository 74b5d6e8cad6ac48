//! An org that answers with a redirect: the simulator answers the metadata GET, the enrollment
//! POST (which carries the org token) and the renewal POST (the renewal token) with 301, 302,
//! 307 or 308. The agent follows none: the run fails with one `ERROR:` line that says it was a
//! redirect, the device keeps what it had, and the place the redirect names hears nothing.

mod common;

use common::*;
use devicetrust::sim::{Endpoint, Fault};
use std::io::Read;
use std::net::TcpListener;

/// Where the redirects point: a listener nothing accepts on while the agent runs. A connection
/// the agent made is in its queue once the agent has exited, so accepting without blocking
/// afterwards tells whether anything arrived, and what.
struct Elsewhere {
    listener: TcpListener,
}

impl Elsewhere {
    fn new() -> Elsewhere {
        Elsewhere {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    /// Plain http: a request that got here would be readable as sent.
    fn location(&self) -> String {
        format!(
            "http://127.0.0.1:{}/captured",
            self.listener.local_addr().unwrap().port()
        )
    }

    /// What each connection made to it carried (the agent has exited: the reads end).
    fn arrived(&self) -> Vec<String> {
        self.listener.set_nonblocking(true).unwrap();
        let mut arrived = Vec::new();
        while let Ok((mut stream, _)) = self.listener.accept() {
            stream.set_nonblocking(false).unwrap();
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            arrived.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        arrived
    }
}

/// One run against a redirecting endpoint: nothing reached the redirect's target, and the run
/// was refused in words after one request.
fn assert_refused(
    env: &Env,
    run: &Run,
    elsewhere: &Elsewhere,
    path: &str,
    asked: usize,
    status: u16,
    case: &str,
) {
    assert_eq!(elsewhere.arrived(), Vec::<String>::new(), "{case}: {run:?}");
    assert_eq!(run.code, 1, "{case}: {run:?}");
    let error = run.error();
    assert!(
        error.contains(&format!("HTTP {status} from https://"))
            && error.contains("a redirect, which the agent does not follow")
            && error.contains("configured URL"),
        "{case}: {error}"
    );
    assert!(
        !run.all_output().contains(&env.sim.org_token()),
        "{case}: {run:?}"
    );
    assert_eq!(
        env.requests_to(path).len(),
        asked + 1,
        "{case}: asked once, never again"
    );
}

#[test]
fn no_redirect_from_the_org_is_followed_and_nothing_reaches_its_location() {
    let fresh = Env::new(365);
    let enrolled = Env::new(365);
    assert_eq!(enrolled.enroll().code, 0);
    let serial = enrolled.certificate().serial_hex;
    for status in [301, 302, 307, 308] {
        // A fresh device: the metadata GET, then the enrollment POST with the org token.
        for (endpoint, path) in [
            (Endpoint::Metadata, "/metadata"),
            (Endpoint::Enroll, "/enroll/macos"),
        ] {
            let elsewhere = Elsewhere::new();
            let location = elsewhere.location();
            fresh.sim.clear_faults();
            fresh
                .sim
                .inject(endpoint, Fault::Redirect { status, location }, None);
            let asked = fresh.requests_to(path).len();
            let run = fresh.enroll();
            let case = format!("{status} to the {endpoint:?} request");
            assert_refused(&fresh, &run, &elsewhere, path, asked, status, &case);
            assert!(!fresh.store_dir().join("CURRENT").exists(), "{case}");
        }

        // An enrolled device: the renewal POST with its renewal token.
        let elsewhere = Elsewhere::new();
        let location = elsewhere.location();
        enrolled.sim.clear_faults();
        enrolled
            .sim
            .inject(Endpoint::Renew, Fault::Redirect { status, location }, None);
        let asked = enrolled.requests_to("/renew/macos").len();
        let run = enrolled.run(&["renew", "--force"]);
        let case = format!("{status} to the renewal");
        assert_refused(
            &enrolled,
            &run,
            &elsewhere,
            "/renew/macos",
            asked,
            status,
            &case,
        );
        assert_eq!(enrolled.certificate().serial_hex, serial, "{case}");
    }
}
