//! Read-side SQL for pages and the JSON API.

use rusqlite::Connection;
use serde::Serialize;

use crate::diagnosis::{self, Diagnosis, Evidence, Verdict};
use crate::lottery::Odds;
use crate::summary::{derive_status, Status, NO_SENSOR_AFTER_MS};

/// One miner as dashboards show it.
#[derive(Debug, Clone, Serialize)]
pub struct MinerView {
    /// Row id.
    pub id: i64,
    /// Owner's name for it.
    pub name: String,
    /// Serial device.
    pub port: String,
    /// `serial` or `demo`.
    pub kind: String,
    /// Derived status.
    pub status: Status,
    /// Why it is offline / in error, with a hint.
    pub status_detail: Option<String>,
    /// Last line received (Unix ms).
    pub last_seen: Option<i64>,
    /// Current 10-s average hashrate (KH/s).
    pub hashrate_khs: Option<f64>,
    /// Average over 10 minutes.
    pub hashrate_avg_10m: Option<f64>,
    /// Average over 1 hour.
    pub hashrate_avg_1h: Option<f64>,
    /// Average over 24 hours.
    pub hashrate_avg_24h: Option<f64>,
    /// Shares, all sessions.
    pub shares: i64,
    /// Accepted shares.
    pub accepted: i64,
    /// Rejected shares.
    pub rejected: i64,
    /// Best difficulty ever (null where the board does not report it).
    pub best_diff: Option<f64>,
    /// Best difficulty since boot.
    pub best_diff_session: Option<f64>,
    /// Blocks found.
    pub blocks_found: i64,
    /// Chip temperature °C (null where the board does not report it).
    pub temperature: Option<f64>,
    /// Highest temperature in 24 h.
    pub temp_max_24h: Option<f64>,
    /// Uptime since the last boot (s): from the boot we saw, or the firmware's `Time mining`
    /// on miners that do not restore it from NVS; null when unknown.
    pub uptime_secs: Option<i64>,
    /// The firmware's `Time mining` (s): monitor seconds, also when not hashing, and a
    /// lifetime figure on miners that restore their stats from NVS.
    pub time_mining_secs: Option<i64>,
    /// Whether the miner restores its counters from NVS at boot (`saveStatsToNVS`); null
    /// until known.
    pub stats_restored: Option<bool>,
    /// What `shares` counts: `pool_accepted` (firmware 1.8.0 on) or `local` (up to 1.7);
    /// null until the version is known.
    pub shares_meaning: Option<String>,
    /// The firmware's own valid-blocks figure (lifetime where restored); `blocks_found`
    /// counts only blocks found while watched.
    pub blocks_reported: Option<i64>,
    /// The temperature reads a flat ~53 °C: a classic ESP32 without a working sensor.
    pub temperature_no_sensor: bool,
    /// Firmware family when not NerdMiner_v2 (`SparkMiner`, `LeafMiner`).
    pub firmware_family: Option<String>,
    /// The display driver the firmware announced at boot.
    pub display: Option<String>,
    /// Reboots in the last hour.
    pub reboots_last_hour: i64,
    /// Reboots seen.
    pub restarts: i64,
    /// Pool it mines on.
    pub pool: Option<String>,
    /// Firmware version it reported.
    pub firmware: Option<String>,
    /// Lines stored.
    pub lines_total: i64,
    /// Lines dropped because the database fell behind.
    pub lines_dropped: i64,
    /// Lines cut at the length limit.
    pub lines_truncated: i64,
    /// Shares accepted in the last 60 minutes (from the per-minute history).
    pub shares_last_hour: i64,
    /// Lottery odds at its current hashrate (null unless online and the network difficulty
    /// is known); filled in by the API, not by SQL.
    pub odds: Option<Odds>,
    /// Best share, luck and coin flips (filled in by the API from the lottery tables).
    pub lottery: Option<crate::db::records::LotteryFigures>,
    /// Desired configuration vs read-back, and its worker's page on the pool (filled in by
    /// the API from the fleet tables, see [`crate::db::fleet::HerdFleet`]).
    pub fleet: crate::db::fleet::HerdFleet,
    /// Why it is (not) mining: the chain Wi-Fi → pool → subscribed → authorized → hashing →
    /// shares, each link with the line that proves it (see [`crate::diagnosis`]).
    pub diagnosis: Diagnosis,
}

