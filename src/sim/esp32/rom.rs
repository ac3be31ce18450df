//! The serial loader the simulated chip runs in download mode: first the ROM's, then — after
//! a RAM download whose entry point it jumps to — the flasher stub's. Pure: frames in, frames
//! out, the flash image and a few registers changed; the chip thread moves the bytes.
//!
//! Sources: esptool 5.6.0 `loader.py` (what the host sends and accepts), Espressif's
//! serial-protocol documentation (`docs/en/advanced-topics/serial-protocol.rst`: status
//! bytes, ROM error codes), and esp-flasher-stub v1.4.1 (`src/command_handler.c`, the stub
//! esptool 5.6.0 uploads from `targets/stub_flasher/2`) for the stub's side; the stub-specific
//! handlers are in `stub.rs`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flate2::{Decompress, FlushDecompress, Status};
use md5::{Digest, Md5};

use super::chips::{s3_rtc, SimChip};
use super::spi::SpiController;
use super::WriteHook;
use crate::flash::command::{
    checksum, Op, Request, Response, ROM_STATUS_LEN, SECTOR, STUB_STATUS_LEN,
};

/// ROM error codes (serial-protocol.rst "ROM Loader Errors").
pub(super) const ROM_INVALID: u8 = 0x05;
pub(super) const ROM_FAILED: u8 = 0x06;
pub(super) const ROM_BAD_CRC: u8 = 0x07;
pub(super) const ROM_READ_ERR: u8 = 0x09;
pub(super) const ROM_READ_LEN: u8 = 0x0A;
pub(super) const ROM_DEFLATE: u8 = 0x0B;

/// What the chip sees besides the request: its identity, its flash, and the one register that
/// survives resets.
pub struct Ctx<'a> {
    /// Which chip.
    pub chip: SimChip,
    /// Factory MAC (its eFuses).
    pub mac: [u8; 6],
    /// The flash image.
    pub flash: &'a mut Vec<u8>,
    /// Corrupts data between the checksum check and the flash (tests of MD5 verification).
    pub hook: Option<&'a mut WriteHook>,
    /// ESP32-S3 RTC_CNTL_OPTION1 FORCE_DOWNLOAD_BOOT: an RTC register, kept across resets.
    pub force_download: &'a mut bool,
    /// The time now (watchdog deadlines).
    pub now: Instant,
}

/// What happens after the frames of a reply are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Keep serving commands.
    Stay,
    /// Software reset (ROM FLASH_END 0): the chip restarts and samples its boot mode.
    Reboot,
    /// Jump to the firmware without a reset (ROM FLASH_END 1, "run user code").
    RunUserCode,
    /// Jumped into RAM that holds no code: the chip hangs until it is reset.
    Crash,
}

/// The frames to send (packets, before SLIP framing) and what to do next.
#[derive(Debug)]
pub struct Reply {
    /// Packets in order.
    pub frames: Vec<Vec<u8>>,
    /// Then this.
    pub exit: Exit,
}

/// A command's result before it is encoded with the ROM's or the stub's status bytes.
pub(super) enum Outcome {
    /// Success with a value (READ_REG) and data before the status bytes.
    Ok(u32, Vec<u8>),
    /// Failure: the two status bytes (ROM: 1 and an error code; stub: a big-endian code).
    Err(u8, u8),
}

pub(super) fn ok() -> Outcome {
    Outcome::Ok(0, Vec::new())
}

/// A flash write in progress (FLASH_BEGIN or FLASH_DEFL_BEGIN).
pub(super) struct FlashWrite {
    /// Where the next written byte goes (the stub and compressed writes advance it).
    pub offset: u32,
    /// Sequence number expected next (ROM).
    pub next_seq: u32,
    /// Blocks announced.
    pub blocks: u32,
    /// Block size announced.
    pub block_size: u32,
    /// Bytes still to write (stub: FLASH_END refuses while any remain).
    pub remaining: u32,
    /// zlib stream for FLASH_DEFL_*.
    pub inflate: Option<Decompress>,
    /// Stub: next sector to erase and the end of the region to erase.
    pub erase_next: u32,
    /// Stub: end of the erase region.
    pub erase_end: u32,
}

