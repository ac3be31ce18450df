//! The parser's and the masker's cases, one table of real firmware lines.

use super::mask::*;
use super::rules::*;
use super::scan::*;
use crate::model::event::MinerEvent;
use crate::model::event::MinerEvent as E;
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
fn parsing_into_a_list_appends_after_what_it_holds() {
    let mut out = vec![E::ValidBlocks(7)];
    super::parse_line_into(">>> Valid blocks: 1>>> Block templates: 9", &mut out);
    super::parse_line_into("nothing here", &mut out);
    super::parse_line_into(">>> Valid blocks: 2", &mut out);
    assert_eq!(
        out,
        vec![
            E::ValidBlocks(7),
            E::ValidBlocks(1),
            E::BlockTemplates(9),
            E::ValidBlocks(2)
        ]
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
            matches!(mask_secrets(line), std::borrow::Cow::Borrowed(_)),
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
