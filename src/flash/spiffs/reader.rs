//! Reading an image: every live file, checked page by page; never panics.

use std::collections::{HashMap, HashSet};

use super::layout::*;
use super::{SpiffsError, SpiffsFile, SpiffsParams};

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