/// A RAM download in progress (MEM_BEGIN).
pub(super) struct MemLoad {
    pub offset: u32,
    pub block_size: u32,
}

/// The S3's RTC and super watchdogs as esptool's `disable_watchdogs` and `watchdog_reset`
/// see them. Writes to their registers count only while the matching write-protect register
/// holds its key.
#[derive(Debug, Clone)]
pub struct Watchdogs {
    /// RTC_CNTL_WDTCONFIG0 (bit 31: enabled).
    pub rtc_config0: u32,
    /// RTC_CNTL_WDTCONFIG1 (stage-0 timeout in slow-clock cycles).
    pub rtc_config1: u32,
    /// RTC_CNTL_WDTWPROTECT.
    pub rtc_wprotect: u32,
    /// RTC_CNTL_SWD_CONF (bit 31: feed itself).
    pub swd_conf: u32,
    /// RTC_CNTL_SWD_WPROTECT.
    pub swd_wprotect: u32,
    /// When the RTC watchdog fires if nobody disables it.
    pub rtc_deadline: Option<Instant>,
    /// When the super watchdog fires if nobody sets it to feed itself.
    pub swd_deadline: Option<Instant>,
}

/// RTC slow clock (about 136 kHz on the S3's internal RC oscillator), for a host-programmed
/// WDTCONFIG1 timeout (esptool `watchdog_reset` sets 2000 cycles).
const RTC_SLOW_HZ: u64 = 136_000;

impl Watchdogs {
    /// Both stopped (a chip powered on into download mode, or an ESP32).
    pub fn stopped() -> Self {
        Self {
            rtc_config0: 0,
            rtc_config1: 0,
            rtc_wprotect: 0,
            swd_conf: s3_rtc::SWD_AUTO_FEED_EN,
            swd_wprotect: 0,
            rtc_deadline: None,
            swd_deadline: None,
        }
    }

    /// Both running, as the firmware left them when the USB-Serial/JTAG reset the chip into
    /// download mode: that reset does not reset them (esptool `disable_watchdogs`: "the RTC
    /// WDT and SWD watchdog are not reset and can then reset the board during flashing").
    pub fn running(now: Instant, timeout: Duration) -> Self {
        Self {
            rtc_config0: 1 << 31,
            swd_conf: 0,
            rtc_deadline: Some(now + timeout),
            swd_deadline: Some(now + timeout),
            ..Self::stopped()
        }
    }

    /// The watchdog that has fired by `now`, if any.
    pub fn fired(&self, now: Instant) -> Option<super::chips::ResetReason> {
        use super::chips::ResetReason;
        if self.rtc_deadline.is_some_and(|d| now >= d) {
            return Some(ResetReason::RtcWatchdog);
        }
        if self.swd_deadline.is_some_and(|d| now >= d) {
            return Some(ResetReason::SuperWatchdog);
        }
        None
    }

    /// Whether either one is still counting.
    pub fn active(&self) -> bool {
        self.rtc_deadline.is_some() || self.swd_deadline.is_some()
    }

    fn read(&self, address: u32) -> Option<u32> {
        Some(match address {
            s3_rtc::WDTCONFIG0 => self.rtc_config0,
            s3_rtc::WDTCONFIG1 => self.rtc_config1,
            s3_rtc::WDTWPROTECT => self.rtc_wprotect,
            s3_rtc::SWD_CONF => self.swd_conf,
            s3_rtc::SWD_WPROTECT => self.swd_wprotect,
            _ => return None,
        })
    }

