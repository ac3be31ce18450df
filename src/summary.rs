//! Pure summarizing: folds a miner's parsed events into the figures a dashboard shows, and
//! derives its status. No I/O; the summarizer actor feeds it rows and stores what it returns.
//!
//! The firmware's counters (shares, Khashes) restart from zero when the board reboots, so
//! totals are kept as "sum of finished sessions + current session".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::event::MinerEvent;

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

/// Why a board restarted: the ROM's reset reason, refined by the lines just before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RebootCause {
    /// Power applied (plugged in, power cut).
    PowerOn,
    /// Supply voltage dipped: weak USB port, cable or supply.
    Brownout,
    /// The firmware crashed (Guru Meditation, abort, stack overflow).
    Panic,
    /// A watchdog reset the chip.
    Watchdog,
    /// The firmware restarted itself (ESP.restart()).
    Software,
    /// The firmware restarted after failing to join the Wi-Fi (wManager.cpp:276/307).
    WifiTimeout,
    /// The button erased the configuration (wManager.cpp:124).
    ConfigErased,
    /// Woke from deep sleep.
    DeepSleep,
    /// Reset from outside: the EN pin or the USB host (DTR/RTS, USB-JTAG).
    External,
    /// No reset reason seen (native-USB boards lose the ROM banner when they re-enumerate).
    Unknown,
}

impl RebootCause {
    /// From the ROM banner's reason (`POWERON_RESET`, `SW_CPU_RESET`, `RTCWDT_BROWN_OUT_RESET`,
    /// S3 `RTC_SW_CPU_RST`, `TG1WDT_SYS_RST`, `USB_UART_CHIP_RESET`… or a bare `0x…` code).
    /// Names and codes: ESP-IDF `components/esp_rom/include/esp32/rom/rtc.h` and
    /// `…/esp32s3/rom/rtc.h` (`RESET_REASON`).
    pub fn from_reset_reason(reason: &str) -> Self {
        let r = reason.to_ascii_uppercase();
        let named = |c: &str| r.contains(c);
        if named("BROWN") {
            RebootCause::Brownout
        } else if named("POWERON") {
            RebootCause::PowerOn
        } else if named("WDT") {
            RebootCause::Watchdog
        } else if named("DEEPSLEEP") {
            RebootCause::DeepSleep
        } else if named("SW_") || named("SW") {
            RebootCause::Software
        } else if named("EXT") || named("USB") || named("JTAG") {
            RebootCause::External
        } else {
            // Classic ESP32 codes when the name is missing.
            match r.trim_start_matches("0X") {
                "1" => RebootCause::PowerOn,
                "3" | "C" => RebootCause::Software,
                "4" | "7" | "8" | "9" | "B" | "D" | "10" | "11" | "12" => RebootCause::Watchdog,
                "5" => RebootCause::DeepSleep,
                "E" => RebootCause::External,
                "F" => RebootCause::Brownout,
                _ => RebootCause::Unknown,
            }
        }
    }

    /// Name as stored (`miner_reboots.cause`) and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RebootCause::PowerOn => "power_on",
            RebootCause::Brownout => "brownout",
            RebootCause::Panic => "panic",
            RebootCause::Watchdog => "watchdog",
            RebootCause::Software => "software",
            RebootCause::WifiTimeout => "wifi_timeout",
            RebootCause::ConfigErased => "config_erased",
            RebootCause::DeepSleep => "deep_sleep",
            RebootCause::External => "external",
            RebootCause::Unknown => "unknown",
        }
    }
}

/// One reboot of one miner, for the reboot history (the last raw lines before it are added
/// when it is stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebootRecord {
    /// When the reboot was seen (Unix ms).
    pub at: i64,
    /// The ROM's reset reason, when its banner was seen.
    pub reset_reason: Option<String>,
    /// What it means, refined by the lines before it.
    pub cause: RebootCause,
    /// The crash or other line that explains it.
    pub detail: Option<String>,
    /// How long the board had run since its previous boot (s), when known.
    pub uptime_before_secs: Option<i64>,
}

/// A line just before a reboot that explains it, kept until the reboot is seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebootHint {
    /// When (Unix ms).
    pub at: i64,
    /// What it says.
    pub cause: RebootCause,
    /// The line.
    pub detail: String,
}

/// A hint older than this when the reboot comes explains nothing.
const HINT_MS: i64 = 60_000;

/// A second reboot sign this soon after a ROM banner is the same reboot (`NerdMiner v2
/// starting` follows the banner within a second or two).
const SAME_BOOT_MS: i64 = 30_000;

