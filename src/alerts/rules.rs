//! Alert rules as a pure state machine: fed snapshots of the herd (and the events that arrived
//! since the last one) with the time passed in, it says which notifications to send. No I/O,
//! no clock: the [`AlertActor`](super::AlertActor) reads, calls [`Engine::evaluate`], stores
//! and sends.
//!
//! Two kinds of rule:
//! - **conditions** (offline, hashrate low, hot, pool down, rejects) hold for a while: they fire
//!   once the condition has held for the rule's delay, repeat every `repeat_minutes` while they
//!   hold, and resolve once the condition has been clear for `clear_secs` (so a flapping miner
//!   gives one alert, not one per flap);
//! - **happenings** (rebooted, block found) are sent once each; several signs of the same
//!   happening within `clear_secs` (a boot banner, then the restart counter) count once.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::config::AlertsConfig;
#[cfg(test)]
use crate::model::alert::ALL_RULES;
use crate::model::alert::{ActiveAlert, Notice, NoticeKind, Rule, Seen, Severity, Sign};
use crate::model::status::Status;

/// One miner as the rules see it (a subset of [`MinerView`](crate::herd::MinerView)).
#[derive(Debug, Clone, PartialEq)]
pub struct MinerSnapshot {
    /// Row id.
    pub id: i64,
    /// Owner's name for it.
    pub name: String,
    /// Derived status.
    pub status: Status,
    /// Current hashrate (KH/s).
    pub hashrate_khs: Option<f64>,
    /// 24-h average (KH/s); `None` until there is one.
    pub hashrate_avg_24h: Option<f64>,
    /// Chip temperature (°C).
    pub temperature: Option<f64>,
    /// Accepted shares, all sessions.
    pub accepted: i64,
    /// Rejected shares, all sessions.
    pub rejected: i64,
    /// Reboots seen.
    pub restarts: i64,
    /// Blocks found.
    pub blocks_found: i64,
    /// Why the pool refuses the worker, when the diagnosis says it does.
    pub worker_rejected: Option<String>,
}

/// Rule thresholds, in the units the engine uses (from [`AlertsConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Offline/stalled this long before firing (ms).
    pub offline_ms: i64,
    /// Hashrate below this percentage of the 24-h average...
    pub hashrate_pct: f64,
    /// ...for this long (ms).
    pub hashrate_ms: i64,
    /// Temperature above this (°C).
    pub temperature_c: f64,
    /// Pool down this long before firing (ms).
    pub pool_ms: i64,
    /// Rejected share percentage over the window above which the rule fires...
    pub reject_pct: f64,
    /// ...once at least this many shares were answered in the window.
    pub reject_min_shares: i64,
    /// The window for rejects (ms).
    pub reject_window_ms: i64,
    /// A reboot storm is this many reboots...
    pub storm_count: usize,
    /// ...within this long (ms).
    pub storm_window_ms: i64,
    /// Repeat an active alert this often (ms); 0 never.
    pub repeat_ms: i64,
    /// A condition must stay clear this long before it is resolved (ms).
    pub clear_ms: i64,
    /// Rules switched on.
    pub enabled: Vec<Rule>,
}