    /// Applies a register write; false if `address` is not a watchdog register.
    fn write(&mut self, address: u32, value: u32, now: Instant) -> bool {
        match address {
            s3_rtc::WDTWPROTECT => self.rtc_wprotect = value,
            s3_rtc::SWD_WPROTECT => self.swd_wprotect = value,
            s3_rtc::WDTCONFIG0 if self.rtc_wprotect == s3_rtc::WDT_WKEY => {
                let was = self.rtc_config0 & (1 << 31) != 0;
                self.rtc_config0 = value;
                let on = value & (1 << 31) != 0;
                if !on {
                    self.rtc_deadline = None;
                } else if !was {
                    let cycles = u64::from(self.rtc_config1.max(1));
                    self.rtc_deadline =
                        Some(now + Duration::from_micros(cycles * 1_000_000 / RTC_SLOW_HZ));
                }
            }
            s3_rtc::WDTCONFIG1 if self.rtc_wprotect == s3_rtc::WDT_WKEY => {
                self.rtc_config1 = value;
            }
            s3_rtc::SWD_CONF if self.swd_wprotect == s3_rtc::SWD_WKEY => {
                self.swd_conf = value;
                if value & s3_rtc::SWD_AUTO_FEED_EN != 0 {
                    self.swd_deadline = None;
                }
            }
            // A locked register ignores the write.
            s3_rtc::WDTCONFIG0 | s3_rtc::WDTCONFIG1 | s3_rtc::SWD_CONF => {}
            _ => return false,
        }
        true
    }
}

/// The loader's state between commands.
/// A READ_FLASH of the flasher stub in progress (its handling is in `stub.rs`): the stub keeps
/// at most one packet unacknowledged (`s_read_flash_post_process`: `max_unacked_packets = 1`).
pub struct ReadStream {
    pub(super) offset: u32,
    pub(super) total: u32,
    pub(super) sent: u32,
    pub(super) packet: u32,
    pub(super) md5: md5::Md5,
}

/// The loader's state: the ROM's, or the stub's once it runs (`stub.rs` adds its commands).
pub struct Loader {
    /// The flasher stub is running (it replaced the ROM loader).
    pub stub: bool,
    pub(super) synced: bool,
    pub(super) attached: bool,
    /// UART baud rate (CHANGE_BAUDRATE; the ROM starts at 115200).
    pub(super) baud: u32,
    regs: HashMap<u32, u32>,
    /// The SPI flash controller.
    pub spi: SpiController,
    pub(super) write: Option<FlashWrite>,
    pub(super) mem: Option<MemLoad>,
    /// RAM written by MEM_DATA: (start, length).
    pub(super) ram: Vec<(u32, u32)>,
    pub(super) read: Option<ReadStream>,
    /// The S3's watchdogs.
    pub watchdogs: Watchdogs,
    /// WRITE_REG entries applied since the chip thread last took them: (address, value, mask).
    pub write_regs: Vec<(u32, u32, u32)>,
    /// Opcodes received, in order.
    pub ops: Vec<u8>,
}

impl Loader {
    /// The ROM loader just after reset, waiting for SYNC.
    pub fn new(chip: SimChip, watchdogs: Watchdogs) -> Self {
        Self {
            stub: false,
            synced: false,
            attached: false,
            baud: 115_200,
            regs: HashMap::new(),
            spi: SpiController::new(chip.spi()),
            write: None,
            mem: None,
            ram: Vec::new(),
            read: None,
            watchdogs,
            write_regs: Vec::new(),
            ops: Vec::new(),
        }
    }

    pub(super) fn encode(&self, op: u8, outcome: Outcome) -> Vec<u8> {
        let resp = match outcome {
            Outcome::Ok(value, data) => Response::ok(op, value, data),
            Outcome::Err(status, error) => Response {
                op,
                value: 0,
                data: Vec::new(),
                status,
                error,
            },
        };
        resp.encode(if self.stub {
            STUB_STATUS_LEN
        } else {
            ROM_STATUS_LEN
        })
    }

    /// The error for a malformed or unacceptable request: ROM 0x05 "received message is
    /// invalid", stub 0xC000 "bad data length".
    pub(super) fn bad_len(&self) -> Outcome {
        if self.stub {
            Outcome::Err(0xC0, 0)
        } else {
            Outcome::Err(1, ROM_INVALID)
        }
    }