/// Everything remembered about one miner between summarizer runs (persisted as JSON so a
/// restart continues the totals).
///
/// Counters: with `"saveStatsToNVS": true` the firmware restores shares, valid blocks,
/// templates, best difficulty, MHashes and `upTime` from NVS at boot (mining.cpp:1132-1171,
/// e3a04b7), so after a reboot its counters resume instead of restarting at zero. The first
/// values after a reboot are therefore a baseline (`*_base`), never new shares or blocks;
/// totals are `before + (session - base)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinerState {
    /// Latest 10-s average hashrate the firmware printed.
    pub hashrate_khs: Option<f64>,
    /// Accepted shares in sessions before the current one.
    pub shares_before: u64,
    /// The firmware's share counter now.
    pub shares_session: u64,
    /// The counter's value at the start of this session (restored from NVS, or 0).
    #[serde(default)]
    pub shares_base: u64,
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
    /// The block counter at the start of this session (restored from NVS, or 0).
    #[serde(default)]
    pub blocks_base: u64,
    /// Latest chip temperature (°C).
    pub temperature: Option<f64>,
    /// Since when the temperature reads the same value (Unix ms): a flat ~53 °C is the
    /// uncalibrated sensor of a classic ESP32, not a measurement.
    #[serde(default)]
    pub temperature_since: Option<i64>,
    /// Latest `Time mining` (s): monitor seconds, also when not hashing, and restored from
    /// NVS on miners that save stats: a lifetime figure there, not uptime.
    pub uptime_secs: Option<u64>,
    /// When that figure was reported (Unix ms); ingest stores it once a minute.
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
    /// Whether the miner restores its counters from NVS at boot: from its configuration dump,
    /// `[MONITOR] Saving stats` lines, or counters that resumed after a reboot.
    #[serde(default)]
    pub restores_stats: Option<bool>,
    /// The next share counter is the first after a reboot: a baseline.
    #[serde(default)]
    pub baseline_pending: bool,
    /// The share counter has been seen since this state began.
    #[serde(default)]
    pub counting: bool,
    /// The next block counter is the first after a reboot: a baseline.
    #[serde(default)]
    pub blocks_baseline_pending: bool,
    /// The block counter has been seen since this state began.
    #[serde(default)]
    pub blocks_counting: bool,
    /// The firmware's own valid-blocks figure (lifetime on miners that restore stats).
    #[serde(default)]
    pub blocks_reported: Option<u64>,
    /// When the board last booted, as we saw it (Unix ms).
    #[serde(default)]
    pub boot_at: Option<i64>,
    /// A ROM banner was seen and its "starting" line is still due.
    #[serde(default)]
    pub banner_at: Option<i64>,
    /// Firmware family when not NerdMiner_v2 (`SparkMiner`, `LeafMiner`).
    #[serde(default)]
    pub firmware_family: Option<String>,
    /// Display driver the firmware announced (`SSD1306 128x64`, `No`, `OLED 0.42`…).
    #[serde(default)]
    pub display: Option<String>,
    /// The chip the miner named itself (`ESP32-D0WD-V3`; an AxeOS miner's `BM1366 (Gamma)`).
    #[serde(default)]
    pub chip_model: Option<String>,
    /// The fault-diagnosis evidence since the last boot.
    #[serde(default)]
    pub evidence: crate::diagnosis::Evidence,
    /// A line that may explain the next reboot.
    #[serde(default)]
    pub hint: Option<RebootHint>,
    /// SparkMiner's reject count last seen (its `Shares: a/b` line).
    #[serde(default)]
    pub spark_rejected: u64,
    /// Reboots seen since the summarizer last stored them (taken by the summarizer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_reboots: Vec<RebootRecord>,
    /// The first `Best difficulty` figure of this session (restored from NVS or the first
    /// look): a baseline, so a restored best is never a new record.
    #[serde(default)]
    pub best_line_session: Option<f64>,
    /// The firmware's Khashes counter last seen this session, to count hashes for luck.
    #[serde(default)]
    pub khashes_session: Option<u64>,
    /// When the last hashrate-only status line was seen (boards without a hash counter).
    #[serde(default)]
    pub rate_at: Option<i64>,
    /// Share candidates and blocks seen since the summarizer last stored them (taken by it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_lottery: Vec<LotteryNote>,
}

/// Where a share difficulty was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareSource {
    /// `Current diff share`: one submitted share, exact.
    Share,
    /// The firmware's best-difficulty figure (rounded to its display format).
    BestLine,
}

impl ShareSource {
    /// Name as stored (`share_records.source`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShareSource::Share => "share",
            ShareSource::BestLine => "best_line",
        }
    }
}

/// Something for the lottery tables: a share that may be a record, or a block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LotteryNote {
    /// A share difficulty seen at `at` (Unix ms).
    Share {
        /// When.
        at: i64,
        /// Its difficulty.
        difficulty: f64,
        /// Where it was read.
        source: ShareSource,
        /// Found while we watched (false: a baseline figure, e.g. restored from NVS, stored
        /// only if no record already holds it and never announced).
        live: bool,
    },
    /// A block was found at `at` (the banner, or the valid-blocks counter rising while we
    /// watched).
    Block {
        /// When.
        at: i64,
    },
}

/// The firmware prints its best difficulty with two decimals after a suffix (`1.23K`, within
/// 0.5 %) and with four below 1000 (`0.0312`, within 0.00005): a figure within this
/// fraction plus [`BEST_LINE_DECIMALS`] of a share already seen is that share.
pub const BEST_LINE_ROUNDING: f64 = 0.01;

/// Half the last printed decimal of a best figure below 1000 (`%.4f`).
pub const BEST_LINE_DECIMALS: f64 = 0.000_05;

/// How far a printed best figure can be from the share it stands for.
pub fn best_line_margin(d: f64) -> f64 {
    d.abs() * BEST_LINE_ROUNDING + BEST_LINE_DECIMALS
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
    /// Hashes computed in the minute (from the firmware's hash counter), for luck.
    pub hashes: f64,
}

/// A reading within this of 53 °C that never changes is the uncalibrated sensor.
const NO_SENSOR_C: f64 = 53.0;
/// ...once it has not changed for this long (a real sensor moves by a degree within minutes).
pub const NO_SENSOR_AFTER_MS: i64 = 10 * 60_000;

