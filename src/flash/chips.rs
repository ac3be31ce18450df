//! Per-chip facts the loader needs, in one table as espflash keeps them in `target/`: how the
//! chip is recognised, where its MAC and SPI registers are, which FLASH_BEGIN its ROM takes,
//! and the watchdog registers a USB-Serial/JTAG connection must switch off. Values are
//! esptool's (`esptool/targets/esp32.py`, `esp32s3.py`, `esp32c3.py`, `esp32s2.py`).

/// Register whose value identifies the older chips (esptool `CHIP_DETECT_MAGIC_REG_ADDR`).
pub const CHIP_DETECT_MAGIC_REG: u32 = 0x4000_1000;

/// The SPI peripheral's registers that esptool's `run_spiflash_command` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiRegs {
    /// `SPI_REG_BASE` (SPI_CMD_REG is at the base).
    pub base: u32,
    /// `SPI_USR_OFFS`.
    pub usr: u32,
    /// `SPI_USR1_OFFS`.
    pub usr1: u32,
    /// `SPI_USR2_OFFS`.
    pub usr2: u32,
    /// `SPI_MOSI_DLEN_OFFS`.
    pub mosi_dlen: u32,
    /// `SPI_MISO_DLEN_OFFS`.
    pub miso_dlen: u32,
    /// `SPI_W0_OFFS`.
    pub w0: u32,
}

/// The RTC watchdog and super watchdog registers (esptool `disable_watchdogs`), and the
/// register whose bit forces download mode on the next reset (esptool `hard_reset` of the
/// ESP32-S3 clears it: arduino-esp32 issue 6762).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogRegs {
    /// `RTC_CNTL_WDTWPROTECT_REG`.
    pub wdt_protect: u32,
    /// `RTC_CNTL_WDTCONFIG0_REG`.
    pub wdt_config0: u32,
    /// `RTC_CNTL_SWD_WPROTECT_REG`.
    pub swd_protect: u32,
    /// `RTC_CNTL_SWD_CONF_REG`.
    pub swd_conf: u32,
    /// `RTC_CNTL_OPTION1_REG`, when the chip has FORCE_DOWNLOAD_BOOT there.
    pub option1: Option<u32>,
}

/// `RTC_CNTL_WDT_WKEY`: unlocks the RTC watchdog's registers.
pub const RTC_WDT_KEY: u32 = 0x50D8_3AA1;
/// `RTC_CNTL_SWD_WKEY`: unlocks the super watchdog's registers.
pub const SWD_KEY: u32 = 0x8F1D_312A;
/// `RTC_CNTL_SWD_AUTO_FEED_EN`.
pub const SWD_AUTO_FEED: u32 = 1 << 31;
/// `RTC_CNTL_FORCE_DOWNLOAD_BOOT_MASK`.
pub const FORCE_DOWNLOAD_BOOT: u32 = 1;

/// Per-chip facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChipInfo {
    /// Name as Espressif writes it.
    pub name: &'static str,
    /// Values of the chip-detect register that mean this chip (esptool `MAGIC_VALUE`).
    pub magic: &'static [u32],
    /// The chip id GET_SECURITY_INFO reports (esptool `IMAGE_CHIP_ID`), on ROMs that have it.
    pub chip_id: Option<u32>,
    /// eFuse words holding the MAC: (low word with the last 4 bytes, high word with the first 2).
    pub mac_regs: (u32, u32),
    /// The ROM's FLASH_BEGIN takes a 5th word (esptool `flash_begin`: every ROM but the ESP32's
    /// and the ESP8266's).
    pub rom_flash_begin_5_words: bool,
    /// SPI flash registers.
    pub spi: SpiRegs,
    /// Watchdogs to switch off over USB-Serial/JTAG (None: the chip has no such USB).
    pub watchdogs: Option<WatchdogRegs>,
}

/// Chips a NerdMiner runs on.
pub const CHIPS: &[ChipInfo] = &[
    ChipInfo {
        name: "ESP32",
        magic: &[0x00F0_1D83],
        chip_id: None,
        // esptool ESP32ROM.read_mac: eFuse words 1 and 2 of EFUSE_RD_REG_BASE 0x3FF5A000.
        mac_regs: (0x3FF5_A004, 0x3FF5_A008),
        rom_flash_begin_5_words: false,
        spi: SpiRegs {
            base: 0x3FF4_2000,
            usr: 0x1C,
            usr1: 0x20,
            usr2: 0x24,
            mosi_dlen: 0x28,
            miso_dlen: 0x2C,
            w0: 0x80,
        },
        watchdogs: None,
    },
    ChipInfo {
        name: "ESP32-S2",
        magic: &[0x0000_07C6],
        chip_id: None,
        mac_regs: (0x3F41_A044, 0x3F41_A048),
        rom_flash_begin_5_words: true,
        spi: SpiRegs {
            base: 0x3F40_2000,
            usr: 0x18,
            usr1: 0x1C,
            usr2: 0x20,
            mosi_dlen: 0x24,
            miso_dlen: 0x28,
            w0: 0x58,
        },
        watchdogs: None,
    },
    ChipInfo {
        name: "ESP32-S3",
        magic: &[0x0000_0009],
        chip_id: Some(9),
        // esptool ESP32S3ROM.MAC_EFUSE_REG = EFUSE_BASE 0x60007000 + 0x44.
        mac_regs: (0x6000_7044, 0x6000_7048),
        rom_flash_begin_5_words: true,
        spi: SpiRegs {
            base: 0x6000_2000,
            usr: 0x18,
            usr1: 0x1C,
            usr2: 0x20,
            mosi_dlen: 0x24,
            miso_dlen: 0x28,
            w0: 0x58,
        },
        // RTCCNTL_BASE_REG 0x60008000 + 0xB0/0x98/0xB8/0xB4; OPTION1 0x6000812C.
        watchdogs: Some(WatchdogRegs {
            wdt_protect: 0x6000_80B0,
            wdt_config0: 0x6000_8098,
            swd_protect: 0x6000_80B8,
            swd_conf: 0x6000_80B4,
            option1: Some(0x6000_812C),
        }),
    },
    ChipInfo {
        name: "ESP32-C3",
        magic: &[0x6921_506F, 0x1B31_506F, 0x4881_606F, 0x4361_606F],
        chip_id: Some(5),
        mac_regs: (0x6000_8844, 0x6000_8848),
        rom_flash_begin_5_words: true,
        spi: SpiRegs {
            base: 0x6000_2000,
            usr: 0x18,
            usr1: 0x1C,
            usr2: 0x20,
            mosi_dlen: 0x24,
            miso_dlen: 0x28,
            w0: 0x58,
        },
        // RTCCNTL_BASE_REG 0x60008000 + 0xA8/0x90/0xB0/0xAC.
        watchdogs: Some(WatchdogRegs {
            wdt_protect: 0x6000_80A8,
            wdt_config0: 0x6000_8090,
            swd_protect: 0x6000_80B0,
            swd_conf: 0x6000_80AC,
            option1: None,
        }),
    },
];

