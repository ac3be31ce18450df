//! Failover and schedules carried out from the Pi, once a minute: for each miner whose profile
//! has failover or schedule windows, the pure [`crate::fleet::failover::step`] decides, and a
//! switch is written like any reconcile — a one-miner canary rollout of SET_CONFIG — so it is
//! in the miner's command history, with a `pool_switch` line saying why in its event feed, and an alert
//! ([`crate::alerts::PoolSwitched`]). The per-miner memory (timers, recent automatic writes)
//! is stored in `failover_state` after every tick, so a restart keeps the rate limits.

use std::collections::HashMap;
use std::time::Duration;

use actix::Addr;
use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::db::fleet as dbfleet;
use crate::db::{DbActor, ReadPool, Write};
use crate::diagnosis::Verdict;
use crate::fleet::drift::Desired;
use crate::fleet::failover::{step, Decision, Limits, Observation, State};
use crate::fleet::profile::Endpoint;
use crate::rollout::{self, Rollout, Rollouts};
use crate::supervisor::Supervisor;

/// A switch to make: write `change` to the miner and remember pool `to` as its active one.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// Miner id.
    pub miner_id: i64,
    /// Miner name.
    pub name: String,
    /// Pool index it goes to.
    pub to: usize,
    /// The keys to write.
    pub change: Map<String, Value>,
    /// Why (for the log and the alert).
    pub why: String,
}

/// One tick over the database: every miner with a profile that fails over or has a schedule.
/// `ok` says, per miner id, whether it currently reaches its pool (absent: unknown, counted
/// as fine so an unplugged miner is never switched); `probe` tests a pool from the Pi;
/// schedule windows are read on the wall clock of `tz`.
pub fn tick(
    conn: &Connection,
    states: &mut HashMap<i64, State>,
    now_ms: i64,
    tz: chrono_tz::Tz,
    ok: &HashMap<i64, bool>,
    rollout_running: bool,
    probe: &dyn Fn(&Endpoint) -> bool,
) -> rusqlite::Result<Vec<Switch>> {
    let profiles = dbfleet::profiles(conn)?;
    // Each profile's windows on its own wall clock, else the configured or the Pi's.
    let minute_of = |p: &crate::fleet::Profile| {
        let zone = crate::fleet::zone::named(&p.time_zone)
            .ok()
            .flatten()
            .unwrap_or(tz);
        crate::fleet::zone::minute_of_day(now_ms, zone)
    };
    let mut rows = Vec::new();
    for m in crate::db::miners::list(conn)? {
        let Some(d) = dbfleet::desired_row(conn, m.id)? else {
            continue;
        };
        let Some(p) = d
            .profile_id
            .and_then(|id| profiles.iter().find(|p| p.id == id))
        else {
            continue;
        };
        let last_failed: bool = conn
            .query_row(
                "SELECT status = 'error' FROM miner_commands
                  WHERE miner_id = ?1 AND command = 'SET_CONFIG' ORDER BY id DESC LIMIT 1",
                [m.id],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(false),
                e => Err(e),
            })?;
        rows.push((m, d, p.clone(), last_failed));
    }
    let active_host = |d: &dbfleet::DesiredRow, p: &crate::fleet::Profile| {
        p.pools
            .get(usize::try_from(d.active_pool).unwrap_or(0))
            .map(|e| e.host.to_ascii_lowercase())
    };
    let mut out = Vec::new();
    for (m, d, p, last_failed) in &rows {
        if !p.failover && p.schedule.is_empty() {
            continue;
        }
        let active = usize::try_from(d.active_pool).unwrap_or(0);
        let st = states.entry(m.id).or_insert_with(|| State {
            active,
            home: p.home(minute_of(p)),
            ..State::default()
        });
        st.active = active;
        let home = p.home(minute_of(p));
        let mine = active_host(d, p);
        let others_ok = rows.iter().any(|(o, od, op, _)| {
            o.id != m.id && active_host(od, op) != mine && ok.get(&o.id) == Some(&true)
        });
        let home_ok = (active != home)
            .then(|| p.pools.get(home).map(probe))
            .flatten();
        let obs = Observation {
            now_ms,
            current_ok: ok.get(&m.id).copied().unwrap_or(true),
            home_ok,
            others_ok,
            rollout_running,
            last_write_failed: *last_failed,
            home,
        };
        match step(p, Limits::default(), st, &obs) {
            Decision::Switch { to, why } => {
                let address: Option<String> = match d.address_id {
                    Some(a) => conn
                        .query_row(
                            "SELECT address FROM coin_addresses WHERE id = ?1",
                            [a],
                            |r| r.get(0),
                        )
                        .ok(),
                    None => None,
                };
                let desired = Desired {
                    profile: Some(p.clone()),
                    active_pool: to,
                    address,
                    worker: d.worker.clone(),
                    board: serde_json::from_str(&d.board_json).unwrap_or_default(),
                };
                match desired.keys() {
                    Ok(change) => out.push(Switch {
                        miner_id: m.id,
                        name: m.name.clone(),
                        to,
                        change,
                        why,
                    }),
                    Err(e) => tracing::warn!(miner = %m.name, "failover not written: {e}"),
                }
            }
            Decision::Held { to, why } => {
                tracing::info!(miner = %m.name, to, "automatic pool switch held: {why}");
            }
            Decision::Stay => {}
        }
    }
    Ok(out)
}