    /// Handles one received frame.
    pub fn handle(&mut self, frame: &[u8], ctx: &mut Ctx) -> Reply {
        if self.read.is_some() {
            return self.read_ack(frame, ctx);
        }
        let Some(req) = Request::decode(frame) else {
            if self.stub && !frame.is_empty() {
                // esp-flasher-stub `handle_command`: wrong direction -> INVALID_COMMAND,
                // wrong size -> BAD_DATA_LEN.
                let op = frame.get(1).copied().unwrap_or(0);
                let code = if frame[0] != 0 { 0xC3 } else { 0xC0 };
                return self.reply(vec![self.encode(op, Outcome::Err(code, 0))]);
            }
            return self.reply(Vec::new()); // the ROM ignores what it cannot parse
        };
        self.ops.push(req.op);
        if !self.stub && !self.synced && req.op != Op::Sync as u8 {
            return self.reply(Vec::new()); // still autobauding: silence until a SYNC
        }
        if self.stub {
            self.stub_command(&req, ctx)
        } else {
            self.rom_command(&req, ctx)
        }
    }

    pub(super) fn reply(&self, frames: Vec<Vec<u8>>) -> Reply {
        Reply {
            frames,
            exit: Exit::Stay,
        }
    }

    pub(super) fn one(&self, op: u8, outcome: Outcome) -> Reply {
        self.reply(vec![self.encode(op, outcome)])
    }

    fn rom_command(&mut self, req: &Request, ctx: &mut Ctx) -> Reply {
        let op = req.op;
        let w = |i| req.word(i).unwrap_or(0);
        let known = Op::from_u8(op).filter(|o| match o {
            // Stub-only commands: "ROM loaders will not recognise these commands".
            Op::EraseFlash | Op::EraseRegion | Op::ReadFlash | Op::RunUserCode => false,
            Op::GetSecurityInfo => ctx.chip.security_info().is_some(),
            _ => true,
        });
        let Some(known) = known else {
            // Unknown to this ROM: status 1, error 0x05. esptool's `get_security_info`
            // fails on it and `connect`/`detect_chip` fall back to the magic register.
            return self.one(op, Outcome::Err(1, ROM_INVALID));
        };
        let outcome = match known {
            Op::Sync => {
                self.synced = true;
                // The ROM answers one SYNC eight times, with a non-zero value (esptool
                // `sync`: "ROM bootloaders send some non-zero val"; real ESP32 trace:
                // 01 08 04 00 07 07 12 20 00 00 00 00).
                let r = self.encode(op, Outcome::Ok(0x2012_0707, Vec::new()));
                return self.reply(vec![r; 8]);
            }
            Op::ReadReg if req.data.len() == 4 => Outcome::Ok(self.read_reg(w(0), ctx), vec![]),
            Op::WriteReg if !req.data.is_empty() && req.data.len() % 16 == 0 => {
                self.write_regs_from(req, ctx);
                ok()
            }
            Op::SpiAttach if req.data.len() >= 4 => {
                self.attached = true;
                ok()
            }
            Op::SpiSetParams if req.data.len() == 24 => ok(),
            Op::ChangeBaudrate if req.data.len() == 8 => {
                self.baud = w(0).max(1);
                ok()
            }
            Op::GetSecurityInfo => Outcome::Ok(0, ctx.chip.security_info().unwrap_or_default()),
            Op::ReadFlashSlow => self.rom_read_slow(w(0), w(1), ctx),
            Op::SpiFlashMd5 if req.data.len() == 16 => match self.md5(w(0), w(1), ctx) {
                // The ROM answers in 32 ASCII hex digits (serial-protocol.rst).
                Some(d) => Outcome::Ok(0, hex(&d).into_bytes()),
                None => Outcome::Err(1, ROM_READ_ERR),
            },
            Op::FlashBegin | Op::FlashDeflBegin => self.rom_begin(req, known, ctx),
            Op::FlashData => self.rom_flash_data(req, ctx),
            Op::FlashDeflData => self.rom_defl_data(req, ctx),
            Op::FlashEnd | Op::FlashDeflEnd if req.data.len() == 4 => {
                // The ROM leaves the loader whatever the value: 0 reboots, 1 runs the user
                // code (esptool `flash_defl_finish`: "skip sending flash_finish to ROM
                // loader, as this exits the bootloader"; `soft_reset`/`run` use it to
                // leave). It answers first: esptool's `run` waits for the reply.
                self.write = None;
                let r = self.encode(op, ok());
                return Reply {
                    frames: vec![r],
                    exit: if w(0) == 0 {
                        Exit::Reboot
                    } else {
                        Exit::RunUserCode
                    },
                };
            }
            Op::MemBegin => self.mem_begin(req),
            Op::MemData => self.mem_data(req),
            Op::MemEnd if req.data.len() == 8 => return self.mem_end(op, w(0), w(1)),
            _ => self.bad_len(),
        };
        self.one(op, outcome)
    }

