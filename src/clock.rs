//! Wall-clock time as Unix milliseconds, the unit every table stores.

/// Milliseconds since the Unix epoch (0 if the clock is before 1970, which a Pi without RTC
/// can briefly believe at boot).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
