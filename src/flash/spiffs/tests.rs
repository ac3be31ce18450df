//! Round trips, the reference vectors and damaged images.
//!
//! Golden vectors come from the reference implementation (see
//! `shared/spiffs-vectors/MANIFEST.md`); tests that need them skip with a message when the
//! folder is absent. SHA-256 is computed by a small local implementation so the tests need
//! no extra crate.

use super::layout::*;
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
        err.to_string()
            .starts_with("block 3 magic 0x0424 does not match page 256 / block 4096 / size 131072"),
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
