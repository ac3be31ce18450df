//! SQL behind fleet configuration: pool profiles and each miner's desired configuration, and
//! the fleet view that puts desired, read-back and drift side by side (the drift itself is
//! computed by the pure [`crate::fleet::drift`]).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::now_ms;
use crate::fleet::drift::{drift, Desired, Drift};
use crate::fleet::{worker, Profile};

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn profile_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Profile> {
    let pools: String = r.get(2)?;
    let schedule: String = r.get(6)?;
    let bad = |i, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(Profile {
        id: r.get(0)?,
        name: r.get(1)?,
        pools: serde_json::from_str(&pools).map_err(|e| bad(2, e))?,
        failover: r.get(3)?,
        down_minutes: r.get(4)?,
        back_minutes: r.get(5)?,
        schedule: serde_json::from_str(&schedule).map_err(|e| bad(6, e))?,
        time_zone: r.get(7)?,
    })
}

const PROFILE_COLUMNS: &str =
    "id, name, pools_json, failover, down_minutes, back_minutes, schedule_json, time_zone";

/// Every profile by name.
pub fn profiles(conn: &Connection) -> rusqlite::Result<Vec<Profile>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PROFILE_COLUMNS} FROM pool_profiles ORDER BY name"
    ))?;
    let rows = stmt.query_map([], profile_row)?;
    rows.collect()
}

/// One profile by name.
pub fn profile_named(conn: &Connection, name: &str) -> rusqlite::Result<Option<Profile>> {
    conn.query_row(
        &format!("SELECT {PROFILE_COLUMNS} FROM pool_profiles WHERE name = ?1"),
        [name],
        profile_row,
    )
    .optional()
}

/// Adds (`profile.id == 0`) or updates a profile; returns its id. The caller checked it.
pub fn save_profile(conn: &Connection, p: &Profile) -> rusqlite::Result<i64> {
    let pools = serde_json::to_string(&p.pools).map_err(json_err)?;
    let schedule = serde_json::to_string(&p.schedule).map_err(json_err)?;
    if p.id == 0 {
        conn.execute(
            "INSERT INTO pool_profiles (name, pools_json, failover, down_minutes, back_minutes,
                                        schedule_json, created_at, time_zone)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                p.name.trim(),
                pools,
                p.failover,
                p.down_minutes,
                p.back_minutes,
                schedule,
                now_ms(),
                p.time_zone.trim()
            ],
        )?;
        Ok(conn.last_insert_rowid())
    } else {
        conn.execute(
            "UPDATE pool_profiles SET name = ?2, pools_json = ?3, failover = ?4,
                    down_minutes = ?5, back_minutes = ?6, schedule_json = ?7, time_zone = ?8
              WHERE id = ?1",
            params![
                p.id,
                p.name.trim(),
                pools,
                p.failover,
                p.down_minutes,
                p.back_minutes,
                schedule,
                p.time_zone.trim()
            ],
        )?;
        Ok(p.id)
    }
}

/// Removes a profile by name (miners using it keep their desired address and worker, and no
/// longer have a desired pool); false if there was none.
pub fn remove_profile(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM pool_profiles WHERE name = ?1", [name])? > 0)
}

/// A miner's desired configuration as stored (ids, not yet resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DesiredRow {
    /// Profile id.
    pub profile_id: Option<i64>,
    /// Coin address id (from `/settings`).
    pub address_id: Option<i64>,
    /// Worker name.
    pub worker: Option<String>,
    /// Board keys as a JSON object.
    pub board_json: String,
    /// Pool index it should be on now.
    pub active_pool: i64,
}

/// A miner's desired row (None: nothing desired yet).
pub fn desired_row(conn: &Connection, miner_id: i64) -> rusqlite::Result<Option<DesiredRow>> {
    conn.query_row(
        "SELECT profile_id, address_id, worker, board_json, active_pool
           FROM miner_desired WHERE miner_id = ?1",
        [miner_id],
        |r| {
            Ok(DesiredRow {
                profile_id: r.get(0)?,
                address_id: r.get(1)?,
                worker: r.get(2)?,
                board_json: r.get(3)?,
                active_pool: r.get(4)?,
            })
        },
    )
    .optional()
}