impl MinerState {
    /// Applies one event seen at `ts` (Unix ms); per-minute deltas go into `minutes`.
    pub fn apply(&mut self, ts: i64, event: &MinerEvent, minutes: &mut BTreeMap<i64, MinuteDelta>) {
        let minute = ts.div_euclid(60_000) * 60;
        self.evidence.observe(ts, event);
        match event {
            MinerEvent::Progress {
                shares,
                hashrate_khs,
                ..
            }
            | MinerEvent::CompactStatus {
                shares,
                hashrate_khs,
                ..
            }
            | MinerEvent::SparkStats {
                accepted: shares,
                hashrate_khs,
                ..
            }
            | MinerEvent::AxeOsStats {
                accepted: shares,
                hashrate_khs,
                ..
            } => {
                if matches!(event, MinerEvent::AxeOsStats { .. }) {
                    // AxeOS keeps no counters across a boot (uptimeSeconds, shares from zero),
                    // so its uptime is the time since boot.
                    self.restores_stats = Some(false);
                }
                let new_shares = self.take_shares(ts, *shares);
                self.hashrate_khs = Some(*hashrate_khs);
                let hashes = match event {
                    MinerEvent::Progress { khashes, .. } => self.take_khashes(*khashes),
                    _ => self.take_rate(ts, *hashrate_khs),
                };
                let m = minutes.entry(minute).or_default();
                m.hashes += hashes;
                m.hashrate_sum += hashrate_khs;
                m.samples += 1;
                m.shares = m.shares.saturating_add(new_shares);
                match event {
                    MinerEvent::CompactStatus { best_diff, .. } => self.best_line(ts, *best_diff),
                    MinerEvent::SparkStats {
                        best_diff,
                        accepted,
                        answered,
                        ..
                    } => {
                        self.firmware_family = Some("SparkMiner".into());
                        // `Shares: accepted/answered`: the difference is its rejects.
                        let rej = answered.saturating_sub(*accepted);
                        if rej < self.spark_rejected {
                            self.spark_rejected = 0;
                        }
                        self.rejected = self.rejected.saturating_add(rej - self.spark_rejected);
                        self.spark_rejected = rej;
                        if let Some(d) = best_diff {
                            self.best_line(ts, *d);
                        }
                    }
                    MinerEvent::AxeOsStats {
                        best_diff,
                        rejected,
                        ..
                    } => {
                        self.firmware_family = Some("AxeOS".into());
                        // Its reject counter, like SparkMiner's, runs since boot.
                        if *rejected < self.spark_rejected {
                            self.spark_rejected = 0;
                        }
                        self.rejected =
                            self.rejected.saturating_add(rejected - self.spark_rejected);
                        self.spark_rejected = *rejected;
                        if let Some(d) = best_diff {
                            self.best_line(ts, *d);
                        }
                    }
                    _ => {}
                }
            }
            MinerEvent::Temperature(t) => {
                if self.temperature != Some(*t) {
                    self.temperature_since = Some(ts);
                }
                self.temperature = Some(*t);
                self.reports_extended = true;
                let m = minutes.entry(minute).or_default();
                m.temp_max = Some(m.temp_max.map_or(*t, |x| x.max(*t)));
            }
            MinerEvent::BestDifficulty(d) => {
                self.reports_extended = true;
                self.best_line(ts, *d);
            }
            MinerEvent::ShareDifficulty(d) => {
                if d.is_finite() && *d > 0.0 {
                    self.new_lottery.push(LotteryNote::Share {
                        at: ts,
                        difficulty: *d,
                        source: ShareSource::Share,
                        live: true,
                    });
                }
                self.best(*d)
            }
            MinerEvent::HighestHashedDifficulty(d) => {
                self.firmware_family = Some("LeafMiner".into());
                self.best_line(ts, *d);
            }
            MinerEvent::ValidBlocks(n) => self.take_blocks(ts, *n),
            // Display boards never print "Valid blocks"; count the banner for them. The
            // banner is printed live when the pool accepts the block (mining.cpp:448), never
            // from restored counters.
            MinerEvent::BlockFound => {
                self.new_lottery.push(LotteryNote::Block { at: ts });
                if !self.reports_extended {
                    self.blocks_session = self.blocks_session.saturating_add(1)
                }
            }
            MinerEvent::TimeMining { secs } => {
                let since_boot = self.boot_at.map(|b| (ts - b).max(0) / 1000);
                if self.uptime_secs.is_some_and(|u| secs.saturating_add(5) < u)
                    && !self.baseline_pending
                {
                    // Going back without a banner: a reboot we did not see (the restored
                    // value is the last save, older than what was printed before).
                    self.reboot(ts, None, "Time mining went back".into());
                }
                if self.uptime_secs.is_none() {
                    // The first figure after a boot: far beyond the time since the boot means
                    // it was restored from NVS.
                    if let Some(b) = since_boot {
                        if i64::try_from(*secs).unwrap_or(i64::MAX) > b + 120 {
                            self.restores_stats = Some(true);
                        }
                    }
                }
                self.uptime_secs = Some(*secs);
                self.uptime_at = Some(ts);
            }
            MinerEvent::ShareRejected { .. } => self.rejected = self.rejected.saturating_add(1),
            MinerEvent::Boot { reset_reason } => {
                self.reboot(
                    ts,
                    Some(reset_reason.clone()),
                    format!("rst:{reset_reason}"),
                );
                self.banner_at = Some(ts);
            }
            MinerEvent::Starting => {
                let same = self.banner_at.is_some_and(|b| ts - b <= SAME_BOOT_MS);
                if !same {
                    self.reboot(ts, None, "NerdMiner v2 starting......".into());
                }
                self.banner_at = None;
            }
            MinerEvent::Subscribe { firmware } if firmware.is_some() => {
                self.firmware.clone_from(firmware)
            }
            MinerEvent::FirmwareVersion { version } => self.firmware = Some(version.clone()),
            MinerEvent::PoolUnreachable { pool } | MinerEvent::PoolConfigured { pool } => {
                self.pool = Some(pool.clone())
            }
            MinerEvent::SaveStatsSetting { on } => self.restores_stats = Some(*on),
            MinerEvent::StatsSaved => self.restores_stats = Some(true),
            MinerEvent::StatsReset => {
                // The restored counters were zeroed: bank what they held, count from 0.
                self.bank();
                self.shares_base = 0;
                self.blocks_base = 0;
            }
            MinerEvent::DisplayDriver { name } => self.display = Some(name.clone()),
            MinerEvent::ChipModel { model } => self.chip_model = Some(model.clone()),
            MinerEvent::Brownout => self.hint(ts, RebootCause::Brownout, event),
            MinerEvent::Crash { .. } => self.hint(ts, RebootCause::Panic, event),
            MinerEvent::Watchdog => self.hint(ts, RebootCause::Watchdog, event),
            MinerEvent::WifiTimeout => self.hint(ts, RebootCause::WifiTimeout, event),
            MinerEvent::ConfigErased => self.hint(ts, RebootCause::ConfigErased, event),
            _ => {}
        }
    }

