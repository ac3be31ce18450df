//! Keeping the database bounded on an SD card: raw log lines by age and by size, parsed
//! events by age, per-minute history by age (kept far longer: it is small).
//!
//! Rows are deleted in small batches in rowid order. Ids grow with time under the single
//! writer, so "the oldest rows" are the lowest ids and no index on time is needed; each batch
//! touches only the rows it deletes, and the writer interleaves batches with ingest flushes.

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

/// `[retention]` settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw log lines older than this are deleted.
    pub logs_days: u64,
    /// ...and the oldest are deleted while the database uses more than this (MiB).
    pub logs_max_mb: u64,
    /// Parsed events older than this are deleted (charts use the per-minute history).
    pub events_days: u64,
    /// Per-minute history older than this is deleted.
    pub minutes_days: u64,
    /// Seconds between pruning runs.
    pub interval_secs: u64,
    /// Rows deleted per batch (each batch is one short transaction).
    pub batch_rows: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            logs_days: 7,
            logs_max_mb: 500,
            events_days: 2,
            minutes_days: 365,
            interval_secs: 60,
            batch_rows: 5000,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// What one pruning step deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Log lines deleted.
    pub logs: usize,
    /// Events deleted.
    pub events: usize,
    /// Minute rows deleted.
    pub minutes: usize,
}

impl Pruned {
    /// Nothing left to delete.
    pub fn is_empty(&self) -> bool {
        self.logs == 0 && self.events == 0 && self.minutes == 0
    }
}

/// Bytes the database's pages hold (freed pages excluded: they are reused before the file
/// grows again).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Deletes up to one batch of the oldest rows of `table` that are older than `cutoff` (and,
/// when given, no newer than `max_id`).
fn delete_oldest(
    conn: &Connection,
    table: &str,
    cutoff: i64,
    max_id: Option<i64>,
    batch: usize,
) -> rusqlite::Result<usize> {
    conn.execute(
        &format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT ?1)
             AND ts < ?2 AND id <= ?3"
        ),
        params![batch as i64, cutoff, max_id.unwrap_or(i64::MAX)],
    )
}