/// Stores a miner's desired row (whole).
pub fn set_desired(conn: &Connection, miner_id: i64, d: &DesiredRow) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO miner_desired (miner_id, profile_id, address_id, worker, board_json,
                                    active_pool, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (miner_id) DO UPDATE SET profile_id = ?2, address_id = ?3, worker = ?4,
             board_json = ?5, active_pool = ?6, updated_at = ?7",
        params![
            miner_id,
            d.profile_id,
            d.address_id,
            d.worker,
            d.board_json,
            d.active_pool,
            now_ms()
        ],
    )?;
    Ok(())
}

/// Moves a miner to pool `index` of its profile (failover, schedules).
pub fn set_active_pool(conn: &Connection, miner_id: i64, index: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE miner_desired SET active_pool = ?2, updated_at = ?3 WHERE miner_id = ?1",
        params![miner_id, index, now_ms()],
    )?;
    Ok(())
}

/// An automatic switch (failover, schedule): the miner's pool index, and a `pool_switch`
/// line in its history (the miner page's event feed) saying where to and why.
pub fn record_switch(
    conn: &Connection,
    miner_id: i64,
    to: i64,
    pool: &str,
    why: &str,
) -> rusqlite::Result<()> {
    set_active_pool(conn, miner_id, to)?;
    conn.execute(
        "INSERT INTO miner_events (miner_id, ts, kind, value, detail)
         VALUES (?1, ?2, 'pool_switch', ?3, ?4)",
        params![
            miner_id,
            now_ms(),
            to,
            format!("automatic switch to {pool}: {why}")
        ],
    )?;
    Ok(())
}

/// The failover memory of every miner, as last stored by the autopilot (an unreadable row is
/// skipped: that miner starts afresh, which only delays a switch).
pub fn failover_states(
    conn: &Connection,
) -> rusqlite::Result<std::collections::HashMap<i64, crate::fleet::failover::State>> {
    let mut stmt = conn.prepare_cached("SELECT miner_id, state_json FROM failover_state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (id, json) = row?;
        match serde_json::from_str(&json) {
            Ok(st) => {
                out.insert(id, st);
            }
            Err(e) => tracing::warn!(miner_id = id, "stored failover state ignored: {e}"),
        }
    }
    Ok(out)
}

/// Stores the failover memory of these miners (after each autopilot tick). Miners deleted
/// meanwhile are skipped (their row went with them).
pub fn save_failover_states(
    conn: &Connection,
    states: &std::collections::HashMap<i64, crate::fleet::failover::State>,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO failover_state (miner_id, state_json, updated_at)
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM miners WHERE id = ?1)
         ON CONFLICT(miner_id) DO UPDATE SET state_json = excluded.state_json,
                                             updated_at = excluded.updated_at",
    )?;
    let now = now_ms();
    for (id, st) in states {
        let json = serde_json::to_string(st).map_err(json_err)?;
        stmt.execute(params![id, json, now])?;
    }
    Ok(())
}

/// Worker names already desired by miners other than `except`.
pub fn workers_taken(conn: &Connection, except: Option<i64>) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT worker FROM miner_desired WHERE worker IS NOT NULL AND miner_id != ?1",
    )?;
    let rows = stmt.query_map([except.unwrap_or(-1)], |r| r.get(0))?;
    rows.collect()
}

/// Gives a miner without a desired worker name one proposed from its name, unique among the
/// herd's; returns the worker name it has.
pub fn propose_worker(conn: &Connection, miner_id: i64) -> rusqlite::Result<String> {
    if let Some(w) = desired_row(conn, miner_id)?.and_then(|d| d.worker) {
        return Ok(w);
    }
    let name: String =
        conn.query_row("SELECT name FROM miners WHERE id = ?1", [miner_id], |r| {
            r.get(0)
        })?;
    let w = worker::propose(&name, &workers_taken(conn, Some(miner_id))?);
    conn.execute(
        "INSERT INTO miner_desired (miner_id, worker, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (miner_id) DO UPDATE SET worker = ?2, updated_at = ?3",
        params![miner_id, w, now_ms()],
    )?;
    Ok(w)
}

