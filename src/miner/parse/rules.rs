//! The marker table: every firmware format string that matters, and the handler that reads
//! the event after it.

use super::scan::*;
use crate::model::event::MinerEvent;

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
    let mut found = Vec::new();
    parse_line_into(line, &mut found);
    found
}

/// [`parse_line`] appending to `out`, in the order the events appear in the line: ingest
/// reuses one list for every line instead of allocating one per line.
pub fn parse_line_into(line: &str, out: &mut Vec<MinerEvent>) {
    let Some(markers) = MARKERS.as_ref() else {
        return;
    };
    let base = out.len();
    // Where each event's marker starts, kept only once a second event turns up (rare).
    let mut starts: Vec<usize> = Vec::new();
    let mut first_start = 0;
    // One pass finds every marker, overlapping ones included. Needles are ASCII, so every
    // match starts and ends on a char boundary.
    for m in markers.find_overlapping_iter(line) {
        let Some(rule) = RULES.get(m.pattern().as_usize()) else {
            continue;
        };
        if let Some(ev) = (rule.handler)(line, m.start(), m.end()) {
            if out.len() == base {
                first_start = m.start();
            } else {
                if starts.is_empty() {
                    starts.push(first_start);
                }
                starts.push(m.start());
            }
            out.push(ev);
        }
    }
    if starts.len() > 1 {
        // Matches come in the order they end: report events in the order they start.
        let mut tail: Vec<(usize, MinerEvent)> =
            starts.into_iter().zip(out.drain(base..)).collect();
        tail.sort_by_key(|(pos, _)| *pos);
        out.extend(tail.into_iter().map(|(_, ev)| ev));
    }
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