impl Thresholds {
    /// From the `[alerts]` section.
    pub fn from_config(c: &AlertsConfig) -> Self {
        let min = |m: u64| i64::try_from(m.saturating_mul(60_000)).unwrap_or(i64::MAX);
        let mut enabled = Vec::new();
        for (on, rule) in [
            (c.offline, Rule::Offline),
            (c.hashrate, Rule::HashrateLow),
            (c.temperature, Rule::Temperature),
            (c.pool, Rule::PoolDisconnected),
            (c.rejects, Rule::SharesRejected),
            (c.reboot, Rule::Rebooted),
            (c.block_found, Rule::BlockFound),
            (c.worker_rejected, Rule::WorkerRejected),
            (c.reboot_storm, Rule::RebootStorm),
            (c.brownout, Rule::Brownout),
        ] {
            if on {
                enabled.push(rule);
            }
        }
        Self {
            offline_ms: min(c.offline_minutes),
            hashrate_pct: c.hashrate_below_percent,
            hashrate_ms: min(c.hashrate_minutes),
            temperature_c: c.temperature_above_c,
            pool_ms: min(c.pool_minutes),
            reject_pct: c.rejects_above_percent,
            reject_min_shares: i64::try_from(c.rejects_min_shares).unwrap_or(i64::MAX),
            reject_window_ms: min(c.rejects_window_minutes),
            storm_count: usize::try_from(c.reboot_storm_count).unwrap_or(usize::MAX),
            storm_window_ms: min(c.reboot_storm_minutes),
            repeat_ms: min(c.repeat_minutes),
            clear_ms: i64::try_from(c.clear_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            enabled,
        }
    }
}

/// Where one (miner, condition) stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// The condition holds since `since` but not yet for the rule's delay; `clear_since` as
    /// for Active, so a condition that flaps faster than `clear_secs` still reaches its delay.
    Pending {
        since: i64,
        clear_since: Option<i64>,
    },
    /// Notified; `clear_since` is when the condition last stopped holding, if it has.
    Active {
        last_sent: i64,
        clear_since: Option<i64>,
    },
}

/// What the engine remembers about one miner between evaluations.
#[derive(Debug, Default)]
struct MinerMemory {
    restarts: Option<i64>,
    blocks: Option<i64>,
    /// Last time a happening was sent, so several signs of one count once.
    last_happening: HashMap<Rule, i64>,
    /// Pool down since (None: up or unknown).
    pool_down_since: Option<i64>,
    /// (time, accepted, rejected) samples over the reject window, oldest first.
    shares: VecDeque<(i64, i64, i64)>,
    /// Times of the reboots within the storm window, oldest first.
    boots: VecDeque<i64>,
    /// Last ROM banner (a "starting" right after it is the same boot).
    last_banner: Option<i64>,
}

/// Reboots right after the Shepherd starts are not news: opening a serial port resets many
/// ESP32 boards (DTR/RTS), so every start would otherwise send one "rebooted" per miner.
pub const REBOOT_GRACE_MS: i64 = 120_000;

/// The rules and their memory.
#[derive(Debug)]
pub struct Engine {
    t: Thresholds,
    phases: BTreeMap<(i64, Rule), Phase>,
    memory: HashMap<i64, MinerMemory>,
    /// Time of the first evaluation.
    started: Option<i64>,
}

impl Engine {
    /// An engine with nothing active.
    pub fn new(t: Thresholds) -> Self {
        Self {
            t,
            phases: BTreeMap::new(),
            memory: HashMap::new(),
            started: None,
        }
    }

    /// Uses `t` from the next evaluation on (rules changed on `/settings`); what is pending or
    /// active is kept, and clears under the new thresholds as usual.
    pub fn set_thresholds(&mut self, t: Thresholds) {
        self.t = t;
    }

    /// Takes over alerts stored as active (a restart must neither forget nor repeat them at once).
    pub fn restore(&mut self, active: &[ActiveAlert]) {
        for a in active.iter().filter(|a| !a.rule.is_happening()) {
            self.phases.insert(
                (a.miner_id, a.rule),
                Phase::Active {
                    last_sent: a.last_sent_at,
                    clear_since: None,
                },
            );
        }
    }

    /// (miner, rule) pairs active now.
    pub fn active(&self) -> Vec<(i64, Rule)> {
        self.phases
            .iter()
            .filter(|(_, p)| matches!(p, Phase::Active { .. }))
            .map(|(k, _)| *k)
            .collect()
    }

