//! Numbers as people read them. The same rules are mirrored in assets/app.js for live updates.

/// Hashrate in KH/s with a sensible unit.
pub fn hashrate(khs: Option<f64>) -> String {
    match khs {
        None => "—".into(),
        Some(v) if v >= 1000.0 => format!("{:.2} MH/s", v / 1000.0),
        Some(v) => format!("{v:.1} KH/s"),
    }
}

/// Difficulty with K/M/G suffix, or "not reported" (display boards never print it).
pub fn difficulty(d: Option<f64>) -> String {
    let Some(mut v) = d else {
        return "not reported".into();
    };
    for suffix in ["", "K", "M", "G", "T", "P"] {
        if v < 1000.0 {
            return if suffix.is_empty() {
                format!("{v:.4}")
            } else {
                format!("{v:.2}{suffix}")
            };
        }
        v /= 1000.0;
    }
    format!("{v:.2}E")
}

/// Temperature, or "not reported".
pub fn temperature(t: Option<f64>) -> String {
    t.map_or_else(|| "not reported".into(), |t| format!("{t:.0} °C"))
}

/// Duration as "3d 04:05:06".
pub fn uptime(secs: Option<i64>) -> String {
    let Some(s) = secs else {
        return "—".into();
    };
    let (d, r) = (s / 86_400, s % 86_400);
    let hms = format!("{:02}:{:02}:{:02}", r / 3600, r % 3600 / 60, r % 60);
    if d > 0 {
        format!("{d}d {hms}")
    } else {
        hms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(hashrate(Some(47.25)), "47.2 KH/s");
        assert_eq!(hashrate(Some(1500.0)), "1.50 MH/s");
        assert_eq!(hashrate(None), "—");
        assert_eq!(difficulty(Some(0.0333)), "0.0333");
        assert_eq!(difficulty(Some(12_345.0)), "12.35K");
        assert_eq!(difficulty(None), "not reported");
        assert_eq!(temperature(Some(47.4)), "47 °C");
        assert_eq!(uptime(Some(90_061)), "1d 01:01:01");
        assert_eq!(uptime(Some(61)), "00:01:01");
    }
}