/// The chip a detect-register value names.
pub fn chip_from_magic(magic: u32) -> Option<&'static ChipInfo> {
    CHIPS.iter().find(|c| c.magic.contains(&magic))
}

/// The chip a GET_SECURITY_INFO chip id names.
pub fn chip_from_id(id: u32) -> Option<&'static ChipInfo> {
    CHIPS.iter().find(|c| c.chip_id == Some(id))
}

/// MAC address from the two eFuse words, as esptool prints it.
pub fn mac_from_words(low: u32, high: u32) -> String {
    let h = high.to_be_bytes();
    let l = low.to_be_bytes();
    [h[2], h[3], l[0], l[1], l[2], l[3]]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Flash size from a JEDEC id as RDID (0x9F) returns it in SPI_W0 (manufacturer in the low
/// byte, capacity in the third): 2^capacity bytes, as esptool's `detect_flash_size` reads
/// `DETECTED_FLASH_SIZES`. `None` for an id no flash chip gives (no answer: 0 or all ones)
/// or a capacity outside 256 KiB..128 MiB.
pub fn flash_size_from_id(id: u32) -> Option<u32> {
    let id = id & 0x00FF_FFFF;
    if id == 0 || id == 0x00FF_FFFF {
        return None;
    }
    let capacity = (id >> 16) & 0xFF;
    (0x12..=0x1B).contains(&capacity).then(|| 1u32 << capacity)
}

/// Security flags and chip id from GET_SECURITY_INFO's answer (esptool
/// `get_security_info`: 20 bytes with the chip id, 12 on an ESP32-S2 without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecurityInfo {
    /// Flags word (bit 2: secure download mode).
    pub flags: u32,
    /// Chip id, when the ROM reports one.
    pub chip_id: Option<u32>,
    /// ECO / API version, when reported.
    pub eco_version: Option<u32>,
}

impl SecurityInfo {
    /// Decodes the data of a GET_SECURITY_INFO answer.
    pub fn parse(data: &[u8]) -> Option<SecurityInfo> {
        let word = |i: usize| -> Option<u32> {
            let b = data.get(i..i + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        match data.len() {
            12 => Some(SecurityInfo {
                flags: word(0)?,
                chip_id: None,
                eco_version: None,
            }),
            20 => Some(SecurityInfo {
                flags: word(0)?,
                chip_id: word(12),
                eco_version: word(16),
            }),
            _ => None,
        }
    }

    /// Secure download mode: the ROM refuses reads and register access.
    pub fn secure_download(&self) -> bool {
        self.flags & (1 << 2) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chips_by_magic_and_by_id() {
        assert_eq!(chip_from_magic(0x00F0_1D83).unwrap().name, "ESP32");
        assert_eq!(chip_from_magic(0x1B31_506F).unwrap().name, "ESP32-C3");
        assert!(chip_from_magic(0xDEAD_BEEF).is_none());
        assert_eq!(chip_from_id(9).unwrap().name, "ESP32-S3");
        assert!(chip_from_id(0).is_none());
        assert_eq!(
            mac_from_words(0x1234_5678, 0x0000_24D7),
            "24:d7:12:34:56:78"
        );
    }

    #[test]
    fn flash_sizes_from_jedec_ids() {
        // Winbond W25Q32 (4 MiB): EF 40 16 -> W0 reads 0x1640EF.
        assert_eq!(flash_size_from_id(0x0016_40EF), Some(4 << 20));
        assert_eq!(flash_size_from_id(0x0018_4068), Some(16 << 20));
        assert_eq!(flash_size_from_id(0), None);
        assert_eq!(flash_size_from_id(0xFFFF_FFFF), None);
        assert_eq!(flash_size_from_id(0x0030_40EF), None);
    }

    #[test]
    fn security_info_both_lengths() {
        let mut d = vec![0u8; 20];
        d[0] = 0b100;
        d[12] = 9;
        d[16] = 2;
        let s = SecurityInfo::parse(&d).unwrap();
        assert_eq!((s.chip_id, s.eco_version), (Some(9), Some(2)));
        assert!(s.secure_download());
        let s2 = SecurityInfo::parse(&d[..12]).unwrap();
        assert_eq!(s2.chip_id, None);
        assert!(SecurityInfo::parse(&d[..5]).is_none());
    }
}
