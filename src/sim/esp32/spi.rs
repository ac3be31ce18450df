//! The SPI flash controller as esptool's `run_spiflash_command` (and espflash's flash
//! detection) drive it through WRITE_REG/READ_REG: set the data lengths (MOSI_DLEN /
//! MISO_DLEN), the phases (SPI_USR: COMMAND, ADDR, DUMMY, MISO, MOSI), the command byte
//! (SPI_USR2, command length in bits 28-31), the address (SPI_ADDR), the data (W0…), then set
//! SPI_CMD's USR bit (1 << 18) and poll until the hardware clears it; the answer is in W0.
//!
//! The flash behind it answers RDID (0x9F) with a JEDEC id whose capacity byte matches the
//! image, RDSFDP (0x5A) from an SFDP table, the status-register reads and writes, and takes
//! the reset / write-enable / power-down commands esptool's `attach_flash` sends.

use std::collections::HashMap;

use super::chips::{jedec_id, SpiLayout};

/// SPI_CMD's "start user command" bit (`SPI_CMD_USR` in `run_spiflash_command`).
const SPI_CMD_USR: u32 = 1 << 18;
/// SPI_USR phase bits (`run_spiflash_command`).
const SPI_USR_ADDR: u32 = 1 << 30;
const SPI_USR_MISO: u32 = 1 << 28;
const SPI_USR_MOSI: u32 = 1 << 27;
/// `SPI_USR_ADDR_LEN_SHIFT` in SPI_USR1.
const ADDR_LEN_SHIFT: u32 = 26;
/// Size of the register block (every offset esptool uses is below it).
const BLOCK: u32 = 0x100;

/// One SPI flash controller with the flash chip behind it.
#[derive(Debug)]
pub struct SpiController {
    layout: SpiLayout,
    regs: HashMap<u32, u32>,
    /// The flash's status registers 1-3 (RDSR 0x05 / 0x35 / 0x15, WRSR 0x01 / 0x31 / 0x11).
    status: [u8; 3],
    /// Commands run, in order (tests look at them).
    pub commands: Vec<u8>,
}

impl SpiController {
    /// A controller with every register zero.
    pub fn new(layout: SpiLayout) -> Self {
        Self {
            layout,
            regs: HashMap::new(),
            status: [0; 3],
            commands: Vec::new(),
        }
    }

    /// Whether `address` is one of this controller's registers.
    pub fn owns(&self, address: u32) -> bool {
        address >= self.layout.base && address < self.layout.base + BLOCK
    }

    /// A register's value. SPI_CMD reads back with USR clear: commands finish at once.
    pub fn read(&self, address: u32) -> u32 {
        self.regs.get(&address).copied().unwrap_or(0)
    }

    fn reg(&self, offset: u32) -> u32 {
        self.read(self.layout.base + offset)
    }

    /// Writes a register; setting SPI_CMD's USR bit runs the user command against `flash`.
    /// `attached` is false before SPI_ATTACH: the flash is not on the controller's pins yet
    /// and MISO reads all ones (esptool's `_verify_flash_connection` treats 0xFFFFFF as "no
    /// flash").
    pub fn write(&mut self, address: u32, value: u32, flash: &[u8], attached: bool) {
        let cmd_reg = self.layout.base;
        if address == cmd_reg && value & SPI_CMD_USR != 0 {
            self.run(flash, attached);
            self.regs.insert(cmd_reg, value & !SPI_CMD_USR);
            return;
        }
        self.regs.insert(address, value);
    }

    fn run(&mut self, flash: &[u8], attached: bool) {
        let l = self.layout;
        let usr = self.reg(l.usr);
        let command = (self.reg(l.usr2) & 0xFF) as u8;
        self.commands.push(command);
        let miso_bits = if usr & SPI_USR_MISO != 0 {
            self.reg(l.miso_dlen) + 1
        } else {
            0
        };
        let mosi_bits = if usr & SPI_USR_MOSI != 0 {
            self.reg(l.mosi_dlen) + 1
        } else {
            0
        };
        let address = if usr & SPI_USR_ADDR != 0 {
            let len = ((self.reg(l.usr1) >> ADDR_LEN_SHIFT) & 0x3F) + 1;
            let raw = self.reg(4);
            // SPI_ADDR_REG_MSB: the ESP32 sends the register from its top bit, so esptool
            // shifts the address up; the S3 sends the low `len` bits.
            let a = if l.addr_msb && len < 32 {
                raw >> (32 - len)
            } else {
                raw
            };
            if len < 32 {
                a & ((1 << len) - 1)
            } else {
                a
            }
        } else {
            0
        };
        let mosi: Vec<u8> = (0..mosi_bits.div_ceil(8))
            .map(|i| {
                let word = self.reg(l.w0 + (i / 4) * 4);
                (word >> ((i % 4) * 8)) as u8
            })
            .collect();
        let answer = if attached {
            self.flash_answer(command, address, &mosi, flash)
        } else {
            Vec::new()
        };
        let n = miso_bits.div_ceil(8) as usize;
        let mut bytes: Vec<u8> = answer
            .into_iter()
            .chain(std::iter::repeat(0xFF))
            .take(n)
            .collect();
        // Received bytes fill W0, W1, … from the least significant byte.
        bytes.resize(n.div_ceil(4) * 4, 0);
        for (i, chunk) in bytes.chunks(4).enumerate() {
            let reg = l.base + l.w0 + 4 * i as u32;
            let mut word = self.read(reg).to_le_bytes();
            let valid = n.saturating_sub(i * 4).min(4);
            word[..valid].copy_from_slice(&chunk[..valid]);
            self.regs.insert(reg, u32::from_le_bytes(word));
        }
    }

