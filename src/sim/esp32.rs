//! A simulated ESP32 NerdMiner on a pseudo-terminal, backed by a flash image.
//!
//! In firmware mode it prints a NerdMiner boot log whose configuration it reads from its own
//! flash (partition table at 0x8000, SPIFFS partition, `/config.json`) — an unreadable SPIFFS
//! is formatted and the miner comes up in its setup portal, as real firmware does — then mining
//! lines. It follows DTR/RTS changes delivered through [`Forwarding`] with a model of the board's
//! auto-reset circuit, and in its ROM bootloader answers the serial loader protocol from the
//! image: reads, MD5, and writes (FLASH_BEGIN/DATA/END change the image), with a hook that
//! corrupts written data for tests of the writer's verification.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::nerdminer::{Board, SimMiner};
use super::pty::Pty;
use crate::flash::command::{checksum, Op, Request, Response, ROM_STATUS_LEN, SECTOR};
use crate::flash::lines::{Forwarding, LineEvent, Wiring};
use crate::flash::partitions::PartitionTable;
use crate::flash::slip;
use crate::flash::spiffs::{self, SpiffsFile, SpiffsParams};

/// Flash size of the boards NerdMiner runs on.
pub const FLASH_SIZE: usize = 4 << 20;
/// How long EN must stay high, with no further line change, before the chip leaves reset and
/// samples IO0 (the RC delay on a real board's EN pin).
const RELEASE_DELAY: Duration = Duration::from_millis(5);
/// The ESP32's chip-detect value.
const ESP32_MAGIC: u32 = 0x00F0_1D83;

/// Where the firmware keeps its configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    /// NerdMiner: `/config.json` in the SPIFFS partition of the flash image.
    Spiffs,
    /// A fork that keeps settings in NVS: prints this JSON at boot whatever the flash holds.
    Nvs(String),
}

/// How the simulated board is built.
#[derive(Debug, Clone)]
pub struct SimEsp32Config {
    /// Seed of the mining output.
    pub seed: u64,
    /// Display or not (what the mining lines include).
    pub board: Board,
    /// The flash contents (usually [`FLASH_SIZE`] bytes).
    pub flash: Vec<u8>,
    /// USB bridge or native USB.
    pub wiring: Wiring,
    /// False models a board whose IO0 is not wired to DTR: bootloader entry only resets it.
    pub io0_wired: bool,
    /// Where its configuration lives.
    pub config_source: ConfigSource,
    /// Time between mining status blocks.
    pub line_interval: Duration,
    /// Factory MAC.
    pub mac: [u8; 6],
    /// Delay before each loader response (a slow link: tests of long reads).
    pub rom_delay: Duration,
}

impl SimEsp32Config {
    /// A classic ESP32 board with `flash`.
    pub fn new(seed: u64, flash: Vec<u8>) -> Self {
        Self {
            seed,
            board: Board::NoDisplay,
            flash,
            wiring: Wiring::Classic,
            io0_wired: true,
            config_source: ConfigSource::Spiffs,
            line_interval: Duration::from_secs(1),
            mac: [0x24, 0xD7, 0xEB, 0x10, 0x20, (seed & 0xFF) as u8],
            rom_delay: Duration::ZERO,
        }
    }

    /// The same with its flash loaded from a file (a dump made with `esptool read_flash`).
    pub fn from_file(seed: u64, path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self::new(seed, std::fs::read(path)?))
    }
}

/// A 4 MiB flash laid out as Arduino's `huge_app.csv` with `files` in its SPIFFS partition.
pub fn huge_app_flash(files: &[SpiffsFile]) -> Result<Vec<u8>, spiffs::SpiffsError> {
    let table = PartitionTable::huge_app();
    let mut flash = vec![0xFF; FLASH_SIZE];
    let t = table.to_bytes();
    flash[0x8000..0x8000 + t.len()].copy_from_slice(&t);
    let (off, size) = (0x31_0000usize, 0xE_0000usize);
    let image = spiffs::build_image(files, size, &SpiffsParams::ARDUINO)?;
    flash[off..off + size].copy_from_slice(&image);
    Ok(flash)
}

