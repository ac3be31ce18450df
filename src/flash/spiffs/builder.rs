//! Building an image the way the reference packer writes it, and normalizing the padding bytes
//! the reference leaves uninitialised.

use std::collections::HashSet;

use super::layout::*;
use super::{SpiffsError, SpiffsFile, SpiffsParams};

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
