//! SQL of the hub: what other sites published (see [`crate::hub`]), and the events this site
//! publishes (records, blocks, incidents after a watermark).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

use crate::model::site::Incoming;

/// One message applied: sites, remote miners, history (a point a minute), events.
pub fn apply(conn: &Connection, site: &str, msg: &Incoming, now: i64) -> rusqlite::Result<()> {
    // `last_heard` counts only figures stamped by the site itself: a retained "online" can
    // be hours old when it arrives (0 until the first figures).
    conn.execute(
        "INSERT INTO hub_sites (site, online, status_at, last_heard) VALUES (?1, 1, ?2, 0)
         ON CONFLICT (site) DO NOTHING",
        params![site, now],
    )?;
    match msg {
        Incoming::Status(online) => {
            conn.execute(
                "UPDATE hub_sites SET status_at = ?2, online = ?3 WHERE site = ?1",
                params![site, now, online],
            )?;
        }
        Incoming::Site { url, version } => {
            conn.execute(
                "UPDATE hub_sites SET url = ?2, version = ?3 WHERE site = ?1",
                params![site, url, version],
            )?;
        }
        Incoming::Herd(doc) => {
            conn.execute(
                "UPDATE hub_sites SET herd_json = ?2 WHERE site = ?1",
                params![site, doc.to_string()],
            )?;
            touch(conn, site, doc_at(doc).unwrap_or(now).min(now))?;
        }
        Incoming::Miner { id, name, at, doc } => {
            let at = at.unwrap_or(now).min(now);
            conn.execute(
                "INSERT INTO hub_miners (site, miner_id, name, state_json, at, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (site, miner_id) DO UPDATE SET name = excluded.name,
                   state_json = excluded.state_json, at = excluded.at,
                   received_at = excluded.received_at
                 WHERE excluded.at >= hub_miners.at",
                params![site, id, name, doc.to_string(), at, now],
            )?;
            conn.execute(
                "INSERT OR REPLACE INTO hub_history (site, miner_id, minute, status, hashrate,
                                                     temperature)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    site,
                    id,
                    at / 60_000 * 60,
                    doc.get("status").and_then(Value::as_str),
                    doc.get("hashrate").and_then(Value::as_f64),
                    doc.get("temperature").and_then(Value::as_f64),
                ],
            )?;
            touch(conn, site, at)?;
        }
        Incoming::MinerGone(id) => {
            conn.execute(
                "DELETE FROM hub_miners WHERE site = ?1 AND miner_id = ?2",
                params![site, id],
            )?;
        }
        Incoming::Event {
            kind,
            id,
            at,
            miner,
            doc,
        } => {
            // An incident comes again when it is resolved: that replaces what was stored.
            // Nothing else does — QoS 1 may deliver the "active" one again afterwards.
            let resolves = kind.as_str() == "incident"
                && doc.get("state").and_then(Value::as_str) == Some("resolved");
            let sql = if resolves {
                "INSERT INTO hub_events (site, kind, event_id, at, miner, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (site, kind, event_id) DO UPDATE SET json = excluded.json"
            } else {
                "INSERT OR IGNORE INTO hub_events (site, kind, event_id, at, miner, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            };
            conn.execute(sql, params![site, kind, id, at, miner, doc.to_string()])?;
        }
    }
    Ok(())
}

fn doc_at(doc: &Value) -> Option<i64> {
    doc.get("at").and_then(Value::as_i64)
}

fn touch(conn: &Connection, site: &str, at: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_sites SET last_heard = max(last_heard, ?2) WHERE site = ?1",
        params![site, at],
    )?;
    Ok(())
}

/// The hub starts listening: a new run (its gap to the last one is where history is missing).
pub fn start_run(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO hub_runs (started_at, alive_at) VALUES (?1, ?1)",
        [now],
    )?;
    Ok(())
}

/// The hub is still listening (stamped on every batch and every half minute).
pub fn alive(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE hub_runs SET alive_at = max(alive_at, ?1)
         WHERE started_at = (SELECT max(started_at) FROM hub_runs)",
        [now],
    )?;
    Ok(())
}