/// Whether a verdict means the miner reaches its pool and is accepted (None: no opinion).
fn reaches_pool(v: Verdict) -> Option<bool> {
    match v {
        Verdict::PoolUnreachable | Verdict::WorkerRejected => Some(false),
        Verdict::Mining | Verdict::MiningUnreported | Verdict::NotHashing => Some(true),
        _ => None,
    }
}

/// What [`run`] needs besides the database.
pub struct Autopilot {
    /// The database writer.
    pub db: Addr<DbActor>,
    /// Delivers the SET_CONFIG writes.
    pub supervisor: Addr<Supervisor>,
    /// Where the one-miner rollouts run.
    pub rollouts: Rollouts,
    /// Raises the alert of each switch.
    pub alerts: Addr<crate::alerts::AlertActor>,
    /// The herd document the summarizer publishes (who reaches its pool).
    pub herd: crate::herd::Feed,
    /// Time between ticks (a minute; tests shorten it).
    pub every: Duration,
    /// The zone schedule windows are read in.
    pub tz: chrono_tz::Tz,
}

/// Runs [`tick`] every `every` until the process stops, writing each switch.
pub async fn run(pool: ReadPool, a: Autopilot) {
    let Autopilot {
        db,
        supervisor,
        rollouts,
        alerts,
        herd,
        every,
        tz,
    } = a;
    let p = pool.clone();
    let mut states: HashMap<i64, State> =
        match actix_web::web::block(move || p.with(dbfleet::failover_states)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!("stored failover state not read, starting afresh: {e}");
                HashMap::new()
            }
            Err(e) => {
                tracing::warn!("stored failover state not read, starting afresh: {e}");
                HashMap::new()
            }
        };
    loop {
        actix_web::rt::time::sleep(every).await;
        let running = rollouts.any_running();
        let p = pool.clone();
        let mut st = std::mem::take(&mut states);
        let feed = herd.clone();
        let result = actix_web::web::block(move || {
            let now = crate::clock::now_ms();
            let herd = match feed.current() {
                Ok(h) => h,
                Err(e) => return (st, Err(e)),
            };
            let ok: HashMap<i64, bool> = herd
                .miners
                .iter()
                .filter_map(|v| reaches_pool(v.diagnosis.verdict).map(|ok| (v.id, ok)))
                .collect();
            let r = p.with(|c| {
                tick(c, &mut st, now, tz, &ok, running, &|e| {
                    crate::fleet::probe::probe(e, crate::fleet::probe::TIMEOUT).ok
                })
            });
            (st, r)
        })
        .await;
        let switches = match result {
            Ok((st, Ok(s))) => {
                states = st;
                let keep = states.clone();
                let saved = db
                    .send(Write::new(move |c| dbfleet::save_failover_states(c, &keep)))
                    .await;
                if !matches!(saved, Ok(Ok(()))) {
                    tracing::warn!("failover state not stored: a restart would forget it");
                }
                s
            }
            Ok((st, Err(e))) => {
                states = st;
                tracing::warn!("failover check failed: {e}");
                continue;
            }
            Err(e) => {
                tracing::warn!("failover check failed: {e}");
                continue;
            }
        };
        for s in switches {
            tracing::warn!(miner = %s.name, to = s.to, "automatic pool switch: {}", s.why);
            let (id, to) = (s.miner_id, i64::try_from(s.to).unwrap_or(0));
            let pool_label = format!(
                "{}:{}",
                s.change
                    .get("poolString")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                s.change.get("portNumber").unwrap_or(&Value::Null)
            );
            let why = s.why.clone();
            let label = pool_label.clone();
            let recorded = db
                .send(Write::new(move |c| {
                    dbfleet::record_switch(c, id, to, &label, &why)
                }))
                .await;
            if !matches!(recorded, Ok(Ok(()))) {
                tracing::warn!(miner = %s.name, "failover not written: cannot record it");
                continue;
            }
            alerts.do_send(crate::alerts::PoolSwitched {
                miner_id: s.miner_id,
                miner: s.name.clone(),
                message: format!("{} moved to {}: {}", s.name, pool_label, s.why),
            });
            match Rollout::plan_each(0, vec![(s.miner_id, s.name.clone(), s.change)]) {
                Ok(plan) => {
                    let rid = rollouts.add(plan);
                    actix_web::rt::spawn(rollout::run(
                        rollouts.clone(),
                        rid,
                        pool.clone(),
                        db.clone(),
                        supervisor.clone(),
                    ));
                }
                Err(e) => tracing::warn!(miner = %s.name, "failover not written: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::fleet::{save_profile, set_desired, DesiredRow};
    use crate::db::migrate::migrate;
    use crate::fleet::probe::tests::{stub, Stub};
    use crate::fleet::profile::Profile;

    const UTC: chrono_tz::Tz = chrono_tz::Tz::UTC;
    const ADDR: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
    const MIN: i64 = 60_000;

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            password: "x".into(),
        }
    }

    /// Two miners: `a` on a failover profile, `b` on another pool that works.
    fn setup(primary: u16, fallback: u16) -> (Connection, i64) {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "foreign_keys", true).unwrap();
        migrate(&mut c).unwrap();
        let fo = save_profile(
            &c,
            &Profile {
                id: 0,
                name: "fo".into(),
                pools: vec![
                    ep(primary),
                    Endpoint {
                        host: "localhost".into(),
                        ..ep(fallback)
                    },
                ],
                failover: true,
                down_minutes: 10,
                back_minutes: 10,
                schedule: vec![],
                time_zone: String::new(),
            },
        )
        .unwrap();
        let other = save_profile(
            &c,
            &Profile {
                id: 0,
                name: "other".into(),
                pools: vec![Endpoint {
                    host: "pool.example".into(),
                    ..ep(1)
                }],
                failover: false,
                down_minutes: 10,
                back_minutes: 10,
                schedule: vec![],
                time_zone: String::new(),
            },
        )
        .unwrap();
        let addr = dbfleet::address_id(&c, ADDR).unwrap().unwrap();
        let a = crate::db::miners::add(&c, "a", "/dev/ttyUSB0", "serial").unwrap();
        let b = crate::db::miners::add(&c, "b", "/dev/ttyUSB1", "serial").unwrap();
        for (m, p) in [(a, fo), (b, other)] {
            set_desired(
                &c,
                m,
                &DesiredRow {
                    profile_id: Some(p),
                    address_id: Some(addr),
                    worker: None,
                    board_json: "{}".into(),
                    active_pool: 0,
                },
            )
            .unwrap();
        }
        (c, a)
    }

    #[test]
    fn switches_to_the_fallback_and_back_once_the_pi_sees_the_primary_answer() {
        // The primary refuses (the miner's diagnosis says so too); the fallback accepts.
        let refusing = stub(Stub::Refuse, 100);
        let accepting = stub(Stub::Accept, 100);
        let (c, a) = setup(refusing, accepting);
        let mut states = HashMap::new();
        let probe = |e: &Endpoint| crate::fleet::probe::probe(e, crate::fleet::probe::TIMEOUT).ok;
        let t0 = 1_800_000_000_000;
        let down: HashMap<i64, bool> = [(a, false), (a + 1, true)].into();
        for m in 0..10 {
            assert!(
                tick(&c, &mut states, t0 + m * MIN, UTC, &down, false, &probe)
                    .unwrap()
                    .is_empty()
            );
        }
        let s = tick(&c, &mut states, t0 + 10 * MIN, UTC, &down, false, &probe).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!((s[0].miner_id, s[0].to), (a, 1));
        assert_eq!(s[0].change["poolString"], "localhost");
        assert_eq!(s[0].change["btcString"], ADDR);
        dbfleet::set_active_pool(&c, a, 1).unwrap();

        // On the fallback it mines; the Pi keeps testing the primary, which still refuses.
        let up: HashMap<i64, bool> = [(a, true), (a + 1, true)].into();
        for m in 11..60 {
            assert!(tick(&c, &mut states, t0 + m * MIN, UTC, &up, false, &probe)
                .unwrap()
                .is_empty());
        }
        // Now the primary answers (same port, an accepting stub is swapped in by editing it).
        let mut p = dbfleet::profile_named(&c, "fo").unwrap().unwrap();
        p.pools[0].port = stub(Stub::Accept, 100);
        save_profile(&c, &p).unwrap();
        for m in 60..70 {
            assert!(
                tick(&c, &mut states, t0 + m * MIN, UTC, &up, false, &probe)
                    .unwrap()
                    .is_empty(),
                "{m}"
            );
        }
        let s = tick(&c, &mut states, t0 + 70 * MIN, UTC, &up, false, &probe).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].to, 0);
        assert_eq!(states[&a].writes.len(), 2);
    }

    #[test]
    fn no_switch_during_a_rollout_after_a_failed_write_or_when_every_pool_is_down() {
        let (c, a) = setup(stub(Stub::Refuse, 10), stub(Stub::Accept, 10));
        let probe = |_: &Endpoint| false;
        let t0 = 1_800_000_000_000;
        let down: HashMap<i64, bool> = [(a, false), (a + 1, true)].into();
        let mut states = HashMap::new();
        for m in 0..=10 {
            assert!(
                tick(&c, &mut states, t0 + m * MIN, UTC, &down, true, &probe)
                    .unwrap()
                    .is_empty()
            );
        }
        crate::db::commands::insert(&c, a, crate::db::commands::CommandKind::SetConfig, None)
            .map(|id| crate::db::commands::finish(&c, id, false, "MD5 mismatch", None))
            .unwrap()
            .unwrap();
        assert!(
            tick(&c, &mut states, t0 + 11 * MIN, UTC, &down, false, &probe)
                .unwrap()
                .is_empty()
        );
        let everyone_down: HashMap<i64, bool> = [(a, false), (a + 1, false)].into();
        let mut fresh = HashMap::new();
        let c2 = setup(stub(Stub::Refuse, 10), stub(Stub::Accept, 10)).0;
        for m in 0..=20 {
            assert!(tick(
                &c2,
                &mut fresh,
                t0 + m * MIN,
                UTC,
                &everyone_down,
                false,
                &probe
            )
            .unwrap()
            .is_empty());
        }
    }

    #[test]
    fn a_restart_keeps_the_timers_and_the_rate_limits() {
        let (c, a) = setup(stub(Stub::Refuse, 100), stub(Stub::Accept, 100));
        let t0 = 1_800_000_000_000;
        let down: HashMap<i64, bool> = [(a, false), (a + 1, true)].into();
        let never = |_: &Endpoint| false;
        // Five minutes down, then the process stops; what it stored is all the next one has.
        let mut states = HashMap::new();
        for m in 0..5 {
            assert!(
                tick(&c, &mut states, t0 + m * MIN, UTC, &down, false, &never)
                    .unwrap()
                    .is_empty()
            );
        }
        dbfleet::save_failover_states(&c, &states).unwrap();
        let mut restarted = dbfleet::failover_states(&c).unwrap();
        assert_eq!(restarted, states);
        for m in 5..10 {
            assert!(
                tick(&c, &mut restarted, t0 + m * MIN, UTC, &down, false, &never)
                    .unwrap()
                    .is_empty(),
                "the down timer restarted at minute {m}"
            );
        }
        // Ten minutes after it went down, as if there had been no restart.
        let s = tick(&c, &mut restarted, t0 + 10 * MIN, UTC, &down, false, &never).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        dbfleet::set_active_pool(&c, a, 1).unwrap();
        dbfleet::save_failover_states(&c, &restarted).unwrap();

        // The fallback fails too; another restart must not forget the write just made.
        let mut again = dbfleet::failover_states(&c).unwrap();
        assert_eq!(again[&a].writes, vec![t0 + 10 * MIN]);
        for m in 11..40 {
            assert!(
                tick(&c, &mut again, t0 + m * MIN, UTC, &down, false, &never)
                    .unwrap()
                    .is_empty(),
                "a second write {m} min after the first: the 30-minute limit was forgotten"
            );
        }
        let s = tick(&c, &mut again, t0 + 40 * MIN, UTC, &down, false, &never).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        // A deleted miner's state is not stored (its row went with it).
        crate::db::miners::remove(&c, "a").unwrap();
        dbfleet::save_failover_states(&c, &again).unwrap();
        assert!(!dbfleet::failover_states(&c).unwrap().contains_key(&a));
    }

    #[test]
    fn a_schedule_window_is_read_in_the_profiles_own_zone() {
        let (c, a) = setup(stub(Stub::Accept, 100), stub(Stub::Accept, 100));
        // Solo pool (pool 1) from 22:00 to 06:00 in Tokyo (UTC+9, no DST).
        let mut p = dbfleet::profile_named(&c, "fo").unwrap().unwrap();
        p.failover = false;
        p.schedule = vec![crate::fleet::Window::parse("22:00-06:00=1").unwrap()];
        p.time_zone = "Asia/Tokyo".into();
        save_profile(&c, &p).unwrap();
        let fine: HashMap<i64, bool> = [(a, true), (a + 1, true)].into();
        let never = |_: &Endpoint| false;
        let mut states = HashMap::new();
        // 12:00 UTC is 21:00 in Tokyo: not yet; the Pi's zone (UTC here) would say midday.
        let noon = 1_799_928_000_000; // 2027-01-14 12:00 UTC
        assert_eq!(noon % (24 * 60 * MIN), 12 * 60 * MIN);
        assert!(tick(&c, &mut states, noon, UTC, &fine, false, &never)
            .unwrap()
            .is_empty());
        // 13:00 UTC is 22:00 in Tokyo: the window starts, whatever the Pi's zone.
        let s = tick(&c, &mut states, noon + 60 * MIN, UTC, &fine, false, &never).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].why.contains("schedule"), "{}", s[0].why);
        assert_eq!(s[0].to, 1);
    }
}