    /// The firmware's own best-difficulty figure: the first of a session is a baseline
    /// (restored from NVS, or the first look at a running miner); a rise beyond the rounding
    /// of every share already seen is a share we did not see a line for.
    fn best_line(&mut self, ts: i64, d: f64) {
        if !(d.is_finite() && d >= 0.0) {
            return;
        }
        match self.best_line_session {
            // 0 is "no share yet": nothing to record, but the baseline is taken.
            None if d == 0.0 => {}
            None => self.new_lottery.push(LotteryNote::Share {
                at: ts,
                difficulty: d,
                source: ShareSource::BestLine,
                live: false,
            }),
            Some(prev) => {
                let seen = prev.max(self.best_diff_session.unwrap_or(0.0));
                if d > seen + best_line_margin(seen) {
                    self.new_lottery.push(LotteryNote::Share {
                        at: ts,
                        difficulty: d,
                        source: ShareSource::BestLine,
                        live: true,
                    });
                }
            }
        }
        self.best_line_session = Some(self.best_line_session.map_or(d, |x| x.max(d)));
        self.best(d);
    }

    /// Hashes since the last look at the firmware's Khashes counter (the first look of a
    /// session is a baseline; a counter that went back starts a new one).
    fn take_khashes(&mut self, khashes: u64) -> f64 {
        let new = match self.khashes_session {
            Some(prev) if khashes >= prev => (khashes - prev) as f64 * 1000.0,
            _ => 0.0,
        };
        self.khashes_session = Some(khashes);
        new
    }

    /// Hashes of a board that prints only its hashrate: rate × time since its last line,
    /// at most a minute (a longer gap is not known to have been hashing).
    fn take_rate(&mut self, ts: i64, khs: f64) -> f64 {
        let secs = self
            .rate_at
            .map_or(0.0, |at| ((ts - at).clamp(0, 60_000)) as f64 / 1000.0);
        self.rate_at = Some(ts);
        if khs.is_finite() && khs > 0.0 {
            khs * 1000.0 * secs
        } else {
            0.0
        }
    }

    fn best(&mut self, d: f64) {
        self.best_diff_session = Some(self.best_diff_session.map_or(d, |x| x.max(d)));
        self.best_diff = Some(self.best_diff.map_or(d, |x| x.max(d)));
    }

    fn hint(&mut self, ts: i64, cause: RebootCause, event: &MinerEvent) {
        // A crash explains more than the watchdog line that may precede it.
        if self
            .hint
            .as_ref()
            .is_some_and(|h| h.cause == RebootCause::Panic && ts - h.at < HINT_MS)
            && cause == RebootCause::Watchdog
        {
            return;
        }
        self.hint = Some(RebootHint {
            at: ts,
            cause,
            detail: crate::diagnosis::describe(event),
        });
    }

    /// The share counter `shares` seen at `ts`; returns the shares new since the last look.
    fn take_shares(&mut self, ts: i64, shares: u64) -> u64 {
        if self.counting && !self.baseline_pending && shares < self.shares_session {
            // Counter went back without a banner: the board rebooted unseen.
            self.reboot(ts, None, "share counter went back".into());
        }
        if self.baseline_pending {
            self.baseline_pending = false;
            self.counting = true;
            // Resumed instead of restarting at zero: restored from NVS.
            if shares > 0 && self.restores_stats.is_none() {
                self.restores_stats = Some(true);
            }
            // Known not to restore: what it shows was found since the boot.
            let base = if self.restores_stats == Some(false) {
                0
            } else {
                shares
            };
            self.shares_base = base;
            self.shares_session = shares;
            return shares - base;
        }
        if !self.counting {
            // First look at a running miner: its counter is the total so far, not news.
            self.counting = true;
            self.shares_session = shares;
            return 0;
        }
        let new = shares.saturating_sub(self.shares_session);
        self.shares_session = shares;
        new
    }

    /// The valid-blocks counter. Only a rise while we watch is a block: the first value
    /// after a reboot (restored from NVS) and the first value ever are baselines, so a miner
    /// that once found a block never "finds" it again (a false block alert is the worst
    /// thing this program could send).
    fn take_blocks(&mut self, ts: i64, n: u64) {
        self.blocks_reported = Some(n);
        if self.blocks_counting && !self.blocks_baseline_pending && n < self.blocks_session {
            self.reboot(ts, None, "block counter went back".into());
        }
        if self.blocks_counting && !self.blocks_baseline_pending && n > self.blocks_session {
            self.new_lottery.push(LotteryNote::Block { at: ts });
        }
        if self.blocks_baseline_pending || !self.blocks_counting {
            if self.blocks_baseline_pending && n > 0 && self.restores_stats.is_none() {
                self.restores_stats = Some(true);
            }
            self.blocks_baseline_pending = false;
            self.blocks_counting = true;
            self.blocks_base = n;
            self.blocks_session = n;
            return;
        }
        self.blocks_session = n;
    }

    /// Moves this session's counted values into the totals before.
    fn bank(&mut self) {
        self.shares_before = self
            .shares_before
            .saturating_add(self.shares_session.saturating_sub(self.shares_base));
        self.blocks_before = self
            .blocks_before
            .saturating_add(self.blocks_session.saturating_sub(self.blocks_base));
        self.shares_session = 0;
        self.blocks_session = 0;
    }