/// Runs `(started_at, alive_at)`, oldest first.
pub fn runs(conn: &Connection) -> rusqlite::Result<Vec<(i64, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT started_at, alive_at FROM hub_runs ORDER BY started_at")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// Drops remote history and events older than `before` (Unix ms).
pub fn prune(conn: &Connection, before: i64) -> rusqlite::Result<usize> {
    let mut n = conn.execute("DELETE FROM hub_history WHERE minute < ?1", [before / 1000])?;
    n += conn.execute("DELETE FROM hub_events WHERE at < ?1", [before])?;
    Ok(n)
}

/// A site as the hub knows it.
#[derive(Debug, Clone, Serialize)]
pub struct SiteRow {
    /// Its name (topic level).
    pub site: String,
    /// What its status topic last said.
    pub online: bool,
    /// Its own Shepherd's address, if published.
    pub url: Option<String>,
    /// Its program version.
    pub version: Option<String>,
    /// Its herd totals as published (schema 1).
    pub herd: Value,
    /// When its status last changed (Unix ms).
    pub status_at: i64,
    /// When anything last came from it (Unix ms).
    pub last_heard: i64,
}

/// Every known site, by name.
pub fn sites(conn: &Connection) -> rusqlite::Result<Vec<SiteRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT site, online, url, version, herd_json, status_at, last_heard FROM hub_sites
         ORDER BY site",
    )?;
    let rows = stmt.query_map([], |r| {
        let herd: Option<String> = r.get(4)?;
        Ok(SiteRow {
            site: r.get(0)?,
            online: r.get(1)?,
            url: r.get(2)?,
            version: r.get(3)?,
            herd: herd
                .and_then(|h| serde_json::from_str(&h).ok())
                .unwrap_or(Value::Null),
            status_at: r.get(5)?,
            last_heard: r.get(6)?,
        })
    })?;
    rows.collect()
}

/// A remote miner's last state.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteMiner {
    /// Its site.
    pub site: String,
    /// Its id at the site.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The state document as published (schema 1).
    pub state: Value,
    /// When the site published it (Unix ms).
    pub at: i64,
}

