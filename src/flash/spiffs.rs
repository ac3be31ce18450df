//! Reading and writing SPIFFS images, the filesystem NerdMiner keeps `/config.json` in.
//!
//! The format is the one of SPIFFS 0.3.7 (pellepl/spiffs) as Arduino-ESP32 / ESP-IDF build it
//! and as `mkspiffs` packs it. This module is a clean reimplementation from the format
//! description, not a port of the C code.
//!
//! # On-disk layout
//!
//! (Sizes and counts below are those of [`SpiffsParams::ARDUINO`].)
//!
//! Flash can only turn 1-bits into 0-bits, and only whole blocks (erase sectors) can be reset
//! to 0xFF. SPIFFS is designed around that: nothing is ever rewritten in place except by
//! clearing more bits, and unused space is always 0xFF.
//!
//! * The image is cut into **blocks** (4096 B, one flash sector) and each block into **pages**
//!   (256 B). All numbers are little endian; object ids, span indexes and page indexes are 16 bit.
//! * The first page(s) of every block are its **lookup table**: one object id per remaining page
//!   of the block, so that SPIFFS can find pages of a file, and free pages, without reading each
//!   page. `0xFFFF` = free page, `0x0000` = deleted page (reclaimed by garbage collection).
//!   The last two ids of the lookup area are not entries: the **magic** (which proves the
//!   block was formatted with these parameters) and the block's **erase count** (for wear
//!   levelling). With magic-length on, the magic is
//!   `(0x20140529 ^ page_size ^ (block_count - block_index)) as u16`: it encodes the
//!   filesystem size, so an image only mounts on a partition of exactly its own size.
//! * Every other page starts with a 5-byte **page header**: object id (u16), span index (u16)
//!   and flags (u8). Flags are active-low so that they can be set by clearing bits:
//!   bit 0 USED (cleared once written), bit 1 FINAL (cleared once complete), bit 2 INDEX
//!   (cleared on index pages), bit 6 IXDELE (cleared while a file is being deleted), bit 7
//!   DELETED (cleared when the page is obsolete). A live data page has flags 0xFC, a live
//!   index page 0xF8.
//! * A file ("object") is a set of pages. Its **data pages** carry the object id and their
//!   position in the file (span index) and 251 bytes of content each. Its **object index**
//!   pages carry the id with bit 15 set and list the page index of every data page, by span:
//!   the first one, the **object index header** (span 0), also holds the file size (u32,
//!   0xFFFFFFFF = never written, i.e. empty), a type byte (1 = file), the NUL-padded name
//!   (32 bytes) and the meta bytes (4 bytes, 0xFF when unused), followed by 103 page
//!   entries; further index pages (span 1, 2, ...) hold 124 entries each. Both kinds have three
//!   bytes of alignment padding after the page header, which the reference leaves
//!   uninitialised (see [`normalize_padding`]).
//! * Changing a file writes new pages and marks the old ones deleted, which is why images made
//!   by the reference packer (which writes files in small pieces) contain many deleted copies of
//!   index headers. A reader follows the index, not the physical order, and skips deleted and
//!   unfinished pages.
//!
//! The meta length matters for reading: it shifts the index entries inside the index header.
//! An image made by a `mkspiffs` built without `-DSPIFFS_OBJ_META_LEN=4` mounts and lists
//! correctly on a miner but no file can be read; [`read_image`] detects that and says so.
//!
//! [`build_image`] writes what the reference packer writes when each file goes in with a single
//! write: files one after the other, each as its index header, then its data pages, all pages in
//! allocation order from block 0, object ids 1, 2, 3, ... in file order. For files of more than
//! 103 data pages (about 25 KB) each further index page sits just before the first data page it
//! indexes, where the reference allocates it; the reference would then also move the index
//! header (leaving a deleted copy), which a clean image has no reason to do. The reference
//! packer actually writes in 256-byte pieces, so its images of files over 256 bytes hold deleted
//! pages this builder does not write; both decode to the same files.

use std::collections::{HashMap, HashSet};

/// Filesystem geometry and format options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiffsParams {
    /// Logical page size in bytes (a power of two).
    pub page_size: usize,
    /// Logical block size in bytes (a multiple of the page size; one or more flash sectors).
    pub block_size: usize,
    /// Size of the name field in an object index header, including the terminating NUL.
    pub obj_name_len: usize,
    /// Number of meta bytes stored after the name in an object index header.
    pub meta_len: usize,
}

impl SpiffsParams {
    /// What Arduino-ESP32 NerdMiner firmware mounts with: page 256, block 4096, name length
    /// 32, meta length 4 (magic and magic-length on, unaligned object index tables).
    pub const ARDUINO: SpiffsParams = SpiffsParams {
        page_size: 256,
        block_size: 4096,
        obj_name_len: 32,
        meta_len: 4,
    };
}

/// One file of a SPIFFS image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffsFile {
    /// Full SPIFFS name, as the firmware opens it, e.g. `/config.json`.
    pub path: String,
    /// File contents.
    pub data: Vec<u8>,
}

/// Everything that can go wrong reading or building an image. Each message says what is wrong
/// and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SpiffsError {
    /// The [`SpiffsParams`] themselves describe no usable filesystem.
    #[error(
        "unusable SPIFFS parameters (page {page_size} / block {block_size} / name length \
         {obj_name_len} / meta length {meta_len}): {problem}; NerdMiner firmware uses \
         SpiffsParams::ARDUINO"
    )]
    InvalidParams {
        /// Page size given.
        page_size: usize,
        /// Block size given.
        block_size: usize,
        /// Object name length given.
        obj_name_len: usize,
        /// Meta length given.
        meta_len: usize,
        /// What is wrong with them.
        problem: String,
    },

    /// The image (or requested size) is not a whole number of blocks.
    #[error(
        "image size {size} is not a multiple of the {block_size}-byte block size: is this a \
         whole SPIFFS partition?"
    )]
    SizeNotBlockMultiple {
        /// Image size in bytes.
        size: usize,
        /// Block size in bytes.
        block_size: usize,
    },

    /// Fewer than 3 blocks: SPIFFS keeps two free for garbage collection.
    #[error(
        "image size {size} is only {blocks} block(s) of {block_size} bytes; SPIFFS needs at \
         least 3 (it keeps 2 free for garbage collection): is this a whole SPIFFS partition?"
    )]
    TooFewBlocks {
        /// Image size in bytes.
        size: usize,
        /// Number of blocks it holds.
        blocks: usize,
        /// Block size in bytes.
        block_size: usize,
    },

    /// More pages than 16-bit page indexes can address.
    #[error(
        "image size {size} has {pages} pages of {page_size} bytes, more than SPIFFS's 16-bit \
         page indexes can address (65535): use a smaller partition or larger pages"
    )]
    TooManyPages {
        /// Image size in bytes.
        size: usize,
        /// Number of pages it holds.
        pages: usize,
        /// Page size in bytes.
        page_size: usize,
    },

    /// Every byte is 0xFF.
    #[error(
        "not a SPIFFS filesystem: all {size} bytes are 0xFF (erased/blank flash): the partition \
         was never written or has been erased; a miner would format it and start in setup mode"
    )]
    Erased {
        /// Image size in bytes.
        size: usize,
    },

    /// Every byte is 0x00.
    #[error(
        "not a SPIFFS filesystem: all {size} bytes are 0x00 (blank/zeroed): check that this is \
         the right partition and that the read from the device succeeded"
    )]
    Zeroed {
        /// Image size in bytes.
        size: usize,
    },

    /// The block magics say the image was made for a filesystem of another size.
    #[error(
        "image was built for a {built_for}-byte filesystem ({built_blocks} blocks, as block \
         {block}'s magic 0x{found:04x} says) but is {size} bytes: with magic-length on the image \
         must be exactly the partition size; rebuild it with mkspiffs -s {size} (the partition \
         size) instead of padding or truncating it"
    )]
    SizeMismatch {
        /// Image size in bytes.
        size: usize,
        /// Filesystem size the magics encode.
        built_for: usize,
        /// Block count the magics encode.
        built_blocks: usize,
        /// Block whose magic was decoded.
        block: usize,
        /// That magic.
        found: u16,
    },

    /// The block magics match another page and/or block size.
    #[error(
        "image looks built with {found}, but the firmware mounts page {page_size} / block \
         {block_size}: rebuild it with the firmware's parameters (mkspiffs -p {page_size} -b \
         {block_size} -s <partition size>)"
    )]
    GeometryMismatch {
        /// Parameters the magics match, e.g. `page 512 / block 4096`.
        found: String,
        /// Page size expected.
        page_size: usize,
        /// Block size expected.
        block_size: usize,
    },

    /// A block magic matches nothing recognisable.
    #[error(
        "block {block} magic 0x{found:04x} does not match page {page_size} / block {block_size} \
         / size {size} (expected 0x{expected:04x}){note}: the image was built with other SPIFFS \
         parameters (or for a partition of another size), or is not a SPIFFS image"
    )]
    BadMagic {
        /// Block index.
        block: usize,
        /// Magic found.
        found: u16,
        /// Magic expected.
        expected: u16,
        /// Page size expected.
        page_size: usize,
        /// Block size expected.
        block_size: usize,
        /// Image size.
        size: usize,
        /// Extra detail about the block (empty or starting with a space).
        note: String,
    },

    /// A file cannot be read with the configured meta length but can with another one.
    #[error(
        "file {path}: {problem} (meta length mismatch: image looks built with meta length \
         {image_meta_len}, the firmware uses {meta_len}): a miner would list this file but fail \
         to read it; rebuild the image with meta length {meta_len} (a mkspiffs built with \
         -DSPIFFS_OBJ_META_LEN={meta_len}, as Arduino-ESP32's is)"
    )]
    MetaLengthMismatch {
        /// File whose index failed.
        path: String,
        /// How it failed with the configured meta length.
        problem: String,
        /// Meta length the image reads correctly with.
        image_meta_len: usize,
        /// Configured meta length.
        meta_len: usize,
    },

    /// A file's index or data pages are inconsistent.
    #[error(
        "file {path}: {problem}: the filesystem is corrupt or was caught mid-write; read the \
         partition again, or rebuild the image"
    )]
    CorruptFile {
        /// File concerned (or a description of its header page if the name is unreadable).
        path: String,
        /// What is inconsistent.
        problem: String,
    },

    /// The filesystem structure (lookup tables, pages) is inconsistent.
    #[error(
        "corrupt SPIFFS filesystem: {problem}: read the partition again, or rebuild the image"
    )]
    Corrupt {
        /// What is inconsistent.
        problem: String,
    },

    /// A path is longer than the name field allows.
    #[error(
        "path {path} is {len} bytes; the firmware allows at most {max} (the {name_len}-byte \
         name field ends with a NUL): shorten it"
    )]
    PathTooLong {
        /// The path.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// Longest allowed.
        max: usize,
        /// Name field size.
        name_len: usize,
    },

    /// A path that SPIFFS could store but the firmware could not open.
    #[error("path {path:?} is not usable: {problem}")]
    InvalidPath {
        /// The path.
        path: String,
        /// Why not.
        problem: &'static str,
    },

    /// Two files with the same path.
    #[error("path {path} is given more than once: every file needs its own path")]
    DuplicatePath {
        /// The path.
        path: String,
    },

    /// A file too large for a 32-bit size field.
    #[error(
        "file {path} is {size} bytes; SPIFFS stores sizes as 32-bit values below 0xFFFFFFFF: \
         it cannot hold this file"
    )]
    FileTooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: usize,
    },

    /// More files than there are object ids.
    #[error("{count} files are more than SPIFFS's {max} object ids: pack fewer files")]
    TooManyFiles {
        /// Files given.
        count: usize,
        /// Maximum.
        max: usize,
    },

    /// The files do not fit.
    #[error(
        "files need {needed} bytes but the partition holds {capacity} ({needed_pages} vs \
         {capacity_pages} pages of {page_size} bytes, counting SPIFFS's page headers and index \
         pages; 2 of the {blocks} blocks must stay free for garbage collection): drop files or \
         use a larger partition"
    )]
    NoSpace {
        /// Bytes of pages needed.
        needed: usize,
        /// Bytes of pages available.
        capacity: usize,
        /// Pages needed.
        needed_pages: usize,
        /// Pages available.
        capacity_pages: usize,
        /// Page size.
        page_size: usize,
        /// Blocks in the filesystem.
        blocks: usize,
    },
}

