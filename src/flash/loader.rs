//! Operations on a chip in its ROM serial bootloader, composed from [`Command`]s the way
//! esptool composes them (each function names the esptool function it follows): sync, chip
//! detection, MAC, SPI flash id and size, watchdogs, baud rate, reads, MD5 and writes.
//!
//! Once the flasher stub runs (started by espflash, see `flash::stub`), the same loader speaks
//! to it: 2 status bytes, streamed reads (READ_FLASH), 16 KiB write blocks.
//!
//! Our own layer on top of our transport rather than the `espflash` crate's `Flasher`: the
//! reader thread already owns the port (a `dyn
//! SerialPort`, not espflash's concrete `TTYPort`), simulated boards take their resets
//! through [`LineControl`](super::lines::LineControl) rather than ioctls, reads must report
//! progress and give up when shepherd stops, and `shepherd doctor` records every command and
//! reply (`Transport::start_trace`), none of which espflash's `Flasher` offers.

use std::io::{Read, Write};
use std::time::Duration;

use md5::{Digest, Md5};

use super::chips::{
    chip_from_id, chip_from_magic, flash_size_from_id, mac_from_words, ChipInfo, SecurityInfo,
    CHIP_DETECT_MAGIC_REG, FORCE_DOWNLOAD_BOOT, RTC_WDT_KEY, SWD_AUTO_FEED, SWD_KEY,
};
use super::command::{
    parse_md5, Command, FLASH_WRITE_BLOCK, READ_SLOW_MAX, SECTOR, STUB_STATUS_LEN, STUB_WRITE_BLOCK,
};
use super::partitions::hex;
use super::port::LoaderPort;
use super::transport::{LoaderError, TraceEntry, Transport, WireStats};

/// SYNC attempts before giving up (esptool `_connect_attempt` tries 5 per reset; a caller
/// that resets retries with the next reset strategy).
pub const SYNC_ATTEMPTS: u32 = 10;

/// READ_FLASH data frame size and frames in flight (esptool `read_flash`:
/// `FLASH_SECTOR_SIZE`, 64).
const STREAM_BLOCK: u32 = SECTOR;
const STREAM_IN_FLIGHT: u32 = 64;

/// A chip talking its ROM loader protocol, or the flasher stub.
pub struct Loader<T> {
    t: Transport<T>,
    chip: Option<&'static ChipInfo>,
    flash_size: Option<u32>,
    stub: bool,
}

impl<T: Read + Write> Loader<T> {
    /// Synchronises with the bootloader on `io` (the chip must already be in it).
    pub fn connect(io: T) -> Result<Self, LoaderError> {
        let mut loader = Self::new(io);
        loader.sync()?;
        Ok(loader)
    }

    /// A loader on `io`, not yet synchronised.
    pub fn new(io: T) -> Self {
        Self {
            t: Transport::new(io),
            chip: None,
            flash_size: None,
            stub: false,
        }
    }

    /// Sends SYNC until the loader answers (esptool `sync`: the ROM answers one SYNC with
    /// several replies; the rest are drained).
    pub fn sync(&mut self) -> Result<(), LoaderError> {
        self.sync_attempts(SYNC_ATTEMPTS)
    }

    /// [`sync`](Self::sync) with a given number of attempts.
    pub fn sync_attempts(&mut self, attempts: u32) -> Result<(), LoaderError> {
        for _ in 0..attempts {
            match self.t.command(&Command::Sync) {
                Ok(_) => {
                    self.t.drain(Duration::from_millis(50))?;
                    return Ok(());
                }
                Err(LoaderError::Io(e)) => return Err(LoaderError::Io(e)),
                Err(_) => {}
            }
        }
        Err(LoaderError::NoSync { attempts })
    }

    /// Starts recording every command and reply (for `shepherd doctor`).
    pub fn start_trace(&mut self) {
        self.t.start_trace();
    }

