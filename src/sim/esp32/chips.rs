//! Per-chip facts the simulated ROM answers from: chip-detect values, eFuse words, the SPI
//! controller's register layout, the security-info struct, and the ROM's boot banners.
//!
//! Every value is chosen so that esptool 5.6.0 decodes it to a real part; the function that
//! decodes it is named beside it (`esptool/targets/esp32.py`, `esptool/targets/esp32s3.py`).

use crate::flash::lines::Wiring;

/// Which chip the simulated board carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimChip {
    /// Classic ESP32 (ESP32-D0WD-V3, the chip on the ESP32-WROOM-32E NerdMiners use).
    #[default]
    Esp32,
    /// ESP32-S3 (QFN56, revision v0.2), normally flashed over its own USB-Serial/JTAG.
    Esp32S3,
}

/// Why the chip (re)started: printed in the ROM banner's `rst:` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// Power applied, or EN pulled low (both read POWERON on these chips).
    PowerOn,
    /// A software reset (ROM FLASH_END asking for a reboot).
    Software,
    /// The RTC watchdog fired.
    RtcWatchdog,
    /// The super watchdog (ESP32-S3) fired.
    SuperWatchdog,
    /// The USB-Serial/JTAG peripheral reset the chip (ESP32-S3 DTR/RTS sequence).
    UsbJtag,
}

/// Where the SPI flash controller's user-command registers are (esptool
/// `ESPLoader.run_spiflash_command`, the `SPI_*_OFFS` constants of each target class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiLayout {
    /// `SPI_REG_BASE`; SPI_CMD is at +0, SPI_ADDR at +4.
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
    /// `SPI_ADDR_REG_MSB`: the address is sent from the register's most significant bit.
    pub addr_msb: bool,
}

/// ESP32-S3 RTC_CNTL registers esptool writes (`ESP32S3ROM` constants).
pub mod s3_rtc {
    /// `RTC_CNTL_WDTCONFIG0_REG`: bit 31 enables the RTC watchdog.
    pub const WDTCONFIG0: u32 = 0x6000_8098;
    /// `RTC_CNTL_WDTCONFIG1_REG`: the first stage's timeout.
    pub const WDTCONFIG1: u32 = 0x6000_809C;
    /// `RTC_CNTL_WDTWPROTECT_REG`: writes to the WDT registers count only while it holds the key.
    pub const WDTWPROTECT: u32 = 0x6000_80B0;
    /// `RTC_CNTL_WDT_WKEY`.
    pub const WDT_WKEY: u32 = 0x50D8_3AA1;
    /// `RTC_CNTL_SWD_CONF_REG`: bit 31 (`SWD_AUTO_FEED_EN`) makes the super watchdog feed itself.
    pub const SWD_CONF: u32 = 0x6000_80B4;
    /// `RTC_CNTL_SWD_WPROTECT_REG`.
    pub const SWD_WPROTECT: u32 = 0x6000_80B8;
    /// `RTC_CNTL_SWD_WKEY`.
    pub const SWD_WKEY: u32 = 0x8F1D_312A;
    /// `RTC_CNTL_SWD_AUTO_FEED_EN`.
    pub const SWD_AUTO_FEED_EN: u32 = 1 << 31;
    /// `RTC_CNTL_OPTION1_REG`: bit 0 (`FORCE_DOWNLOAD_BOOT`) sends the next reset to download mode.
    pub const OPTION1: u32 = 0x6000_812C;
    /// `RTC_CNTL_FORCE_DOWNLOAD_BOOT_MASK`.
    pub const FORCE_DOWNLOAD_BOOT: u32 = 0x1;
}

/// The register every ROM since the ESP8266 keeps a per-chip value at
/// (`ESPLoader.CHIP_DETECT_MAGIC_REG_ADDR`).
pub const CHIP_DETECT_MAGIC_REG: u32 = 0x4000_1000;

/// ESP32 crystal, and the UART clock divider the ROM leaves at 115200 Bd: esptool
/// `get_crystal_freq` multiplies `UART_CLKDIV_REG` by the baud rate to find the crystal.
const ESP32_XTAL_HZ: u32 = 40_000_000;

