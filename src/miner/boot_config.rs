//! Recovers a miner's configuration from what it prints while booting.
//!
//! NerdMiner_v2 reads `/config.json` from SPIFFS at boot and pretty-prints it on serial
//! right after `SPIFS: Loading config file` (2023 releases: after `Opened configuration
//! file`, with no newline after the closing brace). That dump is the only way to see a
//! miner's configuration without reflashing it, so it is captured verbatim: key order and
//! unknown keys are kept. When the dump is missing or unreadable, the `PoolString:` …
//! lines echoed after Wi-Fi connects are the fallback.
//!
//! Lines are fed raw (unmasked): the captured map holds the pool password as configured.

use serde_json::{Map, Value};

use super::parse::parse_line;
use crate::model::event::MinerEvent;

/// Give up on a dump that runs past this many bytes (the firmware's buffer is 512-768 B).
const MAX_CAPTURE_BYTES: usize = 16 * 1024;

/// Lines to wait for the opening `{` after the dump was announced.
const MAX_LINES_BEFORE_OPEN: usize = 64;

/// What a boot log said about the miner's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum BootConfig {
    /// The configuration: `/config.json` as dumped, or rebuilt from the echo lines.
    Captured(Map<String, Value>),
    /// SPIFFS holds no `/config.json` (or could not be mounted): the miner is unconfigured.
    NoConfigFile,
    /// `/config.json` exists but could not be read or parsed, or its dump never ended.
    ParseError,
    /// The miner opened its Wi-Fi setup portal before any configuration was seen.
    SetupMode,
}

/// Where the capture stands in the boot sequence.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Waiting for the dump to be announced.
    Idle,
    /// The dump was announced; waiting for its `{` (lines seen so far).
    AwaitOpen(usize),
    /// Inside the dump, at this brace/bracket depth.
    Collecting(usize),
    /// The dump was damaged on the way (interleaved output); only echo lines are left.
    Garbled,
    /// The outcome was returned.
    Done,
}

/// Values echoed after Wi-Fi connects (`wManager.cpp`), printed twice; the last wins.
#[derive(Debug, Clone, Default, PartialEq)]
struct Echo {
    pool: Option<String>,
    port: Option<i64>,
    password: Option<String>,
    wallet: Option<String>,
    timezone: Option<i64>,
    invert: Option<bool>,
    brightness: Option<i64>,
}

impl Echo {
    fn is_empty(&self) -> bool {
        *self == Echo::default()
    }

    /// The echo as config.json would hold it, keys in the firmware's order.
    fn to_map(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(v) = &self.pool {
            m.insert("poolString".into(), Value::from(v.as_str()));
        }
        if let Some(v) = self.port {
            m.insert("portNumber".into(), Value::from(v));
        }
        if let Some(v) = &self.password {
            m.insert("poolPassword".into(), Value::from(v.as_str()));
        }
        if let Some(v) = &self.wallet {
            m.insert("btcString".into(), Value::from(v.as_str()));
        }
        if let Some(v) = self.timezone {
            m.insert("gmtZone".into(), Value::from(v));
        }
        if let Some(v) = self.invert {
            m.insert("invertColors".into(), Value::from(v));
        }
        if let Some(v) = self.brightness {
            m.insert("Brightness".into(), Value::from(v));
        }
        m
    }

    /// Records the line if it is one of the echo lines.
    fn record(&mut self, line: &str) {
        let line = line.trim_start();
        // Framing trims trailing blanks, so an empty value arrives as `poolPassword:`.
        let value = |key: &str| {
            line.strip_prefix(key)
                .map(|v| v.strip_prefix(' ').unwrap_or(v))
        };
        if let Some(v) = value("PoolString:") {
            self.pool = Some(v.to_owned());
        } else if let Some(v) = value("portNumber:") {
            self.port = v.trim().parse().ok();
        } else if let Some(v) = value("poolPassword:") {
            self.password = Some(v.to_owned());
        } else if let Some(v) = value("btcString:") {
            self.wallet = Some(v.to_owned());
        } else if let Some(v) = value("TimeZone fromUTC:") {
            self.timezone = v.trim().parse().ok();
        } else if let Some(v) = value("Invert Colors:") {
            self.invert = match v.trim() {
                "1" | "true" => Some(true),
                "0" | "false" => Some(false),
                _ => None,
            };
        } else if let Some(v) = value("Brightness:") {
            self.brightness = v.trim().parse().ok();
        }
    }
}