const OBJ_ID_FREE: u16 = 0xFFFF;
const OBJ_ID_DELETED: u16 = 0x0000;
const OBJ_ID_IX_FLAG: u16 = 0x8000;
/// Largest object id usable for a file (0x7FFF | IX would read as a free entry).
const MAX_OBJ_ID: u16 = 0x7FFE;

const FLAG_USED: u8 = 1 << 0;
const FLAG_FINAL: u8 = 1 << 1;
const FLAG_INDEX: u8 = 1 << 2;
const FLAG_IXDELE: u8 = 1 << 6;
const FLAG_DELETED: u8 = 1 << 7;
/// Flags of a finished data page: USED and FINAL cleared.
const FLAGS_DATA: u8 = !(FLAG_USED | FLAG_FINAL);
/// Flags of a finished object index page: USED, FINAL and INDEX cleared.
const FLAGS_INDEX: u8 = !(FLAG_USED | FLAG_FINAL | FLAG_INDEX);

const MAGIC_BASE: u32 = 0x2014_0529;
const PAGE_HEADER_LEN: usize = 5;
/// Page header plus alignment padding, as it starts every object index page.
const IX_PAGE_HEADER_LEN: usize = 8;
/// Offset of the size field in an object index header; type and name follow.
const IX_SIZE_OFFSET: usize = 8;
const IX_TYPE_OFFSET: usize = 12;
const IX_NAME_OFFSET: usize = 13;
const TYPE_FILE: u8 = 1;
const UNDEFINED_SIZE: u32 = 0xFFFF_FFFF;
const RESERVED_FREE_BLOCKS: usize = 2;
const MIN_BLOCKS: usize = 3;
const MAX_PAGES: usize = 0xFFFF;

/// Geometry derived from [`SpiffsParams`].
#[derive(Debug, Clone, Copy)]
struct Layout {
    page_size: usize,
    block_size: usize,
    pages_per_block: usize,
    lookup_pages: usize,
    /// Pages of a block that hold data (= lookup entries per block).
    lookup_entries: usize,
    name_len: usize,
    meta_len: usize,
    /// Length of the object index header before its page entries.
    hdr_len: usize,
    /// Page entries in an object index header.
    hdr_entries: usize,
    /// Page entries in a further object index page.
    ix_entries: usize,
    /// Content bytes per data page.
    data_len: usize,
}

fn lookup_pages_for(page_size: usize, block_size: usize) -> usize {
    ((block_size / page_size) * 2 / page_size).max(1)
}

fn magic_value(page_size: usize, blocks: usize, block: usize) -> u16 {
    let count = blocks.wrapping_sub(block) as u32;
    ((MAGIC_BASE ^ page_size as u32 ^ count) & 0xFFFF) as u16
}

impl Layout {
    fn new(p: &SpiffsParams) -> Result<Layout, SpiffsError> {
        let invalid = |problem: String| SpiffsError::InvalidParams {
            page_size: p.page_size,
            block_size: p.block_size,
            obj_name_len: p.obj_name_len,
            meta_len: p.meta_len,
            problem,
        };
        if !p.page_size.is_power_of_two() || !(64..=65536).contains(&p.page_size) {
            return Err(invalid(
                "the page size must be a power of two from 64 to 65536".into(),
            ));
        }
        if p.block_size == 0 || p.block_size % p.page_size != 0 {
            return Err(invalid(
                "the block size must be a non-zero multiple of the page size".into(),
            ));
        }
        let pages_per_block = p.block_size / p.page_size;
        let lookup_pages = lookup_pages_for(p.page_size, p.block_size);
        if pages_per_block <= lookup_pages + 1 {
            return Err(invalid("a block must hold at least 2 data pages".into()));
        }
        let lookup_entries = pages_per_block - lookup_pages;
        let per_page = p.page_size / 2;
        // entries in the last lookup page, which must leave room for magic and erase count
        let last_page_entries = lookup_entries.saturating_sub((lookup_pages - 1) * per_page);
        if lookup_entries > lookup_pages * per_page || last_page_entries * 2 + 4 > p.page_size {
            return Err(invalid(
                "the lookup pages leave no room for the block magic and erase count".into(),
            ));
        }
        if p.obj_name_len < 2 {
            return Err(invalid(
                "the object name length must be at least 2 (a '/', a character and a NUL)".into(),
            ));
        }
        let hdr_len = IX_NAME_OFFSET
            .checked_add(p.obj_name_len)
            .and_then(|n| n.checked_add(p.meta_len))
            .filter(|&n| n.saturating_add(2) <= p.page_size)
            .ok_or_else(|| {
                invalid(format!(
                    "an object index header with this name and meta length does not fit a \
                     {}-byte page",
                    p.page_size
                ))
            })?;
        Ok(Layout {
            page_size: p.page_size,
            block_size: p.block_size,
            pages_per_block,
            lookup_pages,
            lookup_entries,
            name_len: p.obj_name_len,
            meta_len: p.meta_len,
            hdr_len,
            hdr_entries: (p.page_size - hdr_len) / 2,
            ix_entries: (p.page_size - IX_PAGE_HEADER_LEN) / 2,
            data_len: p.page_size - PAGE_HEADER_LEN,
        })
    }

    /// The same geometry with another meta length, if that still fits a page.
    fn with_meta_len(&self, meta_len: usize) -> Option<Layout> {
        let hdr_len = IX_NAME_OFFSET + self.name_len + meta_len;
        if hdr_len + 2 > self.page_size {
            return None;
        }
        Some(Layout {
            meta_len,
            hdr_len,
            hdr_entries: (self.page_size - hdr_len) / 2,
            ..*self
        })
    }

    fn magic_offset(&self) -> usize {
        self.lookup_pages * self.page_size - 4
    }

    fn erase_count_offset(&self) -> usize {
        self.lookup_pages * self.page_size - 2
    }

    /// Page index of lookup entry `entry` of block `block`.
    fn pix(&self, block: usize, entry: usize) -> usize {
        block * self.pages_per_block + self.lookup_pages + entry
    }

    /// Byte offset of the lookup entry describing data page `pix`.
    fn lookup_offset(&self, pix: usize) -> usize {
        let block = pix / self.pages_per_block;
        let entry = (pix % self.pages_per_block).saturating_sub(self.lookup_pages);
        block * self.block_size + entry * 2
    }

    fn is_lookup_page(&self, pix: usize) -> bool {
        pix % self.pages_per_block < self.lookup_pages
    }

    /// Span index of the object index page that lists data span `span`.
    fn objix_span(&self, span: usize) -> usize {
        if span < self.hdr_entries {
            0
        } else {
            1 + (span - self.hdr_entries) / self.ix_entries
        }
    }

    /// Entry number of data span `span` inside its object index page.
    fn objix_entry(&self, span: usize) -> usize {
        if span < self.hdr_entries {
            span
        } else {
            (span - self.hdr_entries) % self.ix_entries
        }
    }

    /// Pages a file of `len` bytes occupies: header, data pages, further index pages.
    fn pages_for(&self, len: usize) -> usize {
        let data = len.div_ceil(self.data_len);
        let extra_ix = data
            .saturating_sub(self.hdr_entries)
            .div_ceil(self.ix_entries);
        1 + data + extra_ix
    }

