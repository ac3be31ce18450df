//! What a NerdMiner prints, generated: the boot log with its configuration dump, then once a
//! second the mining status block, with the odd share, job and pool message. Pure: the caller
//! decides when to write the lines and where.

/// A tiny deterministic PRNG (xorshift64*): demo herds look alive and tests are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced, xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Which kind of board to imitate: boards without a display print the extended block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    /// No-display / LED builds: print temperature, best difficulty, uptime.
    NoDisplay,
    /// Display boards (CYD, T-Display): only the "Completed" line.
    Display,
    /// LilyGo T3 (SSD1306, after V1.8.3): `>>> Hashrate: %s KH/s | Shares: %s | Best diff: %s`
    /// instead of `Completed` (drivers/displays/ssd1306DisplayDriver.cpp:22).
    LilyGoT3,
    /// A board on a screen that prints no hashrate line (M5StickC off its hash screen, S3
    /// dongle with the backlight off, T-QT / Spotpear clock screen): only pool traffic.
    SilentScreen,
}

/// The simulated firmware's state.
#[derive(Debug, Clone)]
pub struct SimMiner {
    rng: Rng,
    board: Board,
    /// Pool the miner is configured for.
    pub pool: String,
    /// Port of that pool.
    pub port: u16,
    /// Wallet (worker) it mines for.
    pub wallet: String,
    base_khs: f64,
    hashrate: f64,
    khashes: u64,
    shares: u64,
    best_diff: f64,
    uptime: u64,
    temperature: f64,
    next_submit: u32,
    /// `"saveStatsToNVS": true`: counters saved by [`SimMiner::save_stats`] come back at
    /// [`SimMiner::reboot`] (mining.cpp restoreStat()).
    save_stats: bool,
    saved: Option<(u64, u64, u64)>,
    valids: u64,
    accepted_total: u64,
}

impl SimMiner {
    /// A miner with its own seed; hashrates vary around 45–65 KH/s like real boards.
    pub fn new(seed: u64, board: Board) -> Self {
        let mut rng = Rng::new(seed);
        let base_khs = 45.0 + 20.0 * rng.next_f64();
        Self {
            board,
            pool: "public-pool.io".into(),
            port: 21496,
            wallet: format!("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.sim{seed}"),
            base_khs,
            hashrate: base_khs,
            khashes: 0,
            shares: 0,
            best_diff: 0.0005 + 0.003 * rng.next_f64(),
            uptime: 60 + (rng.next_f64() * 3600.0) as u64,
            temperature: 45.0 + 6.0 * rng.next_f64(),
            next_submit: 5 + (rng.next_f64() * 20.0) as u32,
            rng,
            save_stats: false,
            saved: None,
            valids: 0,
            accepted_total: 0,
        }
    }

    /// The same miner with `"saveStatsToNVS": true`.
    pub fn with_saved_stats(mut self) -> Self {
        self.save_stats = true;
        self
    }

    /// Shares the pool accepted over the miner's whole life, reboots included: what the
    /// Shepherd's total must come to.
    pub fn accepted_total(&self) -> u64 {
        self.accepted_total
    }

    /// `[MONITOR] Saving stats` (mining.cpp saveStat()): the counters now are what the next
    /// boot restores.
    pub fn save_stats(&mut self) -> Vec<String> {
        if !self.save_stats {
            return Vec::new();
        }
        self.saved = Some((self.shares, self.valids, self.uptime));
        vec!["[MONITOR] Saving stats".into()]
    }

    /// A block: the firmware's line when the pool accepts it (mining.cpp:448), `valids++`.
    pub fn find_block(&mut self) -> Vec<String> {
        self.valids += 1;
        vec!["CONGRATULATIONS! Valid block found".into()]
    }

    /// The board resets (`rst:0x…` with `reset_reason`, e.g. `SW_CPU_RESET`) and boots again:
    /// the counters restart at zero, or at the last NVS save when it saves stats.
    pub fn reboot(&mut self, reset_reason: &str) -> Vec<String> {
        let (shares, valids, uptime) = match (self.save_stats, self.saved) {
            (true, Some(saved)) => saved,
            _ => (0, 0, 0),
        };
        self.shares = shares;
        self.valids = valids;
        self.uptime = uptime;
        self.khashes = 0;
        // No share before the pool connection and a first job: seconds after the boot.
        self.next_submit = 5 + (self.rng.next_f64() * 20.0) as u32;
        let mut out = self.boot_lines();
        if let Some(l) = out.iter_mut().find(|l| l.starts_with("rst:0x")) {
            *l = format!("rst:0xc ({reset_reason}),boot:0x13 (SPI_FAST_FLASH_BOOT)");
        }
        out
    }

