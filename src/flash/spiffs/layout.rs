//! The on-disk layout: constants of the format, the geometry derived from [`SpiffsParams`], page
//! headers, and a read-only view of an image (see the module documentation of `spiffs`).

use super::{SpiffsError, SpiffsParams};

pub(super) const OBJ_ID_FREE: u16 = 0xFFFF;
pub(super) const OBJ_ID_DELETED: u16 = 0x0000;
pub(super) const OBJ_ID_IX_FLAG: u16 = 0x8000;
/// Largest object id usable for a file (0x7FFF | IX would read as a free entry).
pub(super) const MAX_OBJ_ID: u16 = 0x7FFE;

pub(super) const FLAG_USED: u8 = 1 << 0;
pub(super) const FLAG_FINAL: u8 = 1 << 1;
pub(super) const FLAG_INDEX: u8 = 1 << 2;
pub(super) const FLAG_IXDELE: u8 = 1 << 6;
pub(super) const FLAG_DELETED: u8 = 1 << 7;
/// Flags of a finished data page: USED and FINAL cleared.
pub(super) const FLAGS_DATA: u8 = !(FLAG_USED | FLAG_FINAL);
/// Flags of a finished object index page: USED, FINAL and INDEX cleared.
pub(super) const FLAGS_INDEX: u8 = !(FLAG_USED | FLAG_FINAL | FLAG_INDEX);

pub(super) const MAGIC_BASE: u32 = 0x2014_0529;
pub(super) const PAGE_HEADER_LEN: usize = 5;
/// Page header plus alignment padding, as it starts every object index page.
pub(super) const IX_PAGE_HEADER_LEN: usize = 8;
/// Offset of the size field in an object index header; type and name follow.
pub(super) const IX_SIZE_OFFSET: usize = 8;
pub(super) const IX_TYPE_OFFSET: usize = 12;
pub(super) const IX_NAME_OFFSET: usize = 13;
pub(super) const TYPE_FILE: u8 = 1;
pub(super) const UNDEFINED_SIZE: u32 = 0xFFFF_FFFF;
pub(super) const RESERVED_FREE_BLOCKS: usize = 2;
pub(super) const MIN_BLOCKS: usize = 3;
pub(super) const MAX_PAGES: usize = 0xFFFF;

/// Geometry derived from [`SpiffsParams`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub(super) page_size: usize,
    pub(super) block_size: usize,
    pub(super) pages_per_block: usize,
    pub(super) lookup_pages: usize,
    /// Pages of a block that hold data (= lookup entries per block).
    pub(super) lookup_entries: usize,
    pub(super) name_len: usize,
    pub(super) meta_len: usize,
    /// Length of the object index header before its page entries.
    pub(super) hdr_len: usize,
    /// Page entries in an object index header.
    pub(super) hdr_entries: usize,
    /// Page entries in a further object index page.
    pub(super) ix_entries: usize,
    /// Content bytes per data page.
    pub(super) data_len: usize,
}

pub(super) fn lookup_pages_for(page_size: usize, block_size: usize) -> usize {
    ((block_size / page_size) * 2 / page_size).max(1)
}

pub(super) fn magic_value(page_size: usize, blocks: usize, block: usize) -> u16 {
    let count = blocks.wrapping_sub(block) as u32;
    ((MAGIC_BASE ^ page_size as u32 ^ count) & 0xFFFF) as u16
}

impl Layout {
    pub(super) fn new(p: &SpiffsParams) -> Result<Layout, SpiffsError> {
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
    pub(super) fn with_meta_len(&self, meta_len: usize) -> Option<Layout> {
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

    pub(super) fn magic_offset(&self) -> usize {
        self.lookup_pages * self.page_size - 4
    }

    pub(super) fn erase_count_offset(&self) -> usize {
        self.lookup_pages * self.page_size - 2
    }

    /// Page index of lookup entry `entry` of block `block`.
    pub(super) fn pix(&self, block: usize, entry: usize) -> usize {
        block * self.pages_per_block + self.lookup_pages + entry
    }

    /// Byte offset of the lookup entry describing data page `pix`.
    pub(super) fn lookup_offset(&self, pix: usize) -> usize {
        let block = pix / self.pages_per_block;
        let entry = (pix % self.pages_per_block).saturating_sub(self.lookup_pages);
        block * self.block_size + entry * 2
    }

    pub(super) fn is_lookup_page(&self, pix: usize) -> bool {
        pix % self.pages_per_block < self.lookup_pages
    }

    /// Span index of the object index page that lists data span `span`.
    pub(super) fn objix_span(&self, span: usize) -> usize {
        if span < self.hdr_entries {
            0
        } else {
            1 + (span - self.hdr_entries) / self.ix_entries
        }
    }

    /// Entry number of data span `span` inside its object index page.
    pub(super) fn objix_entry(&self, span: usize) -> usize {
        if span < self.hdr_entries {
            span
        } else {
            (span - self.hdr_entries) % self.ix_entries
        }
    }

    /// Pages a file of `len` bytes occupies: header, data pages, further index pages.
    pub(super) fn pages_for(&self, len: usize) -> usize {
        let data = len.div_ceil(self.data_len);
        let extra_ix = data
            .saturating_sub(self.hdr_entries)
            .div_ceil(self.ix_entries);
        1 + data + extra_ix
    }

    /// Checks an image (or requested) size; returns the block count.
    pub(super) fn blocks_for(&self, size: usize) -> Result<usize, SpiffsError> {
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

pub(super) fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    let bytes = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

pub(super) fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let bytes = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

pub(super) fn all_equal(buf: &[u8], value: u8) -> bool {
    buf.iter().all(|&b| b == value)
}

pub(super) fn truncated() -> SpiffsError {
    SpiffsError::Corrupt {
        problem: "the image ends inside a page".into(),
    }
}

/// Page header fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct PageHeader {
    pub(super) obj_id: u16,
    pub(super) span: u16,
    pub(super) flags: u8,
}

impl PageHeader {
    pub(super) fn parse(page: &[u8]) -> Option<PageHeader> {
        Some(PageHeader {
            obj_id: u16_at(page, 0)?,
            span: u16_at(page, 2)?,
            flags: *page.get(4)?,
        })
    }

    /// Written, finished and not deleted.
    pub(super) fn is_live(&self) -> bool {
        self.flags & (FLAG_USED | FLAG_FINAL | FLAG_DELETED) == FLAG_DELETED
    }
}

/// A read-only view of an image with a fixed layout.
pub(super) struct Image<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) layout: Layout,
    pub(super) blocks: usize,
}

impl Image<'_> {
    pub(super) fn total_pages(&self) -> usize {
        self.blocks * self.layout.pages_per_block
    }

    pub(super) fn page(&self, pix: usize) -> Result<&[u8], SpiffsError> {
        let start = pix
            .checked_mul(self.layout.page_size)
            .ok_or_else(truncated)?;
        let end = start
            .checked_add(self.layout.page_size)
            .ok_or_else(truncated)?;
        self.bytes.get(start..end).ok_or_else(truncated)
    }

    pub(super) fn lookup(&self, pix: usize) -> Result<u16, SpiffsError> {
        u16_at(self.bytes, self.layout.lookup_offset(pix)).ok_or_else(truncated)
    }

    pub(super) fn header(&self, pix: usize) -> Result<PageHeader, SpiffsError> {
        PageHeader::parse(self.page(pix)?).ok_or_else(truncated)
    }

    /// Describes a page that an index wrongly points at.
    pub(super) fn describe(&self, pix: usize) -> String {
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