    /// READ_REG: fixed chip registers, the SPI controller, the S3's RTC registers, or any
    /// other word last written with WRITE_REG.
    pub(super) fn read_reg(&self, address: u32, ctx: &Ctx) -> u32 {
        if let Some(v) = ctx.chip.fixed_register(address, ctx.mac, self.baud) {
            return v;
        }
        if self.spi.owns(address) {
            return self.spi.read(address);
        }
        if ctx.chip == SimChip::Esp32S3 {
            if address == s3_rtc::OPTION1 {
                return u32::from(*ctx.force_download);
            }
            if let Some(v) = self.watchdogs.read(address) {
                return v;
            }
        }
        self.regs.get(&address).copied().unwrap_or(0)
    }

    /// WRITE_REG: one or more (address, value, mask, delay) entries; the written value is
    /// `(old & !mask) | (value & mask)` (esp-flasher-stub `s_write_reg`; esptool
    /// `write_reg`). Read-only registers (eFuses, ROM) keep their values.
    pub(super) fn write_regs_from(&mut self, req: &Request, ctx: &mut Ctx) {
        for i in 0..req.data.len() / 16 {
            let w = |k| req.word(i * 4 + k).unwrap_or(0);
            let (address, value, mask) = (w(0), w(1), w(2));
            self.write_regs.push((address, value, mask));
            let new = (self.read_reg(address, ctx) & !mask) | (value & mask);
            if ctx
                .chip
                .fixed_register(address, ctx.mac, self.baud)
                .is_some()
            {
                continue;
            }
            if self.spi.owns(address) {
                let attached = self.attached;
                self.spi.write(address, new, ctx.flash, attached);
                continue;
            }
            if ctx.chip == SimChip::Esp32S3 {
                if address == s3_rtc::OPTION1 {
                    *ctx.force_download = new & s3_rtc::FORCE_DOWNLOAD_BOOT != 0;
                    continue;
                }
                if self.watchdogs.write(address, new, ctx.now) {
                    continue;
                }
            }
            self.regs.insert(address, new);
        }
    }

    /// MD5 of a flash region, or None if it is not inside the flash.
    pub(super) fn md5(&self, offset: u32, size: u32, ctx: &Ctx) -> Option<[u8; 16]> {
        if !self.attached {
            return None;
        }
        let r = region(ctx.flash.len(), offset, size)?;
        Some(Md5::digest(&ctx.flash[r]).into())
    }

    /// READ_FLASH_SLOW: at most 64 bytes, always answered in a 64-byte buffer (esptool
    /// `ESP32ROM.read_flash_slow`: "command always returns 64 byte buffer").
    fn rom_read_slow(&self, offset: u32, size: u32, ctx: &Ctx) -> Outcome {
        if !self.attached {
            return Outcome::Err(1, ROM_READ_ERR);
        }
        if size > 64 {
            return Outcome::Err(1, ROM_READ_LEN);
        }
        match region(ctx.flash.len(), offset, size) {
            Some(r) => {
                let mut data = ctx.flash[r].to_vec();
                data.resize(64, 0xFF);
                Outcome::Ok(0, data)
            }
            None => Outcome::Err(1, ROM_READ_ERR),
        }
    }