    /// The board rebooted at `ts`: bank the session, remember why, and treat the next
    /// counters as a baseline.
    fn reboot(&mut self, ts: i64, reset_reason: Option<String>, line: String) {
        let seen_before =
            self.counting || self.blocks_counting || self.boot_at.is_some() || self.restarts > 0;
        let uptime_before = self.boot_at.map(|b| (ts - b).max(0) / 1000).or_else(|| {
            // Without a boot we saw, a miner that does not restore prints uptime itself.
            (self.restores_stats == Some(false))
                .then(|| self.uptime_at_time(ts).and_then(|u| i64::try_from(u).ok()))
                .flatten()
        });
        self.bank();
        self.shares_base = 0;
        self.blocks_base = 0;
        self.baseline_pending = true;
        self.blocks_baseline_pending = true;
        self.best_diff_session = None;
        self.best_line_session = None;
        self.khashes_session = None;
        self.rate_at = None;
        self.uptime_secs = None;
        self.uptime_at = None;
        self.hashrate_khs = None;
        self.boot_at = Some(ts);
        self.evidence.rebooted(ts, line);
        let hint = self.hint.take().filter(|h| ts - h.at <= HINT_MS);
        if !seen_before {
            return;
        }
        self.restarts += 1;
        let from_rom = reset_reason
            .as_deref()
            .map_or(RebootCause::Unknown, RebootCause::from_reset_reason);
        let (cause, detail) = match (&hint, from_rom) {
            (_, RebootCause::Brownout) => (
                RebootCause::Brownout,
                hint.as_ref().map(|h| h.detail.clone()),
            ),
            (Some(h), _) => (h.cause, Some(h.detail.clone())),
            (None, c) => (c, None),
        };
        self.new_reboots.push(RebootRecord {
            at: ts,
            reset_reason,
            cause,
            detail,
            uptime_before_secs: uptime_before,
        });
    }

    /// `Time mining` at `now`, extrapolated from the last report (at most a minute old).
    pub fn uptime_at_time(&self, now: i64) -> Option<u64> {
        let (secs, at) = (self.uptime_secs?, self.uptime_at.unwrap_or(now));
        Some(
            secs.saturating_add(u64::try_from((now.saturating_sub(at)).max(0) / 1000).unwrap_or(0)),
        )
    }

    /// Uptime since the last boot at `now` (s): from the boot we saw, or, on a miner known
    /// not to restore its stats, its own `Time mining`.
    pub fn uptime_since_boot(&self, now: i64) -> Option<u64> {
        if let Some(b) = self.boot_at {
            return u64::try_from((now - b).max(0) / 1000).ok();
        }
        (self.restores_stats == Some(false))
            .then(|| self.uptime_at_time(now))
            .flatten()
    }

    /// Whether the temperature is the flat ~53 °C of a sensor that is not there.
    pub fn temperature_no_sensor(&self, now: i64) -> bool {
        match (self.temperature, self.temperature_since) {
            (Some(t), Some(since)) => {
                (t - NO_SENSOR_C).abs() <= 0.5 && now - since >= NO_SENSOR_AFTER_MS
            }
            _ => false,
        }
    }

    /// Accepted shares over all sessions.
    pub fn shares(&self) -> u64 {
        self.shares_before
            .saturating_add(self.shares_session.saturating_sub(self.shares_base))
    }

    /// Blocks found over all sessions.
    pub fn blocks(&self) -> u64 {
        self.blocks_before
            .saturating_add(self.blocks_session.saturating_sub(self.blocks_base))
    }

    /// What `shares` means for this firmware: pool-accepted from 1.8.0 (mining.cpp
    /// STRATUM_SUCCESS), counted locally before.
    pub fn shares_meaning(&self) -> Option<&'static str> {
        if self.firmware_family.as_deref() == Some("SparkMiner") {
            return Some("pool_accepted");
        }
        let v = self.firmware.as_deref()?;
        let mut parts = v.trim_start_matches(['V', 'v']).split('.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        Some(if (major, minor) >= (1, 8) {
            "pool_accepted"
        } else {
            "local"
        })
    }
}