/// Follows one boot log and reports the configuration it reveals.
#[derive(Debug, Clone)]
pub struct BootConfigCapture {
    state: State,
    /// JSON text collected so far.
    json: String,
    /// Bytes seen since the dump opened, interleaved lines included.
    seen: usize,
    echo: Echo,
}

impl Default for BootConfigCapture {
    fn default() -> Self {
        Self::new()
    }
}

impl BootConfigCapture {
    /// A capture that has seen nothing yet.
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            json: String::new(),
            seen: 0,
            echo: Echo::default(),
        }
    }

    /// Feed one cleaned line (raw, before masking). Returns Some once the outcome is known.
    ///
    /// One outcome per boot: after it, `None` until a reboot (ROM banner or
    /// `NerdMiner v2 starting`) starts a new capture; a reboot before it starts over too.
    pub fn feed(&mut self, line: &str) -> Option<BootConfig> {
        if self.state == State::Done {
            // Only a reboot can make news now; keep this check cheap.
            if line.contains("rst:0x") || line.contains("NerdMiner v2 starting") {
                *self = Self::new();
            }
            return None;
        }
        if let State::Collecting(depth) = self.state {
            self.seen += line.len() + 1;
            if self.seen > MAX_CAPTURE_BYTES {
                return self.conclude(BootConfig::ParseError);
            }
            if let Some(scan) = scan_json_line(line, depth) {
                self.json.push_str(&line[..scan.end]);
                self.json.push('\n');
                if scan.depth > 0 {
                    self.state = State::Collecting(scan.depth);
                    return None;
                }
                return match serde_json::from_str::<Value>(&self.json) {
                    Ok(Value::Object(map)) => self.conclude(BootConfig::Captured(map)),
                    // Lines went missing; the firmware's echo can still tell the story.
                    _ => {
                        self.json.clear();
                        self.state = State::Garbled;
                        None
                    }
                };
            }
            // Not JSON: another task's output, or a marker handled below.
        }

        self.echo.record(line);

        if let State::AwaitOpen(waited) = self.state {
            if line.trim_start().starts_with('{') && scan_json_line(line, 0).is_some() {
                self.json.clear();
                self.seen = 0;
                self.state = State::Collecting(0);
                return self.feed(line);
            }
            self.state = if waited >= MAX_LINES_BEFORE_OPEN {
                State::Garbled
            } else {
                State::AwaitOpen(waited + 1)
            };
        }

        // `SPIFS: Loading config file` (nvMemory.cpp) / `Opened configuration file`
        // (SPIStorage.h) announce the dump.
        if line.contains("SPIFS: Loading config file") || line.contains("Opened configuration file")
        {
            if matches!(self.state, State::Idle | State::Garbled) {
                self.state = State::AwaitOpen(0);
            }
            return None;
        }
        // The tasks start once setup() is over: no dump is coming any more.
        if line.contains("Initiating tasks") && !self.echo.is_empty() {
            let map = self.echo.to_map();
            return self.conclude(BootConfig::Captured(map));
        }

        for ev in parse_line(line) {
            let outcome = match ev {
                MinerEvent::Boot { .. } | MinerEvent::Starting => {
                    *self = Self::new();
                    continue;
                }
                MinerEvent::ConfigMissing | MinerEvent::SpiffsMountFailed => {
                    BootConfig::NoConfigFile
                }
                MinerEvent::ConfigParseError | MinerEvent::ConfigOpenError => {
                    BootConfig::ParseError
                }
                MinerEvent::SetupMode => BootConfig::SetupMode,
                _ => continue,
            };
            return self.conclude(outcome);
        }
        None
    }

    /// Called when the caller gives up waiting: best effort from the echo lines (PoolString:, portNumber:, poolPassword:, btcString:, TimeZone fromUTC:, Invert Colors:, Brightness:) mapped to config.json keys (poolString, portNumber, poolPassword, btcString, gmtZone, invertColors, Brightness) with the right JSON types, or None.
    ///
    /// Also `None` when [`feed`](Self::feed) already returned this boot's outcome.
    pub fn finish(self) -> Option<BootConfig> {
        if self.state == State::Done || self.echo.is_empty() {
            return None;
        }
        Some(BootConfig::Captured(self.echo.to_map()))
    }

    fn conclude(&mut self, outcome: BootConfig) -> Option<BootConfig> {
        self.state = State::Done;
        self.json = String::new();
        Some(outcome)
    }
}

/// How a line of a pretty-printed JSON dump moves the nesting depth.
struct JsonLine {
    /// Depth after the line (0: the root object closed on it).
    depth: usize,
    /// Bytes of the line that belong to the dump (text after the root's `}` is not).
    end: usize,
}