    /// ROM FLASH_BEGIN / FLASH_DEFL_BEGIN: erase the region up front ("the ROM loaders erase
    /// the to-be-written region in response to the FLASH_BEGIN command"), then expect the
    /// numbered blocks. ESP32 takes 4 words; later ROMs 5 (the encryption flag) and refuse 4.
    fn rom_begin(&mut self, req: &Request, op: Op, ctx: &mut Ctx) -> Outcome {
        let words = if ctx.chip.rom_begin_has_encrypt_word() {
            20
        } else {
            16
        };
        if req.data.len() != words {
            return Outcome::Err(1, ROM_INVALID);
        }
        if !self.attached {
            return Outcome::Err(1, ROM_FAILED);
        }
        let w = |i| req.word(i).unwrap_or(0);
        let (erase, blocks, block_size, offset) = (w(0), w(1), w(2), w(3));
        if words == 20 && w(4) != 0 {
            return Outcome::Err(1, ROM_FAILED); // no flash encryption key on this chip
        }
        let start = offset / SECTOR * SECTOR;
        let Some(end) = offset
            .checked_add(erase)
            .and_then(|e| e.checked_add(SECTOR - 1))
            .map(|e| e / SECTOR * SECTOR)
        else {
            return Outcome::Err(1, ROM_FAILED);
        };
        if end as usize > ctx.flash.len() || block_size == 0 {
            return Outcome::Err(1, ROM_FAILED);
        }
        ctx.flash[start as usize..end as usize].fill(0xFF);
        self.write = Some(FlashWrite {
            offset,
            next_seq: 0,
            blocks,
            block_size,
            remaining: erase,
            inflate: (op == Op::FlashDeflBegin).then(|| Decompress::new(true)),
            erase_next: end,
            erase_end: end,
        });
        ok()
    }

    /// ROM FLASH_DATA: the checksum, the sequence number and a full block; the block is
    /// programmed whole (esptool pads the last one with 0xFF, which programs nothing).
    fn rom_flash_data(&mut self, req: &Request, ctx: &mut Ctx) -> Outcome {
        let Some(ws) = self.write.as_mut().filter(|w| w.inflate.is_none()) else {
            return Outcome::Err(1, ROM_FAILED);
        };
        let len = req.word(0).unwrap_or(0) as usize;
        let seq = req.word(1).unwrap_or(u32::MAX);
        let Some(data) = req.data.get(16..16 + len) else {
            return Outcome::Err(1, ROM_INVALID);
        };
        if u32::from(checksum(data)) != req.checksum {
            return Outcome::Err(1, ROM_BAD_CRC);
        }
        if seq != ws.next_seq || seq >= ws.blocks || len as u32 != ws.block_size {
            return Outcome::Err(1, ROM_FAILED);
        }
        ws.next_seq += 1;
        let Some(addr) = seq
            .checked_mul(ws.block_size)
            .and_then(|a| a.checked_add(ws.offset))
        else {
            return Outcome::Err(1, ROM_FAILED);
        };
        program(ctx, addr, data.to_vec());
        ok()
    }

    /// ROM FLASH_DEFL_DATA: numbered blocks of one zlib stream, inflated and written in order.
    fn rom_defl_data(&mut self, req: &Request, ctx: &mut Ctx) -> Outcome {
        let Some(ws) = self.write.as_mut().filter(|w| w.inflate.is_some()) else {
            return Outcome::Err(1, ROM_FAILED);
        };
        let len = req.word(0).unwrap_or(0) as usize;
        let seq = req.word(1).unwrap_or(u32::MAX);
        let Some(data) = req.data.get(16..16 + len) else {
            return Outcome::Err(1, ROM_INVALID);
        };
        if u32::from(checksum(data)) != req.checksum {
            return Outcome::Err(1, ROM_BAD_CRC);
        }
        if seq != ws.next_seq || seq >= ws.blocks {
            return Outcome::Err(1, ROM_FAILED);
        }
        ws.next_seq += 1;
        match inflate_block(ws, data) {
            Some(out) => {
                let addr = ws.offset;
                ws.offset = ws.offset.saturating_add(out.len() as u32);
                program(ctx, addr, out);
                ok()
            }
            None => Outcome::Err(1, ROM_DEFLATE),
        }
    }

    /// MEM_BEGIN: total size, number of blocks, block size, RAM address.
    pub(super) fn mem_begin(&mut self, req: &Request) -> Outcome {
        if req.data.len() != 16 {
            return self.bad_len();
        }
        self.mem = Some(MemLoad {
            offset: req.word(3).unwrap_or(0),
            block_size: req.word(2).unwrap_or(0),
        });
        ok()
    }