#[cfg(test)]
use crate::model::status::{derive_status, Status};

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
        // Known not to restore (config dump): the 1 was found since the unseen reboot.
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(0, &E::SaveStatsSetting { on: false }, &mut m);
        s.apply(0, &progress(7, 50.0), &mut m);
        s.apply(1000, &progress(1, 50.0), &mut m);
        assert_eq!(s.shares(), 8);
        assert_eq!(s.restarts, 1);
        // Unknown: the lower value may be the last NVS save, so it is a baseline.
        let mut s = MinerState::default();
        s.apply(0, &progress(7, 50.0), &mut m);
        s.apply(1000, &progress(5, 50.0), &mut m);
        s.apply(2000, &progress(6, 50.0), &mut m);
        assert_eq!(s.shares(), 8);
        assert_eq!(s.restarts, 1);
    }

    /// A boot banner with this ROM reset reason (the lottery tests use it too).
    pub(super) fn boot(reason: &str) -> E {
        E::Boot {
            reset_reason: reason.into(),
        }
    }

    /// A no-display miner's second with `"saveStatsToNVS": true`: the counters it restored
    /// (mining.cpp:1132-1171) and its lifetime `Time mining`.
    fn nvs_second(
        s: &mut MinerState,
        m: &mut BTreeMap<i64, MinuteDelta>,
        ts: i64,
        shares: u64,
        blocks: u64,
        mining: u64,
    ) {
        s.apply(ts, &progress(shares, 300.0), m);
        s.apply(ts, &E::ValidBlocks(blocks), m);
        s.apply(ts, &E::TimeMining { secs: mining }, m);
    }

    #[test]
    fn nvs_restoring_miner_rebooting_three_times_keeps_exact_totals_and_no_phantom_block() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        // First look at a running miner with a block in its past: baseline, not news.
        nvs_second(&mut s, &mut m, 0, 40, 1, 900_000);
        assert_eq!(
            s.blocks(),
            0,
            "a block found before we watched is not a new block"
        );
        assert_eq!(s.blocks_reported, Some(1));
        assert_eq!(
            m[&0].shares, 0,
            "the first look adds no shares to the history"
        );
        let shares_at_start = s.shares();
        nvs_second(&mut s, &mut m, 1_000, 41, 1, 900_001);
        let mut t = 10_000;
        for _ in 0..3 {
            // Reboot: the last NVS save held 38 shares (older than the 41 printed).
            s.apply(t, &boot("SW_CPU_RESET"), &mut m);
            s.apply(t + 500, &E::Starting, &mut m);
            s.apply(t + 600, &E::SaveStatsSetting { on: true }, &mut m);
            nvs_second(&mut s, &mut m, t + 5_000, 38, 1, 899_000);
            nvs_second(&mut s, &mut m, t + 6_000, 39, 1, 899_001);
            nvs_second(&mut s, &mut m, t + 7_000, 41, 1, 899_002);
            t += 100_000;
        }
        assert_eq!(s.restarts, 3);
        // 1 share before the reboots, then 3 new ones (38 -> 41) after each of three.
        assert_eq!(s.shares(), shares_at_start + 1 + 3 * 3);
        assert_eq!(s.blocks(), 0, "restored valid blocks are never new blocks");
        let history: u64 = m.values().map(|d| d.shares).sum();
        assert_eq!(
            history,
            1 + 3 * 3,
            "no phantom shares in the per-minute history"
        );
        assert_eq!(s.restores_stats, Some(true));
        // Uptime is since the boot we saw; Time mining is the lifetime figure.
        let now = t - 100_000 + 7_000 + 60_000;
        assert_eq!(s.uptime_since_boot(now), Some(67));
        assert_eq!(s.uptime_secs, Some(899_002));
        // A real block after the reboot counts once.
        s.apply(t, &progress(41, 300.0), &mut m);
        s.apply(t, &E::ValidBlocks(2), &mut m);
        assert_eq!(s.blocks(), 1);
    }

    #[test]
    fn restoring_is_learned_from_resumed_counters() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(0, &progress(3, 50.0), &mut m);
        s.apply(1_000, &E::Starting, &mut m);
        s.apply(2_000, &progress(3, 50.0), &mut m);
        assert_eq!(s.restores_stats, Some(true));
        assert_eq!(s.shares(), 3);
        let mut s = MinerState::default();
        s.apply(0, &E::StatsSaved, &mut m);
        assert_eq!(s.restores_stats, Some(true));
    }

    #[test]
    fn banner_then_starting_is_one_reboot_starting_alone_is_one_too() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(0, &progress(0, 50.0), &mut m);
        s.apply(1_000, &boot("POWERON_RESET"), &mut m);
        s.apply(1_500, &E::Starting, &mut m);
        assert_eq!(s.restarts, 1);
        s.apply(100_000, &E::Starting, &mut m);
        assert_eq!(s.restarts, 2);
        let r = std::mem::take(&mut s.new_reboots);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].cause, RebootCause::PowerOn);
        assert_eq!(r[1].cause, RebootCause::Unknown);
        assert_eq!(r[1].uptime_before_secs, Some(99));
    }

    #[test]
    fn reboot_causes_come_from_the_lines_before_the_banner() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(0, &progress(0, 50.0), &mut m);
        s.apply(
            10_000,
            &E::Crash {
                detail: "Guru Meditation Error: Core  1 panic'ed (LoadProhibited)".into(),
            },
            &mut m,
        );
        s.apply(10_100, &boot("SW_CPU_RESET"), &mut m);
        s.apply(20_000, &E::Brownout, &mut m);
        s.apply(20_050, &boot("RTCWDT_BROWN_OUT_RESET"), &mut m);
        s.apply(30_000, &boot("TG1WDT_SYS_RESET"), &mut m);
        // A hint far older than the reboot explains nothing.
        s.apply(40_000, &E::WifiTimeout, &mut m);
        s.apply(200_000, &boot("SW_CPU_RESET"), &mut m);
        let causes: Vec<RebootCause> = s.new_reboots.iter().map(|r| r.cause).collect();
        assert_eq!(
            causes,
            vec![
                RebootCause::Panic,
                RebootCause::Brownout,
                RebootCause::Watchdog,
                RebootCause::Software
            ]
        );
        assert!(s.new_reboots[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("LoadProhibited")));
        assert_eq!(s.new_reboots[1].uptime_before_secs, Some(9));
    }

    #[test]
    fn reset_reason_names_and_codes() {
        use RebootCause as C;
        for (r, want) in [
            ("POWERON_RESET", C::PowerOn),
            ("POWERON", C::PowerOn),
            ("SW_CPU_RESET", C::Software),
            ("RTC_SW_CPU_RST", C::Software),
            ("TG1WDT_SYS_RESET", C::Watchdog),
            ("RTCWDT_BROWN_OUT_RESET", C::Brownout),
            ("USB_UART_CHIP_RESET", C::External),
            ("DEEPSLEEP_RESET", C::DeepSleep),
            ("0xf", C::Brownout),
            ("0xc", C::Software),
            ("0x99", C::Unknown),
        ] {
            assert_eq!(RebootCause::from_reset_reason(r), want, "{r}");
        }
    }

    #[test]
    fn a_flat_53_is_no_sensor_a_moving_one_is_real() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(0, &E::Temperature(53.0), &mut m);
        assert!(!s.temperature_no_sensor(60_000), "too early to tell");
        assert!(s.temperature_no_sensor(NO_SENSOR_AFTER_MS));
        s.apply(NO_SENSOR_AFTER_MS + 1, &E::Temperature(54.0), &mut m);
        assert!(!s.temperature_no_sensor(3 * NO_SENSOR_AFTER_MS));
        s.apply(0, &E::Temperature(47.0), &mut m);
        assert!(!s.temperature_no_sensor(i64::MAX / 2));
    }

    #[test]
    fn shares_meaning_follows_the_version() {
        let mut s = MinerState::default();
        assert_eq!(s.shares_meaning(), None);
        s.firmware = Some("V1.8.3".into());
        assert_eq!(s.shares_meaning(), Some("pool_accepted"));
        s.firmware = Some("V1.7.0".into());
        assert_eq!(s.shares_meaning(), Some("local"));
    }

    #[test]
    fn t3_and_sparkminer_lines_feed_hashrate_shares_and_best() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        s.apply(
            0,
            &E::CompactStatus {
                hashrate_khs: 61.0,
                shares: 2,
                best_diff: 1230.0,
            },
            &mut m,
        );
        s.apply(
            1000,
            &E::CompactStatus {
                hashrate_khs: 62.0,
                shares: 3,
                best_diff: 1230.0,
            },
            &mut m,
        );
        assert_eq!(
            (s.shares(), s.hashrate_khs, s.best_diff),
            (3, Some(62.0), Some(1230.0))
        );
        let mut s = MinerState::default();
        s.apply(
            0,
            &E::SparkStats {
                hashrate_khs: 712.0,
                accepted: 1,
                answered: 1,
                best_diff: Some(0.5),
            },
            &mut m,
        );
        assert_eq!(s.firmware_family.as_deref(), Some("SparkMiner"));
        s.apply(
            10_000,
            &E::SparkStats {
                hashrate_khs: 712.0,
                accepted: 3,
                answered: 5,
                best_diff: None,
            },
            &mut m,
        );
        assert_eq!((s.shares(), s.rejected), (3, 2));
        assert_eq!(s.hashrate_khs, Some(712.0));
        // An AxeOS reading: a Bitaxe's TH/s in KH/s, its reject counter since boot.
        let mut s = MinerState::default();
        let axe = |accepted, rejected| E::AxeOsStats {
            hashrate_khs: 1.2e9,
            accepted,
            rejected,
            best_diff: Some(4.29e9),
        };
        s.apply(0, &axe(100, 2), &mut m);
        s.apply(10_000, &axe(104, 3), &mut m);
        assert_eq!(s.firmware_family.as_deref(), Some("AxeOS"));
        assert_eq!(s.hashrate_khs, Some(1.2e9));
        assert_eq!(s.best_diff, Some(4.29e9));
        assert_eq!(s.rejected, 3);
        // Its uptimeSeconds is the time since boot: nothing is restored across a boot.
        s.apply(10_000, &E::TimeMining { secs: 3600 }, &mut m);
        assert_eq!(s.restores_stats, Some(false));
        assert_eq!(s.uptime_since_boot(20_000), Some(3610));
        let mut s = MinerState::default();
        s.apply(0, &E::HighestHashedDifficulty(0.25), &mut m);
        assert_eq!(s.best_diff, Some(0.25));
        assert_eq!(s.firmware_family.as_deref(), Some("LeafMiner"));
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

