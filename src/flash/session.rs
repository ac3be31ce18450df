//! A whole conversation with a chip's ROM loader, as esptool holds one: connect (reset
//! strategies in turn, SYNC after each), detect the chip, switch off what would reset it
//! mid-flash, learn the flash size, go faster where the link allows, and leave it running its
//! firmware again. The operations in between are [`Loader`]'s.

use std::time::{Duration, Instant};

use super::chips::{ChipInfo, SecurityInfo};
use super::lines::{self, ResetKind, Wiring};
use super::loader::Loader;
use super::port::LoaderPort;
use super::transport::LoaderError;

pub use super::command::ROM_BAUD;
/// Rates tried for the stub, fastest first: a bridge that fails at one (a CH340 at 921600)
/// gets the next; USB-Serial/JTAG ignores the rate altogether.
pub const FAST_BAUDS: &[u32] = &[921_600, 460_800];
/// Connection attempts, each a reset and up to [`SYNCS_PER_RESET`] SYNCs (esptool
/// `DEFAULT_CONNECT_ATTEMPTS`).
pub const CONNECT_ATTEMPTS: u32 = 7;
/// SYNCs after each reset (esptool `_connect_attempt`).
pub const SYNCS_PER_RESET: u32 = 5;
/// How long a manual-mode session waits for a board put into download mode by hand.
pub const MANUAL_WAIT: Duration = Duration::from_secs(30);

/// How to reach the loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Reset into the bootloader with DTR/RTS (false: `--no-reset`, the owner held BOOT while
    /// plugging the board in; esptool `--before no-reset`).
    pub reset: bool,
    /// Start the flasher stub and raise the baud rate (needs the reset lines: a failed try
    /// is undone by a reset).
    pub fast: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            reset: true,
            fast: true,
        }
    }
}

/// What was learnt on connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The chip.
    pub chip: &'static ChipInfo,
    /// Its factory MAC.
    pub mac: String,
    /// GET_SECURITY_INFO, where the ROM has it.
    pub security: Option<SecurityInfo>,
    /// The SPI flash's JEDEC id.
    pub flash_id: u32,
    /// The flash size it names.
    pub flash_size: u32,
    /// The baud rate the session runs at.
    pub baud: u32,
    /// The flasher stub answers (else the ROM).
    pub stub: bool,
    /// Each rate tried and what came of it (`shepherd doctor` prints them).
    pub bauds_tried: Vec<(u32, Result<(), String>)>,
}

