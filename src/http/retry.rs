//! One request under the retry policy: connection failures, connect timeouts, 5xx and 429 are
//! tried again after a capped, jittered back-off; a rate limit's own wait is honoured when short.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::RngCore;
use reqwest::blocking::RequestBuilder;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use url::Url;

use super::answer::read_reply;
use super::failure::{classify, short_reason};
use super::{fmt_duration, HttpError, HttpSettings, Reply};

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A rate-limit reset further away than this is not waited for: the caller defers instead.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            max_rate_limit_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The largest delay allowed after failed attempt `attempt` (1-based): `base * 2^(attempt-1)`,
    /// capped at `max_delay`.
    pub fn ceiling_for(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// The delay before the next attempt after failed attempt `attempt` (1-based): uniformly
    /// random in `[0, ceiling_for(attempt)]` ("full jitter"), so that a fleet of devices that
    /// failed together does not come back together.
    pub fn delay_for(&self, attempt: u32, rng: &mut dyn RngCore) -> Duration {
        let ceiling_ms = u64::try_from(self.ceiling_for(attempt).as_millis()).unwrap_or(u64::MAX);
        if ceiling_ms == 0 {
            return Duration::ZERO;
        }
        let mut bytes = [0u8; 8];
        match rng.try_fill_bytes(&mut bytes) {
            // `% (ceiling + 1)` has a negligible bias for ceilings of a few minutes in ms.
            Ok(()) => {
                Duration::from_millis(u64::from_le_bytes(bytes) % ceiling_ms.saturating_add(1))
            }
            // No randomness: waiting the full ceiling is still correct, merely less spread out.
            Err(_) => Duration::from_millis(ceiling_ms),
        }
    }
}

/// What `send_with_retry` needs besides the request itself.
pub struct Sender<'a> {
    pub settings: &'a HttpSettings,
    /// Names the other side in log lines: "Okta answered 503; ...".
    pub service: &'a str,
    /// Waits between attempts; `std::thread::sleep` in production, a recorder in tests.
    pub sleeper: &'a dyn Fn(Duration),
    pub rng: &'a mut dyn RngCore,
}

/// Sends the request `build` makes (once per attempt), retrying connection failures, connect
/// timeouts, 5xx and 429 under the settings' policy. Returns the last answer for any status other
/// than 429 and 3xx (the caller interprets 4xx and a final 5xx); 429 that cannot be waited out is
/// an error, and so is a redirect, which is never followed.
/// A timeout after the request was sent is not retried: the server may have acted on it.
pub fn send_with_retry(
    sender: &mut Sender<'_>,
    url: &Url,
    mut build: impl FnMut() -> RequestBuilder,
) -> Result<Reply, HttpError> {
    let policy = &sender.settings.retry;
    let max = policy.max_attempts.max(1);
    let shown_url = url.as_str().to_owned();
    for attempt in 1..=max {
        let last = attempt == max;
        // One deadline per request covers connect, headers and body alike.
        let deadline = Instant::now() + sender.settings.timeout;
        let delay = match build().send() {
            Err(e) => {
                let (err, retryable) = classify(&e, &shown_url, sender.settings);
                if !retryable || last {
                    return Err(err);
                }
                let delay = policy.delay_for(attempt, sender.rng);
                tracing::warn!(
                    "{} unreachable ({}); retrying in {} (attempt {} of {})",
                    sender.service,
                    short_reason(&err),
                    fmt_duration(delay),
                    attempt + 1,
                    max
                );
                delay
            }
            Ok(response) => {
                let status = response.status();
                if status == StatusCode::TOO_MANY_REQUESTS {
                    let now = unix_now();
                    let hint = rate_limit_wait(response.headers(), now);
                    let reset_at = hint.map(|(_, at)| at);
                    let delay = match hint {
                        Some((wait, _)) if wait > policy.max_rate_limit_wait => {
                            return Err(HttpError::RateLimited {
                                url: shown_url,
                                reset_at,
                            })
                        }
                        _ if last => {
                            return Err(HttpError::RateLimited {
                                url: shown_url,
                                reset_at,
                            })
                        }
                        // Up to a second of jitter so devices released together do not collide.
                        Some((wait, _)) => wait + jitter_up_to(Duration::from_secs(1), sender.rng),
                        None => policy.delay_for(attempt, sender.rng),
                    };
                    tracing::warn!(
                        "{} answered 429 (rate limited); retrying in {} (attempt {} of {})",
                        sender.service,
                        fmt_duration(delay),
                        attempt + 1,
                        max
                    );
                    delay
                } else if status.is_redirection() {
                    return Err(HttpError::Redirected {
                        url: shown_url,
                        status: status.as_u16(),
                    });
                } else if status.is_server_error() && !last {
                    let delay = policy.delay_for(attempt, sender.rng);
                    tracing::warn!(
                        "{} answered {}; retrying in {} (attempt {} of {})",
                        sender.service,
                        status.as_u16(),
                        fmt_duration(delay),
                        attempt + 1,
                        max
                    );
                    delay
                } else {
                    return read_reply(response, &shown_url, sender.settings, deadline);
                }
            }
        };
        (sender.sleeper)(delay);
    }
    // The loop returns on its last attempt; this only satisfies the type checker.
    Err(HttpError::Unreachable {
        url: shown_url,
        reason: "no attempt was made".to_owned(),
    })
}