/// Checks that `line` is made only of JSON tokens and tracks nesting from `depth`.
///
/// `None` for anything else, which is how interleaved task output is told apart.
fn scan_json_line(line: &str, mut depth: usize) -> Option<JsonLine> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut tokens = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' => {
                i += 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                i += 1;
                if depth == 0 {
                    return Some(JsonLine { depth, end: i });
                }
            }
            b':' | b',' => i += 1,
            b'"' => i += string_len(&b[i..])?,
            b'-' | b'0'..=b'9' => i += number_len(&b[i..])?,
            b't' | b'f' | b'n' => {
                let word = ["true", "false", "null"]
                    .into_iter()
                    .find(|w| b[i..].starts_with(w.as_bytes()))?;
                i += word.len();
            }
            _ => return None,
        }
        tokens += 1;
        // The dump starts at depth 0 with `{`; a bare value outside it is not the dump.
        if depth == 0 {
            return None;
        }
    }
    (tokens > 0).then_some(JsonLine {
        depth,
        end: b.len(),
    })
}

/// Length of the JSON string literal at the start of `b`, quotes included.
fn string_len(b: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// Length of the JSON number at the start of `b`.
fn number_len(b: &[u8]) -> Option<usize> {
    let n = b
        .iter()
        .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .count();
    // Must contain a digit; serde_json judges the rest when the object is parsed.
    b[..n].iter().any(u8::is_ascii_digit).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(lines: &[&str]) -> (Option<BootConfig>, usize) {
        let mut cap = BootConfigCapture::new();
        for (i, l) in lines.iter().enumerate() {
            if let Some(out) = cap.feed(l) {
                return (Some(out), i);
            }
        }
        (cap.finish(), lines.len())
    }

    fn captured(out: Option<BootConfig>) -> Map<String, Value> {
        match out {
            Some(BootConfig::Captured(m)) => m,
            other => panic!("expected a captured config, got {other:?}"),
        }
    }

    const DUMP: &[&str] = &[
        "SPIFS: Mounting File System...",
        "SPIFS: Mounted",
        "SPIFS: Loading config file",
        "{",
        "  \"poolString\": \"public-pool.io\",",
        "  \"portNumber\": 21496,",
        "  \"poolPassword\": \"x\",",
        "  \"btcString\": \"bc1qexample.rack1\",",
        "  \"gmtZone\": 1,",
        "  \"saveStatsToNVS\": false,",
        "  \"invertColors\": false,",
        "  \"Brightness\": 250",
        "}",
        "AllDone: ",
    ];

    #[test]
    fn captures_dump_in_order() {
        let (out, at) = run(DUMP);
        assert_eq!(at, 12, "outcome known at the closing brace");
        let m = captured(out);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "poolString",
                "portNumber",
                "poolPassword",
                "btcString",
                "gmtZone",
                "saveStatsToNVS",
                "invertColors",
                "Brightness"
            ]
        );
        assert_eq!(m["portNumber"], 21496);
        assert_eq!(m["saveStatsToNVS"], false);
        assert_eq!(m["poolPassword"], "x");
    }

    #[test]
    fn keeps_unknown_and_nested_keys_and_ignores_interleaved_lines() {
        let lines = [
            "SPIFS: Loading config file",
            "[   812][W][WiFiGeneric.cpp:1062] setTxPower(): no wifi",
            "{",
            "  \"zKey\": \"first\",",
            "*wm:AutoConnect",
            "  \"list\": [",
            "    1,",
            ">>> Completed 0 share(s), 0 Khashes, avg. hashrate 0.00 KH/s",
            "    -2.5e3",
            "  ],",
            "  \"obj\": {",
            "    \"a\": null",
            "  },",
            "  \"aKey\": true",
            "}",
        ];
        let m = captured(run(&lines).0);
        let keys: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(keys, ["zKey", "list", "obj", "aKey"]);
        assert_eq!(m["list"][1], -2500.0);
        assert!(m["obj"]["a"].is_null());
    }

    #[test]
    fn old_firmware_dump_without_newline() {
        // SPIStorage.h (2023): serializeJsonPretty() then println("Parsing JSON").
        let lines = [
            "Mounting File System...",
            "mounted file system",
            "reading config file",
            "Opened configuration file",
            "{",
            "  \"poolString\": \"solo.ckpool.org\",",
            "  \"portNumber\": 3333,",
            "  \"btcString\": \"bc1q\",",
            "  \"gmtZone\": 2",
            "}Parsing JSON",
        ];
        let m = captured(run(&lines).0);
        assert_eq!(m.len(), 4);
        assert_eq!(m["gmtZone"], 2);
    }

    #[test]
    fn empty_object() {
        let m = captured(run(&["SPIFS: Loading config file", "{}"]).0);
        assert!(m.is_empty());
    }

    #[test]
    fn firmware_parse_error() {
        // nvMemory.cpp prints the (empty) document, then the error.
        let lines = [
            "SPIFS: Loading config file",
            "null",
            "SPIFS: Error parsing config file!",
        ];
        assert_eq!(run(&lines), (Some(BootConfig::ParseError), 2));
        let old = [
            "Opened configuration file",
            "nullFailed to load json config",
        ];
        assert_eq!(run(&old).0, Some(BootConfig::ParseError));
        let open = ["SPIFS: Error opening config file!"];
        assert_eq!(run(&open).0, Some(BootConfig::ParseError));
    }

    #[test]
    fn no_config_and_mount_failure() {
        let lines = ["SPIFS: Mounted", "SPIFS: No config file available!"];
        assert_eq!(run(&lines).0, Some(BootConfig::NoConfigFile));
        assert_eq!(
            run(&["SPIFS: Mounting failed."]).0,
            Some(BootConfig::NoConfigFile)
        );
    }

    #[test]
    fn setup_mode_before_any_config() {
        let lines = ["AllDone: ", "*wm:AutoConnect", "Entered Configuration Mode"];
        assert_eq!(run(&lines).0, Some(BootConfig::SetupMode));
    }

    #[test]
    fn oversized_dump_gives_up() {
        let mut cap = BootConfigCapture::new();
        assert_eq!(cap.feed("SPIFS: Loading config file"), None);
        assert_eq!(cap.feed("{"), None);
        let filler = format!("  \"k\": \"{}\",", "a".repeat(1000));
        let mut out = None;
        for _ in 0..20 {
            out = cap.feed(&filler);
            if out.is_some() {
                break;
            }
        }
        assert_eq!(out, Some(BootConfig::ParseError));
        assert_eq!(cap.feed("}"), None, "done means done");
        assert_eq!(cap.finish(), None);
    }

    #[test]
    fn damaged_dump_falls_back_to_echo() {
        let mut lines: Vec<&str> = vec![
            "SPIFS: Loading config file",
            "{",
            "  \"poolString\": \"public-pool.io\",",
            // A line lost its comma to interleaving: serde rejects the object.
            "  \"portNumber\": 3333",
            "  \"btcString\": \"bc1q\"",
            "}",
            "WiFi connected",
            "IP address: 192.168.1.5",
            "PoolString: public-pool.io",
            "portNumber: 3333",
            "poolPassword:",
            "btcString: bc1q",
            "TimeZone fromUTC: -5",
        ];
        lines.push("Initiating tasks...");
        let (out, at) = run(&lines);
        assert_eq!(at, lines.len() - 1);
        let m = captured(out);
        assert_eq!(
            Value::Object(m),
            serde_json::json!({
                "poolString": "public-pool.io",
                "portNumber": 3333,
                "poolPassword": "",
                "btcString": "bc1q",
                "gmtZone": -5
            })
        );
    }

    #[test]
    fn finish_uses_echo_with_types_and_order() {
        let mut cap = BootConfigCapture::new();
        for l in [
            "Brightness: 128",
            "Invert Colors: 1",
            "TimeZone fromUTC: 2",
            "btcString: bc1q.w",
            "poolPassword: pw",
            "portNumber: 3333",
            "PoolString: pool.example",
        ] {
            assert_eq!(cap.feed(l), None);
        }
        let m = captured(cap.finish());
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#"{"poolString":"pool.example","portNumber":3333,"poolPassword":"pw","btcString":"bc1q.w","gmtZone":2,"invertColors":true,"Brightness":128}"#
        );
    }

    #[test]
    fn finish_without_anything_is_none() {
        let mut cap = BootConfigCapture::new();
        cap.feed(">>> Completed 0 share(s), 0 Khashes, avg. hashrate 0.00 KH/s");
        assert_eq!(cap.finish(), None);
    }

    #[test]
    fn reboot_starts_over() {
        let lines = [
            "SPIFS: Loading config file",
            "{",
            "  \"poolString\": \"a\",",
            "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
            "NerdMiner v2 starting......",
            "SPIFS: Loading config file",
            "{",
            "  \"poolString\": \"b\"",
            "}",
        ];
        let m = captured(run(&lines).0);
        assert_eq!(m["poolString"], "b");
    }

    #[test]
    fn one_outcome_per_boot() {
        let mut cap = BootConfigCapture::new();
        let first: Vec<_> = DUMP.iter().filter_map(|l| cap.feed(l)).collect();
        assert_eq!(first.len(), 1);
        assert_eq!(cap.feed("SPIFS: No config file available!"), None);
        assert_eq!(
            cap.feed("rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)"),
            None
        );
        assert_eq!(cap.feed("NerdMiner v2 starting......"), None);
        assert_eq!(
            cap.feed("SPIFS: No config file available!"),
            Some(BootConfig::NoConfigFile)
        );
    }

    #[test]
    fn scan_json_line_cases() {
        let d = |l: &str, d: usize| scan_json_line(l, d).map(|s| (s.depth, s.end));
        assert_eq!(d("{", 0), Some((1, 1)));
        assert_eq!(d("  \"a\": {", 1), Some((2, 8)));
        assert_eq!(d("  \"a\\\"b\": \"}\",", 1), Some((1, 14)));
        assert_eq!(d("}", 1), Some((0, 1)));
        assert_eq!(d("}Parsing JSON", 1), Some((0, 1)));
        assert_eq!(d("null", 0), None);
        assert_eq!(d("}", 0), None);
        assert_eq!(d("[MONITOR] started", 1), None);
        assert_eq!(d("  \"open", 1), None);
        assert_eq!(d("   ", 1), None);
        assert_eq!(d("truex", 1), None);
    }

    fn sample(name: &str) -> Option<String> {
        let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = manifest
            .ancestors()
            .take(4)
            .map(|a| a.join("shared/nerdminer"))
            .find(|p| p.is_dir());
        match dir.and_then(|d| std::fs::read(d.join(name)).ok()) {
            Some(bytes) => {
                // Run the real pipeline: bytes → framer → capture.
                let mut framer = super::super::framing::LineFramer::default();
                let mut lines = Vec::new();
                for chunk in bytes.chunks(7) {
                    framer.push(chunk, &mut lines);
                }
                framer.finish(&mut lines);
                Some(
                    lines
                        .into_iter()
                        .map(|l| l.text)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
            None => {
                eprintln!("skipping: sample log {name} not found (../shared/nerdminer)");
                None
            }
        }
    }

    fn run_sample(text: &str) -> Option<BootConfig> {
        let mut cap = BootConfigCapture::new();
        for line in text.lines() {
            if let Some(out) = cap.feed(line) {
                return Some(out);
            }
        }
        cap.finish()
    }

    #[test]
    fn sample_logs() {
        let expected = serde_json::json!({
            "poolString": "public-pool.io",
            "portNumber": 21496,
            "poolPassword": "x",
            "btcString": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rack1",
            "gmtZone": 1,
            "saveStatsToNVS": false,
            "invertColors": false,
            "Brightness": 250
        });
        for name in [
            "sample-boot-cyd.log",
            "sample-nodisplay.log",
            "sample-pool-unreachable.log",
        ] {
            let Some(text) = sample(name) else { return };
            let m = captured(run_sample(&text));
            assert_eq!(Value::Object(m.clone()), expected, "{name}");
            assert_eq!(m.keys().next().map(String::as_str), Some("poolString"));
        }
        let Some(text) = sample("sample-setup-mode.log") else {
            return;
        };
        assert_eq!(run_sample(&text), Some(BootConfig::NoConfigFile));
    }

    #[test]
    fn sample_log_echo_fallback_matches_dump() {
        let Some(text) = sample("sample-boot-cyd.log") else {
            return;
        };
        // Drop the dump: only the echo lines remain.
        let without_dump: Vec<&str> = text
            .lines()
            .filter(|l| {
                !(l.starts_with('{')
                    || l.starts_with('}')
                    || l.starts_with("  \"")
                    || l.contains("Loading config"))
            })
            .collect();
        let m = captured(run_sample(&without_dump.join("\n")));
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            r#"{"poolString":"public-pool.io","portNumber":21496,"poolPassword":"x","btcString":"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.rack1","gmtZone":1,"invertColors":false,"Brightness":250}"#
        );
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec(
            prop_oneof![
                any::<String>(),
                Just("SPIFS: Loading config file".to_owned()),
                Just("{".to_owned()),
                Just("}".to_owned()),
                Just("[".to_owned()),
                Just("  \"k\": ".to_owned()),
                Just("\"".to_owned()),
                Just("Initiating tasks...".to_owned()),
                Just("PoolString: p".to_owned()),
            ], 0..60)) {
            let mut cap = BootConfigCapture::new();
            for l in &lines {
                let _ = cap.feed(l);
            }
            let _ = cap.finish();
        }
    }
}
