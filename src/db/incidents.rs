//! The SQL behind incidents: a miner's happenings read from `alerts` (trouble opening and
//! closing) and `miner_commands` (configuration writes that failed or succeeded, resets the
//! Shepherd did), for [`crate::incidents::build`]; and the minutes a miner mined, for
//! [`crate::incidents::availability`].

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::incidents::{self, Episode, Happening, IncidentKind, Mark};

/// The command a reset is stored as (identify and self-healing), kept as text so that this
/// read does not depend on which command kinds this version knows.
pub const RESET_COMMAND: &str = "RESET";

/// Happenings of every miner (or only `miner`) since `since` (Unix ms); trouble that started
/// earlier and is still open, or ended after `since`, is included whole.
pub fn happenings(
    conn: &Connection,
    miner: Option<i64>,
    since: i64,
) -> rusqlite::Result<Vec<Happening>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT miner_id, rule, message, first_at, resolved_at FROM alerts
         WHERE (?1 IS NULL OR miner_id = ?1)
           AND (resolved_at IS NULL OR resolved_at >= ?2)",
    )?;
    let rows = stmt.query_map(params![miner, since], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<i64>>(4)?,
        ))
    })?;
    for row in rows {
        let (miner_id, rule, message, first_at, resolved_at) = row?;
        let Some(kind) = IncidentKind::from_alert(&rule, &message) else {
            continue;
        };
        out.push(Happening {
            miner_id,
            at: first_at,
            mark: Mark::Opened {
                kind,
                cause: message,
            },
        });
        if let Some(at) = resolved_at {
            out.push(Happening {
                miner_id,
                at,
                mark: Mark::Closed { kind },
            });
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT miner_id, command, status, detail, finished_at, payload FROM miner_commands
         WHERE (?1 IS NULL OR miner_id = ?1) AND finished_at IS NOT NULL AND finished_at >= ?2
           AND command IN ('SET_CONFIG', ?3)",
    )?;
    let rows = stmt.query_map(params![miner, since, RESET_COMMAND], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    for row in rows {
        let (miner_id, command, status, detail, at, payload) = row?;
        let detail = detail.unwrap_or_default();
        let mark = match (command.as_str(), status.as_str()) {
            ("SET_CONFIG", "error") => Mark::Opened {
                kind: IncidentKind::WriteFailed,
                cause: format!("configuration write failed: {detail}"),
            },
            ("SET_CONFIG", _) => Mark::Closed {
                kind: IncidentKind::WriteFailed,
            },
            _ => Mark::Action {
                text: reset_text(payload.as_deref(), &status, &detail),
            },
        };
        out.push(Happening { miner_id, at, mark });
    }
    Ok(out)
}

/// How long after an identify reset a miner still shows as identifying if it does not mine.
pub const IDENTIFY_HOLD_MS: i64 = 5 * 60_000;

/// Miners being identified: an identify RESET is queued or running, or finished less than
/// [`IDENTIFY_HOLD_MS`] ago and the miner has not reported hashing since (it mines again).
pub fn identifying(conn: &Connection, now: i64) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT c.miner_id FROM miner_commands c
         WHERE c.command = ?1 AND c.payload LIKE '%\"identify\"%'
           AND (c.status IN ('pending', 'running')
                OR (c.finished_at >= ?2 AND NOT EXISTS (
                      SELECT 1 FROM miner_events e WHERE e.miner_id = c.miner_id
                        AND e.kind = 'progress' AND e.ts > c.finished_at)))
         ORDER BY c.miner_id",
    )?;
    let rows = stmt.query_map(params![RESET_COMMAND, now - IDENTIFY_HOLD_MS], |r| r.get(0))?;
    rows.collect()
}

/// How a reset reads in an episode: who asked for it and how it went.
fn reset_text(payload: Option<&str>, status: &str, detail: &str) -> String {
    let why = payload
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|v| v.get("reason").and_then(|r| r.as_str().map(str::to_owned)))
        .unwrap_or_else(|| "reset".into());
    if status == "complete" {
        format!("{why}: {detail}")
    } else {
        format!("{why} failed: {detail}")
    }
}

/// One episode as `/api/incidents` and the pages show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentRow {
    /// The episode.
    #[serde(flatten)]
    pub episode: Episode,
    /// The miner's name (null if it was deleted since).
    pub miner: Option<String>,
    /// The kind, for people.
    pub label: &'static str,
    /// Whether it still lasts.
    pub open: bool,
    /// How long it lasted, or has lasted so far (ms).
    pub duration_ms: i64,
}

