//! Operations on a chip in its ROM serial bootloader, composed from [`Command`]s: sync, chip
//! detection, MAC, flash attach, reads (READ_FLASH_SLOW, 64 bytes a command: no stub to upload,
//! nothing in RAM to trust), MD5, and the FLASH_BEGIN/DATA/END writes the config writer uses.
//!
//! Our own rather than the `espflash` crate's `Flasher`: its `connect` insists on detecting the
//! flash size through the SPI peripheral's registers (WRITE_REG/READ_REG of SPI_CMD/W0), which
//! no simulator can answer honestly; its `read_flash_rom` advances the offset by the total read
//! so far rather than by one block (so it reads the wrong bytes after the second block), writes
//! to a file path and asserts (panics) on a short answer; and its `Port` is a concrete
//! `TTYPort`, not the port our reader thread already owns.

use std::io::{Read, Write};
use std::time::Duration;

use md5::{Digest, Md5};

use super::command::{
    chip_from_magic, mac_from_words, parse_md5, ChipInfo, Command, CHIP_DETECT_MAGIC_REG,
    FLASH_WRITE_BLOCK, READ_SLOW_MAX, SECTOR,
};
use super::partitions::hex;
use super::transport::{LoaderError, Transport};

/// SYNC attempts before giving up (esptool tries 7 per reset, 100 ms each).
pub const SYNC_ATTEMPTS: u32 = 10;

/// A chip talking its ROM loader protocol.
pub struct Loader<T> {
    t: Transport<T>,
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
        }
    }

    /// Sends SYNC until the ROM answers.
    pub fn sync(&mut self) -> Result<(), LoaderError> {
        for _ in 0..SYNC_ATTEMPTS {
            match self.t.command(&Command::Sync) {
                Ok(_) => {
                    // The ROM answers one SYNC eight times: let the rest arrive and go.
                    self.t.drain(Duration::from_millis(50))?;
                    return Ok(());
                }
                Err(LoaderError::Io(e)) => return Err(LoaderError::Io(e)),
                Err(_) => {}
            }
        }
        Err(LoaderError::NoSync {
            attempts: SYNC_ATTEMPTS,
        })
    }

    /// What the chip printed outside loader frames so far (its boot banner).
    pub fn take_text(&mut self) -> Vec<u8> {
        self.t.take_text()
    }

    /// The port back.
    pub fn into_inner(self) -> T {
        self.t.into_inner()
    }

    /// Reads a 32-bit register.
    pub fn read_reg(&mut self, address: u32) -> Result<u32, LoaderError> {
        Ok(self.t.command(&Command::ReadReg { address })?.value)
    }

    /// Which chip this is.
    pub fn detect_chip(&mut self) -> Result<&'static ChipInfo, LoaderError> {
        let magic = self.read_reg(CHIP_DETECT_MAGIC_REG)?;
        chip_from_magic(magic).ok_or(LoaderError::UnknownChip(magic))
    }

    /// The chip's factory MAC from its eFuses.
    pub fn mac(&mut self, chip: &ChipInfo) -> Result<String, LoaderError> {
        let low = self.read_reg(chip.mac_regs.0)?;
        let high = self.read_reg(chip.mac_regs.1)?;
        Ok(mac_from_words(low, high))
    }

    /// Attaches the SPI flash and tells the ROM its size (needed before any flash command).
    pub fn attach_flash(&mut self, flash_size: u32) -> Result<(), LoaderError> {
        self.t.command(&Command::SpiAttach)?;
        self.t.command(&Command::SpiSetParams {
            total_size: flash_size,
        })?;
        Ok(())
    }

    /// Reads `size` bytes at `offset`; `progress(done, total)` after each block.
    pub fn read_flash(
        &mut self,
        offset: u32,
        size: u32,
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<Vec<u8>, LoaderError> {
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

    /// MD5 of a flash region as the chip computes it.
    pub fn flash_md5(&mut self, offset: u32, size: u32) -> Result<[u8; 16], LoaderError> {
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
    /// FLASH_DATA in blocks of [`FLASH_WRITE_BLOCK`]. Returns the number of blocks.
    pub fn flash_begin(&mut self, offset: u32, size: u32) -> Result<u32, LoaderError> {
        let blocks = size.div_ceil(FLASH_WRITE_BLOCK);
        let erase_size = size.div_ceil(SECTOR) * SECTOR;
        self.t.command(&Command::FlashBegin {
            erase_size,
            blocks,
            block_size: FLASH_WRITE_BLOCK,
            offset,
        })?;
        Ok(blocks)
    }

    /// Writes block `sequence` (padded with 0xFF to the block size).
    pub fn flash_data(&mut self, sequence: u32, block: &[u8]) -> Result<(), LoaderError> {
        let mut data = block.to_vec();
        data.resize(FLASH_WRITE_BLOCK as usize, 0xFF);
        self.t.command(&Command::FlashData { sequence, data })?;
        Ok(())
    }

    /// Ends a write; `reboot` starts the firmware.
    pub fn flash_end(&mut self, reboot: bool) -> Result<(), LoaderError> {
        self.t.command(&Command::FlashEnd { reboot })?;
        Ok(())
    }

    /// Writes `data` at `offset` (begin, every block, end without reboot).
    pub fn write_flash(
        &mut self,
        offset: u32,
        data: &[u8],
        progress: &mut dyn FnMut(u32, u32),
    ) -> Result<(), LoaderError> {
        self.flash_begin(offset, data.len() as u32)?;
        for (seq, block) in data.chunks(FLASH_WRITE_BLOCK as usize).enumerate() {
            self.flash_data(seq as u32, block)?;
            progress(
                ((seq + 1) * FLASH_WRITE_BLOCK as usize).min(data.len()) as u32,
                data.len() as u32,
            );
        }
        self.flash_end(false)
    }
}