#[cfg(test)]
mod sim_tests {
    use super::*;
    use crate::miner::dedupe::EventFilter;
    use crate::miner::parse::parse_line;
    use crate::sim::nerdminer::{Board, SimMiner};

    /// The simulated firmware's own lines, through the parser, the ingest filter and the
    /// summary: the total equals the shares the pool accepted over the miner's life.
    #[test]
    fn simulated_nvs_miner_through_ingest_keeps_exact_totals() {
        let mut sim = SimMiner::new(11, Board::NoDisplay).with_saved_stats();
        let mut lines = sim.boot_lines();
        let tick = |sim: &mut SimMiner, n: usize| -> Vec<String> {
            (0..n).flat_map(|_| sim.tick()).collect()
        };
        lines.extend(tick(&mut sim, 60));
        lines.extend(sim.find_block());
        lines.extend(tick(&mut sim, 5));
        lines.extend(sim.save_stats());
        lines.extend(tick(&mut sim, 30));
        for _ in 0..3 {
            lines.extend(sim.reboot("SW_CPU_RESET"));
            lines.extend(tick(&mut sim, 40));
            lines.extend(sim.save_stats());
            lines.extend(tick(&mut sim, 10));
        }
        let mut filter = EventFilter::default();
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        for (i, l) in lines.iter().enumerate() {
            for e in parse_line(l) {
                if filter.keep(&e) {
                    s.apply(i as i64 * 10, &e, &mut m);
                }
            }
        }
        assert_eq!(s.restarts, 3);
        assert_eq!(s.shares(), sim.accepted_total(), "{s:#?}");
        assert_eq!(s.blocks(), 1);
    }
}

#[cfg(test)]
mod lottery_tests {
    use super::tests::boot;
    use super::*;
    use MinerEvent as E;

    fn nvs_second(
        s: &mut MinerState,
        m: &mut BTreeMap<i64, MinuteDelta>,
        ts: i64,
        shares: u64,
        blocks: u64,
    ) {
        s.apply(
            ts,
            &E::Progress {
                shares,
                khashes: 0,
                hashrate_khs: 300.0,
            },
            m,
        );
        s.apply(ts, &E::ValidBlocks(blocks), m);
    }

    fn shares_of(notes: &[LotteryNote]) -> Vec<(f64, ShareSource, bool)> {
        notes
            .iter()
            .filter_map(|n| match n {
                LotteryNote::Share {
                    difficulty,
                    source,
                    live,
                    ..
                } => Some((*difficulty, *source, *live)),
                LotteryNote::Block { .. } => None,
            })
            .collect()
    }

