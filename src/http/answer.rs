//! Reading an answer: the body up to a cap and within the request's deadline, so a hostile or
//! broken server can make the agent neither buffer without limit nor wait without end.

use std::io::Read;
use std::time::Instant;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::failure::io_chain;
use super::{HttpError, HttpSettings};

/// Answers larger than this are refused: the APIs we call answer a few kilobytes, and a hostile
/// or broken server must not be able to make the agent buffer without limit.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// A complete answer: status, headers and the (size-capped) body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Reads the body until `deadline`: reqwest bounds each read, not their sum, so a server that
/// sends a byte a second would otherwise hold the run (and its lock) as long as it likes.
pub(super) fn read_reply(
    response: reqwest::blocking::Response,
    url: &str,
    settings: &HttpSettings,
    deadline: Instant,
) -> Result<Reply, HttpError> {
    let status = response.status();
    let headers = response.headers().clone();
    let timeout = || HttpError::Timeout {
        url: url.to_owned(),
        after: settings.timeout,
    };
    let body = match read_body(response, deadline) {
        Ok(body) => body,
        Err(BodyStop::Deadline) => return Err(timeout()),
        Err(BodyStop::Io(e)) => {
            let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                || e.get_ref()
                    .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
                    .is_some_and(reqwest::Error::is_timeout);
            return Err(if timed_out {
                timeout()
            } else {
                HttpError::Unreachable {
                    url: url.to_owned(),
                    reason: format!("connection lost while reading the answer: {}", io_chain(&e)),
                }
            });
        }
    };
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(HttpError::TooLarge {
            url: url.to_owned(),
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Why reading a body stopped short.
#[derive(Debug)]
enum BodyStop {
    Deadline,
    Io(std::io::Error),
}

/// At most `MAX_BODY_BYTES + 1` bytes of `body` (one more than allowed, so that the caller
/// can tell "too large" from "exactly the cap"), read in chunks until the end or `deadline`.
/// A read interrupted by a signal is retried, as `read_to_end` would.
fn read_body(body: impl Read, deadline: Instant) -> Result<Vec<u8>, BodyStop> {
    let mut limited = body.take(MAX_BODY_BYTES + 1);
    let mut read = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if Instant::now() >= deadline {
            return Err(BodyStop::Deadline);
        }
        match limited.read(&mut chunk) {
            Ok(0) => return Ok(read),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(BodyStop::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::{
        answer_once, fetch, fetch_with, quick_settings, serve, Answer, Then, MIB,
    };
    use std::time::Duration;

    #[test]
    fn an_answer_cut_off_is_unreachable_and_one_that_stalls_times_out() {
        let (url, _) = serve(vec![Answer::ok(1000, 10, Then::Close)]);
        match fetch(&url) {
            Err(HttpError::Unreachable { reason, .. }) => {
                // Every cause once, down to the innermost.
                let causes: Vec<&str> = reason.split(": ").collect();
                assert_eq!(
                    causes[0], "connection lost while reading the answer",
                    "{reason}"
                );
                assert!(
                    reason.ends_with("end of file before message length reached"),
                    "{reason}"
                );
                assert!(causes.len() >= 3, "{reason}");
                let distinct: std::collections::BTreeSet<_> = causes.iter().collect();
                assert_eq!(distinct.len(), causes.len(), "{reason}");
            }
            other => panic!("{other:?}"),
        }

        let (url, _) = serve(vec![Answer::ok(1000, 10, Then::Wait)]);
        let settings = HttpSettings {
            timeout: Duration::from_secs(1),
            ..quick_settings(1)
        };
        let (result, slept) = fetch_with(&url, &settings);
        assert!(slept.is_empty());
        match result {
            Err(HttpError::Timeout { after, .. }) => assert_eq!(after, Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
    }

    /// A reader that fails once with the given error, then gives `data`.
    struct FailsOnce {
        error: Option<std::io::ErrorKind>,
        data: std::io::Cursor<Vec<u8>>,
    }

    impl Read for FailsOnce {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.error.take() {
                Some(kind) => Err(std::io::Error::from(kind)),
                None => self.data.read(buf),
            }
        }
    }

    #[test]
    fn a_read_interrupted_by_a_signal_is_retried_and_any_other_error_stops() {
        let later = Instant::now() + Duration::from_secs(60);
        let interrupted = FailsOnce {
            error: Some(std::io::ErrorKind::Interrupted),
            data: std::io::Cursor::new(b"whole".to_vec()),
        };
        assert_eq!(read_body(interrupted, later).unwrap(), b"whole");
        let reset = FailsOnce {
            error: Some(std::io::ErrorKind::ConnectionReset),
            data: std::io::Cursor::new(b"never read".to_vec()),
        };
        match read_body(reset, later) {
            Err(BodyStop::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_read_past_its_deadline_stops_before_reading() {
        let unread = FailsOnce {
            error: None,
            data: std::io::Cursor::new(b"late".to_vec()),
        };
        assert!(matches!(
            read_body(unread, Instant::now()),
            Err(BodyStop::Deadline)
        ));
    }

    #[test]
    fn a_body_is_read_to_one_byte_past_the_cap_and_no_further() {
        let later = Instant::now() + Duration::from_secs(60);
        let over = std::io::repeat(b'x').take(MAX_BODY_BYTES * 3);
        assert_eq!(
            read_body(over, later).unwrap().len() as u64,
            MAX_BODY_BYTES + 1
        );
    }

    #[test]
    fn an_answer_of_exactly_the_cap_is_read_whole() {
        assert_eq!(MAX_BODY_BYTES, MIB);
        let reply = fetch(&answer_once(MIB, MIB)).unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.len() as u64, MIB);
        assert!(reply.body.iter().all(|&b| b == b'x'));
    }

    #[test]
    fn an_answer_over_the_cap_is_refused_without_reading_the_rest() {
        // One byte over; 2 MiB; and 2 MiB of an announced 256 MiB, after which the server waits:
        // only a client that stops reading at the cap answers before its deadline.
        for (announced, sent) in [(MIB + 1, MIB + 1), (2 * MIB, 2 * MIB), (256 * MIB, 2 * MIB)] {
            let url = answer_once(announced, sent);
            match fetch(&url) {
                Err(HttpError::TooLarge { url: shown, limit }) => {
                    assert_eq!((shown.as_str(), limit), (url.as_str(), MIB));
                }
                other => panic!("{announced} bytes announced, {sent} sent: {other:?}"),
            }
            let err = fetch(&answer_once(announced, sent)).unwrap_err();
            assert!(
                err.to_string().ends_with("is larger than 1048576 bytes"),
                "{err}"
            );
        }
    }
}
