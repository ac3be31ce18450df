//! The lottery tables: best-share records, hashes for luck, the share histogram and found
//! blocks, all keyed by the miner's identity (USB serial number) rather than its tty or row,
//! so a re-plug, a reboot that restores counters from NVS or a restart of shepherd never
//! loses or duplicates a record.
//!
//! Written by the summarizer ([`store`], inside its transaction); read by `/api/records`
//! and the herd document.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::lottery;
use crate::summary::{best_line_margin, LotteryNote, MinuteDelta, ShareSource};

/// Records kept per miner (and shown for the herd).
pub const TOP: usize = 10;

/// Hour rows older than this are dropped (luck looks back 30 days).
const HOURS_KEPT: i64 = 31 * 24;

/// Two block signs of one miner this close together are one block (the banner and the
/// valid-blocks counter of the same find).
const SAME_BLOCK_MS: i64 = 10 * 60_000;

/// The identity records are kept under: the USB serial number, or `miner:<id>` without one.
pub fn miner_key(conn: &Connection, miner_id: i64) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row(
        "SELECT coalesce(nullif(usb_serial, ''), 'miner:' || id), name FROM miners WHERE id = ?1",
        [miner_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Every miner's identity, by miner id.
pub fn miner_keys(conn: &Connection) -> rusqlite::Result<HashMap<i64, String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, coalesce(nullif(usb_serial, ''), 'miner:' || id) FROM miners",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// What one summarizer run found for one miner.
pub struct MinerLottery<'a> {
    /// Which miner.
    pub miner_id: i64,
    /// Pool it reports (stored with its records).
    pub pool: Option<&'a str>,
    /// Shares and blocks, oldest first.
    pub notes: &'a [LotteryNote],
    /// Per-minute deltas (their `hashes`).
    pub minutes: Option<&'a BTreeMap<i64, MinuteDelta>>,
}

/// Stores one miner's lottery notes and hashes (runs in the summarizer's transaction).
pub fn store(conn: &Connection, m: &MinerLottery, now: i64) -> rusqlite::Result<()> {
    let Some((key, name)) = miner_key(conn, m.miner_id)? else {
        return Ok(());
    };
    if let Some(minutes) = m.minutes {
        let mut hours: BTreeMap<i64, f64> = BTreeMap::new();
        for (minute, d) in minutes {
            if d.hashes > 0.0 {
                *hours.entry(minute.div_euclid(3600) * 3600).or_default() += d.hashes;
            }
        }
        let total: f64 = hours.values().sum();
        if total > 0.0 {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO lottery_hours (miner_key, hour, hashes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (miner_key, hour) DO UPDATE SET hashes = hashes + excluded.hashes",
            )?;
            for (hour, h) in hours {
                stmt.execute(params![key, hour, h])?;
            }
            conn.execute(
                "INSERT INTO lottery_totals (miner_key, hashes, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (miner_key) DO UPDATE SET hashes = hashes + excluded.hashes",
                params![key, total, now],
            )?;
        }
    }
    for note in m.notes {
        match note {
            LotteryNote::Share {
                at,
                difficulty,
                source,
                live,
            } => share(conn, m, &key, &name, *at, *difficulty, *source, *live)?,
            LotteryNote::Block { at } => block(conn, m, &key, &name, *at)?,
        }
    }
    // Per identity, so the primary key finds the rows (a whole-table scan on every run
    // would cost a big herd dearly).
    conn.execute(
        "DELETE FROM lottery_hours WHERE miner_key = ?1 AND hour < ?2",
        params![key, now / 1000 - HOURS_KEPT * 3600],
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn share(
    conn: &Connection,
    m: &MinerLottery,
    key: &str,
    name: &str,
    at: i64,
    d: f64,
    source: ShareSource,
    live: bool,
) -> rusqlite::Result<()> {
    if live {
        conn.execute(
            "INSERT INTO lottery_hours (miner_key, hour, best) VALUES (?1, ?2, ?3)
             ON CONFLICT (miner_key, hour) DO UPDATE SET best = max(coalesce(best, 0), excluded.best)",
            params![key, (at / 1000).div_euclid(3600) * 3600, d],
        )?;
    }
    if source == ShareSource::Share {
        if let Some(b) = lottery::histogram_bucket(d) {
            conn.execute(
                "INSERT INTO share_histogram (miner_key, bucket, count) VALUES (?1, ?2, 1)
                 ON CONFLICT (miner_key, bucket) DO UPDATE SET count = count + 1",
                params![key, b],
            )?;
        }
    }
    // Already held? A rounded best-line figure matches any record within its rounding; an
    // exact share matches an exact share, and replaces the rounded figure of the same share.
    let (lo, hi) = (d - best_line_margin(d), d + best_line_margin(d));
    let near: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, source FROM share_records WHERE miner_key = ?1 AND difficulty BETWEEN ?2 AND ?3
               AND (?4 = 'best_line' OR source = 'best_line' OR difficulty = ?5)
             ORDER BY abs(difficulty - ?5) LIMIT 1",
            params![key, lo, hi, source.as_str(), d],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, held)) = near {
        if source == ShareSource::Share && held == "best_line" {
            conn.execute(
                "UPDATE share_records SET difficulty = ?2, source = 'share', at = min(at, ?3),
                   live = max(live, ?4) WHERE id = ?1",
                params![id, d, at, live],
            )?;
        }
        return Ok(());
    }
    let (count, floor): (i64, Option<f64>) = conn.query_row(
        "SELECT count(*), min(difficulty) FROM share_records WHERE miner_key = ?1",
        [key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if count as usize >= TOP && floor.is_some_and(|f| d <= f) {
        return Ok(());
    }
    let herd_best: Option<f64> =
        conn.query_row("SELECT max(difficulty) FROM share_records", [], |r| {
            r.get(0)
        })?;
    let herd_record = live && herd_best.is_none_or(|b| d > b);
    conn.execute(
        "INSERT INTO share_records (miner_key, miner_id, miner_name, difficulty, at, pool, source,
                                    live, herd_record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            key,
            m.miner_id,
            name,
            d,
            at,
            m.pool,
            source.as_str(),
            live,
            herd_record
        ],
    )?;
    conn.execute(
        "DELETE FROM share_records WHERE miner_key = ?1 AND id NOT IN (
           SELECT id FROM share_records WHERE miner_key = ?1 ORDER BY difficulty DESC, at LIMIT ?2)",
        params![key, TOP as i64],
    )?;
    Ok(())
}

fn block(
    conn: &Connection,
    m: &MinerLottery,
    key: &str,
    name: &str,
    at: i64,
) -> rusqlite::Result<()> {
    let seen: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM found_blocks WHERE miner_key = ?1 AND at BETWEEN ?2 AND ?3)",
        params![key, at - SAME_BLOCK_MS, at + SAME_BLOCK_MS],
        |r| r.get(0),
    )?;
    if !seen {
        conn.execute(
            "INSERT INTO found_blocks (miner_key, miner_id, miner_name, at, pool)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, m.miner_id, name, at, m.pool],
        )?;
    }
    Ok(())
}

