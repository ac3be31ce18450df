//! The ESP-IDF partition table (binary form, at flash offset 0x8000): parse it, find the SPIFFS
//! partition that holds NerdMiner's `/config.json`, and build tables for the simulator and tests.
//!
//! Hand-written rather than `esp-idf-part`: the format is a list of 32-byte records, and that
//! crate brings deku, csv, regex and strum into a Raspberry Pi build for it, panics on inputs
//! shorter than two bytes in its generic entry point, and reports neither "erased flash" nor
//! "which entry is corrupt", which are the two errors a user of this program needs to see.
//!
//! Record layout (little endian): magic `AA 50`, type u8, subtype u8, offset u32, size u32,
//! name [u8; 16] (NUL padded), flags u32. An optional MD5 record (`EB EB` + 14 × `FF` + the MD5
//! of all preceding records) follows the entries; a record of `FF`s ends the table.

use md5::{Digest, Md5};

/// Where the bootloader looks for the table.
pub const TABLE_OFFSET: u32 = 0x8000;
/// Longest table ESP-IDF accepts (0xC00 bytes: 96 records, the rest of the sector is unused).
pub const TABLE_MAX_LEN: usize = 0xC00;
/// One record.
const ENTRY_LEN: usize = 32;
const ENTRY_MAGIC: [u8; 2] = [0xAA, 0x50];
const MD5_MAGIC: [u8; 2] = [0xEB, 0xEB];

/// Partition type byte.
pub const TYPE_APP: u8 = 0x00;
/// Partition type byte.
pub const TYPE_DATA: u8 = 0x01;
/// Data subtype of a SPIFFS partition.
pub const SUBTYPE_SPIFFS: u8 = 0x82;
/// Data subtype of an NVS partition.
pub const SUBTYPE_NVS: u8 = 0x02;

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Label, e.g. `spiffs`.
    pub name: String,
    /// Type byte (0 app, 1 data, others custom).
    pub type_: u8,
    /// Subtype byte (meaning depends on the type).
    pub subtype: u8,
    /// Flash offset in bytes.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Flags (bit 0 encrypted, bit 1 read-only).
    pub flags: u32,
}

impl Partition {
    /// A partition (for building tables in tests and the simulator).
    pub fn new(name: &str, type_: u8, subtype: u8, offset: u32, size: u32) -> Self {
        Self {
            name: name.to_owned(),
            type_,
            subtype,
            offset,
            size,
            flags: 0,
        }
    }

    /// Whether this is a SPIFFS data partition.
    pub fn is_spiffs(&self) -> bool {
        self.type_ == TYPE_DATA && self.subtype == SUBTYPE_SPIFFS
    }

    /// Type as `gen_esp32part.py` writes it in CSV.
    pub fn type_name(&self) -> String {
        match self.type_ {
            TYPE_APP => "app".into(),
            TYPE_DATA => "data".into(),
            t => format!("0x{t:02x}"),
        }
    }

    /// Subtype as `gen_esp32part.py` writes it in CSV.
    pub fn subtype_name(&self) -> String {
        let known = match (self.type_, self.subtype) {
            (TYPE_APP, 0x00) => Some("factory"),
            (TYPE_APP, 0x20) => Some("test"),
            (TYPE_APP, s @ 0x10..=0x1F) => return format!("ota_{}", s - 0x10),
            (TYPE_DATA, 0x00) => Some("ota"),
            (TYPE_DATA, 0x01) => Some("phy"),
            (TYPE_DATA, 0x02) => Some("nvs"),
            (TYPE_DATA, 0x03) => Some("coredump"),
            (TYPE_DATA, 0x04) => Some("nvs_keys"),
            (TYPE_DATA, 0x05) => Some("efuse"),
            (TYPE_DATA, 0x06) => Some("undefined"),
            (TYPE_DATA, 0x80) => Some("esphttpd"),
            (TYPE_DATA, 0x81) => Some("fat"),
            (TYPE_DATA, 0x82) => Some("spiffs"),
            (TYPE_DATA, 0x83) => Some("littlefs"),
            _ => None,
        };
        known.map_or_else(|| format!("0x{:02x}", self.subtype), str::to_owned)
    }
}

/// A parsed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    /// Entries in table order.
    pub partitions: Vec<Partition>,
    /// Whether an MD5 record was present (and matched; a mismatch is an error).
    pub md5_checked: bool,
}

