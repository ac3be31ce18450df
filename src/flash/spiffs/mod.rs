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

mod builder;
mod layout;
mod reader;
#[cfg(test)]
mod tests;

pub use builder::{build_image, normalize_padding};
pub use reader::read_image;

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
