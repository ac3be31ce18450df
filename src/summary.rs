//! Pure summarizing: folds a miner's parsed events into the figures a dashboard shows, and
//! derives its status. No I/O; the summarizer actor feeds it rows and stores what it returns.
//!
//! The firmware's counters (shares, Khashes) restart from zero when the board reboots, so
//! totals are kept as "sum of finished sessions + current session".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::miner::parse::MinerEvent;

/// The number an event carries, stored in `miner_events.value` for SQL queries.
pub fn event_value(event: &MinerEvent) -> Option<f64> {
    match event {
        MinerEvent::Progress { hashrate_khs, .. } => Some(*hashrate_khs),
        MinerEvent::ValidBlocks(n) | MinerEvent::Shares32Bit(n) | MinerEvent::BlockTemplates(n) => {
            Some(*n as f64)
        }
        MinerEvent::BestDifficulty(d)
        | MinerEvent::Temperature(d)
        | MinerEvent::TotalMHashes(d)
        | MinerEvent::PoolDifficulty(d)
        | MinerEvent::ShareDifficulty(d) => Some(*d),
        MinerEvent::TimeMining { secs } => Some(*secs as f64),
        MinerEvent::ShareRejected { code } => Some(*code as f64),
        _ => None,
    }
}

/// Everything remembered about one miner between summarizer runs (persisted as JSON so a
/// restart continues the totals).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinerState {
    /// Latest 10-s average hashrate the firmware printed.
    pub hashrate_khs: Option<f64>,
    /// Accepted shares in sessions before the current one.
    pub shares_before: u64,
    /// Accepted shares in the current session (the firmware's own counter).
    pub shares_session: u64,
    /// Rejected shares, all sessions.
    pub rejected: u64,
    /// Best difficulty ever seen.
    pub best_diff: Option<f64>,
    /// Best difficulty since the last boot.
    pub best_diff_session: Option<f64>,
    /// Valid blocks in sessions before the current one.
    pub blocks_before: u64,
    /// Valid blocks this session (firmware counter).
    pub blocks_session: u64,
    /// Latest chip temperature (°C).
    pub temperature: Option<f64>,
    /// Latest "time mining".
    pub uptime_secs: Option<u64>,
    /// When that uptime was reported (Unix ms); ingest stores it once a minute.
    #[serde(default)]
    pub uptime_at: Option<i64>,
    /// Reboots observed.
    pub restarts: u64,
    /// Pool the miner reported last.
    pub pool: Option<String>,
    /// Firmware version from the subscribe line.
    pub firmware: Option<String>,
    /// Whether the firmware is known to print stats only on its display (no temperature etc.).
    pub reports_extended: bool,
}

/// One minute of one miner, as deltas to merge into `miner_minutes`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinuteDelta {
    /// Sum of hashrate samples.
    pub hashrate_sum: f64,
    /// Number of hashrate samples.
    pub samples: u64,
    /// Highest temperature seen.
    pub temp_max: Option<f64>,
    /// Shares accepted in the minute.
    pub shares: u64,
}

impl MinerState {
    /// Applies one event seen at `ts` (Unix ms); per-minute deltas go into `minutes`.
    pub fn apply(&mut self, ts: i64, event: &MinerEvent, minutes: &mut BTreeMap<i64, MinuteDelta>) {
        let minute = ts.div_euclid(60_000) * 60;
        match event {
            MinerEvent::Progress {
                shares,
                hashrate_khs,
                ..
            } => {
                if *shares < self.shares_session {
                    self.new_session();
                }
                let new_shares = shares.saturating_sub(self.shares_session);
                self.shares_session = *shares;
                self.hashrate_khs = Some(*hashrate_khs);
                let m = minutes.entry(minute).or_default();
                m.hashrate_sum += hashrate_khs;
                m.samples += 1;
                m.shares += new_shares;
            }
            MinerEvent::Temperature(t) => {
                self.temperature = Some(*t);
                self.reports_extended = true;
                let m = minutes.entry(minute).or_default();
                m.temp_max = Some(m.temp_max.map_or(*t, |x| x.max(*t)));
            }
            MinerEvent::BestDifficulty(d) => {
                self.reports_extended = true;
                self.best_diff_session = Some(self.best_diff_session.map_or(*d, |x| x.max(*d)));
                self.best_diff = Some(self.best_diff.map_or(*d, |x| x.max(*d)));
            }
            MinerEvent::ShareDifficulty(d) => {
                self.best_diff_session = Some(self.best_diff_session.map_or(*d, |x| x.max(*d)));
                self.best_diff = Some(self.best_diff.map_or(*d, |x| x.max(*d)));
            }
            MinerEvent::ValidBlocks(n) => {
                if *n < self.blocks_session {
                    self.blocks_before += self.blocks_session;
                }
                self.blocks_session = *n;
            }
            // Display boards never print "Valid blocks"; count the banner for them.
            MinerEvent::BlockFound if !self.reports_extended => self.blocks_session += 1,
            MinerEvent::TimeMining { secs } => {
                if self.uptime_secs.is_some_and(|u| *secs + 5 < u) {
                    self.new_session();
                }
                self.uptime_secs = Some(*secs);
                self.uptime_at = Some(ts);
            }
            MinerEvent::ShareRejected { .. } => self.rejected += 1,
            MinerEvent::Boot { .. } | MinerEvent::Starting => self.new_session(),
            MinerEvent::Subscribe { firmware } if firmware.is_some() => {
                self.firmware.clone_from(firmware)
            }
            MinerEvent::PoolUnreachable { pool } => self.pool = Some(pool.clone()),
            _ => {}
        }
    }