/// Resets into the bootloader and synchronises, cycling esptool's reset strategies (the
/// classic sequence with its normal and its extra delay; the USB-Serial/JTAG one), or, in
/// manual mode, waits for a board already in download mode.
pub fn sync<T: LoaderPort>(
    loader: &mut Loader<T>,
    opts: Options,
    status: &mut dyn FnMut(String),
) -> Result<(), LoaderError> {
    if !opts.reset {
        status(format!(
            "waiting up to {} s for SYNC from a board in download mode (--no-reset: hold BOOT \
             while plugging it in, or hold BOOT and press RESET)",
            MANUAL_WAIT.as_secs()
        ));
        let deadline = Instant::now() + MANUAL_WAIT;
        loop {
            match loader.sync_attempts(SYNCS_PER_RESET) {
                Ok(()) => return Ok(()),
                Err(LoaderError::NoSync { .. }) if Instant::now() < deadline => {}
                Err(LoaderError::NoSync { attempts }) => {
                    return Err(LoaderError::NoSync { attempts });
                }
                Err(e) => return Err(e),
            }
        }
    }
    let wiring = loader.port_mut().wiring();
    let strategies: &[ResetKind] = match wiring {
        Wiring::Classic => &[ResetKind::Bootloader, ResetKind::BootloaderSlow],
        Wiring::UsbJtag => &[ResetKind::Bootloader],
    };
    for (attempt, kind) in (0..CONNECT_ATTEMPTS).zip(strategies.iter().cycle()) {
        if attempt > 0 {
            status(format!(
                "no answer from the bootloader; resetting again ({}/{CONNECT_ATTEMPTS})",
                attempt + 1
            ));
        }
        lines::run(loader.port_mut(), *kind, wiring)?;
        loader.note(format!("reset {kind:?} ({wiring:?})"));
        match loader.sync_attempts(SYNCS_PER_RESET) {
            Ok(()) => return Ok(()),
            Err(LoaderError::NoSync { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Err(LoaderError::NoSync {
        attempts: CONNECT_ATTEMPTS * SYNCS_PER_RESET,
    })
}

/// Connects (see [`sync`]), detects the chip, its MAC and flash size, switches off the
/// watchdogs a USB-Serial/JTAG connection leaves running, attaches the flash, and — when
/// `opts.fast` — starts the flasher stub at the fastest rate the link takes (921600, then
/// 460800, then the ROM's 115200 over a bridge; USB-Serial/JTAG has no rate to choose),
/// resetting back to the ROM between tries. Without the stub the ROM serves, slowly.
pub fn open<T: LoaderPort>(
    loader: &mut Loader<T>,
    opts: Options,
    status: &mut dyn FnMut(String),
) -> Result<Connected, LoaderError> {
    sync(loader, opts, status)?;
    let mut info = identify(loader)?;
    if !(opts.fast && opts.reset) {
        return Ok(info);
    }
    let rates: &[Option<u32>] = match loader.port_mut().wiring() {
        Wiring::Classic => &[Some(FAST_BAUDS[0]), Some(FAST_BAUDS[1]), None],
        Wiring::UsbJtag => &[None],
    };
    let mut tried = Vec::new();
    for &rate in rates {
        let baud = rate.unwrap_or(ROM_BAUD);
        status(format!("starting the flasher stub at {baud} baud"));
        let started = loader
            .port_mut()
            .start_stub(rate)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                loader.stub_started();
                // The stub's SPI_ATTACH is also the check that the link works at this rate.
                loader
                    .attach_flash(info.flash_size)
                    .map_err(|e| e.to_string())
            });
        match started {
            Ok(()) => {
                loader.note(format!("flasher stub running at {baud} baud"));
                tried.push((baud, Ok(())));
                info.baud = baud;
                info.stub = true;
                info.bauds_tried = tried;
                return Ok(info);
            }
            Err(e) => {
                status(format!("the flasher stub at {baud} baud failed ({e})"));
                tried.push((baud, Err(e)));
                // Start over from the ROM at its own rate.
                loader.port_mut().set_baud(ROM_BAUD)?;
                loader.rom_again();
                sync(loader, opts, status)?;
                info = identify(loader)?;
            }
        }
    }
    status("using the ROM loader at 115200 baud (slow: minutes per partition)".into());
    info.bauds_tried = tried;
    Ok(info)
}

fn identify<T: LoaderPort>(loader: &mut Loader<T>) -> Result<Connected, LoaderError> {
    let security = loader.security_info()?;
    let chip = loader.detect_chip()?;
    let mac = loader.mac(chip)?;
    if loader.port_mut().wiring() == Wiring::UsbJtag {
        loader.disable_watchdogs(chip)?;
    }
    loader.spi_attach()?;
    let (flash_id, flash_size) = loader.detect_flash_size(chip)?;
    loader.set_flash_params(flash_size)?;
    Ok(Connected {
        chip,
        mac,
        security,
        flash_id,
        flash_size,
        baud: ROM_BAUD,
        stub: false,
        bauds_tried: Vec::new(),
    })
}

/// Leaves the loader for the firmware: with the reset lines, clear FORCE_DOWNLOAD_BOOT and
/// hard-reset (esptool `--after hard_reset`); without them, "run user code" (esptool
/// `--after soft_reset` on the ROM). The host port goes back to `home_baud` either way.
pub fn leave<T: LoaderPort>(
    loader: &mut Loader<T>,
    opts: Options,
    home_baud: u32,
) -> Result<(), LoaderError> {
    if !opts.reset {
        // Manual sessions never leave the ROM's own rate.
        let run = loader.run_user_code();
        loader.port_mut().set_baud(home_baud)?;
        return run;
    }
    if let Some(chip) = loader.chip() {
        // Best effort, as esptool: the chip may already have stopped answering.
        let _ = loader.clear_force_download(chip);
    }
    // Back to the firmware's rate before the reset: its boot log must be read at that rate.
    loader.port_mut().set_baud(home_baud)?;
    let wiring = loader.port_mut().wiring();
    lines::run(loader.port_mut(), ResetKind::HardReset, wiring).map_err(LoaderError::Io)
}
