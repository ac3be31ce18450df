//! Prometheus text exposition (format 0.0.4) of the herd, ingest and alert delivery, for
//! `/metrics`. Pure: the handler gathers the figures, [`render`] writes the text.

use std::fmt::Write as _;

use crate::alerts::notify::NotifyStats;
use crate::db::actor::IngestSnapshot;
use crate::herd::MinerView;
use crate::model::status::Status;

/// Everything one scrape shows.
pub struct Scrape<'a> {
    /// Every miner.
    pub miners: &'a [MinerView],
    /// Ingest counters.
    pub ingest: &'a IngestSnapshot,
    /// Database file and WAL sizes in bytes.
    pub db_bytes: (u64, u64),
    /// Active alerts.
    pub alerts_active: usize,
    /// Alert delivery counters.
    pub notify: &'a NotifyStats,
}

/// Escapes a label value: backslash, double quote and newline, as the format requires.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A metric family being written.
struct Family<'o> {
    out: &'o mut String,
    name: &'static str,
}

impl<'o> Family<'o> {
    fn new(out: &'o mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// Prometheus spells the special values its own way.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

type Getter = fn(&MinerView) -> Option<f64>;

/// Per-miner families: (name, type, help, value). A miner without a value has no sample.
const MINER_FAMILIES: [(&str, &str, &str, Getter); 13] = [
    (
        "shepherd_miner_up",
        "gauge",
        "1 while the miner is online (port open, data arriving).",
        |m| Some(f64::from(u8::from(m.status == Status::Online))),
    ),
    (
        "shepherd_miner_hashrate_khs",
        "gauge",
        "Current 10-s average hashrate in kH/s.",
        |m| m.hashrate_khs,
    ),
    (
        "shepherd_miner_hashrate_avg_24h_khs",
        "gauge",
        "24-hour average hashrate in kH/s.",
        |m| m.hashrate_avg_24h,
    ),
    (
        "shepherd_miner_temperature_celsius",
        "gauge",
        "Chip temperature.",
        |m| m.temperature,
    ),
    (
        "shepherd_miner_shares_accepted_total",
        "counter",
        "Accepted shares, all sessions.",
        |m| Some(m.accepted as f64),
    ),
    (
        "shepherd_miner_shares_rejected_total",
        "counter",
        "Rejected shares, all sessions.",
        |m| Some(m.rejected as f64),
    ),
    (
        "shepherd_miner_best_difficulty",
        "gauge",
        "Best share difficulty ever.",
        |m| m.best_diff,
    ),
    (
        "shepherd_miner_blocks_found_total",
        "counter",
        "Blocks found.",
        |m| Some(m.blocks_found as f64),
    ),
    (
        "shepherd_miner_restarts_total",
        "counter",
        "Reboots seen.",
        |m| Some(m.restarts as f64),
    ),
    (
        "shepherd_miner_uptime_seconds",
        "gauge",
        "Time mining since the last boot.",
        |m| m.uptime_secs.map(|s| s as f64),
    ),
    (
        "shepherd_miner_lines_total",
        "counter",
        "Log lines stored.",
        |m| Some(m.lines_total as f64),
    ),
    (
        "shepherd_miner_lines_dropped_total",
        "counter",
        "Log lines dropped because the database fell behind.",
        |m| Some(m.lines_dropped as f64),
    ),
    (
        "shepherd_miner_lines_truncated_total",
        "counter",
        "Log lines cut at the length limit.",
        |m| Some(m.lines_truncated as f64),
    ),
];

const STATUSES: [Status; 5] = [
    Status::Online,
    Status::Stalled,
    Status::NoData,
    Status::Offline,
    Status::Error,
];

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Online => "online",
        Status::Stalled => "stalled",
        Status::NoData => "no_data",
        Status::Offline => "offline",
        Status::Error => "error",
    }
}

