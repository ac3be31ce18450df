//! One miner's history for its page and the JSON API: chart series from the per-minute
//! rollups, raw log lines paged by id, status events, and the last hour of every miner's
//! hashrate for the dashboard sparklines.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// A chart range the miner page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Range {
    /// Last hour, one point a minute.
    #[serde(rename = "1h")]
    Hour,
    /// Last day, one point per 5 minutes.
    #[serde(rename = "24h")]
    Day,
    /// Last week, one point per 30 minutes.
    #[serde(rename = "7d")]
    Week,
    /// Last 30 days, one point per 2 hours.
    #[serde(rename = "30d")]
    Month,
}

impl Range {
    /// Every range, in picker order.
    pub const ALL: [Range; 4] = [Range::Hour, Range::Day, Range::Week, Range::Month];

    /// From the `?range=` value.
    pub fn parse(s: &str) -> Option<Range> {
        Range::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The `?range=` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// Length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            Range::Hour => 3600,
            Range::Day => 86_400,
            Range::Week => 7 * 86_400,
            Range::Month => 30 * 86_400,
        }
    }

    /// Seconds per point: a few hundred points at most, whatever the range, so a chart stays
    /// small to draw and to send to a Pi-hosted page.
    pub fn bucket_secs(self) -> i64 {
        match self {
            Range::Hour => 60,
            Range::Day => 300,
            Range::Week => 1800,
            Range::Month => 7200,
        }
    }
}

/// One point of a miner's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// Start of the bucket (Unix seconds).
    pub t: i64,
    /// Sample-weighted average hashrate (KH/s).
    pub hashrate_khs: Option<f64>,
    /// Highest temperature in the bucket (°C).
    pub temperature: Option<f64>,
    /// Shares found in the bucket.
    pub shares: i64,
}

