//! Wall-clock time as Unix milliseconds, the unit every table stores, and as people read it.

/// Milliseconds since the Unix epoch (0 if the clock is before 1970, which a Pi without RTC
/// can briefly believe at boot).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A stored time as people read it (`2026-11-30 14:05 UTC`), or "never".
pub fn utc_time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "never".into(),
            |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
        )
}