/// One best share.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShareRecord {
    /// Row id: a page that has seen it does not announce it again.
    pub id: i64,
    /// Share difficulty.
    pub difficulty: f64,
    /// When it was found, or first seen for a baseline figure (Unix ms).
    pub at: i64,
    /// Miner id now (null when the miner was removed).
    pub miner_id: Option<i64>,
    /// Miner name when it was found.
    pub miner: String,
    /// The miner's identity (USB serial number or `miner:<id>`).
    pub miner_key: String,
    /// Pool it mined on.
    pub pool: Option<String>,
    /// `share` (an exact `Current diff share` line) or `best_line` (the firmware's rounded best).
    pub source: String,
    /// False for a figure first seen as a baseline (found before shepherd watched).
    pub live: bool,
    /// It beat every herd record when it came in.
    pub herd_record: bool,
}

/// A block found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundBlock {
    /// Row id.
    pub id: i64,
    /// When (Unix ms).
    pub at: i64,
    /// Miner id now (null when removed).
    pub miner_id: Option<i64>,
    /// Miner name when found.
    pub miner: String,
    /// Pool it mined on.
    pub pool: Option<String>,
}

/// Luck over one window: actual best ÷ expected best (hashes / 2^32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Luck {
    /// Hashes computed in the window (as counted while shepherd watched).
    pub hashes: f64,
    /// Best share found in it (live shares only).
    pub best: Option<f64>,
    /// hashes / 2^32.
    pub expected_best: Option<f64>,
    /// best ÷ expected best; null without both.
    pub luck: Option<f64>,
}

impl Luck {
    fn new(hashes: f64, best: Option<f64>) -> Self {
        Luck {
            hashes,
            best,
            expected_best: lottery::expected_best(hashes),
            luck: best.and_then(|b| lottery::luck(b, hashes)),
        }
    }
}

