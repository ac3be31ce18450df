//! The physical link and the flash chip's own time, for what a pseudo-terminal cannot show:
//! a USB-UART bridge that garbles data above the rate it can carry, and (for benchmarks) the
//! time bytes take on a UART and the time the SPI flash takes to erase and program.
//!
//! Sources: a UART frame is 10 bits per byte (8N1: start, 8 data, stop); flash timings are the
//! typical figures of the Winbond W25Q32JV datasheet (the 4 MiB flash on most ESP32 boards,
//! JEDEC id EF 40 16, which the SPI model answers): sector (4 KiB) erase 45 ms, 64 KiB block
//! erase 150 ms, page (256 B) program 0.4 ms; fast read at 40 MHz (the ESP32 ROM's default
//! SPI clock): about 5 MB/s on one data line. The flasher stub erases 64 KiB blocks ahead of
//! what it writes (esp-flasher-stub `stub_write_flash`), the ROM erases sectors up front in
//! FLASH_BEGIN.

use std::time::Duration;

use crate::flash::command::{Op, Request};

/// How the simulated link behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkModel {
    /// Highest rate the USB-UART bridge carries cleanly (a CH340 that fails at 921600): above
    /// it every byte is garbled both ways until the chip is reset to the ROM's 115200. `None`:
    /// any rate works (USB-Serial/JTAG ignores the rate altogether).
    pub max_baud: Option<u32>,
    /// Take the time a real link and flash take: bytes at the UART's rate, erase and program
    /// at the flash's. For benchmarks; tests leave it off.
    pub pace: bool,
}

/// Time for `bytes` on a UART at `baud` (8N1: 10 bits a byte).
pub fn wire_time(bytes: usize, baud: u32) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 10.0 / f64::from(baud.max(1)))
}

const SECTOR_ERASE: Duration = Duration::from_millis(45);
const BLOCK_ERASE: Duration = Duration::from_millis(150);
const PAGE_PROGRAM: Duration = Duration::from_micros(400);
/// Bytes a second the chip reads its flash at (for MD5 and reads).
const FLASH_READ_BPS: f64 = 5_000_000.0;

fn erase_time(bytes: u32, blocks_where_aligned: bool) -> Duration {
    if blocks_where_aligned {
        let blocks = bytes / 0x1_0000;
        let sectors = (bytes % 0x1_0000).div_ceil(0x1000);
        BLOCK_ERASE * blocks + SECTOR_ERASE * sectors
    } else {
        SECTOR_ERASE * bytes.div_ceil(0x1000)
    }
}

/// The stub erases 64 KiB blocks ahead of the data it writes (esp-flasher-stub
/// `stub_write_flash`): one block erase per 64 KiB written, whatever the command's size.
fn stub_erase_time(bytes: u32) -> Duration {
    BLOCK_ERASE.mul_f64(f64::from(bytes) / f64::from(0x1_0000u32))
}

fn program_time(bytes: u32) -> Duration {
    PAGE_PROGRAM * bytes.div_ceil(256)
}

fn read_time(bytes: u32) -> Duration {
    Duration::from_secs_f64(f64::from(bytes) / FLASH_READ_BPS)
}

/// How long the chip is busy with `req` before it answers (flash work only; the wire is
/// paced separately). `stub`: the flasher stub answers (it erases as it writes).
pub fn busy_time(req: &Request, stub: bool) -> Duration {
    let w = |i| req.word(i).unwrap_or(0);
    match Op::from_u8(req.op) {
        // The ROM erases the whole region before it answers; the stub only remembers it.
        Some(Op::FlashBegin | Op::FlashDeflBegin) if !stub => erase_time(w(0), false),
        Some(Op::FlashData) => {
            let len = w(0);
            let erase = if stub {
                stub_erase_time(len)
            } else {
                Duration::ZERO
            };
            erase + program_time(len)
        }
        // Compressed blocks inflate to about twice their size on a config partition (mostly
        // 0xFF); the stub erases what it writes.
        Some(Op::FlashDeflData) => {
            let len = w(0).saturating_mul(2);
            let erase = if stub {
                stub_erase_time(len)
            } else {
                Duration::ZERO
            };
            erase + program_time(len)
        }
        Some(Op::EraseRegion) => erase_time(w(1), true),
        Some(Op::SpiFlashMd5) => read_time(w(1)),
        Some(Op::ReadFlashSlow) => read_time(w(1)),
        _ => Duration::ZERO,
    }
}

/// A byte as a bridge at the wrong rate delivers it.
pub fn garble(b: u8) -> u8 {
    b ^ 0x5A
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: u8, words: &[u32]) -> Request {
        Request {
            op,
            checksum: 0,
            data: words.iter().flat_map(|w| w.to_le_bytes()).collect(),
        }
    }

    #[test]
    fn wire_and_flash_times() {
        assert_eq!(wire_time(11_520, 115_200), Duration::from_secs(1));
        // 896 KiB erased by the ROM sector by sector: 224 × 45 ms.
        let rom = busy_time(&req(0x02, &[0xE_0000, 896, 0x400, 0x31_0000]), false);
        assert_eq!(rom, Duration::from_millis(224 * 45));
        // The stub erases as it writes: nothing up front, then a quarter of a 64 KiB block
        // erase and 64 page programs for each 16 KiB block.
        assert_eq!(
            busy_time(&req(0x02, &[0xE_0000, 56, 0x4000, 0x31_0000, 0]), true),
            Duration::ZERO
        );
        let block = busy_time(&req(0x03, &[0x4000, 0, 0, 0]), true);
        assert_eq!(block, BLOCK_ERASE / 4 + PAGE_PROGRAM * 64);
        assert_eq!(garble(garble(0xC0)), 0xC0);
    }
}
