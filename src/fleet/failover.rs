//! Failover and schedules from the Pi, as a pure state machine over time. NerdMiner has no
//! fallback pool, so when a miner's pool has been unreachable or rejecting it for a while the
//! Pi writes the profile's next pool, and goes back once the Pi's own test has seen the home
//! pool (the primary, or the pool a schedule window names) answer for a while.
//!
//! Every switch is a flash write, so they are rate-limited per miner, held during a rollout
//! and after a failed write, and only made when the miner's trouble is its pool's: other
//! miners on other pools must still reach theirs (otherwise it is the Pi's network).

use serde::{Deserialize, Serialize};

use super::profile::Profile;

const MINUTE_MS: i64 = 60_000;

/// How often a miner may be written automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Least time between two automatic writes.
    pub min_gap_ms: i64,
    /// Most automatic writes in any 24 hours.
    pub per_day: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_gap_ms: 30 * MINUTE_MS,
            per_day: 6,
        }
    }
}

/// What the Pi knows at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// The miner reaches its current pool and is accepted (no "pool unreachable" or "worker
    /// rejected" diagnosis).
    pub current_ok: bool,
    /// The Pi's own test of the home pool (None: not tested this time).
    pub home_ok: Option<bool>,
    /// Some miner on another pool still reaches its pool.
    pub others_ok: bool,
    /// A rollout is running.
    pub rollout_running: bool,
    /// The miner's last configuration write failed.
    pub last_write_failed: bool,
    /// The pool the profile wants now ([`Profile::home`]).
    pub home: usize,
}

/// One miner's failover memory (stored in `failover_state` so a restart keeps it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The pool index it is on.
    pub active: usize,
    /// The home pool last acted on (a schedule window starting or ending changes it).
    pub home: usize,
    /// Since when its current pool has been failing.
    pub down_since: Option<i64>,
    /// Since when the home pool has been answering the Pi's test.
    pub home_up_since: Option<i64>,
    /// When automatic writes were made (last 24 hours).
    pub writes: Vec<i64>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Nothing.
    Stay,
    /// Write pool `to` now (already recorded as a write in the state).
    Switch {
        /// Pool index.
        to: usize,
        /// Why, for the miner's history and the alert.
        why: String,
    },
    /// A switch is due but may not be made now.
    Held {
        /// Pool index it would go to.
        to: usize,
        /// Why not.
        why: String,
    },
}