/// Lottery figures of one miner or the herd.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LotteryFigures {
    /// Best share ever recorded (baseline figures included).
    pub best_share: Option<f64>,
    /// log2(network difficulty ÷ best share); null without both.
    pub coin_flips: Option<f64>,
    /// The best share's place on a log scale from 1 to the network difficulty (0..1).
    pub progress_to_block: Option<f64>,
    /// Luck over the last 24 hours.
    pub luck_24h: Luck,
    /// Luck over the last 30 days.
    pub luck_30d: Luck,
    /// Luck since shepherd first watched.
    pub luck_all: Luck,
    /// Blocks found (recorded).
    pub blocks: i64,
}

/// Raw per-identity figures, before the network difficulty is applied.
#[derive(Debug, Clone, Default)]
struct Raw {
    best_share: Option<f64>,
    best_live: Option<f64>,
    h24: (f64, Option<f64>),
    d30: (f64, Option<f64>),
    all: f64,
    blocks: i64,
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn figures(r: &Raw, network: Option<f64>) -> LotteryFigures {
    LotteryFigures {
        best_share: r.best_share,
        coin_flips: network
            .zip(r.best_share)
            .and_then(|(n, b)| lottery::coin_flips(n, b)),
        progress_to_block: network
            .zip(r.best_share)
            .and_then(|(n, b)| lottery::progress_to_block(n, b)),
        luck_24h: Luck::new(r.h24.0, r.h24.1),
        luck_30d: Luck::new(r.d30.0, r.d30.1),
        luck_all: Luck::new(r.all, r.best_live),
        blocks: r.blocks,
    }
}

/// Lottery figures per identity and for the herd (`network`: the network difficulty).
pub fn lottery_figures(
    conn: &Connection,
    now: i64,
    network: Option<f64>,
) -> rusqlite::Result<(HashMap<String, LotteryFigures>, LotteryFigures)> {
    let mut raw: HashMap<String, Raw> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT miner_key, max(difficulty), max(CASE WHEN live THEN difficulty END)
         FROM share_records GROUP BY miner_key",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))? {
        let (k, best, live) = row?;
        let e = raw.entry(k).or_default();
        e.best_share = best;
        e.best_live = live;
    }
    let now_s = now / 1000;
    let mut stmt = conn.prepare_cached(
        "SELECT miner_key,
           sum(CASE WHEN hour >= ?1 THEN hashes ELSE 0 END), max(CASE WHEN hour >= ?1 THEN best END),
           sum(hashes), max(best)
         FROM lottery_hours WHERE hour >= ?2 GROUP BY miner_key",
    )?;
    // The hour that began 24 h ago is only partly in the window; counting it whole errs
    // by at most an hour's hashes, both for the hashes and the best.
    let rows = stmt.query_map(params![now_s - 86_400, now_s - 30 * 86_400], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
        ))
    })?;
    for row in rows {
        let (k, h24, b24, h30, b30): (String, f64, Option<f64>, f64, Option<f64>) = row?;
        let e = raw.entry(k).or_default();
        e.h24 = (h24, b24);
        e.d30 = (h30, b30);
    }
    let mut stmt = conn.prepare_cached("SELECT miner_key, hashes FROM lottery_totals")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))? {
        let (k, h) = row?;
        raw.entry(k).or_default().all = h;
    }
    let mut stmt =
        conn.prepare_cached("SELECT miner_key, count(*) FROM found_blocks GROUP BY miner_key")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (k, n) = row?;
        raw.entry(k).or_default().blocks = n;
    }
    let mut herd = Raw::default();
    for r in raw.values() {
        herd.best_share = max_opt(herd.best_share, r.best_share);
        herd.best_live = max_opt(herd.best_live, r.best_live);
        herd.h24 = (herd.h24.0 + r.h24.0, max_opt(herd.h24.1, r.h24.1));
        herd.d30 = (herd.d30.0 + r.d30.0, max_opt(herd.d30.1, r.d30.1));
        herd.all += r.all;
        herd.blocks += r.blocks;
    }
    let per = raw
        .iter()
        .map(|(k, r)| (k.clone(), figures(r, network)))
        .collect();
    Ok((per, figures(&herd, network)))
}

const RECORD_COLUMNS: &str =
    "id, difficulty, at, miner_id, miner_name, miner_key, pool, source, live, herd_record";