/// How long a 429 asks us to wait, and until when (epoch seconds): `X-Rate-Limit-Reset` (Okta,
/// epoch seconds) first, else `Retry-After` (seconds or an HTTP date).
pub fn rate_limit_wait(headers: &HeaderMap, now: i64) -> Option<(Duration, i64)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let reset_at = if let Some(reset) =
        header("x-rate-limit-reset").and_then(|v| v.parse::<i64>().ok())
    {
        reset
    } else {
        let value = header("retry-after")?;
        match value.parse::<u64>() {
            Ok(secs) => now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
            Err(_) => {
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?
                    .unix_timestamp()
            }
        }
    };
    let wait = u64::try_from(reset_at.saturating_sub(now)).unwrap_or(0);
    Some((Duration::from_secs(wait), reset_at))
}

fn jitter_up_to(max: Duration, rng: &mut dyn RngCore) -> Duration {
    let policy = RetryPolicy {
        max_attempts: 1,
        base_delay: max,
        max_delay: max,
        max_rate_limit_wait: Duration::ZERO,
    };
    policy.delay_for(1, rng)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::{fetch_with, logged, quick_settings, serve, Answer, FixedRng, Then};
    use std::net::TcpListener;

    #[test]
    fn retry_ceiling_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling_for(1), Duration::from_secs(2));
        assert_eq!(p.ceiling_for(2), Duration::from_secs(4));
        assert_eq!(p.ceiling_for(3), Duration::from_secs(8));
        assert_eq!(p.ceiling_for(6), Duration::from_secs(60));
        assert_eq!(p.ceiling_for(1000), Duration::from_secs(60));
        assert_eq!(p.ceiling_for(0), Duration::from_secs(2));
    }

    #[test]
    fn retry_delay_is_jittered_within_the_ceiling() {
        let p = RetryPolicy::default();
        let mut os = rand_core::OsRng;
        for attempt in 1..40 {
            for _ in 0..50 {
                let d = p.delay_for(attempt, &mut os);
                assert!(d <= p.ceiling_for(attempt), "{d:?} above ceiling");
                assert!(d <= p.max_delay);
            }
        }
        // The top of the range is reachable and grows with the attempt number.
        let top = |attempt| {
            p.delay_for(
                attempt,
                &mut FixedRng(p.ceiling_for(attempt).as_millis() as u64),
            )
        };
        assert_eq!(top(1), Duration::from_secs(2));
        assert_eq!(top(2), Duration::from_secs(4));
        assert_eq!(top(3), Duration::from_secs(8));
        assert_eq!(p.delay_for(3, &mut FixedRng(0)), Duration::ZERO);
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(zero.delay_for(5, &mut os), Duration::ZERO);
    }

    #[test]
    fn rate_limit_headers_are_understood() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_wait(&h, 1000), None);
        h.insert("retry-after", "30".parse().unwrap());
        assert_eq!(
            rate_limit_wait(&h, 1000),
            Some((Duration::from_secs(30), 1030))
        );
        h.insert("x-rate-limit-reset", "1045".parse().unwrap());
        assert_eq!(
            rate_limit_wait(&h, 1000),
            Some((Duration::from_secs(45), 1045))
        );
        // A reset in the past means "now".
        h.insert("x-rate-limit-reset", "900".parse().unwrap());
        assert_eq!(rate_limit_wait(&h, 1000), Some((Duration::ZERO, 900)));
        let mut d = HeaderMap::new();
        d.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(
            rate_limit_wait(&d, 784111767),
            Some((Duration::from_secs(10), 784111777))
        );
        d.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(rate_limit_wait(&d, 0), None);
    }

    #[test]
    fn a_rate_limit_within_the_longest_wait_is_waited_out_with_jitter() {
        // Exactly the longest wait (5 s): waited, plus 250 ms of jitter, then answered.
        let (url, connections) =
            serve(vec![Answer::rate_limited(5), Answer::ok(2, 2, Then::Close)]);
        let (result, slept) = fetch_with(&url, &quick_settings(3));
        let reply = result.unwrap();
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (StatusCode::OK, &b"xx"[..])
        );
        assert_eq!(slept, [Duration::from_millis(5250)]);
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);

        // A second longer: not waited for at all.
        let (url, connections) = serve(vec![Answer::rate_limited(6)]);
        let (result, slept) = fetch_with(&url, &quick_settings(3));
        assert!(
            matches!(
                result,
                Err(HttpError::RateLimited {
                    reset_at: Some(_),
                    ..
                })
            ),
            "{result:?}"
        );
        assert!(slept.is_empty(), "{slept:?}");
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn a_rate_limit_on_the_last_attempt_is_an_error_not_a_wait() {
        let (url, connections) = serve(vec![Answer::rate_limited(1), Answer::rate_limited(1)]);
        let (result, slept) = fetch_with(&url, &quick_settings(2));
        assert!(
            matches!(
                result,
                Err(HttpError::RateLimited {
                    reset_at: Some(_),
                    ..
                })
            ),
            "{result:?}"
        );
        assert_eq!(slept, [Duration::from_millis(1250)]);
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn a_refused_connection_is_retried_with_its_reason_logged() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let ((result, slept), log) = logged(|| fetch_with(&url, &quick_settings(2)));
        let reason = match result {
            Err(HttpError::Unreachable { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason.contains("Connection refused"), "{reason}");
        assert_eq!(slept, [Duration::from_millis(250)]);
        assert!(
            log.contains(&format!(
                "the test server unreachable ({reason}); retrying in 250ms (attempt 2 of 2)"
            )),
            "{log}"
        );
    }
}
