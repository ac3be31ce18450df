//! The flasher stub's side of the loader: what changes once esptool's uploaded stub runs.
//! Modelled on esp-flasher-stub v1.4.1 (`src/command_handler.c`, `src/commands.h`), the stub
//! esptool 5.6.0 ships in `targets/stub_flasher/2`:
//! - two status bytes, a big-endian response code (0xC000 bad data length, 0xC100 bad
//!   checksum, 0xC300 invalid command, 0xC600 not in flash mode, 0xC700 inflate error, 0xC900
//!   too much data, 0xFF00 not implemented);
//! - SYNC answered eight times with value 0 (how esptool spots a stub left running);
//! - flash writes erase just in time and take any block size (esptool sends 16 KiB);
//! - FLASH_END / FLASH_DEFL_END check the write is complete and stay in the stub (its reboot
//!   branch is a TODO);
//! - READ_FLASH (0xD2) streams packets, each acknowledged by the host with the total received,
//!   then the 16-byte MD5; SPI_FLASH_MD5 answers 16 raw bytes;
//! - ERASE_FLASH / ERASE_REGION; READ_FLASH_SLOW is not a stub command.

use md5::{Digest, Md5};

use super::rom::{inflate_block, ok, program, region, Ctx, FlashWrite, Loader, Outcome, Reply};
use crate::flash::command::{checksum, Op, Request, SECTOR};

const BAD_DATA_LEN: Outcome = Outcome::Err(0xC0, 0);
const BAD_CHECKSUM: Outcome = Outcome::Err(0xC1, 0);
const INVALID_COMMAND: Outcome = Outcome::Err(0xC3, 0);
const FAILED_SPI_OP: Outcome = Outcome::Err(0xC4, 0);
const NOT_IN_FLASH_MODE: Outcome = Outcome::Err(0xC6, 0);
const INFLATE_ERROR: Outcome = Outcome::Err(0xC7, 0);
const NOT_ENOUGH_DATA: Outcome = Outcome::Err(0xC8, 0);
const TOO_MUCH_DATA: Outcome = Outcome::Err(0xC9, 0);
const NOT_IMPLEMENTED: Outcome = Outcome::Err(0xFF, 0);

impl Loader {
    pub(super) fn stub_command(&mut self, req: &Request, ctx: &mut Ctx) -> Reply {
        let op = req.op;
        let len = req.data.len();
        let w = |i| req.word(i).unwrap_or(0);
        let outcome = match Op::from_u8(op) {
            Some(Op::Sync) if len == 36 => {
                let r = self.encode(op, ok());
                return self.reply(vec![r; 8]);
            }
            Some(Op::FlashBegin | Op::FlashDeflBegin) => self.stub_begin(req, ctx),
            Some(Op::FlashData) => self.stub_flash_data(req, ctx),
            Some(Op::FlashDeflData) => self.stub_defl_data(req, ctx),
            Some(Op::FlashEnd | Op::FlashDeflEnd) => match (&self.write, len) {
                (_, l) if l != 4 => BAD_DATA_LEN,
                (None, _) => NOT_IN_FLASH_MODE,
                (Some(ws), _) if ws.remaining != 0 => BAD_DATA_LEN,
                (Some(_), _) => {
                    // Whatever the flag, this stub stays running (`s_flash_end`: "TODO:
                    // Implement reboot").
                    self.write = None;
                    ok()
                }
            },
            Some(Op::MemBegin) => self.mem_begin(req),
            Some(Op::MemData) => self.mem_data(req),
            Some(Op::MemEnd) if len == 8 => {
                if self.mem.take().is_none() {
                    NOT_IN_FLASH_MODE
                } else {
                    ok()
                }
            }
            Some(Op::WriteReg) if len > 0 && len % 16 == 0 => {
                self.write_regs_from(req, ctx);
                ok()
            }
            Some(Op::WriteReg) => NOT_ENOUGH_DATA,
            Some(Op::ReadReg) if len == 4 => Outcome::Ok(self.read_reg(w(0), ctx), vec![]),
            Some(Op::SpiAttach) if len == 4 => {
                self.attached = true;
                ok()
            }
            Some(Op::SpiSetParams) if len == 24 => ok(),
            Some(Op::ChangeBaudrate) if len == 8 => {
                self.baud = w(0).max(1);
                ok()
            }
            Some(Op::SpiFlashMd5) if len == 16 => match self.md5(w(0), w(1), ctx) {
                Some(d) => Outcome::Ok(0, d.to_vec()),
                None => FAILED_SPI_OP,
            },
            Some(Op::GetSecurityInfo) if len == 0 => match ctx.chip.security_info() {
                Some(info) => Outcome::Ok(0, info),
                None => NOT_IMPLEMENTED, // STUB_LIB_ERR_NOT_SUPPORTED on the ESP32
            },
            Some(Op::ReadFlash) if len == 16 => return self.read_flash(op, w(0), w(1), w(2), ctx),
            Some(Op::EraseFlash) => {
                ctx.flash.fill(0xFF);
                ok()
            }
            Some(Op::EraseRegion) if len == 8 => {
                let (addr, size) = (w(0), w(1));
                if addr % SECTOR != 0 || size % SECTOR != 0 {
                    BAD_DATA_LEN
                } else if let Some(r) = region(ctx.flash.len(), addr, size) {
                    ctx.flash[r].fill(0xFF);
                    ok()
                } else {
                    FAILED_SPI_OP
                }
            }
            Some(Op::RunUserCode) => return self.reply(Vec::new()), // sends no response
            // READ_FLASH_SLOW and anything else: not a stub command.
            Some(Op::ReadFlashSlow) | None => INVALID_COMMAND,
            Some(_) => BAD_DATA_LEN,
        };
        self.one(op, outcome)
    }

