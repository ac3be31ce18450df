//! The ESP32 ROM loader's serial protocol as plain data: commands with their opcodes, payloads
//! and timeouts, requests and responses encoded and decoded. No I/O: the transport frames these
//! with SLIP and moves them, and the simulator decodes requests and encodes responses with the
//! same code.
//!
//! Request: `00` op len:u16 checksum:u32 data. Response: `01` op len:u16 value:u32 data, where
//! the data ends with the status bytes (4 from the ESP32-family ROMs: status, error, 0, 0).

use std::time::Duration;

/// The ROM loader's baud rate after reset (esptool `ESP_ROM_BAUD`).
pub const ROM_BAUD: u32 = 115_200;
/// Status bytes a ROM loader appends to every response (the flasher stub sends 2).
pub const ROM_STATUS_LEN: usize = 4;
/// Status bytes the flasher stub appends (a big-endian response code, 0 = success).
pub const STUB_STATUS_LEN: usize = 2;
/// Seed of the FLASH_DATA / MEM_DATA checksum.
const CHECKSUM_SEED: u8 = 0xEF;
/// Largest read READ_FLASH_SLOW answers in one response.
pub const READ_SLOW_MAX: u32 = 64;
/// FLASH_DATA block size the ROM accepts (esptool's `ESPLoader.FLASH_WRITE_SIZE`).
pub const FLASH_WRITE_BLOCK: u32 = 0x400;
/// FLASH_DATA block size of the flasher stub (esptool's `StubMixin.FLASH_WRITE_SIZE`).
pub const STUB_WRITE_BLOCK: u32 = 0x4000;
/// MEM_DATA block size for uploading the stub (esptool's `ESPLoader.ESP_RAM_BLOCK`).
pub const RAM_BLOCK: u32 = 0x1800;
/// Flash sector (erase unit).
pub const SECTOR: u32 = 0x1000;

/// Opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Erase and prepare a flash region for FLASH_DATA.
    FlashBegin = 0x02,
    /// One block of data to write.
    FlashData = 0x03,
    /// Finish writing (optionally reboot).
    FlashEnd = 0x04,
    /// Synchronise: the first thing said to a freshly reset ROM.
    Sync = 0x08,
    /// Read a 32-bit register (chip detection, eFuses).
    ReadReg = 0x0A,
    /// Tell the ROM the flash geometry.
    SpiSetParams = 0x0B,
    /// Attach the SPI flash.
    SpiAttach = 0x0D,
    /// Read up to 64 bytes of flash (ROM only, slow but needs no stub).
    ReadFlashSlow = 0x0E,
    /// Change the baud rate.
    ChangeBaudrate = 0x0F,
    /// MD5 of a flash region.
    SpiFlashMd5 = 0x13,
    /// Start a RAM download (the stub upload).
    MemBegin = 0x05,
    /// Finish a RAM download, optionally jumping to an entry point.
    MemEnd = 0x06,
    /// One block of a RAM download.
    MemData = 0x07,
    /// Write a 32-bit register (address, value, mask, delay; repeatable).
    WriteReg = 0x09,
    /// Start a compressed (zlib) flash write.
    FlashDeflBegin = 0x10,
    /// One block of compressed data.
    FlashDeflData = 0x11,
    /// Finish a compressed write.
    FlashDeflEnd = 0x12,
    /// Security flags and chip id (ESP32-S2 and later ROMs).
    GetSecurityInfo = 0x14,
    /// Erase the whole flash (flasher stub only).
    EraseFlash = 0xD0,
    /// Erase a sector-aligned region (flasher stub only).
    EraseRegion = 0xD1,
    /// Stream a flash region with acknowledgements and a final MD5 (flasher stub only).
    ReadFlash = 0xD2,
    /// Leave the stub and run the firmware (flasher stub only).
    RunUserCode = 0xD3,
}