/// The whole exposition.
pub fn render(s: &Scrape<'_>) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::with_capacity(4096 + s.miners.len() * 1500);
    Family::new(
        &mut out,
        "shepherd_build_info",
        "gauge",
        "Version of the Shepherd.",
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    let online = s
        .miners
        .iter()
        .filter(|m| m.status == Status::Online)
        .count();
    Family::new(
        &mut out,
        "shepherd_miners",
        "gauge",
        "Miners configured and enabled.",
    )
    .sample(&[], s.miners.len() as f64);
    Family::new(
        &mut out,
        "shepherd_miners_online",
        "gauge",
        "Miners online.",
    )
    .sample(&[], online as f64);
    for (name, kind, help, get) in MINER_FAMILIES {
        let mut f = Family::new(&mut out, name, kind, help);
        for m in s.miners {
            if let Some(v) = get(m) {
                let id = m.id.to_string();
                f.sample(&[("miner", &m.name), ("id", &id)], v);
            }
        }
    }
    let mut f = Family::new(
        &mut out,
        "shepherd_miner_status",
        "gauge",
        "1 for the miner's current status, 0 for the others.",
    );
    for m in s.miners {
        let id = m.id.to_string();
        for st in STATUSES {
            let v = f64::from(u8::from(m.status == st));
            f.sample(
                &[("miner", &m.name), ("id", &id), ("status", status_name(st))],
                v,
            );
        }
    }
    let i = s.ingest;
    let ingest: [(&'static str, &str, &str, f64); 6] = [
        (
            "shepherd_ingest_queued_lines",
            "gauge",
            "Lines waiting in the database writer's queue (its mailbox depth).",
            i.queued_lines as f64,
        ),
        (
            "shepherd_ingest_written_lines_total",
            "counter",
            "Lines committed since start.",
            i.written_lines as f64,
        ),
        (
            "shepherd_ingest_batches_total",
            "counter",
            "Write transactions committed since start.",
            i.batches as f64,
        ),
        (
            "shepherd_ingest_write_errors_total",
            "counter",
            "Failed batch writes (kept and retried).",
            i.write_errors as f64,
        ),
        (
            "shepherd_ingest_dropped_lines_total",
            "counter",
            "Lines dropped by readers because the queue was full.",
            i.dropped_lines as f64,
        ),
        (
            "shepherd_ingest_uart_overrun_bytes_total",
            "counter",
            "Bytes serial drivers lost before they were read (UART overruns).",
            i.overrun_bytes as f64,
        ),
    ];
    for (name, kind, help, v) in ingest {
        Family::new(&mut out, name, kind, help).sample(&[], v);
    }
    let mut f = Family::new(
        &mut out,
        "shepherd_db_size_bytes",
        "gauge",
        "Size of the SQLite database files.",
    );
    f.sample(&[("file", "db")], s.db_bytes.0 as f64);
    f.sample(&[("file", "wal")], s.db_bytes.1 as f64);
    Family::new(
        &mut out,
        "shepherd_alerts_active",
        "gauge",
        "Alerts active now.",
    )
    .sample(&[], s.alerts_active as f64);
    let n = s.notify;
    let notify: [(&'static str, &str, u64); 4] = [
        (
            "shepherd_notifications_sent_total",
            "Notifications delivered.",
            n.sent.load(Relaxed),
        ),
        (
            "shepherd_notification_failures_total",
            "Failed delivery attempts (each retry counts).",
            n.failed_attempts.load(Relaxed),
        ),
        (
            "shepherd_notifications_given_up_total",
            "Notifications given up on after every retry failed.",
            n.given_up.load(Relaxed),
        ),
        (
            "shepherd_notifications_dropped_total",
            "Notifications dropped because a target's queue was full.",
            n.dropped.load(Relaxed),
        ),
    ];
    for (name, help, v) in notify {
        Family::new(&mut out, name, "counter", help).sample(&[], v as f64);
    }
    out
}

/// Sizes of the database file and its WAL (0 where missing).
pub fn db_sizes(path: &std::path::Path) -> (u64, u64) {
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    (size(path), size(std::path::Path::new(&wal)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("two\nlines"), "two\\nlines");
    }

    #[test]
    fn special_numbers_use_prometheus_spelling() {
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(3.0), "3");
    }

    #[test]
    fn empty_herd_still_has_every_family_header() {
        let text = render(&Scrape {
            miners: &[],
            ingest: &crate::db::IngestStats::default().snapshot(),
            db_bytes: (4096, 0),
            alerts_active: 0,
            notify: &NotifyStats::default(),
        });
        assert!(text.contains("# TYPE shepherd_miner_hashrate_khs gauge"));
        assert!(text.contains("shepherd_db_size_bytes{file=\"db\"} 4096\n"));
        assert!(text.ends_with('\n'));
    }
}