fn record_row(r: &rusqlite::Row) -> rusqlite::Result<ShareRecord> {
    Ok(ShareRecord {
        id: r.get(0)?,
        difficulty: r.get(1)?,
        at: r.get(2)?,
        miner_id: r.get(3)?,
        miner: r.get(4)?,
        miner_key: r.get(5)?,
        pool: r.get(6)?,
        source: r.get(7)?,
        live: r.get(8)?,
        herd_record: r.get(9)?,
    })
}

fn record_rows(
    conn: &Connection,
    filter: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<ShareRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM share_records WHERE ?1 IS NULL OR miner_key = ?1
         ORDER BY difficulty DESC, at LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![filter, limit as i64], record_row)?;
    rows.collect()
}

/// The herd's top 10 best shares.
pub fn herd_records(conn: &Connection) -> rusqlite::Result<Vec<ShareRecord>> {
    record_rows(conn, None, TOP)
}

/// One identity's top 10.
pub fn miner_records(conn: &Connection, key: &str) -> rusqlite::Result<Vec<ShareRecord>> {
    record_rows(conn, Some(key), TOP)
}

/// Every identity's top 10, best first within each; keyed by identity.
pub fn all_records(conn: &Connection) -> rusqlite::Result<BTreeMap<String, Vec<ShareRecord>>> {
    let mut out: BTreeMap<String, Vec<ShareRecord>> = BTreeMap::new();
    for r in record_rows(conn, None, usize::MAX >> 1)? {
        out.entry(r.miner_key.clone()).or_default().push(r);
    }
    Ok(out)
}

/// The newest live record (what a page announces as "new record").
pub fn latest_record(conn: &Connection) -> rusqlite::Result<Option<ShareRecord>> {
    conn.query_row(
        &format!("SELECT {RECORD_COLUMNS} FROM share_records WHERE live ORDER BY id DESC LIMIT 1"),
        [],
        record_row,
    )
    .optional()
}

/// The newest record that beat the whole herd when it came in ("new herd record").
pub fn latest_herd_record(conn: &Connection) -> rusqlite::Result<Option<ShareRecord>> {
    conn.query_row(
        &format!(
            "SELECT {RECORD_COLUMNS} FROM share_records WHERE live AND herd_record
             ORDER BY id DESC LIMIT 1"
        ),
        [],
        record_row,
    )
    .optional()
}