impl SimChip {
    /// Name as esptool prints it in `Connected to … on …`.
    pub fn name(self) -> &'static str {
        match self {
            SimChip::Esp32 => "ESP32",
            SimChip::Esp32S3 => "ESP32-S3",
        }
    }

    /// Chip description esptool's `get_chip_description` builds from the eFuses below.
    pub fn description(self) -> &'static str {
        match self {
            SimChip::Esp32 => "ESP32-D0WD-V3 (revision v3.0)",
            SimChip::Esp32S3 => "ESP32-S3 (QFN56) (revision v0.2)",
        }
    }

    /// How such a board is usually connected: a UART bridge for the ESP32, the chip's own
    /// USB-Serial/JTAG for the S3.
    pub fn default_wiring(self) -> Wiring {
        match self {
            SimChip::Esp32 => Wiring::Classic,
            SimChip::Esp32S3 => Wiring::UsbJtag,
        }
    }

    /// A factory MAC with Espressif's OUIs, the last byte from `seed`.
    pub fn default_mac(self, seed: u64) -> [u8; 6] {
        let last = (seed & 0xFF) as u8;
        match self {
            SimChip::Esp32 => [0x24, 0xD7, 0xEB, 0x10, 0x20, last],
            SimChip::Esp32S3 => [0x34, 0x85, 0x18, 0x30, 0x40, last],
        }
    }

    /// The SPI0/SPI1 flash controller layout (`SPI_REG_BASE` and offsets in
    /// `targets/esp32.py` and `targets/esp32s3.py`; espflash's flash detection uses the same).
    pub fn spi(self) -> SpiLayout {
        match self {
            SimChip::Esp32 => SpiLayout {
                base: 0x3FF4_2000,
                usr: 0x1C,
                usr1: 0x20,
                usr2: 0x24,
                mosi_dlen: 0x28,
                miso_dlen: 0x2C,
                w0: 0x80,
                addr_msb: true,
            },
            SimChip::Esp32S3 => SpiLayout {
                base: 0x6000_2000,
                usr: 0x18,
                usr1: 0x1C,
                usr2: 0x20,
                mosi_dlen: 0x24,
                miso_dlen: 0x28,
                w0: 0x58,
                addr_msb: false,
            },
        }
    }

    /// Whether the ROM's FLASH_BEGIN / FLASH_DEFL_BEGIN takes a fifth word (the encryption
    /// flag). esptool `flash_begin`: "ESP32 and ESP8266 ROMs do not support extended parameter
    /// format"; every later ROM expects it.
    pub fn rom_begin_has_encrypt_word(self) -> bool {
        self != SimChip::Esp32
    }

    /// GET_SECURITY_INFO's answer, or None where the ROM lacks the command (ESP32). Layout:
    /// esptool `get_security_info` unpacks `<IBBBBBBBBII`: flags, flash_crypt_cnt, seven key
    /// purposes, chip id (`ESP32S3ROM.IMAGE_CHIP_ID` = 9), API version.
    pub fn security_info(self) -> Option<Vec<u8>> {
        match self {
            SimChip::Esp32 => None,
            SimChip::Esp32S3 => {
                let mut v = Vec::with_capacity(20);
                v.extend_from_slice(&0u32.to_le_bytes()); // no secure boot, no SDM
                v.push(0); // flash_crypt_cnt: encryption off
                v.extend_from_slice(&[0; 7]); // key purposes: all USER/EMPTY
                v.extend_from_slice(&9u32.to_le_bytes());
                v.extend_from_slice(&0u32.to_le_bytes());
                Some(v)
            }
        }
    }

    /// Read-only registers: chip detect, eFuses, calibration. `None` for any other address
    /// (the caller keeps those as ordinary read/write words). `baud` is the UART's current
    /// rate, for the clock divider.
    pub fn fixed_register(self, address: u32, mac: [u8; 6], baud: u32) -> Option<u32> {
        let mac_low = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]);
        let mac_high = u32::from_be_bytes([0, 0, mac[0], mac[1]]);
        match self {
            SimChip::Esp32 => Some(match address {
                CHIP_DETECT_MAGIC_REG => 0x00F0_1D83, // ESP32ROM.MAGIC_VALUE
                // EFUSE_RD_REG_BASE words (ESP32ROM.read_efuse(n) = base + 4n).
                0x3FF5_A000 => 0, // word 0: no read protection, flash_crypt_cnt 0
                // read_mac: words 2 and 1 packed big-endian, the top 16 bits of word 2 are
                // the MAC CRC, which esptool trims.
                0x3FF5_A004 => mac_low,
                0x3FF5_A008 => mac_high,
                // word 3: pkg version 1 (bits 9-11: D0WD), rev bit 0 (bit 15), CPU frequency
                // rated with the low flag clear (bit 13: 240 MHz), dual core, BT. A real
                // ESP32-D0WD-V3 reads 0x0000A200 here (esptool issue #698 trace).
                0x3FF5_A00C => 0x0000_A200,
                // word 4: CK8M frequency 80 (bits 0-7, for get_rom_cal_crystal_freq) and an
                // ADC Vref calibration value (bits 8-12).
                0x3FF5_A010 => 0x0000_1150,
                // word 5: rev bit 1 (bit 20); minor revision 0 (bits 24-25); SPI pads 0.
                0x3FF5_A014 => 1 << 20,
                0x3FF5_A018 => 0, // word 6: coding scheme none, ABS_DONE (secure boot) off
                // APB_CTL_DATE bit 31 is the third revision bit: 0b111 -> major revision 3.
                0x3FF6_607C => 0x8000_0000,
                // UART_CLKDIV_REG: APB (the 40 MHz crystal in the ROM) / baud.
                0x3FF4_0014 => ESP32_XTAL_HZ / baud.max(1),
                // RTCCALICFG1: cali value 1280 at bit 7; with CK8M 80 esptool's
                // get_rom_cal_crystal_freq gives 1280 * 15625 * 80 / 40 = 40 MHz.
                0x3FF5_F06C => 1280 << 7,
                _ => return None,
            }),
            SimChip::Esp32S3 => Some(match address {
                // Pre-chip-id detection value (esptool lists 0x9 for the S3).
                CHIP_DETECT_MAGIC_REG => 0x0000_0009,
                // EFUSE_BLOCK1 (MAC_EFUSE_REG = 0x60007044): words 0 and 1 are the MAC.
                0x6000_7044 => mac_low,
                0x6000_7048 => mac_high,
                // block 1 word 3: minor revision low bits 18-20 = 2, block version minor 1
                // (bits 24-26), package 0 = QFN56 (bits 21-23), no embedded flash (27-29).
                0x6000_7050 => (2 << 18) | (1 << 24),
                0x6000_7054 => 0, // word 4: no embedded PSRAM, no flash vendor
                0x6000_7058 => 0, // word 5: major revision 0, minor high bit 0
                0x6000_706C => 1, // EFUSE_BLOCK2 word 4: block version major 1
                0x6000_7034 => 0, // SPI_BOOT_CRYPT_CNT, VDD_SPI: flash encryption off
                0x6000_7038 => 0, // SECURE_BOOT_EN off, key purposes 2-5 empty
                0x6000_703C => 0, // flash type: NOR
                _ => return None,
            }),
        }
    }

    /// The ROM's banner for a boot into download mode (`waiting for download`) or into the
    /// flash (`SPI_FAST_FLASH_BOOT`), with its reset reason. esptool's `_connect_attempt`
    /// reads `boot:(0x..)(.*waiting for download)?` from it.
    pub fn banner(self, reason: ResetReason, download: bool) -> Vec<String> {
        match self {
            SimChip::Esp32 => {
                let rst = match reason {
                    ResetReason::PowerOn | ResetReason::UsbJtag => "rst:0x1 (POWERON_RESET)",
                    ResetReason::Software => "rst:0xc (SW_CPU_RESET)",
                    ResetReason::RtcWatchdog | ResetReason::SuperWatchdog => {
                        "rst:0x10 (RTCWDT_RTC_RESET)"
                    }
                };
                let mut v = vec!["ets Jun  8 2016 00:22:57".to_string(), String::new()];
                if download {
                    v.push(format!(
                        "{rst},boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))"
                    ));
                    v.push("waiting for download".into());
                } else {
                    v.push(format!("{rst},boot:0x13 (SPI_FAST_FLASH_BOOT)"));
                }
                v
            }
            SimChip::Esp32S3 => {
                let rst = match reason {
                    ResetReason::PowerOn => "rst:0x1 (POWERON)",
                    ResetReason::Software => "rst:0x3 (RTC_SW_SYS_RST)",
                    ResetReason::RtcWatchdog => "rst:0x10 (RTCWDT_RTC_RST)",
                    ResetReason::SuperWatchdog => "rst:0x12 (SUPER_WDT_RST)",
                    ResetReason::UsbJtag => "rst:0x15 (USB_UART_CHIP_RESET)",
                };
                let mut v = vec![
                    "ESP-ROM:esp32s3-20210327".to_string(),
                    "Build:Mar 27 2021".into(),
                ];
                if download {
                    v.push(format!("{rst},boot:0x0 (DOWNLOAD(USB/UART0))"));
                    v.push("waiting for download".into());
                } else {
                    v.push(format!("{rst},boot:0x8 (SPI_FAST_FLASH_BOOT)"));
                }
                v
            }
        }
    }
}

