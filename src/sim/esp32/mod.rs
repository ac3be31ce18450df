//! A simulated ESP32 or ESP32-S3 NerdMiner on a pseudo-terminal, backed by a flash image.
//!
//! In firmware mode it prints the ROM banner and a NerdMiner boot log whose configuration it
//! reads from its own flash (partition table at 0x8000, SPIFFS partition, `/config.json`) — an
//! unreadable SPIFFS is formatted and the miner comes up in its setup portal, as real firmware
//! does — then mining lines. It follows DTR/RTS changes delivered through [`Forwarding`] with
//! a model of the board's auto-reset circuit (or of the S3's USB-Serial/JTAG), and in download
//! mode it answers the serial loader protocol as the chip's ROM does and, once uploaded, as
//! esptool's flasher stub does (`rom.rs`, `stub.rs`): register reads and writes (eFuses, the
//! SPI flash controller in `spi.rs`, the S3's watchdogs and FORCE_DOWNLOAD_BOOT), reads, MD5,
//! plain and compressed writes that change the image. Per-chip facts are in `chips.rs`.
//!
//! The real esptool checks it: `tests/esptool.rs` runs esptool 5.6.0 against both chips,
//! with and without its stub.

mod chips;
pub mod link;
#[cfg(test)]
mod protocol_tests;
mod rom;
mod spi;
mod stub;

use crate::flash::command::Request;
pub use chips::{ResetReason, SimChip};

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::nerdminer::{Board, SimMiner};
use super::pty::Pty;
use crate::flash::lines::{Forwarding, LineEvent, Wiring};
use crate::flash::partitions::PartitionTable;
use crate::flash::slip;
use crate::flash::spiffs::{self, SpiffsFile, SpiffsParams};
use rom::{Ctx, Exit, Loader, Watchdogs};

/// Flash size of the boards NerdMiner runs on.
pub const FLASH_SIZE: usize = 4 << 20;
/// How long EN must stay high, with no further line change, before the chip leaves reset and
/// samples IO0 (the RC delay on a real board's EN pin).
const RELEASE_DELAY: Duration = Duration::from_millis(5);
/// How long the S3's RTC watchdog runs after the firmware's last configuration before it
/// resets the chip: ESP-IDF's bootloader arms it for 9 s (`CONFIG_BOOTLOADER_WDT_TIME_MS`).
pub const S3_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(9);

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
    /// Which chip (default: classic ESP32).
    pub chip: SimChip,
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
    /// Power on straight into download mode: the owner held BOOT while plugging it in (no
    /// DTR/RTS involved).
    pub start_in_download: bool,
    /// ESP32-S3 on USB-Serial/JTAG: how long the watchdogs the firmware left running keep
    /// counting in download mode before they reset the chip, unless the host disables them as
    /// esptool's `disable_watchdogs` does. None: they never fire.
    pub watchdog_timeout: Option<Duration>,
    /// ESP32-S3: the firmware has set RTC_CNTL_OPTION1 FORCE_DOWNLOAD_BOOT after booting (as
    /// Arduino's "restart into the bootloader" does). Every reset that keeps the RTC domain
    /// (USB-Serial/JTAG, software, watchdog) then goes to download mode until a host clears
    /// it, as esptool's `ESP32S3ROM.hard_reset` does first; EN or power-on clears it.
    pub force_download_boot: bool,
    /// The USB link and the flash chip's timings (a bridge that fails at speed; pacing for
    /// benchmarks). Default: any rate, no pacing.
    pub link: link::LinkModel,
    /// The ROM's answer to FLASH_END(run user code) and the firmware's first lines reach the
    /// host in one read, as when a USB bridge packs both into one packet (a CP210x sends up to
    /// 64 bytes a packet, and the firmware starts the moment the ROM has answered): the host
    /// must not lose the lines the loader read with its last reply. Default: apart.
    pub exit_in_one_read: bool,
}

impl SimEsp32Config {
    /// A classic ESP32 board with `flash`.
    pub fn new(seed: u64, flash: Vec<u8>) -> Self {
        Self::for_chip(SimChip::Esp32, seed, flash)
    }

