//! A short look at a new device's port before anyone adds it: what does it print? A NerdMiner
//! that was just plugged in boots and prints its pool and firmware version; one already
//! running prints its hashrate every second.
//!
//! The port is opened read-only, nothing is written, and DTR/RTS are left as the kernel sets
//! them on any open (both asserted together, which ESP32 auto-reset circuits ignore): the
//! board is not reset. An exclusive `flock` keeps a serial monitor (or our own reader) and the
//! probe from splitting the output between them.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, Flock, FlockArg, OFlag};
use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg, SpecialCharacterIndices};

use crate::db::devices::ProbeResult;
use crate::db::LinkState;
use crate::miner::boot_config::{BootConfig, BootConfigCapture};
use crate::miner::framing::{LineFramer, MAX_LINE_BYTES};
use crate::miner::parse::parse_line;
use crate::miner::port;
use crate::model::event::MinerEvent;

/// What the lines read so far say. Pure: feed it lines.
#[derive(Debug)]
pub struct Findings {
    lines: usize,
    nerdminer: bool,
    esp_boot: bool,
    setup_mode: bool,
    firmware: Option<String>,
    pool: Option<String>,
    hashrate_khs: Option<f64>,
    capture: Option<BootConfigCapture>,
}

impl Default for Findings {
    fn default() -> Self {
        Self {
            lines: 0,
            nerdminer: false,
            esp_boot: false,
            setup_mode: false,
            firmware: None,
            pool: None,
            hashrate_khs: None,
            capture: Some(BootConfigCapture::new()),
        }
    }
}

impl Findings {
    /// Takes one line of output.
    pub fn feed(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.lines += 1;
        for event in parse_line(line) {
            match event {
                MinerEvent::Boot { .. } | MinerEvent::Brownout | MinerEvent::Crash { .. } => {
                    self.esp_boot = true
                }
                MinerEvent::Subscribe { firmware } => {
                    self.nerdminer = true;
                    self.firmware = firmware.or(self.firmware.take());
                }
                // The LilyGo T3 prints its own status line instead of `Completed`
                // (ssd1306DisplayDriver.cpp:22).
                MinerEvent::Progress { hashrate_khs, .. }
                | MinerEvent::CompactStatus { hashrate_khs, .. } => {
                    self.nerdminer = true;
                    self.hashrate_khs = Some(hashrate_khs);
                }
                MinerEvent::PoolUnreachable { pool } => {
                    self.nerdminer = true;
                    self.pool.get_or_insert(pool);
                }
                MinerEvent::SetupMode => {
                    self.nerdminer = true;
                    self.setup_mode = true;
                }
                MinerEvent::Starting
                | MinerEvent::Authorize { .. }
                | MinerEvent::NewJob
                | MinerEvent::MinerTaskStarted { .. }
                | MinerEvent::TimeMining { .. } => self.nerdminer = true,
                _ => {}
            }
        }
        if let Some(capture) = self.capture.as_mut() {
            if let Some(config) = capture.feed(line) {
                self.capture = None;
                self.take_config(config);
            }
        }
    }

    fn take_config(&mut self, config: BootConfig) {
        match config {
            BootConfig::Captured(map) => {
                self.nerdminer = true;
                let host = map.get("poolString").and_then(|v| v.as_str());
                let port = map.get("portNumber").and_then(|v| v.as_i64());
                // Only the pool: the wallet and password stay on the miner.
                self.pool = match (host, port) {
                    (Some(h), Some(p)) if !h.is_empty() => Some(format!("{h}:{p}")),
                    (Some(h), None) if !h.is_empty() => Some(h.to_owned()),
                    _ => self.pool.take(),
                };
            }
            BootConfig::SetupMode | BootConfig::NoConfigFile => {
                self.nerdminer = true;
                self.setup_mode = true;
            }
            BootConfig::ParseError => self.nerdminer = true,
        }
    }

    /// Everything worth knowing was seen: listening longer tells nothing new.
    pub fn complete(&self) -> bool {
        self.firmware.is_some() && self.pool.is_some()
    }

    /// The result, after listening for `listened` at `baud`.
    pub fn finish(mut self, listened: Duration, baud: u32) -> ProbeResult {
        if let Some(config) = self.capture.take().and_then(BootConfigCapture::finish) {
            self.take_config(config);
        }
        let detail = if self.lines == 0 {
            format!(
                "silent for {} s at {baud} baud: not a running NerdMiner, or it prints at another speed",
                listened.as_secs()
            )
        } else if self.nerdminer {
            let mut parts = vec!["NerdMiner".to_string()];
            if self.setup_mode {
                parts.push("in its Wi-Fi setup portal (not configured yet)".into());
            }
            if let Some(f) = &self.firmware {
                parts.push(format!("firmware {f}"));
            }
            if let Some(p) = &self.pool {
                parts.push(format!("pool {p}"));
            }
            if let Some(h) = self.hashrate_khs {
                parts.push(format!("hashing at {h:.1} KH/s"));
            }
            parts.join(", ")
        } else if self.esp_boot {
            format!(
                "an ESP32 booting, but not NerdMiner's output ({} lines)",
                self.lines
            )
        } else {
            format!(
                "prints something, but not NerdMiner's output ({} lines)",
                self.lines
            )
        };
        ProbeResult {
            firmware: self.firmware,
            pool: self.pool,
            detail,
        }
    }
}