/// Herd-wide figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HerdTotals {
    /// Miners configured.
    pub miners: usize,
    /// Miners online.
    pub online: usize,
    /// Sum of current hashrates of online miners (KH/s).
    pub hashrate_khs: f64,
    /// Sum of 24-h averages (KH/s).
    pub hashrate_avg_24h: f64,
    /// Shares, all miners.
    pub shares: i64,
    /// Best difficulty of any miner.
    pub best_diff: Option<f64>,
    /// Blocks found by the herd.
    pub blocks_found: i64,
}

/// Column aliases are the [`MinerView`] field names (or, for what is derived in Rust, the input's
/// name), and rows are read by name: adding a field is one alias here and one line below.
const MINER_VIEW_SQL: &str = "
    SELECT m.id AS id, m.name AS name, m.port AS port, m.kind AS kind,
           coalesce(s.link_state, 'offline') AS link_state, s.link_detail AS link_detail,
           s.last_seen AS last_seen,
           s.hashrate_khs AS hashrate_khs, s.hashrate_avg_10m AS hashrate_avg_10m,
           s.hashrate_avg_1h AS hashrate_avg_1h, s.hashrate_avg_24h AS hashrate_avg_24h,
           coalesce(s.shares, 0) AS shares, coalesce(s.accepted, 0) AS accepted,
           coalesce(s.rejected, 0) AS rejected, s.best_diff AS best_diff,
           s.best_diff_session AS best_diff_session, coalesce(s.blocks_found, 0) AS blocks_found,
           s.temperature AS temperature, s.temp_max_24h AS temp_max_24h,
           s.uptime_secs AS uptime_secs, coalesce(s.restarts, 0) AS restarts, s.pool AS pool,
           s.firmware AS firmware, coalesce(s.lines_total, 0) AS lines_total,
           coalesce(s.lines_dropped, 0) AS lines_dropped,
           coalesce(s.lines_truncated, 0) AS lines_truncated,
           (SELECT coalesce(sum(mm.shares), 0) FROM miner_minutes mm
             WHERE mm.miner_id = m.id AND mm.minute >= ?1) AS shares_last_hour,
           s.boot_at AS boot_at, s.time_mining_secs AS time_mining_secs,
           s.restores_stats AS stats_restored, s.temperature_since AS temperature_since,
           s.shares_meaning AS shares_meaning, s.firmware_family AS firmware_family,
           s.display AS display, s.blocks_reported AS blocks_reported,
           s.evidence_json AS evidence_json,
           (SELECT count(*) FROM miner_reboots r WHERE r.miner_id = m.id AND r.at >= ?1 * 1000)
             AS reboots_last_hour
    FROM miners m LEFT JOIN miner_summary s ON s.miner_id = m.id
    WHERE m.enabled = 1";