/// The simulated miner's default `/config.json`, as the firmware writes it.
pub fn default_config_json(seed: u64) -> String {
    SimMiner::new(seed, Board::NoDisplay).config_json()
}

/// Demo miner number `index`: a classic ESP32 board with a huge_app flash holding its own
/// `/config.json`, printing a status block every `interval`.
pub fn demo(index: u64, interval: Duration) -> std::io::Result<SimEsp32> {
    let files = [SpiffsFile {
        path: "/config.json".into(),
        data: default_config_json(index).into_bytes(),
    }];
    let flash = huge_app_flash(&files).map_err(std::io::Error::other)?;
    let mut cfg = SimEsp32Config::new(index, flash);
    cfg.line_interval = interval;
    if index % 3 == 2 {
        cfg.board = Board::Display;
    }
    SimEsp32::spawn(cfg)
}

/// What a caller can observe and change while the chip runs.
#[derive(Debug, Default)]
pub struct SimState {
    /// Times the firmware booted (power-on included).
    pub firmware_boots: u32,
    /// Times the ROM bootloader was entered.
    pub bootloader_entries: u32,
    /// Whether it is in its bootloader now.
    pub in_bootloader: bool,
    /// Every line change received, in order.
    pub line_events: Vec<LineEvent>,
    /// Whether the last boot found a configuration (false: setup portal).
    pub configured: bool,
    /// Non-empty lines written in full (demo shutdown checks that ingest stored them all).
    pub lines_written: u64,
}

/// Changes written data after the checksum was accepted (flash address, block): models a
/// write that goes wrong on the chip, which only an MD5 read-back can catch.
pub type WriteHook = Box<dyn FnMut(u32, &mut [u8]) + Send>;

/// Changes each SLIP frame the chip receives before it decodes it: models corruption on the
/// wire, which the ROM's checksum (FLASH_DATA) or framing catches.
pub type TransitHook = Box<dyn FnMut(&mut Vec<u8>) + Send>;

/// Consulted at each firmware boot with the `/config.json` text read from SPIFFS: false makes
/// the firmware fail to parse it (as a build with a smaller JSON document or a different schema
/// would) and open its setup portal. Models an image that passes every check but that this
/// firmware will not accept: what the writer's boot confirmation and rollback are for.
pub type BootHook = Box<dyn FnMut(&str) -> bool + Send>;