/// The JEDEC id a Winbond W25Q flash of `size` bytes answers RDID (0x9F) with, as the
/// three bytes in wire order: manufacturer 0xEF, memory type 0x40, capacity log2(size).
/// esptool `_get_flash_info` reads the size from the third byte (0x16 = 4MB, 0x17 = 8MB,
/// 0x18 = 16MB, `DETECTED_FLASH_SIZES`).
pub fn jedec_id(size: usize) -> [u8; 3] {
    let capacity = size.max(1).next_power_of_two().trailing_zeros() as u8;
    [0xEF, 0x40, capacity]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_byte_follows_flash_size() {
        assert_eq!(jedec_id(4 << 20), [0xEF, 0x40, 0x16]);
        assert_eq!(jedec_id(8 << 20), [0xEF, 0x40, 0x17]);
        assert_eq!(jedec_id(16 << 20), [0xEF, 0x40, 0x18]);
    }

    #[test]
    fn mac_words_decode_as_esptool_reads_them() {
        let mac = [0x24, 0xD7, 0xEB, 0x10, 0x20, 0x07];
        for chip in [SimChip::Esp32, SimChip::Esp32S3] {
            let (lo, hi) = match chip {
                SimChip::Esp32 => (0x3FF5_A004, 0x3FF5_A008),
                SimChip::Esp32S3 => (0x6000_7044, 0x6000_7048),
            };
            let lo = chip.fixed_register(lo, mac, 115_200).unwrap();
            let hi = chip.fixed_register(hi, mac, 115_200).unwrap();
            // esptool: struct.pack(">II", high, low)[2:]
            let mut packed = hi.to_be_bytes().to_vec();
            packed.extend_from_slice(&lo.to_be_bytes());
            assert_eq!(&packed[2..], &mac);
        }
    }

    #[test]
    fn esp32_efuses_decode_to_a_d0wd_v3() {
        let r = |a| SimChip::Esp32.fixed_register(a, [0; 6], 115_200).unwrap();
        // get_pkg_version
        let w3 = r(0x3FF5_A00C);
        assert_eq!(((w3 >> 9) & 7) + (((w3 >> 2) & 1) << 3), 1);
        // get_major_chip_version: bits from word 3, word 5 and APB_CTL_DATE -> 0b111 -> 3
        let combined =
            ((r(0x3FF6_607C) >> 31) << 2) | (((r(0x3FF5_A014) >> 20) & 1) << 1) | ((w3 >> 15) & 1);
        assert_eq!(combined, 7);
        // get_crystal_freq: UART_CLKDIV * baud ~ 40 MHz
        let est = f64::from(r(0x3FF4_0014)) * 115_200.0 / 1e6;
        assert!((est - 40.0).abs() < 1.0, "{est}");
    }
}