impl Op {
    /// The opcode for a byte, if it is one we speak.
    pub fn from_u8(b: u8) -> Option<Op> {
        Some(match b {
            0x02 => Op::FlashBegin,
            0x03 => Op::FlashData,
            0x04 => Op::FlashEnd,
            0x08 => Op::Sync,
            0x0A => Op::ReadReg,
            0x0B => Op::SpiSetParams,
            0x0D => Op::SpiAttach,
            0x0E => Op::ReadFlashSlow,
            0x0F => Op::ChangeBaudrate,
            0x13 => Op::SpiFlashMd5,
            0x05 => Op::MemBegin,
            0x06 => Op::MemEnd,
            0x07 => Op::MemData,
            0x09 => Op::WriteReg,
            0x10 => Op::FlashDeflBegin,
            0x11 => Op::FlashDeflData,
            0x12 => Op::FlashDeflEnd,
            0x14 => Op::GetSecurityInfo,
            0xD0 => Op::EraseFlash,
            0xD1 => Op::EraseRegion,
            0xD2 => Op::ReadFlash,
            0xD3 => Op::RunUserCode,
            _ => return None,
        })
    }

    /// Name as esptool's documentation writes it.
    pub fn name(self) -> &'static str {
        match self {
            Op::FlashBegin => "FLASH_BEGIN",
            Op::FlashData => "FLASH_DATA",
            Op::FlashEnd => "FLASH_END",
            Op::Sync => "SYNC",
            Op::ReadReg => "READ_REG",
            Op::SpiSetParams => "SPI_SET_PARAMS",
            Op::SpiAttach => "SPI_ATTACH",
            Op::ReadFlashSlow => "READ_FLASH_SLOW",
            Op::ChangeBaudrate => "CHANGE_BAUDRATE",
            Op::SpiFlashMd5 => "SPI_FLASH_MD5",
            Op::MemBegin => "MEM_BEGIN",
            Op::MemEnd => "MEM_END",
            Op::MemData => "MEM_DATA",
            Op::WriteReg => "WRITE_REG",
            Op::FlashDeflBegin => "FLASH_DEFL_BEGIN",
            Op::FlashDeflData => "FLASH_DEFL_DATA",
            Op::FlashDeflEnd => "FLASH_DEFL_END",
            Op::GetSecurityInfo => "GET_SECURITY_INFO",
            Op::EraseFlash => "ERASE_FLASH",
            Op::EraseRegion => "ERASE_REGION",
            Op::ReadFlash => "READ_FLASH",
            Op::RunUserCode => "RUN_USER_CODE",
        }
    }
}

/// A command with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// SYNC.
    Sync,
    /// READ_REG at an address.
    ReadReg {
        /// Register address.
        address: u32,
    },
    /// SPI_ATTACH with the default (SPI flash) pins.
    SpiAttach {
        /// Talking to the flasher stub, which takes one word (esptool `flash_spi_attach`: the
        /// ROM takes a second, "is legacy", word).
        stub: bool,
    },
    /// SPI_SET_PARAMS for a flash of this many bytes.
    SpiSetParams {
        /// Total flash size.
        total_size: u32,
    },
    /// READ_FLASH_SLOW.
    ReadFlashSlow {
        /// Flash offset.
        offset: u32,
        /// Bytes, at most [`READ_SLOW_MAX`].
        size: u32,
    },
    /// SPI_FLASH_MD5.
    FlashMd5 {
        /// Flash offset.
        offset: u32,
        /// Bytes.
        size: u32,
    },
    /// FLASH_BEGIN.
    FlashBegin {
        /// Bytes to erase (whole sectors from `offset`).
        erase_size: u32,
        /// Number of FLASH_DATA blocks that follow.
        blocks: u32,
        /// Size of each block.
        block_size: u32,
        /// Flash offset.
        offset: u32,
        /// The 5th word (encrypted write: always 0 here), sent where the loader takes it:
        /// every stub and every ROM but the ESP32's and ESP8266's (esptool `flash_begin`).
        encrypted: Option<u32>,
    },
    /// FLASH_DATA.
    FlashData {
        /// Block number from 0.
        sequence: u32,
        /// The block (padded with 0xFF to the block size by the caller).
        data: Vec<u8>,
    },
    /// FLASH_END.
    FlashEnd {
        /// Reboot into the firmware afterwards.
        reboot: bool,
    },
    /// CHANGE_BAUDRATE.
    ChangeBaudrate {
        /// New rate.
        baud: u32,
        /// The rate now: the stub needs it, the ROM takes 0 (esptool `change_baud`).
        old: u32,
    },
    /// WRITE_REG.
    WriteReg {
        /// Register address.
        address: u32,
        /// Value.
        value: u32,
        /// Bits to change.
        mask: u32,
    },
    /// GET_SECURITY_INFO.
    GetSecurityInfo,
    /// MEM_BEGIN.
    MemBegin {
        /// Bytes to upload.
        size: u32,
        /// Number of MEM_DATA blocks.
        blocks: u32,
        /// Size of each block.
        block_size: u32,
        /// RAM address.
        offset: u32,
    },
    /// MEM_DATA.
    MemData {
        /// Block number from 0.
        sequence: u32,
        /// The block.
        data: Vec<u8>,
    },
    /// MEM_END: jump to `entry` (0: stay in the loader).
    MemEnd {
        /// Entry point.
        entry: u32,
    },
    /// READ_FLASH (stub): the answer is followed by the data in `block_size` frames, each
    /// acknowledged by the host, then a 16-byte MD5 frame.
    ReadFlash {
        /// Flash offset.
        offset: u32,
        /// Bytes.
        size: u32,
        /// Bytes per data frame.
        block_size: u32,
        /// Frames the stub may send before waiting for an acknowledgement.
        in_flight: u32,
    },
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The FLASH_DATA checksum: 0xEF XORed with every data byte.
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(CHECKSUM_SEED, |acc, b| acc ^ b)
}