    /// Stub FLASH_BEGIN / FLASH_DEFL_BEGIN: 4 or 5 words (`s_init_flash_operation`); the
    /// first word is the number of bytes to write, the erase happens as data arrives.
    fn stub_begin(&mut self, req: &Request, ctx: &mut Ctx) -> Outcome {
        if req.data.len() != 16 && req.data.len() != 20 {
            return BAD_DATA_LEN;
        }
        let w = |i| req.word(i).unwrap_or(0);
        let (size, blocks, block_size, offset) = (w(0), w(1), w(2), w(3));
        let start = offset / SECTOR * SECTOR;
        let end = offset
            .checked_add(size)
            .and_then(|e| e.checked_add(SECTOR - 1))
            .map(|e| e / SECTOR * SECTOR);
        let Some(end) = end.filter(|e| *e as usize <= ctx.flash.len()) else {
            return FAILED_SPI_OP;
        };
        let mut ws = FlashWrite {
            offset,
            next_seq: 0,
            blocks,
            block_size,
            remaining: size,
            inflate: (req.op == Op::FlashDeflBegin as u8).then(|| flate2::Decompress::new(true)),
            erase_next: start,
            erase_end: end,
        };
        // "Start the next erase operation, but do not wait for it to complete."
        erase_next_sector(&mut ws, ctx);
        self.write = Some(ws);
        ok()
    }

    fn stub_flash_data(&mut self, req: &Request, ctx: &mut Ctx) -> Outcome {
        if req.data.len() < 16 {
            return NOT_ENOUGH_DATA;
        }
        let Some(ws) = self.write.as_mut() else {
            return NOT_IN_FLASH_MODE;
        };
        let data = &req.data[16..];
        if req.word(0).unwrap_or(0) as usize != data.len() {
            return TOO_MUCH_DATA;
        }
        if u32::from(checksum(data)) != req.checksum {
            return BAD_CHECKSUM;
        }
        let n = (data.len() as u32).min(ws.remaining);
        write_stub(ws, ctx, data[..n as usize].to_vec());
        ok()
    }