    /// One evaluation at `now` (Unix ms) over the herd and the events since the last one.
    pub fn evaluate(&mut self, now: i64, miners: &[MinerSnapshot], seen: &[Seen]) -> Vec<Notice> {
        self.started.get_or_insert(now);
        let mut out = Vec::new();
        let mut holding: HashMap<(i64, Rule), String> = HashMap::new();
        for m in miners {
            let signs: Vec<&Seen> = seen.iter().filter(|s| s.miner_id == m.id).collect();
            self.happenings(now, m, &signs, &mut out);
            for (rule, message) in self.conditions(now, m, &signs) {
                if self.t.enabled.contains(&rule) {
                    holding.insert((m.id, rule), message);
                }
            }
        }
        let names: HashMap<i64, &str> = miners.iter().map(|m| (m.id, m.name.as_str())).collect();
        // Every pair that holds now or was pending/active before.
        let mut keys: Vec<(i64, Rule)> = self.phases.keys().copied().collect();
        keys.extend(holding.keys().copied());
        keys.sort();
        keys.dedup();
        for key in keys {
            let name = names.get(&key.0).copied().unwrap_or("(removed miner)");
            let notice = self.step(now, key, holding.get(&key), name);
            out.extend(notice);
        }
        self.memory.retain(|id, _| names.contains_key(id));
        out
    }

    /// Advances one (miner, condition) pair.
    fn step(
        &mut self,
        now: i64,
        key: (i64, Rule),
        holds: Option<&String>,
        name: &str,
    ) -> Option<Notice> {
        let notice = |kind, severity, message: String| Notice {
            miner_id: key.0,
            miner: name.to_owned(),
            rule: key.1,
            kind,
            severity,
            message,
            at: now,
        };
        let delay = self.delay(key.1);
        match (self.phases.get(&key).copied(), holds) {
            (None, Some(msg)) if delay == 0 => {
                self.activate(key, now);
                Some(notice(NoticeKind::Fired, Severity::Warning, msg.clone()))
            }
            (None, Some(_)) => {
                let pending = Phase::Pending {
                    since: now,
                    clear_since: None,
                };
                self.phases.insert(key, pending);
                None
            }
            (None, None) => None,
            (Some(Phase::Pending { since, .. }), Some(msg)) => {
                if now - since >= delay {
                    self.activate(key, now);
                    return Some(notice(NoticeKind::Fired, Severity::Warning, msg.clone()));
                }
                let pending = Phase::Pending {
                    since,
                    clear_since: None,
                };
                self.phases.insert(key, pending);
                None
            }
            (Some(Phase::Pending { since, clear_since }), None) => {
                let cleared = clear_since.unwrap_or(now);
                if now - cleared >= self.t.clear_ms {
                    self.phases.remove(&key);
                } else {
                    let pending = Phase::Pending {
                        since,
                        clear_since: Some(cleared),
                    };
                    self.phases.insert(key, pending);
                }
                None
            }
            (Some(Phase::Active { last_sent, .. }), Some(msg)) => {
                let repeat = self.t.repeat_ms > 0 && now - last_sent >= self.t.repeat_ms;
                self.phases.insert(
                    key,
                    Phase::Active {
                        last_sent: if repeat { now } else { last_sent },
                        clear_since: None,
                    },
                );
                repeat.then(|| notice(NoticeKind::Repeat, Severity::Warning, msg.clone()))
            }
            (
                Some(Phase::Active {
                    last_sent,
                    clear_since,
                }),
                None,
            ) => {
                let since = clear_since.unwrap_or(now);
                if now - since >= self.t.clear_ms {
                    self.phases.remove(&key);
                    let msg = format!("{name}: {} cleared", key.1.as_str().replace('_', " "));
                    return Some(notice(NoticeKind::Resolved, Severity::Info, msg));
                }
                self.phases.insert(
                    key,
                    Phase::Active {
                        last_sent,
                        clear_since: Some(since),
                    },
                );
                None
            }
        }
    }

    fn activate(&mut self, key: (i64, Rule), now: i64) {
        self.phases.insert(
            key,
            Phase::Active {
                last_sent: now,
                clear_since: None,
            },
        );
    }

    /// How long a condition must hold before it fires.
    fn delay(&self, rule: Rule) -> i64 {
        match rule {
            Rule::Offline => self.t.offline_ms,
            Rule::HashrateLow => self.t.hashrate_ms,
            Rule::PoolDisconnected => self.t.pool_ms,
            _ => 0,
        }
    }