/// Every enabled miner with its summary, by name.
pub fn miner_views(conn: &Connection, now: i64, stall_ms: i64) -> rusqlite::Result<Vec<MinerView>> {
    let mut stmt = conn.prepare_cached(&format!("{MINER_VIEW_SQL} ORDER BY m.name"))?;
    let hour_ago = now / 1000 - 3600;
    let rows = stmt.query_map([hour_ago], |r| {
        let link: String = r.get("link_state")?;
        let last_seen: Option<i64> = r.get("last_seen")?;
        let mut status = derive_status(&link, last_seen, now, stall_ms);
        let link_detail: Option<String> = r.get("link_detail")?;
        let evidence: Evidence = r
            .get::<_, Option<String>>("evidence_json")?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default();
        let diagnosis = diagnosis::diagnose(&evidence, status, last_seen, now);
        // Boards that print no hashrate on their current screen still talk to their pool:
        // that is mining, not a stall.
        if status == Status::Stalled && diagnosis.verdict == Verdict::MiningUnreported {
            status = Status::Online;
        }
        let boot_at: Option<i64> = r.get("boot_at")?;
        let temperature: Option<f64> = r.get("temperature")?;
        let temperature_since: Option<i64> = r.get("temperature_since")?;
        let no_sensor = matches!((temperature, temperature_since),
            (Some(t), Some(since)) if (t - 53.0).abs() <= 0.5 && now - since >= NO_SENSOR_AFTER_MS);
        Ok(MinerView {
            id: r.get("id")?,
            name: r.get("name")?,
            port: r.get("port")?,
            kind: r.get("kind")?,
            status,
            status_detail: match status {
                Status::Stalled => Some("connected, but nothing received lately".into()),
                Status::NoData => Some("connected, waiting for the first line".into()),
                Status::Online if diagnosis.verdict == Verdict::Mining => None,
                Status::Online => Some(diagnosis.summary.clone()),
                _ => link_detail,
            },
            last_seen,
            hashrate_khs: r.get("hashrate_khs")?,
            hashrate_avg_10m: r.get("hashrate_avg_10m")?,
            hashrate_avg_1h: r.get("hashrate_avg_1h")?,
            hashrate_avg_24h: r.get("hashrate_avg_24h")?,
            shares: r.get("shares")?,
            accepted: r.get("accepted")?,
            rejected: r.get("rejected")?,
            best_diff: r.get("best_diff")?,
            best_diff_session: r.get("best_diff_session")?,
            blocks_found: r.get("blocks_found")?,
            temperature,
            temp_max_24h: r.get("temp_max_24h")?,
            // Counted from the boot we saw, so it runs on between summarizer passes.
            uptime_secs: match boot_at {
                Some(b) => Some((now - b).max(0) / 1000),
                None => r.get("uptime_secs")?,
            },
            time_mining_secs: r.get("time_mining_secs")?,
            stats_restored: r.get("stats_restored")?,
            shares_meaning: r.get("shares_meaning")?,
            blocks_reported: r.get("blocks_reported")?,
            temperature_no_sensor: no_sensor,
            firmware_family: r.get("firmware_family")?,
            display: r.get("display")?,
            reboots_last_hour: r.get("reboots_last_hour")?,
            restarts: r.get("restarts")?,
            pool: r.get("pool")?,
            firmware: r.get("firmware")?,
            lines_total: r.get("lines_total")?,
            lines_dropped: r.get("lines_dropped")?,
            lines_truncated: r.get("lines_truncated")?,
            shares_last_hour: r.get("shares_last_hour")?,
            odds: None,
            lottery: None,
            fleet: Default::default(),
            diagnosis,
        })
    })?;
    rows.collect()
}

/// Totals over `miners`.
pub fn totals(miners: &[MinerView]) -> HerdTotals {
    let mut t = HerdTotals {
        miners: miners.len(),
        ..HerdTotals::default()
    };
    for m in miners {
        if m.status == Status::Online {
            t.online += 1;
            t.hashrate_khs += m.hashrate_khs.unwrap_or(0.0);
        }
        t.hashrate_avg_24h += m.hashrate_avg_24h.unwrap_or(0.0);
        t.shares += m.shares;
        t.blocks_found += m.blocks_found;
        if let Some(d) = m.best_diff {
            t.best_diff = Some(t.best_diff.map_or(d, |b: f64| b.max(d)));
        }
    }
    t
}

/// One row of `miner_logs` or `miner_events` for following a miner.
#[derive(Debug, Clone, Serialize)]
pub struct FeedRow {
    /// Row id (the cursor).
    pub id: i64,
    /// Unix ms.
    pub ts: i64,
    /// The raw line, or the event's kind.
    pub text: String,
    /// The event as JSON (events only).
    pub detail: Option<String>,
}

/// Id of a miner by name.
pub fn miner_id_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT id FROM miners WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
}