    /// The board rebooted: bank the session counters. Several reboot signs (ROM banner,
    /// "starting", counters going backwards) may arrive for one reboot; count it once.
    fn new_session(&mut self) {
        let fresh =
            self.shares_session == 0 && self.blocks_session == 0 && self.uptime_secs.is_none();
        if fresh && self.hashrate_khs.is_none() {
            return;
        }
        self.shares_before += self.shares_session;
        self.blocks_before += self.blocks_session;
        self.shares_session = 0;
        self.blocks_session = 0;
        self.best_diff_session = None;
        self.uptime_secs = None;
        self.uptime_at = None;
        self.hashrate_khs = None;
        self.restarts += 1;
    }

    /// Uptime at `now`, extrapolated from the last report (which is at most a minute old).
    pub fn uptime_at_time(&self, now: i64) -> Option<u64> {
        let (secs, at) = (self.uptime_secs?, self.uptime_at.unwrap_or(now));
        Some(secs + u64::try_from((now - at).max(0) / 1000).unwrap_or(0))
    }

    /// Accepted shares over all sessions.
    pub fn shares(&self) -> u64 {
        self.shares_before + self.shares_session
    }

    /// Blocks found over all sessions.
    pub fn blocks(&self) -> u64 {
        self.blocks_before + self.blocks_session
    }
}

/// What a dashboard says about a miner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Port open, data arriving.
    Online,
    /// Port open, but nothing printed for a while.
    Stalled,
    /// Port open, never printed anything.
    NoData,
    /// No port.
    Offline,
    /// The port cannot be used; see the detail.
    Error,
}

/// Status from the link state, the last time a line arrived, and the stall threshold.
pub fn derive_status(link_state: &str, last_seen: Option<i64>, now: i64, stall_ms: i64) -> Status {
    match link_state {
        "error" => Status::Error,
        "connected" => match last_seen {
            None => Status::NoData,
            Some(t) if now - t > stall_ms => Status::Stalled,
            Some(_) => Status::Online,
        },
        _ => Status::Offline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MinerEvent as E;

    fn progress(shares: u64, khs: f64) -> E {
        E::Progress {
            shares,
            khashes: 0,
            hashrate_khs: khs,
        }
    }

    #[test]
    fn status_table() {
        let now = 100_000;
        assert_eq!(
            derive_status("error", Some(now), now, 30_000),
            Status::Error
        );
        assert_eq!(
            derive_status("offline", Some(now), now, 30_000),
            Status::Offline
        );
        assert_eq!(
            derive_status("connected", None, now, 30_000),
            Status::NoData
        );
        assert_eq!(
            derive_status("connected", Some(now - 31_000), now, 30_000),
            Status::Stalled
        );
        assert_eq!(
            derive_status("connected", Some(now - 1_000), now, 30_000),
            Status::Online
        );
    }

    #[test]
    fn shares_survive_a_reboot() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        for (i, n) in [0, 1, 3, 3].iter().enumerate() {
            s.apply(i as i64 * 1000, &progress(*n, 50.0), &mut m);
        }
        s.apply(
            5000,
            &E::Boot {
                reset_reason: "POWERON_RESET".into(),
            },
            &mut m,
        );
        s.apply(5100, &E::Starting, &mut m);
        s.apply(6000, &progress(0, 40.0), &mut m);
        s.apply(7000, &progress(2, 42.0), &mut m);
        assert_eq!(s.shares(), 5);
        assert_eq!(s.restarts, 1);
        assert_eq!(s.hashrate_khs, Some(42.0));
        let minute = &m[&0];
        assert_eq!(minute.samples, 6);
        assert_eq!(minute.shares, 5);
        assert!((minute.hashrate_sum - (50.0 * 4.0 + 82.0)).abs() < 1e-9);
    }

    #[test]
    fn counter_going_backwards_is_a_reboot_even_without_banner() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(0, &progress(7, 50.0), &mut m);
        s.apply(1000, &progress(1, 50.0), &mut m);
        assert_eq!(s.shares(), 8);
        assert_eq!(s.restarts, 1);
    }

    #[test]
    fn best_difficulty_keeps_ever_and_session() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(0, &progress(0, 1.0), &mut m);
        s.apply(0, &E::BestDifficulty(0.5), &mut m);
        s.apply(0, &E::BestDifficulty(0.2), &mut m);
        s.apply(1, &E::Starting, &mut m);
        s.apply(2, &E::BestDifficulty(0.1), &mut m);
        assert_eq!(s.best_diff, Some(0.5));
        assert_eq!(s.best_diff_session, Some(0.1));
    }

    #[test]
    fn temperature_max_per_minute() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(1_000, &E::Temperature(47.0), &mut m);
        s.apply(2_000, &E::Temperature(49.0), &mut m);
        s.apply(61_000, &E::Temperature(45.0), &mut m);
        assert_eq!(m[&0].temp_max, Some(49.0));
        assert_eq!(m[&60].temp_max, Some(45.0));
        assert_eq!(s.temperature, Some(45.0));
    }

    #[test]
    fn uptime_is_extrapolated_between_reports() {
        let mut s = MinerState::default();
        s.apply(10_000, &E::TimeMining { secs: 100 }, &mut BTreeMap::new());
        assert_eq!(s.uptime_at_time(40_000), Some(130));
        assert_eq!(MinerState::default().uptime_at_time(1), None);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = MinerState::default();
        s.apply(0, &progress(3, 50.0), &mut BTreeMap::new());
        let back: MinerState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