impl Command {
    /// Its opcode.
    pub fn op(&self) -> Op {
        match self {
            Command::Sync => Op::Sync,
            Command::ReadReg { .. } => Op::ReadReg,
            Command::SpiAttach { .. } => Op::SpiAttach,
            Command::SpiSetParams { .. } => Op::SpiSetParams,
            Command::ReadFlashSlow { .. } => Op::ReadFlashSlow,
            Command::FlashMd5 { .. } => Op::SpiFlashMd5,
            Command::FlashBegin { .. } => Op::FlashBegin,
            Command::FlashData { .. } => Op::FlashData,
            Command::FlashEnd { .. } => Op::FlashEnd,
            Command::ChangeBaudrate { .. } => Op::ChangeBaudrate,
            Command::WriteReg { .. } => Op::WriteReg,
            Command::GetSecurityInfo => Op::GetSecurityInfo,
            Command::MemBegin { .. } => Op::MemBegin,
            Command::MemData { .. } => Op::MemData,
            Command::MemEnd { .. } => Op::MemEnd,
            Command::ReadFlash { .. } => Op::ReadFlash,
        }
    }

    /// How long to wait for the answer (erase and MD5 take time proportional to size, as
    /// esptool allows: 30 s per MiB erased, 8 s per MiB hashed, at least 3 s).
    pub fn timeout(&self) -> Duration {
        let per_mib = |size: u32, secs: f64| {
            Duration::from_secs_f64((secs * f64::from(size) / 1_048_576.0).max(3.0))
        };
        match self {
            Command::Sync => Duration::from_millis(100),
            Command::FlashBegin { erase_size, .. } => per_mib(*erase_size, 30.0),
            Command::FlashMd5 { size, .. } => per_mib(*size, 8.0),
            _ => Duration::from_secs(3),
        }
    }