/// Why a table could not be used. Each message says what it means for reading a config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// Erased flash where the table should be.
    #[error(
        "no partition table at 0x8000 (the flash there is erased): this board has never been \
         flashed with firmware; flash NerdMiner onto it first (its configuration then comes from \
         its setup portal)"
    )]
    NoTable,
    /// Fewer bytes than one record.
    #[error("only {0} bytes given: a partition table needs at least one 32-byte record")]
    TooShort(usize),
    /// A record that is neither an entry, the MD5 record nor the end marker.
    #[error(
        "corrupt partition table at 0x8000: record {index} {problem}; the flash may be damaged \
         or this is not an ESP32 flash dump"
    )]
    Corrupt {
        /// Record number, from 0.
        index: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The MD5 record does not match the entries.
    #[error(
        "corrupt partition table at 0x8000: its MD5 check fails (stored {stored}, computed \
         {computed}); the read was damaged or the flash is"
    )]
    Md5Mismatch {
        /// MD5 in the table.
        stored: String,
        /// MD5 of the entries read.
        computed: String,
    },
    /// A valid table without a SPIFFS partition.
    #[error(
        "the partition table has no SPIFFS partition (partitions: {0}); this firmware keeps its \
         settings elsewhere (e.g. in NVS), so its configuration cannot be read from flash: use \
         the boot capture (method \"boot\") instead"
    )]
    NoSpiffs(String),
}

impl PartitionTable {
    /// Parses the table from the bytes at 0x8000 (any length; records past the end marker or
    /// past [`TABLE_MAX_LEN`] are ignored). Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Self, PartitionError> {
        if bytes.len() < ENTRY_LEN {
            return Err(PartitionError::TooShort(bytes.len()));
        }
        let bytes = &bytes[..bytes.len().min(TABLE_MAX_LEN)];
        if bytes[..ENTRY_LEN].iter().all(|&b| b == 0xFF) {
            return Err(PartitionError::NoTable);
        }
        let mut partitions = Vec::new();
        let mut md5 = Md5::new();
        let mut md5_checked = false;
        for (index, rec) in bytes.chunks_exact(ENTRY_LEN).enumerate() {
            if rec.iter().all(|&b| b == 0xFF) {
                return finish(partitions, md5_checked);
            }
            if rec[..2] == MD5_MAGIC {
                let computed = md5.clone().finalize();
                if computed.as_slice() != &rec[16..32] {
                    return Err(PartitionError::Md5Mismatch {
                        stored: hex(&rec[16..32]),
                        computed: hex(computed.as_slice()),
                    });
                }
                md5_checked = true;
                continue;
            }
            if rec[..2] != ENTRY_MAGIC {
                return Err(PartitionError::Corrupt {
                    index,
                    problem: format!("starts with {:02x} {:02x}, not aa 50", rec[0], rec[1]),
                });
            }
            if md5_checked {
                return Err(PartitionError::Corrupt {
                    index,
                    problem: "follows the MD5 record".into(),
                });
            }
            md5.update(rec);
            partitions.push(decode_entry(index, rec)?);
        }
        // Ran out of bytes without an end marker: a table that fills the whole area is legal
        // only if it ended exactly there, which a 0xC00 read covers.
        if bytes.len() >= TABLE_MAX_LEN {
            return finish(partitions, md5_checked);
        }
        Err(PartitionError::Corrupt {
            index: bytes.len() / ENTRY_LEN,
            problem: "is missing: the table has no end marker (was the read cut short?)".into(),
        })
    }

    /// Parses the table of a whole flash dump (starting at flash offset 0).
    pub fn from_flash_dump(dump: &[u8]) -> Result<Self, PartitionError> {
        let start = TABLE_OFFSET as usize;
        let Some(area) = dump.get(start..) else {
            return Err(PartitionError::TooShort(0));
        };
        Self::parse(area)
    }

    /// The SPIFFS partition (the first, as the firmware's `SPIFFS.begin()` mounts the first
    /// one labelled or typed spiffs).
    pub fn spiffs(&self) -> Result<&Partition, PartitionError> {
        self.partitions
            .iter()
            .find(|p| p.is_spiffs())
            .ok_or_else(|| PartitionError::NoSpiffs(self.summary()))
    }

    /// `name (type/subtype)` of every entry, comma separated.
    pub fn summary(&self) -> String {
        if self.partitions.is_empty() {
            return "none".into();
        }
        self.partitions
            .iter()
            .map(|p| format!("{} ({}/{})", p.name, p.type_name(), p.subtype_name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The table as a `gen_esp32part.py`-style CSV listing, for people.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# Name, Type, SubType, Offset, Size, Flags\n");
        for p in &self.partitions {
            out.push_str(&format!(
                "{}, {}, {}, 0x{:x}, 0x{:x}, 0x{:x}\n",
                p.name,
                p.type_name(),
                p.subtype_name(),
                p.offset,
                p.size,
                p.flags
            ));
        }
        out
    }

    /// The binary form, with MD5 record, padded with 0xFF to [`TABLE_MAX_LEN`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TABLE_MAX_LEN);
        for p in &self.partitions {
            out.extend_from_slice(&ENTRY_MAGIC);
            out.push(p.type_);
            out.push(p.subtype);
            out.extend_from_slice(&p.offset.to_le_bytes());
            out.extend_from_slice(&p.size.to_le_bytes());
            let mut name = [0u8; 16];
            let n = p.name.len().min(15);
            name[..n].copy_from_slice(&p.name.as_bytes()[..n]);
            out.extend_from_slice(&name);
            out.extend_from_slice(&p.flags.to_le_bytes());
        }
        let digest = Md5::digest(&out);
        out.extend_from_slice(&MD5_MAGIC);
        out.extend_from_slice(&[0xFF; 14]);
        out.extend_from_slice(digest.as_slice());
        out.resize(TABLE_MAX_LEN, 0xFF);
        out
    }

    /// Arduino-ESP32's `huge_app.csv`, what almost every NerdMiner uses.
    pub fn huge_app() -> Self {
        Self {
            partitions: vec![
                Partition::new("nvs", TYPE_DATA, SUBTYPE_NVS, 0x9000, 0x5000),
                Partition::new("otadata", TYPE_DATA, 0x00, 0xE000, 0x2000),
                Partition::new("app0", TYPE_APP, 0x10, 0x10000, 0x30_0000),
                Partition::new("spiffs", TYPE_DATA, SUBTYPE_SPIFFS, 0x31_0000, 0xE_0000),
                Partition::new("coredump", TYPE_DATA, 0x03, 0x3F_0000, 0x1_0000),
            ],
            md5_checked: true,
        }
    }
}