    /// The configuration this miner boots with, as the firmware's config.json.
    pub fn config_json(&self) -> String {
        format!(
            "{{\n  \"poolString\": \"{}\",\n  \"portNumber\": {},\n  \"poolPassword\": \"x\",\n  \"btcString\": \"{}\",\n  \"gmtZone\": 1,\n  \"saveStatsToNVS\": {},\n  \"invertColors\": false,\n  \"Brightness\": 250\n}}",
            self.pool, self.port, self.wallet, self.save_stats
        )
    }

    /// Everything printed from power-on to the first mining line.
    pub fn boot_lines(&self) -> Vec<String> {
        let config: Vec<String> = self.config_json().lines().map(str::to_owned).collect();
        self.boot_lines_with(&config)
    }

    /// The boot log with `config` as the pretty-printed `/config.json` dump (the simulated
    /// ESP32 prints what its own flash holds).
    pub fn boot_lines_with(&self, config: &[String]) -> Vec<String> {
        let mut out: Vec<String> = [
            "ets Jun  8 2016 00:22:57",
            "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
            "NerdMiner v2 starting......",
            "SPIFS: Mounting File System...",
            "SPIFS: Mounted",
            "SPIFS: Loading config file",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        out.extend(config.iter().cloned());
        out.push("AllDone: ".into());
        out.push("*wm:AutoConnect: SUCCESS".into());
        for _ in 0..2 {
            out.extend([
                "WiFi connected".to_string(),
                "IP address: 192.168.1.57".into(),
                format!("PoolString: {}", self.pool),
                format!("portNumber: {}", self.port),
                "poolPassword: x".into(),
                format!("btcString: {}", self.wallet),
                "TimeZone fromUTC: 1".into(),
            ]);
        }
        out.extend([
            "Initiating tasks...".to_string(),
            "[MONITOR] started".into(),
            "[WORKER] Started. Running (Stratum) on core 1".into(),
            "[MINER] 0 Started minerWorkerSw Task!".into(),
            "Client not connected, trying to connect...".into(),
            "[WORKER] ==> Mining subscribe".into(),
            "  Sending  : {\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"NerdMinerV2/V1.8.3\"]}".into(),
            "[WORKER] ==> Autorize work".into(),
            format!(
                "  Sending  : {{\"params\": [\"{}\", \"x\"], \"id\": 2, \"method\": \"mining.authorize\"}}",
                self.wallet
            ),
            "    Parsing Method [SET DIFFICULTY]".into(),
            "    difficulty: 0.000150000000".into(),
            "    Parsing Method [MINING NOTIFY]".into(),
        ]);
        out
    }

    /// One second of mining output.
    pub fn tick(&mut self) -> Vec<String> {
        let mut out = Vec::with_capacity(10);
        self.uptime += 1;
        self.hashrate = (self.hashrate + (self.rng.next_f64() - 0.5) * 3.0)
            .clamp(self.base_khs * 0.9, self.base_khs * 1.1);
        self.khashes += self.hashrate.round() as u64;
        self.temperature = (self.temperature + (self.rng.next_f64() - 0.5)).clamp(40.0, 62.0);
        self.next_submit = self.next_submit.saturating_sub(1);
        if self.next_submit == 0 {
            self.next_submit = 10 + (self.rng.next_f64() * 40.0) as u32;
            let diff = 0.0002 / (self.rng.next_f64() + 1e-6);
            self.shares += 1;
            self.accepted_total += 1;
            self.best_diff = self.best_diff.max(diff);
            out.push(format!(
                "  Sending  : {{\"id\":{},\"method\":\"mining.submit\",\"params\":[\"{}\",\"1b6f3\",\"00000001\",\"6745a1c2\",\"3f9a0c12\"]}}",
                self.shares + 10,
                self.wallet
            ));
            out.push(format!("   - Current diff share: {diff:.12}"));
            out.push("   - Current pool diff : 0.000150000000".into());
        }
        // Silent screens print no hashrate: their pool traffic is what shows them alive.
        let notify = if self.board == Board::SilentScreen {
            0.2
        } else {
            0.02
        };
        if self.rng.next_f64() < notify {
            out.push("    Parsing Method [MINING NOTIFY]".into());
        }
        match self.board {
            Board::LilyGoT3 => out.push(format!(
                ">>> Hashrate: {:.2} KH/s | Shares: {} | Best diff: {}",
                self.hashrate,
                self.shares,
                format_difficulty(self.best_diff)
            )),
            Board::SilentScreen => {}
            Board::NoDisplay | Board::Display => out.push(format!(
                ">>> Completed {} share(s), {} Khashes, avg. hashrate {:.2} KH/s",
                self.shares, self.khashes, self.hashrate
            )),
        }
        if self.board == Board::NoDisplay {
            let (d, rest) = (self.uptime / 86_400, self.uptime % 86_400);
            out.extend([
                format!(">>> Valid blocks: {}", self.valids),
                ">>> Block templates: 1".into(),
                format!(">>> Best difficulty: {}", format_difficulty(self.best_diff)),
                format!(">>> 32Bit shares: {}", self.shares),
                format!(">>> Temperature: {}", self.temperature.round()),
                format!(">>> Total MHashes: {}", self.khashes / 1000),
                format!(
                    ">>> Time mining: {d}  {:02}:{:02}:{:02}",
                    rest / 3600,
                    rest % 3600 / 60,
                    rest % 60
                ),
            ]);
        }
        out
    }
}

/// Difficulty the way the firmware prints it (suffixes K, M, G…).
pub fn format_difficulty(d: f64) -> String {
    const SUFFIX: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if d < 1000.0 {
        return format!("{d:.4}");
    }
    let mut v = d;
    let mut i = 0;
    while v >= 1000.0 && i < SUFFIX.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.2}{}", SUFFIX[i - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::miner::boot_config::{BootConfig, BootConfigCapture};
    use crate::miner::parse::parse_line;
    use crate::model::event::MinerEvent;

