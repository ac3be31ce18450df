//! Schedule windows are times of day where the owner lives ("a solo pool at night"), so they
//! are read in a named IANA zone (`[fleet] time_zone`) or the Pi's own, daylight saving time
//! included — not in UTC. The zone database is `chrono-tz`'s, built into the binary, so a Pi
//! without `tzdata` still gets it right.

use chrono::{TimeZone, Timelike};
use chrono_tz::Tz;

/// The zone named `name` (an IANA name such as "Europe/Berlin"); empty: `None`, the Pi's own.
pub fn named(name: &str) -> Result<Option<Tz>, String> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(None);
    }
    name.parse::<Tz>().map(Some).map_err(|_| {
        format!("{name:?} is not a time zone name: use an IANA name such as \"Europe/Berlin\" or \"America/New_York\", or leave it empty for the Pi's own")
    })
}

/// The zone schedules use: `name`, else the Pi's (`/etc/localtime`), else UTC (logged).
pub fn resolve(name: &str) -> Tz {
    match named(name) {
        Ok(Some(tz)) => return tz,
        Ok(None) => {}
        Err(e) => tracing::warn!("schedule windows use the Pi's time zone: {e}"),
    }
    match iana_time_zone::get_timezone().map(|n| n.parse::<Tz>()) {
        Ok(Ok(tz)) => tz,
        _ => {
            tracing::warn!(
                "the Pi's time zone is unknown: schedule windows are read in UTC (set [fleet] time_zone)"
            );
            Tz::UTC
        }
    }
}

/// Minute of the day (0–1439) on the wall clock of `tz` at `now_ms`.
pub fn minute_of_day(now_ms: i64, tz: Tz) -> u16 {
    match tz.timestamp_millis_opt(now_ms).single() {
        Some(t) => u16::try_from(t.hour() * 60 + t.minute()).unwrap_or(0),
        None => u16::try_from((now_ms / 60_000).rem_euclid(1440)).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::profile::{Endpoint, Profile, Window};

    /// Unix ms of a UTC date and time.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        chrono::Utc
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(named("").unwrap(), None);
        assert_eq!(named(" Europe/Berlin ").unwrap(), Some(Tz::Europe__Berlin));
        assert!(named("Mars/Olympus").unwrap_err().contains("IANA"));
        assert_eq!(resolve("Asia/Tokyo"), Tz::Asia__Tokyo);
    }

    #[test]
    fn a_night_window_follows_the_wall_clock_across_the_dst_change() {
        // Berlin switched to summer time on 2026-03-29 at 01:00 UTC (02:00 CET → 03:00 CEST).
        let berlin = Tz::Europe__Berlin;
        let p = Profile {
            id: 1,
            name: "night solo".into(),
            pools: vec![
                Endpoint::parse("public-pool.io:21496").unwrap(),
                Endpoint::parse("solo.ckpool.org:3333").unwrap(),
            ],
            failover: false,
            down_minutes: 10,
            back_minutes: 10,
            schedule: vec![Window::parse("22:00-06:00=1").unwrap()],
            time_zone: String::new(),
        };
        // 04:30 UTC is 05:30 in winter (inside the night window) …
        let before = utc(2026, 3, 28, 4, 30);
        assert_eq!(minute_of_day(before, berlin), 5 * 60 + 30);
        assert_eq!(p.home(minute_of_day(before, berlin)), 1);
        // … and 06:30 the day after the change: the window ended an hour earlier in UTC.
        let after = utc(2026, 3, 29, 4, 30);
        assert_eq!(minute_of_day(after, berlin), 6 * 60 + 30);
        assert_eq!(p.home(minute_of_day(after, berlin)), 0);
        // In UTC both would have been the same minute.
        assert_eq!(
            minute_of_day(before, Tz::UTC),
            minute_of_day(after, Tz::UTC)
        );
        // The night itself: 21:30 UTC is 22:30 CET, inside; on the 29th 20:30 UTC is 22:30 CEST.
        assert_eq!(p.home(minute_of_day(utc(2026, 3, 28, 21, 30), berlin)), 1);
        assert_eq!(p.home(minute_of_day(utc(2026, 3, 29, 20, 30), berlin)), 1);
        assert_eq!(p.home(minute_of_day(utc(2026, 3, 29, 19, 30), berlin)), 0);
    }
}