fn finish(partitions: Vec<Partition>, md5_checked: bool) -> Result<PartitionTable, PartitionError> {
    if partitions.is_empty() {
        return Err(PartitionError::Corrupt {
            index: 0,
            problem: "is an end marker: the table is empty".into(),
        });
    }
    Ok(PartitionTable {
        partitions,
        md5_checked,
    })
}

fn decode_entry(index: usize, rec: &[u8]) -> Result<Partition, PartitionError> {
    let word = |at: usize| u32::from_le_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]]);
    let name_bytes = &rec[12..28];
    let end = name_bytes.iter().position(|&b| b == 0).unwrap_or(16);
    let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
    let p = Partition {
        name,
        type_: rec[2],
        subtype: rec[3],
        offset: word(4),
        size: word(8),
        flags: word(28),
    };
    if p.offset.checked_add(p.size).is_none() {
        return Err(PartitionError::Corrupt {
            index,
            problem: format!(
                "({}) has offset 0x{:x} and size 0x{:x} beyond 4 GiB",
                p.name, p.offset, p.size
            ),
        });
    }
    Ok(p)
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn shared(name: &str) -> Option<Vec<u8>> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/spiffs-vectors")
            .join(name);
        match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(_) => {
                eprintln!("skipping: {} not found (../shared absent)", path.display());
                None
            }
        }
    }

    fn default_8mb() -> PartitionTable {
        PartitionTable {
            partitions: vec![
                Partition::new("nvs", TYPE_DATA, SUBTYPE_NVS, 0x9000, 0x5000),
                Partition::new("otadata", TYPE_DATA, 0x00, 0xE000, 0x2000),
                Partition::new("app0", TYPE_APP, 0x10, 0x10000, 0x33_0000),
                Partition::new("app1", TYPE_APP, 0x11, 0x34_0000, 0x33_0000),
                Partition::new("spiffs", TYPE_DATA, SUBTYPE_SPIFFS, 0x67_0000, 0x18_0000),
                Partition::new("coredump", TYPE_DATA, 0x03, 0x7F_0000, 0x1_0000),
            ],
            md5_checked: true,
        }
    }

    #[test]
    fn golden_flash_dump_has_huge_app_layout() {
        let Some(dump) = shared("flash_4mb_huge_app.bin") else {
            return;
        };
        let table = PartitionTable::from_flash_dump(&dump).unwrap();
        assert!(table.md5_checked);
        assert_eq!(table, PartitionTable::huge_app());
        let spiffs = table.spiffs().unwrap();
        assert_eq!((spiffs.offset, spiffs.size), (0x31_0000, 0xE_0000));
        // Our builder writes the same bytes the reference tool did.
        assert_eq!(
            &dump[0x8000..0x8000 + TABLE_MAX_LEN],
            &PartitionTable::huge_app().to_bytes()[..]
        );
    }

    #[test]
    fn default_8mb_round_trips_and_finds_spiffs() {
        let bytes = default_8mb().to_bytes();
        let table = PartitionTable::parse(&bytes).unwrap();
        assert_eq!(table, default_8mb());
        let s = table.spiffs().unwrap();
        assert_eq!((s.offset, s.size), (0x67_0000, 0x18_0000));
        assert!(table
            .to_text()
            .contains("spiffs, data, spiffs, 0x670000, 0x180000"));
        assert_eq!(table.partitions[3].subtype_name(), "ota_1");
    }

    #[test]
    fn erased_flash_is_no_table() {
        let err = PartitionTable::parse(&[0xFF; 0xC00]).unwrap_err();
        assert_eq!(err, PartitionError::NoTable);
        assert!(err.to_string().contains("never been flashed"));
    }

    #[test]
    fn table_without_md5_record_is_accepted() {
        let mut bytes = default_8mb().to_bytes();
        let md5_at = 6 * ENTRY_LEN;
        bytes[md5_at..md5_at + ENTRY_LEN].fill(0xFF);
        let table = PartitionTable::parse(&bytes).unwrap();
        assert!(!table.md5_checked);
        assert_eq!(table.partitions.len(), 6);
    }

    #[test]
    fn flipped_bit_fails_the_md5() {
        let mut bytes = default_8mb().to_bytes();
        bytes[4 * ENTRY_LEN + 5] ^= 0x01; // spiffs offset
        let err = PartitionTable::parse(&bytes).unwrap_err();
        assert!(matches!(err, PartitionError::Md5Mismatch { .. }), "{err}");
    }

    #[test]
    fn garbage_record_is_corrupt_with_its_index() {
        let mut bytes = default_8mb().to_bytes();
        bytes[2 * ENTRY_LEN] = 0x12;
        let err = PartitionTable::parse(&bytes).unwrap_err();
        assert!(
            matches!(err, PartitionError::Corrupt { index: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("record 2"));
    }

    #[test]
    fn missing_end_marker_is_corrupt() {
        let bytes = default_8mb().to_bytes();
        let err = PartitionTable::parse(&bytes[..3 * ENTRY_LEN]).unwrap_err();
        assert!(err.to_string().contains("no end marker"), "{err}");
    }

    #[test]
    fn nvs_only_firmware_has_no_spiffs_and_says_boot_capture() {
        let table = PartitionTable {
            partitions: vec![
                Partition::new("nvs", TYPE_DATA, SUBTYPE_NVS, 0x9000, 0x6000),
                Partition::new("phy_init", TYPE_DATA, 0x01, 0xF000, 0x1000),
                Partition::new("factory", TYPE_APP, 0x00, 0x10000, 0x10_0000),
            ],
            md5_checked: true,
        };
        let parsed = PartitionTable::parse(&table.to_bytes()).unwrap();
        let err = parsed.spiffs().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("NVS") && msg.contains("boot"), "{msg}");
        assert!(msg.contains("factory (app/factory)"), "{msg}");
    }

    #[test]
    fn short_inputs_never_panic() {
        for n in 0..40 {
            let _ = PartitionTable::parse(&vec![0xAA; n]);
            let _ = PartitionTable::from_flash_dump(&vec![0x00; n]);
        }
        assert_eq!(
            PartitionTable::parse(&[]).unwrap_err(),
            PartitionError::TooShort(0)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let _ = PartitionTable::parse(&bytes);
        }

        #[test]
        fn valid_prefix_with_arbitrary_tail_never_panics(
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            cut in 0usize..0xC00,
        ) {
            let mut bytes = default_8mb().to_bytes();
            bytes.truncate(cut);
            bytes.extend_from_slice(&tail);
            let _ = PartitionTable::parse(&bytes);
        }
    }
}
