//! Read-side SQL for pages and the JSON API.

use rusqlite::{Connection, Row};
use serde::Serialize;

/// One row per enabled miner for the herd document (`crate::herd::MinerView`). Column aliases
/// are the view's field names (or, for what is derived in Rust, the input's name) and rows are
/// read by name: adding a field is one alias here and one field there. `?1` is an hour ago
/// (Unix s).
pub const MINER_VIEW_SQL: &str = "
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

/// Every enabled miner's [`MINER_VIEW_SQL`] row, by name, each handed to `map`
/// (`crate::herd` turns them into the document's miners). `now` is Unix ms: the reboot and
/// share counts look back one hour from it.
pub fn miner_view_rows<T>(
    conn: &Connection,
    now: i64,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&format!("{MINER_VIEW_SQL} ORDER BY m.name"))?;
    let hour_ago = now / 1000 - 3600;
    let rows = stmt.query_map([hour_ago], map)?;
    rows.collect()
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
