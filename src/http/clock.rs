//! The server's clock, from the `Date` header every HTTP server sends (RFC 9110 §6.6.1), against
//! the device's: a device whose clock is off by more than a few minutes would be issued a
//! certificate it then judges not yet valid (or already expired), spending one of Okta's five
//! for nothing, so the clients compare the two before any certificate request.

use reqwest::header::{HeaderMap, DATE};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// How far the device's clock may be from the server's before no certificate is requested.
/// Certificates are usually backdated by minutes, and servers' own clocks drift a little.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// The server's time from its `Date` header (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`);
/// `None` when there is none or it is in another form: no evidence either way.
pub fn server_time(headers: &HeaderMap) -> Option<OffsetDateTime> {
    let text = headers.get(DATE)?.to_str().ok()?;
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(text.trim(), format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// How far `device` is from `server` when that is more than [`MAX_CLOCK_SKEW`]: positive when
/// the device is ahead.
pub fn skew(server: OffsetDateTime, device: OffsetDateTime) -> Option<Duration> {
    let skew = device - server;
    (skew.abs() > MAX_CLOCK_SKEW).then_some(skew)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use time::macros::datetime;

    #[test]
    fn the_date_header_is_read_as_rfc_9110_writes_it() {
        let mut headers = HeaderMap::new();
        assert_eq!(server_time(&headers), None);
        headers.insert(
            DATE,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            server_time(&headers),
            Some(datetime!(1994-11-06 08:49:37 UTC))
        );
        // The obsolete forms and garbage are no evidence.
        for other in [
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "soon",
        ] {
            headers.insert(DATE, HeaderValue::from_static(other));
            assert_eq!(server_time(&headers), None, "{other}");
        }
    }

    #[test]
    fn more_than_five_minutes_either_way_is_a_skew() {
        let server = datetime!(2027-01-01 12:00 UTC);
        assert_eq!(skew(server, server + Duration::minutes(5)), None);
        assert_eq!(skew(server, server - Duration::minutes(5)), None);
        assert_eq!(
            skew(server, server + Duration::seconds(301)),
            Some(Duration::seconds(301))
        );
        assert_eq!(
            skew(server, server - Duration::days(1)),
            Some(-Duration::days(1))
        );
    }
}