    #[test]
    fn share_lines_are_live_and_a_restored_best_is_a_baseline() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        // First look at a running miner: its best figure is a baseline.
        s.apply(0, &E::BestDifficulty(5000.0), &mut m);
        // A submitted share, then the best line catching up with it (rounded): no second note.
        s.apply(1_000, &E::ShareDifficulty(12_345.678), &mut m);
        s.apply(2_000, &E::BestDifficulty(12_300.0), &mut m);
        // A best-line rise beyond any share line seen: a share we saw no line for.
        s.apply(3_000, &E::BestDifficulty(20_000.0), &mut m);
        let notes = std::mem::take(&mut s.new_lottery);
        assert_eq!(
            shares_of(&notes),
            vec![
                (5000.0, ShareSource::BestLine, false),
                (12_345.678, ShareSource::Share, true),
                (20_000.0, ShareSource::BestLine, true),
            ]
        );
        // Reboot with NVS restore: a share line may come first, then the restored best
        // (20 K) is printed: a baseline again, never a live record.
        s.apply(10_000, &boot("SW_CPU_RESET"), &mut m);
        s.apply(11_000, &E::ShareDifficulty(0.5), &mut m);
        s.apply(12_000, &E::BestDifficulty(20_000.0), &mut m);
        s.apply(13_000, &E::BestDifficulty(20_000.0), &mut m);
        assert_eq!(
            shares_of(&s.new_lottery),
            vec![
                (0.5, ShareSource::Share, true),
                (20_000.0, ShareSource::BestLine, false),
            ]
        );
        // The state survives a restart of shepherd (JSON) without the notes already taken.
        s.new_lottery.clear();
        let json = serde_json::to_string(&s).unwrap();
        let mut back: MinerState = serde_json::from_str(&json).unwrap();
        back.apply(14_000, &E::BestDifficulty(20_000.0), &mut m);
        assert!(back.new_lottery.is_empty(), "{:?}", back.new_lottery);
    }

    #[test]
    fn hashes_come_from_the_khashes_counter_with_baselines() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        let p = |k| E::Progress {
            shares: 0,
            khashes: k,
            hashrate_khs: 300.0,
        };
        // First look: 1 000 000 Khashes already done before we watched: not counted.
        s.apply(0, &p(1_000_000), &mut m);
        s.apply(1_000, &p(1_000_300), &mut m);
        s.apply(61_000, &p(1_018_300), &mut m);
        s.apply(70_000, &boot("POWERON_RESET"), &mut m);
        s.apply(75_000, &p(0), &mut m);
        s.apply(76_000, &p(300), &mut m);
        let total: f64 = m.values().map(|d| d.hashes).sum();
        // 300 K + 18 000 K + 300 K hashes
        assert_eq!(total, 18_600_000.0);
        assert_eq!(m[&0].hashes, 300_000.0);
        assert_eq!(m[&60].hashes, 18_300_000.0);
    }

    #[test]
    fn boards_without_a_counter_count_rate_times_time_at_most_a_minute() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        let c = |khs| E::CompactStatus {
            hashrate_khs: khs,
            shares: 0,
            best_diff: 0.0,
        };
        s.apply(0, &c(100.0), &mut m);
        s.apply(10_000, &c(100.0), &mut m); // 10 s x 100 KH/s
        s.apply(310_000, &c(100.0), &mut m); // a 5-minute gap counts one minute
        let total: f64 = m.values().map(|d| d.hashes).sum();
        assert_eq!(total, 1_000_000.0 + 6_000_000.0);
    }

    #[test]
    fn blocks_are_noted_once_each_and_never_from_restored_counters() {
        let mut s = MinerState::default();
        let mut m = BTreeMap::new();
        nvs_second(&mut s, &mut m, 0, 40, 1);
        s.apply(1_000, &boot("SW_CPU_RESET"), &mut m);
        nvs_second(&mut s, &mut m, 5_000, 40, 1);
        assert!(
            !s.new_lottery
                .iter()
                .any(|n| matches!(n, LotteryNote::Block { .. })),
            "restored valid blocks are not blocks"
        );
        nvs_second(&mut s, &mut m, 6_000, 41, 2);
        s.apply(6_500, &E::BlockFound, &mut m);
        let blocks: Vec<i64> = s
            .new_lottery
            .iter()
            .filter_map(|n| match n {
                LotteryNote::Block { at } => Some(*at),
                _ => None,
            })
            .collect();
        // The counter and the banner of the same block: the store keeps one (10-minute window).
        assert_eq!(blocks, vec![6_000, 6_500]);
    }
}

#[cfg(test)]
mod prop_tests {
    use super::*;
    use crate::miner::parse::parse_line;
    use proptest::prelude::*;

    proptest! {
        /// Any sequence of lines (made of the markers the parser knows), at any times, folds
        /// into a state and a diagnosis without panicking, and totals never go down.
        #[test]
        fn any_line_sequence_folds_and_diagnoses_without_panic(
            lines in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![
                    Just(">>> Completed "), Just(" share(s), "), Just(" Khashes, avg. hashrate "),
                    Just(" KH/s"), Just(">>> Valid blocks: "), Just(">>> Time mining: "),
                    Just(">>> Temperature: "), Just("rst:0x"), Just("f (RTCWDT_BROWN_OUT_RESET)"),
                    Just("NerdMiner v2 starting"), Just("Brownout detector was triggered"),
                    Just("Guru Meditation Error"), Just("[Error] - current status: "),
                    Just("  Receiving: {\"id\":2,\"result\":false}"), Just("ERROR: 24 | reason: x"),
                    Just(">>> Hashrate: "), Just(" | Shares: "), Just(" | Best diff: "),
                    Just("[STATS] Hashrate: "), Just(" H/s"), Just("\"saveStatsToNVS\": true"),
                    Just("[MONITOR] Resetting NVS stats"), Just("0"), Just("7"), Just("53"),
                    Just("18446744073709551615"), Just("1.5"), Just("0  01:02:03"), Just("/"),
                ], 0..8).prop_map(|p| p.concat()),
                0..60,
            ),
            times in proptest::collection::vec(-1_000_000i64..1_000_000_000_000, 60),
        ) {
            let mut s = MinerState::default();
            let mut m = BTreeMap::new();
            let mut shares = 0;
            for (l, t) in lines.iter().zip(&times) {
                for e in parse_line(l) {
                    s.apply(*t, &e, &mut m);
                    prop_assert!(s.shares() >= shares, "total went down");
                    shares = s.shares();
                }
                let _ = crate::diagnosis::diagnose(&s.evidence, Status::Online, Some(*t), *t);
                let _ = s.uptime_since_boot(*t);
                let _ = s.temperature_no_sensor(*t);
            }
        }
    }
}