/// The id of a coin address given by label or by the address itself; a valid address not
/// yet on `/settings` is added there (labelled with itself). Err: not an address.
pub fn address_id(conn: &Connection, text: &str) -> rusqlite::Result<Result<i64, String>> {
    let text = text.trim();
    let found: Option<i64> = conn
        .query_row(
            "SELECT id FROM coin_addresses WHERE label = ?1 OR address = ?1 ORDER BY label = ?1 DESC",
            [text],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = found {
        return Ok(Ok(id));
    }
    if let Err(e) = worker::btc_string(text, None) {
        return Ok(Err(format!(
            "{e}; give a label from /settings or a whole Bitcoin address"
        )));
    }
    conn.execute(
        "INSERT INTO coin_addresses (label, address, created_at) VALUES (?1, ?1, ?2)",
        params![text, now_ms()],
    )?;
    Ok(Ok(conn.last_insert_rowid()))
}

/// One miner in the fleet view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetMiner {
    /// Miner id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Its profile's name.
    pub profile: Option<String>,
    /// Pool index it should be on.
    pub active_pool: usize,
    /// Desired worker name.
    pub worker: Option<String>,
    /// The config.json keys it should have (empty when nothing is desired).
    pub desired: Map<String, Value>,
    /// Why the desired state cannot be written as it is, if it cannot.
    pub problem: Option<String>,
    /// Desired vs last read back.
    pub drift: Drift,
    /// When its configuration was last read (ms).
    pub read_at: Option<i64>,
    /// The pool's public page for its worker, where the pool has one.
    pub pool_page: Option<String>,
}

/// A miner's fleet state as the herd document carries it: in sync / drifted (which keys) /
/// unknown, its profile, and where the pool shows its worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HerdFleet {
    /// Desired vs last read back.
    pub drift: Drift,
    /// Its profile's name.
    pub profile: Option<String>,
    /// The pool's public page for its worker, where the pool has one.
    pub pool_page: Option<String>,
}

impl Default for HerdFleet {
    fn default() -> Self {
        HerdFleet {
            drift: Drift::Unknown,
            profile: None,
            pool_page: None,
        }
    }
}

impl From<&FleetMiner> for HerdFleet {
    fn from(m: &FleetMiner) -> Self {
        HerdFleet {
            drift: m.drift.clone(),
            profile: m.profile.clone(),
            pool_page: m.pool_page.clone(),
        }
    }
}