    /// Checks an image (or requested) size; returns the block count.
    fn blocks_for(&self, size: usize) -> Result<usize, SpiffsError> {
        if size % self.block_size != 0 {
            return Err(SpiffsError::SizeNotBlockMultiple {
                size,
                block_size: self.block_size,
            });
        }
        let blocks = size / self.block_size;
        if blocks < MIN_BLOCKS {
            return Err(SpiffsError::TooFewBlocks {
                size,
                blocks,
                block_size: self.block_size,
            });
        }
        let pages = blocks.saturating_mul(self.pages_per_block);
        if pages > MAX_PAGES {
            return Err(SpiffsError::TooManyPages {
                size,
                pages,
                page_size: self.page_size,
            });
        }
        Ok(blocks)
    }
}

fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    let bytes = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let bytes = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn all_equal(buf: &[u8], value: u8) -> bool {
    buf.iter().all(|&b| b == value)
}

fn truncated() -> SpiffsError {
    SpiffsError::Corrupt {
        problem: "the image ends inside a page".into(),
    }
}

/// Page header fields.
#[derive(Debug, Clone, Copy)]
struct PageHeader {
    obj_id: u16,
    span: u16,
    flags: u8,
}

impl PageHeader {
    fn parse(page: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            obj_id: u16_at(page, 0)?,
            span: u16_at(page, 2)?,
            flags: *page.get(4)?,
        })
    }

    /// Written, finished and not deleted.
    fn is_live(&self) -> bool {
        self.flags & (FLAG_USED | FLAG_FINAL | FLAG_DELETED) == FLAG_DELETED
    }
}

/// A read-only view of an image with a fixed layout.
struct Image<'a> {
    bytes: &'a [u8],
    layout: Layout,
    blocks: usize,
}

impl Image<'_> {
    fn total_pages(&self) -> usize {
        self.blocks * self.layout.pages_per_block
    }

    fn page(&self, pix: usize) -> Result<&[u8], SpiffsError> {
        let start = pix
            .checked_mul(self.layout.page_size)
            .ok_or_else(truncated)?;
        let end = start
            .checked_add(self.layout.page_size)
            .ok_or_else(truncated)?;
        self.bytes.get(start..end).ok_or_else(truncated)
    }

    fn lookup(&self, pix: usize) -> Result<u16, SpiffsError> {
        u16_at(self.bytes, self.layout.lookup_offset(pix)).ok_or_else(truncated)
    }

    fn header(&self, pix: usize) -> Result<PageHeader, SpiffsError> {
        PageHeader::parse(self.page(pix)?).ok_or_else(truncated)
    }

    /// Describes a page that an index wrongly points at.
    fn describe(&self, pix: usize) -> String {
        let (Ok(lu), Ok(h)) = (self.lookup(pix), self.header(pix)) else {
            return "unreadable".into();
        };
        if lu == OBJ_ID_FREE {
            "free".into()
        } else if lu == OBJ_ID_DELETED || h.flags & FLAG_DELETED == 0 {
            "deleted".into()
        } else if h.flags & FLAG_USED != 0 {
            "never written".into()
        } else if h.flags & FLAG_FINAL != 0 {
            "unfinished".into()
        } else {
            format!("object 0x{:04x} span {}", h.obj_id, h.span)
        }
    }
}

/// Every live file in an image (deleted/unfinished pages skipped).
///
/// Checks the image size, the magic of every block, the lookup tables against the page
/// headers, each file's index against its data pages (object id, span index, flags) and its
/// size, and that no live page is left that no file owns. An image built with another meta
/// length is reported as [`SpiffsError::MetaLengthMismatch`] rather than misread. Never panics
/// and runs in time linear in the image size, whatever the input.
pub fn read_image(image: &[u8], params: &SpiffsParams) -> Result<Vec<SpiffsFile>, SpiffsError> {
    let layout = Layout::new(params)?;
    if !image.is_empty() {
        if all_equal(image, 0xFF) {
            return Err(SpiffsError::Erased { size: image.len() });
        }
        if all_equal(image, 0x00) {
            return Err(SpiffsError::Zeroed { size: image.len() });
        }
    }
    let blocks = layout.blocks_for(image.len())?;
    let img = Image {
        bytes: image,
        layout,
        blocks,
    };
    check_magics(&img)?;
    match decode(&img) {
        Err(SpiffsError::CorruptFile { path, problem }) => {
            for meta_len in 0..=16 {
                if meta_len == layout.meta_len {
                    continue;
                }
                let Some(alt) = layout.with_meta_len(meta_len) else {
                    continue;
                };
                let alt_img = Image { layout: alt, ..img };
                if decode(&alt_img).is_ok() {
                    return Err(SpiffsError::MetaLengthMismatch {
                        path,
                        problem,
                        image_meta_len: meta_len,
                        meta_len: layout.meta_len,
                    });
                }
            }
            Err(SpiffsError::CorruptFile { path, problem })
        }
        other => other,
    }
}

/// Checks every block's magic; on mismatch works out what the image was built for.
fn check_magics(img: &Image) -> Result<(), SpiffsError> {
    let l = &img.layout;
    let magic_at = |block: usize| u16_at(img.bytes, block * l.block_size + l.magic_offset());
    let mut bad = Vec::new();
    for block in 0..img.blocks {
        if magic_at(block) != Some(magic_value(l.page_size, img.blocks, block)) {
            bad.push(block);
        }
    }
    let Some(&first_bad) = bad.first() else {
        return Ok(());
    };
    let block_bytes = |block: usize| {
        img.bytes
            .get(block * l.block_size..(block + 1) * l.block_size)
            .unwrap_or(&[])
    };
    // SPIFFS tolerates one block whose erase was interrupted; a fully erased one is harmless.
    if bad.len() == 1 && all_equal(block_bytes(first_bad), 0xFF) {
        return Ok(());
    }
    let size = img.bytes.len();
    if let Some((built_blocks, block, found)) = probe_magics(img.bytes, l.page_size, l.block_size) {
        if built_blocks != img.blocks {
            return Err(SpiffsError::SizeMismatch {
                size,
                built_for: built_blocks * l.block_size,
                built_blocks,
                block,
                found,
            });
        }
    }
    for page_size in [128, 256, 512, 1024, 2048] {
        for block_size in [4096, 8192, 16384, 32768, 65536] {
            if (page_size, block_size) == (l.page_size, l.block_size) || block_size < page_size * 4
            {
                continue;
            }
            if let Some((built_blocks, _, _)) = probe_magics(img.bytes, page_size, block_size) {
                let mut found = format!("page {page_size} / block {block_size}");
                if built_blocks * block_size != size {
                    found.push_str(&format!(
                        " for a {}-byte filesystem",
                        built_blocks * block_size
                    ));
                }
                return Err(SpiffsError::GeometryMismatch {
                    found,
                    page_size: l.page_size,
                    block_size: l.block_size,
                });
            }
        }
    }
    let note = if all_equal(block_bytes(first_bad), 0xFF) {
        " (the block is erased, all 0xFF)".to_string()
    } else if all_equal(block_bytes(first_bad), 0x00) {
        " (the block is all 0x00)".to_string()
    } else {
        String::new()
    };
    Err(SpiffsError::BadMagic {
        block: first_bad,
        found: magic_at(first_bad).unwrap_or(0xFFFF),
        expected: magic_value(l.page_size, img.blocks, first_bad),
        page_size: l.page_size,
        block_size: l.block_size,
        size,
        note,
    })
}

/// Looks for a block count that the magics of the first blocks agree on under the given
/// geometry. Returns (block count, block decoded, its magic).
fn probe_magics(bytes: &[u8], page_size: usize, block_size: usize) -> Option<(usize, usize, u16)> {
    let blocks = bytes.len() / block_size;
    if blocks == 0 {
        return None;
    }
    let off = lookup_pages_for(page_size, block_size) * page_size - 4;
    let probe = blocks.min(3);
    let magics: Vec<Option<u16>> = (0..probe)
        .map(|b| u16_at(bytes, b * block_size + off))
        .collect();
    let needed = probe.min(2);
    for (b, magic) in magics.iter().enumerate() {
        let Some(magic) = *magic else { continue };
        let count = ((u32::from(magic) ^ MAGIC_BASE ^ page_size as u32) & 0xFFFF) as usize;
        let candidate = count + b;
        if candidate < MIN_BLOCKS || count == 0 {
            continue;
        }
        let agreeing = magics
            .iter()
            .enumerate()
            .filter(|(i, m)| *i < candidate && **m == Some(magic_value(page_size, candidate, *i)))
            .count();
        if agreeing >= needed {
            return Some((candidate, b, magic));
        }
    }
    None
}