/// Rows of one miner after `after` (oldest first), at most `limit`. `raw` picks log lines
/// instead of events. `after = None` means "the last `limit` rows".
pub fn feed(
    conn: &Connection,
    miner_id: i64,
    raw: bool,
    after: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<FeedRow>> {
    if raw {
        let lines = match after {
            Some(after) => super::logs::after(conn, miner_id, after, limit)?,
            None => {
                let mut newest = super::logs::newest(conn, miner_id, None, limit)?;
                newest.reverse();
                newest
            }
        };
        return Ok(lines
            .into_iter()
            .map(|l| FeedRow {
                id: l.id,
                ts: l.ts,
                text: l.line,
                detail: None,
            })
            .collect());
    }
    let sql = match after {
        Some(_) => {
            "SELECT id, ts, kind, detail FROM miner_events WHERE miner_id = ?1 AND id > ?2
             ORDER BY id LIMIT ?3"
        }
        None => {
            "SELECT * FROM (SELECT id, ts, kind, detail FROM miner_events WHERE miner_id = ?1
             AND ?2 = ?2 ORDER BY id DESC LIMIT ?3) ORDER BY id"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(
        rusqlite::params![miner_id, after.unwrap_or(0), limit as i64],
        |r| {
            Ok(FeedRow {
                id: r.get(0)?,
                ts: r.get(1)?,
                text: r.get(2)?,
                detail: r.get(3)?,
            })
        },
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_last_hour_counts_only_the_last_sixty_minutes() {
        let c = crate::db::memory_db();
        c.execute(
            "INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/x')",
            [],
        )
        .unwrap();
        let now_ms = 10_000_000_000;
        let now_s = now_ms / 1000;
        for (minute, shares) in [(now_s - 7200, 5), (now_s - 3000, 2), (now_s - 60, 1)] {
            c.execute(
                "INSERT INTO miner_minutes (miner_id, minute, shares, samples) VALUES (1, ?1, ?2, 1)",
                [minute, shares],
            )
            .unwrap();
        }
        let views = miner_views(&c, now_ms, 30_000).unwrap();
        assert_eq!(views[0].shares_last_hour, 3);
        assert_eq!(views[0].status, Status::Offline);
    }

    #[test]
    fn a_quiet_board_with_live_pool_traffic_is_online_not_stalled() {
        let c = crate::db::memory_db();
        c.execute(
            "INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/x')",
            [],
        )
        .unwrap();
        let now = 10_000_000_000;
        let evidence = |traffic_at: i64| {
            let mut e = Evidence::default();
            e.observe(traffic_at, &crate::model::event::MinerEvent::NewJob);
            serde_json::to_string(&e).unwrap()
        };
        // Silent for 60 s (stall after 30 s), but a job came 60 s ago: still mining.
        c.execute(
            "INSERT INTO miner_summary (miner_id, link_state, last_seen, evidence_json, boot_at,
               temperature, temperature_since)
             VALUES (1, 'connected', ?1, ?2, ?3, 53.0, ?4)",
            rusqlite::params![
                now - 60_000,
                evidence(now - 60_000),
                now - 3_600_000,
                now - 3_600_000
            ],
        )
        .unwrap();
        let v = &miner_views(&c, now, 30_000).unwrap()[0];
        assert_eq!(v.status, Status::Online);
        assert_eq!(v.diagnosis.verdict, Verdict::MiningUnreported);
        assert!(v
            .status_detail
            .as_deref()
            .is_some_and(|d| d.contains("hashrate not reported")));
        assert_eq!(v.uptime_secs, Some(3600), "since the boot we saw");
        assert!(v.temperature_no_sensor, "a flat 53 °C for an hour");
        // Pool traffic too old: stalled after all.
        c.execute(
            "UPDATE miner_summary SET evidence_json = ?1",
            [evidence(now - 600_000)],
        )
        .unwrap();
        let v = &miner_views(&c, now, 30_000).unwrap()[0];
        assert_eq!(v.status, Status::Stalled);
    }
}
