//! SQL of the summarizer: read new events, store summaries and per-minute rollups.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection};

use crate::clock::now_ms;
use crate::model::event::MinerEvent;
use crate::summary::{MinerState, MinuteDelta};

/// One stored event, decoded.
pub struct StoredEvent {
    /// Row id (the watermark).
    pub id: i64,
    /// Which miner.
    pub miner_id: i64,
    /// When (Unix ms).
    pub ts: i64,
    /// What.
    pub event: MinerEvent,
}

/// Saved states of every miner and the highest event id already summarized.
pub fn load_states(conn: &Connection) -> rusqlite::Result<(HashMap<i64, MinerState>, i64)> {
    let mut stmt = conn.prepare("SELECT miner_id, state_json, last_event_id FROM miner_summary")?;
    let mut states = HashMap::new();
    let mut watermark = 0;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (id, json, last) = row?;
        watermark = watermark.max(last);
        if let Some(state) = json.and_then(|j| serde_json::from_str(&j).ok()) {
            states.insert(id, state);
        }
    }
    Ok((states, watermark))
}

/// Up to `limit` events after `after`, oldest first. Rows that no longer decode (written by
/// another version) are skipped but still move the watermark.
pub fn events_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<(Vec<StoredEvent>, i64)> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, miner_id, ts, detail FROM miner_events WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut out = Vec::new();
    let mut last = after;
    let rows = stmt.query_map(params![after, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    for row in rows {
        let (id, miner_id, ts, detail) = row?;
        last = id;
        if let Some(event) = detail.and_then(|d| serde_json::from_str(&d).ok()) {
            out.push(StoredEvent {
                id,
                miner_id,
                ts,
                event,
            });
        }
    }
    Ok((out, last))
}

/// What one summarizer run changed.
#[derive(Default)]
pub struct SummaryUpdate {
    /// New state of each miner touched.
    pub states: HashMap<i64, MinerState>,
    /// Per-miner per-minute deltas.
    pub minutes: HashMap<i64, BTreeMap<i64, MinuteDelta>>,
    /// Highest event id included.
    pub watermark: i64,
    /// Reboots seen, per miner, to store with their context.
    pub reboots: HashMap<i64, Vec<crate::summary::RebootRecord>>,
    /// Share candidates and blocks, per miner, for the lottery tables.
    pub lottery: HashMap<i64, Vec<crate::summary::LotteryNote>>,
}

/// Writes summaries, rollups and averages in one transaction (runs on the writer).
pub fn save(conn: &mut Connection, update: &SummaryUpdate) -> rusqlite::Result<()> {
    let now = now_ms();
    let tx = conn.transaction()?;
    {
        let mut minute_stmt = tx.prepare_cached(
            "INSERT INTO miner_minutes (miner_id, minute, hashrate_khs, temperature, shares, samples)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (miner_id, minute) DO UPDATE SET
               hashrate_khs = CASE WHEN samples + excluded.samples = 0 THEN NULL
                 ELSE (coalesce(hashrate_khs, 0) * samples + coalesce(excluded.hashrate_khs, 0) * excluded.samples)
                      / (samples + excluded.samples) END,
               temperature = max(coalesce(temperature, excluded.temperature), coalesce(excluded.temperature, temperature)),
               shares = shares + excluded.shares,
               samples = samples + excluded.samples",
        )?;
        for (miner_id, minutes) in &update.minutes {
            for (minute, d) in minutes {
                let avg = (d.samples > 0).then(|| d.hashrate_sum / d.samples as f64);
                minute_stmt.execute(params![
                    miner_id,
                    minute,
                    avg,
                    d.temp_max,
                    d.shares as i64,
                    d.samples as i64
                ])?;
            }
        }
        let mut summary_stmt = tx.prepare_cached(
            "INSERT INTO miner_summary (miner_id, hashrate_khs, shares, accepted, rejected, best_diff,
               best_diff_session, blocks_found, temperature, uptime_secs, restarts, pool, firmware,
               last_event_id, state_json, updated_at, boot_at, time_mining_secs, restores_stats,
               temperature_since, shares_meaning, firmware_family, display, blocks_reported,
               evidence_json, chip_model)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
               ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)
             ON CONFLICT (miner_id) DO UPDATE SET hashrate_khs = excluded.hashrate_khs,
               shares = excluded.shares, accepted = excluded.accepted, rejected = excluded.rejected,
               best_diff = excluded.best_diff, best_diff_session = excluded.best_diff_session,
               blocks_found = excluded.blocks_found, temperature = excluded.temperature,
               uptime_secs = excluded.uptime_secs, restarts = excluded.restarts,
               pool = coalesce(excluded.pool, pool), firmware = coalesce(excluded.firmware, firmware),
               last_event_id = excluded.last_event_id, state_json = excluded.state_json,
               updated_at = excluded.updated_at, boot_at = excluded.boot_at,
               time_mining_secs = excluded.time_mining_secs, restores_stats = excluded.restores_stats,
               temperature_since = excluded.temperature_since,
               shares_meaning = coalesce(excluded.shares_meaning, shares_meaning),
               firmware_family = coalesce(excluded.firmware_family, firmware_family),
               display = coalesce(excluded.display, display),
               chip_model = coalesce(excluded.chip_model, chip_model),
               blocks_reported = excluded.blocks_reported, evidence_json = excluded.evidence_json",
        )?;
        let mut avg_stmt = tx.prepare_cached(
            "UPDATE miner_summary SET
               hashrate_avg_10m = (SELECT sum(hashrate_khs * samples) / nullif(sum(samples), 0)
                                   FROM miner_minutes WHERE miner_id = ?1 AND minute >= ?2),
               hashrate_avg_1h = (SELECT sum(hashrate_khs * samples) / nullif(sum(samples), 0)
                                  FROM miner_minutes WHERE miner_id = ?1 AND minute >= ?3),
               hashrate_avg_24h = (SELECT sum(hashrate_khs * samples) / nullif(sum(samples), 0)
                                   FROM miner_minutes WHERE miner_id = ?1 AND minute >= ?4),
               temp_max_24h = (SELECT max(temperature) FROM miner_minutes WHERE miner_id = ?1 AND minute >= ?4)
             WHERE miner_id = ?1",
        )?;
        let now_s = now / 1000;
        for (miner_id, s) in &update.states {
            let json = serde_json::to_string(s).unwrap_or_default();
            summary_stmt.execute(params![
                miner_id,
                s.hashrate_khs,
                s.shares() as i64,
                s.rejected as i64,
                s.best_diff,
                s.best_diff_session,
                s.blocks() as i64,
                s.temperature,
                s.uptime_since_boot(now).map(|u| u as i64),
                s.restarts as i64,
                s.pool,
                s.firmware,
                update.watermark,
                json,
                now,
                s.boot_at,
                s.uptime_at_time(now).map(|u| u as i64),
                s.restores_stats,
                s.temperature_since,
                s.shares_meaning(),
                s.firmware_family,
                s.display,
                s.blocks_reported.map(|b| b as i64),
                serde_json::to_string(&s.evidence).ok(),
                s.chip_model,
            ])?;
            avg_stmt.execute(params![miner_id, now_s - 600, now_s - 3600, now_s - 86_400])?;
        }
        for (miner_id, records) in &update.reboots {
            super::reboots::store(&tx, *miner_id, records)?;
        }
        for (miner_id, s) in &update.states {
            let lottery = super::records::MinerLottery {
                miner_id: *miner_id,
                pool: s.pool.as_deref(),
                notes: update.lottery.get(miner_id).map_or(&[], Vec::as_slice),
                minutes: update.minutes.get(miner_id),
            };
            super::records::store(&tx, &lottery, now)?;
        }
    }
    tx.commit()
}