    /// Its arguments in words, for a protocol trace: never the data it carries.
    pub fn summary(&self) -> String {
        match self {
            Command::FlashData { sequence, data } | Command::MemData { sequence, data } => {
                format!("seq {sequence}, {} bytes", data.len())
            }
            Command::Sync => String::new(),
            other => {
                let p = other.payload();
                p.chunks(4)
                    .map(|w| {
                        let mut b = [0u8; 4];
                        b[..w.len()].copy_from_slice(w);
                        format!("0x{:x}", u32::from_le_bytes(b))
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        }
    }

    /// The data field.
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Command::Sync => {
                let mut d = vec![0x07, 0x07, 0x12, 0x20];
                d.extend_from_slice(&[0x55; 32]);
                d
            }
            Command::ReadReg { address } => words(&[*address]),
            // hspi_arg 0 = the default flash pins; the ROM (not the stub) takes a second word.
            Command::SpiAttach { stub: false } => words(&[0, 0]),
            Command::SpiAttach { stub: true } => words(&[0]),
            Command::SpiSetParams { total_size } => {
                words(&[0, *total_size, 0x1_0000, SECTOR, 0x100, 0xFFFF])
            }
            Command::ReadFlashSlow { offset, size } => words(&[*offset, *size]),
            Command::FlashMd5 { offset, size } => words(&[*offset, *size, 0, 0]),
            Command::FlashBegin {
                erase_size,
                blocks,
                block_size,
                offset,
                encrypted,
            } => {
                let mut d = words(&[*erase_size, *blocks, *block_size, *offset]);
                if let Some(flag) = encrypted {
                    d.extend_from_slice(&flag.to_le_bytes());
                }
                d
            }
            Command::FlashData { sequence, data } | Command::MemData { sequence, data } => {
                let mut d = words(&[data.len() as u32, *sequence, 0, 0]);
                d.extend_from_slice(data);
                d
            }
            Command::FlashEnd { reboot } => words(&[u32::from(!*reboot)]),
            Command::ChangeBaudrate { baud, old } => words(&[*baud, *old]),
            // esptool `write_reg`: address, value, mask, delay in µs.
            Command::WriteReg {
                address,
                value,
                mask,
            } => words(&[*address, *value, *mask, 0]),
            Command::GetSecurityInfo => Vec::new(),
            Command::MemBegin {
                size,
                blocks,
                block_size,
                offset,
            } => words(&[*size, *blocks, *block_size, *offset]),
            // esptool `mem_finish`: "no entry" flag, then the entry point.
            Command::MemEnd { entry } => words(&[u32::from(*entry == 0), *entry]),
            Command::ReadFlash {
                offset,
                size,
                block_size,
                in_flight,
            } => words(&[*offset, *size, *block_size, *in_flight]),
        }
    }

    /// The request packet (before SLIP framing).
    pub fn encode(&self) -> Vec<u8> {
        let payload = self.payload();
        let check = match self {
            Command::FlashData { data, .. } | Command::MemData { data, .. } => {
                u32::from(checksum(data))
            }
            _ => 0,
        };
        let mut out = Vec::with_capacity(8 + payload.len());
        out.push(0x00);
        out.push(self.op() as u8);
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(&check.to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// A request as the ROM receives it (the simulator's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Opcode byte (may be one we do not know).
    pub op: u8,
    /// Checksum field.
    pub checksum: u32,
    /// Data field.
    pub data: Vec<u8>,
}

impl Request {
    /// Decodes a request packet; `None` if it is not one.
    pub fn decode(packet: &[u8]) -> Option<Request> {
        if packet.len() < 8 || packet[0] != 0x00 {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([packet[2], packet[3]]));
        let data = packet.get(8..8 + len)?.to_vec();
        Some(Request {
            op: packet[1],
            checksum: u32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]]),
            data,
        })
    }

    /// The `i`th little-endian word of the data, if present.
    pub fn word(&self, i: usize) -> Option<u32> {
        let b = self.data.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A response from the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Opcode it answers.
    pub op: u8,
    /// The value field (READ_REG's register value).
    pub value: u32,
    /// Data before the status bytes.
    pub data: Vec<u8>,
    /// 0 success, 1 failure.
    pub status: u8,
    /// Error code when status is 1.
    pub error: u8,
}

impl Response {
    /// Decodes a response packet whose data ends in `status_len` status bytes; `None` if it is
    /// not a response.
    pub fn decode(packet: &[u8], status_len: usize) -> Option<Response> {
        if packet.len() < 8 || packet[0] != 0x01 {
            return None;
        }
        let len = usize::from(u16::from_le_bytes([packet[2], packet[3]]));
        let body = packet.get(8..8 + len)?;
        if body.len() < status_len || status_len < 2 {
            return None;
        }
        let split = body.len() - status_len;
        Some(Response {
            op: packet[1],
            value: u32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]]),
            data: body[..split].to_vec(),
            status: body[split],
            error: body[split + 1],
        })
    }

    /// A success response (the simulator's side).
    pub fn ok(op: u8, value: u32, data: Vec<u8>) -> Response {
        Response {
            op,
            value,
            data,
            status: 0,
            error: 0,
        }
    }

    /// A failure response with an error code (see [`rom_error_name`]).
    pub fn fail(op: u8, error: u8) -> Response {
        Response {
            op,
            value: 0,
            data: Vec::new(),
            status: 1,
            error,
        }
    }

    /// The response packet with `status_len` status bytes (before SLIP framing).
    pub fn encode(&self, status_len: usize) -> Vec<u8> {
        let len = self.data.len() + status_len;
        let mut out = Vec::with_capacity(8 + len);
        out.push(0x01);
        out.push(self.op);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&self.value.to_le_bytes());
        out.extend_from_slice(&self.data);
        out.push(self.status);
        out.push(self.error);
        out.resize(8 + len, 0);
        out
    }
}

