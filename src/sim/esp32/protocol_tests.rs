//! The loader state machine driven directly, request by request, as esptool 5.6.0 sends
//! them (`loader.py`): no pty, no threads.

use std::io::Write;
use std::time::{Duration, Instant};

use flate2::write::ZlibEncoder;
use md5::{Digest, Md5};

use super::chips::{s3_rtc, ResetReason, SimChip};
use super::rom::{Ctx, Exit, Loader, Reply, Watchdogs};
use crate::flash::command::{checksum, Response};

const MAC: [u8; 6] = [0x24, 0xD7, 0xEB, 0x10, 0x20, 0x07];
const STUB_TEXT: u32 = 0x4008_0000;

/// One chip's loader with its flash.
pub(super) struct Bench {
    pub loader: Loader,
    pub flash: Vec<u8>,
    pub force: bool,
    pub chip: SimChip,
    pub now: Instant,
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn packet(op: u8, data: &[u8], chk: u32) -> Vec<u8> {
    let mut p = vec![0, op];
    p.extend_from_slice(&(data.len() as u16).to_le_bytes());
    p.extend_from_slice(&chk.to_le_bytes());
    p.extend_from_slice(data);
    p
}

impl Bench {
    pub fn new(chip: SimChip) -> Self {
        Self {
            loader: Loader::new(chip, Watchdogs::stopped()),
            flash: (0..4usize << 20).map(|i| (i * 7 % 251) as u8).collect(),
            force: false,
            chip,
            now: Instant::now(),
        }
    }

    pub fn frame(&mut self, f: &[u8]) -> Reply {
        let mut ctx = Ctx {
            chip: self.chip,
            mac: MAC,
            flash: &mut self.flash,
            hook: None,
            force_download: &mut self.force,
            now: self.now,
        };
        self.loader.handle(f, &mut ctx)
    }

    pub fn raw(&mut self, op: u8, data: &[u8], chk: u32) -> Reply {
        self.frame(&packet(op, data, chk))
    }

    /// Sends and decodes the first reply frame with the status length the loader answering
    /// it uses.
    fn cmd(&mut self, op: u8, data: &[u8], chk: u32) -> (Response, Reply) {
        let status_len = if self.loader.stub { 2 } else { 4 };
        let reply = self.raw(op, data, chk);
        let first = reply.frames.first().expect("a reply");
        assert_eq!(
            first.len(),
            8 + usize::from(u16::from_le_bytes([first[2], first[3]]))
        );
        let resp = Response::decode(first, status_len).expect("a response");
        assert_eq!(resp.op, op);
        (resp, reply)
    }

    fn ok(&mut self, op: u8, data: &[u8], chk: u32) -> Response {
        let (r, _) = self.cmd(op, data, chk);
        assert_eq!((r.status, r.error), (0, 0), "op {op:#x}");
        r
    }

    fn status(&mut self, op: u8, data: &[u8], chk: u32) -> (u8, u8) {
        let (r, _) = self.cmd(op, data, chk);
        (r.status, r.error)
    }

    pub fn sync(&mut self) {
        let mut d = vec![0x07, 0x07, 0x12, 0x20];
        d.extend_from_slice(&[0x55; 32]);
        self.raw(0x08, &d, 0);
    }

    pub fn attach(&mut self) {
        // esptool `flash_spi_attach`: the ROM takes a second "is legacy" word, the stub not.
        let n = if self.loader.stub { 4 } else { 8 };
        self.ok(0x0D, &vec![0; n], 0);
    }

    /// esptool `run_stub`: MEM_BEGIN, MEM_DATA blocks, MEM_END with the entry point.
    pub fn upload_stub(&mut self) -> Reply {
        let text = vec![0x13u8; 0x1800 + 0x100];
        self.ok(0x05, &words(&[text.len() as u32, 2, 0x1800, STUB_TEXT]), 0);
        for (seq, block) in text.chunks(0x1800).enumerate() {
            let mut d = words(&[block.len() as u32, seq as u32, 0, 0]);
            d.extend_from_slice(block);
            self.ok(0x07, &d, u32::from(checksum(block)));
        }
        self.raw(0x06, &words(&[0, STUB_TEXT + 0x40]), 0)
    }