    #[test]
    fn boot_log_carries_a_config_the_capture_understands() {
        let sim = SimMiner::new(1, Board::NoDisplay);
        let mut cap = BootConfigCapture::new();
        let outcome = sim.boot_lines().iter().find_map(|l| cap.feed(l));
        let Some(BootConfig::Captured(map)) = outcome else {
            panic!("no config captured");
        };
        assert_eq!(map["poolString"], "public-pool.io");
        assert_eq!(map["portNumber"], 21496);
    }

    #[test]
    fn every_tick_reports_progress_the_parser_reads() {
        let mut sim = SimMiner::new(2, Board::NoDisplay);
        for _ in 0..100 {
            let events: Vec<MinerEvent> = sim.tick().iter().flat_map(|l| parse_line(l)).collect();
            assert!(events.iter().any(
                |e| matches!(e, MinerEvent::Progress { hashrate_khs, .. } if *hashrate_khs > 0.0)
            ));
            assert!(events
                .iter()
                .any(|e| matches!(e, MinerEvent::Temperature(_))));
        }
    }

    #[test]
    fn display_boards_print_only_progress() {
        let mut sim = SimMiner::new(3, Board::Display);
        let lines = sim.tick();
        assert!(lines.iter().all(|l| !l.contains("Temperature")));
    }

    #[test]
    fn a_miner_saving_stats_resumes_from_its_last_save() {
        let mut sim = SimMiner::new(4, Board::NoDisplay).with_saved_stats();
        assert!(sim.config_json().contains("\"saveStatsToNVS\": true"));
        for _ in 0..200 {
            sim.tick();
        }
        assert_eq!(sim.save_stats(), vec!["[MONITOR] Saving stats".to_string()]);
        let saved = sim.shares;
        for _ in 0..200 {
            sim.tick();
        }
        let boot = sim.reboot("SW_CPU_RESET");
        assert!(boot.iter().any(|l| l.contains("rst:0xc (SW_CPU_RESET)")));
        assert_eq!(sim.shares, saved, "restored from NVS, not zero");
        assert!(sim.accepted_total() >= saved);
        let mut plain = SimMiner::new(4, Board::NoDisplay);
        plain.tick();
        plain.reboot("POWERON_RESET");
        assert_eq!(plain.shares, 0);
    }

    #[test]
    fn t3_and_silent_boards_print_their_own_way() {
        let mut t3 = SimMiner::new(5, Board::LilyGoT3);
        let events: Vec<MinerEvent> = t3.tick().iter().flat_map(|l| parse_line(l)).collect();
        assert!(events
            .iter()
            .any(|e| matches!(e, MinerEvent::CompactStatus { .. })));
        let mut silent = SimMiner::new(6, Board::SilentScreen);
        let lines: Vec<String> = (0..100).flat_map(|_| silent.tick()).collect();
        assert!(lines.iter().all(|l| !l.contains(">>> ")));
        assert!(lines.iter().any(|l| l.contains("MINING NOTIFY")));
    }

    #[test]
    fn difficulty_suffixes() {
        assert_eq!(format_difficulty(0.0312), "0.0312");
        assert_eq!(format_difficulty(1234.0), "1.23K");
        assert_eq!(format_difficulty(2_340_000.0), "2.34M");
    }

    #[test]
    fn same_seed_same_output() {
        let mut a = SimMiner::new(9, Board::NoDisplay);
        let mut b = SimMiner::new(9, Board::NoDisplay);
        assert_eq!(a.tick(), b.tick());
    }
}