    /// MEM_DATA: one block, checksummed like FLASH_DATA.
    pub(super) fn mem_data(&mut self, req: &Request) -> Outcome {
        let Some(mem) = self.mem.as_ref() else {
            return if self.stub {
                Outcome::Err(0xC6, 0)
            } else {
                Outcome::Err(1, ROM_FAILED)
            };
        };
        let len = req.word(0).unwrap_or(0) as usize;
        let seq = req.word(1).unwrap_or(0);
        let Some(data) = req
            .data
            .get(16..16 + len)
            .filter(|_| req.data.len() == 16 + len)
        else {
            return self.bad_len();
        };
        if u32::from(checksum(data)) != req.checksum {
            return if self.stub {
                Outcome::Err(0xC1, 0)
            } else {
                Outcome::Err(1, ROM_BAD_CRC)
            };
        }
        let start = mem.offset.wrapping_add(seq.wrapping_mul(mem.block_size));
        self.ram.push((start, len as u32));
        ok()
    }

    /// MEM_END: flag 0 jumps to the entry point (esptool `mem_finish`: `int(entrypoint ==
    /// 0)`). If the entry lies in RAM just written, the uploaded stub starts and greets with
    /// the frame "OHAI" (serial-protocol.rst: "the only unsolicited packet ever sent");
    /// anywhere else the CPU runs garbage and the chip hangs.
    fn mem_end(&mut self, op: u8, flag: u32, entry: u32) -> Reply {
        if self.mem.take().is_none() {
            return self.one(op, Outcome::Err(1, ROM_FAILED));
        }
        let mut frames = vec![self.encode(op, ok())];
        if flag != 0 {
            return self.reply(frames);
        }
        let runs = self
            .ram
            .iter()
            .any(|&(s, l)| entry >= s && entry < s.saturating_add(l));
        if !runs {
            return Reply {
                frames,
                exit: Exit::Crash,
            };
        }
        self.stub = true;
        self.write = None;
        // The stub sets up the flash itself before greeting (esp-flasher-stub `esp_main`:
        // `stub_lib_flash_init`), so esptool sends it no SPI_ATTACH (`attach_flash`).
        self.attached = true;
        frames.push(b"OHAI".to_vec());
        self.reply(frames)
    }
}

/// Programs `data` at `addr` after the write hook: NOR flash programming only clears bits.
pub(super) fn program(ctx: &mut Ctx, addr: u32, mut data: Vec<u8>) {
    if let Some(h) = ctx.hook.as_mut() {
        h(addr, &mut data);
    }
    let start = addr as usize;
    let end = start.saturating_add(data.len()).min(ctx.flash.len());
    if start < end {
        for (f, b) in ctx.flash[start..end].iter_mut().zip(&data) {
            *f &= *b;
        }
    }
}

/// Inflates one block of the write's zlib stream; None on a corrupt stream.
pub(super) fn inflate_block(ws: &mut FlashWrite, data: &[u8]) -> Option<Vec<u8>> {
    let d = ws.inflate.as_mut()?;
    let mut out = Vec::new();
    let mut consumed = 0usize;
    let mut buf = vec![0u8; 0x10000];
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress(&data[consumed..], &mut buf, FlushDecompress::None)
            .ok()?;
        let used = (d.total_in() - in0) as usize;
        let made = (d.total_out() - out0) as usize;
        consumed += used;
        out.extend_from_slice(&buf[..made]);
        if status == Status::StreamEnd || (consumed >= data.len() && made < buf.len()) {
            break;
        }
        if used == 0 && made == 0 {
            break;
        }
    }
    Some(out)
}

/// `offset..offset+size` if it lies inside a flash of `len` bytes.
pub(super) fn region(len: usize, offset: u32, size: u32) -> Option<std::ops::Range<usize>> {
    let start = offset as usize;
    let end = start.checked_add(size as usize)?;
    (end <= len).then_some(start..end)
}

/// Lower-case hex, as the ROM sends an MD5.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