    fn md5(&mut self, offset: u32, size: u32) -> Vec<u8> {
        self.ok(0x13, &words(&[offset, size, 0, 0]), 0).data
    }
}

fn data_packet(seq: u32, block: &[u8]) -> (Vec<u8>, u32) {
    let mut d = words(&[block.len() as u32, seq, 0, 0]);
    d.extend_from_slice(block);
    (d, u32::from(checksum(block)))
}

#[test]
fn esp32_rom_syncs_eight_times_and_lacks_security_info() {
    let mut b = Bench::new(SimChip::Esp32);
    // Before SYNC the ROM is autobauding: silence.
    assert!(b.raw(0x0A, &words(&[0x4000_1000]), 0).frames.is_empty());
    let mut d = vec![0x07, 0x07, 0x12, 0x20];
    d.extend_from_slice(&[0x55; 32]);
    let reply = b.raw(0x08, &d, 0);
    assert_eq!(reply.frames.len(), 8);
    for f in &reply.frames {
        // A real ESP32: 01 08 04 00 07 07 12 20 00 00 00 00.
        assert_eq!(f, &[1, 8, 4, 0, 0x07, 0x07, 0x12, 0x20, 0, 0, 0, 0]);
    }
    // GET_SECURITY_INFO: status 1, "received message is invalid"; esptool falls back to
    // the magic register.
    assert_eq!(b.status(0x14, &[], 0), (1, 0x05));
    assert_eq!(b.ok(0x0A, &words(&[0x4000_1000]), 0).value, 0x00F0_1D83);
    // Stub-only commands are unknown to the ROM.
    assert_eq!(b.status(0xD2, &words(&[0, 16, 0x1000, 64]), 0), (1, 0x05));
}

#[test]
fn s3_rom_answers_security_info_and_wants_the_encryption_word() {
    let mut b = Bench::new(SimChip::Esp32S3);
    b.sync();
    let info = b.ok(0x14, &[], 0).data;
    assert_eq!(info.len(), 20);
    assert_eq!(
        u32::from_le_bytes([info[12], info[13], info[14], info[15]]),
        9
    );
    b.attach();
    // A 4-word FLASH_BEGIN (our old loader's) is refused; esptool sends 5.
    assert_eq!(
        b.status(0x02, &words(&[0x400, 1, 0x400, 0x1000]), 0),
        (1, 0x05)
    );
    b.ok(0x02, &words(&[0x400, 1, 0x400, 0x1000, 0]), 0);
    let block = vec![0xA5u8; 0x400];
    let (d, chk) = data_packet(0, &block);
    b.ok(0x03, &d, chk);
    assert_eq!(&b.flash[0x1000..0x1400], &block[..]);
    // The rest of the erased sector is 0xFF.
    assert!(b.flash[0x1400..0x2000].iter().all(|&x| x == 0xFF));
    let md5 = b.md5(0x1000, 0x400);
    assert_eq!(md5, super::rom::hex(&Md5::digest(&block)).into_bytes());
}

#[test]
fn esp32_rom_refuses_the_five_word_begin_and_checks_each_block() {
    let mut b = Bench::new(SimChip::Esp32);
    b.sync();
    assert_eq!(
        b.status(0x02, &words(&[0x800, 2, 0x400, 0]), 0),
        (1, 0x06),
        "not attached"
    );
    b.attach();
    assert_eq!(
        b.status(0x02, &words(&[0x800, 2, 0x400, 0, 0]), 0),
        (1, 0x05)
    );
    b.ok(0x02, &words(&[0x800, 2, 0x400, 0]), 0);
    let block = vec![0x11u8; 0x400];
    let (d, chk) = data_packet(0, &block);
    assert_eq!(b.status(0x03, &d, chk ^ 1), (1, 0x07), "bad checksum");
    let (d1, chk1) = data_packet(1, &block);
    assert_eq!(b.status(0x03, &d1, chk1), (1, 0x06), "out of sequence");
    b.ok(0x03, &d, chk);
    b.ok(0x03, &d1, chk1);
    assert!(b.flash[..0x800].iter().all(|&x| x == 0x11));
}

#[test]
fn rom_inflates_compressed_writes_and_answers_md5_in_hex() {
    for chip in [SimChip::Esp32, SimChip::Esp32S3] {
        let mut b = Bench::new(chip);
        b.sync();
        b.attach();
        let image: Vec<u8> = (0..0x3000u32).map(|i| (i % 13) as u8).collect();
        let mut enc = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&image).unwrap();
        let z = enc.finish().unwrap();
        // esptool `flash_defl_begin` for the ROM: erase size rounded up to whole blocks.
        let blocks = z.len().div_ceil(0x400) as u32;
        let mut begin = vec![0x3000, blocks, 0x400, 0x2_0000];
        if chip == SimChip::Esp32S3 {
            begin.push(0);
        }
        b.ok(0x10, &words(&begin), 0);
        for (seq, block) in z.chunks(0x400).enumerate() {
            let (d, chk) = data_packet(seq as u32, block);
            b.ok(0x11, &d, chk);
        }
        assert_eq!(&b.flash[0x2_0000..0x2_3000], &image[..]);
        let md5 = b.md5(0x2_0000, 0x3000);
        assert_eq!(md5.len(), 32);
        assert_eq!(md5, super::rom::hex(&Md5::digest(&image)).into_bytes());
        // Garbage in the stream is a deflate error.
        b.ok(0x10, &words(&begin), 0);
        let (d, chk) = data_packet(0, &[0x78, 0x9C, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(b.status(0x11, &d, chk), (1, 0x0B));
    }
}

#[test]
fn rom_reads_64_bytes_at_a_time() {
    let mut b = Bench::new(SimChip::Esp32);
    b.sync();
    assert_eq!(
        b.status(0x0E, &words(&[0, 64]), 0),
        (1, 0x09),
        "not attached"
    );
    b.attach();
    let r = b.ok(0x0E, &words(&[0x100, 10]), 0);
    assert_eq!(r.data.len(), 64);
    assert_eq!(&r.data[..10], &b.flash[0x100..0x10A]);
    assert_eq!(b.status(0x0E, &words(&[0, 65]), 0), (1, 0x0A));
}

#[test]
fn flash_end_leaves_the_rom_either_way() {
    let mut b = Bench::new(SimChip::Esp32);
    b.sync();
    let r = b.raw(0x04, &words(&[1]), 0);
    assert_eq!(r.exit, Exit::RunUserCode);
    assert_eq!(r.frames.len(), 1, "answered before leaving");
    let r = b.raw(0x04, &words(&[0]), 0);
    assert_eq!(r.exit, Exit::Reboot);
}

#[test]
fn stub_starts_after_mem_end_and_changes_the_protocol() {
    for chip in [SimChip::Esp32, SimChip::Esp32S3] {
        let mut b = Bench::new(chip);
        b.sync();
        b.attach();
        let reply = b.upload_stub();
        assert_eq!(reply.exit, Exit::Stay);
        assert_eq!(reply.frames.len(), 2);
        let mem_end = Response::decode(&reply.frames[0], 4).unwrap();
        assert_eq!(
            (mem_end.op, mem_end.status),
            (0x06, 0),
            "the ROM answers MEM_END"
        );
        assert_eq!(reply.frames[1], b"OHAI");
        assert!(b.loader.stub);

        // SYNC: eight answers, value 0 (esptool's `sync_stub_detected`), two status bytes.
        let mut d = vec![0x07, 0x07, 0x12, 0x20];
        d.extend_from_slice(&[0x55; 32]);
        let reply = b.raw(0x08, &d, 0);
        assert_eq!(reply.frames.len(), 8);
        assert!(reply
            .frames
            .iter()
            .all(|f| f == &[1, 8, 2, 0, 0, 0, 0, 0, 0, 0]));

        b.attach();
        assert_eq!(b.md5(0, 0x1000), Md5::digest(&b.flash[..0x1000]).to_vec());
        assert_eq!(
            b.status(0x0E, &words(&[0, 64]), 0),
            (0xC3, 0),
            "no READ_FLASH_SLOW"
        );
        let sec = b.cmd(0x14, &[], 0).0;
        match chip {
            SimChip::Esp32 => assert_eq!((sec.status, sec.error), (0xFF, 0)),
            SimChip::Esp32S3 => assert_eq!(sec.data.len(), 20),
        }

        // FLASH_END outside a write: not in flash mode. A 16 KiB block write, then FLASH_END(1)
        // (esptool's `flash_finish(reboot=False)`): the stub stays.
        assert_eq!(b.status(0x04, &words(&[1]), 0), (0xC6, 0));
        let image = vec![0x42u8; 0x5000];
        b.ok(0x02, &words(&[0x5000, 2, 0x4000, 0x10_0000, 0]), 0);
        assert_eq!(
            b.status(0x04, &words(&[1]), 0),
            (0xC0, 0),
            "data outstanding"
        );
        for (seq, block) in image.chunks(0x4000).enumerate() {
            let mut block = block.to_vec();
            block.resize(0x4000, 0xFF); // esptool pads the last block
            let (d, chk) = data_packet(seq as u32, &block);
            b.ok(0x03, &d, chk);
        }
        let r = b.raw(0x04, &words(&[1]), 0);
        assert_eq!(r.exit, Exit::Stay);
        assert!(b.loader.stub);
        assert_eq!(&b.flash[0x10_0000..0x10_5000], &image[..]);
        // Only the announced size is written: the padding is not, and the next sector is
        // neither erased nor written.
        assert_eq!(b.flash[0x10_5000], (0x10_5000usize * 7 % 251) as u8);
    }
}

#[test]
fn stub_streams_read_flash_with_acknowledgements_and_a_final_md5() {
    let mut b = Bench::new(SimChip::Esp32);
    b.sync();
    b.attach();
    b.upload_stub();
    b.attach();
    let (resp, reply) = b.cmd(0xD2, &words(&[0x3000, 0x2800, 0x1000, 64]), 0);
    assert_eq!(resp.status, 0);
    assert_eq!(reply.frames.len(), 2, "the answer and the first packet");
    let mut got = reply.frames[1].clone();
    while got.len() < 0x2800 {
        let r = b.frame(&(got.len() as u32).to_le_bytes());
        assert_eq!(r.frames.len(), 1, "one packet per acknowledgement");
        got.extend_from_slice(&r.frames[0]);
    }
    let last = b.frame(&(got.len() as u32).to_le_bytes());
    assert_eq!(got, b.flash[0x3000..0x5800].to_vec());
    assert_eq!(last.frames, vec![Md5::digest(&got).to_vec()]);
    // Then back to commands.
    assert_eq!(b.ok(0x0A, &words(&[0x4000_1000]), 0).value, 0x00F0_1D83);
    assert_eq!(b.status(0xD2, &words(&[0, 16, 0x2000, 64]), 0), (0xC0, 0));
}

#[test]
fn stub_inflates_and_erases_regions() {
    let mut b = Bench::new(SimChip::Esp32S3);
    b.sync();
    b.attach();
    b.upload_stub();
    b.attach();
    let image: Vec<u8> = (0..0x9000u32).map(|i| (i / 97) as u8).collect();
    let mut enc = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&image).unwrap();
    let z = enc.finish().unwrap();
    let blocks = z.len().div_ceil(0x4000) as u32;
    b.ok(0x10, &words(&[0x9000, blocks, 0x4000, 0x4_0000, 0]), 0);
    for (seq, block) in z.chunks(0x4000).enumerate() {
        let (d, chk) = data_packet(seq as u32, block);
        b.ok(0x11, &d, chk);
    }
    b.ok(0x12, &words(&[1]), 0);
    assert_eq!(&b.flash[0x4_0000..0x4_9000], &image[..]);
    assert_eq!(b.status(0xD1, &words(&[0x4_0100, 0x1000]), 0), (0xC0, 0));
    b.ok(0xD1, &words(&[0x4_0000, 0x1000]), 0);
    assert!(b.flash[0x4_0000..0x4_1000].iter().all(|&x| x == 0xFF));
    assert_eq!(b.flash[0x4_1000], image[0x1000]);
}

#[test]
fn mem_end_into_ram_without_code_hangs_the_chip() {
    let mut b = Bench::new(SimChip::Esp32);
    b.sync();
    b.ok(0x05, &words(&[0x100, 1, 0x100, STUB_TEXT]), 0);
    let block = vec![0u8; 0x100];
    let (d, chk) = data_packet(0, &block);
    b.ok(0x07, &d, chk);
    let r = b.raw(0x06, &words(&[0, 0x4010_0000]), 0);
    assert_eq!(r.exit, Exit::Crash);
    assert_eq!(r.frames.len(), 1, "no OHAI");
    assert!(!b.loader.stub);
}

#[test]
fn write_reg_applies_the_mask_and_leaves_efuses_alone() {
    let mut b = Bench::new(SimChip::Esp32);
    b.sync();
    b.ok(0x09, &words(&[0x3FF0_0000, 0xFFFF_FFFF, 0x0000_00F0, 0]), 0);
    assert_eq!(b.ok(0x0A, &words(&[0x3FF0_0000]), 0).value, 0xF0);
    b.ok(0x09, &words(&[0x3FF5_A004, 0, 0xFFFF_FFFF, 0]), 0);
    assert_eq!(
        b.ok(0x0A, &words(&[0x3FF5_A004]), 0).value,
        u32::from_be_bytes([MAC[2], MAC[3], MAC[4], MAC[5]])
    );
    assert_eq!(b.loader.write_regs.len(), 2);
}

/// esptool `ESP32S3ROM.disable_watchdogs`, register write for register write.
fn disable_watchdogs(b: &mut Bench) {
    b.ok(
        0x09,
        &words(&[s3_rtc::WDTWPROTECT, s3_rtc::WDT_WKEY, 0xFFFF_FFFF, 0]),
        0,
    );
    b.ok(0x09, &words(&[s3_rtc::WDTCONFIG0, 0, 0xFFFF_FFFF, 0]), 0);
    b.ok(0x09, &words(&[s3_rtc::WDTWPROTECT, 0, 0xFFFF_FFFF, 0]), 0);
    b.ok(
        0x09,
        &words(&[s3_rtc::SWD_WPROTECT, s3_rtc::SWD_WKEY, 0xFFFF_FFFF, 0]),
        0,
    );
    let conf = b.ok(0x0A, &words(&[s3_rtc::SWD_CONF]), 0).value;
    b.ok(
        0x09,
        &words(&[
            s3_rtc::SWD_CONF,
            conf | s3_rtc::SWD_AUTO_FEED_EN,
            0xFFFF_FFFF,
            0,
        ]),
        0,
    );
    b.ok(0x09, &words(&[s3_rtc::SWD_WPROTECT, 0, 0xFFFF_FFFF, 0]), 0);
}

#[test]
fn s3_watchdogs_fire_unless_esptool_disables_them() {
    let t = Duration::from_millis(100);
    let mut b = Bench::new(SimChip::Esp32S3);
    b.loader = Loader::new(SimChip::Esp32S3, Watchdogs::running(b.now, t));
    b.sync();
    assert_eq!(
        b.loader.watchdogs.fired(b.now + 2 * t),
        Some(ResetReason::RtcWatchdog)
    );
    // Writes without the key are ignored.
    b.ok(0x09, &words(&[s3_rtc::WDTCONFIG0, 0, 0xFFFF_FFFF, 0]), 0);
    assert!(b.loader.watchdogs.active());
    // Only the RTC WDT disabled: the super watchdog still fires.
    b.ok(
        0x09,
        &words(&[s3_rtc::WDTWPROTECT, s3_rtc::WDT_WKEY, 0xFFFF_FFFF, 0]),
        0,
    );
    b.ok(0x09, &words(&[s3_rtc::WDTCONFIG0, 0, 0xFFFF_FFFF, 0]), 0);
    assert_eq!(
        b.loader.watchdogs.fired(b.now + 2 * t),
        Some(ResetReason::SuperWatchdog)
    );
    disable_watchdogs(&mut b);
    assert!(!b.loader.watchdogs.active());
    assert_eq!(b.loader.watchdogs.fired(b.now + 100 * t), None);
    // esptool `watchdog_reset`: unlock, 2000 cycles, enable: fires about 15 ms later.
    b.ok(
        0x09,
        &words(&[s3_rtc::WDTWPROTECT, s3_rtc::WDT_WKEY, 0xFFFF_FFFF, 0]),
        0,
    );
    b.ok(0x09, &words(&[s3_rtc::WDTCONFIG1, 2000, 0xFFFF_FFFF, 0]), 0);
    b.ok(
        0x09,
        &words(&[
            s3_rtc::WDTCONFIG0,
            (1 << 31) | (5 << 28) | (1 << 8) | 2,
            0xFFFF_FFFF,
            0,
        ]),
        0,
    );
    assert_eq!(
        b.loader.watchdogs.fired(b.now + t),
        Some(ResetReason::RtcWatchdog)
    );
}

#[test]
fn s3_force_download_boot_is_a_register_bit() {
    let mut b = Bench::new(SimChip::Esp32S3);
    b.force = true;
    b.sync();
    assert_eq!(b.ok(0x0A, &words(&[s3_rtc::OPTION1]), 0).value & 1, 1);
    // esptool `ESP32S3ROM.hard_reset`: write_reg(OPTION1, 0, FORCE_DOWNLOAD_BOOT_MASK).
    b.ok(
        0x09,
        &words(&[s3_rtc::OPTION1, 0, s3_rtc::FORCE_DOWNLOAD_BOOT, 0]),
        0,
    );
    assert!(!b.force);
}

#[test]
fn flash_id_through_the_loader_registers_follows_attach() {
    for chip in [SimChip::Esp32, SimChip::Esp32S3] {
        let mut b = Bench::new(chip);
        b.sync();
        let l = chip.spi();
        let rdid = |b: &mut Bench| {
            b.ok(0x09, &words(&[l.base + l.miso_dlen, 23, 0xFFFF_FFFF, 0]), 0);
            b.ok(
                0x09,
                &words(&[l.base + l.usr, (1 << 31) | (1 << 28), 0xFFFF_FFFF, 0]),
                0,
            );
            b.ok(
                0x09,
                &words(&[l.base + l.usr2, (7 << 28) | 0x9F, 0xFFFF_FFFF, 0]),
                0,
            );
            b.ok(0x09, &words(&[l.base + l.w0, 0, 0xFFFF_FFFF, 0]), 0);
            b.ok(0x09, &words(&[l.base, 1 << 18, 0xFFFF_FFFF, 0]), 0);
            assert_eq!(b.ok(0x0A, &words(&[l.base]), 0).value & (1 << 18), 0);
            b.ok(0x0A, &words(&[l.base + l.w0]), 0).value
        };
        assert_eq!(rdid(&mut b), 0x00FF_FFFF, "before SPI_ATTACH");
        b.attach();
        assert_eq!(rdid(&mut b), 0x0016_40EF);
    }
}

proptest::proptest! {
    #[test]
    fn loader_answers_arbitrary_requests_without_panicking(
        op in proptest::num::u8::ANY,
        words in proptest::collection::vec(proptest::num::u32::ANY, 0..8),
        tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        stub in proptest::bool::ANY,
        s3 in proptest::bool::ANY,
    ) {
        let chip = if s3 { SimChip::Esp32S3 } else { SimChip::Esp32 };
        let mut data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        data.extend_from_slice(&tail);
        let mut b = Bench::new(chip);
        b.sync();
        b.attach();
        if stub {
            b.upload_stub();
        }
        let _ = b.raw(op, &data, 0);
        let begin: Vec<u8> = [0x1000u32, 4, 0x400, 0x1000, 0].iter().flat_map(|w| w.to_le_bytes()).collect();
        let _ = b.raw(0x02, &begin[..if s3 { 20 } else { 16 }], 0);
        let _ = b.raw(0x10, &begin, 0);
        let huge: Vec<u8> = [u32::MAX, u32::MAX, 4, 0].iter().flat_map(|w| w.to_le_bytes()).collect();
        let _ = b.raw(0x02, &huge, 0);
        let _ = b.raw(op, &tail, 0xEF);
        let _ = b.raw(0x11, &data, 0);
        let _ = b.raw(0xD2, &data, 0);
        let _ = b.frame(&tail);
    }
}