/// Which episodes to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this miner.
    pub miner_id: Option<i64>,
    /// Only this kind.
    pub kind: Option<IncidentKind>,
    /// Only open (`Some(true)`) or closed (`Some(false)`) ones.
    pub open: Option<bool>,
}

/// How far back incidents are told (alerts are kept 90 days, availability goes to 30).
pub const LOOKBACK_MS: i64 = 30 * 86_400_000;

/// Episodes matching `filter` that lasted into the last [`LOOKBACK_MS`], newest first, at
/// most `limit`.
pub fn list(
    conn: &Connection,
    now: i64,
    filter: &Filter,
    limit: usize,
) -> rusqlite::Result<Vec<IncidentRow>> {
    let all = incidents::build(&happenings(conn, filter.miner_id, now - LOOKBACK_MS)?);
    let names = miner_names(conn)?;
    Ok(all
        .into_iter()
        .filter(|e| filter.kind.is_none_or(|k| k == e.kind))
        .filter(|e| filter.open.is_none_or(|o| o == e.is_open()))
        .take(limit)
        .map(|e| IncidentRow {
            miner: names
                .iter()
                .find(|(id, _)| *id == e.miner_id)
                .map(|(_, n)| n.clone()),
            label: e.kind.label(),
            open: e.is_open(),
            duration_ms: e.duration_ms(now),
            episode: e,
        })
        .collect())
}

fn miner_names(conn: &Connection) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare_cached("SELECT id, name FROM miners")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// A miner's availability over the [`incidents::WINDOWS`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Availability {
    /// Which miner.
    pub miner_id: i64,
    /// Its name.
    pub miner: String,
    /// Percent of the last 24 h spent mining (null for a miner added less than a minute ago).
    pub pct_24h: Option<f64>,
    /// Over the last 7 days.
    pub pct_7d: Option<f64>,
    /// Over the last 30 days.
    pub pct_30d: Option<f64>,
}