/// Every block found, newest first.
pub fn found_blocks(conn: &Connection) -> rusqlite::Result<Vec<FoundBlock>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, miner_id, miner_name, pool FROM found_blocks ORDER BY at DESC, id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(FoundBlock {
            id: r.get(0)?,
            at: r.get(1)?,
            miner_id: r.get(2)?,
            miner: r.get(3)?,
            pool: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// Share counts per power-of-two bucket, lowest first: one identity, or the herd (`None`).
pub fn histogram(conn: &Connection, key: Option<&str>) -> rusqlite::Result<Vec<(i32, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT bucket, sum(count) FROM share_histogram WHERE ?1 IS NULL OR miner_key = ?1
         GROUP BY bucket ORDER BY bucket",
    )?;
    let rows = stmt.query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Asks every open page to show a test celebration now.
pub fn start_test_celebration(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO celebration_test (id, at) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        [now],
    )?;
    Ok(())
}

/// When the last test celebration was asked for (Unix ms).
pub fn test_celebration_at(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    conn.query_row("SELECT at FROM celebration_test WHERE id = 1", [], |r| {
        r.get(0)
    })
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lottery::HASHES_PER_DIFFICULTY;

    fn db() -> Connection {
        let c = crate::db::memory_db();
        c.execute_batch(
            "INSERT INTO miners (id, name, port, usb_serial) VALUES (1, 'alpha', '/dev/ttyUSB0', 'SN-A');
             INSERT INTO miners (id, name, port) VALUES (2, 'beta', '/dev/ttyUSB1');",
        )
        .unwrap();
        c
    }

    fn share(at: i64, difficulty: f64, source: ShareSource, live: bool) -> LotteryNote {
        LotteryNote::Share {
            at,
            difficulty,
            source,
            live,
        }
    }

    fn put(c: &Connection, miner_id: i64, notes: &[LotteryNote]) {
        store(
            c,
            &MinerLottery {
                miner_id,
                pool: Some("public-pool.io"),
                notes,
                minutes: None,
            },
            1_000_000,
        )
        .unwrap();
    }

    fn diffs(c: &Connection) -> Vec<f64> {
        herd_records(c)
            .unwrap()
            .iter()
            .map(|r| r.difficulty)
            .collect()
    }

    #[test]
    fn a_reboot_with_nvs_restore_and_a_replug_add_no_duplicate() {
        let c = db();
        put(
            &c,
            1,
            &[
                share(1_000, 12_345.678, ShareSource::Share, true),
                // the rounded best line of the same share
                share(2_000, 12_300.0, ShareSource::BestLine, true),
            ],
        );
        // Reboot: the restored best, a baseline.
        put(
            &c,
            1,
            &[share(50_000, 12_300.0, ShareSource::BestLine, false)],
        );
        // Re-plugged: a new row for the same board (same USB serial number).
        c.execute_batch(
            "DELETE FROM miners WHERE id = 1;
             INSERT INTO miners (id, name, port, usb_serial) VALUES (3, 'alpha', '/dev/ttyACM0', 'SN-A');",
        )
        .unwrap();
        put(
            &c,
            3,
            &[share(90_000, 12_300.0, ShareSource::BestLine, false)],
        );
        let r = herd_records(&c).unwrap();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].difficulty, 12_345.678);
        assert_eq!(r[0].at, 1_000);
        assert_eq!(r[0].miner_key, "SN-A");
        assert_eq!(r[0].pool.as_deref(), Some("public-pool.io"));
        assert!(r[0].live && r[0].herd_record);
        assert_eq!(miner_records(&c, "SN-A").unwrap().len(), 1);
        // One submitted share: one histogram entry, 2^13 <= 12 345.678 < 2^14.
        assert_eq!(histogram(&c, Some("SN-A")).unwrap(), vec![(13, 1)]);
    }

    #[test]
    fn a_share_line_refines_the_rounded_best_it_belongs_to() {
        let c = db();
        put(
            &c,
            1,
            &[share(5_000, 1_230.0, ShareSource::BestLine, false)],
        );
        put(&c, 1, &[share(4_000, 1_230.456, ShareSource::Share, true)]);
        let r = herd_records(&c).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].difficulty, r[0].at, r[0].source.as_str(), r[0].live),
            (1_230.456, 4_000, "share", true)
        );
        // Two exact shares 0.5 % apart are two shares.
        put(&c, 1, &[share(6_000, 1_236.0, ShareSource::Share, true)]);
        assert_eq!(diffs(&c), vec![1_236.0, 1_230.456]);
    }

    #[test]
    fn ten_records_per_miner_and_the_herd_top_ten_across_miners() {
        let c = db();
        let a: Vec<LotteryNote> = (1..=15)
            .map(|i| share(i, i as f64, ShareSource::Share, true))
            .collect();
        put(&c, 1, &a);
        assert_eq!(miner_records(&c, "SN-A").unwrap().len(), 10);
        assert_eq!(miner_records(&c, "SN-A").unwrap()[9].difficulty, 6.0);
        // beta has no serial number: kept as miner:2.
        put(
            &c,
            2,
            &[
                share(100, 7.5, ShareSource::Share, true),
                share(101, 99.0, ShareSource::Share, true),
            ],
        );
        assert_eq!(
            diffs(&c),
            vec![99.0, 15.0, 14.0, 13.0, 12.0, 11.0, 10.0, 9.0, 8.0, 7.5]
        );
        let top = herd_records(&c).unwrap();
        assert_eq!(
            (top[0].miner.as_str(), top[0].miner_key.as_str()),
            ("beta", "miner:2")
        );
        assert!(top[0].herd_record, "99 beat the herd");
        assert!(!top[9].herd_record, "7.5 did not");
        assert_eq!(latest_record(&c).unwrap().unwrap().difficulty, 99.0);
        put(&c, 1, &[share(200, 16.0, ShareSource::Share, true)]);
        assert_eq!(latest_record(&c).unwrap().unwrap().difficulty, 16.0);
        assert_eq!(latest_herd_record(&c).unwrap().unwrap().difficulty, 99.0);
    }

    #[test]
    fn luck_from_hashes_and_best_by_hand() {
        let c = db();
        let now = 10 * 86_400_000;
        let minute = now / 1000 - 3_600;
        // 8 × 2^32 hashes in one minute an hour ago: expected best 8.
        let mut minutes = BTreeMap::new();
        minutes.insert(
            minute,
            MinuteDelta {
                hashes: 8.0 * HASHES_PER_DIFFICULTY,
                ..Default::default()
            },
        );
        let notes = [share(now - 3_000_000, 2.0, ShareSource::Share, true)];
        store(
            &c,
            &MinerLottery {
                miner_id: 1,
                pool: None,
                notes: &notes,
                minutes: Some(&minutes),
            },
            now,
        )
        .unwrap();
        // 40 days ago on beta: in "all" only (its hour row is dropped after 31 days, the
        // total stays).
        let old = BTreeMap::from([(
            now / 1000 - 40 * 86_400,
            MinuteDelta {
                hashes: 8.0 * HASHES_PER_DIFFICULTY,
                ..Default::default()
            },
        )]);
        store(
            &c,
            &MinerLottery {
                miner_id: 2,
                pool: None,
                notes: &[share(now - 40 * 86_400_000, 16.0, ShareSource::Share, true)],
                minutes: Some(&old),
            },
            now,
        )
        .unwrap();
        let (per, herd) = lottery_figures(&c, now, Some(2f64.powi(40))).unwrap();
        let a = &per["SN-A"];
        assert_eq!(a.luck_24h.expected_best, Some(8.0));
        assert_eq!(a.luck_24h.luck, Some(0.25));
        assert_eq!(a.luck_30d.luck, Some(0.25));
        assert_eq!(a.luck_all.luck, Some(0.25));
        assert_eq!(a.coin_flips, Some(39.0));
        let b = &per["miner:2"];
        assert_eq!(b.luck_24h.luck, None, "no hashes in the last day");
        assert_eq!(b.luck_all.luck, Some(2.0));
        // Herd: 16 hashes-units all time, best 16: luck 1; 24 h: best 2 of expected 8.
        assert_eq!(herd.luck_all.luck, Some(1.0));
        assert_eq!(herd.luck_24h.luck, Some(0.25));
        assert_eq!(herd.best_share, Some(16.0));
        assert_eq!(herd.coin_flips, Some(36.0));
        assert_eq!(herd.progress_to_block, Some(0.1));
    }

    #[test]
    fn a_block_seen_twice_is_recorded_once_and_kept() {
        let c = db();
        put(
            &c,
            1,
            &[
                LotteryNote::Block { at: 5_000 },
                LotteryNote::Block { at: 5_500 },
            ],
        );
        put(
            &c,
            1,
            &[LotteryNote::Block {
                at: 5_000 + SAME_BLOCK_MS + 1,
            }],
        );
        let b = found_blocks(&c).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[1].at, b[1].miner.as_str(), b[1].pool.as_deref()),
            (5_000, "alpha", Some("public-pool.io"))
        );
        let (_, herd) = lottery_figures(&c, 10_000, None).unwrap();
        assert_eq!(herd.blocks, 2);
    }

    /// The simulated firmware's own lines (share lines, best-difficulty lines, three reboots
    /// that restore the best from NVS), through the parser, the summary and the store: every
    /// record is a share the firmware submitted, none twice.
    #[test]
    fn simulated_nvs_miner_records_have_no_duplicates() {
        use crate::miner::parse::parse_line;
        use crate::sim::nerdminer::{Board, SimMiner};
        let c = db();
        let mut sim = SimMiner::new(7, Board::NoDisplay).with_saved_stats();
        let mut lines = sim.boot_lines();
        let tick = |sim: &mut SimMiner, n: usize| -> Vec<String> {
            (0..n).flat_map(|_| sim.tick()).collect()
        };
        lines.extend(tick(&mut sim, 600));
        lines.extend(sim.save_stats());
        for _ in 0..3 {
            lines.extend(sim.reboot("SW_CPU_RESET"));
            lines.extend(tick(&mut sim, 300));
            lines.extend(sim.save_stats());
        }
        let mut state = crate::summary::MinerState::default();
        let mut shares = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let mut m = BTreeMap::new();
            for e in parse_line(l) {
                if let crate::model::event::MinerEvent::ShareDifficulty(d) = e {
                    shares.push(d);
                }
                state.apply(i as i64 * 1000, &e, &mut m);
            }
            let notes = std::mem::take(&mut state.new_lottery);
            store(
                &c,
                &MinerLottery {
                    miner_id: 1,
                    pool: None,
                    notes: &notes,
                    minutes: Some(&m),
                },
                i as i64 * 1000,
            )
            .unwrap();
        }
        shares.sort_by(|a, b| b.total_cmp(a));
        shares.truncate(TOP);
        assert!(shares.len() >= 5, "the simulation submitted shares");
        assert_eq!(diffs(&c), shares);
        assert!(herd_records(&c)
            .unwrap()
            .iter()
            .all(|r| r.live && r.source == "share"));
        let hist: i64 = histogram(&c, None).unwrap().iter().map(|h| h.1).sum();
        assert!(hist >= shares.len() as i64);
    }
}