    /// What the flash chip shifts out for `command` (JEDEC SPI NOR commands, as a Winbond
    /// W25Q answers them).
    fn flash_answer(&mut self, command: u8, address: u32, mosi: &[u8], flash: &[u8]) -> Vec<u8> {
        match command {
            0x9F => jedec_id(flash.len()).to_vec(),
            0x5A => {
                let table = sfdp(flash.len());
                table
                    .get(address as usize..)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            }
            0x05 => vec![self.status[0]],
            0x35 => vec![self.status[1]],
            0x15 => vec![self.status[2]],
            0x01 => {
                // WRSR: one byte, or two (status 1 and 2) as `write_status` also tries.
                for (s, b) in self.status.iter_mut().zip(mosi) {
                    *s = *b;
                }
                Vec::new()
            }
            0x31 => {
                if let Some(b) = mosi.first() {
                    self.status[1] = *b;
                }
                Vec::new()
            }
            0x11 => {
                if let Some(b) = mosi.first() {
                    self.status[2] = *b;
                }
                Vec::new()
            }
            // Reset enable / reset, write enable / disable, volatile write enable, and the
            // (U)DPD / release power-down sequence of esptool's XMC start-up flow.
            0x66 | 0x99 | 0x06 | 0x04 | 0x50 | 0xB9 | 0x79 | 0xFF | 0xAB => Vec::new(),
            _ => Vec::new(), // nothing drives MISO: it reads high
        }
    }
}

/// The start of a JESD216 SFDP table: the "SFDP" signature esptool's
/// `_verify_flash_connection` checks (0x50444653 read as a little-endian word at address 0),
/// one parameter header pointing at the basic flash parameter table at 0x80, whose second
/// dword is the density in bits minus one.
fn sfdp(size: usize) -> Vec<u8> {
    let mut t = vec![0xFF; 0x88];
    t[..8].copy_from_slice(&[b'S', b'F', b'D', b'P', 0x06, 0x01, 0x00, 0xFF]);
    t[8..16].copy_from_slice(&[0x00, 0x06, 0x01, 0x10, 0x80, 0x00, 0x00, 0xFF]);
    t[0x80..0x84].copy_from_slice(&0xFFF1_20E5u32.to_le_bytes());
    let bits = (size as u64 * 8).saturating_sub(1) as u32;
    t[0x84..0x88].copy_from_slice(&bits.to_le_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::esp32::chips::SimChip;

    /// esptool `run_spiflash_command(cmd, read_bits=…, addr=…, addr_len=…, dummy_len=…)`,
    /// register write for register write.
    fn esptool_command(
        spi: &mut SpiController,
        l: SpiLayout,
        flash: &[u8],
        cmd: u8,
        read_bits: u32,
        addr: Option<(u32, u32)>,
        dummy: u32,
    ) -> u32 {
        let b = l.base;
        if read_bits > 0 {
            spi.write(b + l.miso_dlen, read_bits - 1, flash, true);
        }
        let mut usr1 = 0;
        if dummy > 0 {
            usr1 |= dummy - 1;
        }
        if let Some((_, len)) = addr {
            usr1 |= (len - 1) << 26;
        }
        if usr1 != 0 {
            spi.write(b + l.usr1, usr1, flash, true);
        }
        let mut flags = 1 << 31;
        if read_bits > 0 {
            flags |= SPI_USR_MISO;
        }
        if addr.is_some() {
            flags |= SPI_USR_ADDR;
        }
        if dummy > 0 {
            flags |= 1 << 29;
        }
        spi.write(b + l.usr, flags, flash, true);
        spi.write(b + l.usr2, (7 << 28) | u32::from(cmd), flash, true);
        if let Some((a, len)) = addr {
            let v = if l.addr_msb { a << (32 - len) } else { a };
            spi.write(b + 4, v, flash, true);
        }
        spi.write(b + l.w0, 0, flash, true);
        spi.write(b, SPI_CMD_USR, flash, true);
        assert_eq!(spi.read(b) & SPI_CMD_USR, 0, "USR bit clears when done");
        spi.read(b + l.w0)
    }

    #[test]
    fn rdid_and_sfdp_as_esptool_reads_them_on_both_chips() {
        for chip in [SimChip::Esp32, SimChip::Esp32S3] {
            for (size, cap) in [(4usize << 20, 0x16u32), (8 << 20, 0x17), (16 << 20, 0x18)] {
                let flash = vec![0xFF; size];
                let l = chip.spi();
                let mut spi = SpiController::new(l);
                let id = esptool_command(&mut spi, l, &flash, 0x9F, 24, None, 0);
                assert_eq!(id, (cap << 16) | 0x40EF, "{chip:?}");
                let sig = esptool_command(&mut spi, l, &flash, 0x5A, 32, Some((0, 24)), 8);
                assert_eq!(sig, 0x5044_4653);
                let mf = esptool_command(&mut spi, l, &flash, 0x5A, 8, Some((0x10, 24)), 8);
                assert_ne!(mf & 0xFF, 0x20, "not an XMC chip");
            }
        }
    }

    #[test]
    fn unattached_flash_reads_all_ones() {
        let l = SimChip::Esp32.spi();
        let mut spi = SpiController::new(l);
        let flash = vec![0u8; 4 << 20];
        spi.write(l.base + l.miso_dlen, 23, &flash, false);
        spi.write(l.base + l.usr, (1 << 31) | SPI_USR_MISO, &flash, false);
        spi.write(l.base + l.usr2, (7 << 28) | 0x9F, &flash, false);
        spi.write(l.base + l.w0, 0, &flash, false);
        spi.write(l.base, SPI_CMD_USR, &flash, false);
        assert_eq!(spi.read(l.base + l.w0), 0x00FF_FFFF);
    }
}
