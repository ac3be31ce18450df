//! Recognises what a NerdMiner_v2 log line means.
//!
//! Every format string the firmware (BitMaker-hub/NerdMiner_v2, from the 2023 releases to
//! V1.8.x) prints on serial that matters for watching a miner maps to a [`MinerEvent`].
//! Tasks print concurrently, so one line can hold the tail of another task's output in
//! front of a marker (`*wm:[ERR>>> Completed ...`): markers are searched anywhere in the
//! line, and a line can yield several events. Matching is hand-written (no regex) because
//! it runs for every line of every miner, and it never panics on any input.
//!
//! [`mask_secrets`] hides the pool password before a line is stored or shown.

use std::borrow::Cow;

/// Something a miner said on its serial port.
///
/// Serialized (and read back) with a `kind` tag: `{"kind":"progress","shares":1,...}`.
/// Variants that hold a single number carry it as `value`: `{"kind":"valid_blocks","value":3}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MinerEvent {
    /// Once-a-second hashing summary (`>>> Completed %s share(s), %s Khashes, avg. hashrate %s KH/s`).
    Progress {
        /// Accepted 32-bit shares since boot.
        shares: u64,
        /// Kilo-hashes computed since boot.
        khashes: u64,
        /// Moving-average hashrate in KH/s.
        hashrate_khs: f64,
    },
    /// Blocks found since boot (`>>> Valid blocks: %s`, display-less boards only).
    ValidBlocks(#[serde(with = "value_field")] u64),
    /// Jobs received from the pool since boot (`>>> Block templates: %s`).
    BlockTemplates(#[serde(with = "value_field")] u64),
    /// Best share difficulty so far, suffix (K, M, G, T, P, E) already applied.
    BestDifficulty(#[serde(with = "value_field")] f64),
    /// 32-bit shares found since boot (`>>> 32Bit shares: %s`).
    Shares32Bit(#[serde(with = "value_field")] u64),
    /// Chip temperature in °C (`>>> Temperature: %s`).
    Temperature(#[serde(with = "value_field")] f64),
    /// Mega-hashes computed since boot (`>>> Total MHashes: %s`).
    TotalMHashes(#[serde(with = "value_field")] f64),
    /// Time spent mining (`>>> Time mining: 0  01:23:45`).
    TimeMining {
        /// Total seconds (days folded in).
        secs: u64,
    },
    /// Why a second went by without hashes: the miner and pool client state flags.
    MinerStatus {
        /// A new job is waiting for the miner tasks.
        new_job: bool,
        /// A miner task is hashing.
        in_run: bool,
        /// The TCP connection to the pool is up.
        connected: bool,
        /// The stratum session is subscribed.
        subscribed: bool,
        /// Wi-Fi is associated.
        wifi: bool,
    },
    /// The stratum task is (re)connecting to the pool.
    PoolConnecting,
    /// The TCP connection to the pool failed (`Imposible to connect to : <pool>`, sic).
    PoolUnreachable {
        /// Pool host as configured.
        pool: String,
    },
    /// The pool the firmware was configured with, echoed after Wi-Fi connects
    /// (`PoolString: …`, NerdMinerV2.ino.cpp / wManager.cpp).
    PoolConfigured {
        /// Pool host as configured.
        pool: String,
    },
    /// `mining.subscribe` was sent; the first firmware line that names the version.
    Subscribe {
        /// Version from the user agent (`NerdMinerV2/V1.8.3` → `V1.8.3`); `None` before 1.6.4.
        firmware: Option<String>,
    },
    /// `mining.authorize` was sent.
    Authorize {
        /// Wallet address or `address.worker` (never the password).
        worker: String,
    },
    /// The pool sent a new job (`Parsing Method [MINING NOTIFY]`).
    NewJob,
    /// The pool's share difficulty (`difficulty: %.12f` after SET DIFFICULTY, and
    /// `- Current pool diff : %.12f` with each share).
    PoolDifficulty(#[serde(with = "value_field")] f64),
    /// A share was sent to the pool (`mining.submit`).
    ShareSubmitted,
    /// Difficulty of the share just submitted (`- Current diff share: %.12f`).
    ShareDifficulty(#[serde(with = "value_field")] f64),
    /// The pool rejected a submission (`Refuse submition %d`, sic).
    ShareRejected {
        /// The number the firmware prints: the stratum request id of the submission.
        code: i64,
    },
    /// A share met the network target: a block was found.
    BlockFound,
    /// The pool answered with an error (`ERROR: %d | reason: %s`).
    StratumError {
        /// Stratum error code (e.g. 21 stale job, 23 low difficulty, 24 unauthorized).
        code: i64,
        /// Pool's explanation; `(null)` when it gave none.
        reason: String,
    },
    /// Two minutes without pool data; the firmware drops and reopens the connection.
    PoolTimeout,
    /// Wi-Fi connected (`CONNECTED - Current ip: …`, `IP address: …`).
    WifiConnected {
        /// Address the miner got.
        ip: String,
    },
    /// Wi-Fi state changed to something other than connected (`[Error] - current status: %d`).
    WifiError {
        /// `wl_status_t`: 1 no SSID, 4 connect failed, 5 connection lost, 6 disconnected.
        status: i32,
    },
    /// The chip (re)booted; ROM banner `rst:0x1 (POWERON_RESET),boot:…`.
    Boot {
        /// Reset cause from the banner (`POWERON_RESET`, `SW_CPU_RESET`, …), or its code.
        reset_reason: String,
    },
    /// The firmware's first line (`NerdMiner v2 starting......`).
    Starting,
    /// The firmware crashed (Guru Meditation Error, abort(), stack overflow).
    Crash {
        /// The crash line from its marker on.
        detail: String,
    },
    /// The supply voltage dipped and the chip reset itself (weak USB power).
    Brownout,
    /// A task starved the watchdog; a reboot follows.
    Watchdog,
    /// The Wi-Fi setup portal is open (no usable configuration or Wi-Fi).
    SetupMode,
    /// The SPIFFS partition could not be mounted even after formatting.
    SpiffsMountFailed,
    /// `/config.json` does not exist.
    ConfigMissing,
    /// `/config.json` is not valid JSON.
    ConfigParseError,
    /// `/config.json` exists but could not be opened.
    ConfigOpenError,
    /// Mining statistics were written to NVS (`[MONITOR] Saving stats`).
    StatsSaved,
    /// The firmware sent its idle keep-alive to the pool.
    KeepAlive,
    /// `mining.suggest_difficulty` was sent with this difficulty.
    SuggestDifficulty(#[serde(with = "value_field")] f64),
    /// The pool's subscribe answer was unusable; the stratum task starts over.
    WorkAborted,
    /// A hashing task started (`[MINER] %d Started minerWorkerSw Task!`).
    MinerTaskStarted {
        /// Task number.
        index: u32,
        /// Uses the SHA hardware accelerator (`minerWorkerHw`).
        hardware: bool,
    },
    /// Chip model printed at boot by boards that report it (`Chip: ESP32-D0WD-V3`).
    ChipModel {
        /// Model string from the SDK.
        model: String,
    },
    /// Pool reply echoed by older firmware (`  Receiving: {"id":2,"result":true,…}`).
    PoolResponse {
        /// Request id the pool answers.
        id: i64,
        /// The `result` the pool gave.
        accepted: bool,
    },
    /// The LilyGo T3 (SSD1306, after V1.8.3) prints this once a second instead of
    /// `Completed …` (`>>> Hashrate: %s KH/s | Shares: %s | Best diff: %s`).
    CompactStatus {
        /// 10-s average hashrate in KH/s.
        hashrate_khs: f64,
        /// The firmware's share counter (as in `Completed`).
        shares: u64,
        /// Best difficulty, suffix applied.
        best_diff: f64,
    },
    /// SparkMiner's ten-second summary (`[STATS] Hashrate: %.2f H/s | … | Shares: %u/%u | …`),
    /// converted to KH/s.
    SparkStats {
        /// Hashrate in KH/s (the line prints H/s).
        hashrate_khs: f64,
        /// Shares the pool accepted.
        accepted: u64,
        /// Shares the pool answered (accepted + rejected).
        answered: u64,
        /// Best difficulty.
        best_diff: Option<f64>,
    },
    /// LeafMiner's `New highest hashed difficulty: %.12f`: its own best, not the pool's.
    HighestHashedDifficulty(#[serde(with = "value_field")] f64),
    /// WiFiManager gave up connecting; the firmware restarts (`wManager.cpp`).
    WifiTimeout,
    /// The button forced the setup portal (`Button pressed to force start config mode`).
    ConfigButton,
    /// The button erased the configuration; a restart into setup mode follows.
    ConfigErased,
    /// The NVS statistics were reset to zero (`[MONITOR] Resetting NVS stats`).
    StatsReset,
    /// `"saveStatsToNVS": true|false` in the boot configuration dump: whether the firmware
    /// restores its counters from NVS at boot.
    SaveStatsSetting {
        /// The setting.
        on: bool,
    },
    /// The display driver the firmware runs (`SSD1306 128x64 display driver initialized`,
    /// `No display driver initialized`, …): tells what the board prints on serial.
    DisplayDriver {
        /// The driver's words before `display driver` (e.g. `SSD1306 128x64`, `No`).
        name: String,
    },
}

/// Tagged enums can't hold a bare number: it travels as `{"value": n}` beside the tag.
mod value_field {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Value", 1)?;
        st.serialize_field("value", v)?;
        st.end()
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        #[derive(Deserialize)]
        struct Value<T> {
            value: T,
        }
        Value::deserialize(d).map(|v| v.value)
    }
}

/// A marker and the function that reads the event after it.
///
/// The handler gets the whole line, where the marker starts and where it ends.
struct Rule {
    needle: &'static str,
    handler: fn(&str, usize, usize) -> Option<MinerEvent>,
}

/// All rule markers in one automaton: this runs for every line of every miner, and one scan
/// per line is far cheaper than one substring search per rule. (Built from constant
/// strings, it cannot fail; if it ever did, parsing finds nothing rather than panicking.)
static MARKERS: std::sync::LazyLock<Option<aho_corasick::AhoCorasick>> =
    std::sync::LazyLock::new(|| {
        aho_corasick::AhoCorasick::new(RULES.iter().map(|r| r.needle)).ok()
    });

/// Marker table; file names are the firmware sources that print each one.
static RULES: &[Rule] = &[
    // monitor.cpp / drivers/displays/*.cpp: every `>>> ` line.
    Rule {
        needle: ">>> ",
        handler: monitor_line,
    },
    // mining.cpp checkPoolConnection()
    Rule {
        needle: "Client not connected, trying to connect",
        handler: |_, _, _| Some(MinerEvent::PoolConnecting),
    },
    // wManager.cpp: settings echoed after Wi-Fi connects.
    Rule {
        needle: "PoolString: ",
        handler: |line, _, end| {
            let pool = line.get(end..)?.trim();
            (!pool.is_empty()).then(|| MinerEvent::PoolConfigured {
                pool: pool.to_owned(),
            })
        },
    },
    Rule {
        needle: "Imposible to connect to :",
        handler: pool_unreachable,
    },
    Rule {
        needle: "Impossible to connect to :",
        handler: pool_unreachable,
    },
    // stratum.cpp tx_* functions: the payload echo after `  Sending  : `.
    Rule {
        needle: "\"mining.subscribe\"",
        handler: subscribe,
    },
    Rule {
        needle: "\"mining.authorize\"",
        handler: authorize,
    },
    Rule {
        needle: "\"mining.submit\"",
        handler: |_, _, _| Some(MinerEvent::ShareSubmitted),
    },
    Rule {
        needle: "\"mining.suggest_difficulty\"",
        handler: suggest_difficulty,
    },
    // mining.cpp checkPoolInactivity()
    Rule {
        needle: "KeepAlive suggest_difficulty",
        handler: |_, _, _| Some(MinerEvent::KeepAlive),
    },
    Rule {
        needle: "without data form stratum",
        handler: |_, _, _| Some(MinerEvent::PoolTimeout),
    },
    Rule {
        needle: "without data from stratum",
        handler: |_, _, _| Some(MinerEvent::PoolTimeout),
    },
    // stratum.cpp parse_mining_notify() / parse_mining_set_difficulty()
    Rule {
        needle: "Parsing Method [MINING NOTIFY]",
        handler: |_, _, _| Some(MinerEvent::NewJob),
    },
    Rule {
        needle: "difficulty: ",
        handler: set_difficulty,
    },
    // mining.cpp share submission
    Rule {
        needle: "Current pool diff :",
        handler: |l, _, e| float_at(l, e).map(MinerEvent::PoolDifficulty),
    },
    Rule {
        needle: "Current diff share:",
        handler: |l, _, e| float_at(l, e).map(MinerEvent::ShareDifficulty),
    },
    Rule {
        needle: "Refuse submition",
        handler: |l, _, e| int_at(l, e).map(|code| MinerEvent::ShareRejected { code }),
    },
    Rule {
        needle: "CONGRATULATIONS!",
        handler: |_, _, _| Some(MinerEvent::BlockFound),
    },
    Rule {
        needle: "VALID BLOCK FOUND",
        handler: |_, _, _| Some(MinerEvent::BlockFound),
    },
    // stratum.cpp checkError()
    Rule {
        needle: "ERROR: ",
        handler: stratum_error,
    },
    Rule {
        needle: ">>>>>>>>> Work",
        handler: |_, _, _| Some(MinerEvent::WorkAborted),
    },
    Rule {
        needle: "Receiving:",
        handler: pool_response,
    },
    // wManager.cpp
    Rule {
        needle: "CONNECTED - Current ip:",
        handler: |l, _, e| ip_at(l, e).map(|ip| MinerEvent::WifiConnected { ip }),
    },
    Rule {
        needle: "IP address: ",
        handler: |l, s, e| {
            word_start(l, s)
                .then(|| ip_at(l, e))
                .flatten()
                .map(|ip| MinerEvent::WifiConnected { ip })
        },
    },
    Rule {
        needle: "[Error] - current status:",
        handler: |l, _, e| {
            let (v, _) = parse_i64(&l[e..])?;
            Some(MinerEvent::WifiError {
                status: i32::try_from(v).ok()?,
            })
        },
    },
    Rule {
        needle: "Entered Configuration Mode",
        handler: |_, _, _| Some(MinerEvent::SetupMode),
    },
    Rule {
        needle: "Config SSID:",
        handler: |_, _, _| Some(MinerEvent::SetupMode),
    },
    // ESP32 ROM and ESP-IDF panic handler
    Rule {
        needle: "rst:0x",
        handler: boot,
    },
    Rule {
        needle: "Guru Meditation Error",
        handler: crash,
    },
    Rule {
        needle: "abort() was called",
        handler: crash,
    },
    Rule {
        needle: "stack overflow in task",
        handler: crash,
    },
    Rule {
        needle: "Brownout detector was triggered",
        handler: |_, _, _| Some(MinerEvent::Brownout),
    },
    Rule {
        needle: "Task watchdog got triggered",
        handler: |_, _, _| Some(MinerEvent::Watchdog),
    },
    // NerdMinerV2.ino.cpp setup() and task start lines
    Rule {
        needle: "NerdMiner v2 starting",
        handler: |_, _, _| Some(MinerEvent::Starting),
    },
    Rule {
        needle: "Started minerWorker",
        handler: miner_task,
    },
    // drivers/displays/esp23_2432s028r.cpp getChipInfo()
    Rule {
        needle: "Chip: ",
        handler: |l, s, e| {
            if !word_start(l, s) {
                return None;
            }
            let model = l[e..].split_whitespace().next()?;
            Some(MinerEvent::ChipModel {
                model: model.to_owned(),
            })
        },
    },
    // drivers/storage/nvMemory.cpp (SPIFS: ...) and the older SPIStorage.h wording
    Rule {
        needle: "SPIFS: Mounting failed",
        handler: |_, _, _| Some(MinerEvent::SpiffsMountFailed),
    },
    Rule {
        needle: "Failed to mount FS",
        handler: |_, _, _| Some(MinerEvent::SpiffsMountFailed),
    },
    Rule {
        needle: "SPIFS: No config file available",
        handler: |_, _, _| Some(MinerEvent::ConfigMissing),
    },
    Rule {
        needle: "SPIFS: Error parsing config file",
        handler: |_, _, _| Some(MinerEvent::ConfigParseError),
    },
    Rule {
        needle: "Failed to load json config",
        handler: |_, _, _| Some(MinerEvent::ConfigParseError),
    },
    Rule {
        needle: "SPIFS: Error opening config file",
        handler: |_, _, _| Some(MinerEvent::ConfigOpenError),
    },
    // mining.cpp saveStat()
    Rule {
        needle: "[MONITOR] Saving stats",
        handler: |_, _, _| Some(MinerEvent::StatsSaved),
    },
    // mining.cpp resetStat() (e3a04b7 mining.cpp:1199)
    Rule {
        needle: "[MONITOR] Resetting NVS stats",
        handler: |_, _, _| Some(MinerEvent::StatsReset),
    },
    // drivers/displays/ssd1306DisplayDriver.cpp:22 (LilyGo T3, after V1.8.3)
    Rule {
        needle: ">>> Hashrate:",
        handler: compact_status,
    },
    // SparkMiner (not NerdMiner_v2): `[STATS] Hashrate: %.2f H/s | Shares: %u/%u | …`
    Rule {
        needle: "[STATS] Hashrate:",
        handler: spark_stats,
    },
    // LeafMiner (not NerdMiner_v2): current.cpp current_setHighestDifficulty()
    Rule {
        needle: "New highest hashed difficulty:",
        handler: |l, _, e| float_at(l, e).map(MinerEvent::HighestHashedDifficulty),
    },
    // wManager.cpp:276 (setup portal timed out) and wManager.cpp:307 (saved Wi-Fi failed);
    // both end in ESP.restart().
    Rule {
        needle: "failed to connect and hit timeout",
        handler: |_, _, _| Some(MinerEvent::WifiTimeout),
    },
    Rule {
        needle: "Failed to connect to configured WIFI, and hit timeout",
        handler: |_, _, _| Some(MinerEvent::WifiTimeout),
    },
    // wManager.cpp:156 and reset_configuration() wManager.cpp:124
    Rule {
        needle: "Button pressed to force start config mode",
        handler: |_, _, _| Some(MinerEvent::ConfigButton),
    },
    Rule {
        needle: "Erasing Config, restarting",
        handler: |_, _, _| Some(MinerEvent::ConfigErased),
    },
    // drivers/storage/nvMemory.cpp: the pretty-printed /config.json at boot.
    Rule {
        needle: "\"saveStatsToNVS\"",
        handler: |l, _, e| {
            let v = l[e..].trim_start().strip_prefix(':')?.trim_start();
            let on = if v.starts_with("true") {
                true
            } else if v.starts_with("false") {
                false
            } else {
                return None;
            };
            Some(MinerEvent::SaveStatsSetting { on })
        },
    },
    // drivers/displays/*DisplayDriver.cpp *_Init(): `<name> display driver initialized`
    Rule {
        needle: " display driver initialized",
        handler: |l, s, _| {
            let name = l[..s].trim();
            let name = name.rsplit(['>', ']']).next().unwrap_or(name).trim();
            (!name.is_empty() && name.len() <= 40).then(|| MinerEvent::DisplayDriver {
                name: name.to_owned(),
            })
        },
    },
];

/// Events found in one cleaned line (usually 0 or 1; interleaved task output can hold two).
pub fn parse_line(line: &str) -> Vec<MinerEvent> {
    let mut found: Vec<(usize, MinerEvent)> = Vec::new();
    let Some(markers) = MARKERS.as_ref() else {
        return Vec::new();
    };
    // One pass finds every marker, overlapping ones included. Needles are ASCII, so every
    // match starts and ends on a char boundary.
    for m in markers.find_overlapping_iter(line) {
        let Some(rule) = RULES.get(m.pattern().as_usize()) else {
            continue;
        };
        if let Some(ev) = (rule.handler)(line, m.start(), m.end()) {
            found.push((m.start(), ev));
        }
    }
    if found.len() > 1 {
        // Report events in the order they appear in the line.
        found.sort_by_key(|(pos, _)| *pos);
    }
    found.into_iter().map(|(_, ev)| ev).collect()
}

// ---------------------------------------------------------------------------------------
// Handlers

/// Everything the monitor task prints after `>>> `.
fn monitor_line(line: &str, _start: usize, end: usize) -> Option<MinerEvent> {
    let rest = &line[end..];
    if let Some(r) = rest.strip_prefix("Completed ") {
        let (shares, r) = parse_u64(r)?;
        let r = r.trim_start().strip_prefix("share(s),")?;
        let (khashes, r) = parse_u64(r)?;
        let r = r.trim_start().strip_prefix("Khashes,")?;
        let r = r.trim_start().strip_prefix("avg. hashrate")?;
        let (hashrate_khs, _) = parse_f64(r)?;
        return Some(MinerEvent::Progress {
            shares,
            khashes,
            hashrate_khs,
        });
    }
    if let Some(r) = rest.strip_prefix("Valid blocks:") {
        return parse_u64(r).map(|(v, _)| MinerEvent::ValidBlocks(v));
    }
    if let Some(r) = rest.strip_prefix("Block templates:") {
        return parse_u64(r).map(|(v, _)| MinerEvent::BlockTemplates(v));
    }
    if let Some(r) = rest.strip_prefix("Best difficulty:") {
        return parse_suffixed(r).map(MinerEvent::BestDifficulty);
    }
    if let Some(r) = rest.strip_prefix("32Bit shares:") {
        return parse_u64(r).map(|(v, _)| MinerEvent::Shares32Bit(v));
    }
    if let Some(r) = rest.strip_prefix("Temperature:") {
        return parse_f64(r).map(|(v, _)| MinerEvent::Temperature(v));
    }
    if let Some(r) = rest.strip_prefix("Total MHashes:") {
        return parse_f64(r).map(|(v, _)| MinerEvent::TotalMHashes(v));
    }
    if let Some(r) = rest.strip_prefix("Time mining:") {
        return parse_uptime(r).map(|secs| MinerEvent::TimeMining { secs });
    }
    if let Some(r) = rest.strip_prefix("[i] Miner:") {
        return miner_status(r);
    }
    None
}

/// `newJob>%s / inRun>%s) - Client: connected>%s / subscribed>%s / wificonnected>%s`
fn miner_status(r: &str) -> Option<MinerEvent> {
    // Each flag is looked up after the previous one, so `connected>` can't hit
    // `wificonnected>`.
    let (new_job, r) = flag_after(r, "newJob>")?;
    let (in_run, r) = flag_after(r, "inRun>")?;
    let (connected, r) = flag_after(r, "connected>")?;
    let (subscribed, r) = flag_after(r, "subscribed>")?;
    let (wifi, _) = flag_after(r, "wificonnected>")?;
    Some(MinerEvent::MinerStatus {
        new_job,
        in_run,
        connected,
        subscribed,
        wifi,
    })
}

fn flag_after<'a>(s: &'a str, key: &str) -> Option<(bool, &'a str)> {
    let at = s.find(key)? + key.len();
    let r = &s[at..];
    for (word, v) in [("true", true), ("false", false), ("1", true), ("0", false)] {
        if let Some(rest) = r.strip_prefix(word) {
            return Some((v, rest));
        }
    }
    None
}

fn pool_unreachable(line: &str, _start: usize, end: usize) -> Option<MinerEvent> {
    Some(MinerEvent::PoolUnreachable {
        pool: line[end..].trim().to_owned(),
    })
}

fn subscribe(line: &str, _start: usize, _end: usize) -> Option<MinerEvent> {
    // Before 1.6.4 the agent had no version; the very first releases sent the wallet here.
    let agent = first_param_string(line)?;
    let firmware = agent
        .split_once('/')
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    Some(MinerEvent::Subscribe { firmware })
}

fn authorize(line: &str, _start: usize, _end: usize) -> Option<MinerEvent> {
    let worker = first_param_string(line)?;
    Some(MinerEvent::Authorize { worker })
}

fn suggest_difficulty(line: &str, _start: usize, _end: usize) -> Option<MinerEvent> {
    let r = params_array(line)?;
    parse_f64(r).map(|(v, _)| MinerEvent::SuggestDifficulty(v))
}

/// `    difficulty: %.12f` from SET DIFFICULTY, but not `>>> Best difficulty:`.
fn set_difficulty(line: &str, start: usize, end: usize) -> Option<MinerEvent> {
    let before = &line[..start];
    // `>>> Best difficulty:` (monitor) and LeafMiner's `New highest hashed difficulty:` are
    // the miner's own bests, never the pool's difficulty.
    let prev = before.trim_end();
    if !word_start(line, start) || prev.ends_with("Best") || prev.ends_with("hashed") {
        return None;
    }
    float_at(line, end).map(MinerEvent::PoolDifficulty)
}

/// `ERROR: %d | reason: %s `
fn stratum_error(line: &str, _start: usize, end: usize) -> Option<MinerEvent> {
    let (code, r) = parse_i64(&line[end..])?;
    let reason = r.trim_start().strip_prefix('|')?.trim_start();
    let reason = reason.strip_prefix("reason:")?.trim();
    Some(MinerEvent::StratumError {
        code,
        reason: reason.to_owned(),
    })
}

/// Older firmware echoes every pool message; only plain true/false results are news.
fn pool_response(line: &str, _start: usize, end: usize) -> Option<MinerEvent> {
    let r = &line[end..];
    let accepted = match json_value_after_key(r, "result")? {
        v if v.starts_with("true") => true,
        v if v.starts_with("false") => false,
        _ => return None,
    };
    let (id, _) = parse_i64(json_value_after_key(r, "id")?)?;
    Some(MinerEvent::PoolResponse { id, accepted })
}

/// `>>> Hashrate: %s KH/s | Shares: %s | Best diff: %s` (ssd1306DisplayDriver.cpp:22-23; the
/// hashrate string is monitor.cpp getCurrentHashRate(), best diff suffix_string()).
fn compact_status(line: &str, _start: usize, end: usize) -> Option<MinerEvent> {
    let (hashrate_khs, r) = parse_f64(&line[end..])?;
    let r = r.trim_start().strip_prefix("KH/s")?.trim_start();
    let r = r.strip_prefix('|')?.trim_start().strip_prefix("Shares:")?;
    let (shares, r) = parse_u64(r)?;
    let r = r.trim_start().strip_prefix('|')?.trim_start();
    let best_diff = parse_suffixed(r.strip_prefix("Best diff:")?)?;
    Some(MinerEvent::CompactStatus {
        hashrate_khs,
        shares,
        best_diff,
    })
}

/// SparkMiner prints two variants: `[STATS] Hashrate: %.2f H/s | Shares: %u/%u | Ping: %u ms
/// | Best: %.4f` and `[STATS] Hashrate: %.2f H/s | Hashes: %llu | Shares: %u/%u | Best: %.4f`.
/// Fields are found by name; the rate is in H/s.
fn spark_stats(line: &str, _start: usize, end: usize) -> Option<MinerEvent> {
    let (hs, r) = parse_f64(&line[end..])?;
    let r = r.trim_start().strip_prefix("H/s")?;
    let shares = &r[r.find("Shares:")? + "Shares:".len()..];
    let (accepted, sr) = parse_u64(shares)?;
    let (answered, _) = parse_u64(sr.strip_prefix('/')?)?;
    let best_diff = r
        .find("Best:")
        .and_then(|i| parse_f64(&r[i + "Best:".len()..]))
        .map(|(v, _)| v);
    Some(MinerEvent::SparkStats {
        hashrate_khs: hs / 1000.0,
        accepted,
        answered,
        best_diff,
    })
}

/// `rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)`
fn boot(line: &str, _start: usize, end: usize) -> Option<MinerEvent> {
    let r = &line[end..];
    let hex_len = r.bytes().take_while(u8::is_ascii_hexdigit).count();
    if hex_len == 0 {
        return None;
    }
    let code = &r[..hex_len];
    let after = r[hex_len..].trim_start();
    let named = after
        .strip_prefix('(')
        .and_then(|a| a.split_once(')'))
        .map(|(name, _)| name.trim())
        .filter(|n| !n.is_empty());
    let reset_reason = match named {
        Some(n) => n.to_owned(),
        None => format!("0x{code}"),
    };
    Some(MinerEvent::Boot { reset_reason })
}

fn crash(line: &str, start: usize, _end: usize) -> Option<MinerEvent> {
    Some(MinerEvent::Crash {
        detail: line[start..].trim_end().to_owned(),
    })
}

/// `[MINER] %d Started minerWorkerSw Task!` (or `...Hw...`)
fn miner_task(line: &str, start: usize, end: usize) -> Option<MinerEvent> {
    let before = line[..start].trim_end();
    let digits = before.bytes().rev().take_while(u8::is_ascii_digit).count();
    let index = before[before.len() - digits..].parse().ok()?;
    let hardware = line[end..].starts_with("Hw");
    Some(MinerEvent::MinerTaskStarted { index, hardware })
}

// ---------------------------------------------------------------------------------------
// Small scanners. All take `&str`, skip leading blanks, and return what follows.

/// The marker at `start` is not glued to a preceding word.
fn word_start(line: &str, start: usize) -> bool {
    line[..start]
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

fn float_at(line: &str, end: usize) -> Option<f64> {
    parse_f64(&line[end..]).map(|(v, _)| v)
}

fn int_at(line: &str, end: usize) -> Option<i64> {
    parse_i64(&line[end..]).map(|(v, _)| v)
}

/// Leading IPv4/IPv6 text after the marker, cut where interleaved output starts.
fn ip_at(line: &str, end: usize) -> Option<String> {
    let r = line[end..].trim_start();
    let n = r
        .bytes()
        .take_while(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
        .count();
    let ip = &r[..n];
    let plausible = ip.bytes().any(|b| b.is_ascii_digit()) && ip.contains(['.', ':']);
    plausible.then(|| ip.to_owned())
}

fn parse_u64(s: &str) -> Option<(u64, &str)> {
    let s = s.trim_start();
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

fn parse_i64(s: &str) -> Option<(i64, &str)> {
    let s = s.trim_start();
    let sign = usize::from(s.starts_with(['-', '+']));
    let n = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..sign + n].parse().ok()?, &s[sign + n..]))
}

/// A decimal number as printf/Arduino print it (`-1.5`, `0.000150000000`, `1e-05`).
fn parse_f64(s: &str) -> Option<(f64, &str)> {
    let s = s.trim_start();
    let b = s.as_bytes();
    let mut i = usize::from(b.first().is_some_and(|c| *c == b'-' || *c == b'+'));
    let int_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        frac_digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += 1 + frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_digits = b[j.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if exp_digits > 0 {
            i = j + exp_digits;
        }
    }
    let v: f64 = s[..i].parse().ok()?;
    v.is_finite().then_some((v, &s[i..]))
}

/// Best difficulty as `suffix_string()` prints it: `0.0312`, `1.23K`, `  2.34M`, `12T`.
fn parse_suffixed(s: &str) -> Option<f64> {
    let (v, rest) = parse_f64(s)?;
    let mult = match rest.trim_start().chars().next() {
        Some('k' | 'K') => 1e3,
        Some('M') => 1e6,
        Some('G') => 1e9,
        Some('T') => 1e12,
        Some('P') => 1e15,
        Some('E') => 1e18,
        _ => 1.0,
    };
    Some(v * mult)
}

/// `0  01:23:45` (days, two spaces, hh:mm:ss); also `0d 01:23:45` and a bare `01:23:45`.
fn parse_uptime(s: &str) -> Option<u64> {
    let (first, rest) = parse_u64(s)?;
    let (days, hms) = if rest.starts_with(':') {
        (0, s.trim_start())
    } else {
        let rest = rest.strip_prefix('d').unwrap_or(rest);
        (first, rest)
    };
    let (h, r) = parse_u64(hms)?;
    let (m, r) = parse_u64(r.strip_prefix(':')?)?;
    let (sec, _) = parse_u64(r.strip_prefix(':')?)?;
    if m >= 60 || sec >= 60 {
        return None;
    }
    days.checked_mul(86_400)?
        .checked_add(h.checked_mul(3_600)?)?
        .checked_add(m * 60 + sec)
}

/// Text right after `"key"` and its colon, in a JSON object on the line.
fn json_value_after_key<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(rel) = s[from..].find(key) {
        let at = from + rel;
        from = at + key.len();
        if at == 0 || s.as_bytes()[at - 1] != b'"' || !s[from..].starts_with('"') {
            continue;
        }
        if let Some(v) = s[from + 1..].trim_start().strip_prefix(':') {
            return Some(v.trim_start());
        }
    }
    None
}

/// Inside the `"params": [` array of a stratum request: the text after `[`.
fn params_array(line: &str) -> Option<&str> {
    json_value_after_key(line, "params")?.strip_prefix('[')
}

/// First element of `params` when it is a string.
fn first_param_string(line: &str) -> Option<String> {
    let r = params_array(line)?.trim_start();
    json_string(r).map(|(s, _)| s)
}

/// A JSON string literal at the start of `s` (which must begin with `"`): its decoded
/// value and its byte length including the quotes.
fn json_string(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 2)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let (_, h) = chars.next()?;
                            code = code * 16 + h.to_digit(16)?;
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Secret masking

const MASK: &str = "***";

/// The line with the pool password masked ("***"): authorize params' second element, `poolPassword: x` echo, `"poolPassword": "x"` in the JSON dump.
///
/// Also masks any other JSON string whose key mentions a password (`"wifiPassword"`,
/// `"pool_pass"`) and any `...Password: value` echo, so forks that print more are covered.
pub fn mask_secrets(line: &str) -> Cow<'_, str> {
    // Fast path: almost no line mentions a password.
    if !contains_ignore_ascii_case(line, "pass") && !line.contains("mining.authorize") {
        return Cow::Borrowed(line);
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    authorize_password_span(line, &mut spans);
    json_password_spans(line, &mut spans);
    echo_password_spans(line, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(line);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    for (s, e) in spans {
        if s < pos {
            continue; // overlaps a span already masked
        }
        out.push_str(&line[pos..s]);
        out.push_str(MASK);
        pos = e;
    }
    out.push_str(&line[pos..]);
    Cow::Owned(out)
}

fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let first = first.to_ascii_lowercase();
    // Only positions whose first byte matches are compared in full (runs once per line).
    hay.iter().enumerate().any(|(i, b)| {
        b.to_ascii_lowercase() == first
            && hay
                .get(i + 1..i + 1 + rest.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

/// Second string of `"params": ["wallet", "password"]` in a `mining.authorize` request.
fn authorize_password_span(line: &str, spans: &mut Vec<(usize, usize)>) {
    if !line.contains("mining.authorize") {
        return;
    }
    let Some(r) = params_array(line) else { return };
    let r = r.trim_start();
    let Some((_, len)) = json_string(r) else {
        return;
    };
    let after = r[len..].trim_start();
    let Some(second) = after.strip_prefix(',').map(str::trim_start) else {
        return;
    };
    if let Some((value, len)) = json_string(second) {
        if !value.is_empty() {
            let start = line.len() - second.len() + 1;
            spans.push((start, start + len - 2));
        }
    }
}

/// `"<key with pass in it>": "value"` anywhere in the line.
fn json_password_spans(line: &str, spans: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while let Some(rel) = line[i..].find('"') {
        let at = i + rel;
        let Some((key, len)) = json_string(&line[at..]) else {
            return; // unterminated string: nothing further is JSON we can read
        };
        i = at + len;
        let rest = &line[i..];
        let Some(value) = rest.trim_start().strip_prefix(':').map(str::trim_start) else {
            continue;
        };
        if !contains_ignore_ascii_case(&key, "pass") {
            continue;
        }
        let vstart = line.len() - value.len();
        match json_string(value) {
            Some((v, vlen)) => {
                if !v.is_empty() {
                    spans.push((vstart + 1, vstart + vlen - 1));
                }
                i = vstart + vlen;
            }
            // The dump was cut inside the value: hide whatever follows the quote.
            None if value.starts_with('"') => {
                spans.push((vstart + 1, line.len()));
                return;
            }
            None => {}
        }
    }
}

/// `poolPassword: x` and other `...password: value` echoes (not JSON: no quote before
/// the colon). The value runs to the end of the line.
fn echo_password_spans(line: &str, spans: &mut Vec<(usize, usize)>) {
    const KEY: &[u8] = b"password:";
    let bytes = line.as_bytes();
    let mut i = 0;
    while i + KEY.len() <= bytes.len() {
        if bytes[i..i + KEY.len()].eq_ignore_ascii_case(KEY) {
            let mut v = i + KEY.len();
            if bytes.get(v) == Some(&b' ') {
                v += 1;
            }
            if v < bytes.len() {
                spans.push((v, bytes.len()));
            }
            return;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::MinerEvent as E;
    use super::*;
    use proptest::prelude::*;

    /// One case per firmware format string: (line, expected events). The comment says
    /// which firmware source prints it.
    fn cases() -> Vec<(&'static str, Vec<MinerEvent>)> {
        vec![
            // monitor.cpp + drivers/displays/*.cpp (mining screen, every board)
            (
                ">>> Completed 0 share(s), 61 Khashes, avg. hashrate 61.69 KH/s",
                vec![E::Progress {
                    shares: 0,
                    khashes: 61,
                    hashrate_khs: 61.69,
                }],
            ),
            // monitor.cpp getCurrentHashRate(): 1 decimal above 99.9 KH/s, none above 999.9
            (
                ">>> Completed 12 share(s), 123456 Khashes, avg. hashrate 312.4 KH/s",
                vec![E::Progress {
                    shares: 12,
                    khashes: 123456,
                    hashrate_khs: 312.4,
                }],
            ),
            (
                ">>> Completed 3 share(s), 9999999 Khashes, avg. hashrate 1042 KH/s",
                vec![E::Progress {
                    shares: 3,
                    khashes: 9999999,
                    hashrate_khs: 1042.0,
                }],
            ),
            // mining.cpp runMonitor() 2023: "%d share(s), %d Khashes, avg. hashrate %.3f KH/s"
            (
                ">>> Completed 1 share(s), 2706 Khashes, avg. hashrate 19.651 KH/s",
                vec![E::Progress {
                    shares: 1,
                    khashes: 2706,
                    hashrate_khs: 19.651,
                }],
            ),
            // interleaved with WiFiManager output (FACTS.md)
            (
                "*wm:[ERR>>> Completed 1 share(s), 2 Khashes, avg. hashrate 3.00 KH/s",
                vec![E::Progress {
                    shares: 1,
                    khashes: 2,
                    hashrate_khs: 3.0,
                }],
            ),
            // noDisplayDriver.cpp / ledDisplayDriver.cpp extended stats
            (">>> Valid blocks: 0", vec![E::ValidBlocks(0)]),
            (">>> Block templates: 17", vec![E::BlockTemplates(17)]),
            (">>> Best difficulty: 0.0021", vec![E::BestDifficulty(0.0021)]),
            (">>> Best difficulty: 1.23K", vec![E::BestDifficulty(1230.0)]),
            (">>> Best difficulty: 456.7K", vec![E::BestDifficulty(456_700.0)]),
            (">>> Best difficulty: 2.34M", vec![E::BestDifficulty(2_340_000.0)]),
            (">>> Best difficulty: 1.5G", vec![E::BestDifficulty(1.5e9)]),
            (">>> Best difficulty: 3T", vec![E::BestDifficulty(3e12)]),
            (">>> Best difficulty: 1.000P", vec![E::BestDifficulty(1e15)]),
            (">>> Best difficulty: 2E", vec![E::BestDifficulty(2e18)]),
            // utils.cpp suffix_string() with sigdigits pads on the left
            (">>> Best difficulty:   12.3K", vec![E::BestDifficulty(12_300.0)]),
            (">>> 32Bit shares: 5", vec![E::Shares32Bit(5)]),
            (">>> Temperature: 53", vec![E::Temperature(53.0)]),
            (">>> Total MHashes: 1234", vec![E::TotalMHashes(1234.0)]),
            (
                ">>> Time mining: 0  01:23:45",
                vec![E::TimeMining { secs: 5025 }],
            ),
            (
                ">>> Time mining: 12  23:59:59",
                vec![E::TimeMining {
                    secs: 12 * 86_400 + 86_399,
                }],
            ),
            // later forks print "%01dd %02d:%02d:%02d"
            (
                ">>> Time mining: 1d 00:00:01",
                vec![E::TimeMining { secs: 86_401 }],
            ),
            // mining.cpp runMonitor(): zero-hash second
            (
                ">>> [i] Miner: newJob>true / inRun>false) - Client: connected>false / subscribed>false / wificonnected>true",
                vec![E::MinerStatus {
                    new_job: true,
                    in_run: false,
                    connected: false,
                    subscribed: false,
                    wifi: true,
                }],
            ),
            (
                ">>> [i] Miner: newJob>false / inRun>true) - Client: connected>true / subscribed>true / wificonnected>false",
                vec![E::MinerStatus {
                    new_job: false,
                    in_run: true,
                    connected: true,
                    subscribed: true,
                    wifi: false,
                }],
            ),
            // mining.cpp checkPoolConnection()
            (
                "Client not connected, trying to connect...",
                vec![E::PoolConnecting],
            ),
            // wManager.cpp: settings echo after Wi-Fi connects
            (
                "PoolString: public-pool.io",
                vec![E::PoolConfigured {
                    pool: "public-pool.io".into(),
                }],
            ),
            (
                "Imposible to connect to : public-pool.io",
                vec![E::PoolUnreachable {
                    pool: "public-pool.io".into(),
                }],
            ),
            (
                "Impossible to connect to : solo.ckpool.org",
                vec![E::PoolUnreachable {
                    pool: "solo.ckpool.org".into(),
                }],
            ),
            // stratum.cpp tx_mining_subscribe(): 1.6.4+ sends the version
            (
                r#"  Sending  : {"id": 1, "method": "mining.subscribe", "params": ["NerdMinerV2/V1.8.3"]}"#,
                vec![E::Subscribe {
                    firmware: Some("V1.8.3".into()),
                }],
            ),
            // stratum.cpp before 1.6.4
            (
                r#"  Sending  : {"id": 1, "method": "mining.subscribe", "params": ["NerdMinerV2"]}"#,
                vec![E::Subscribe { firmware: None }],
            ),
            // stratum.cpp HAN build
            (
                r#"  Sending  : {"id": 1, "method": "mining.subscribe", "params": ["HAN_SOLOminer/V1.7.0"]}"#,
                vec![E::Subscribe {
                    firmware: Some("V1.7.0".into()),
                }],
            ),
            // mining.cpp runWorker() April 2023: wallet as the subscribe param
            (
                r#"  Sending  : {"id": 1, "method": "mining.subscribe", "params": ["bc1qxyz", "password"]}"#,
                vec![E::Subscribe { firmware: None }],
            ),
            // stratum.cpp tx_mining_auth()
            (
                r#"  Sending  : {"params": ["bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rack1", "x"], "id": 2, "method": "mining.authorize"}"#,
                vec![E::Authorize {
                    worker: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rack1".into(),
                }],
            ),
            // stratum.cpp parse_mining_notify() / parse_mining_set_difficulty()
            ("    Parsing Method [MINING NOTIFY]", vec![E::NewJob]),
            ("    Parsing Method [SET DIFFICULTY]", vec![]),
            (
                "    difficulty: 0.000150000000",
                vec![E::PoolDifficulty(0.00015)],
            ),
            ("difficulty: 1024.000000000000", vec![E::PoolDifficulty(1024.0)]),
            // stratum.cpp tx_mining_submit() (both payload layouts)
            (
                r#"  Sending  : {"id":13,"method":"mining.submit","params":["bc1q.rack1","1b6f3","00000001","6745a1c2","3f9a0c12"]}"#,
                vec![E::ShareSubmitted],
            ),
            (
                r#"  Sending  : {"params": ["bc1q", "1b6f3", "00000001", "6745a1c2", "3f9a0c12"], "id": 7, "method": "mining.submit"}"#,
                vec![E::ShareSubmitted],
            ),
            // mining.cpp share report
            (
                "   - Current diff share: 0.033277523750",
                vec![E::ShareDifficulty(0.03327752375)],
            ),
            (
                "   - Current pool diff : 0.000150000000",
                vec![E::PoolDifficulty(0.00015)],
            ),
            (
                "   - TX SHARE: 5e8766ed88daf4016b4013ef254b0c4e010c4759482c9cbc43435cc52eae05cf",
                vec![],
            ),
            // mining.cpp runStratumWorker()
            ("CONGRATULATIONS! Valid block found", vec![E::BlockFound]),
            // mining.cpp runMiner() 2023
            (
                "[WORKER] (Miner) CONGRATULATIONS! Valid completed with nonce: 12 | 0xc",
                vec![E::BlockFound],
            ),
            ("Refuse submition 14", vec![E::ShareRejected { code: 14 }]),
            // fork wording seen in the wild
            (
                "Refuse submition 14 (rejected total: 3)",
                vec![E::ShareRejected { code: 14 }],
            ),
            // stratum.cpp checkError()
            (
                "ERROR: 23 | reason: Difficulty too low ",
                vec![E::StratumError {
                    code: 23,
                    reason: "Difficulty too low".into(),
                }],
            ),
            (
                "ERROR: 21 | reason: (null)",
                vec![E::StratumError {
                    code: 21,
                    reason: "(null)".into(),
                }],
            ),
            ("ERROR: Buffer overflow in tx_mining_subscribe", vec![]),
            // mining.cpp checkPoolInactivity()
            (
                "  Detected more than 2 min without data form stratum server. Closing socket and reopening...",
                vec![E::PoolTimeout],
            ),
            ("  Sending  : KeepAlive suggest_difficulty", vec![E::KeepAlive]),
            // stratum.cpp tx_suggest_difficulty()
            (
                r#"  Sending  : {"id": 3, "method": "mining.suggest_difficulty", "params": [0.00015]}"#,
                vec![E::SuggestDifficulty(0.00015)],
            ),
            (
                r#"  Sending  : {"id":9,"method":"mining.suggest_difficulty","params":[1e-05]}"#,
                vec![E::SuggestDifficulty(1e-5)],
            ),
            // stratum.cpp tx_mining_subscribe() abort
            ("[WORKER] >>>>>>>>> Work aborted", vec![E::WorkAborted]),
            ("[WORKER] (Miner) >>>>>>>>> Worker aborted", vec![E::WorkAborted]),
            // stratum.cpp 2023: every pool message echoed
            (
                r#"  Receiving: {"id":2,"error":null,"result":true}"#,
                vec![E::PoolResponse {
                    id: 2,
                    accepted: true,
                }],
            ),
            (
                r#"  Receiving: {"id": 5, "result": false, "error": null}"#,
                vec![E::PoolResponse {
                    id: 5,
                    accepted: false,
                }],
            ),
            (
                r#"  Receiving: {"id":1,"error":null,"result":[[["mining.notify","6d2a1f"]],"7c3e9a01",4]}"#,
                vec![],
            ),
            (
                r#"  Receiving: {"id":null,"method":"mining.set_difficulty","params":[0.0001]}"#,
                vec![],
            ),
            ("  Received message from pool", vec![]),
            // wManager.cpp wifiManagerProcess()
            (
                "CONNECTED - Current ip: 192.168.1.57",
                vec![E::WifiConnected {
                    ip: "192.168.1.57".into(),
                }],
            ),
            ("[Error] - current status: 6", vec![E::WifiError { status: 6 }]),
            // wManager.cpp init_WifiManager()
            (
                "IP address: 192.168.1.57",
                vec![E::WifiConnected {
                    ip: "192.168.1.57".into(),
                }],
            ),
            ("Config IP Address: 192.168.4.1", vec![]),
            ("*wm:STA IP Address: 192.168.1.57", vec![]),
            ("Entered Configuration Mode", vec![E::SetupMode]),
            ("Config SSID: NerdMinerAP", vec![E::SetupMode]),
            // ESP32 ROM banner (classic and S3 wording)
            (
                "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
                vec![E::Boot {
                    reset_reason: "POWERON_RESET".into(),
                }],
            ),
            (
                "rst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)",
                vec![E::Boot {
                    reset_reason: "POWERON".into(),
                }],
            ),
            (
                "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
                vec![E::Boot {
                    reset_reason: "SW_CPU_RESET".into(),
                }],
            ),
            (
                "rst:0x10,boot:0x13",
                vec![E::Boot {
                    reset_reason: "0x10".into(),
                }],
            ),
            // NerdMinerV2.ino.cpp setup()
            ("NerdMiner v2 starting......", vec![E::Starting]),
            // ESP-IDF panic handler
            (
                "Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled.",
                vec![E::Crash {
                    detail: "Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled.".into(),
                }],
            ),
            (
                "abort() was called at PC 0x400d3f3b on core 1",
                vec![E::Crash {
                    detail: "abort() was called at PC 0x400d3f3b on core 1".into(),
                }],
            ),
            (
                "***ERROR*** A stack overflow in task Stratum has been detected.",
                vec![E::Crash {
                    detail: "stack overflow in task Stratum has been detected.".into(),
                }],
            ),
            ("Brownout detector was triggered", vec![E::Brownout]),
            (
                "E (123456) task_wdt: Task watchdog got triggered. The following tasks did not reset the watchdog in time:",
                vec![E::Watchdog],
            ),
            ("Backtrace: 0x40083a7d:0x3ffb1f50 0x4008d0a5:0x3ffb1f70", vec![]),
            // drivers/storage/nvMemory.cpp
            ("SPIFS: Mounting File System...", vec![]),
            ("SPIFS: Mounted", vec![]),
            ("SPIFS: Mounting failed.", vec![E::SpiffsMountFailed]),
            ("SPIFS: Loading config file", vec![]),
            ("SPIFS: No config file available!", vec![E::ConfigMissing]),
            ("SPIFS: Error parsing config file!", vec![E::ConfigParseError]),
            ("SPIFS: Error opening config file!", vec![E::ConfigOpenError]),
            // drivers/SPIStorage/SPIStorage.h (2023)
            ("Failed to mount FS", vec![E::SpiffsMountFailed]),
            ("nullFailed to load json config", vec![E::ConfigParseError]),
            // mining.cpp saveStat()
            ("[MONITOR] Saving stats", vec![E::StatsSaved]),
            ("[MONITOR] started", vec![]),
            // mining.cpp minerWorkerSw()/minerWorkerHw()
            (
                "[MINER] 0 Started minerWorkerSw Task!",
                vec![E::MinerTaskStarted {
                    index: 0,
                    hardware: false,
                }],
            ),
            (
                "[MINER] 1 Started minerWorkerHw Task!",
                vec![E::MinerTaskStarted {
                    index: 1,
                    hardware: true,
                }],
            ),
            // drivers/displays/esp23_2432s028r.cpp getChipInfo()
            (
                "Chip: ESP32-D0WD-V3",
                vec![E::ChipModel {
                    model: "ESP32-D0WD-V3".into(),
                }],
            ),
            ("ChipRevision: 3", vec![]),
            // The 0.42" OLED C3/S3 boards print the same full block as noDisplayDriver.cpp
            // (oled042DisplayDriver.cpp:53-63 serialPrint()), covered by the cases above.
            // drivers/displays/ssd1306DisplayDriver.cpp:22 (LilyGo T3 after V1.8.3; e3a04b7)
            (
                ">>> Hashrate: 61.69 KH/s | Shares: 3 | Best diff: 1.23K",
                vec![E::CompactStatus {
                    hashrate_khs: 61.69,
                    shares: 3,
                    best_diff: 1230.0,
                }],
            ),
            (
                ">>> Hashrate: 345 KH/s | Shares: 0 | Best diff: 0.0312",
                vec![E::CompactStatus {
                    hashrate_khs: 345.0,
                    shares: 0,
                    best_diff: 0.0312,
                }],
            ),
            (
                "SSD1306 128x64 display driver initialized",
                vec![E::DisplayDriver {
                    name: "SSD1306 128x64".into(),
                }],
            ),
            // drivers/displays/noDisplayDriver.cpp:14, oled042DisplayDriver.cpp:68
            (
                "No display driver initialized",
                vec![E::DisplayDriver { name: "No".into() }],
            ),
            (
                "OLED 0.42 display driver initialized",
                vec![E::DisplayDriver {
                    name: "OLED 0.42".into(),
                }],
            ),
            // SparkMiner: both variants of its 10-s line (H/s, not KH/s)
            (
                "[STATS] Hashrate: 712345.50 H/s | Shares: 7/8 | Ping: 41 ms | Best: 0.0312",
                vec![E::SparkStats {
                    hashrate_khs: 712.3455,
                    accepted: 7,
                    answered: 8,
                    best_diff: Some(0.0312),
                }],
            ),
            (
                "D (123) SparkMiner: [STATS] Hashrate: 1000.00 H/s | Hashes: 123456 | Shares: 0/0 | Best: 0.0001",
                vec![E::SparkStats {
                    hashrate_khs: 1.0,
                    accepted: 0,
                    answered: 0,
                    best_diff: Some(0.0001),
                }],
            ),
            ("[STATS] Core0: 123 hashes, Core1: 456 hashes", vec![]),
            // LeafMiner current.cpp: its own best, NOT the pool difficulty
            (
                "I (5000) current: New highest hashed difficulty: 0.000123000000",
                vec![E::HighestHashedDifficulty(0.000123)],
            ),
            // wManager.cpp:276, :307, :156, :124; mining.cpp:1199
            ("failed to connect and hit timeout", vec![E::WifiTimeout]),
            (
                "Failed to connect to configured WIFI, and hit timeout",
                vec![E::WifiTimeout],
            ),
            (
                "Button pressed to force start config mode",
                vec![E::ConfigButton],
            ),
            ("Erasing Config, restarting", vec![E::ConfigErased]),
            ("[MONITOR] Resetting NVS stats", vec![E::StatsReset]),
            // nvMemory.cpp: the /config.json dump at boot
            (
                r#"  "saveStatsToNVS": true,"#,
                vec![E::SaveStatsSetting { on: true }],
            ),
            (
                r#"  "saveStatsToNVS": false,"#,
                vec![E::SaveStatsSetting { on: false }],
            ),
            // stratum.cpp:144 + checkError() stratum.cpp:42: the pool refuses the worker
            (
                r#"  Receiving: {"id":2,"result":false,"error":[24,"Unauthorized worker",null]}"#,
                vec![E::PoolResponse {
                    id: 2,
                    accepted: false,
                }],
            ),
            (
                "ERROR: 24 | reason: Unauthorized worker ",
                vec![E::StratumError {
                    code: 24,
                    reason: "Unauthorized worker".into(),
                }],
            ),
            (
                "ERROR: 25 | reason: Not subscribed ",
                vec![E::StratumError {
                    code: 25,
                    reason: "Not subscribed".into(),
                }],
            ),
            // lines that must stay raw
            ("WiFi connected", vec![]),
            ("portNumber: 21496", vec![]),
            ("*wm:AutoConnect: SUCCESS", vec![]),
            ("ets Jun  8 2016 00:22:57", vec![]),
            ("", vec![]),
        ]
    }

    #[test]
    fn table() {
        for (line, want) in cases() {
            assert_eq!(parse_line(line), want, "line: {line:?}");
        }
    }

    #[test]
    fn two_events_in_one_line_in_order() {
        let line = "CONNECTED - Current ip: 10.0.0.2>>> Completed 2 share(s), 5 Khashes, avg. hashrate 50.00 KH/s";
        assert_eq!(
            parse_line(line),
            vec![
                E::WifiConnected {
                    ip: "10.0.0.2".into()
                },
                E::Progress {
                    shares: 2,
                    khashes: 5,
                    hashrate_khs: 50.0
                }
            ]
        );
        let line = ">>> Valid blocks: 1>>> Block templates: 9";
        assert_eq!(
            parse_line(line),
            vec![E::ValidBlocks(1), E::BlockTemplates(9)]
        );
    }

    #[test]
    fn damaged_lines_yield_nothing() {
        for line in [
            ">>> Completed share(s), 61 Khashes, avg. hashrate 61.69 KH/s",
            ">>> Completed 1 share(s), 61 Kha",
            ">>> Completed 1 share(s), 61 Khashes, avg. hashrate nan KH/s",
            ">>> Time mining: 0  01:99:45",
            ">>> Time mining: 0  01:",
            ">>> [i] Miner: newJob>maybe",
            ">>> Best difficulty: K",
            ">>> Valid blocks: 99999999999999999999999",
            "ERROR: 23 reason missing",
            "[Error] - current status: 99999999999",
            "rst:0x",
            "CONNECTED - Current ip: (IP unset)",
            r#"  Sending  : {"id": 1, "method": "mining.subscribe", "params": ["#,
            r#"  Sending  : {"id": 1, "method": "mining.authorize"}"#,
        ] {
            assert_eq!(parse_line(line), vec![], "line: {line:?}");
        }
    }

    #[test]
    fn every_variant_round_trips_with_kind_tag() {
        let all = vec![
            E::Progress {
                shares: 1,
                khashes: 2,
                hashrate_khs: 3.5,
            },
            E::ValidBlocks(1),
            E::BlockTemplates(2),
            E::BestDifficulty(1.5),
            E::Shares32Bit(3),
            E::Temperature(50.0),
            E::TotalMHashes(7.0),
            E::TimeMining { secs: 9 },
            E::MinerStatus {
                new_job: true,
                in_run: false,
                connected: true,
                subscribed: false,
                wifi: true,
            },
            E::PoolConnecting,
            E::PoolUnreachable { pool: "p".into() },
            E::PoolConfigured { pool: "p".into() },
            E::Subscribe { firmware: None },
            E::Authorize { worker: "w".into() },
            E::NewJob,
            E::PoolDifficulty(0.1),
            E::ShareSubmitted,
            E::ShareDifficulty(0.2),
            E::ShareRejected { code: 4 },
            E::BlockFound,
            E::StratumError {
                code: 21,
                reason: "r".into(),
            },
            E::PoolTimeout,
            E::WifiConnected {
                ip: "1.2.3.4".into(),
            },
            E::WifiError { status: 6 },
            E::Boot {
                reset_reason: "POWERON_RESET".into(),
            },
            E::Starting,
            E::Crash { detail: "d".into() },
            E::Brownout,
            E::Watchdog,
            E::SetupMode,
            E::SpiffsMountFailed,
            E::ConfigMissing,
            E::ConfigParseError,
            E::ConfigOpenError,
            E::StatsSaved,
            E::KeepAlive,
            E::SuggestDifficulty(0.3),
            E::WorkAborted,
            E::MinerTaskStarted {
                index: 0,
                hardware: true,
            },
            E::ChipModel { model: "m".into() },
            E::PoolResponse {
                id: 2,
                accepted: true,
            },
            E::CompactStatus {
                hashrate_khs: 1.0,
                shares: 2,
                best_diff: 3.0,
            },
            E::SparkStats {
                hashrate_khs: 1.0,
                accepted: 1,
                answered: 2,
                best_diff: None,
            },
            E::HighestHashedDifficulty(0.5),
            E::WifiTimeout,
            E::ConfigButton,
            E::ConfigErased,
            E::StatsReset,
            E::SaveStatsSetting { on: true },
            E::DisplayDriver { name: "No".into() },
        ];
        for ev in all {
            let v = serde_json::to_value(&ev).expect("serializable");
            assert!(v["kind"].is_string(), "{ev:?} -> {v}");
            // The database stores events as JSON and the summarizer reads them back.
            let back: MinerEvent = serde_json::from_value(v.clone()).expect("deserializable");
            assert_eq!(back, ev, "{v}");
        }
        assert_eq!(
            serde_json::to_string(&E::ValidBlocks(3)).expect("json"),
            r#"{"kind":"valid_blocks","value":3}"#
        );
        assert_eq!(
            serde_json::to_string(&E::Progress {
                shares: 1,
                khashes: 2,
                hashrate_khs: 3.5
            })
            .expect("json"),
            r#"{"kind":"progress","shares":1,"khashes":2,"hashrate_khs":3.5}"#
        );
        assert_eq!(
            serde_json::to_string(&E::PoolConnecting).expect("json"),
            r#"{"kind":"pool_connecting"}"#
        );
    }

    #[test]
    fn number_scanners() {
        assert_eq!(parse_f64(" 12.5 KH/s"), Some((12.5, " KH/s")));
        assert_eq!(parse_f64("-3"), Some((-3.0, "")));
        assert_eq!(parse_f64(".5x"), Some((0.5, "x")));
        assert_eq!(parse_f64("1e"), Some((1.0, "e")));
        assert_eq!(parse_f64("2.5E+3"), Some((2500.0, "")));
        assert_eq!(parse_f64("."), None);
        assert_eq!(parse_f64("ovf"), None);
        assert_eq!(parse_f64("-"), None);
        assert_eq!(parse_i64("-12 x"), Some((-12, " x")));
        assert_eq!(parse_i64("+"), None);
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_uptime("01:00:00"), Some(3600));
        assert_eq!(parse_uptime("99999999999999999  00:00:00"), None);
    }

    #[test]
    fn json_string_escapes() {
        assert_eq!(
            json_string(r#""a\"b\\c\u0041""#),
            Some(("a\"b\\cA".into(), 15))
        );
        assert_eq!(json_string(r#""open"#), None);
        assert_eq!(json_string(r#""bad\u00zz""#), None);
        assert_eq!(json_string("nope"), None);
    }

    #[test]
    fn mask_authorize_password() {
        let line = r#"  Sending  : {"params": ["bc1qwallet.rack1", "s3cret"], "id": 2, "method": "mining.authorize"}"#;
        assert_eq!(
            mask_secrets(line),
            r#"  Sending  : {"params": ["bc1qwallet.rack1", "***"], "id": 2, "method": "mining.authorize"}"#
        );
        let compact = r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#;
        assert_eq!(
            mask_secrets(compact),
            r#"{"id":2,"method":"mining.authorize","params":["w","***"]}"#
        );
        // The wallet is not a secret and stays.
        assert!(mask_secrets(line).contains("bc1qwallet.rack1"));
    }

    #[test]
    fn mask_echo_and_json_dump() {
        assert_eq!(mask_secrets("poolPassword: x"), "poolPassword: ***");
        assert_eq!(mask_secrets("poolPassword: a b c"), "poolPassword: ***");
        assert_eq!(
            mask_secrets(r#"  "poolPassword": "x","#),
            r#"  "poolPassword": "***","#
        );
        assert_eq!(
            mask_secrets(r#"  "wifiPassword": "hunter2""#),
            r#"  "wifiPassword": "***""#
        );
        assert_eq!(
            mask_secrets(r#"{"pool_pass":"p\"q","wallet":"w"}"#),
            r#"{"pool_pass":"***","wallet":"w"}"#
        );
        assert_eq!(
            mask_secrets(r#"  "poolPassword": "cut off here"#),
            r#"  "poolPassword": "***"#
        );
        assert_eq!(
            mask_secrets("*wm:[3] Using Password: abc"),
            "*wm:[3] Using Password: ***"
        );
    }

    #[test]
    fn mask_leaves_other_lines_borrowed() {
        for line in [
            ">>> Completed 0 share(s), 61 Khashes, avg. hashrate 61.69 KH/s",
            "poolPassword:",
            r#"  "poolPassword": "","#,
            "Pool password",
            r#"  Sending  : {"id": 1, "method": "mining.subscribe", "params": ["bc1q", "password"]}"#,
            r#"  "btcString": "bc1qpass","#,
        ] {
            assert!(
                matches!(mask_secrets(line), Cow::Borrowed(_)),
                "line: {line:?}"
            );
        }
    }

    #[test]
    fn sample_logs_parse_without_surprises() {
        let Some(dir) = sample_dir() else {
            eprintln!("skipping: sample logs not found");
            return;
        };
        let log = std::fs::read_to_string(dir.join("sample-nodisplay.log")).unwrap_or_default();
        let events: Vec<MinerEvent> = log.lines().flat_map(parse_line).collect();
        assert!(events.contains(&E::Subscribe {
            firmware: Some("V1.8.3".into())
        }));
        assert!(events.contains(&E::TimeMining { secs: 83 }));
        assert!(events.contains(&E::BestDifficulty(0.0333)));
        assert!(events.contains(&E::ShareSubmitted));
        for line in log.lines() {
            assert!(!mask_secrets(line).contains(r#""x"]"#));
        }
    }

    fn sample_dir() -> Option<std::path::PathBuf> {
        let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .take(4)
            .map(|a| a.join("shared/nerdminer"))
            .find(|p| p.join("sample-nodisplay.log").is_file())
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            let _ = parse_line(&s);
            let _ = mask_secrets(&s);
        }

        #[test]
        fn marker_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
            Just(">>> "), Just("Completed "), Just("share(s),"), Just("Khashes,"),
            Just("avg. hashrate"), Just(" 1"), Just("."), Just("e"), Just(":"), Just("\""),
            Just("params"), Just("["), Just("mining.authorize"), Just("mining.subscribe"),
            Just("Receiving:"), Just("rst:0x"), Just("("), Just(")"), Just("difficulty: "),
            Just("Best "), Just("ERROR: "), Just("|"), Just("reason:"), Just("Password:"),
            Just("\\"), Just("u"), Just("é"), Just("[MINER] "), Just("Started minerWorker"),
            Just("Time mining:"), Just("[i] Miner:"), Just("newJob>"), Just("true"),
            Just(">>> Hashrate:"), Just(" KH/s"), Just("| Shares:"), Just("Best diff:"),
            Just("[STATS] Hashrate:"), Just(" H/s"), Just("/"), Just("Best:"),
            Just("\"saveStatsToNVS\""), Just(" display driver initialized"),
            Just("New highest hashed difficulty:"),
        ], 0..40)) {
            let s: String = parts.concat();
            let _ = parse_line(&s);
            let _ = mask_secrets(&s);
        }
    }
}
