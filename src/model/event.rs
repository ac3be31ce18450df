//! What a miner said, as data: the [`MinerEvent`] type. Pure, so that the database (which stores
//! events as JSON), the summarizer and the pages can all use it without depending on the
//! reader; `miner::parse` is what makes events out of log lines.

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
    /// One reading of an AxeOS miner's `GET /api/system/info` (Bitaxe, NerdQAxe), made by
    /// `axeos::parse`; its counters run since the miner's boot like the NerdMiner's.
    AxeOsStats {
        /// Hashrate in KH/s (AxeOS reports GH/s).
        hashrate_khs: f64,
        /// `sharesAccepted`.
        accepted: u64,
        /// `sharesRejected`.
        rejected: u64,
        /// `bestSessionDiff`: the best share since boot (`bestDiff`, the all-time best, is the
        /// baseline the records already hold).
        best_diff: Option<f64>,
    },
    /// An AxeOS reading named the firmware version (`version` of `/api/system/info`). Not a
    /// [`MinerEvent::Subscribe`]: it says nothing about the pool, only that the miner answered
    /// over the network.
    FirmwareVersion {
        /// As the firmware reports it (`v2.12.0`).
        version: String,
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