    /// Conditions that hold for `m` now, with their messages.
    fn conditions(&mut self, now: i64, m: &MinerSnapshot, signs: &[&Seen]) -> Vec<(Rule, String)> {
        let t = &self.t;
        let mut out = Vec::new();
        let down = matches!(
            m.status,
            Status::Offline | Status::Stalled | Status::Error | Status::NoData
        );
        if down {
            let what = match m.status {
                Status::Offline => "offline",
                Status::Error => "in error",
                Status::NoData => "connected but silent",
                _ => "stalled",
            };
            out.push((Rule::Offline, format!("{} is {what}", m.name)));
        }
        let online = m.status == Status::Online;
        if let (true, Some(now_khs), Some(avg)) = (online, m.hashrate_khs, m.hashrate_avg_24h) {
            if avg > 0.0 && now_khs < avg * t.hashrate_pct / 100.0 {
                out.push((
                    Rule::HashrateLow,
                    format!(
                        "{} hashes at {now_khs:.1} kH/s, below {:.0} % of its 24-h average {avg:.1} kH/s",
                        m.name, t.hashrate_pct
                    ),
                ));
            }
        }
        if let (true, Some(c)) = (online, m.temperature) {
            if c > t.temperature_c {
                out.push((
                    Rule::Temperature,
                    format!(
                        "{} is at {c:.1} °C (limit {:.1} °C)",
                        m.name, t.temperature_c
                    ),
                ));
            }
        }
        if let Some(why) = &m.worker_rejected {
            out.push((
                Rule::WorkerRejected,
                format!(
                    "{}: the pool rejects the worker, hashing for nothing ({why})",
                    m.name
                ),
            ));
        }
        let mem = self.memory.entry(m.id).or_default();
        for s in signs {
            match s.sign {
                Sign::PoolDown => {
                    mem.pool_down_since.get_or_insert(s.ts);
                }
                Sign::PoolUp => mem.pool_down_since = None,
                Sign::Boot => {
                    mem.boots.push_back(s.ts);
                    mem.last_banner = Some(s.ts);
                }
                // The banner's own "starting" line is the same reboot.
                Sign::Starting
                    if !mem
                        .last_banner
                        .is_some_and(|b| (0..=30_000).contains(&(s.ts - b))) =>
                {
                    mem.boots.push_back(s.ts);
                }
                _ => {}
            }
        }
        while mem
            .boots
            .front()
            .is_some_and(|at| now - at > t.storm_window_ms)
        {
            mem.boots.pop_front();
        }
        if mem.boots.len() >= t.storm_count.max(2) {
            out.push((
                Rule::RebootStorm,
                format!(
                    "{} rebooted {} times in {} min: check its power supply and the crash context on its page",
                    m.name,
                    mem.boots.len(),
                    t.storm_window_ms / 60_000
                ),
            ));
        }
        // An unplugged miner's pool is not the pool's fault: the offline rule covers it.
        if let (Some(since), false) = (mem.pool_down_since, down) {
            let mins = (now - since).max(0) / 60_000;
            out.push((
                Rule::PoolDisconnected,
                format!("{} cannot reach its pool (for {mins} min)", m.name),
            ));
        }
        mem.shares.push_back((now, m.accepted, m.rejected));
        while mem
            .shares
            .front()
            .is_some_and(|(at, ..)| now - at > t.reject_window_ms)
        {
            mem.shares.pop_front();
        }
        if let Some(&(_, a0, r0)) = mem.shares.front() {
            // Counters only go up; a smaller number is a reset of the summary, not rejects.
            let (a, r) = ((m.accepted - a0).max(0), (m.rejected - r0).max(0));
            let total = a + r;
            if total >= t.reject_min_shares.max(1) {
                let pct = r as f64 * 100.0 / total as f64;
                if pct > t.reject_pct {
                    out.push((
                        Rule::SharesRejected,
                        format!(
                            "{}: {r} of {total} shares rejected ({pct:.0} %, limit {:.0} %)",
                            m.name, t.reject_pct
                        ),
                    ));
                }
            }
        }
        out
    }

