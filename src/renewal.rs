//! When this device renews: one policy for `renew`, `status`, `ea`, the schedule and SCEP alike.
//!
//! The configured window (`renew_before_days`, default 30) is the *latest* start: a device with
//! fewer days left always renews. A fleet enrolled on one day would otherwise renew in one hour,
//! so each device also has a fixed offset, derived from its hardware UUID, that moves its start
//! *earlier* by up to `renew_spread_days` (default 14): between 44 and 30 days before expiry.
//! The same hash gives the daily job its minute of the day.

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// The default latest start: the product promise, the spec and Okta's task all say 30 days.
pub const DEFAULT_RENEW_BEFORE_DAYS: u32 = 30;
/// The default spread of the fleet's starts before the latest one.
pub const DEFAULT_SPREAD_DAYS: u32 = 14;
const MINUTES_PER_DAY: u64 = 24 * 60;

/// One device's renewal policy. Built once per run from the configuration and the device UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// The latest start: renew when fewer than this many days are left.
    pub renew_before_days: u32,
    /// This device's own extra days before the latest start (0 ..= spread).
    pub offset_days: u32,
    /// The device's minute of the day (0..1440): the daily job's local time, and the UTC
    /// minute from which this device's renewal starts on its day.
    pub minute_of_day: u32,
    /// Whether the start falls on the device's minute of the day; an admin's explicit window
    /// (`--renew-before-days N`) starts exactly N days before expiry.
    pub at_own_minute: bool,
}

