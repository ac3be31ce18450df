//! SQL of the alert rules: storing notices, the active list and history, and the events the
//! rules look at.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::model::alert::{ActiveAlert, Notice, NoticeKind, Rule, Seen, Severity, Sign};

/// One stored alert, as `/api/alerts` and the dashboard show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AlertRow {
    /// Row id.
    pub id: i64,
    /// Which miner.
    pub miner_id: i64,
    /// Its name (null if it was deleted since).
    pub miner: Option<String>,
    /// Rule name (`offline`, `block_found`, …).
    pub rule: String,
    /// `active` or `resolved`.
    pub state: String,
    /// `info`, `warning` or `celebrate`.
    pub severity: String,
    /// What was sent first.
    pub message: String,
    /// When it fired (Unix ms).
    pub first_at: i64,
    /// When it was last sent (Unix ms).
    pub last_sent_at: i64,
    /// When it cleared (Unix ms).
    pub resolved_at: Option<i64>,
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Celebrate => "celebrate",
    }
}

/// Resolved alerts older than this are deleted, so the history cannot grow without bound on
/// an SD card.
pub const KEEP_RESOLVED_MS: i64 = 90 * 86_400_000;

/// Applies notices in one transaction (runs on the writer), and forgets resolved alerts older
/// than [`KEEP_RESOLVED_MS`].
pub fn store(conn: &mut Connection, notices: &[Notice]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    if let Some(now) = notices.iter().map(|n| n.at).max() {
        tx.execute(
            "DELETE FROM alerts WHERE state = 'resolved' AND first_at < ?1",
            [now - KEEP_RESOLVED_MS],
        )?;
    }
    for n in notices {
        match (n.kind, n.rule.is_happening()) {
            (NoticeKind::Fired, happening) => {
                // A miner deleted between the read and this write has no row to point at.
                tx.execute(
                    "INSERT INTO alerts (miner_id, rule, state, severity, message, first_at, last_sent_at, resolved_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7 WHERE EXISTS (SELECT 1 FROM miners WHERE id = ?1)",
                    params![
                        n.miner_id,
                        n.rule.as_str(),
                        if happening { "resolved" } else { "active" },
                        severity_name(n.severity),
                        n.message,
                        n.at,
                        happening.then_some(n.at),
                    ],
                )?;
            }
            (NoticeKind::Repeat, _) => {
                tx.execute(
                    "UPDATE alerts SET last_sent_at = ?3
                     WHERE miner_id = ?1 AND rule = ?2 AND state = 'active'",
                    params![n.miner_id, n.rule.as_str(), n.at],
                )?;
            }
            (NoticeKind::Resolved, _) => {
                tx.execute(
                    "UPDATE alerts SET state = 'resolved', resolved_at = ?3
                     WHERE miner_id = ?1 AND rule = ?2 AND state = 'active'",
                    params![n.miner_id, n.rule.as_str(), n.at],
                )?;
            }
        }
    }
    tx.commit()
}

/// Alerts stored as active, for the engine to carry on after a restart.
pub fn active_for_engine(conn: &Connection) -> rusqlite::Result<Vec<ActiveAlert>> {
    let mut stmt =
        conn.prepare("SELECT miner_id, rule, last_sent_at FROM alerts WHERE state = 'active'")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (miner_id, rule, last_sent_at) = row?;
        if let Some(rule) = Rule::parse(&rule) {
            out.push(ActiveAlert {
                miner_id,
                rule,
                last_sent_at,
            });
        }
    }
    Ok(out)
}

const ALERT_SQL: &str = "SELECT a.id, a.miner_id, m.name, a.rule, a.state, a.severity, a.message,
    a.first_at, a.last_sent_at, a.resolved_at FROM alerts a LEFT JOIN miners m ON m.id = a.miner_id";

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        miner_id: r.get(1)?,
        miner: r.get(2)?,
        rule: r.get(3)?,
        state: r.get(4)?,
        severity: r.get(5)?,
        message: r.get(6)?,
        first_at: r.get(7)?,
        last_sent_at: r.get(8)?,
        resolved_at: r.get(9)?,
    })
}

/// Active alerts, newest first.
pub fn active(conn: &Connection) -> rusqlite::Result<Vec<AlertRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{ALERT_SQL} WHERE a.state = 'active' ORDER BY a.first_at DESC, a.id DESC"
    ))?;
    let rows = stmt.query_map([], alert_row)?;
    rows.collect()
}

/// The latest `limit` alerts of any state, newest first.
pub fn history(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<AlertRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{ALERT_SQL} ORDER BY a.first_at DESC, a.id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], alert_row)?;
    rows.collect()
}

/// Highest event id now: the rules start from here, since history is not news.
pub fn event_watermark(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM miner_events", [], |r| {
        r.get(0)
    })
}