    fn stub_defl_data(&mut self, req: &Request, ctx: &mut Ctx) -> Outcome {
        if req.data.len() < 16 {
            return BAD_DATA_LEN;
        }
        let Some(ws) = self.write.as_mut() else {
            return NOT_IN_FLASH_MODE;
        };
        if ws.remaining == 0 && req.data.len() > 4 {
            return TOO_MUCH_DATA;
        }
        let len = req.word(0).unwrap_or(0) as usize;
        let Some(data) = req.data.get(16..16 + len) else {
            return BAD_DATA_LEN;
        };
        if u32::from(checksum(data)) != req.checksum {
            return BAD_CHECKSUM;
        }
        erase_next_sector(ws, ctx); // opportunistic erase while inflating
        match inflate_block(ws, data) {
            Some(out) => {
                let n = (out.len() as u32).min(ws.remaining) as usize;
                write_stub(ws, ctx, out[..n].to_vec());
                ok()
            }
            None => INFLATE_ERROR,
        }
    }

    /// READ_FLASH: offset, length, packet size, max in flight. Answers the command, then
    /// sends the first packet; the rest follow the host's acknowledgements.
    fn read_flash(&mut self, op: u8, offset: u32, total: u32, packet: u32, ctx: &Ctx) -> Reply {
        // "Check if the buffer size … is large enough to hold the packet size" (4096).
        if packet == 0 || packet > 4096 {
            return self.one(op, BAD_DATA_LEN);
        }
        if !self.attached || region(ctx.flash.len(), offset, total).is_none() {
            return self.one(op, FAILED_SPI_OP);
        }
        let mut stream = ReadStream {
            offset,
            total,
            sent: 0,
            packet,
            md5: Md5::new(),
        };
        let mut frames = vec![self.encode(op, ok())];
        frames.extend(stream.next_packet(ctx));
        if total == 0 {
            frames.push(stream.md5.finalize().to_vec());
        } else {
            self.read = Some(stream);
        }
        self.reply(frames)
    }

    /// A frame while READ_FLASH streams: the host's 4-byte count of bytes received. Anything
    /// else ends the stream (the stub's loop `break`s), as does the last acknowledgement;
    /// either way the MD5 of what was sent follows.
    pub(super) fn read_ack(&mut self, frame: &[u8], ctx: &mut Ctx) -> Reply {
        let Some(mut stream) = self.read.take() else {
            return self.reply(Vec::new());
        };
        let acked = match <[u8; 4]>::try_from(frame) {
            Ok(b) => u32::from_le_bytes(b),
            Err(_) => return self.reply(vec![stream.md5.finalize().to_vec()]),
        };
        if stream.sent < stream.total {
            let frames = stream.next_packet(ctx);
            self.read = Some(stream);
            return self.reply(frames);
        }
        if acked < stream.total {
            self.read = Some(stream);
            return self.reply(Vec::new());
        }
        self.reply(vec![stream.md5.finalize().to_vec()])
    }
}

use super::rom::ReadStream;

impl ReadStream {
    fn next_packet(&mut self, ctx: &Ctx) -> Vec<Vec<u8>> {
        let n = (self.total - self.sent).min(self.packet);
        if n == 0 {
            return Vec::new();
        }
        let start = (self.offset + self.sent) as usize;
        let data = ctx.flash[start..start + n as usize].to_vec();
        self.md5.update(&data);
        self.sent += n;
        vec![data]
    }
}

/// Erases one more sector of the write's region, if any are left.
fn erase_next_sector(ws: &mut FlashWrite, ctx: &mut Ctx) {
    if ws.erase_next < ws.erase_end {
        let s = ws.erase_next as usize;
        let e = (s + SECTOR as usize).min(ctx.flash.len());
        ctx.flash[s..e].fill(0xFF);
        ws.erase_next += SECTOR;
    }
}

/// Writes at the write's current offset after erasing up to its end
/// (`s_ensure_flash_erased_to`), then advances.
fn write_stub(ws: &mut FlashWrite, ctx: &mut Ctx, data: Vec<u8>) {
    let target = ws.offset.saturating_add(data.len() as u32);
    while ws.erase_next < target && ws.erase_next < ws.erase_end {
        erase_next_sector(ws, ctx);
    }
    let n = data.len() as u32;
    program(ctx, ws.offset, data);
    ws.offset = ws.offset.saturating_add(n);
    ws.remaining -= n;
}