impl RenewalPolicy {
    /// The device's place in the fleet: `offset_days` uniform in `0..=spread_days` and a minute
    /// of the day, both from SHA-256 of the hardware UUID.
    ///
    /// A hash rather than a random draw per run: a fresh draw each day would make the device due
    /// on the first day its draw came out early, bunching the fleet at the start of the window.
    pub fn for_device(device_uuid: &str, renew_before_days: u32, spread_days: u32) -> Self {
        // UUIDs reach us in either case (ioreg prints upper, some tools lower): same device.
        let digest = Sha256::digest(device_uuid.trim().to_ascii_uppercase().as_bytes());
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[i * 8..i * 8 + 8]);
            u64::from_be_bytes(bytes)
        };
        // A 64-bit word modulo a small number: the bias is below 2^-50, nothing a fleet shows.
        let offset_days = u32::try_from(word(0) % (u64::from(spread_days) + 1)).unwrap_or(0);
        let minute_of_day = u32::try_from(word(1) % MINUTES_PER_DAY).unwrap_or(0);
        RenewalPolicy {
            renew_before_days,
            offset_days,
            minute_of_day,
            at_own_minute: true,
        }
    }

    /// An admin's explicit `--renew-before-days N`: exactly N, no spread.
    pub fn exactly(self, renew_before_days: u32) -> Self {
        RenewalPolicy {
            renew_before_days,
            offset_days: 0,
            at_own_minute: false,
            ..self
        }
    }

    /// This device renews when fewer than this many days are left.
    pub fn threshold_days(&self) -> u32 {
        self.renew_before_days.saturating_add(self.offset_days)
    }

    /// The moment a certificate expiring at `not_after` becomes due: the device's own minute
    /// (UTC) on the last day that leaves it at least `threshold_days` days, so its start is
    /// never later than the threshold and a fleet due on one day spreads over the day's hours.
    /// The packaged job wakes hourly (and at login, and on wake): a Mac asleep at its minute
    /// renews at its next run.
    pub fn due_from(&self, not_after: OffsetDateTime) -> OffsetDateTime {
        let latest = not_after - Duration::days(i64::from(self.threshold_days()));
        if !self.at_own_minute {
            return latest;
        }
        let latest = latest.to_offset(time::UtcOffset::UTC);
        let own = latest.replace_time(time::Time::MIDNIGHT)
            + Duration::minutes(i64::from(self.minute_of_day));
        if own > latest {
            own - Duration::days(1)
        } else {
            own
        }
    }

    /// Whether a certificate expiring at `not_after` is due at `now`. An expired certificate is
    /// due too, though `renew` treats it as a re-enrollment.
    pub fn is_due(&self, not_after: OffsetDateTime, now: OffsetDateTime) -> bool {
        now >= self.due_from(not_after)
    }

    pub fn hour(&self) -> u32 {
        self.minute_of_day / 60
    }

    pub fn minute(&self) -> u32 {
        self.minute_of_day % 60
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fleet_uuid(i: u32) -> String {
        format!(
            "{:08X}-{:04X}-4{:03X}-8000-{:012X}",
            i,
            i % 65521,
            i % 4093,
            u64::from(i) * 7919
        )
    }

    #[test]
    fn the_policy_is_deterministic_per_device_and_case_blind() {
        let a = RenewalPolicy::for_device("5F0E7C1A-93B2-4C1D-8E5B-2F6A9D0C4B71", 30, 14);
        assert_eq!(
            a,
            RenewalPolicy::for_device("5F0E7C1A-93B2-4C1D-8E5B-2F6A9D0C4B71", 30, 14)
        );
        assert_eq!(
            a,
            RenewalPolicy::for_device(" 5f0e7c1a-93b2-4c1d-8e5b-2f6a9d0c4b71\n", 30, 14)
        );
    }

    #[test]
    fn the_offsets_are_the_documented_hash_of_the_uuid() {
        // docs/architecture.md: the first 8 bytes of SHA-256 of the (upper-case) UUID, big-endian,
        // mod (spread + 1) days; the next 8 bytes mod 1440 minutes. Worked out by hand:
        //   0F3C1D2E-…-A0B1C2D3E4F5: e71325a623399819 | 731ab407079c08aa, 2 days, minute 1194
        //   0F3C1D2E-…-000000000011: 43b7056cc680e12d | d526c06fd75804f4, 14 days, minute 340
        for (uuid, offset_days, minute_of_day, at) in [
            ("0F3C1D2E-4B5A-4C6D-8E9F-A0B1C2D3E4F5", 2, 1194, (19, 54)),
            ("0f3c1d2e-4b5a-4c6d-8e9f-000000000011", 14, 340, (5, 40)),
        ] {
            let p = RenewalPolicy::for_device(uuid, 30, 14);
            assert_eq!(
                (p.offset_days, p.minute_of_day),
                (offset_days, minute_of_day)
            );
            assert_eq!((p.hour(), p.minute()), at);
            assert_eq!(p.threshold_days(), 30 + offset_days);
        }
        // A narrower spread is the same word modulo fewer days: e71325a623399819 mod 8 = 1.
        let p = RenewalPolicy::for_device("0F3C1D2E-4B5A-4C6D-8E9F-A0B1C2D3E4F5", 20, 7);
        assert_eq!(
            (p.renew_before_days, p.offset_days, p.threshold_days()),
            (20, 1, 21)
        );
    }

    #[test]
    fn every_device_starts_between_the_latest_start_and_the_spread_before_it() {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..5000 {
            let p = RenewalPolicy::for_device(&fleet_uuid(i), 30, 14);
            assert!((30..=44).contains(&p.threshold_days()), "{p:?}");
            assert!(p.minute_of_day < 1440);
            seen.insert(p.threshold_days());
        }
        // Every day of the spread is used: the fleet covers the whole range.
        assert_eq!(seen.len(), 15);
    }

    #[test]
    fn the_latest_start_is_never_later_than_configured() {
        let now = OffsetDateTime::now_utc();
        for i in 0..2000 {
            let p = RenewalPolicy::for_device(&fleet_uuid(i), 30, 14);
            // 29 days and 23 hours left: every device is due, whatever its offset.
            assert!(p.is_due(now + Duration::days(30) - Duration::hours(1), now));
            // 45 days left: none is.
            assert!(!p.is_due(now + Duration::days(45), now));
        }
    }

    #[test]
    fn an_exact_window_means_fewer_than_its_days_left() {
        let p = RenewalPolicy::for_device("x", 30, 14).exactly(35);
        let now = OffsetDateTime::now_utc();
        assert!(!p.is_due(now + Duration::days(35) + Duration::seconds(1), now));
        assert!(p.is_due(now + Duration::days(35), now));
        assert!(p.is_due(now - Duration::days(1), now), "expired is due");
        assert_eq!(p.exactly(10).threshold_days(), 10);
    }

    #[test]
    fn the_start_is_the_devices_minute_on_the_last_day_before_the_threshold() {
        use time::macros::datetime;
        let p = RenewalPolicy {
            renew_before_days: 30,
            offset_days: 5,
            minute_of_day: 19 * 60 + 54,
            at_own_minute: true,
        };
        // 35 days before expiry is 2027-05-06 12:00: the device's 19:54 that day is later, so
        // it starts at 19:54 the day before, never after the threshold.
        let not_after = datetime!(2027-06-10 12:00 UTC);
        assert_eq!(p.due_from(not_after), datetime!(2027-05-05 19:54 UTC));
        assert!(!p.is_due(not_after, datetime!(2027-05-05 19:53:59 UTC)));
        assert!(p.is_due(not_after, datetime!(2027-05-05 19:54 UTC)));
        // Asleep through it: any later run is due.
        assert!(p.is_due(not_after, datetime!(2027-05-07 03:00 UTC)));
        // A threshold later in the day than the minute: that same day.
        let not_after = datetime!(2027-06-10 22:00 UTC);
        assert_eq!(p.due_from(not_after), datetime!(2027-05-06 19:54 UTC));
        // Exactly on the minute.
        let not_after = datetime!(2027-06-10 19:54 UTC);
        assert_eq!(p.due_from(not_after), datetime!(2027-05-06 19:54 UTC));
    }

    /// 1,000 devices whose certificates all expire at the same moment: their starts fall in
    /// every hour of the day and on every day of the spread, none bunched.
    #[test]
    fn a_thousand_devices_due_on_one_day_spread_over_the_hours() {
        use time::macros::datetime;
        let not_after = datetime!(2027-06-10 09:00 UTC);
        let mut hours = [0u32; 24];
        let mut days = std::collections::BTreeMap::new();
        for i in 0..1000 {
            let start = RenewalPolicy::for_device(&fleet_uuid(i), 30, 14).due_from(not_after);
            hours[usize::from(start.hour())] += 1;
            *days.entry(start.date()).or_insert(0u32) += 1;
        }
        // 1000 / 24 ≈ 42 an hour.
        for (hour, n) in hours.iter().enumerate() {
            assert!((20..=65).contains(n), "hour {hour}: {hours:?}");
        }
        assert_eq!(
            days.len(),
            16,
            "15 days of spread, each split by the minute: {days:?}"
        );
        assert!(days.values().all(|&n| n <= 100), "{days:?}");
    }

    #[test]
    fn no_spread_means_exactly_the_window() {
        for i in 0..100 {
            let p = RenewalPolicy::for_device(&fleet_uuid(i), 30, 0);
            assert_eq!(p.threshold_days(), 30);
        }
    }

    /// 50,000 certificates issued the same day: each day of the spread and each hour of the day
    /// gets its share (within 20 %), and the minutes pass a chi-square bound. The figures are
    /// the ones docs/architecture.md quotes.
    #[test]
    fn a_fleet_spreads_evenly_over_days_and_minutes() {
        const N: u32 = 50_000;
        let mut days = [0u32; 15];
        let mut hours = vec![0u32; 15 * 24];
        let mut minutes = vec![0u32; 1440];
        for i in 0..N {
            let p = RenewalPolicy::for_device(&fleet_uuid(i), 30, 14);
            days[p.offset_days as usize] += 1;
            hours[p.offset_days as usize * 24 + p.hour() as usize] += 1;
            minutes[p.minute_of_day as usize] += 1;
        }
        let day_mean = f64::from(N) / 15.0;
        for d in days {
            assert!((f64::from(d) - day_mean).abs() < day_mean * 0.2, "{days:?}");
        }
        let hour_mean = f64::from(N) / (15.0 * 24.0);
        let busiest_hour = hours.iter().copied().max().unwrap_or(0);
        assert!(f64::from(busiest_hour) < hour_mean * 1.6, "{busiest_hour}");
        let minute_mean = f64::from(N) / 1440.0;
        let chi2: f64 = minutes
            .iter()
            .map(|&m| (f64::from(m) - minute_mean).powi(2) / minute_mean)
            .sum();
        // 1439 degrees of freedom: the 99.9th percentile is about 1621.
        assert!(chi2 < 1621.0, "chi-square {chi2}");
    }
}