struct Shared {
    flash: Mutex<Vec<u8>>,
    state: Mutex<SimState>,
    hook: Mutex<Option<WriteHook>>,
    transit: Mutex<Option<TransitHook>>,
    boot: Mutex<Option<BootHook>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicked simulator thread must not take the test's view of it down too.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulated ESP32.
pub struct SimEsp32 {
    /// Slave path the reader opens.
    pub path: String,
    lines: Forwarding,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<File>>,
    master: Option<File>,
}

impl SimEsp32 {
    /// Powers the board on: it boots its firmware and starts printing.
    pub fn spawn(config: SimEsp32Config) -> std::io::Result<SimEsp32> {
        let Pty {
            master,
            path,
            slave,
        } = Pty::open()?;
        let flags = fcntl(master.as_fd(), FcntlArg::F_GETFL)?;
        fcntl(
            master.as_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )?;
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            flash: Mutex::new(config.flash.clone()),
            state: Mutex::new(SimState::default()),
            hook: Mutex::new(None),
            transit: Mutex::new(None),
            boot: Mutex::new(None),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let lines = Forwarding::new(tx, config.wiring);
        let mut chip = Chip {
            cfg: config,
            master,
            rx,
            shared: shared.clone(),
            stop: stop.clone(),
            dtr: false,
            rts: false,
            in_reset: false,
            download_requested: false,
            last_event: Instant::now(),
            mode: Mode::Off,
            miner: SimMiner::new(0, Board::NoDisplay),
            next_tick: Instant::now(),
            decoder: slip::Decoder::new(),
            rom: Rom::default(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("sim-esp32-{}", chip.cfg.seed))
            .spawn(move || {
                let _slave = slave;
                chip.run();
                chip.master
            })?;
        Ok(SimEsp32 {
            path: path.display().to_string(),
            lines,
            shared,
            stop,
            thread: Some(thread),
            master: None,
        })
    }

    /// The line-control handle to give the code that owns the port (demo and tests).
    pub fn line_control(&self) -> Forwarding {
        self.lines.clone()
    }

    /// A copy of the flash now.
    pub fn flash(&self) -> Vec<u8> {
        lock(&self.shared.flash).clone()
    }

    /// Replaces the flash (takes effect at the next boot).
    pub fn set_flash(&self, flash: Vec<u8>) {
        *lock(&self.shared.flash) = flash;
    }

    /// Reads the state under a lock.
    pub fn state<R>(&self, f: impl FnOnce(&SimState) -> R) -> R {
        f(&lock(&self.shared.state))
    }

    /// Installs (or removes) the write-corruption hook.
    pub fn set_write_hook(&self, hook: Option<WriteHook>) {
        *lock(&self.shared.hook) = hook;
    }

    /// Installs (or removes) the firmware's config acceptance hook.
    pub fn set_boot_hook(&self, hook: Option<BootHook>) {
        *lock(&self.shared.boot) = hook;
    }

    /// Installs (or removes) the on-the-wire corruption hook.
    pub fn set_transit_hook(&self, hook: Option<TransitHook>) {
        *lock(&self.shared.transit) = hook;
    }

    /// A switch that powers the chip off at once when set, from any thread (a test's write
    /// hook: the cable pulled in the middle of flashing). The pty stays open, so the host sees
    /// a chip that stopped answering.
    pub fn power_switch(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Powers it off (the pty stays open until the handle is dropped, so nothing written is
    /// lost). Returns the number of non-empty lines it wrote.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(Ok(master)) = self.thread.take().map(JoinHandle::join) {
            self.master = Some(master);
        }
        self.state(|s| s.lines_written)
    }
}

impl Drop for SimEsp32 {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Firmware,
    SetupPortal,
    Bootloader,
}

struct Chip {
    cfg: SimEsp32Config,
    master: File,
    rx: Receiver<LineEvent>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    dtr: bool,
    rts: bool,
    in_reset: bool,
    download_requested: bool,
    last_event: Instant,
    mode: Mode,
    miner: SimMiner,
    next_tick: Instant,
    decoder: slip::Decoder,
    rom: Rom,
}

impl Chip {
    fn run(&mut self) {
        self.boot(false);
        let mut buf = [0u8; 4096];
        while !self.stop.load(Ordering::Relaxed) {
            while let Ok(ev) = self.rx.try_recv() {
                self.line_event(ev);
            }
            if self.in_reset && !self.en_low() && self.last_event.elapsed() >= RELEASE_DELAY {
                let download = match self.cfg.wiring {
                    Wiring::Classic => self.io0_low(),
                    Wiring::UsbJtag => self.download_requested,
                };
                self.boot(download && self.cfg.io0_wired);
            }
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(2u16));
            loop {
                match self.master.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if self.mode == Mode::Bootloader && !self.in_reset {
                            let mut frames = Vec::new();
                            self.decoder.push(&buf[..n], &mut frames);
                            for mut f in frames {
                                if let Some(h) = lock(&self.shared.transit).as_mut() {
                                    h(&mut f);
                                }
                                self.request(&f);
                            }
                        } // a running firmware ignores what the host sends
                    }
                    Err(_) => break, // WouldBlock: nothing more now
                }
            }
            if self.mode == Mode::Firmware && !self.in_reset && Instant::now() >= self.next_tick {
                self.next_tick = Instant::now() + self.cfg.line_interval;
                let lines = self.miner.tick();
                self.print(&lines);
            }
        }
    }

    fn en_low(&self) -> bool {
        match self.cfg.wiring {
            // The two-transistor circuit: EN low only while RTS alone is asserted.
            Wiring::Classic => self.rts && !self.dtr,
            Wiring::UsbJtag => self.rts && !self.dtr,
        }
    }

    fn io0_low(&self) -> bool {
        self.dtr && !self.rts
    }

    fn line_event(&mut self, ev: LineEvent) {
        lock(&self.shared.state).line_events.push(ev);
        match ev {
            LineEvent::Dtr(l) => self.dtr = l,
            LineEvent::Rts(l) => self.rts = l,
            LineEvent::Slept(_) => return,
        }
        self.last_event = Instant::now();
        if self.cfg.wiring == Wiring::UsbJtag && self.io0_low() {
            self.download_requested = true;
        }
        if self.en_low() && !self.in_reset {
            self.in_reset = true;
            self.mode = Mode::Off;
        }
    }

    fn boot(&mut self, download: bool) {
        self.in_reset = false;
        self.download_requested = false;
        self.decoder.reset();
        self.rom = Rom::default();
        if download {
            self.mode = Mode::Bootloader;
            {
                let mut st = lock(&self.shared.state);
                st.bootloader_entries += 1;
                st.in_bootloader = true;
            }
            self.print(&[
                "ets Jun  8 2016 00:22:57".into(),
                "".into(),
                "rst:0x1 (POWERON_RESET),boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))"
                    .into(),
                "waiting for download".into(),
            ]);
            return;
        }
        let (config, lines) = self.firmware_boot_log();
        {
            let mut st = lock(&self.shared.state);
            st.firmware_boots += 1;
            st.in_bootloader = false;
            st.configured = config;
        }
        self.mode = if config {
            Mode::Firmware
        } else {
            Mode::SetupPortal
        };
        self.next_tick = Instant::now() + self.cfg.line_interval;
        self.print(&lines);
    }

    /// The boot log, and whether a configuration was found.
    fn firmware_boot_log(&mut self) -> (bool, Vec<String>) {
        let text = match &self.cfg.config_source {
            ConfigSource::Nvs(json) => Some(json.clone()),
            ConfigSource::Spiffs => self.spiffs_config(),
        };
        let accepted = match (text.as_deref(), lock(&self.shared.boot).as_mut()) {
            (Some(t), Some(hook)) => hook(t),
            _ => true,
        };
        let parsed = text
            .as_deref()
            .filter(|_| accepted)
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
        let mut miner = SimMiner::new(self.cfg.seed, self.cfg.board);
        let Some(json) = parsed else {
            let mut lines: Vec<String> = [
                "ets Jun  8 2016 00:22:57",
                "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
                "NerdMiner v2 starting......",
                "SPIFS: Mounting File System...",
                "SPIFS: Mounted",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            lines.push(if text.is_some() {
                "SPIFS: Error parsing config file!".into()
            } else {
                "SPIFS: No config file available!".into()
            });
            lines.extend(
                [
                    "AllDone: ",
                    "*wm:AutoConnect ",
                    "*wm:No wifi saved, skipping ",
                    "Entered Configuration Mode",
                    "Config SSID: NerdMinerAP",
                    "Config IP Address: 192.168.4.1",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            self.miner = miner;
            return (false, lines);
        };
        if let Some(p) = json.get("poolString").and_then(|v| v.as_str()) {
            miner.pool = p.to_owned();
        }
        if let Some(p) = json.get("portNumber").and_then(|v| v.as_u64()) {
            miner.port = u16::try_from(p).unwrap_or(miner.port);
        }
        if let Some(w) = json.get("btcString").and_then(|v| v.as_str()) {
            miner.wallet = w.to_owned();
        }
        let pretty = serde_json::to_string_pretty(&json).unwrap_or_default();
        let config: Vec<String> = pretty.lines().map(str::to_owned).collect();
        let lines = miner.boot_lines_with(&config);
        self.miner = miner;
        (true, lines)
    }

    /// `/config.json` from the SPIFFS partition; formats the partition when it does not
    /// mount, as `SPIFFS.begin(true)` does.
    fn spiffs_config(&mut self) -> Option<String> {
        let mut flash = lock(&self.shared.flash);
        let table = PartitionTable::from_flash_dump(&flash).ok()?;
        let part = table.spiffs().ok()?.clone();
        let (off, size) = (part.offset as usize, part.size as usize);
        let image = flash.get(off..off + size)?;
        match spiffs::read_image(image, &SpiffsParams::ARDUINO) {
            Ok(files) => files
                .into_iter()
                .find(|f| f.path == "/config.json")
                .map(|f| String::from_utf8_lossy(&f.data).into_owned()),
            Err(_) => {
                if let Ok(empty) = spiffs::build_image(&[], size, &SpiffsParams::ARDUINO) {
                    flash[off..off + size].copy_from_slice(&empty);
                }
                None
            }
        }
    }

    fn print(&mut self, lines: &[String]) {
        let mut text = String::new();
        for l in lines {
            // println ends lines in CRLF, printf("…\n") in LF: mix both like the firmware.
            text.push_str(l);
            text.push_str(if l.starts_with(">>>") { "\n" } else { "\r\n" });
        }
        if self.write(text.as_bytes()) {
            let n = lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
            lock(&self.shared.state).lines_written += n;
        }
    }

    /// Writes everything unless stopped: a reader that stopped reading must not hang the
    /// simulator's shutdown.
    fn write(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            match self.master.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(10u16));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    fn request(&mut self, frame: &[u8]) {
        let Some(req) = Request::decode(frame) else {
            return; // the ROM ignores what it cannot parse
        };
        if !self.cfg.rom_delay.is_zero() {
            std::thread::sleep(self.cfg.rom_delay);
        }
        let responses = {
            let mut flash = lock(&self.shared.flash);
            let mut hook = lock(&self.shared.hook);
            self.rom
                .handle(&req, &mut flash, hook.as_mut(), self.cfg.mac)
        };
        for r in responses {
            if !self.write(&slip::encode(&r.encode(ROM_STATUS_LEN))) {
                return;
            }
        }
        if self.rom.reboot_requested {
            self.boot(false);
        }
    }
}

/// The ROM loader's state between commands.
#[derive(Debug, Default)]
struct Rom {
    synced: bool,
    attached: bool,
    write: Option<WriteState>,
    reboot_requested: bool,
}

#[derive(Debug)]
struct WriteState {
    offset: u32,
    blocks: u32,
    block_size: u32,
    next: u32,
}

/// ROM error codes (esptool's names in `command::rom_error_name`).
const ERR_INVALID: u8 = 0x05;
const ERR_FAILED: u8 = 0x06;
const ERR_CRC: u8 = 0x07;
const ERR_READ: u8 = 0x09;

impl Rom {
    fn handle(
        &mut self,
        req: &Request,
        flash: &mut [u8],
        hook: Option<&mut WriteHook>,
        mac: [u8; 6],
    ) -> Vec<Response> {
        let op = req.op;
        let Some(known) = Op::from_u8(op) else {
            return vec![Response::fail(op, ERR_INVALID)];
        };
        if known == Op::Sync {
            self.synced = true;
            // The ROM answers one SYNC eight times.
            return vec![Response::ok(op, 0, vec![]); 8];
        }
        if !self.synced {
            return vec![]; // before SYNC the ROM is still autobauding: silence
        }
        let w = |i| req.word(i).unwrap_or(0);
        let flash_len = flash.len();
        let region = |off: u32, size: u32| -> Option<std::ops::Range<usize>> {
            let start = off as usize;
            let end = start.checked_add(size as usize)?;
            (end <= flash_len).then_some(start..end)
        };
        let resp = match known {
            Op::Sync => Response::ok(op, 0, vec![]),
            Op::ReadReg => Response::ok(op, read_reg(w(0), mac), vec![]),
            Op::SpiAttach => {
                self.attached = true;
                Response::ok(op, 0, vec![])
            }
            Op::SpiSetParams | Op::ChangeBaudrate => Response::ok(op, 0, vec![]),
            Op::ReadFlashSlow if !self.attached => Response::fail(op, ERR_READ),
            Op::ReadFlashSlow => match region(w(0), w(1).min(64)) {
                Some(r) if w(1) <= 64 => {
                    let mut data = flash[r].to_vec();
                    data.resize(64, 0xFF);
                    Response::ok(op, 0, data)
                }
                _ => Response::fail(op, ERR_READ),
            },
            Op::SpiFlashMd5 if !self.attached => Response::fail(op, ERR_READ),
            Op::SpiFlashMd5 => match region(w(0), w(1)) {
                Some(r) => {
                    let hex: String = Md5::digest(&flash[r])
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    Response::ok(op, 0, hex.into_bytes())
                }
                None => Response::fail(op, ERR_READ),
            },
            Op::FlashBegin if !self.attached => Response::fail(op, ERR_FAILED),
            Op::FlashBegin => {
                let (erase, blocks, block_size, offset) = (w(0), w(1), w(2), w(3));
                let end = erase.div_ceil(SECTOR).saturating_mul(SECTOR);
                match region(offset, end) {
                    Some(r) if offset % SECTOR == 0 && block_size > 0 => {
                        flash[r].fill(0xFF);
                        self.write = Some(WriteState {
                            offset,
                            blocks,
                            block_size,
                            next: 0,
                        });
                        Response::ok(op, 0, vec![])
                    }
                    _ => Response::fail(op, ERR_FAILED),
                }
            }
            Op::FlashData => self.flash_data(req, flash, hook),
            Op::FlashEnd => {
                self.write = None;
                if w(0) == 0 {
                    self.reboot_requested = true;
                }
                Response::ok(op, 0, vec![])
            }
            _ => Response::fail(op, ERR_INVALID),
        };
        vec![resp]
    }

    fn flash_data(
        &mut self,
        req: &Request,
        flash: &mut [u8],
        hook: Option<&mut WriteHook>,
    ) -> Response {
        let op = req.op;
        let Some(ws) = self.write.as_mut() else {
            return Response::fail(op, ERR_FAILED);
        };
        let len = req.word(0).unwrap_or(0) as usize;
        let seq = req.word(1).unwrap_or(u32::MAX);
        let Some(data) = req.data.get(16..16 + len) else {
            return Response::fail(op, ERR_INVALID);
        };
        if u32::from(checksum(data)) != req.checksum {
            return Response::fail(op, ERR_CRC);
        }
        if seq != ws.next || seq >= ws.blocks || len as u32 != ws.block_size {
            return Response::fail(op, ERR_FAILED);
        }
        ws.next += 1;
        let Some(addr) = seq
            .checked_mul(ws.block_size)
            .and_then(|a| a.checked_add(ws.offset))
        else {
            return Response::fail(op, ERR_FAILED);
        };
        let mut block = data.to_vec();
        if let Some(h) = hook {
            h(addr, &mut block);
        }
        let start = addr as usize;
        let end = (start + block.len()).min(flash.len());
        if start < end {
            // NOR flash: programming only clears bits.
            for (f, b) in flash[start..end].iter_mut().zip(&block) {
                *f &= *b;
            }
        }
        Response::ok(op, 0, vec![])
    }
}

/// The registers the loader reads: chip detect and the ESP32's MAC eFuses.
fn read_reg(address: u32, mac: [u8; 6]) -> u32 {
    match address {
        crate::flash::command::CHIP_DETECT_MAGIC_REG => ESP32_MAGIC,
        0x3FF5_A004 => u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]),
        0x3FF5_A008 => u32::from_be_bytes([0, 0, mac[0], mac[1]]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::lines::{run, ResetKind};
    use crate::flash::loader::Loader;

    fn config_file() -> SpiffsFile {
        SpiffsFile {
            path: "/config.json".into(),
            data: default_config_json(7).into_bytes(),
        }
    }

    fn open(path: &str) -> Box<dyn serialport::SerialPort> {
        serialport::new(path, 115_200)
            .timeout(Duration::from_millis(50))
            .open()
            .unwrap()
    }

    /// Reads the port until `pred` holds on what was read, or panics.
    fn read_until(port: &mut dyn serialport::SerialPort, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut text = String::new();
        let mut buf = [0u8; 1024];
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(n) = port.read(&mut buf) {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if pred(&text) {
                    return text;
                }
            }
        }
        panic!("never saw it; got:\n{text}");
    }

    #[test]
    fn boots_with_the_config_from_its_own_flash() {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        let sim = SimEsp32::spawn(SimEsp32Config::new(7, flash)).unwrap();
        let mut port = open(&sim.path);
        let text = read_until(port.as_mut(), |t| t.contains("Initiating tasks"));
        assert!(
            text.contains("\"poolString\": \"public-pool.io\""),
            "{text}"
        );
        assert!(sim.state(|s| s.configured));
    }

    #[test]
    fn bad_spiffs_is_formatted_and_the_miner_opens_its_portal() {
        let mut flash = huge_app_flash(&[config_file()]).unwrap();
        flash[0x31_0000..0x31_0000 + 0x2000].fill(0x00);
        let sim = SimEsp32::spawn(SimEsp32Config::new(8, flash)).unwrap();
        let mut port = open(&sim.path);
        let text = read_until(port.as_mut(), |t| t.contains("Config SSID"));
        assert!(text.contains("SPIFS: No config file available!"), "{text}");
        let after = sim.flash();
        let files = spiffs::read_image(&after[0x31_0000..0x3F_0000], &SpiffsParams::ARDUINO);
        assert_eq!(files.unwrap(), vec![]);
    }

    #[test]
    fn bootloader_sequence_then_loader_reads_and_hard_reset_boots_again() {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        let sim = SimEsp32::spawn(SimEsp32Config::new(9, flash.clone())).unwrap();
        let mut port = open(&sim.path);
        read_until(port.as_mut(), |t| t.contains("Initiating tasks"));
        let mut lines = sim.line_control();
        run(&mut lines, ResetKind::Bootloader, Wiring::Classic).unwrap();
        let mut loader = Loader::connect(port.as_mut()).unwrap();
        assert!(sim.state(|s| s.in_bootloader));
        let chip = loader.detect_chip().unwrap();
        assert_eq!(chip.name, "ESP32");
        assert_eq!(loader.mac(chip).unwrap(), "24:d7:eb:10:20:09");
        loader.attach_flash(FLASH_SIZE as u32).unwrap();
        let table = loader.read_flash(0x8000, 0xC00, &mut |_, _| {}).unwrap();
        assert_eq!(&table[..], &flash[0x8000..0x8C00]);
        let got = loader
            .read_flash_verified(0x31_0000, 0x4000, &mut |_, _| {})
            .unwrap();
        assert_eq!(&got[..], &flash[0x31_0000..0x31_4000]);

        // Writes change the image; a corrupting hook is caught by the MD5.
        let block = vec![0x5Au8; 0x1000];
        loader
            .write_flash(0x20_0000, &block, &mut |_, _| {})
            .unwrap();
        assert_eq!(&sim.flash()[0x20_0000..0x20_1000], &block[..]);
        sim.set_write_hook(Some(Box::new(|_, b: &mut [u8]| b[0] ^= 0xFF)));
        loader
            .write_flash(0x20_0000, &block, &mut |_, _| {})
            .unwrap();
        let md5 = loader.flash_md5(0x20_0000, 0x1000).unwrap();
        assert_ne!(md5.as_slice(), Md5::digest(&block).as_slice());
        sim.set_write_hook(None);

        // Corruption on the wire is caught by the ROM's checksum.
        sim.set_transit_hook(Some(Box::new(|f: &mut Vec<u8>| {
            if f.get(1) == Some(&0x03) {
                if let Some(last) = f.last_mut() {
                    *last ^= 0x01;
                }
            }
        })));
        let err = loader
            .write_flash(0x20_0000, &block, &mut |_, _| {})
            .unwrap_err();
        assert!(err.to_string().contains("invalid CRC"), "{err}");
        sim.set_transit_hook(None);

        let port = loader.into_inner();
        run(&mut lines, ResetKind::HardReset, Wiring::Classic).unwrap();
        read_until(port, |t| t.contains("NerdMiner v2 starting"));
        assert_eq!(
            sim.state(|s| (s.firmware_boots, s.bootloader_entries)),
            (2, 1)
        );
    }

    #[test]
    fn board_without_io0_wiring_never_syncs() {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        let mut cfg = SimEsp32Config::new(10, flash);
        cfg.io0_wired = false;
        let sim = SimEsp32::spawn(cfg).unwrap();
        let mut port = open(&sim.path);
        let mut lines = sim.line_control();
        run(&mut lines, ResetKind::Bootloader, Wiring::Classic).unwrap();
        let err = Loader::connect(port.as_mut()).err().unwrap();
        assert!(err.to_string().contains("BOOT"), "{err}");
        assert_eq!(sim.state(|s| s.firmware_boots), 2);
    }

    proptest::proptest! {
        #[test]
        fn rom_answers_arbitrary_requests_without_panicking(
            op in 0u8..0x20,
            words in proptest::collection::vec(proptest::num::u32::ANY, 0..8),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            data.extend_from_slice(&tail);
            let mut flash = vec![0xFFu8; 0x4000];
            let mut rom = Rom { synced: true, attached: true, ..Rom::default() };
            let req = Request { op, checksum: 0, data };
            let _ = rom.handle(&req, &mut flash, None, [0; 6]);
            let begin = Request { op: 0x02, checksum: 0, data: [0x1000u32, 4, 0x400, 0x1000].iter().flat_map(|w| w.to_le_bytes()).collect() };
            let _ = rom.handle(&begin, &mut flash, None, [0; 6]);
            let huge = Request { op: 0x02, checksum: 0, data: [u32::MAX, u32::MAX, 4, 0].iter().flat_map(|w| w.to_le_bytes()).collect() };
            let _ = rom.handle(&huge, &mut flash, None, [0; 6]);
            let _ = rom.handle(&Request { op, checksum: 0xEF, data: tail.clone() }, &mut flash, None, [0; 6]);
        }
    }

    #[test]
    fn usb_jtag_board_follows_its_own_sequence() {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        let mut cfg = SimEsp32Config::new(11, flash);
        cfg.wiring = Wiring::UsbJtag;
        let sim = SimEsp32::spawn(cfg).unwrap();
        let mut port = open(&sim.path);
        let mut lines = sim.line_control();
        run(&mut lines, ResetKind::Bootloader, Wiring::UsbJtag).unwrap();
        let mut loader = Loader::connect(port.as_mut()).unwrap();
        assert_eq!(loader.detect_chip().unwrap().name, "ESP32");
        drop(loader);
        run(&mut lines, ResetKind::HardReset, Wiring::UsbJtag).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(sim.state(|s| !s.in_bootloader && s.firmware_boots == 2));
    }
}