    /// Reboots and blocks: from events or from counters going up, whichever is seen first.
    fn happenings(&mut self, now: i64, m: &MinerSnapshot, signs: &[&Seen], out: &mut Vec<Notice>) {
        let clear_ms = self.t.clear_ms;
        let in_grace = self.started.is_some_and(|s| now - s < REBOOT_GRACE_MS);
        let mem = self.memory.entry(m.id).or_default();
        let rebooted = signs
            .iter()
            .any(|s| matches!(s.sign, Sign::Boot | Sign::Starting))
            || mem.restarts.is_some_and(|r| m.restarts > r);
        let brownout = signs.iter().any(|s| s.sign == Sign::Brownout);
        let block = signs.iter().any(|s| s.sign == Sign::BlockFound)
            || mem.blocks.is_some_and(|b| m.blocks_found > b);
        // On the first look the counters are only a baseline: history is not news.
        mem.restarts = Some(m.restarts);
        mem.blocks = Some(m.blocks_found);
        for (happened, rule) in [
            (rebooted, Rule::Rebooted),
            (block, Rule::BlockFound),
            (brownout, Rule::Brownout),
        ] {
            if !happened || !self.t.enabled.contains(&rule) {
                continue;
            }
            if rule == Rule::Rebooted && in_grace {
                continue;
            }
            let recent = mem
                .last_happening
                .get(&rule)
                .is_some_and(|at| now - at < clear_ms.max(1));
            mem.last_happening.insert(rule, now);
            if recent {
                continue;
            }
            let (severity, message) = match rule {
                Rule::BlockFound => (
                    Severity::Celebrate,
                    format!("{} FOUND A BLOCK! Check your wallet.", m.name),
                ),
                Rule::Brownout => (
                    Severity::Warning,
                    format!(
                        "{} reset on a brown-out: the supply voltage dipped (weak USB port, cable or power supply)",
                        m.name
                    ),
                ),
                _ => (
                    Severity::Warning,
                    format!("{} rebooted (restarts: {})", m.name, m.restarts),
                ),
            };
            out.push(Notice {
                miner_id: m.id,
                miner: m.name.clone(),
                rule,
                kind: NoticeKind::Fired,
                severity,
                message,
                at: now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn thresholds() -> Thresholds {
        Thresholds::from_config(&AlertsConfig::default())
    }

    fn miner(status: Status) -> MinerSnapshot {
        MinerSnapshot {
            id: 1,
            name: "nm-1".into(),
            status,
            hashrate_khs: Some(50.0),
            hashrate_avg_24h: Some(50.0),
            temperature: Some(45.0),
            accepted: 0,
            rejected: 0,
            restarts: 0,
            blocks_found: 0,
            worker_rejected: None,
        }
    }

    /// Runs the engine every 5 s from `from` to `to` (ms) with the miner `f(t)` returns;
    /// collects (time, rule, kind).
    fn run(
        e: &mut Engine,
        from: i64,
        to: i64,
        f: impl Fn(i64) -> MinerSnapshot,
    ) -> Vec<(i64, Rule, NoticeKind)> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            for n in e.evaluate(t, &[f(t)], &[]) {
                out.push((n.at, n.rule, n.kind));
            }
            t += 5_000;
        }
        out
    }

    #[test]
    fn offline_fires_after_its_delay_once_then_repeats_then_resolves() {
        let t = thresholds();
        let (delay, repeat, clear) = (t.offline_ms, t.repeat_ms, t.clear_ms);
        let mut e = Engine::new(t);
        let down_until = delay + repeat + 2 * MIN;
        let got = run(&mut e, 0, down_until + clear + MIN, |at| {
            miner(if at < down_until {
                Status::Offline
            } else {
                Status::Online
            })
        });
        let kinds: Vec<_> = got.iter().map(|g| (g.1, g.2)).collect();
        assert_eq!(
            kinds,
            vec![
                (Rule::Offline, NoticeKind::Fired),
                (Rule::Offline, NoticeKind::Repeat),
                (Rule::Offline, NoticeKind::Resolved)
            ]
        );
        assert_eq!(got[0].0, delay);
        assert_eq!(got[1].0, delay + repeat);
        assert!(got[2].0 >= down_until + clear && got[2].0 < down_until + clear + 5_000);
    }

    #[test]
    fn a_short_outage_never_fires() {
        let t = thresholds();
        let delay = t.offline_ms;
        let mut e = Engine::new(t);
        let got = run(&mut e, 0, 3 * delay, |at| {
            miner(if at < delay / 2 {
                Status::Stalled
            } else {
                Status::Online
            })
        });
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn flapping_gives_one_alert_and_one_resolution() {
        let mut t = thresholds();
        t.offline_ms = 0;
        t.repeat_ms = 0;
        let clear = t.clear_ms;
        let mut e = Engine::new(t);
        // Down and up every 10 s (shorter than the clear window) for 5 minutes, then up.
        let got = run(&mut e, 0, 5 * MIN + clear + MIN, |at| {
            let flapping = at < 5 * MIN && (at / 10_000) % 2 == 0;
            miner(if flapping {
                Status::Stalled
            } else {
                Status::Online
            })
        });
        let kinds: Vec<_> = got.iter().map(|g| g.2).collect();
        assert_eq!(
            kinds,
            vec![NoticeKind::Fired, NoticeKind::Resolved],
            "{got:?}"
        );
    }

    #[test]
    fn flapping_faster_than_the_clear_window_still_reaches_the_delay() {
        let t = thresholds();
        let (delay, clear) = (t.offline_ms, t.clear_ms);
        let mut e = Engine::new(t);
        // Stalled 20 s, online 10 s, over and over: never down for `delay` in one piece.
        let got = run(&mut e, 0, 2 * delay, |at| {
            miner(if at % 30_000 < 20_000 {
                Status::Stalled
            } else {
                Status::Online
            })
        });
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, Rule::Offline);
        assert!(got[0].0 >= delay && got[0].0 < delay + 30_000);
        // A single short outage, then a long clear, starts from scratch.
        let mut e = Engine::new(thresholds());
        let got = run(
            &mut e,
            0,
            delay / 2 + clear + 10_000 + 2 * delay / 3,
            |at| {
                let down = at < delay / 2 || at >= delay / 2 + clear + 10_000;
                miner(if down {
                    Status::Offline
                } else {
                    Status::Online
                })
            },
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn hashrate_needs_a_24h_average_and_its_delay() {
        let t = thresholds();
        let delay = t.hashrate_ms;
        let mut e = Engine::new(t.clone());
        let slow = |avg: Option<f64>| {
            move |_| MinerSnapshot {
                hashrate_khs: Some(10.0),
                hashrate_avg_24h: avg,
                ..miner(Status::Online)
            }
        };
        assert!(run(&mut e, 0, 2 * delay, slow(None)).is_empty());
        let mut e = Engine::new(t);
        let got = run(&mut e, 0, 2 * delay, slow(Some(50.0)));
        assert_eq!(got, vec![(delay, Rule::HashrateLow, NoticeKind::Fired)]);
    }

    #[test]
    fn temperature_fires_at_once_and_not_for_an_offline_miner() {
        let t = thresholds();
        let hot = t.temperature_c + 5.0;
        let mut e = Engine::new(t);
        let n = e.evaluate(
            0,
            &[MinerSnapshot {
                temperature: Some(hot),
                ..miner(Status::Online)
            }],
            &[],
        );
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].rule, Rule::Temperature);
        assert!(n[0].message.contains("°C"), "{}", n[0].message);
        let mut e = Engine::new(thresholds());
        let n = e.evaluate(
            0,
            &[MinerSnapshot {
                temperature: Some(hot),
                ..miner(Status::Offline)
            }],
            &[],
        );
        assert!(n.iter().all(|n| n.rule != Rule::Temperature));
    }

    #[test]
    fn restart_is_sent_once_for_banner_and_counter() {
        let mut e = Engine::new(thresholds());
        let m = |restarts| MinerSnapshot {
            restarts,
            ..miner(Status::Online)
        };
        // The first look at a counter is a baseline, not a reboot.
        assert!(e.evaluate(0, &[m(4)], &[]).is_empty());
        // Boards reset as their ports are opened at start: muted.
        let boot = |ts| Seen {
            miner_id: 1,
            ts,
            sign: Sign::Boot,
        };
        assert!(e.evaluate(5_000, &[m(4)], &[boot(4_000)]).is_empty());
        let t0 = REBOOT_GRACE_MS;
        let n = e.evaluate(t0 + 5_000, &[m(4)], &[boot(t0 + 4_000)]);
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].rule, n[0].kind), (Rule::Rebooted, NoticeKind::Fired));
        // The summarizer counts the same reboot a few seconds later: not sent again.
        assert!(e.evaluate(t0 + 10_000, &[m(5)], &[]).is_empty());
        // A reboot much later is news again.
        let n = e.evaluate(t0 + 30 * MIN, &[m(6)], &[]);
        assert_eq!(n.len(), 1);
        // Happenings never stay active.
        assert!(e.active().is_empty());
    }

    fn seen(ts: i64, sign: Sign) -> Seen {
        Seen {
            miner_id: 1,
            ts,
            sign,
        }
    }

    #[test]
    fn pool_rejecting_the_worker_fires_at_once_and_resolves() {
        let mut e = Engine::new(thresholds());
        let bad = MinerSnapshot {
            worker_rejected: Some("unauthorized worker (24): Unauthorized worker".into()),
            ..miner(Status::Online)
        };
        let n = e.evaluate(0, std::slice::from_ref(&bad), &[]);
        assert!(n.iter().any(|n| n.rule == Rule::WorkerRejected
            && n.kind == NoticeKind::Fired
            && n.message.contains("Unauthorized worker")));
        assert!(e.evaluate(1_000, &[bad], &[]).is_empty());
        let good = miner(Status::Online);
        e.evaluate(2_000, std::slice::from_ref(&good), &[]);
        let n = e.evaluate(2_000 + 121_000, &[good], &[]);
        assert!(n
            .iter()
            .any(|n| n.rule == Rule::WorkerRejected && n.kind == NoticeKind::Resolved));
    }

    #[test]
    fn three_reboots_in_ten_minutes_are_a_storm_banner_and_starting_count_once() {
        let mut e = Engine::new(thresholds());
        let m = miner(Status::Online);
        let t0 = REBOOT_GRACE_MS;
        e.evaluate(0, std::slice::from_ref(&m), &[]);
        // Two reboots, each a banner and its "starting" line: no storm yet.
        let two = [
            seen(t0, Sign::Boot),
            seen(t0 + 1_000, Sign::Starting),
            seen(t0 + 60_000, Sign::Boot),
            seen(t0 + 61_000, Sign::Starting),
        ];
        let n = e.evaluate(t0 + 62_000, std::slice::from_ref(&m), &two);
        assert!(n.iter().all(|n| n.rule != Rule::RebootStorm));
        // A third (native USB: "starting" alone) within ten minutes is a storm.
        let n = e.evaluate(
            t0 + 5 * MIN,
            std::slice::from_ref(&m),
            &[seen(t0 + 5 * MIN - 1_000, Sign::Starting)],
        );
        let storm: Vec<&Notice> = n.iter().filter(|n| n.rule == Rule::RebootStorm).collect();
        assert_eq!(storm.len(), 1, "{n:?}");
        assert!(storm[0].message.contains("3 times"), "{}", storm[0].message);
        // Quiet for longer than the window: resolved.
        e.evaluate(t0 + 20 * MIN, std::slice::from_ref(&m), &[]);
        let n = e.evaluate(t0 + 23 * MIN, &[m], &[]);
        assert!(n
            .iter()
            .any(|n| n.rule == Rule::RebootStorm && n.kind == NoticeKind::Resolved));
    }

    #[test]
    fn a_brownout_is_its_own_alert_once_per_reset() {
        let mut e = Engine::new(thresholds());
        let m = miner(Status::Online);
        // Also right after the Shepherd starts: a brown-out is never caused by opening a port.
        let n = e.evaluate(
            1_000,
            std::slice::from_ref(&m),
            &[
                seen(500, Sign::Brownout),
                seen(600, Sign::Brownout),
                seen(600, Sign::Boot),
            ],
        );
        let b: Vec<&Notice> = n.iter().filter(|n| n.rule == Rule::Brownout).collect();
        assert_eq!(b.len(), 1);
        assert!(b[0].message.contains("brown-out"));
        assert!(n.iter().all(|n| n.rule != Rule::Rebooted), "grace period");
    }

    #[test]
    fn block_found_is_always_news() {
        let mut e = Engine::new(thresholds());
        let m = |blocks| MinerSnapshot {
            blocks_found: blocks,
            ..miner(Status::Online)
        };
        assert!(e.evaluate(0, &[m(0)], &[]).is_empty());
        // Even in the first minutes after a start.
        let n = e.evaluate(5_000, &[m(1)], &[]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].severity, Severity::Celebrate);
        assert!(n[0].title().contains("BLOCK FOUND"));
    }

    #[test]
    fn pool_down_fires_after_its_delay_and_resolves_when_up_again() {
        let t = thresholds();
        let (delay, clear) = (t.pool_ms, t.clear_ms);
        let mut e = Engine::new(t);
        let m = miner(Status::Online);
        let sign = |ts, sign| Seen {
            miner_id: 1,
            ts,
            sign,
        };
        assert!(e
            .evaluate(0, std::slice::from_ref(&m), &[sign(0, Sign::PoolDown)])
            .is_empty());
        let n = e.evaluate(delay, std::slice::from_ref(&m), &[]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].rule, Rule::PoolDisconnected);
        let up = delay + 5_000;
        assert!(e
            .evaluate(up, std::slice::from_ref(&m), &[sign(up, Sign::PoolUp)])
            .is_empty());
        let n = e.evaluate(up + clear, std::slice::from_ref(&m), &[]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, NoticeKind::Resolved);
    }

    #[test]
    fn rejects_need_a_minimum_count_in_the_window() {
        let t = thresholds();
        let min_shares = t.reject_min_shares;
        let mut e = Engine::new(t);
        let m = |accepted, rejected| MinerSnapshot {
            accepted,
            rejected,
            ..miner(Status::Online)
        };
        assert!(e.evaluate(0, &[m(100, 0)], &[]).is_empty());
        // All rejected, but too few to judge.
        assert!(e.evaluate(5_000, &[m(100, min_shares - 1)], &[]).is_empty());
        let n = e.evaluate(10_000, &[m(100, min_shares)], &[]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].rule, Rule::SharesRejected);
    }

    #[test]
    fn restored_alerts_resolve_without_firing_again() {
        let t = thresholds();
        let clear = t.clear_ms;
        let mut e = Engine::new(t);
        e.restore(&[ActiveAlert {
            miner_id: 1,
            rule: Rule::Offline,
            last_sent_at: 0,
        }]);
        assert!(e.evaluate(1_000, &[miner(Status::Offline)], &[]).is_empty());
        assert!(e.evaluate(2_000, &[miner(Status::Online)], &[]).is_empty());
        let n = e.evaluate(2_000 + clear, &[miner(Status::Online)], &[]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, NoticeKind::Resolved);
    }

    #[test]
    fn a_removed_miner_resolves_its_alerts() {
        let mut t = thresholds();
        t.offline_ms = 0;
        t.clear_ms = 0;
        let mut e = Engine::new(t);
        assert_eq!(e.evaluate(0, &[miner(Status::Offline)], &[]).len(), 1);
        let n = e.evaluate(5_000, &[], &[]);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, NoticeKind::Resolved);
        assert!(e.active().is_empty());
    }

    #[test]
    fn disabled_rules_stay_quiet() {
        let mut t = thresholds();
        t.enabled.retain(|r| *r != Rule::Temperature);
        let mut e = Engine::new(t);
        let hot = MinerSnapshot {
            temperature: Some(200.0),
            ..miner(Status::Online)
        };
        assert!(e.evaluate(0, &[hot], &[]).is_empty());
    }

    #[test]
    fn rule_names_round_trip() {
        for r in ALL_RULES {
            assert_eq!(Rule::parse(r.as_str()), Some(r));
        }
    }
}