/// Events after `after` that the rules use (at most `limit`), and the new watermark.
pub fn signs_after(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> rusqlite::Result<(Vec<Seen>, i64)> {
    // Most events (progress lines) are not signs: the watermark moves past them too, so the
    // next read does not scan them again.
    let upto = event_watermark(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT id, miner_id, ts, kind, detail FROM miner_events WHERE id > ?1 AND id <= ?3 AND kind IN
         ('boot', 'starting', 'block_found', 'pool_unreachable', 'pool_timeout', 'miner_status',
          'subscribe', 'new_job', 'brownout') ORDER BY id LIMIT ?2",
    )?;
    let mut count = 0;
    let rows = stmt.query_map(params![after, limit as i64, upto], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    let mut last = after;
    for row in rows {
        let (id, miner_id, ts, kind, detail) = row?;
        last = id;
        count += 1;
        let sign = match kind.as_str() {
            "boot" => {
                // A ROM reset reason naming the brown-out detector (RTCWDT_BROWN_OUT_RESET,
                // 0xf) is a brown-out even when its detector line was lost.
                let reason = detail
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                    .and_then(|v| {
                        v.get("reset_reason")
                            .and_then(|r| r.as_str().map(str::to_owned))
                    })
                    .unwrap_or_default();
                if crate::summary::RebootCause::from_reset_reason(&reason)
                    == crate::summary::RebootCause::Brownout
                {
                    out.push(Seen {
                        miner_id,
                        ts,
                        sign: Sign::Brownout,
                    });
                }
                Sign::Boot
            }
            "starting" => Sign::Starting,
            "brownout" => Sign::Brownout,
            "block_found" => Sign::BlockFound,
            "pool_unreachable" | "pool_timeout" => Sign::PoolDown,
            "subscribe" | "new_job" => Sign::PoolUp,
            // {"kind":"miner_status","connected":false,...}
            _ => match detail
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|v| v.get("connected").and_then(|c| c.as_bool()))
            {
                Some(true) => Sign::PoolUp,
                Some(false) => Sign::PoolDown,
                None => continue,
            },
        };
        out.push(Seen { miner_id, ts, sign });
    }
    // A full page may have more behind it: carry on from its last row next time.
    Ok((out, if count >= limit { last } else { upto }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = crate::db::memory_db();
        c.execute(
            "INSERT INTO miners (id, name, port) VALUES (1, 'nm-1', '/dev/x')",
            [],
        )
        .unwrap();
        c
    }

    fn notice(rule: Rule, kind: NoticeKind, at: i64) -> Notice {
        Notice {
            miner_id: 1,
            miner: "nm-1".into(),
            rule,
            kind,
            severity: Severity::Warning,
            message: format!("{rule:?} {kind:?}"),
            at,
        }
    }

    #[test]
    fn fired_repeat_resolved_and_happenings_are_stored() {
        let mut c = db();
        store(
            &mut c,
            &[
                notice(Rule::Offline, NoticeKind::Fired, 10),
                notice(Rule::Rebooted, NoticeKind::Fired, 11),
                // A miner that does not exist is skipped, not an error.
                Notice {
                    miner_id: 99,
                    ..notice(Rule::Offline, NoticeKind::Fired, 12)
                },
            ],
        )
        .unwrap();
        let act = active(&c).unwrap();
        assert_eq!(act.len(), 1);
        assert_eq!(act[0].rule, "offline");
        assert_eq!(act[0].miner.as_deref(), Some("nm-1"));
        store(&mut c, &[notice(Rule::Offline, NoticeKind::Repeat, 20)]).unwrap();
        assert_eq!(
            active_for_engine(&c).unwrap(),
            vec![ActiveAlert {
                miner_id: 1,
                rule: Rule::Offline,
                last_sent_at: 20
            }]
        );
        store(&mut c, &[notice(Rule::Offline, NoticeKind::Resolved, 30)]).unwrap();
        assert!(active(&c).unwrap().is_empty());
        let h = history(&c, 10).unwrap();
        assert_eq!(h.len(), 2);
        assert!(h.iter().all(|a| a.state == "resolved"));
        assert_eq!(h[0].resolved_at, Some(11));
        assert_eq!(h[1].resolved_at, Some(30));
        // Months later, old resolved alerts are gone; active ones stay whatever their age.
        let later = 40 + KEEP_RESOLVED_MS;
        store(&mut c, &[notice(Rule::Temperature, NoticeKind::Fired, 35)]).unwrap();
        store(&mut c, &[notice(Rule::Offline, NoticeKind::Fired, later)]).unwrap();
        let h = history(&c, 10).unwrap();
        let rules: Vec<&str> = h.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(rules, vec!["offline", "temperature"]);
    }

    #[test]
    fn signs_are_read_from_events() {
        let c = db();
        for (kind, detail) in [
            ("progress", r#"{"kind":"progress"}"#),
            ("boot", r#"{"kind":"boot"}"#),
            (
                "miner_status",
                r#"{"kind":"miner_status","connected":false}"#,
            ),
            ("new_job", r#"{"kind":"new_job"}"#),
        ] {
            c.execute(
                "INSERT INTO miner_events (miner_id, ts, kind, detail) VALUES (1, 5, ?1, ?2)",
                [kind, detail],
            )
            .unwrap();
        }
        let (signs, last) = signs_after(&c, 0, 100).unwrap();
        let got: Vec<Sign> = signs.iter().map(|s| s.sign).collect();
        assert_eq!(got, vec![Sign::Boot, Sign::PoolDown, Sign::PoolUp]);
        assert_eq!(last, 4);
        assert_eq!(event_watermark(&c).unwrap(), 4);
    }

    #[test]
    fn brownouts_and_starting_lines_are_signs_of_their_own() {
        let c = db();
        for (kind, detail) in [
            ("brownout", r#"{"kind":"brownout"}"#),
            (
                "boot",
                r#"{"kind":"boot","reset_reason":"RTCWDT_BROWN_OUT_RESET"}"#,
            ),
            ("starting", r#"{"kind":"starting"}"#),
            ("boot", r#"{"kind":"boot","reset_reason":"POWERON_RESET"}"#),
        ] {
            c.execute(
                "INSERT INTO miner_events (miner_id, ts, kind, detail) VALUES (1, 5, ?1, ?2)",
                [kind, detail],
            )
            .unwrap();
        }
        let (signs, _) = signs_after(&c, 0, 100).unwrap();
        let got: Vec<Sign> = signs.iter().map(|s| s.sign).collect();
        assert_eq!(
            got,
            vec![
                Sign::Brownout,
                Sign::Brownout,
                Sign::Boot,
                Sign::Starting,
                Sign::Boot
            ]
        );
    }
}