/// Decodes all files with the image's layout.
fn decode(img: &Image) -> Result<Vec<SpiffsFile>, SpiffsError> {
    let l = &img.layout;
    let mut headers: Vec<(usize, u16)> = Vec::new();
    let mut index_pages: HashMap<(u16, u16), usize> = HashMap::new();
    let mut data_pages: HashSet<usize> = HashSet::new();

    for block in 0..img.blocks {
        for entry in 0..l.lookup_entries {
            let pix = l.pix(block, entry);
            let lu = img.lookup(pix)?;
            let page = img.page(pix)?;
            if lu == OBJ_ID_FREE {
                if !all_equal(page, 0xFF) {
                    return Err(SpiffsError::Corrupt {
                        problem: format!(
                            "page {pix} (block {block}) is free in the lookup table but not erased"
                        ),
                    });
                }
                continue;
            }
            if lu == OBJ_ID_DELETED {
                continue;
            }
            let h = PageHeader::parse(page).ok_or_else(truncated)?;
            if !h.is_live() {
                // never written, unfinished or deleted: invisible, as in SPIFFS
                continue;
            }
            if h.obj_id != lu {
                return Err(SpiffsError::Corrupt {
                    problem: format!(
                        "page {pix}: the lookup table says object 0x{lu:04x}, the page header \
                         says 0x{:04x}",
                        h.obj_id
                    ),
                });
            }
            let id_is_index = lu & OBJ_ID_IX_FLAG != 0;
            let flags_say_index = h.flags & FLAG_INDEX == 0;
            if id_is_index != flags_say_index {
                return Err(SpiffsError::Corrupt {
                    problem: format!(
                        "page {pix}: object id 0x{lu:04x} and flags 0x{:02x} disagree on whether \
                         it is an index page",
                        h.flags
                    ),
                });
            }
            if !id_is_index {
                data_pages.insert(pix);
            } else if h.span == 0 {
                if h.flags & FLAG_IXDELE != 0 {
                    headers.push((pix, lu & !OBJ_ID_IX_FLAG));
                }
                // else: the file is being deleted; SPIFFS no longer lists it
            } else if let Some(other) = index_pages.insert((lu & !OBJ_ID_IX_FLAG, h.span), pix) {
                return Err(SpiffsError::Corrupt {
                    problem: format!(
                        "pages {other} and {pix} are both live index page {} of object 0x{:04x}",
                        h.span,
                        lu & !OBJ_ID_IX_FLAG
                    ),
                });
            }
        }
    }

    let mut files = Vec::with_capacity(headers.len());
    let mut ids = HashSet::new();
    let mut paths = HashSet::new();
    let mut used_data = HashSet::new();
    let mut used_index = HashSet::new();
    for &(pix, id) in &headers {
        if !ids.insert(id) {
            return Err(SpiffsError::Corrupt {
                problem: format!("object 0x{id:04x} has more than one live index header"),
            });
        }
        let file = read_file(
            img,
            pix,
            id,
            &index_pages,
            &data_pages,
            &mut used_data,
            &mut used_index,
        )?;
        if !paths.insert(file.path.clone()) {
            return Err(SpiffsError::CorruptFile {
                path: file.path,
                problem: "two live files have this name".into(),
            });
        }
        files.push(file);
    }

    if let Some(pix) = data_pages.difference(&used_data).min() {
        let h = img.header(*pix)?;
        return Err(SpiffsError::Corrupt {
            problem: format!(
                "page {pix} holds live data of object 0x{:04x} (span {}) that no live file's \
                 index refers to (a file deleted or rewritten only half-way, or a damaged \
                 index header)",
                h.obj_id, h.span
            ),
        });
    }
    if let Some(((id, span), pix)) = index_pages
        .iter()
        .filter(|(_, pix)| !used_index.contains(*pix))
        .min_by_key(|(_, pix)| **pix)
    {
        return Err(SpiffsError::Corrupt {
            problem: format!(
                "page {pix} is a live index page (span {span}) of object 0x{id:04x} that no \
                 file uses"
            ),
        });
    }
    Ok(files)
}

/// Reads one file through its object index.
fn read_file(
    img: &Image,
    hdr_pix: usize,
    id: u16,
    index_pages: &HashMap<(u16, u16), usize>,
    data_pages: &HashSet<usize>,
    used_data: &mut HashSet<usize>,
    used_index: &mut HashSet<usize>,
) -> Result<SpiffsFile, SpiffsError> {
    let l = &img.layout;
    let hdr = img.page(hdr_pix)?;
    let unnamed = || format!("<object 0x{id:04x}, index header page {hdr_pix}>");
    let name = hdr
        .get(IX_NAME_OFFSET..IX_NAME_OFFSET + l.name_len)
        .ok_or_else(truncated)?;
    let Some(nul) = name.iter().position(|&b| b == 0) else {
        return Err(SpiffsError::CorruptFile {
            path: unnamed(),
            problem: format!("the name is not NUL-terminated within {} bytes", l.name_len),
        });
    };
    let path = String::from_utf8(name[..nul].to_vec()).map_err(|_| SpiffsError::CorruptFile {
        path: unnamed(),
        problem: format!(
            "the name {:?} is not UTF-8",
            String::from_utf8_lossy(&name[..nul])
        ),
    })?;
    let corrupt = |problem: String| SpiffsError::CorruptFile {
        path: path.clone(),
        problem,
    };
    let obj_type = *hdr.get(IX_TYPE_OFFSET).ok_or_else(truncated)?;
    if obj_type != TYPE_FILE {
        return Err(corrupt(format!(
            "object type {obj_type} is not a plain file ({TYPE_FILE})"
        )));
    }
    let raw_size = u32_at(hdr, IX_SIZE_OFFSET).ok_or_else(truncated)?;
    let size = if raw_size == UNDEFINED_SIZE {
        0
    } else {
        raw_size as usize
    };
    let spans = size.div_ceil(l.data_len);
    if spans > img.total_pages() {
        return Err(corrupt(format!(
            "size {size} needs {spans} data pages, more than the filesystem's {} pages",
            img.total_pages()
        )));
    }
    let mut data = Vec::with_capacity(size);
    for span in 0..spans {
        let ix_span = l.objix_span(span);
        let (ix_pix, entry_off, place) = if ix_span == 0 {
            (
                hdr_pix,
                l.hdr_len + span * 2,
                format!("object index header (page {hdr_pix})"),
            )
        } else {
            let Some(&pix) = u16::try_from(ix_span)
                .ok()
                .and_then(|s| index_pages.get(&(id, s)))
            else {
                return Err(corrupt(format!(
                    "object index page {ix_span} (for data span {span}) is missing"
                )));
            };
            used_index.insert(pix);
            (
                pix,
                IX_PAGE_HEADER_LEN + l.objix_entry(span) * 2,
                format!("object index page {ix_span} (page {pix})"),
            )
        };
        let target = u16_at(img.page(ix_pix)?, entry_off).ok_or_else(truncated)?;
        if target == OBJ_ID_FREE {
            return Err(corrupt(format!(
                "{place} has no entry for data span {span} (entry is 0xffff)"
            )));
        }
        let dpix = usize::from(target);
        if dpix >= img.total_pages() {
            return Err(corrupt(format!(
                "{place} points data span {span} at page {dpix}, beyond the filesystem's {} pages",
                img.total_pages()
            )));
        }
        if l.is_lookup_page(dpix) {
            return Err(corrupt(format!(
                "{place} points data span {span} at page {dpix}, a lookup page"
            )));
        }
        let dh = img.header(dpix)?;
        if !data_pages.contains(&dpix) || dh.obj_id != id || usize::from(dh.span) != span {
            return Err(corrupt(format!(
                "{place} points data span {span} at page {dpix}, which is {}",
                img.describe(dpix)
            )));
        }
        if !used_data.insert(dpix) {
            return Err(corrupt(format!("data page {dpix} is used twice")));
        }
        let take = l.data_len.min(size - data.len());
        let content = img
            .page(dpix)?
            .get(PAGE_HEADER_LEN..PAGE_HEADER_LEN + take)
            .ok_or_else(truncated)?;
        data.extend_from_slice(content);
    }
    Ok(SpiffsFile { path, data })
}

/// A fresh image of exactly `size` bytes holding `files`, as the firmware's mkspiffs build would
/// write it.
///
/// Files are stored in the order given, with object ids 1, 2, 3, ...; pages are allocated in
/// order from block 0; every block gets its magic and erase count 0; an empty file keeps the
/// size 0xFFFFFFFF ("never written") as the reference leaves it; meta bytes are 0xFF, the
/// padding bytes of object index pages 0, everything unused 0xFF. Refuses paths that do not
/// start with `/`, contain NUL or are too long, duplicate paths, and file sets that need more
/// than the pages of all but 2 blocks (which SPIFFS keeps free for garbage collection).
/// The output is deterministic.
pub fn build_image(
    files: &[SpiffsFile],
    size: usize,
    params: &SpiffsParams,
) -> Result<Vec<u8>, SpiffsError> {
    let l = Layout::new(params)?;
    let blocks = l.blocks_for(size)?;
    let max_path = l.name_len - 1;
    let mut seen = HashSet::new();
    for f in files {
        if f.path.len() > max_path {
            return Err(SpiffsError::PathTooLong {
                path: f.path.clone(),
                len: f.path.len(),
                max: max_path,
                name_len: l.name_len,
            });
        }
        if !f.path.starts_with('/') || f.path.len() < 2 {
            return Err(SpiffsError::InvalidPath {
                path: f.path.clone(),
                problem: "it must start with '/' and name a file, as the firmware opens \
                          /config.json",
            });
        }
        if f.path.as_bytes().contains(&0) {
            return Err(SpiffsError::InvalidPath {
                path: f.path.clone(),
                problem: "it contains a NUL byte, which ends a SPIFFS name",
            });
        }
        if !seen.insert(f.path.as_str()) {
            return Err(SpiffsError::DuplicatePath {
                path: f.path.clone(),
            });
        }
        if f.data.len() >= UNDEFINED_SIZE as usize {
            return Err(SpiffsError::FileTooLarge {
                path: f.path.clone(),
                size: f.data.len(),
            });
        }
    }
    if files.len() > usize::from(MAX_OBJ_ID) {
        return Err(SpiffsError::TooManyFiles {
            count: files.len(),
            max: usize::from(MAX_OBJ_ID),
        });
    }
    let needed_pages = files.iter().fold(0usize, |acc, f| {
        acc.saturating_add(l.pages_for(f.data.len()))
    });
    let capacity_pages = (blocks - RESERVED_FREE_BLOCKS) * l.lookup_entries;
    if needed_pages > capacity_pages {
        return Err(SpiffsError::NoSpace {
            needed: needed_pages.saturating_mul(l.page_size),
            capacity: capacity_pages * l.page_size,
            needed_pages,
            capacity_pages,
            page_size: l.page_size,
            blocks,
        });
    }

    // All offsets below stay inside `img`: `size` is blocks * block_size and at most
    // `capacity_pages` pages are allocated.
    let mut img = vec![0xFFu8; size];
    for block in 0..blocks {
        let base = block * l.block_size;
        img[base + l.erase_count_offset()..][..2].copy_from_slice(&0u16.to_le_bytes());
        let magic = magic_value(l.page_size, blocks, block);
        img[base + l.magic_offset()..][..2].copy_from_slice(&magic.to_le_bytes());
    }
    let mut next = 0usize;
    let mut alloc = |img: &mut [u8], obj_id: u16| {
        let pix = l.pix(next / l.lookup_entries, next % l.lookup_entries);
        next += 1;
        img[l.lookup_offset(pix)..][..2].copy_from_slice(&obj_id.to_le_bytes());
        pix
    };
    for (i, f) in files.iter().enumerate() {
        // fits: files.len() <= MAX_OBJ_ID
        let id = (i + 1) as u16;
        let ix_id = id | OBJ_ID_IX_FLAG;
        let hdr_pix = alloc(&mut img, ix_id);
        let mut hdr_entries: Vec<u16> = Vec::new();
        let mut ix_pages: Vec<(usize, Vec<u16>)> = Vec::new();
        for (span, chunk) in f.data.chunks(l.data_len).enumerate() {
            if l.objix_span(span) > 0 && l.objix_entry(span) == 0 {
                ix_pages.push((alloc(&mut img, ix_id), Vec::new()));
            }
            let dpix = alloc(&mut img, id);
            let off = dpix * l.page_size;
            img[off..off + 2].copy_from_slice(&id.to_le_bytes());
            img[off + 2..off + 4].copy_from_slice(&(span as u16).to_le_bytes());
            img[off + 4] = FLAGS_DATA;
            img[off + PAGE_HEADER_LEN..][..chunk.len()].copy_from_slice(chunk);
            match ix_pages.last_mut() {
                Some((_, entries)) => entries.push(dpix as u16),
                None => hdr_entries.push(dpix as u16),
            }
        }

        let off = hdr_pix * l.page_size;
        let page = &mut img[off..off + l.page_size];
        write_ix_page_header(page, ix_id, 0);
        let raw_size = if f.data.is_empty() {
            UNDEFINED_SIZE
        } else {
            f.data.len() as u32
        };
        page[IX_SIZE_OFFSET..IX_SIZE_OFFSET + 4].copy_from_slice(&raw_size.to_le_bytes());
        page[IX_TYPE_OFFSET] = TYPE_FILE;
        let name = &mut page[IX_NAME_OFFSET..IX_NAME_OFFSET + l.name_len];
        name.fill(0);
        name[..f.path.len()].copy_from_slice(f.path.as_bytes());
        // meta bytes stay 0xFF, as the reference writes them
        write_entries(page, l.hdr_len, &hdr_entries);

        for (n, (pix, entries)) in ix_pages.iter().enumerate() {
            let off = *pix * l.page_size;
            let page = &mut img[off..off + l.page_size];
            write_ix_page_header(page, ix_id, (n + 1) as u16);
            write_entries(page, IX_PAGE_HEADER_LEN, entries);
        }
    }
    Ok(img)
}