/// Availability of every miner (or only `miner`), by name.
pub fn availability(
    conn: &Connection,
    now: i64,
    miner: Option<i64>,
) -> rusqlite::Result<Vec<Availability>> {
    let longest = incidents::WINDOWS[2].1;
    let mut miners = conn.prepare_cached(
        "SELECT id, name, created_at FROM miners WHERE (?1 IS NULL OR id = ?1) ORDER BY name",
    )?;
    let list = miners
        .query_map([miner], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut minutes = conn.prepare_cached(
        "SELECT minute FROM miner_minutes
         WHERE miner_id = ?1 AND minute >= ?2 AND hashrate_khs > 0",
    )?;
    let mut out = Vec::new();
    for (id, name, created_at) in list {
        let mined = minutes
            .query_map(params![id, (now - longest) / 1000 - 60], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        let pct = |w: i64| incidents::availability(&mined, now - w, now, created_at);
        out.push(Availability {
            miner_id: id,
            miner: name,
            pct_24h: pct(incidents::WINDOWS[0].1),
            pct_7d: pct(incidents::WINDOWS[1].1),
            pct_30d: pct(incidents::WINDOWS[2].1),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::memory_db;

    const MIN: i64 = 60_000;

    fn miner(c: &Connection, name: &str, created_at: i64) -> i64 {
        c.execute(
            "INSERT INTO miners (name, port, kind, created_at) VALUES (?1, '/dev/null', 'demo', ?2)",
            params![name, created_at],
        )
        .unwrap();
        c.last_insert_rowid()
    }

    #[test]
    fn alerts_and_commands_become_episodes() {
        let c = memory_db();
        let now = 100 * 86_400_000;
        let m = miner(&c, "demo-1", 0);
        let other = miner(&c, "demo-2", 0);
        let alert = |id: i64, rule: &str, msg: &str, first: i64, end: Option<i64>| {
            c.execute(
                "INSERT INTO alerts (miner_id, rule, state, message, first_at, last_sent_at, resolved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                params![id, rule, if end.is_some() { "resolved" } else { "active" }, msg, first, end],
            )
            .unwrap();
        };
        alert(
            m,
            "offline",
            "demo-1 is stalled",
            now - 60 * MIN,
            Some(now - 30 * MIN),
        );
        alert(
            m,
            "temperature",
            "demo-1 runs at 80 °C",
            now - 10 * MIN,
            None,
        );
        alert(m, "block_found", "yay", now - 5 * MIN, Some(now - 5 * MIN));
        alert(
            other,
            "offline",
            "demo-2 is offline",
            now - 40 * 86_400_000,
            Some(now - 39 * 86_400_000),
        );
        let cmd = |id: i64,
                   command: &str,
                   status: &str,
                   detail: &str,
                   at: i64,
                   payload: Option<&str>| {
            c.execute(
                "INSERT INTO miner_commands (miner_id, command, status, detail, created_at, finished_at, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
                params![id, command, status, detail, at, payload],
            )
            .unwrap();
        };
        cmd(
            m,
            "SET_CONFIG",
            "error",
            "the cable was pulled",
            now - 20 * MIN,
            None,
        );
        cmd(m, "SET_CONFIG", "complete", "written", now - 15 * MIN, None);
        cmd(m, "GET_CONFIG", "error", "nothing", now - 14 * MIN, None);

        let all = list(&c, now, &Filter::default(), 100).unwrap();
        let kinds: Vec<_> = all.iter().map(|r| r.episode.kind).collect();
        assert_eq!(
            kinds,
            [
                IncidentKind::Overheating,
                IncidentKind::WriteFailed,
                IncidentKind::Stalled
            ],
            "newest first; the block and the 40-day-old offline spell are not listed"
        );
        assert_eq!(all[0].miner.as_deref(), Some("demo-1"));
        assert!(all[0].open);
        assert_eq!(all[0].duration_ms, 10 * MIN);
        assert_eq!(all[1].duration_ms, 5 * MIN);
        assert!(all[1].episode.cause.contains("cable was pulled"));
        let open = Filter {
            open: Some(false),
            kind: Some(IncidentKind::Stalled),
            ..Filter::default()
        };
        assert_eq!(list(&c, now, &open, 100).unwrap().len(), 1);
        let none = Filter {
            miner_id: Some(other),
            ..Filter::default()
        };
        assert!(list(&c, now, &none, 100).unwrap().is_empty());
    }

    #[test]
    fn a_miner_is_identifying_until_it_mines_again() {
        let c = memory_db();
        let now = 100 * 86_400_000;
        let m = miner(&c, "demo-7", 0);
        let other = miner(&c, "demo-8", 0);
        let reset = |id: i64, status: &str, finished: Option<i64>, reason: &str| {
            c.execute(
                "INSERT INTO miner_commands (miner_id, command, status, created_at, finished_at, payload)
                 VALUES (?1, 'RESET', ?2, 0, ?3, ?4)",
                params![id, status, finished, format!("{{\"reason\":\"{reason}\"}}")],
            )
            .unwrap();
        };
        reset(m, "pending", None, "identify");
        reset(other, "complete", Some(now - 10 * MIN), "identify");
        // A self-healing reset is not an identify.
        reset(other, "pending", None, "self-healing: serial reset");
        assert_eq!(identifying(&c, now).unwrap(), [m]);
        c.execute(
            "UPDATE miner_commands SET status = 'complete', finished_at = ?1 WHERE miner_id = ?2",
            params![now - MIN, m],
        )
        .unwrap();
        assert_eq!(
            identifying(&c, now).unwrap(),
            [m],
            "rebooted, not mining yet"
        );
        c.execute(
            "INSERT INTO miner_events (miner_id, ts, kind) VALUES (?1, ?2, 'progress')",
            params![m, now - 1000],
        )
        .unwrap();
        assert!(identifying(&c, now).unwrap().is_empty(), "mining again");
    }

    #[test]
    fn availability_reads_the_mining_minutes() {
        let c = memory_db();
        let day = 86_400_000;
        let now = 100 * day;
        let m = miner(&c, "demo-1", now - 2 * day);
        // Mined 6 h of the last day; an idle minute (hashrate 0) does not count.
        for i in 0..360 {
            c.execute(
                "INSERT INTO miner_minutes (miner_id, minute, hashrate_khs, samples) VALUES (?1, ?2, 50.0, 60)",
                params![m, (now - day + i * MIN) / 1000],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO miner_minutes (miner_id, minute, hashrate_khs, samples) VALUES (?1, ?2, 0.0, 60)",
            params![m, (now - MIN) / 1000],
        )
        .unwrap();
        let a = availability(&c, now, None).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].pct_24h, Some(25.0));
        // Added two days ago: the 7- and 30-day figures are over those two days.
        assert_eq!(a[0].pct_7d, Some(12.5));
        assert_eq!(a[0].pct_30d, Some(12.5));
    }
}