/// The ROM's error codes, as esptool names them.
pub fn rom_error_name(code: u8) -> &'static str {
    match code {
        0x05 => "received message is invalid",
        0x06 => "failed to act on received message",
        0x07 => "invalid CRC in message",
        0x08 => "flash write error",
        0x09 => "flash read error",
        0x0A => "flash read length error",
        0x0B => "deflate error",
        _ => "unknown error",
    }
}

// Chip tables moved to `chips`; re-exported for the code that named them here.
pub use super::chips::{chip_from_magic, mac_from_words, ChipInfo, CHIPS, CHIP_DETECT_MAGIC_REG};

/// Parses SPI_FLASH_MD5's answer: 32 ASCII hex digits from the ROM, 16 raw bytes from a stub.
pub fn parse_md5(data: &[u8]) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    match data.len() {
        16 => out.copy_from_slice(data),
        32 => {
            let text = std::str::from_utf8(data).ok()?;
            for (i, o) in out.iter_mut().enumerate() {
                *o = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_packet_matches_esptool() {
        let p = Command::Sync.encode();
        assert_eq!(&p[..8], &[0x00, 0x08, 36, 0, 0, 0, 0, 0]);
        assert_eq!(&p[8..12], &[0x07, 0x07, 0x12, 0x20]);
        assert!(p[12..].iter().all(|&b| b == 0x55));
        assert_eq!(p.len(), 44);
    }

    #[test]
    fn read_reg_round_trips_through_request() {
        let p = Command::ReadReg {
            address: CHIP_DETECT_MAGIC_REG,
        }
        .encode();
        let r = Request::decode(&p).unwrap();
        assert_eq!(r.op, Op::ReadReg as u8);
        assert_eq!(r.word(0), Some(0x4000_1000));
        assert_eq!(r.word(1), None);
    }

    #[test]
    fn flash_data_carries_checksum_and_header() {
        let data = vec![1u8, 2, 3, 0xEF];
        let p = Command::FlashData {
            sequence: 7,
            data: data.clone(),
        }
        .encode();
        let r = Request::decode(&p).unwrap();
        assert_eq!(r.checksum, u32::from(0xEFu8 ^ 1 ^ 2 ^ 3 ^ 0xEF));
        assert_eq!(r.word(0), Some(4));
        assert_eq!(r.word(1), Some(7));
        assert_eq!(&r.data[16..], &data[..]);
    }

    #[test]
    fn response_round_trips_with_rom_status() {
        let resp = Response::ok(0x0A, 0x00F0_1D83, vec![]);
        let p = resp.encode(ROM_STATUS_LEN);
        assert_eq!(p.len(), 12);
        assert_eq!(Response::decode(&p, ROM_STATUS_LEN).unwrap(), resp);
        let fail = Response::fail(0x03, 0x07);
        let d = Response::decode(&fail.encode(4), 4).unwrap();
        assert_eq!((d.status, d.error), (1, 7));
        assert_eq!(rom_error_name(d.error), "invalid CRC in message");
    }

    #[test]
    fn truncated_packets_decode_to_none() {
        let p = Response::ok(0x0E, 0, vec![0; 64]).encode(4);
        for n in 0..p.len() {
            assert!(Response::decode(&p[..n], 4).is_none());
        }
        assert!(Request::decode(&[0, 8, 200, 0, 0, 0, 0, 0, 1]).is_none());
    }

    #[test]
    fn md5_both_forms() {
        let raw: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_md5(hex.as_bytes()), Some(raw));
        assert_eq!(parse_md5(&raw), Some(raw));
        assert_eq!(parse_md5(b"zz"), None);
        assert_eq!(parse_md5(&[b'g'; 32]), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_packets_never_panic_the_decoders(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            status_len in 0usize..6,
        ) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes, status_len);
            let _ = parse_md5(&bytes);
        }
    }

    #[test]
    fn timeouts_grow_with_size() {
        let small = Command::FlashMd5 {
            offset: 0,
            size: 4096,
        }
        .timeout();
        let big = Command::FlashMd5 {
            offset: 0,
            size: 16 << 20,
        }
        .timeout();
        assert_eq!(small, Duration::from_secs(3));
        assert!(big > Duration::from_secs(100));
    }
}