/// Remote miners, of one site or all, by site and name.
pub fn miners(conn: &Connection, site: Option<&str>) -> rusqlite::Result<Vec<RemoteMiner>> {
    let mut stmt = conn.prepare_cached(
        "SELECT site, miner_id, name, state_json, at FROM hub_miners
         WHERE ?1 IS NULL OR site = ?1 ORDER BY site, name, miner_id",
    )?;
    let rows = stmt.query_map([site], |r| {
        let state: String = r.get(3)?;
        Ok(RemoteMiner {
            site: r.get(0)?,
            id: r.get(1)?,
            name: r.get(2)?,
            state: serde_json::from_str(&state).unwrap_or(Value::Null),
            at: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// An event from a site.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteEvent {
    /// Its site.
    pub site: String,
    /// `record`, `block` or `incident`.
    pub kind: String,
    /// Its id at the site.
    pub id: i64,
    /// When (Unix ms).
    pub at: i64,
    /// Which miner.
    pub miner: Option<String>,
    /// The document as published.
    pub doc: Value,
}

/// The newest `limit` events, of one site or all, newest first.
pub fn events(
    conn: &Connection,
    site: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<RemoteEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT site, kind, event_id, at, miner, json FROM hub_events
         WHERE ?1 IS NULL OR site = ?1 ORDER BY at DESC, event_id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![site, limit as i64], |r| {
        let doc: String = r.get(5)?;
        Ok(RemoteEvent {
            site: r.get(0)?,
            kind: r.get(1)?,
            id: r.get(2)?,
            at: r.get(3)?,
            miner: r.get(4)?,
            doc: serde_json::from_str(&doc).unwrap_or(Value::Null),
        })
    })?;
    rows.collect()
}

/// A remote miner's history since `since` (Unix s): (minute, status, hashrate, temperature).
pub type HistoryPoint = (i64, Option<String>, Option<f64>, Option<f64>);

/// Points of one remote miner, oldest first.
pub fn history(
    conn: &Connection,
    site: &str,
    id: i64,
    since: i64,
) -> rusqlite::Result<Vec<HistoryPoint>> {
    let mut stmt = conn.prepare_cached(
        "SELECT minute, status, hashrate, temperature FROM hub_history
         WHERE site = ?1 AND miner_id = ?2 AND minute >= ?3 ORDER BY minute",
    )?;
    let rows = stmt.query_map(params![site, id, since], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    rows.collect()
}

/// Where this site's event publishing stands: the last row id of each kind sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventMarks {
    /// `share_records.id`.
    pub record: i64,
    /// `found_blocks.id`.
    pub block: i64,
    /// `alerts.id`.
    pub incident: i64,
    /// The last resolution sent: `alerts.resolved_at` and, within that millisecond, `id`.
    pub resolved: (i64, i64),
}

/// The newest ids now: publishing starts after them (history is not replayed at start).
pub fn event_marks(conn: &Connection) -> rusqlite::Result<EventMarks> {
    let max = |table: &str| -> rusqlite::Result<i64> {
        conn.query_row(
            &format!("SELECT coalesce(max(id), 0) FROM {table}"),
            [],
            |r| r.get(0),
        )
    };
    let resolved = conn
        .query_row(
            "SELECT resolved_at, id FROM alerts WHERE state = 'resolved' AND resolved_at IS NOT NULL
             ORDER BY resolved_at DESC, id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, 0));
    Ok(EventMarks {
        record: max("share_records")?,
        block: max("found_blocks")?,
        incident: max("alerts")?,
        resolved,
    })
}

/// One of this site's events: kind, row id, fields.
pub type SiteEvent = (&'static str, i64, Value);

/// This site's events after `marks` (at most `limit` of each kind), as (kind, id, document
/// without `schema`/`site`), and the marks after them.
pub fn events_after(
    conn: &Connection,
    marks: EventMarks,
    limit: usize,
) -> rusqlite::Result<(Vec<SiteEvent>, EventMarks)> {
    let mut out = Vec::new();
    let mut next = marks;
    let lim = limit as i64;
    // Baselines (not live) are not news, but the mark moves past them.
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, miner_id, miner_name, difficulty, pool, herd_record, live
         FROM share_records WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![marks.record, lim], |r| {
        let id: i64 = r.get(0)?;
        Ok((
            id,
            r.get::<_, bool>(7)?,
            json!({"id": id, "at": r.get::<_, i64>(1)?, "miner_id": r.get::<_, Option<i64>>(2)?,
                   "miner": r.get::<_, String>(3)?, "difficulty": r.get::<_, f64>(4)?,
                   "pool": r.get::<_, Option<String>>(5)?, "herd_record": r.get::<_, bool>(6)?}),
        ))
    })?;
    for row in rows {
        let (id, live, doc) = row?;
        next.record = next.record.max(id);
        if live {
            out.push(("record", id, doc));
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, miner_id, miner_name, pool FROM found_blocks WHERE id > ?1
         ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![marks.block, lim], |r| {
        let id: i64 = r.get(0)?;
        Ok((
            id,
            json!({"id": id, "at": r.get::<_, i64>(1)?, "miner_id": r.get::<_, Option<i64>>(2)?,
                   "miner": r.get::<_, String>(3)?, "pool": r.get::<_, Option<String>>(4)?}),
        ))
    })?;
    for row in rows {
        let (id, doc) = row?;
        next.block = next.block.max(id);
        out.push(("block", id, doc));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.first_at, a.miner_id, m.name, a.rule, a.severity, a.message, a.state,
                a.resolved_at
         FROM alerts a LEFT JOIN miners m ON m.id = a.miner_id
         WHERE a.id > ?1 ORDER BY a.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![marks.incident, lim], |r| {
        let id: i64 = r.get(0)?;
        Ok((
            id,
            json!({"id": id, "at": r.get::<_, i64>(1)?, "miner_id": r.get::<_, i64>(2)?,
                   "miner": r.get::<_, Option<String>>(3)?, "rule": r.get::<_, String>(4)?,
                   "severity": r.get::<_, String>(5)?, "message": r.get::<_, String>(6)?,
                   "state": r.get::<_, String>(7)?, "resolved_at": r.get::<_, Option<i64>>(8)?}),
        ))
    })?;
    for row in rows {
        let (id, doc) = row?;
        next.incident = next.incident.max(id);
        out.push(("incident", id, doc));
    }
    // Incidents resolved since the last look, sent again with their new state. Ones not sent
    // yet at all are left to the query above, which sends their state as it is.
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, a.first_at, a.miner_id, m.name, a.rule, a.severity, a.message, a.resolved_at
         FROM alerts a LEFT JOIN miners m ON m.id = a.miner_id
         WHERE a.state = 'resolved' AND a.resolved_at IS NOT NULL AND a.id <= ?3
           AND (a.resolved_at > ?1 OR (a.resolved_at = ?1 AND a.id > ?2))
         ORDER BY a.resolved_at, a.id LIMIT ?4",
    )?;
    let rows = stmt.query_map(
        params![marks.resolved.0, marks.resolved.1, marks.incident, lim],
        |r| {
            let id: i64 = r.get(0)?;
            let resolved_at: i64 = r.get(7)?;
            Ok((
                id,
                resolved_at,
                json!({"id": id, "at": r.get::<_, i64>(1)?, "miner_id": r.get::<_, i64>(2)?,
                       "miner": r.get::<_, Option<String>>(3)?, "rule": r.get::<_, String>(4)?,
                       "severity": r.get::<_, String>(5)?, "message": r.get::<_, String>(6)?,
                       "state": "resolved", "resolved_at": resolved_at}),
            ))
        },
    )?;
    for row in rows {
        let (id, resolved_at, doc) = row?;
        next.resolved = (resolved_at, id);
        out.push(("incident", id, doc));
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::memory_db;

    fn miner(id: i64, at: i64, hashrate: f64) -> Incoming {
        Incoming::Miner {
            id,
            name: format!("m{id}"),
            at: Some(at),
            doc: json!({"schema": 1, "name": format!("m{id}"), "status": "online",
                        "hashrate": hashrate, "at": at}),
        }
    }

    #[test]
    fn a_site_comes_goes_and_keeps_its_last_figures() {
        let c = memory_db();
        apply(&c, "barn", &Incoming::Status(true), 1_000).unwrap();
        apply(&c, "barn", &miner(1, 2_000, 50.0), 2_100).unwrap();
        apply(
            &c,
            "barn",
            &Incoming::Herd(json!({"schema": 1, "miners": 1, "at": 2_000})),
            2_100,
        )
        .unwrap();
        apply(&c, "barn", &Incoming::Status(false), 9_000).unwrap();
        apply(&c, "shed", &Incoming::Status(true), 9_000).unwrap();
        assert_eq!(
            sites(&c).unwrap()[1].last_heard,
            0,
            "a bare retained online"
        );
        let s = &sites(&c).unwrap()[0];
        assert!(!s.online);
        // Neither status is a sign of life: the age counts from the last figures.
        assert_eq!((s.status_at, s.last_heard), (9_000, 2_000));
        assert_eq!(s.herd["miners"], 1);
        let m = miners(&c, Some("barn")).unwrap();
        assert_eq!((m.len(), m[0].state["hashrate"].as_f64()), (1, Some(50.0)));
        assert!(miners(&c, Some("shed")).unwrap().is_empty());
    }

    #[test]
    fn an_older_state_never_replaces_a_newer_one_and_history_is_per_minute() {
        let c = memory_db();
        apply(&c, "barn", &miner(1, 120_000, 50.0), 120_000).unwrap();
        apply(&c, "barn", &miner(1, 60_000, 40.0), 130_000).unwrap();
        assert_eq!(miners(&c, None).unwrap()[0].state["hashrate"], 50.0);
        apply(&c, "barn", &miner(1, 125_000, 55.0), 130_000).unwrap();
        let h = history(&c, "barn", 1, 0).unwrap();
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h[1].2, Some(55.0));
        apply(&c, "barn", &Incoming::MinerGone(1), 140_000).unwrap();
        assert!(miners(&c, None).unwrap().is_empty());
    }

    #[test]
    fn events_are_kept_once() {
        let c = memory_db();
        let e = Incoming::Event {
            kind: "block".into(),
            id: 4,
            at: 10,
            miner: Some("m1".into()),
            doc: json!({"schema": 1}),
        };
        apply(&c, "barn", &e, 20).unwrap();
        apply(&c, "barn", &e, 30).unwrap();
        apply(&c, "shed", &e, 30).unwrap();
        assert_eq!(events(&c, None, 10).unwrap().len(), 2);
        assert_eq!(events(&c, Some("barn"), 10).unwrap().len(), 1);
    }

    #[test]
    fn runs_leave_gaps() {
        let c = memory_db();
        start_run(&c, 100).unwrap();
        alive(&c, 200).unwrap();
        start_run(&c, 1_000).unwrap();
        alive(&c, 1_100).unwrap();
        assert_eq!(runs(&c).unwrap(), vec![(100, 200), (1_000, 1_100)]);
        assert_eq!(
            crate::model::site::gaps(&runs(&c).unwrap()),
            vec![(200, 1_000)]
        );
    }

    #[test]
    fn site_events_come_after_the_marks() {
        let c = memory_db();
        c.execute_batch(
            "INSERT INTO found_blocks (miner_key, miner_name, at) VALUES ('k', 'm1', 5);
             INSERT INTO share_records (miner_key, miner_name, difficulty, at, source, live)
               VALUES ('k', 'm1', 2.0, 6, 'share', 0), ('k', 'm1', 3.0, 7, 'share', 1);",
        )
        .unwrap();
        let (ev, marks) = events_after(&c, EventMarks::default(), 100).unwrap();
        let kinds: Vec<_> = ev.iter().map(|e| (e.0, e.1)).collect();
        assert_eq!(kinds, vec![("record", 2), ("block", 1)]);
        assert_eq!((marks.record, marks.block), (2, 1));
        assert!(events_after(&c, marks, 100).unwrap().0.is_empty());
        assert_eq!(event_marks(&c).unwrap(), marks);
    }

    /// An incident goes out when it starts and again when it is resolved; the hub keeps the
    /// resolution even when QoS 1 brings the start again after it.
    #[test]
    fn a_resolved_incident_is_sent_again_and_the_hub_keeps_the_resolution() {
        let c = memory_db();
        c.execute_batch(
            "INSERT INTO miners (id, name, port) VALUES (1, 'm1', '/dev/ttyUSB0');
             INSERT INTO alerts (id, miner_id, rule, state, message, first_at, last_sent_at)
               VALUES (1, 1, 'offline', 'active', 'm1 is offline', 10, 10),
                      (2, 1, 'hot', 'active', 'm1 is hot', 11, 11);",
        )
        .unwrap();
        let (ev, marks) = events_after(&c, EventMarks::default(), 100).unwrap();
        let states: Vec<_> = ev.iter().map(|e| (e.1, e.2["state"].clone())).collect();
        assert_eq!(states, vec![(1, json!("active")), (2, json!("active"))]);
        // Both resolve in the same millisecond; a third starts and resolves before the look.
        c.execute_batch(
            "UPDATE alerts SET state = 'resolved', resolved_at = 50 WHERE id IN (1, 2);
             INSERT INTO alerts (id, miner_id, rule, state, message, first_at, last_sent_at, resolved_at)
               VALUES (3, 1, 'stalled', 'resolved', 'm1 stalled', 40, 40, 45);",
        )
        .unwrap();
        let (ev, marks) = events_after(&c, marks, 100).unwrap();
        let got: Vec<_> = ev
            .iter()
            .map(|e| (e.1, e.2["state"].clone(), e.2["resolved_at"].clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, json!("resolved"), json!(45)),
                (1, json!("resolved"), json!(50)),
                (2, json!("resolved"), json!(50)),
            ],
            "each incident once: the new one with its state, the older two as resolutions"
        );
        assert_eq!(marks.resolved, (50, 2));
        assert!(events_after(&c, marks, 100).unwrap().0.is_empty());
        assert_eq!(event_marks(&c).unwrap(), marks);

        // The hub's side.
        let hub = memory_db();
        let incident = |state: &str| Incoming::Event {
            kind: "incident".into(),
            id: 1,
            at: 10,
            miner: Some("m1".into()),
            doc: json!({"id": 1, "at": 10, "state": state}),
        };
        for state in ["active", "resolved", "active"] {
            apply(&hub, "barn", &incident(state), 100).unwrap();
        }
        let stored = events(&hub, Some("barn"), 10).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].doc["state"], "resolved");
    }
}