fn write_ix_page_header(page: &mut [u8], ix_id: u16, span: u16) {
    page[0..2].copy_from_slice(&ix_id.to_le_bytes());
    page[2..4].copy_from_slice(&span.to_le_bytes());
    page[4] = FLAGS_INDEX;
    page[PAGE_HEADER_LEN..IX_PAGE_HEADER_LEN].fill(0);
}

fn write_entries(page: &mut [u8], start: usize, entries: &[u16]) {
    for (k, pix) in entries.iter().enumerate() {
        page[start + 2 * k..start + 2 * k + 2].copy_from_slice(&pix.to_le_bytes());
    }
}

/// Zero the 3 undefined padding bytes of every object-index page (the reference leaves garbage
/// there) so images compare byte for byte.
///
/// An object-index page is any non-lookup page whose header object id has bit 15 set (live or
/// deleted, header or further index page). Does nothing if `params` are unusable; ignores a
/// trailing partial block.
pub fn normalize_padding(image: &mut [u8], params: &SpiffsParams) {
    let Ok(l) = Layout::new(params) else {
        return;
    };
    let blocks = image.len() / l.block_size;
    for block in 0..blocks {
        for entry in 0..l.lookup_entries {
            let off = l.pix(block, entry) * l.page_size;
            let Some(page) = image.get_mut(off..off + l.page_size) else {
                continue;
            };
            let Some(obj_id) = u16_at(page, 0) else {
                continue;
            };
            if obj_id != OBJ_ID_FREE && obj_id & OBJ_ID_IX_FLAG != 0 {
                if let Some(pad) = page.get_mut(PAGE_HEADER_LEN..IX_PAGE_HEADER_LEN) {
                    pad.fill(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Golden vectors come from the reference implementation (see
    //! `shared/spiffs-vectors/MANIFEST.md`); tests that need them skip with a message when the
    //! folder is absent. SHA-256 is computed by a small local implementation so the tests need
    //! no extra crate.

    use super::*;
    use proptest::prelude::*;
    use std::path::{Path, PathBuf};

    const P: SpiffsParams = SpiffsParams::ARDUINO;

    // ---------- helpers ----------

    /// SHA-256 (FIPS 180-4), hex encoded.
    #[allow(clippy::needless_range_loop)]
    fn sha256_hex(data: &[u8]) -> String {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for chunk in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes(chunk[4 * i..4 * i + 4].try_into().unwrap());
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        h.iter().map(|x| format!("{x:08x}")).collect()
    }

    /// The golden vector folder: `../shared/spiffs-vectors` next to the crate (the main
    /// crate's layout), else `/work/shared/spiffs-vectors`.
    fn vectors_dir() -> Option<PathBuf> {
        let candidates = [
            concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/spiffs-vectors"),
            "/work/shared/spiffs-vectors",
        ];
        let found = candidates
            .iter()
            .map(Path::new)
            .find(|p| p.join("MANIFEST.md").is_file())
            .map(Path::to_path_buf);
        if found.is_none() {
            eprintln!(
                "SKIP: SPIFFS golden vectors not found (looked for MANIFEST.md in {candidates:?}); \
                 test skipped"
            );
        }
        found
    }

    /// A vector file, or None (with a skip message) when the vectors are absent.
    fn vector(name: &str) -> Option<Vec<u8>> {
        let path = vectors_dir()?.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                eprintln!("SKIP: cannot read {}: {e}; test skipped", path.display());
                None
            }
        }
    }

    /// The files of `inputs/<set>` in the given packing order (a missing folder is empty:
    /// git drops empty folders).
    fn inputs(set: &str, order: &[&str]) -> Option<Vec<SpiffsFile>> {
        let dir = vectors_dir()?.join("inputs").join(set);
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort_by_key(|n| order.iter().position(|o| *o == format!("/{n}")));
        assert_eq!(names.len(), order.len(), "inputs/{set} holds {names:?}");
        Some(
            names
                .iter()
                .map(|n| SpiffsFile {
                    path: format!("/{n}"),
                    data: std::fs::read(dir.join(n)).unwrap(),
                })
                .collect(),
        )
    }

    type Expected = (&'static str, usize, &'static str);

    const CONFIG_FILES: &[Expected] = &[(
        "/config.json",
        192,
        "be10e4e20d79fa43e9ea63e0d80dd3ebb1840645854232270fee62156276b65e",
    )];
    const MULTI_FILES: &[Expected] = &[
        (
            "/big.bin",
            10240,
            "f3f1e87a4f220826d67ff97758debb299068f2260e007877aefdbb8363d8ea1d",
        ),
        (
            "/config.json",
            192,
            "be10e4e20d79fa43e9ea63e0d80dd3ebb1840645854232270fee62156276b65e",
        ),
        (
            "/nerdminer_long_filename_31.txt",
            31,
            "4e4c81ad1c85771b1676effdeed691001a4d6f58254338eebf158bc0662b5c71",
        ),
        (
            "/notes.txt",
            700,
            "3800450f138f1bfde840f6e0954a88ccd4a14e66e00bc986b43afe0d997fc6d5",
        ),
    ];
    const MULTI_ORDER: &[&str] = &[
        "/notes.txt",
        "/nerdminer_long_filename_31.txt",
        "/config.json",
        "/big.bin",
    ];

    /// (image, size, sha256, files) from MANIFEST.md.
    const GOLDEN: &[(&str, usize, &str, &[Expected])] = &[
        (
            "empty.bin",
            0x20000,
            "618ce2a12881b42e73a76a8c95229a4b8c3d4f9cb729e143a4bfd13d65a9d399",
            &[],
        ),
        (
            "config_small.bin",
            0x20000,
            "9f3a2d5edcac7c996c9fff7a84914f24c903f2a600cca75094178ae3a0dc18f4",
            CONFIG_FILES,
        ),
        (
            "config_default.bin",
            0x160000,
            "8800d8cb208a367f70e9151bb5618f668c49abd54e0908b0985008136f45e3c5",
            CONFIG_FILES,
        ),
        (
            "config_huge_app.bin",
            0xE0000,
            "9a64e1d63ea2c8531c5eac145da5186b466535c26092ee12c38583533ff88300",
            CONFIG_FILES,
        ),
        (
            "multi.bin",
            0x20000,
            "4cc875b878437f1dafd978872f5700995004676ccaee4273dd03fa4dbb02deb9",
            MULTI_FILES,
        ),
        (
            "multi_nor.bin",
            0x20000,
            "e391df122421fbeab9ff56115e07302ad2e551678ccb71b67f010384392e1963",
            MULTI_FILES,
        ),
    ];

    /// (path, size, sha256) sorted by path.
    fn summary(files: &[SpiffsFile]) -> Vec<(String, usize, String)> {
        let mut s: Vec<_> = files
            .iter()
            .map(|f| (f.path.clone(), f.data.len(), sha256_hex(&f.data)))
            .collect();
        s.sort();
        s
    }

    fn expected_summary(files: &[Expected]) -> Vec<(String, usize, String)> {
        let mut s: Vec<_> = files
            .iter()
            .map(|(p, n, h)| (p.to_string(), *n, h.to_string()))
            .collect();
        s.sort();
        s
    }

    fn sorted(files: &[SpiffsFile]) -> Vec<SpiffsFile> {
        let mut v = files.to_vec();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Asserts two images are equal after [`normalize_padding`], reporting the first difference.
    fn assert_same_image(built: &[u8], golden: &[u8], what: &str) {
        let mut a = built.to_vec();
        let mut b = golden.to_vec();
        normalize_padding(&mut a, &P);
        normalize_padding(&mut b, &P);
        assert_eq!(a.len(), b.len(), "{what}: sizes differ");
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!(
                "{what}: first difference at 0x{i:x} (page {}, offset {}): built 0x{:02x}, golden \
                 0x{:02x}",
                i / 256,
                i % 256,
                a[i],
                b[i]
            );
        }
    }

    /// Lookup entries marking deleted pages (ARDUINO geometry).
    fn deleted_lookup_entries(img: &[u8]) -> usize {
        img.chunks(4096)
            .flat_map(|block| block[..30].chunks(2))
            .filter(|e| e == &[0, 0])
            .count()
    }

    fn synthetic_config() -> SpiffsFile {
        let json = br#"{"poolString":"public-pool.io","portNumber":21496,"poolPassword":"x","btcString":"bc1qexampleaddress000000000000000000000","gmtZone":2,"saveStats":false,"invertColors":false,"Brightness":250}"#;
        SpiffsFile {
            path: "/config.json".into(),
            data: json.to_vec(),
        }
    }

    // ---------- the SHA-256 helper itself ----------

    #[test]
    fn sha256_helper_matches_known_digests() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(&[b'a'; 1000]),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    // ---------- golden images ----------

    #[test]
    fn every_good_image_reads_exactly_the_manifest_files() {
        for (name, size, sha, files) in GOLDEN {
            let Some(image) = vector(name) else { return };
            assert_eq!(image.len(), *size, "{name} size");
            assert_eq!(
                sha256_hex(&image),
                *sha,
                "{name} is not the MANIFEST.md image"
            );
            let read = read_image(&image, &P).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(summary(&read), expected_summary(files), "{name}");
        }
    }

    #[test]
    fn multi_images_list_files_in_packing_order_despite_deleted_pages() {
        for name in ["multi.bin", "multi_nor.bin"] {
            let Some(image) = vector(name) else { return };
            let read = read_image(&image, &P).unwrap();
            let order: Vec<&str> = read.iter().map(|f| f.path.as_str()).collect();
            assert_eq!(order, MULTI_ORDER, "{name}");
        }
    }

    #[test]
    fn meta_length_0_images_are_rejected_with_a_meta_length_error() {
        for (name, sha_prefix) in [
            ("bad/config_small_meta0.bin", "a32825b21cf238b0"),
            ("bad/multi_meta0.bin", "4b0f7a3c2f6aa906"),
        ] {
            let Some(image) = vector(name) else { return };
            assert!(sha256_hex(&image).starts_with(sha_prefix), "{name}");
            match read_image(&image, &P) {
                Err(e @ SpiffsError::MetaLengthMismatch { .. }) => {
                    let SpiffsError::MetaLengthMismatch {
                        image_meta_len,
                        meta_len,
                        ..
                    } = &e
                    else {
                        unreachable!()
                    };
                    assert_eq!((*image_meta_len, *meta_len), (0, 4), "{name}");
                    let msg = e.to_string();
                    assert!(msg.contains("meta length mismatch"), "{msg}");
                    assert!(msg.contains("built with meta length 0"), "{msg}");
                    assert!(msg.contains("the firmware uses 4"), "{msg}");
                }
                other => panic!("{name}: expected a meta length error, got {other:?}"),
            }
            // ... and read with meta length 0 they hold the right files.
            let meta0 = SpiffsParams { meta_len: 0, ..P };
            let read = read_image(&image, &meta0).unwrap();
            let expected = if name.contains("multi") {
                MULTI_FILES
            } else {
                CONFIG_FILES
            };
            assert_eq!(summary(&read), expected_summary(expected), "{name}");
        }
    }

    #[test]
    fn flash_dump_spiffs_partition_at_0x310000_holds_config_json() {
        let Some(flash) = vector("flash_4mb_huge_app.bin") else {
            return;
        };
        assert_eq!(flash.len(), 4 << 20);
        // ESP-IDF partition table at 0x8000: 32-byte entries starting with 0xAA 0x50.
        let spiffs_entry = flash[0x8000..0x9000]
            .chunks(32)
            .take_while(|e| e[0..2] == [0xAA, 0x50])
            .find(|e| e[2] == 0x01 && e[3] == 0x82)
            .expect("a data/spiffs partition");
        let offset = u32::from_le_bytes(spiffs_entry[4..8].try_into().unwrap()) as usize;
        let size = u32::from_le_bytes(spiffs_entry[8..12].try_into().unwrap()) as usize;
        assert_eq!((offset, size), (0x310000, 0xE0000));
        let files = read_image(&flash[0x310000..0x3F0000], &P).unwrap();
        assert_eq!(summary(&files), expected_summary(CONFIG_FILES));
        // The whole dump, or a wrong slice, is not the filesystem.
        assert!(read_image(&flash, &P).is_err());
        assert!(read_image(&flash[0x300000..0x3E0000], &P).is_err());
        // The coredump partition after it is erased flash.
        assert!(matches!(
            read_image(&flash[0x3F0000..], &P),
            Err(SpiffsError::Erased { .. })
        ));
    }

    // ---------- building, compared with the golden images ----------

    fn check_build_matches(set: &str, order: &[&str], size: usize, golden: &str) {
        let Some(files) = inputs(set, order) else {
            return;
        };
        let Some(reference) = vector(golden) else {
            return;
        };
        let built = build_image(&files, size, &P).unwrap();
        assert_eq!(built.len(), size);
        assert_eq!(
            read_image(&built, &P).unwrap(),
            files,
            "{golden} round trip"
        );
        assert_same_image(&built, &reference, golden);
    }

    /// Byte-for-byte (after normalize_padding) with the reference packer.
    #[test]
    fn build_config_0x20000_matches_config_small_byte_for_byte() {
        check_build_matches("config", &["/config.json"], 0x20000, "config_small.bin");
    }

    /// Byte-for-byte (after normalize_padding) with the reference packer.
    #[test]
    fn build_config_0x160000_matches_config_default_byte_for_byte() {
        check_build_matches("config", &["/config.json"], 0x160000, "config_default.bin");
    }

    /// Byte-for-byte (after normalize_padding) with the reference packer.
    #[test]
    fn build_config_0xe0000_matches_config_huge_app_byte_for_byte() {
        check_build_matches("config", &["/config.json"], 0xE0000, "config_huge_app.bin");
    }

    /// Byte-for-byte with the reference packer (no index pages, so nothing to normalise).
    #[test]
    fn build_empty_0x20000_matches_empty_byte_for_byte() {
        check_build_matches("empty", &[], 0x20000, "empty.bin");
        let built = build_image(&[], 0x20000, &P).unwrap();
        if let Some(reference) = vector("empty.bin") {
            assert_eq!(built, reference);
        }
    }

    /// NOT byte-for-byte: the reference packer writes each file in 256-byte pieces, and every
    /// piece after the first moves the object index header to a new page and marks the old one
    /// deleted (multi.bin holds 41 such deleted headers, flag 0x7e; multi_nor.bin the same
    /// with 0x78, as NOR flash ANDs the bits). A clean builder writes each header once, so its
    /// pages sit elsewhere; the decoded contents are what must agree.
    #[test]
    fn build_multi_0x20000_decodes_like_multi_bin_but_is_not_byte_identical() {
        let Some(files) = inputs("multi", MULTI_ORDER) else {
            return;
        };
        let built = build_image(&files, 0x20000, &P).unwrap();
        let read = read_image(&built, &P).unwrap();
        assert_eq!(read, files, "round trip keeps contents and order");
        assert_eq!(summary(&read), expected_summary(MULTI_FILES));
        for name in ["multi.bin", "multi_nor.bin"] {
            let Some(reference) = vector(name) else {
                return;
            };
            let golden = read_image(&reference, &P).unwrap();
            assert_eq!(sorted(&golden), sorted(&read), "{name} decoded contents");
            let (mut a, mut b) = (built.clone(), reference.clone());
            normalize_padding(&mut a, &P);
            normalize_padding(&mut b, &P);
            assert_ne!(
                a, b,
                "{name}: expected the packer's deleted pages to differ"
            );
            assert_eq!(deleted_lookup_entries(&reference), 41, "{name}");
        }
        assert_eq!(deleted_lookup_entries(&built), 0);
        // The clean layout: notes.txt = header page 1 + data pages 2..=4, then the next file.
        assert_eq!(&built[256..258], &0x8001u16.to_le_bytes());
        assert_eq!(&built[5 * 256..5 * 256 + 2], &0x8002u16.to_le_bytes());
    }

    // ---------- builder details ----------

    #[test]
    fn build_is_deterministic_and_writes_the_reference_header_fields() {
        let file = synthetic_config();
        let a = build_image(std::slice::from_ref(&file), 0x20000, &P).unwrap();
        let b = build_image(std::slice::from_ref(&file), 0x20000, &P).unwrap();
        assert_eq!(a, b);
        // lookup: page 1 = index header of object 1, page 2 = its data
        assert_eq!(&a[0..6], &[0x01, 0x80, 0x01, 0x00, 0xFF, 0xFF]);
        // magic 0x0409 for block 0 of 32, erase count 0
        assert_eq!(&a[252..256], &[0x09, 0x04, 0x00, 0x00]);
        let hdr = &a[256..512];
        assert_eq!(&hdr[0..8], &[0x01, 0x80, 0x00, 0x00, 0xF8, 0, 0, 0]);
        assert_eq!(&hdr[8..12], &(file.data.len() as u32).to_le_bytes());
        assert_eq!(hdr[12], 1);
        assert_eq!(&hdr[13..25], b"/config.json");
        assert!(hdr[25..45].iter().all(|&b| b == 0));
        assert_eq!(&hdr[45..49], &[0xFF; 4]);
        assert_eq!(&hdr[49..51], &[0x02, 0x00]);
        assert!(hdr[51..].iter().all(|&b| b == 0xFF));
        let data = &a[512..768];
        assert_eq!(&data[0..5], &[0x01, 0x00, 0x00, 0x00, 0xFC]);
        assert_eq!(&data[5..5 + file.data.len()], &file.data[..]);
        assert!(data[5 + file.data.len()..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn empty_file_keeps_the_undefined_size_and_reads_back_empty() {
        let files = vec![SpiffsFile {
            path: "/empty".into(),
            data: Vec::new(),
        }];
        let img = build_image(&files, 0x20000, &P).unwrap();
        assert_eq!(&img[256 + 8..256 + 12], &[0xFF; 4]);
        assert_eq!(read_image(&img, &P).unwrap(), files);
    }

    #[test]
    fn a_file_filling_the_partition_uses_further_index_pages_and_round_trips() {
        // 0x20000 = 32 blocks; 30 usable x 15 pages = 450 pages. 446 data pages need the
        // header (103 entries) + 3 index pages (124 entries each): 450 pages exactly.
        let data: Vec<u8> = (0..446 * 251).map(|i| (i * 7 % 251) as u8).collect();
        let files = vec![SpiffsFile {
            path: "/big.bin".into(),
            data,
        }];
        let img = build_image(&files, 0x20000, &P).unwrap();
        assert_eq!(read_image(&img, &P).unwrap(), files);
        // data span 103 is the first one listed by index page 1, which is allocated just
        // before it: the header is page 1, spans 0..=102 pages 2..=104 (skipping lookup pages)
        let page_of_alloc = |n: usize| (n / 15) * 16 + 1 + n % 15;
        let ix1 = page_of_alloc(104);
        assert_eq!(
            &img[ix1 * 256..ix1 * 256 + 5],
            &[0x01, 0x80, 0x01, 0x00, 0xF8]
        );
        let d103 = page_of_alloc(105);
        assert_eq!(
            &img[ix1 * 256 + 8..ix1 * 256 + 10],
            &(d103 as u16).to_le_bytes()
        );
        assert_eq!(
            &img[d103 * 256..d103 * 256 + 5],
            &[0x01, 0x00, 103, 0x00, 0xFC]
        );

        // one byte more needs page 451
        let mut more = files.clone();
        more[0].data.push(0);
        let err = build_image(&more, 0x20000, &P).unwrap_err();
        assert!(matches!(
            err,
            SpiffsError::NoSpace {
                needed_pages: 451,
                capacity_pages: 450,
                ..
            }
        ));
        assert!(
            err.to_string()
                .starts_with("files need 115456 bytes but the partition holds 115200"),
            "{err}"
        );
    }

    #[test]
    fn builder_refuses_bad_paths_duplicates_and_sizes() {
        let file = |path: &str| SpiffsFile {
            path: path.into(),
            data: b"x".to_vec(),
        };
        let long32 = format!("/{}", "a".repeat(31));
        let err = build_image(&[file(&long32)], 0x20000, &P).unwrap_err();
        assert!(matches!(
            err,
            SpiffsError::PathTooLong {
                len: 32,
                max: 31,
                ..
            }
        ));
        assert!(
            err.to_string().starts_with(&format!(
                "path {long32} is 32 bytes; the firmware allows at most 31"
            )),
            "{err}"
        );
        let long31 = format!("/{}", "a".repeat(30));
        let img = build_image(&[file(&long31)], 0x20000, &P).unwrap();
        assert_eq!(read_image(&img, &P).unwrap()[0].path, long31);

        for bad in ["config.json", "/", "", "/a\0b"] {
            let err = build_image(&[file(bad)], 0x20000, &P).unwrap_err();
            assert!(
                matches!(err, SpiffsError::InvalidPath { .. }),
                "{bad:?}: {err}"
            );
        }
        let err = build_image(&[file("/a"), file("/b"), file("/a")], 0x20000, &P).unwrap_err();
        assert!(matches!(err, SpiffsError::DuplicatePath { ref path } if path == "/a"));
        assert!(err.to_string().contains("/a is given more than once"));

        let err = build_image(&[], 0x20001, &P).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image size 131073 is not a multiple of the 4096-byte block size: is this a whole \
             SPIFFS partition?"
        );
        assert!(matches!(
            build_image(&[], 2 * 4096, &P),
            Err(SpiffsError::TooFewBlocks { blocks: 2, .. })
        ));
        assert!(matches!(
            build_image(&[], 16 << 20, &P),
            Err(SpiffsError::TooManyPages { .. })
        ));
        let bad_params = SpiffsParams {
            page_size: 300,
            ..P
        };
        assert!(matches!(
            build_image(&[], 0x20000, &bad_params),
            Err(SpiffsError::InvalidParams { .. })
        ));
    }

    // ---------- reader rejections ----------

    #[test]
    fn wrong_image_sizes_are_rejected_naming_the_size() {
        let img = build_image(&[synthetic_config()], 0x20000, &P).unwrap();

        let mut odd = img.clone();
        odd.push(0xFF);
        let err = read_image(&odd, &P).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image size 131073 is not a multiple of the 4096-byte block size: is this a whole \
             SPIFFS partition?"
        );

        let mut padded = img.clone();
        padded.resize(0x30000, 0xFF);
        let err = read_image(&padded, &P).unwrap_err();
        assert!(
            matches!(
                err,
                SpiffsError::SizeMismatch {
                    size: 0x30000,
                    built_for: 0x20000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("mkspiffs -s 196608"), "{err}");

        let err = read_image(&img[..0x10000], &P).unwrap_err();
        assert!(
            matches!(
                err,
                SpiffsError::SizeMismatch {
                    size: 0x10000,
                    built_for: 0x20000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(matches!(
            read_image(&img[..8192], &P),
            Err(SpiffsError::TooFewBlocks { .. })
        ));
        assert!(matches!(
            read_image(&[], &P),
            Err(SpiffsError::TooFewBlocks { .. })
        ));
    }

    #[test]
    fn images_with_other_page_or_block_sizes_are_rejected_naming_them() {
        let files = vec![synthetic_config()];
        for (page_size, block_size, expect) in [
            (512, 4096, "page 512 / block 4096"),
            (256, 8192, "page 256 / block 8192"),
            (128, 4096, "page 128 / block 4096"),
            (256, 65536, "page 256 / block 65536"),
        ] {
            let other = SpiffsParams {
                page_size,
                block_size,
                ..P
            };
            let img = build_image(&files, 0x40000, &other).unwrap();
            assert_eq!(
                read_image(&img, &other).unwrap(),
                files,
                "{expect} round trip"
            );
            let err = read_image(&img, &P).unwrap_err();
            match &err {
                SpiffsError::GeometryMismatch { found, .. } => assert_eq!(found, expect),
                other => panic!("{expect}: expected a geometry error, got {other}"),
            }
            assert!(err.to_string().contains("mkspiffs -p 256 -b 4096"), "{err}");
        }
    }

    #[test]
    fn images_built_with_meta_length_0_are_rejected_not_misread() {
        let meta0 = SpiffsParams { meta_len: 0, ..P };
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 253) as u8).collect();
        for files in [
            vec![synthetic_config()],
            vec![SpiffsFile {
                path: "/big".into(),
                data,
            }],
        ] {
            let img = build_image(&files, 0x20000, &meta0).unwrap();
            assert_eq!(read_image(&img, &meta0).unwrap(), files);
            let err = read_image(&img, &P).unwrap_err();
            assert!(
                matches!(
                    err,
                    SpiffsError::MetaLengthMismatch {
                        image_meta_len: 0,
                        meta_len: 4,
                        ..
                    }
                ),
                "{err}"
            );
            // and the other way round
            let img4 = build_image(&files, 0x20000, &P).unwrap();
            assert!(matches!(
                read_image(&img4, &meta0),
                Err(SpiffsError::MetaLengthMismatch {
                    image_meta_len: 4,
                    meta_len: 0,
                    ..
                })
            ));
        }
    }

    #[test]
    fn erased_and_zeroed_regions_are_not_filesystems() {
        let err = read_image(&vec![0xFF; 0x20000], &P).unwrap_err();
        assert!(matches!(err, SpiffsError::Erased { size: 0x20000 }));
        assert!(
            err.to_string().starts_with("not a SPIFFS filesystem"),
            "{err}"
        );
        assert!(err.to_string().contains("erased/blank"), "{err}");
        let err = read_image(&vec![0x00; 0x20000], &P).unwrap_err();
        assert!(matches!(err, SpiffsError::Zeroed { size: 0x20000 }));
        assert!(
            err.to_string().starts_with("not a SPIFFS filesystem"),
            "{err}"
        );
        // blank regions of odd sizes too
        assert!(matches!(
            read_image(&[0xFF; 100], &P),
            Err(SpiffsError::Erased { .. })
        ));
        // a zeroed block inside a good image: bad magic, the block named
        let mut img = build_image(&[synthetic_config()], 0x20000, &P).unwrap();
        img[5 * 4096..6 * 4096].fill(0);
        let err = read_image(&img, &P).unwrap_err();
        assert!(
            matches!(err, SpiffsError::BadMagic { block: 5, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("all 0x00"), "{err}");
    }

    #[test]
    fn one_erased_block_is_tolerated_like_an_interrupted_erase_but_two_are_not() {
        let mut img = build_image(&[synthetic_config()], 0x20000, &P).unwrap();
        img[7 * 4096..8 * 4096].fill(0xFF);
        assert_eq!(read_image(&img, &P).unwrap(), vec![synthetic_config()]);
        img[9 * 4096..10 * 4096].fill(0xFF);
        let err = read_image(&img, &P).unwrap_err();
        assert!(
            matches!(err, SpiffsError::BadMagic { block: 7, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("erased"), "{err}");
    }

    #[test]
    fn a_corrupt_block_magic_is_rejected_with_the_documented_message() {
        let mut img = build_image(&[synthetic_config()], 0x20000, &P).unwrap();
        img[3 * 4096 + 252] ^= 0x10;
        let err = read_image(&img, &P).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "block 3 magic 0x0424 does not match page 256 / block 4096 / size 131072"
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(
                "the image was built with other SPIFFS parameters (or for a partition of \
                 another size)"
            ),
            "{err}"
        );
    }

    #[test]
    fn normalize_padding_touches_only_index_page_padding() {
        let Some(reference) = vector("multi.bin") else {
            return;
        };
        let mut norm = reference.clone();
        normalize_padding(&mut norm, &P);
        let changed: Vec<usize> = (0..norm.len())
            .filter(|&i| norm[i] != reference[i])
            .collect();
        assert!(!changed.is_empty());
        for i in changed {
            let page = &reference[i / 256 * 256..][..256];
            assert!((5..8).contains(&(i % 256)), "byte 0x{i:x}");
            assert_ne!(page[1] & 0x80, 0, "byte 0x{i:x} is not in an index page");
        }
        assert_eq!(
            read_image(&norm, &P).unwrap(),
            read_image(&reference, &P).unwrap()
        );
        // harmless on odd input
        normalize_padding(&mut [0u8; 10], &P);
        normalize_padding(&mut norm, &SpiffsParams { page_size: 0, ..P });
    }

    // ---------- corruption ----------

    /// SPIFFS has no checksums: a flipped byte of file content, of the size field or of the name
    /// cannot be told from a real one by any reader (the firmware would read the same). Every
    /// other byte is structure, and a flip there must give an error or the original files.
    #[test]
    fn every_bit_flip_in_a_small_image_is_an_error_or_reads_as_it_must() {
        let file = synthetic_config();
        let len = file.data.len();
        let orig = build_image(std::slice::from_ref(&file), 3 * 4096, &P).unwrap();
        let content = 512 + 5..512 + 5 + len;
        let size_field = 256 + 8..256 + 12;
        let name_field = 256 + 13..256 + 45;
        // block 0 entirely, and the lookup pages of blocks 1 and 2
        let positions = (0..4096).chain(4096..4096 + 256).chain(8192..8192 + 256);
        for pos in positions {
            for x in [0x01u8, 0x02, 0x04, 0x40, 0x80, 0xFF] {
                let mut img = orig.clone();
                img[pos] ^= x;
                let res = read_image(&img, &P);
                let ctx = format!("flip 0x{x:02x} at 0x{pos:x}: {res:?}");
                if content.contains(&pos) {
                    let mut expected = file.clone();
                    expected.data[pos - content.start] ^= x;
                    assert_eq!(res.unwrap(), vec![expected], "{ctx}");
                } else if size_field.contains(&pos) {
                    if let Ok(files) = res {
                        assert_eq!(files.len(), 1, "{ctx}");
                        let n = files[0].data.len();
                        assert_eq!(files[0].data[..], img[517..517 + n], "{ctx}");
                    }
                } else if name_field.contains(&pos) {
                    if let Ok(files) = res {
                        assert_eq!(files.len(), 1, "{ctx}");
                        assert_eq!(files[0].data, file.data, "{ctx}");
                    }
                } else if let Ok(files) = res {
                    assert_eq!(files, vec![file.clone()], "{ctx}");
                }
            }
        }
    }

    /// A small deterministic generator for sampling positions.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn byte_flips_in_the_packer_images_never_misread_more_than_the_touched_file() {
        for name in ["multi.bin", "multi_nor.bin", "config_small.bin"] {
            let Some(reference) = vector(name) else {
                return;
            };
            let original = sorted(&read_image(&reference, &P).unwrap());
            // the used blocks, densely sampled
            let used = 8 * 4096;
            let mut state = 0x5EED;
            for _ in 0..1500 {
                let pos = lcg(&mut state) as usize % used;
                let x = (lcg(&mut state) % 255 + 1) as u8;
                let mut img = reference.clone();
                img[pos] ^= x;
                if let Ok(files) = read_image(&img, &P) {
                    let files = sorted(&files);
                    assert_eq!(files.len(), original.len(), "{name} flip at 0x{pos:x}");
                    let differing = original.iter().filter(|f| !files.contains(f)).count();
                    assert!(differing <= 1, "{name} flip 0x{x:02x} at 0x{pos:x}");
                }
            }
        }
    }

    #[test]
    fn many_random_corruptions_of_a_packer_image_never_panic() {
        let Some(reference) = vector("multi.bin") else {
            return;
        };
        let mut state = 42;
        for _ in 0..400 {
            let mut img = reference.clone();
            for _ in 0..(lcg(&mut state) % 64 + 1) {
                let pos = lcg(&mut state) as usize % (8 * 4096);
                img[pos] = lcg(&mut state) as u8;
            }
            let _ = read_image(&img, &P);
        }
    }

    // ---------- properties ----------

    fn file_set() -> impl Strategy<Value = Vec<SpiffsFile>> {
        let data = prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..600),
            3 => prop::collection::vec(any::<u8>(), 0..5000),
            1 => prop::collection::vec(any::<u8>(), 25_000..32_000),
        ];
        prop::collection::btree_map("/[a-zA-Z0-9_.-]{1,30}", data, 0..7).prop_map(|m| {
            m.into_iter()
                .map(|(path, data)| SpiffsFile { path, data })
                .collect()
        })
    }

    /// Magic values in every block, so random content gets past the magic check.
    fn stamp_magics(img: &mut [u8]) {
        let blocks = img.len() / 4096;
        for b in 0..blocks {
            let m = magic_value(256, blocks, b).to_le_bytes();
            img[b * 4096 + 252..b * 4096 + 254].copy_from_slice(&m);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_of_any_size_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..20_000)) {
            let _ = read_image(&bytes, &P);
        }

        #[test]
        fn arbitrary_whole_blocks_never_panic(
            blocks in 3usize..9,
            seed in prop::collection::vec(any::<u8>(), 4096),
            fill in prop_oneof![Just(None), Just(Some(0xFFu8)), Just(Some(0u8))],
        ) {
            let mut img: Vec<u8> = seed.iter().cycle().take(blocks * 4096).copied().collect();
            if let Some(f) = fill {
                img[..blocks * 2048].fill(f);
            }
            let _ = read_image(&img, &P);
            stamp_magics(&mut img);
            let _ = read_image(&img, &P);
        }

        #[test]
        fn random_lookup_tables_and_headers_never_panic(
            blocks in 3usize..6,
            words in prop::collection::vec((any::<u16>(), 0u16..100, any::<u8>()), 64),
        ) {
            // pages made of plausible headers and small page numbers: exercises the index walk
            let mut img = vec![0xFFu8; blocks * 4096];
            let mut w = words.iter().cycle();
            for chunk in img.chunks_mut(16) {
                let (id, n, f) = *w.next().unwrap();
                chunk[0..2].copy_from_slice(&(id & 0x8003).to_le_bytes());
                chunk[2..4].copy_from_slice(&(n % 4).to_le_bytes());
                chunk[4] = f & 0xFE;
                chunk[5..7].copy_from_slice(&n.to_le_bytes());
            }
            stamp_magics(&mut img);
            let _ = read_image(&img, &P);
            let _ = read_image(&img, &SpiffsParams { meta_len: 0, ..P });
        }

        #[test]
        fn arbitrary_params_never_panic(
            page_size in prop_oneof![0usize..5000, Just(64), Just(128), Just(256), Just(1024)],
            block_size in prop_oneof![0usize..200_000, Just(4096), Just(65536), Just(131072)],
            obj_name_len in prop_oneof![0usize..300, Just(32)],
            meta_len in prop_oneof![0usize..300, Just(4)],
            seed in prop::collection::vec(any::<u8>(), 1..512),
        ) {
            let params = SpiffsParams { page_size, block_size, obj_name_len, meta_len };
            let mut img: Vec<u8> = seed.iter().cycle().take(0x20000).copied().collect();
            let _ = read_image(&img, &params);
            normalize_padding(&mut img, &params);
            let files = vec![synthetic_config()];
            if let Ok(built) = build_image(&files, 0x20000, &params) {
                prop_assert_eq!(read_image(&built, &params).unwrap(), files);
            }
        }

        #[test]
        fn mutated_built_images_never_panic(
            files in file_set(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..40),
        ) {
            if let Ok(mut img) = build_image(&files, 0x20000, &P) {
                for (pos, value) in edits {
                    let len = img.len();
                    img[pos % len] = value;
                }
                let _ = read_image(&img, &P);
            }
        }

        #[test]
        fn random_file_sets_that_fit_round_trip(
            files in file_set(),
            blocks in prop_oneof![Just(3usize), Just(6), Just(32)],
        ) {
            let size = blocks * 4096;
            let pages: usize = files
                .iter()
                .map(|f| {
                    let n = f.data.len().div_ceil(251);
                    1 + n + n.saturating_sub(103).div_ceil(124)
                })
                .sum();
            let capacity = (blocks - 2) * 15;
            match build_image(&files, size, &P) {
                Ok(img) => {
                    prop_assert!(pages <= capacity);
                    prop_assert_eq!(img.len(), size);
                    prop_assert_eq!(read_image(&img, &P).unwrap(), files);
                }
                Err(SpiffsError::NoSpace { needed_pages, capacity_pages, .. }) => {
                    prop_assert!(pages > capacity);
                    prop_assert_eq!((needed_pages, capacity_pages), (pages, capacity));
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }
    }
}
