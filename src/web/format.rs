//! Numbers as people read them. The same rules are mirrored in assets/format.js for live
//! updates; `tests/format_js.rs` runs both on the same inputs and fails when they differ.

/// Hashrate in KH/s (the stored unit) with a sensible unit: a NerdMiner reads "300.0 KH/s"
/// and a Bitaxe "1.20 TH/s" in the same column.
pub fn hashrate(khs: Option<f64>) -> String {
    let Some(mut v) = khs else {
        return "—".into();
    };
    if v < 1000.0 {
        return format!("{v:.1} KH/s");
    }
    for unit in ["MH/s", "GH/s", "TH/s", "PH/s", "EH/s"] {
        v /= 1000.0;
        if v < 1000.0 {
            return format!("{v:.2} {unit}");
        }
    }
    format!("{:.2} ZH/s", v / 1000.0)
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

/// Network hashrate given in H/s: "1.09 ZH/s".
pub fn hashrate_hs(hs: Option<f64>) -> String {
    let Some(mut v) = hs else {
        return "—".into();
    };
    for unit in ["H/s", "KH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"] {
        if v < 1000.0 {
            return format!("{v:.2} {unit}");
        }
        v /= 1000.0;
    }
    format!("{v:.2} ZH/s")
}

/// A whole number with thousands separators: 14320000 → "14,320,000".
fn grouped(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A price: "91,876 USD" (cents only below 100, where they matter), or "—".
pub fn price(p: Option<f64>, currency: &str) -> String {
    match p {
        Some(v) if v.is_finite() && v >= 100.0 => {
            format!("{} {currency}", grouped(v.round() as u64))
        }
        Some(v) if v.is_finite() => format!("{v:.2} {currency}"),
        _ => "—".into(),
    }
}

/// A 24-h change: "+1.37 %", "−1.37 %" (a real minus sign), or "—" when not given.
pub fn change(pct: Option<f64>) -> String {
    match pct {
        Some(v) if v < 0.0 => format!("−{:.2} %", -v),
        // `abs` turns -0.0 into 0.0 (which Rust would print as "+-0.00 %"), as format.js does.
        Some(v) => format!("+{:.2} %", v.abs()),
        None => "—".into(),
    }
}

/// Big counts in words: "414 billion", "1.5 trillion"; beyond quintillions, "1.2e21".
fn in_words(v: f64) -> String {
    const NAMES: [(f64, &str); 6] = [
        (1e18, "quintillion"),
        (1e15, "quadrillion"),
        (1e12, "trillion"),
        (1e9, "billion"),
        (1e6, "million"),
        (1e3, "thousand"),
    ];
    if v >= 1e21 {
        return format!("{v:.1e}");
    }
    for (scale, name) in NAMES {
        if v >= scale {
            let n = v / scale;
            return if n < 10.0 {
                format!("{n:.1} {name}")
            } else {
                format!("{n:.0} {name}")
            };
        }
    }
    format!("{v:.0}")
}

/// Expected wait: "414 billion years", or days under a year.
pub fn years(y: Option<f64>) -> String {
    match y {
        Some(v) if v >= 1.0 => format!("{} years", in_words(v)),
        Some(v) if v >= 0.0 => format!("{:.1} days", v * 365.25),
        _ => "—".into(),
    }
}

/// A probability: "12.3 %" when it is sizeable, else "1 in 151 trillion".
pub fn chance(p: Option<f64>) -> String {
    match p {
        Some(v) if v >= 0.001 => format!("{:.1} %", v * 100.0),
        Some(v) if v > 0.0 => format!("1 in {}", in_words(1.0 / v)),
        Some(_) => "0".into(),
        None => "—".into(),
    }
}

/// A fetch time for pages before their script runs: "2026-11-20 14:05 UTC" (the script
/// rewrites it in the viewer's own time zone).
pub fn utc_time(ms: Option<i64>) -> String {
    crate::clock::utc_time(ms)
}

/// Luck as a multiple of par: `0.53×`, `2.4×`, `68×`; `—` when unknown.
pub fn luck(v: Option<f64>) -> String {
    match v {
        Some(l) if l.is_finite() && l >= 0.0 => {
            if l < 1.0 {
                format!("{l:.2}×")
            } else if l < 10.0 {
                format!("{l:.1}×")
            } else {
                // `round` (half away from zero) as JS's Math.round does for positives.
                format!("{}×", l.round())
            }
        }
        _ => "—".into(),
    }
}

/// Coin flips to a block, one decimal: `26.9`; `—` when unknown.
pub fn flips(v: Option<f64>) -> String {
    v.filter(|f| f.is_finite())
        .map_or_else(|| "—".into(), |f| format!("{f:.1}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(hashrate(Some(47.25)), "47.2 KH/s");
        assert_eq!(hashrate(Some(1500.0)), "1.50 MH/s");
        assert_eq!(hashrate(Some(300.0)), "300.0 KH/s");
        assert_eq!(hashrate(Some(1.2e9)), "1.20 TH/s");
        assert_eq!(hashrate(Some(4.8e6)), "4.80 GH/s");
        assert_eq!(hashrate(Some(2.5e12)), "2.50 PH/s");
        assert_eq!(hashrate(None), "—");
        assert_eq!(difficulty(Some(0.0333)), "0.0333");
        assert_eq!(difficulty(Some(12_345.0)), "12.35K");
        assert_eq!(difficulty(None), "not reported");
        assert_eq!(temperature(Some(47.4)), "47 °C");
        assert_eq!(uptime(Some(90_061)), "1d 01:01:01");
        assert_eq!(uptime(Some(61)), "00:01:01");
    }

    #[test]
    fn price_and_network_formats() {
        assert_eq!(price(Some(91876.42), "USD"), "91,876 USD");
        assert_eq!(price(Some(14_320_000.0), "JPY"), "14,320,000 JPY");
        assert_eq!(price(Some(42.5), "XYZ"), "42.50 XYZ");
        assert_eq!(price(None, "USD"), "—");
        assert_eq!(change(Some(-1.37)), "−1.37 %");
        assert_eq!(change(Some(0.0)), "+0.00 %");
        assert_eq!(change(None), "—");
        assert_eq!(hashrate_hs(Some(1.0912e21)), "1.09 ZH/s");
        assert_eq!(hashrate_hs(Some(54_200.0)), "54.20 KH/s");
        assert_eq!(years(Some(4.144_806e11)), "414 billion years");
        assert_eq!(years(Some(136.1)), "136 years");
        assert_eq!(years(Some(0.5)), "182.6 days");
        assert_eq!(chance(Some(6.6055e-15)), "1 in 151 trillion");
        assert_eq!(chance(Some(0.1234)), "12.3 %");
        assert_eq!(chance(Some(1e-25)), "1 in 1.0e25");
        assert_eq!(utc_time(Some(1_795_183_503_000)), "2026-11-20 14:05 UTC");
        assert_eq!(utc_time(None), "never");
    }
}