    /// A board with `chip`, wired the usual way for it (UART bridge for the ESP32,
    /// USB-Serial/JTAG for the S3), with a MAC from `seed`.
    pub fn for_chip(chip: SimChip, seed: u64, flash: Vec<u8>) -> Self {
        Self {
            chip,
            seed,
            board: Board::NoDisplay,
            flash,
            wiring: chip.default_wiring(),
            io0_wired: true,
            config_source: ConfigSource::Spiffs,
            line_interval: Duration::from_secs(1),
            mac: chip.default_mac(seed),
            rom_delay: Duration::ZERO,
            start_in_download: false,
            watchdog_timeout: (chip == SimChip::Esp32S3).then_some(S3_WATCHDOG_TIMEOUT),
            force_download_boot: false,
            link: link::LinkModel::default(),
            exit_in_one_read: false,
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
    /// Whether it is in its bootloader (ROM loader or stub) now.
    pub in_bootloader: bool,
    /// Whether the flasher stub runs now (uploaded with MEM_* and started).
    pub in_stub: bool,
    /// Times a flasher stub started (greeted with OHAI).
    pub stub_starts: u32,
    /// Times an S3 watchdog reset the chip.
    pub watchdog_resets: u32,
    /// Why the chip last (re)started.
    pub last_reset: Option<ResetReason>,
    /// Every WRITE_REG entry applied, in order: (address, value, mask).
    pub write_regs: Vec<(u32, u32, u32)>,
    /// Every loader opcode received, in order (ROM and stub).
    pub loader_ops: Vec<u8>,
    /// SPI flash commands run through the controller's registers (0x9F RDID, …).
    pub spi_commands: Vec<u8>,
    /// ESP32-S3 FORCE_DOWNLOAD_BOOT now.
    pub force_download_boot: bool,
    /// Whether an S3 watchdog is counting now.
    pub watchdog_active: bool,
    /// The chip jumped to RAM holding no code and hangs until reset.
    pub crashed: bool,
    /// Every line change received, in order.
    pub line_events: Vec<LineEvent>,
    /// Whether the last boot found a configuration (false: setup portal).
    pub configured: bool,
    /// Non-empty lines written in full (demo shutdown checks that ingest stored them all).
    pub lines_written: u64,
    /// The firmware hangs: it prints nothing more until a reset, while the USB bridge keeps
    /// the port open ([`SimEsp32::hang`]).
    pub hung: bool,
    /// The USB bridge ignores DTR/RTS until the port's power is cycled
    /// ([`SimEsp32::wedge_bridge`]).
    pub bridge_wedged: bool,
    /// Times the port's power was cycled ([`SimEsp32::power_cycle`]).
    pub power_cycles: u32,
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
    /// Set by [`SimEsp32::power_cycle`], taken by the chip's thread.
    power: Arc<AtomicBool>,
    thread: Option<JoinHandle<File>>,
    master: Option<File>,
}

impl SimEsp32 {
    /// Powers the board on: it boots its firmware (or, with `start_in_download`, its ROM
    /// loader) and starts printing.
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
        let power = Arc::new(AtomicBool::new(false));
        let lines = Forwarding::new(tx, config.wiring);
        let mut chip = Chip {
            force_download: false,
            latched_download: false,
            held: Vec::new(),
            loader: Loader::new(config.chip, Watchdogs::stopped()),
            cfg: config,
            master,
            rx,
            shared: shared.clone(),
            stop: stop.clone(),
            power: power.clone(),
            dtr: false,
            rts: false,
            in_reset: false,
            download_requested: false,
            last_event: Instant::now(),
            mode: Mode::Off,
            miner: SimMiner::new(0, Board::NoDisplay),
            next_tick: Instant::now(),
            decoder: slip::Decoder::new(),
            reply_baud: None,
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
            power,
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

    /// The firmware hangs where it is: no more output, the port stays open, and only a reset
    /// brings it back. What owners of real boards report: a NerdMiner that "stops mining
    /// after 2 days" while its screen still shows the clock (BitMaker-hub/NerdMiner_v2 issue
    /// #104), or that "sometimes stops and I need to unplug it and replug" (issue #118). The
    /// USB-serial bridge (CP2102, CH340) is a chip of its own, powered from the USB cable, so
    /// the host still sees the port while the ESP32 behind it is stuck.
    pub fn hang(&self) {
        lock(&self.shared.state).hung = true;
    }

    /// Hangs the firmware and makes the USB bridge ignore DTR/RTS (a wedged bridge: the
    /// serial reset does not reach EN), so only a power cycle of the port brings it back. As
    /// reported for CP210x bridges on a Raspberry Pi: the driver's control requests time out
    /// (`cp210x ttyUSB4: failed set request 0x0 status: -110`, `cp210x_open - Unable to enable
    /// UART`) until the hub is disconnected and connected again (Granjow/reset-usb README, after
    /// forums.raspberrypi.com t=305993; fixed in the kernel from 5.12 for that case).
    pub fn wedge_bridge(&self) {
        let mut st = lock(&self.shared.state);
        st.hung = true;
        st.bridge_wedged = true;
    }

    /// The hub switches the port's power off and on: bridge and chip start from power-on.
    pub fn power_cycle(&self) {
        lock(&self.shared.state).power_cycles += 1;
        self.power.store(true, Ordering::Relaxed);
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
    /// Ran into RAM without code (a bad MEM_END entry): deaf until reset.
    Crashed,
}

struct Chip {
    cfg: SimEsp32Config,
    master: File,
    rx: Receiver<LineEvent>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    power: Arc<AtomicBool>,
    dtr: bool,
    rts: bool,
    in_reset: bool,
    download_requested: bool,
    last_event: Instant,
    mode: Mode,
    miner: SimMiner,
    next_tick: Instant,
    decoder: slip::Decoder,
    /// The rate a reply being written goes out at (the rate its command came in at).
    reply_baud: Option<u32>,
    loader: Loader,
    /// S3 RTC_CNTL_OPTION1 FORCE_DOWNLOAD_BOOT: an RTC register, kept across every reset but
    /// power-on.
    force_download: bool,
    /// The boot mode the strapping pins gave at the last chip reset.
    latched_download: bool,
    /// Reply bytes held back to go out with the firmware's first lines
    /// (`SimEsp32Config::exit_in_one_read`).
    held: Vec<u8>,
}

impl Chip {
    fn run(&mut self) {
        let download = self.cfg.start_in_download;
        self.boot(download, ResetReason::PowerOn);
        // As the firmware (or ROM) left it after that boot: power-on cleared the RTC domain.
        self.force_download = self.cfg.force_download_boot && self.cfg.chip == SimChip::Esp32S3;
        let mut buf = [0u8; 4096];
        while !self.stop.load(Ordering::Relaxed) {
            // Read before the power flag: line changes sent while the bridge was wedged are
            // lost even when the power comes back in the same turn.
            let power = self.power.swap(false, Ordering::Relaxed);
            let wedged = lock(&self.shared.state).bridge_wedged;
            while let Ok(ev) = self.rx.try_recv() {
                if wedged {
                    continue; // the bridge no longer drives DTR/RTS
                }
                self.line_event(ev);
            }
            if power {
                {
                    let mut st = lock(&self.shared.state);
                    st.hung = false;
                    st.bridge_wedged = false;
                }
                (self.dtr, self.rts, self.in_reset) = (false, false, false);
                self.boot(false, ResetReason::PowerOn);
            }
            let hung = lock(&self.shared.state).hung;
            if self.in_reset && !self.en_low() && self.last_event.elapsed() >= RELEASE_DELAY {
                let (requested, reason) = match self.cfg.wiring {
                    Wiring::Classic => (self.io0_low(), ResetReason::PowerOn),
                    Wiring::UsbJtag => (self.download_requested, ResetReason::UsbJtag),
                };
                self.boot(requested && self.cfg.io0_wired, reason);
            }
            if self.mode == Mode::Bootloader {
                if let Some(reason) = self.loader.watchdogs.fired(Instant::now()) {
                    // A watchdog reset is a chip reset: the strapping pins are sampled again
                    // (IO0 is high by now), so flash boot unless FORCE_DOWNLOAD_BOOT.
                    lock(&self.shared.state).watchdog_resets += 1;
                    self.boot(false, reason);
                }
            }
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(2u16));
            loop {
                match self.master.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if self.mode == Mode::Bootloader && !self.in_reset {
                            let baud = self.loader.baud;
                            if self.garbled(baud) {
                                buf[..n].iter_mut().for_each(|b| *b = link::garble(*b));
                            }
                            if self.paced() {
                                std::thread::sleep(link::wire_time(n, baud));
                            }
                            let mut frames = Vec::new();
                            self.decoder.push(&buf[..n], &mut frames);
                            for mut f in frames {
                                if let Some(h) = lock(&self.shared.transit).as_mut() {
                                    h(&mut f);
                                }
                                self.request(&f);
                                if self.mode != Mode::Bootloader {
                                    break; // it left the loader: the rest goes unheard
                                }
                            }
                        } // a running firmware ignores what the host sends
                    }
                    Err(_) => break, // WouldBlock: nothing more now
                }
            }
            if self.mode == Mode::Firmware
                && !self.in_reset
                && !hung
                && Instant::now() >= self.next_tick
            {
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
            // USB-Serial/JTAG decodes the same combination as "reset the chip" (esptool
            // `USBJTAGSerialReset`, `HardReset`).
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

    /// Starts the chip after a reset: the ROM prints its banner and either waits for the
    /// download protocol or boots the firmware. `pins_download` is what the strapping pins
    /// (IO0, or the USB-Serial/JTAG's request) say at a chip reset; a software reset keeps
    /// the boot mode latched at the last chip reset. FORCE_DOWNLOAD_BOOT overrides both.
    fn boot(&mut self, pins_download: bool, reason: ResetReason) {
        if reason != ResetReason::Software {
            self.latched_download = pins_download;
        }
        if reason == ResetReason::PowerOn {
            // Power-on (or EN, which powers the chip down) clears the RTC registers.
            self.force_download = false;
        }
        let download = self.latched_download || self.force_download;
        self.in_reset = false;
        self.download_requested = false;
        self.decoder.reset();
        lock(&self.shared.state).last_reset = Some(reason);
        let banner = self.cfg.chip.banner(reason, download);
        if download {
            self.enter_loader(reason);
            self.print(&banner);
            return;
        }
        self.print(&banner);
        self.start_firmware();
    }

    fn enter_loader(&mut self, reason: ResetReason) {
        // Only a USB-Serial/JTAG reset out of running firmware leaves the S3's watchdogs
        // running (esptool `ESP32S3ROM.disable_watchdogs`); a power-on or a watchdog reset
        // starts with them stopped.
        let watchdogs = match (self.cfg.chip, reason, self.cfg.watchdog_timeout) {
            (SimChip::Esp32S3, ResetReason::UsbJtag, Some(t)) => {
                Watchdogs::running(Instant::now(), t)
            }
            _ => Watchdogs::stopped(),
        };
        self.loader = Loader::new(self.cfg.chip, watchdogs);
        self.mode = Mode::Bootloader;
        let mut st = lock(&self.shared.state);
        st.bootloader_entries += 1;
        st.in_bootloader = true;
        st.in_stub = false;
        st.crashed = false;
        st.watchdog_active = self.loader.watchdogs.active();
        st.force_download_boot = self.force_download;
    }

    fn start_firmware(&mut self) {
        let (config, lines) = self.firmware_boot_log();
        {
            let mut st = lock(&self.shared.state);
            st.firmware_boots += 1;
            st.in_bootloader = false;
            st.in_stub = false;
            st.crashed = false;
            st.watchdog_active = false;
            st.configured = config;
            st.hung = false;
        }
        self.mode = if config {
            Mode::Firmware
        } else {
            Mode::SetupPortal
        };
        self.next_tick = Instant::now() + self.cfg.line_interval;
        self.print(&lines);
    }

    fn request(&mut self, frame: &[u8]) {
        if !self.cfg.rom_delay.is_zero() {
            std::thread::sleep(self.cfg.rom_delay);
        }
        // The answer goes out at the rate the command came in at (CHANGE_BAUDRATE switches
        // after answering: esptool `change_baud` reads the reply at the old rate).
        self.reply_baud = Some(self.loader.baud);
        if self.cfg.link.pace {
            if let Some(req) = Request::decode(frame) {
                std::thread::sleep(link::busy_time(&req, self.loader.stub));
            }
        }
        let reply = {
            let mut flash = lock(&self.shared.flash);
            let mut hook = lock(&self.shared.hook);
            let mut ctx = Ctx {
                chip: self.cfg.chip,
                mac: self.cfg.mac,
                flash: &mut flash,
                hook: hook.as_mut(),
                force_download: &mut self.force_download,
                now: Instant::now(),
            };
            self.loader.handle(frame, &mut ctx)
        };
        {
            let mut st = lock(&self.shared.state);
            st.write_regs.append(&mut self.loader.write_regs);
            st.loader_ops.append(&mut self.loader.ops);
            st.spi_commands.append(&mut self.loader.spi.commands);
            if self.loader.stub && !st.in_stub {
                st.stub_starts += 1;
            }
            st.in_stub = self.loader.stub;
            st.force_download_boot = self.force_download;
            st.watchdog_active = self.loader.watchdogs.active();
        }
        let hold = self.cfg.exit_in_one_read && matches!(reply.exit, Exit::RunUserCode);
        for f in &reply.frames {
            if hold {
                self.held.extend(slip::encode(f));
                continue;
            }
            if !self.write(&slip::encode(f)) {
                self.reply_baud = None;
                return;
            }
        }
        self.reply_baud = None;
        match reply.exit {
            Exit::Stay => {}
            Exit::Reboot => {
                // A software reset does not sample the strapping pins again: the chip restarts
                // in the boot mode latched at its last chip reset — the ROM loader, if that is
                // how it got here (esptool `soft_reset`: from the stub, FLASH_END(reboot)
                // "will re-load the ROM bootloader"). A host that wants the firmware resets
                // the chip through EN (RTS), or sends FLASH_END(1).
                self.boot(false, ResetReason::Software);
            }
            Exit::RunUserCode => {
                // The ROM jumps to the application without a reset: no banner.
                self.decoder.reset();
                self.start_firmware();
            }
            Exit::Crash => {
                self.mode = Mode::Crashed;
                lock(&self.shared.state).crashed = true;
            }
        }
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
        // The ROM banner is the chip's (printed by `boot`), not the firmware's.
        let lines = miner
            .boot_lines_with(&config)
            .into_iter()
            .filter(|l| !l.starts_with("ets Jun") && !l.starts_with("rst:"))
            .collect();
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
        let mut bytes = std::mem::take(&mut self.held);
        bytes.extend_from_slice(text.as_bytes());
        if self.write(&bytes) {
            let n = lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
            lock(&self.shared.state).lines_written += n;
        }
    }

    /// Writes everything unless stopped: a reader that stopped reading must not hang the
    /// simulator's shutdown.
    fn write(&mut self, bytes: &[u8]) -> bool {
        // The firmware and the ROM's banner talk at 115200; the loader at its current rate.
        let baud = match self.mode {
            Mode::Bootloader => self.reply_baud.unwrap_or(self.loader.baud),
            _ => 115_200,
        };
        if self.paced() {
            std::thread::sleep(link::wire_time(bytes.len(), baud));
        }
        if self.garbled(baud) {
            let garbled: Vec<u8> = bytes.iter().map(|b| link::garble(*b)).collect();
            return self.write_raw(&garbled);
        }
        self.write_raw(bytes)
    }

    /// Whether bytes take a UART's time: a bridge's serial side does; USB-Serial/JTAG moves
    /// USB packets at no baud rate, which this model does not time.
    fn paced(&self) -> bool {
        self.cfg.link.pace && self.cfg.wiring == Wiring::Classic
    }

    /// Whether the bridge garbles bytes at `baud` (above its `max_baud`, bridges only).
    fn garbled(&self, baud: u32) -> bool {
        self.cfg.wiring == Wiring::Classic && self.cfg.link.max_baud.is_some_and(|m| baud > m)
    }

    fn write_raw(&mut self, mut bytes: &[u8]) -> bool {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::lines::{run, ResetKind};
    use crate::flash::loader::Loader;
    use md5::{Digest, Md5};

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
        read_more(port, String::new(), pred)
    }

    /// The same, starting from `text` already read (a loader's `take_text`).
    fn read_more(
        port: &mut dyn serialport::SerialPort,
        mut text: String,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let start = Instant::now();
        if pred(&text) {
            return text;
        }
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

    /// A hung firmware prints nothing until a reset through the lines brings it back; with a
    /// wedged bridge the reset is lost and only a power cycle does.
    #[test]
    fn a_hang_needs_a_reset_and_a_wedged_bridge_a_power_cycle() {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        let mut cfg = SimEsp32Config::new(12, flash);
        cfg.line_interval = Duration::from_millis(20);
        let sim = SimEsp32::spawn(cfg).unwrap();
        let mut port = open(&sim.path);
        read_until(port.as_mut(), |t| t.contains(">>> Completed"));
        sim.hang();
        let boots = sim.state(|s| s.firmware_boots);
        let mut lines = sim.line_control();
        run(&mut lines, ResetKind::HardReset, Wiring::Classic).unwrap();
        let text = read_until(port.as_mut(), |t| {
            t.contains("Initiating tasks") && t.contains(">>> Completed")
        });
        assert!(text.contains("rst:0x1 (POWERON_RESET)"), "{text}");
        assert_eq!(
            sim.state(|s| (s.firmware_boots, s.hung)),
            (boots + 1, false)
        );

        sim.wedge_bridge();
        run(&mut lines, ResetKind::HardReset, Wiring::Classic).unwrap();
        sim.power_cycle();
        read_until(port.as_mut(), |t| t.contains("Initiating tasks"));
        let st = sim.state(|s| (s.firmware_boots, s.power_cycles, s.bridge_wedged, s.hung));
        assert_eq!(
            st,
            (boots + 2, 1, false, false),
            "the wedged reset was lost"
        );
        // The bridge obeys the lines again.
        run(&mut lines, ResetKind::HardReset, Wiring::Classic).unwrap();
        read_until(port.as_mut(), |t| t.contains("Initiating tasks"));
        assert_eq!(sim.state(|s| s.firmware_boots), boots + 3);
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

        // Writes change the image (FLASH_BEGIN + FLASH_DATA; no FLASH_END, which would leave
        // the ROM loader); a corrupting hook is caught by the MD5.
        let block = vec![0x5Au8; 0x1000];
        fn write<T: Read + Write>(
            loader: &mut Loader<T>,
            block: &[u8],
        ) -> Result<(), crate::flash::transport::LoaderError> {
            let blocks = loader.flash_begin(0x20_0000, block.len() as u32)?;
            for (seq, chunk) in block.chunks(0x400).enumerate().take(blocks as usize) {
                loader.flash_data(seq as u32, chunk)?;
            }
            Ok(())
        }
        write(&mut loader, &block).unwrap();
        assert_eq!(&sim.flash()[0x20_0000..0x20_1000], &block[..]);
        sim.set_write_hook(Some(Box::new(|_, b: &mut [u8]| b[0] ^= 0xFF)));
        write(&mut loader, &block).unwrap();
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
        let err = write(&mut loader, &block).unwrap_err();
        assert!(err.to_string().contains("invalid CRC"), "{err}");
        sim.set_transit_hook(None);
        assert!(sim.state(|s| s.in_bootloader), "still in the ROM loader");

        let port = loader.into_inner();
        run(&mut lines, ResetKind::HardReset, Wiring::Classic).unwrap();
        read_until(port, |t| t.contains("NerdMiner v2 starting"));
        assert_eq!(
            sim.state(|s| (s.firmware_boots, s.bootloader_entries)),
            (2, 1)
        );
    }

    #[test]
    fn flash_end_leaves_the_rom_loader_whatever_its_value() {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        let mut cfg = SimEsp32Config::new(12, flash);
        cfg.start_in_download = true;
        let sim = SimEsp32::spawn(cfg).unwrap();
        let mut port = open(&sim.path);
        read_until(port.as_mut(), |t| t.contains("waiting for download"));
        assert!(sim.state(|s| s.in_bootloader && s.firmware_boots == 0));

        // FLASH_END(1): "run user code" — the firmware starts, without a reset banner.
        let mut loader = Loader::connect(port.as_mut()).unwrap();
        loader.flash_end(false).unwrap();
        let port = loader.into_inner();
        // The firmware runs (its mining lines follow; the boot log went to the loader's
        // reader), and no reset happened: the last one is still the power-on.
        read_until(port, |t| t.contains(">>> Completed"));
        assert_eq!(
            sim.state(|s| (
                s.in_bootloader,
                s.firmware_boots,
                s.bootloader_entries,
                s.last_reset
            )),
            (false, 1, 1, Some(ResetReason::PowerOn))
        );
    }

    #[test]
    fn flash_end_reboot_is_a_software_reset_into_the_latched_boot_mode() {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        let mut cfg = SimEsp32Config::new(13, flash);
        cfg.start_in_download = true;
        let sim = SimEsp32::spawn(cfg).unwrap();
        let mut port = open(&sim.path);
        read_until(port.as_mut(), |t| t.contains("waiting for download"));
        let mut loader = Loader::connect(port.as_mut()).unwrap();
        loader.flash_end(true).unwrap();
        let seen = String::from_utf8_lossy(&loader.take_text()).into_owned();
        let port = loader.into_inner();
        let text = read_more(port, seen, |t| {
            t.contains("SW_CPU_RESET") && t.contains("waiting for download")
        });
        assert!(text.contains("rst:0xc (SW_CPU_RESET)"), "{text}");
        assert_eq!(
            sim.state(|s| (s.bootloader_entries, s.firmware_boots, s.last_reset)),
            (2, 0, Some(ResetReason::Software))
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

    /// Sends one request and returns the ROM's answer to it.
    fn raw_command(
        port: &mut dyn serialport::SerialPort,
        op: u8,
        data: &[u8],
    ) -> crate::flash::command::Response {
        let mut p = vec![0, op];
        p.extend_from_slice(&(data.len() as u16).to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(data);
        port.write_all(&slip::encode(&p)).unwrap();
        let mut d = slip::Decoder::new();
        let mut buf = [0u8; 256];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let n = port.read(&mut buf).unwrap_or(0);
            let mut frames = Vec::new();
            d.push(&buf[..n], &mut frames);
            for f in frames {
                if let Some(r) = crate::flash::command::Response::decode(&f, 4) {
                    if r.op == op {
                        return r;
                    }
                }
            }
        }
        panic!("no answer to {op:#x}");
    }

    fn write_reg(port: &mut dyn serialport::SerialPort, address: u32, value: u32, mask: u32) {
        let data: Vec<u8> = [address, value, mask, 0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(raw_command(port, 0x09, &data).status, 0);
    }

    fn s3_config(seed: u64) -> SimEsp32Config {
        let flash = huge_app_flash(&[config_file()]).unwrap();
        SimEsp32Config::for_chip(SimChip::Esp32S3, seed, flash)
    }

    #[test]
    fn s3_watchdogs_reset_the_chip_unless_the_host_disables_them() {
        let mut cfg = s3_config(14);
        // Long enough for the host to sync and send six WRITE_REGs on a busy machine.
        cfg.watchdog_timeout = Some(Duration::from_millis(1000));
        let sim = SimEsp32::spawn(cfg).unwrap();
        let mut port = open(&sim.path);
        let text = read_until(port.as_mut(), |t| t.contains("Initiating tasks"));
        assert!(text.contains("ESP-ROM:esp32s3"), "{text}");
        let mut lines = sim.line_control();

        // Into download mode through the USB-Serial/JTAG: the watchdogs keep running and,
        // with nobody disabling them, reset the chip back into its firmware.
        run(&mut lines, ResetKind::Bootloader, Wiring::UsbJtag).unwrap();
        let text = read_until(port.as_mut(), |t| t.contains("waiting for download"));
        assert!(text.contains("rst:0x15 (USB_UART_CHIP_RESET)"), "{text}");
        assert!(sim.state(|s| s.in_bootloader && s.watchdog_active));
        let port = port.as_mut();
        let text = read_until(port, |t| t.contains("Initiating tasks"));
        assert!(text.contains("rst:0x10 (RTCWDT_RTC_RST)"), "{text}");
        assert_eq!(
            sim.state(|s| (s.watchdog_resets, s.firmware_boots, s.last_reset)),
            (1, 2, Some(ResetReason::RtcWatchdog))
        );

        // Again, now disabling them as esptool's `disable_watchdogs` does.
        run(&mut lines, ResetKind::Bootloader, Wiring::UsbJtag).unwrap();
        let loader = Loader::connect(&mut *port).unwrap();
        let port = loader.into_inner();
        use chips::s3_rtc::*;
        write_reg(port, WDTWPROTECT, WDT_WKEY, u32::MAX);
        write_reg(port, WDTCONFIG0, 0, u32::MAX);
        write_reg(port, WDTWPROTECT, 0, u32::MAX);
        write_reg(port, SWD_WPROTECT, SWD_WKEY, u32::MAX);
        write_reg(port, SWD_CONF, SWD_AUTO_FEED_EN, u32::MAX);
        write_reg(port, SWD_WPROTECT, 0, u32::MAX);
        assert!(sim.state(|s| !s.watchdog_active));
        assert_eq!(sim.state(|s| s.write_regs.len()), 6);
        std::thread::sleep(Duration::from_millis(2500));
        assert_eq!(
            sim.state(|s| (s.in_bootloader, s.watchdog_resets)),
            (true, 1)
        );
    }

    #[test]
    fn s3_force_download_boot_holds_it_in_download_mode_until_cleared() {
        let mut cfg = s3_config(15);
        cfg.watchdog_timeout = None;
        cfg.force_download_boot = true;
        let sim = SimEsp32::spawn(cfg).unwrap();
        let mut port = open(&sim.path);
        read_until(port.as_mut(), |t| t.contains("Initiating tasks"));
        let mut lines = sim.line_control();

        // A hard reset (RTS through the USB-Serial/JTAG) keeps the RTC register: download.
        run(&mut lines, ResetKind::HardReset, Wiring::UsbJtag).unwrap();
        let text = read_until(port.as_mut(), |t| t.contains("waiting for download"));
        assert!(text.contains("rst:0x15 (USB_UART_CHIP_RESET)"), "{text}");
        assert!(sim.state(|s| s.in_bootloader && s.force_download_boot));

        // esptool `ESP32S3ROM.hard_reset` clears the bit first; then the reset boots the app.
        let loader = Loader::connect(port.as_mut()).unwrap();
        let port = loader.into_inner();
        write_reg(
            port,
            chips::s3_rtc::OPTION1,
            0,
            chips::s3_rtc::FORCE_DOWNLOAD_BOOT,
        );
        assert!(sim.state(|s| !s.force_download_boot));
        run(&mut lines, ResetKind::HardReset, Wiring::UsbJtag).unwrap();
        read_until(port, |t| t.contains("Initiating tasks"));
        assert_eq!(
            sim.state(|s| (s.firmware_boots, s.bootloader_entries)),
            (2, 1)
        );
    }
}