/// One bounded step of pruning at time `now` (Unix ms): at most one batch per kind. Call it
/// again while it returns something.
pub fn prune_step(
    conn: &mut Connection,
    cfg: &RetentionConfig,
    now: i64,
) -> rusqlite::Result<Pruned> {
    let tx = conn.transaction()?;
    let batch = cfg.batch_rows.max(1);
    let mut pruned = Pruned {
        logs: delete_oldest(
            &tx,
            "miner_logs",
            now - cfg.logs_days as i64 * DAY_MS,
            None,
            batch,
        )?,
        ..Pruned::default()
    };
    if pruned.logs == 0 && used_bytes(&tx)? > cfg.logs_max_mb * 1024 * 1024 {
        // Over the size limit with nothing old enough: drop the oldest lines regardless of age.
        pruned.logs = delete_oldest(&tx, "miner_logs", i64::MAX, None, batch)?;
    }
    if pruned.logs > 0 {
        super::logs::prune_spans(&tx)?;
    }
    // Never delete events the summarizer has not folded in yet.
    let summarized: i64 = tx.query_row(
        "SELECT coalesce(max(last_event_id), 0) FROM miner_summary",
        [],
        |r| r.get(0),
    )?;
    pruned.events = delete_oldest(
        &tx,
        "miner_events",
        now - cfg.events_days as i64 * DAY_MS,
        Some(summarized),
        batch,
    )?;
    let minute_cutoff = (now - cfg.minutes_days as i64 * DAY_MS) / 1000;
    pruned.minutes = tx.execute(
        "DELETE FROM miner_minutes WHERE (miner_id, minute) IN
           (SELECT miner_id, minute FROM miner_minutes WHERE minute < ?1 LIMIT ?2)",
        params![minute_cutoff, batch as i64],
    )?;
    tx.commit()?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = crate::db::memory_db();
        c.execute(
            "INSERT INTO miners (id, name, port) VALUES (1, 'a', '/dev/x')",
            [],
        )
        .unwrap();
        c
    }

    fn fill(c: &Connection, rows: i64, from_ts: i64, step_ms: i64, line_len: usize) {
        let line = "x".repeat(line_len);
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..rows {
            let ts = from_ts + i * step_ms;
            let new = crate::db::logs::NewLine {
                ts,
                text: &line,
                truncated: false,
            };
            crate::db::logs::append(&tx, &[(1, vec![new])]).unwrap();
            tx.execute(
                "INSERT INTO miner_events (miner_id, ts, kind) VALUES (1, ?1, 'progress')",
                [ts],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    fn count(c: &Connection, table: &str) -> i64 {
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn prune_all(c: &mut Connection, cfg: &RetentionConfig, now: i64) -> usize {
        let mut steps = 0;
        while !prune_step(c, cfg, now).unwrap().is_empty() {
            steps += 1;
            assert!(steps < 10_000, "pruning does not converge");
        }
        steps
    }

    #[test]
    fn old_rows_go_recent_stay_rollups_kept() {
        let mut c = db();
        let now = 100 * DAY_MS;
        // 10 days of logs, one row every 6 h.
        fill(&c, 40, now - 10 * DAY_MS, DAY_MS / 4, 10);
        c.execute(
            "INSERT INTO miner_summary (miner_id, last_event_id) VALUES (1, 1000)",
            [],
        )
        .unwrap();
        for m in 0..5 {
            c.execute(
                "INSERT INTO miner_minutes (miner_id, minute, samples) VALUES (1, ?1, 1)",
                [(now - m * DAY_MS) / 1000],
            )
            .unwrap();
        }
        let cfg = RetentionConfig {
            batch_rows: 3,
            events_days: 2,
            ..RetentionConfig::default()
        };
        let steps = prune_all(&mut c, &cfg, now);
        assert!(steps > 1, "small batches");
        let oldest: i64 = c
            .query_row("SELECT min(ts) FROM miner_logs", [], |r| r.get(0))
            .unwrap();
        assert!(oldest >= now - 7 * DAY_MS);
        assert_eq!(count(&c, "miner_logs"), 28);
        assert_eq!(
            count(&c, "miner_log_spans"),
            28,
            "spans go with their lines"
        );
        assert_eq!(count(&c, "miner_events"), 8);
        assert_eq!(count(&c, "miner_minutes"), 5, "rollups are kept for a year");
    }

    #[test]
    fn unsummarized_events_are_kept_however_old() {
        let mut c = db();
        let now = 100 * DAY_MS;
        fill(&c, 10, now - 60 * DAY_MS, 1000, 10);
        prune_all(&mut c, &RetentionConfig::default(), now);
        assert_eq!(count(&c, "miner_events"), 10);
        assert_eq!(count(&c, "miner_logs"), 0);
    }

    #[test]
    fn database_over_its_size_limit_shrinks_to_it_without_losing_rollups() {
        let mut c = db();
        let now = 100 * DAY_MS;
        fill(&c, 12_000, now - 1000, 0, 200); // ~3 MB of recent lines
        c.execute(
            "INSERT INTO miner_minutes (miner_id, minute, samples) VALUES (1, 1, 1)",
            [],
        )
        .unwrap();
        let before = used_bytes(&c).unwrap();
        assert!(before > 2 * 1024 * 1024, "{before}");
        let cfg = RetentionConfig {
            logs_max_mb: 1,
            minutes_days: 100_000,
            batch_rows: 500,
            ..RetentionConfig::default()
        };
        prune_all(&mut c, &cfg, now);
        assert!(
            used_bytes(&c).unwrap() <= 1024 * 1024,
            "{}",
            used_bytes(&c).unwrap()
        );
        assert!(count(&c, "miner_logs") > 0, "only what is needed goes");
        assert_eq!(count(&c, "miner_minutes"), 1);
        // The newest lines survive, the oldest went.
        let max_id: i64 = c
            .query_row("SELECT max(id) FROM miner_logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(max_id, 12_000);
    }

    #[test]
    fn old_minutes_go_after_a_year() {
        let mut c = db();
        let now = 1000 * DAY_MS;
        for d in [10, 364, 366, 400] {
            c.execute(
                "INSERT INTO miner_minutes (miner_id, minute, samples) VALUES (1, ?1, 1)",
                [(now - d * DAY_MS) / 1000],
            )
            .unwrap();
        }
        prune_all(&mut c, &RetentionConfig::default(), now);
        assert_eq!(count(&c, "miner_minutes"), 2);
    }
}