/// The rollups of `miner_id` from `since` (Unix s), merged into `bucket`-second points.
pub fn series(
    conn: &Connection,
    miner_id: i64,
    since: i64,
    bucket: i64,
) -> rusqlite::Result<Vec<Point>> {
    let mut stmt = conn.prepare_cached(
        "SELECT (minute / ?3) * ?3 AS b,
                sum(hashrate_khs * samples) / nullif(sum(CASE WHEN hashrate_khs IS NULL THEN 0 ELSE samples END), 0),
                max(temperature), sum(shares)
         FROM miner_minutes WHERE miner_id = ?1 AND minute >= ?2
         GROUP BY b ORDER BY b",
    )?;
    let rows = stmt.query_map(params![miner_id, since, bucket.max(60)], |r| {
        Ok(Point {
            t: r.get(0)?,
            hashrate_khs: r.get(1)?,
            temperature: r.get(2)?,
            shares: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Event kinds that change what a miner is doing (the rest are per-second figures).
pub const STATUS_KINDS: &[&str] = &[
    "boot",
    "starting",
    "crash",
    "brownout",
    "watchdog",
    "setup_mode",
    "pool_connecting",
    "pool_unreachable",
    "pool_timeout",
    "wifi_connected",
    "wifi_error",
    "spiffs_mount_failed",
    "config_missing",
    "config_parse_error",
    "config_open_error",
    "block_found",
    "stratum_error",
];

/// A status change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusEvent {
    /// Row id.
    pub id: i64,
    /// When (Unix ms).
    pub ts: i64,
    /// Event kind (`boot`, `crash`, `pool_unreachable`, …).
    pub kind: String,
    /// The event as JSON.
    pub detail: Option<String>,
}

/// The newest `limit` status events of `miner_id`, newest first.
pub fn status_history(
    conn: &Connection,
    miner_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<StatusEvent>> {
    let placeholders = vec!["?"; STATUS_KINDS.len()].join(",");
    let sql = format!(
        "SELECT id, ts, kind, detail FROM miner_events
         WHERE miner_id = ? AND kind IN ({placeholders}) ORDER BY id DESC LIMIT ?"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut values: Vec<rusqlite::types::Value> = vec![miner_id.into()];
    values.extend(STATUS_KINDS.iter().map(|k| (*k).to_owned().into()));
    values.push((limit as i64).into());
    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
        Ok(StatusEvent {
            id: r.get(0)?,
            ts: r.get(1)?,
            kind: r.get(2)?,
            detail: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Whether a miner with this id exists.
pub fn miner_name(conn: &Connection, miner_id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT name FROM miners WHERE id = ?1", [miner_id], |r| {
        r.get(0)
    })
    .optional()
}

/// Per-minute hashrate of every miner since `since` (Unix s), oldest first: the sparklines.
pub fn sparklines(conn: &Connection, since: i64) -> rusqlite::Result<HashMap<i64, Vec<f64>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT miner_id, hashrate_khs FROM miner_minutes
         WHERE minute >= ?1 AND hashrate_khs IS NOT NULL ORDER BY miner_id, minute",
    )?;
    let mut out: HashMap<i64, Vec<f64>> = HashMap::new();
    let mut rows = stmt.query([since])?;
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?).or_default().push(r.get(1)?);
    }
    Ok(out)
}

/// Block templates (pool jobs) the herd received since each miner's boot: the sum of every
/// miner's latest `>>> Block templates:` figure. `None` when no miner prints it (boards with
/// a display show it only on screen).
pub fn block_templates(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    // One backward index walk per miner: the figure is printed every second, so the newest
    // one is near the end.
    conn.query_row(
        "SELECT sum((SELECT value FROM miner_events e
                     WHERE e.miner_id = m.id AND e.kind = 'block_templates'
                     ORDER BY e.id DESC LIMIT 1))
         FROM miners m WHERE m.enabled = 1",
        [],
        |r| r.get::<_, Option<f64>>(0).map(|v| v.map(|v| v as i64)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrate::migrate;

    fn db() -> (Connection, i64) {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut c).unwrap();
        let id = crate::db::miners::add(&c, "desk", "/dev/ttyUSB0", "serial").unwrap();
        (c, id)
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(Range::parse("7d"), Some(Range::Week));
        assert_eq!(Range::parse("2h"), None);
        for r in Range::ALL {
            assert_eq!(Range::parse(r.as_str()), Some(r));
            assert!(r.secs() / r.bucket_secs() <= 400);
        }
    }

    #[test]
    fn series_merges_minutes_into_buckets() {
        let (c, id) = db();
        for (minute, hr, temp, shares, samples) in [
            (0, 50.0, 40.0, 1, 60),
            (60, 70.0, 45.0, 2, 60),
            (300, 60.0, 42.0, 0, 30),
        ] {
            c.execute(
                "INSERT INTO miner_minutes VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, minute, hr, temp, shares, samples],
            )
            .unwrap();
        }
        let points = series(&c, id, 0, 300).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].t, 0);
        assert_eq!(points[0].hashrate_khs, Some(60.0));
        assert_eq!(points[0].temperature, Some(45.0));
        assert_eq!(points[0].shares, 3);
        assert_eq!(points[1].t, 300);
        assert_eq!(series(&c, id, 120, 60).unwrap().len(), 1);
        let spark = sparklines(&c, 0).unwrap();
        assert_eq!(spark[&id], [50.0, 70.0, 60.0]);
    }

    #[test]
    fn logs_page_backwards_and_events_filter() {
        let (c, id) = db();
        let texts: Vec<String> = (0..5).map(|i| format!("line {i}")).collect();
        for (i, text) in texts.iter().enumerate() {
            let line = crate::db::logs::NewLine {
                ts: i as i64,
                text,
                truncated: false,
            };
            crate::db::logs::append(&c, &[(id, vec![line])]).unwrap();
        }
        let first = crate::db::logs::newest(&c, id, None, 2).unwrap();
        assert_eq!(
            first.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["line 4", "line 3"]
        );
        let next = crate::db::logs::newest(&c, id, Some(first[1].id), 10).unwrap();
        assert_eq!(next.len(), 3);
        assert_eq!(next[0].line, "line 2");
        for kind in ["progress", "boot", "crash", "temperature"] {
            c.execute(
                "INSERT INTO miner_events (miner_id, ts, kind) VALUES (?1, 1, ?2)",
                params![id, kind],
            )
            .unwrap();
        }
        assert_eq!(block_templates(&c).unwrap(), None);
        for v in [3.0, 5.0] {
            c.execute(
                "INSERT INTO miner_events (miner_id, ts, kind, value) VALUES (?1, 2, 'block_templates', ?2)",
                params![id, v],
            )
            .unwrap();
        }
        assert_eq!(block_templates(&c).unwrap(), Some(5));
        let events = status_history(&c, id, 10).unwrap();
        assert_eq!(
            events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["crash", "boot"]
        );
        assert_eq!(miner_name(&c, id).unwrap().as_deref(), Some("desk"));
        assert_eq!(miner_name(&c, id + 1).unwrap(), None);
    }
}