/// Every miner with its desired keys and drift, by name.
pub fn fleet(conn: &Connection) -> rusqlite::Result<Vec<FleetMiner>> {
    let profiles = profiles(conn)?;
    let mut stmt = conn.prepare_cached(
        "SELECT m.id, m.name, m.last_config_json, m.last_config_at, d.profile_id, a.address,
                d.worker, d.board_json, d.active_pool
           FROM miners m
           LEFT JOIN miner_desired d ON d.miner_id = m.id
           LEFT JOIN coin_addresses a ON a.id = d.address_id
          ORDER BY m.name",
    )?;
    let rows = stmt.query_map([], |r| {
        let read: Option<String> = r.get(2)?;
        let board: Option<String> = r.get(7)?;
        let profile_id: Option<i64> = r.get(4)?;
        let active: Option<i64> = r.get(8)?;
        let desired = Desired {
            profile: profile_id.and_then(|id| profiles.iter().find(|p| p.id == id).cloned()),
            active_pool: usize::try_from(active.unwrap_or(0)).unwrap_or(0),
            address: r.get(5)?,
            worker: r.get(6)?,
            board: board
                .and_then(|b| serde_json::from_str(&b).ok())
                .unwrap_or_default(),
        };
        let read: Option<Map<String, Value>> = read.and_then(|j| serde_json::from_str(&j).ok());
        let (keys, problem) = match desired.keys() {
            Ok(k) => (k, None),
            Err(e) => (Map::new(), Some(e)),
        };
        let pool_page = match (keys.get("poolString"), keys.get("btcString")) {
            (Some(Value::String(p)), Some(Value::String(b))) => worker::pool_page(p, b),
            _ => None,
        };
        Ok(FleetMiner {
            id: r.get(0)?,
            name: r.get(1)?,
            profile: desired.profile.as_ref().map(|p| p.name.clone()),
            active_pool: desired.active_pool,
            worker: desired.worker.clone(),
            drift: drift(&keys, read.as_ref()),
            desired: keys,
            problem,
            read_at: r.get(3)?,
            pool_page,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::commands::store_config;
    use crate::db::migrate::migrate;
    use crate::fleet::profile::{Endpoint, DEFAULT_MINUTES};

    const ADDR: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

    pub(crate) fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut c).unwrap();
        c
    }

    fn public() -> Profile {
        Profile {
            id: 0,
            name: "public".into(),
            pools: vec![
                Endpoint::parse("public-pool.io:21496").unwrap(),
                Endpoint::parse("solo.ckpool.org:3333").unwrap(),
            ],
            failover: true,
            down_minutes: DEFAULT_MINUTES,
            back_minutes: DEFAULT_MINUTES,
            schedule: vec![],
            time_zone: String::new(),
        }
    }

    #[test]
    fn profiles_round_trip_and_drift_follows_read_backs() {
        let c = db();
        let pid = save_profile(&c, &public()).unwrap();
        assert_eq!(profile_named(&c, "public").unwrap().unwrap().pools.len(), 2);
        let m = crate::db::miners::add(&c, "desk", "/dev/ttyUSB0", "serial").unwrap();
        let n = crate::db::miners::add(&c, "shelf", "/dev/ttyUSB1", "serial").unwrap();
        let aid = address_id(&c, ADDR).unwrap().unwrap();
        assert_eq!(address_id(&c, ADDR).unwrap().unwrap(), aid);
        assert!(address_id(&c, "bc1qtypo").unwrap().is_err());
        set_desired(
            &c,
            m,
            &DesiredRow {
                profile_id: Some(pid),
                address_id: Some(aid),
                worker: Some("desk".into()),
                board_json: r#"{"Brightness":100}"#.into(),
                active_pool: 0,
            },
        )
        .unwrap();
        assert_eq!(workers_taken(&c, Some(n)).unwrap(), ["desk"]);
        assert!(workers_taken(&c, Some(m)).unwrap().is_empty());

        let view = fleet(&c).unwrap();
        assert_eq!(view[0].drift, Drift::Unknown);
        assert_eq!(view[1].drift, Drift::Unknown); // shelf: never read
        assert!(view[0]
            .pool_page
            .as_deref()
            .unwrap()
            .contains("public-pool.io"));

        store_config(
            &c,
            m,
            &format!(
                r#"{{"poolString":"public-pool.io","portNumber":21496,"poolPassword":"x","btcString":"{ADDR}.desk","Brightness":100,"extra":1}}"#
            ),
        )
        .unwrap();
        store_config(&c, n, r#"{"poolString":"a.org"}"#).unwrap();
        let view = fleet(&c).unwrap();
        assert_eq!(view[0].drift, Drift::InSync);
        assert_eq!(view[1].drift, Drift::InSync); // nothing desired for shelf

        record_switch(&c, m, 1, "solo.ckpool.org:3333", "pool down 10 min").unwrap();
        let detail: String = c
            .query_row(
                "SELECT detail FROM miner_events WHERE miner_id = ?1 AND kind = 'pool_switch'",
                [m],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            detail.contains("solo.ckpool.org") && detail.contains("down"),
            "{detail}"
        );
        let view = fleet(&c).unwrap();
        assert_eq!(
            view[0].drift,
            Drift::Drifted {
                keys: vec!["poolString".into(), "portNumber".into()]
            }
        );
        assert!(view[0].pool_page.as_deref().unwrap().contains("ckpool"));

        // Onboarding proposes unique worker names.
        let o = crate::db::miners::add(&c, "Desk", "/dev/ttyUSB2", "serial").unwrap();
        assert_eq!(propose_worker(&c, o).unwrap(), "Desk-2");
        assert_eq!(propose_worker(&c, o).unwrap(), "Desk-2");
        assert_eq!(propose_worker(&c, n).unwrap(), "shelf");

        assert!(remove_profile(&c, "public").unwrap());
        assert!(!remove_profile(&c, "public").unwrap());
        let view = fleet(&c).unwrap();
        let desk = view.iter().find(|v| v.name == "desk").unwrap();
        assert_eq!(desk.profile, None);
        assert_eq!(desk.drift, Drift::InSync); // address and worker still match
        let other = view.iter().find(|v| v.name == "Desk").unwrap();
        assert_eq!(
            (other.worker.as_deref(), other.problem.as_ref()),
            (Some("Desk-2"), None)
        );
    }
}
