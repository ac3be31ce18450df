//! SQL of the reboot history: one row per reboot with the raw lines before it (the crash
//! context users ask for), bounded per row and per miner.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::summary::RebootRecord;

/// Raw lines kept before each reboot.
pub const CONTEXT_LINES: usize = 200;
/// ...and at most this many bytes of them (lines can be 4 KiB each); the oldest go first.
pub const CONTEXT_BYTES: usize = 64 * 1024;
/// Reboot rows kept per miner; older ones are deleted as new ones come.
pub const KEEP_PER_MINER: i64 = 100;

/// One stored reboot.
#[derive(Debug, Clone, Serialize)]
pub struct RebootRow {
    /// Row id.
    pub id: i64,
    /// When (Unix ms).
    pub at: i64,
    /// ROM reset reason, if its banner was seen.
    pub reset_reason: Option<String>,
    /// What it means (`power_on`, `brownout`, `panic`, `watchdog`, `software`,
    /// `wifi_timeout`, `config_erased`, `deep_sleep`, `external`, `unknown`).
    pub cause: String,
    /// The line that explains it.
    pub detail: Option<String>,
    /// How long the board had run before (s).
    pub uptime_before_secs: Option<i64>,
    /// The raw lines before it, oldest first, one per line (only when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// The last [`CONTEXT_LINES`] lines of `miner_id` stamped at or before `at`, oldest first,
/// cut to [`CONTEXT_BYTES`].
pub fn context_before(conn: &Connection, miner_id: i64, at: i64) -> rusqlite::Result<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut before = None;
    // Lines stored after the reboot (the summarizer runs a few seconds behind) are skipped;
    // a bounded number of pages keeps a miner spewing lines from making this slow.
    for _ in 0..20 {
        let page = super::logs::newest(conn, miner_id, before, 500)?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for l in page {
            if l.ts <= at && kept.len() < CONTEXT_LINES {
                kept.push(l.line);
            }
        }
        if kept.len() >= CONTEXT_LINES {
            break;
        }
    }
    kept.reverse();
    let mut total: usize = kept.iter().map(|l| l.len() + 1).sum();
    let mut skip = 0;
    while total > CONTEXT_BYTES && skip < kept.len() {
        total -= kept[skip].len() + 1;
        skip += 1;
    }
    Ok(kept[skip..].join("\n"))
}

/// Stores `records` of `miner_id` with their context; keeps the newest
/// [`KEEP_PER_MINER`]. Runs on the writer inside the caller's transaction.
pub fn store(conn: &Connection, miner_id: i64, records: &[RebootRecord]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO miner_reboots (miner_id, at, reset_reason, cause, detail, uptime_before_secs, context)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for r in records {
        let context = context_before(conn, miner_id, r.at)?;
        insert.execute(params![
            miner_id,
            r.at,
            r.reset_reason,
            r.cause.as_str(),
            r.detail,
            r.uptime_before_secs,
            context
        ])?;
    }
    conn.execute(
        "DELETE FROM miner_reboots WHERE miner_id = ?1 AND id NOT IN
           (SELECT id FROM miner_reboots WHERE miner_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2)",
        params![miner_id, KEEP_PER_MINER],
    )?;
    Ok(())
}

/// The newest `limit` reboots of `miner_id`, newest first; `with_context` adds the lines.
pub fn recent(
    conn: &Connection,
    miner_id: i64,
    limit: usize,
    with_context: bool,
) -> rusqlite::Result<Vec<RebootRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, reset_reason, cause, detail, uptime_before_secs,
                CASE WHEN ?3 THEN context END
         FROM miner_reboots WHERE miner_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![miner_id, limit as i64, with_context], |r| {
        Ok(RebootRow {
            id: r.get(0)?,
            at: r.get(1)?,
            reset_reason: r.get(2)?,
            cause: r.get(3)?,
            detail: r.get(4)?,
            uptime_before_secs: r.get(5)?,
            context: r.get(6)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::logs::{append, NewLine};
    use crate::summary::RebootCause;

    fn db() -> Connection {
        let c = crate::db::memory_db();
        c.execute(
            "INSERT INTO miners (id, name, port) VALUES (1, 'a', '/x')",
            [],
        )
        .unwrap();
        c
    }

    fn record(at: i64) -> RebootRecord {
        RebootRecord {
            at,
            reset_reason: Some("RTCWDT_BROWN_OUT_RESET".into()),
            cause: RebootCause::Brownout,
            detail: Some("Brownout detector was triggered".into()),
            uptime_before_secs: Some(12),
        }
    }

    #[test]
    fn context_is_the_last_200_lines_up_to_the_reboot() {
        let c = db();
        let texts: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
        let lines: Vec<NewLine> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| NewLine {
                ts: i as i64,
                text: t,
                truncated: false,
            })
            .collect();
        append(&c, &[(1, lines)]).unwrap();
        store(&c, 1, &[record(249)]).unwrap();
        let rows = recent(&c, 1, 10, true).unwrap();
        assert_eq!(rows.len(), 1);
        let ctx = rows[0].context.clone().unwrap();
        let got: Vec<&str> = ctx.lines().collect();
        assert_eq!(got.len(), CONTEXT_LINES);
        assert_eq!(got.first(), Some(&"line 50"));
        assert_eq!(got.last(), Some(&"line 249"));
        assert_eq!(rows[0].cause, "brownout");
        assert!(recent(&c, 1, 10, false).unwrap()[0].context.is_none());
    }

    #[test]
    fn context_and_rows_are_bounded() {
        let c = db();
        let long = "x".repeat(4096);
        let lines: Vec<NewLine> = (0..100)
            .map(|i| NewLine {
                ts: i,
                text: &long,
                truncated: true,
            })
            .collect();
        append(&c, &[(1, lines)]).unwrap();
        let many: Vec<RebootRecord> = (0..(KEEP_PER_MINER + 5)).map(|i| record(50 + i)).collect();
        store(&c, 1, &many).unwrap();
        let rows = recent(&c, 1, 1000, true).unwrap();
        assert_eq!(rows.len() as i64, KEEP_PER_MINER);
        assert!(rows
            .iter()
            .all(|r| r.context.as_ref().is_some_and(|x| x.len() <= CONTEXT_BYTES)));
        assert_eq!(rows[0].at, 50 + KEEP_PER_MINER + 4, "newest kept");
    }
}