/// One step: updates `state` from `obs` and says whether to switch.
pub fn step(profile: &Profile, limits: Limits, state: &mut State, obs: &Observation) -> Decision {
    let now = obs.now_ms;
    let n = profile.pools.len();
    if n == 0 {
        return Decision::Stay;
    }
    state.writes.retain(|t| now - t < 24 * 60 * MINUTE_MS);
    state.down_since = if obs.current_ok {
        None
    } else {
        state.down_since.or(Some(now))
    };
    let away = state.active != obs.home;
    state.home_up_since = match obs.home_ok {
        Some(true) if away => state.home_up_since.or(Some(now)),
        Some(false) | None if away => None,
        _ => None,
    };
    if !away {
        state.home = obs.home;
    }
    let minutes = |since: Option<i64>| since.map_or(0, |s| (now - s) / MINUTE_MS);
    let want = if obs.home != state.home && away {
        Some((obs.home, "the profile's schedule changed pool".to_string()))
    } else if profile.failover
        && n > 1
        && minutes(state.down_since) >= i64::from(profile.down_minutes)
        && obs.others_ok
    {
        let to = (state.active + 1) % n;
        Some((
            to,
            format!(
                "pool {} failing for {} min while other pools are reached",
                profile.pools[state.active.min(n - 1)].label(),
                minutes(state.down_since)
            ),
        ))
    } else if profile.failover
        && away
        && minutes(state.home_up_since) >= i64::from(profile.back_minutes)
    {
        Some((
            obs.home,
            format!(
                "pool {} answered the Pi for {} min",
                profile.pools[obs.home.min(n - 1)].label(),
                minutes(state.home_up_since)
            ),
        ))
    } else {
        None
    };
    let Some((to, why)) = want else {
        return Decision::Stay;
    };
    let held = |why: &str| Decision::Held {
        to,
        why: why.to_string(),
    };
    if obs.rollout_running {
        return held("a rollout is running");
    }
    if obs.last_write_failed {
        return held("the miner's last configuration write failed: look at it first");
    }
    if state.writes.iter().any(|t| now - t < limits.min_gap_ms) {
        return held("at most one automatic write per 30 minutes");
    }
    if state.writes.len() >= limits.per_day {
        return held("at most 6 automatic writes a day");
    }
    state.writes.push(now);
    state.active = to;
    state.home = obs.home;
    state.down_since = None;
    state.home_up_since = None;
    Decision::Switch { to, why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::profile::{Endpoint, Window};

    /// The fake clock: minutes since the start of a day.
    fn at(min: i64) -> i64 {
        1_800_000_000_000 + min * MINUTE_MS
    }

    fn profile() -> Profile {
        Profile {
            id: 1,
            name: "p".into(),
            pools: vec![
                Endpoint::parse("public-pool.io:21496").unwrap(),
                Endpoint::parse("solo.ckpool.org:3333").unwrap(),
            ],
            failover: true,
            down_minutes: 10,
            back_minutes: 25,
            schedule: vec![],
            time_zone: String::new(),
        }
    }

    fn obs(min: i64, current_ok: bool, home_ok: Option<bool>) -> Observation {
        Observation {
            now_ms: at(min),
            current_ok,
            home_ok,
            others_ok: true,
            rollout_running: false,
            last_write_failed: false,
            home: 0,
        }
    }

    fn run(p: &Profile, s: &mut State, o: Observation) -> Decision {
        step(p, Limits::default(), s, &o)
    }

    #[test]
    fn fails_over_after_n_minutes_and_returns_after_m() {
        let p = profile();
        let mut s = State::default();
        for m in 0..10 {
            assert_eq!(
                run(&p, &mut s, obs(m, false, Some(false))),
                Decision::Stay,
                "{m}"
            );
        }
        let d = run(&p, &mut s, obs(10, false, Some(false)));
        assert!(matches!(d, Decision::Switch { to: 1, .. }), "{d:?}");
        assert_eq!(s.active, 1);
        // On the fallback, the primary answers again from minute 20: back after 25 minutes,
        // not before.
        for m in 11..45 {
            let d = run(&p, &mut s, obs(m, true, Some(m >= 20)));
            assert_eq!(d, Decision::Stay, "{m}");
        }
        let d = run(&p, &mut s, obs(45, true, Some(true)));
        assert!(matches!(d, Decision::Switch { to: 0, .. }), "{d:?}");
        assert_eq!(s.writes.len(), 2);
    }

    #[test]
    fn a_blip_of_the_primary_restarts_the_wait() {
        let p = profile();
        let mut s = State {
            active: 1,
            ..State::default()
        };
        for m in 0..24 {
            assert_eq!(run(&p, &mut s, obs(m, true, Some(true))), Decision::Stay);
        }
        assert_eq!(run(&p, &mut s, obs(24, true, Some(false))), Decision::Stay);
        for m in 25..50 {
            assert_eq!(
                run(&p, &mut s, obs(m, true, Some(true))),
                Decision::Stay,
                "{m}"
            );
        }
        assert!(matches!(
            run(&p, &mut s, obs(50, true, Some(true))),
            Decision::Switch { to: 0, .. }
        ));
    }

    #[test]
    fn rate_limited_to_one_per_half_hour_and_six_a_day() {
        let p = Profile {
            back_minutes: 1,
            down_minutes: 1,
            ..profile()
        };
        let mut s = State::default();
        let mut switches = Vec::new();
        // Both pools flap every minute for a day.
        for m in 0..(24 * 60) {
            let d = run(&p, &mut s, obs(m, false, Some(true)));
            if let Decision::Switch { .. } = d {
                switches.push(m);
            }
        }
        assert_eq!(switches.len(), 6, "{switches:?}");
        assert!(
            switches.windows(2).all(|w| w[1] - w[0] >= 30),
            "{switches:?}"
        );
        // The next day the budget is back.
        let d = run(
            &p,
            &mut s,
            obs(24 * 60 + switches[0] + 1, false, Some(true)),
        );
        assert!(matches!(d, Decision::Switch { .. }), "{d:?}");
    }

    #[test]
    fn held_during_rollouts_after_failed_writes_and_when_everyone_is_down() {
        let p = profile();
        let mut s = State::default();
        for m in 0..10 {
            run(&p, &mut s, obs(m, false, None));
        }
        let mut o = obs(10, false, None);
        o.rollout_running = true;
        assert!(matches!(run(&p, &mut s, o), Decision::Held { to: 1, .. }));
        o.rollout_running = false;
        o.last_write_failed = true;
        let d = run(&p, &mut s, o);
        assert!(
            matches!(&d, Decision::Held { why, .. } if why.contains("failed")),
            "{d:?}"
        );
        o.last_write_failed = false;
        o.others_ok = false;
        assert_eq!(run(&p, &mut s, o), Decision::Stay);
        assert_eq!(s.active, 0);
        assert!(s.writes.is_empty());
        let off = Profile {
            failover: false,
            ..profile()
        };
        assert_eq!(run(&off, &mut s, obs(60, false, None)), Decision::Stay);
    }

    #[test]
    fn schedules_switch_at_window_edges_with_the_same_limits() {
        let mut p = profile();
        p.failover = false;
        p.schedule = vec![Window::parse("22:00-06:00=1").unwrap()];
        let mut s = State::default();
        let mut o = obs(0, true, None);
        o.home = p.home(21 * 60 + 59);
        assert_eq!(run(&p, &mut s, o), Decision::Stay);
        o.now_ms = at(1);
        o.home = p.home(22 * 60);
        let d = run(&p, &mut s, o);
        assert!(matches!(&d, Decision::Switch { to: 1, why } if why.contains("schedule")));
        // Window ends 10 minutes later: the 30-minute gap holds it, then it goes.
        o.now_ms = at(11);
        o.home = 0;
        assert!(matches!(run(&p, &mut s, o), Decision::Held { to: 0, .. }));
        o.now_ms = at(31);
        assert!(matches!(run(&p, &mut s, o), Decision::Switch { to: 0, .. }));
        assert_eq!(s.active, 0);
        o.now_ms = at(90);
        assert_eq!(run(&p, &mut s, o), Decision::Stay);
    }
}