/// Listens on `tty` for up to `listen` (less once firmware and pool are known, or when
/// `cancel` is set). Blocking: run it on its own thread.
pub fn run(tty: &str, baud: u32, listen: Duration, cancel: &AtomicBool) -> ProbeResult {
    let mut port = match open_read_only(tty, baud) {
        Ok(p) => p,
        Err(e) => {
            let failure = port::classify(tty, &serialport::Error::from(e));
            let detail = match failure.state {
                LinkState::Offline => format!("{tty} vanished before it could be read"),
                _ => format!("could not listen: {}", failure.message),
            };
            return ProbeResult {
                detail,
                ..ProbeResult::default()
            };
        }
    };
    let started = Instant::now();
    let mut findings = Findings::default();
    let mut framer = LineFramer::new(MAX_LINE_BYTES);
    let (mut buf, mut framed) = (vec![0u8; 4096], Vec::new());
    while started.elapsed() < listen && !cancel.load(Ordering::Relaxed) && !findings.complete() {
        match port.read(&mut buf) {
            // VTIME makes an idle read return 0 after 0.2 s; a vanished device errors.
            Ok(0) => {}
            Ok(n) => framer.push(&buf[..n], &mut framed),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
        for line in framed.drain(..) {
            findings.feed(&line.text);
        }
    }
    framer.finish(&mut framed);
    for line in framed.drain(..) {
        findings.feed(&line.text);
    }
    findings.finish(started.elapsed().max(Duration::from_secs(1)), baud)
}

/// Opens the tty for reading only, raw, at `baud`, with reads that return after 0.2 s of
/// silence. Fails if another program holds it (exclusive flock, as serial tools take).
fn open_read_only(tty: &str, baud: u32) -> std::io::Result<Flock<File>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
        .open(tty)?;
    let file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        std::io::Error::other(format!("Device or resource busy ({errno})"))
    })?;
    let mut t = termios::tcgetattr(&*file)?;
    termios::cfmakeraw(&mut t);
    t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
    termios::cfsetspeed(&mut t, baud_rate(baud))?;
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 2;
    termios::tcsetattr(&*file, SetArg::TCSANOW, &t)?;
    // Blocking reads from here on, bounded by VTIME.
    fcntl(&*file, FcntlArg::F_SETFL(OFlag::empty()))?;
    Ok(file)
}

fn baud_rate(baud: u32) -> BaudRate {
    match baud {
        9600 => BaudRate::B9600,
        19_200 => BaudRate::B19200,
        38_400 => BaudRate::B38400,
        57_600 => BaudRate::B57600,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        921_600 => BaudRate::B921600,
        _ => BaudRate::B115200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::nerdminer::{Board, SimMiner};
    use std::io::Write;

    #[test]
    fn a_booting_nerdminer_tells_firmware_and_pool() {
        let sim = SimMiner::new(1, Board::NoDisplay);
        let mut f = Findings::default();
        for line in sim.boot_lines() {
            f.feed(&line);
        }
        assert!(f.complete());
        let r = f.finish(Duration::from_secs(3), 115_200);
        assert_eq!(r.firmware.as_deref(), Some("V1.8.3"));
        assert_eq!(r.pool.as_deref(), Some("public-pool.io:21496"));
        assert!(r.detail.starts_with("NerdMiner"), "{}", r.detail);
        assert!(
            !r.detail.contains("bc1q"),
            "no wallet in the detail: {}",
            r.detail
        );
    }

    #[test]
    fn a_running_nerdminer_tells_its_hashrate() {
        let mut sim = SimMiner::new(2, Board::Display);
        let mut f = Findings::default();
        for _ in 0..3 {
            for line in sim.tick() {
                f.feed(&line);
            }
        }
        let r = f.finish(Duration::from_secs(8), 115_200);
        assert_eq!((r.firmware, r.pool), (None, None));
        assert!(r.detail.contains("KH/s"), "{}", r.detail);
    }

    #[test]
    fn a_running_lilygo_t3_is_recognised_by_its_own_line() {
        // ssd1306DisplayDriver.cpp:22: the T3 never prints `Completed`.
        let mut f = Findings::default();
        for _ in 0..3 {
            f.feed(">>> Hashrate: 61.69 KH/s | Shares: 0 | Best diff: 0.0312");
        }
        let r = f.finish(Duration::from_secs(8), 115_200);
        assert!(r.detail.starts_with("NerdMiner"), "{}", r.detail);
        assert!(r.detail.contains("KH/s"), "{}", r.detail);
    }

    #[test]
    fn silence_and_other_output_say_so() {
        let r = Findings::default().finish(Duration::from_secs(8), 115_200);
        assert!(r.detail.contains("silent for 8 s"), "{}", r.detail);
        let mut f = Findings::default();
        f.feed("G28 X0 Y0");
        f.feed("ok");
        assert!(f
            .finish(Duration::from_secs(8), 115_200)
            .detail
            .contains("not NerdMiner"));
    }

    #[test]
    fn probing_a_pty_reads_without_writing() {
        let pty = crate::sim::pty::Pty::open().unwrap();
        let path = pty.path.display().to_string();
        let mut master = pty.master;
        let sim = SimMiner::new(3, Board::NoDisplay);
        let mut text = sim.boot_lines().join("\r\n");
        text.push_str("\r\n");
        master.write_all(text.as_bytes()).unwrap();
        let r = run(
            &path,
            115_200,
            Duration::from_secs(5),
            &AtomicBool::new(false),
        );
        assert_eq!(r.firmware.as_deref(), Some("V1.8.3"), "{}", r.detail);
    }

    #[test]
    fn a_missing_port_is_reported() {
        let r = run(
            "/dev/ttyNONEXISTENT42",
            115_200,
            Duration::from_secs(1),
            &AtomicBool::new(false),
        );
        assert!(r.detail.contains("vanished"), "{}", r.detail);
    }
}