    /// Adds a note to the trace.
    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        self.t.note("note", "", || text);
    }

    /// The trace so far.
    pub fn take_trace(&mut self) -> Vec<TraceEntry> {
        self.t.take_trace()
    }

    /// What the chip printed outside loader frames so far (its boot banner).
    pub fn take_text(&mut self) -> Vec<u8> {
        self.t.take_text()
    }

    /// The port back.
    pub fn into_inner(self) -> T {
        self.t.into_inner()
    }

    /// Bytes and round trips on the wire so far.
    pub fn wire_stats(&self) -> WireStats {
        self.t.stats()
    }

    /// The chip, once detected.
    pub fn chip(&self) -> Option<&'static ChipInfo> {
        self.chip
    }

    /// Whether the flasher stub answers.
    pub fn is_stub(&self) -> bool {
        self.stub
    }

    /// From now on the flasher stub answers (it was started over the same port): 2 status
    /// bytes (esptool `StubMixin`), streamed reads, 16 KiB writes.
    pub fn stub_started(&mut self) {
        self.t.discard_pending();
        self.t.set_status_len(STUB_STATUS_LEN);
        self.stub = true;
    }

    /// The chip was reset: the ROM answers again (4 status bytes), nothing known about it.
    pub fn rom_again(&mut self) {
        self.t.set_status_len(super::command::ROM_STATUS_LEN);
        self.t.discard_pending();
        self.stub = false;
        self.chip = None;
        self.flash_size = None;
    }

    /// The flash size, once detected.
    pub fn flash_size(&self) -> Option<u32> {
        self.flash_size
    }

    /// Reads a 32-bit register (esptool `read_reg`).
    pub fn read_reg(&mut self, address: u32) -> Result<u32, LoaderError> {
        Ok(self.t.command(&Command::ReadReg { address })?.value)
    }

    /// Writes a 32-bit register, only the bits in `mask` (esptool `write_reg`).
    pub fn write_reg(&mut self, address: u32, value: u32, mask: u32) -> Result<(), LoaderError> {
        self.t.command(&Command::WriteReg {
            address,
            value,
            mask,
        })?;
        Ok(())
    }

    /// GET_SECURITY_INFO, or `None` where the ROM does not have it (ESP32: it answers with an
    /// error, esptool's `UnsupportedCommandError`).
    pub fn security_info(&mut self) -> Result<Option<SecurityInfo>, LoaderError> {
        match self.t.command(&Command::GetSecurityInfo) {
            Ok(resp) => Ok(SecurityInfo::parse(&resp.data)),
            Err(LoaderError::Rom { .. }) => {
                // The ROM may send its error reply more than once (esptool
                // `drain_input_buffer`).
                self.t.drain(Duration::from_millis(100))?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Which chip this is (esptool `connect`: the chip id from GET_SECURITY_INFO where the ROM
    /// has it, else the magic value at 0x40001000).
    pub fn detect_chip(&mut self) -> Result<&'static ChipInfo, LoaderError> {
        if let Some(id) = self.security_info()?.and_then(|s| s.chip_id) {
            if let Some(chip) = chip_from_id(id) {
                self.chip = Some(chip);
                return Ok(chip);
            }
        }
        let magic = self.read_reg(CHIP_DETECT_MAGIC_REG)?;
        let chip = chip_from_magic(magic).ok_or(LoaderError::UnknownChip(magic))?;
        self.chip = Some(chip);
        Ok(chip)
    }

    fn chip_or_esp32(&self) -> &'static ChipInfo {
        self.chip.unwrap_or(&super::chips::CHIPS[0])
    }

    /// The chip's factory MAC from its eFuses (esptool `read_mac`).
    pub fn mac(&mut self, chip: &ChipInfo) -> Result<String, LoaderError> {
        let low = self.read_reg(chip.mac_regs.0)?;
        let high = self.read_reg(chip.mac_regs.1)?;
        Ok(mac_from_words(low, high))
    }

    /// Switches off the RTC and super watchdogs, which keep running in download mode over
    /// USB-Serial/JTAG and would reset the chip mid-flash (esptool ESP32-S3
    /// `disable_watchdogs`). Does nothing on a chip without them.
    pub fn disable_watchdogs(&mut self, chip: &ChipInfo) -> Result<(), LoaderError> {
        let Some(w) = chip.watchdogs else {
            return Ok(());
        };
        self.write_reg(w.wdt_protect, RTC_WDT_KEY, u32::MAX)?;
        self.write_reg(w.wdt_config0, 0, u32::MAX)?;
        self.write_reg(w.wdt_protect, 0, u32::MAX)?;
        self.write_reg(w.swd_protect, SWD_KEY, u32::MAX)?;
        let conf = self.read_reg(w.swd_conf)?;
        self.write_reg(w.swd_conf, conf | SWD_AUTO_FEED, u32::MAX)?;
        self.write_reg(w.swd_protect, 0, u32::MAX)?;
        Ok(())
    }

    /// Clears FORCE_DOWNLOAD_BOOT before a reset into the firmware, or the chip comes back in
    /// download mode (esptool ESP32-S3 `hard_reset`, arduino-esp32 issue 6762).
    pub fn clear_force_download(&mut self, chip: &ChipInfo) -> Result<(), LoaderError> {
        match chip.watchdogs.and_then(|w| w.option1) {
            Some(reg) => self.write_reg(reg, 0, FORCE_DOWNLOAD_BOOT),
            None => Ok(()),
        }
    }

    /// The SPI flash's JEDEC id through the SPI peripheral's user command (esptool
    /// `flash_id` / `run_spiflash_command` with RDID 0x9F and 24 bits read back).
    pub fn flash_id(&mut self, chip: &ChipInfo) -> Result<u32, LoaderError> {
        const SPI_USR_COMMAND: u32 = 1 << 31;
        const SPI_USR_MISO: u32 = 1 << 28;
        const SPI_CMD_USR: u32 = 1 << 18;
        const RDID: u32 = 0x9F;
        let s = chip.spi;
        let (cmd, usr, usr2) = (s.base, s.base + s.usr, s.base + s.usr2);
        let old_usr = self.read_reg(usr)?;
        let old_usr2 = self.read_reg(usr2)?;
        self.write_reg(s.base + s.miso_dlen, 24 - 1, u32::MAX)?;
        self.write_reg(usr, SPI_USR_COMMAND | SPI_USR_MISO, u32::MAX)?;
        self.write_reg(usr2, (7 << 28) | RDID, u32::MAX)?;
        self.write_reg(s.base + s.w0, 0, u32::MAX)?;
        self.write_reg(cmd, SPI_CMD_USR, u32::MAX)?;
        let mut done = false;
        for _ in 0..10 {
            if self.read_reg(cmd)? & SPI_CMD_USR == 0 {
                done = true;
                break;
            }
        }
        if !done {
            return Err(LoaderError::BadResponse {
                op: "READ_REG",
                why: "the SPI flash command did not complete".into(),
            });
        }
        let id = self.read_reg(s.base + s.w0)?;
        self.write_reg(usr, old_usr, u32::MAX)?;
        self.write_reg(usr2, old_usr2, u32::MAX)?;
        Ok(id & 0x00FF_FFFF)
    }

    /// Reads the flash id and remembers the size it names (esptool `detect_flash_size`);
    /// returns both.
    pub fn detect_flash_size(&mut self, chip: &ChipInfo) -> Result<(u32, u32), LoaderError> {
        let id = self.flash_id(chip)?;
        let size = flash_size_from_id(id).ok_or(LoaderError::UnknownFlash(id))?;
        self.flash_size = Some(size);
        Ok((id, size))
    }

    /// Attaches the SPI flash and tells the loader its size (needed before any flash command;
    /// esptool `flash_spi_attach` + `flash_set_parameters`).
    pub fn attach_flash(&mut self, flash_size: u32) -> Result<(), LoaderError> {
        self.spi_attach()?;
        self.set_flash_params(flash_size)
    }

    /// SPI_ATTACH: puts the flash on the SPI controller's pins; before it the flash id reads
    /// all ones (esptool's `attach_flash` attaches before `detect_flash_size`).
    pub fn spi_attach(&mut self) -> Result<(), LoaderError> {
        self.t.command(&Command::SpiAttach { stub: self.stub })?;
        Ok(())
    }

    /// SPI_SET_PARAMS: the flash geometry (esptool `flash_set_parameters`).
    pub fn set_flash_params(&mut self, flash_size: u32) -> Result<(), LoaderError> {
        self.t.command(&Command::SpiSetParams {
            total_size: flash_size,
        })?;
        Ok(())
    }

    /// Refuses a region past the end of a detected flash.
    fn check_bounds(&self, offset: u32, size: u32) -> Result<(), LoaderError> {
        match self.flash_size {
            Some(flash) if u64::from(offset) + u64::from(size) > u64::from(flash) => {
                Err(LoaderError::OutOfFlash {
                    offset,
                    size,
                    flash: flash / 1024,
                })
            }
            _ => Ok(()),
        }
    }

    /// Reads `size` bytes at `offset`; `progress(done, total)` after each block. The stub
    /// streams and checks its own MD5 (esptool `read_flash`); the ROM answers 64 bytes a
    /// command (esptool ESP32ROM `read_flash_slow`).
    pub fn read_flash(
        &mut self,
        offset: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<u8>, LoaderError> {
        self.check_bounds(offset, size)?;
        if self.stub {
            return self.read_flash_stream(offset, size, progress);
        }
        let mut out = Vec::with_capacity(size as usize);
        while (out.len() as u32) < size {
            let done = out.len() as u32;
            let want = (size - done).min(READ_SLOW_MAX);
            let resp = self.t.command(&Command::ReadFlashSlow {
                offset: offset + done,
                size: want,
            })?;
            // The ROM always answers with a 64-byte buffer, whatever was asked for.
            let Some(chunk) = resp.data.get(..want as usize) else {
                return Err(LoaderError::BadResponse {
                    op: "READ_FLASH_SLOW",
                    why: format!("{} bytes for a {want}-byte read", resp.data.len()),
                });
            };
            out.extend_from_slice(chunk);
            progress(out.len() as u32, size);
        }
        Ok(out)
    }

    fn read_flash_stream(
        &mut self,
        offset: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<u8>, LoaderError> {
        self.t.command(&Command::ReadFlash {
            offset,
            size,
            block_size: STREAM_BLOCK,
            in_flight: STREAM_IN_FLIGHT,
        })?;
        let mut data = Vec::with_capacity(size as usize);
        while (data.len() as u32) < size {
            let frame = self.t.frame_within("READ_FLASH", Duration::from_secs(3))?;
            data.extend_from_slice(&frame);
            if (data.len() as u32) < size && (frame.len() as u32) < STREAM_BLOCK {
                return Err(LoaderError::BadResponse {
                    op: "READ_FLASH",
                    why: format!("a {}-byte block where {STREAM_BLOCK} were due", frame.len()),
                });
            }
            // The acknowledgement: bytes received so far.
            self.t.send_frame(&(data.len() as u32).to_le_bytes())?;
            progress((data.len() as u32).min(size), size);
        }
        if data.len() as u32 > size {
            return Err(LoaderError::BadResponse {
                op: "READ_FLASH",
                why: format!("{} bytes where {size} were asked for", data.len()),
            });
        }
        let digest = self.t.frame_within("READ_FLASH", Duration::from_secs(3))?;
        let ours = Md5::digest(&data);
        if digest[..] != ours[..] {
            return Err(LoaderError::Md5Mismatch {
                offset,
                size,
                ours: hex(ours.as_slice()),
                chip: hex(&digest),
            });
        }
        Ok(data)
    }

    /// MD5 of a flash region as the chip computes it (esptool `flash_md5sum`).
    pub fn flash_md5(&mut self, offset: u32, size: u32) -> Result<[u8; 16], LoaderError> {
        self.check_bounds(offset, size)?;
        let resp = self.t.command(&Command::FlashMd5 { offset, size })?;
        parse_md5(&resp.data).ok_or_else(|| LoaderError::BadResponse {
            op: "SPI_FLASH_MD5",
            why: format!("{} bytes where an MD5 was expected", resp.data.len()),
        })
    }

    /// Reads a region and checks it against the chip's own MD5 of it.
    pub fn read_flash_verified(
        &mut self,
        offset: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<u8>, LoaderError> {
        let data = self.read_flash(offset, size, progress)?;
        let chip = self.flash_md5(offset, size)?;
        let ours = Md5::digest(&data);
        if ours.as_slice() != chip {
            return Err(LoaderError::Md5Mismatch {
                offset,
                size,
                ours: hex(ours.as_slice()),
                chip: hex(&chip),
            });
        }
        Ok(data)
    }

    /// Erases the sectors under `[offset, offset + size)` and prepares for `size` bytes of
    /// FLASH_DATA (esptool `flash_begin`: the 5th word goes to every stub and every ROM but the
    /// ESP32's and ESP8266's). Returns the number of blocks.
    pub fn flash_begin(&mut self, offset: u32, size: u32) -> Result<u32, LoaderError> {
        self.check_bounds(offset, size)?;
        let block = self.write_block();
        let blocks = size.div_ceil(block);
        let erase_size = size.div_ceil(SECTOR) * SECTOR;
        let extended = self.stub || self.chip_or_esp32().rom_flash_begin_5_words;
        self.t.command(&Command::FlashBegin {
            erase_size,
            blocks,
            block_size: block,
            offset,
            encrypted: extended.then_some(0),
        })?;
        Ok(blocks)
    }

    /// FLASH_DATA block size of the loader that answers.
    pub fn write_block(&self) -> u32 {
        if self.stub {
            STUB_WRITE_BLOCK
        } else {
            FLASH_WRITE_BLOCK
        }
    }

    /// Writes block `sequence` (padded with 0xFF to the block size; esptool `flash_block`).
    pub fn flash_data(&mut self, sequence: u32, block: &[u8]) -> Result<(), LoaderError> {
        let mut data = block.to_vec();
        data.resize(self.write_block() as usize, 0xFF);
        self.t.command(&Command::FlashData { sequence, data })?;
        Ok(())
    }

    /// FLASH_END. On the ROM this leaves the loader whatever `reboot` says (false: run the
    /// firmware, true: reboot): only [`run_user_code`](Self::run_user_code) sends it there. The
    /// stub stays when `reboot` is false.
    pub fn flash_end(&mut self, reboot: bool) -> Result<(), LoaderError> {
        self.t.command(&Command::FlashEnd { reboot })?;
        Ok(())
    }

    /// Writes `data` at `offset` (esptool `write_flash`): begin, every block, and — only on the
    /// stub — an empty begin and FLASH_END(stay). The ROM is never sent FLASH_END here: "it
    /// causes the loader to exit and run user code", and the MD5 check that follows would time
    /// out. The caller verifies with [`flash_md5`](Self::flash_md5).
    pub fn write_flash(
        &mut self,
        offset: u32,
        data: &[u8],
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<(), LoaderError> {
        self.flash_begin(offset, data.len() as u32)?;
        let block = self.write_block() as usize;
        for (seq, chunk) in data.chunks(block).enumerate() {
            self.flash_data(seq as u32, chunk)?;
            progress(
                ((seq + 1) * block).min(data.len()) as u32,
                data.len() as u32,
            );
        }
        if self.stub {
            self.flash_begin(0, 0)?;
            self.flash_end(false)?;
        }
        Ok(())
    }

    /// Leaves the ROM loader into the firmware without the reset lines (esptool `soft_reset(
    /// False)` on the ROM, "run user code": an empty FLASH_BEGIN, then FLASH_END(run)). The
    /// stub cannot (esptool refuses: "only supported on ESP8266"); manual sessions stay on the
    /// ROM.
    pub fn run_user_code(&mut self) -> Result<(), LoaderError> {
        if self.stub {
            return Err(LoaderError::BadResponse {
                op: "FLASH_END",
                why: "the flasher stub cannot start the firmware without a reset".into(),
            });
        }
        self.flash_begin(0, 0)?;
        self.flash_end(false)
    }
}

impl<T: LoaderPort> Loader<T> {
    /// Changes the baud rate on both ends (esptool `change_baud`: the stub takes the old rate,
    /// the ROM 0), then checks the link with a register read. On failure the chip is left at a
    /// rate the host cannot talk at: reset it and try a lower rate.
    pub fn change_baud(&mut self, baud: u32, old: u32) -> Result<(), LoaderError> {
        let old = if self.stub { old } else { 0 };
        self.t.command(&Command::ChangeBaudrate { baud, old })?;
        self.t.io_mut().set_baud(baud)?;
        // esptool `change_baud`: "get rid of crap sent during baud rate change".
        self.t.drain(Duration::from_millis(50))?;
        self.t.discard_pending();
        self.t.take_text();
        self.read_reg(CHIP_DETECT_MAGIC_REG).map(|_| ())
    }

    /// The port, to drive its reset lines.
    pub fn port_mut(&mut self) -> &mut T {
        self.t.io_mut()
    }
}
