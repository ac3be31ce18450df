//! The simulated ESP32 and ESP32-S3 checked against the real esptool (5.6.0): chip-id,
//! read-mac, flash-id, read-flash, write-flash (compressed and not), verify-flash, with the
//! flasher stub and with `--no-stub` (the ROM loader), over the simulator's pseudo-terminal.
//!
//! The chips start in download mode (BOOT held at power-on) and esptool runs with
//! `--before no-reset --after no-reset`: a pseudo-terminal has no DTR/RTS, and in that mode
//! esptool never drives them (`ESPLoader._connect_attempt` skips the reset strategy; pyserial's
//! `serialposix.Serial.open` ignores the EINVAL/ENOTTY its own open-time DTR/RTS update gets). A pty has no USB VID/PID either,
//! so esptool takes it for neither USB-Serial/JTAG nor USB-OTG: on the S3 it does not run
//! `disable_watchdogs` (the simulated watchdogs only run after a USB-Serial/JTAG reset out of
//! firmware, not after a power-on into download mode, so nothing fires here), and it caps ROM
//! RAM blocks at 0x800 (`use_usb_otg_block`), which the simulated ROM takes like any other.
//!
//! esptool is found through `ESPTOOL`, then `target/esptool-venv/bin/esptool` (what
//! `./shepherd.sh test` installs), then `esptool` on PATH. Without it the tests skip, unless
//! `SHEPHERD_REQUIRE_ESPTOOL=1` (CI), where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use md5::{Digest, Md5};
use shepherd::flash::spiffs::SpiffsFile;
use shepherd::sim::esp32::{self, SimChip, SimEsp32, SimEsp32Config};

fn esptool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ESPTOOL") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/esptool-venv/bin/esptool");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("esptool"))
            .find(|p| p.is_file())
    })
}

/// esptool, or None after saying why the test is skipped (a failure when CI requires it).
fn esptool_or_skip() -> Option<PathBuf> {
    let found = esptool();
    if found.is_none() {
        assert!(
            std::env::var("SHEPHERD_REQUIRE_ESPTOOL").as_deref() != Ok("1"),
            "esptool not installed but SHEPHERD_REQUIRE_ESPTOOL=1: run ./shepherd.sh test or \
             pip install esptool==5.6.0"
        );
        eprintln!("skipping: esptool not installed (run ./shepherd.sh test or pip install esptool==5.6.0)");
    }
    found
}

/// A board of `chip` with `size` bytes of flash (a NerdMiner layout in the first 4 MiB),
/// powered on with BOOT held.
fn board(chip: SimChip, seed: u64, size: usize) -> SimEsp32 {
    let files = [SpiffsFile {
        path: "/config.json".into(),
        data: esp32::default_config_json(seed).into_bytes(),
    }];
    let mut flash = esp32::huge_app_flash(&files).unwrap();
    flash.resize(size, 0xFF);
    let mut cfg = SimEsp32Config::for_chip(chip, seed, flash);
    cfg.start_in_download = true;
    SimEsp32::spawn(cfg).unwrap()
}

struct Run {
    ok: bool,
    out: String,
}

fn run(esptool: &Path, port: &str, stub: bool, args: &[&str]) -> Run {
    let mut cmd = Command::new(esptool);
    cmd.args([
        "--port", port, "--before", "no-reset", "--after", "no-reset",
    ]);
    if !stub {
        cmd.arg("--no-stub");
    }
    // Plain, unwrapped output to assert on.
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env("COLUMNS", "200");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (is ESPTOOL right?)", esptool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        ok: out.status.success(),
        out: text,
    }
}

fn ok(esptool: &Path, port: &str, stub: bool, args: &[&str]) -> String {
    let r = run(esptool, port, stub, args);
    assert!(r.ok, "esptool {args:?} failed:\n{}", r.out);
    if std::env::var_os("ESPTOOL_VERBOSE").is_some() {
        eprintln!("$ esptool {args:?}\n{}", r.out);
    }
    r.out
}

fn mac(chip: SimChip, seed: u64) -> String {
    chip.default_mac(seed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Everything the suite checks, on one board.
fn suite(chip: SimChip, stub: bool, seed: u64, size: usize, size_name: &str) {
    let Some(esptool) = esptool_or_skip() else {
        return;
    };
    let sim = board(chip, seed, size);
    let port = sim.path.clone();
    let dir = tempfile::tempdir().unwrap();
    let mac = mac(chip, seed);

    // chip-id: the chip, its description from the eFuses, and (neither chip has a chip id
    // register esptool reads) the MAC instead.
    let out = ok(&esptool, &port, stub, &["chip-id"]);
    assert!(
        out.contains(&format!("Connected to {} on", chip.name())),
        "{out}"
    );
    assert!(
        out.contains(&format!("Chip type:          {}", chip.description())),
        "{out}"
    );
    assert!(out.contains("Crystal frequency:  40MHz"), "{out}");
    assert!(out.contains(&format!("MAC:                {mac}")), "{out}");
    assert!(sim.state(|s| s.in_bootloader));
    assert_eq!(sim.state(|s| s.in_stub), stub, "{out}");
    if stub {
        // Uploaded with MEM_BEGIN/DATA/END; it greeted with OHAI.
        assert!(out.contains("Stub flasher running."), "{out}");
        assert_eq!(sim.state(|s| s.stub_starts), 1);
    }

    let out = ok(&esptool, &port, stub, &["read-mac"]);
    assert!(out.contains(&format!("MAC:                {mac}")), "{out}");
    if stub {
        // The stub answered SYNC with value 0: esptool knows it is still running.
        assert!(out.contains("Stub flasher is already running."), "{out}");
    }

    // flash-id: the JEDEC id through the SPI controller's registers.
    let out = ok(&esptool, &port, stub, &["flash-id"]);
    let cap = match size {
        s if s == 4 << 20 => "16",
        s if s == 8 << 20 => "17",
        _ => "18",
    };
    assert!(out.contains("Manufacturer: ef"), "{out}");
    assert!(out.contains(&format!("Device: 40{cap}")), "{out}");
    assert!(
        out.contains(&format!("Detected flash size: {size_name}")),
        "{out}"
    );
    assert!(sim.state(|s| s.spi_commands.contains(&0x9F)));

    // read-flash: the partition table, byte for byte.
    let table = dir.path().join("table.bin");
    // At 460800 Bd: CHANGE_BAUDRATE first (the pty ignores the rate; the simulated UART
    // divider follows it).
    let out = ok(
        &esptool,
        &port,
        stub,
        &[
            "--baud",
            "460800",
            "read-flash",
            "0x8000",
            "0x1000",
            table.to_str().unwrap(),
        ],
    );
    assert!(out.contains("Changing baud rate to 460800"), "{out}");
    assert_eq!(
        std::fs::read(&table).unwrap(),
        sim.flash()[0x8000..0x9000],
        "{out}"
    );

    // write-flash with esptool's default (compressed with the stub, plain without), then the
    // other way; the image changes and esptool's MD5 check passes.
    let image: Vec<u8> = (0..0x5321u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.path().join("image.bin");
    std::fs::write(&file, &image).unwrap();
    let f = file.to_str().unwrap();
    for (extra, at) in [
        (None, 0x20_0000usize),
        (
            Some(if stub { "--no-compress" } else { "--compress" }),
            0x24_0000,
        ),
    ] {
        let addr = format!("{at:#x}");
        let mut args = vec!["write-flash"];
        args.extend(extra);
        args.extend([addr.as_str(), f]);
        let out = ok(&esptool, &port, stub, &args);
        assert!(out.contains("Hash of data verified."), "{out}");
        let compressed = if stub {
            extra.is_none()
        } else {
            extra.is_some()
        };
        assert_eq!(out.contains("compressed)"), compressed, "{out}");
        assert_eq!(&sim.flash()[at..at + image.len()], &image[..], "{out}");
    }
    let ops = sim.state(|s| s.loader_ops.clone());
    assert!(
        ops.contains(&0x10) && ops.contains(&0x02),
        "DEFL and plain writes: {ops:x?}"
    );
    // esptool never ends a write to the ROM: FLASH_END would leave the loader.
    assert_eq!(ops.contains(&0x04), stub, "{ops:x?}");

    // verify-flash: passes on what was written, fails on a region that differs.
    let out = ok(&esptool, &port, stub, &["verify-flash", "0x200000", f]);
    assert!(
        out.contains("Verification successful (digest matched)"),
        "{out}"
    );
    let r = run(
        &esptool,
        &port,
        stub,
        &["verify-flash", "--diff", "0x8000", f],
    );
    assert!(!r.ok, "{}", r.out);
    assert!(r.out.contains("Verification failed"), "{}", r.out);
    assert_eq!(
        hex(&Md5::digest(
            &sim.flash()[0x20_0000..0x20_0000 + image.len()]
        )),
        hex(&Md5::digest(&image))
    );
    // erase-region: the stub's ERASE_REGION, or (ROM) a FLASH_BEGIN that erases.
    ok(
        &esptool,
        &port,
        stub,
        &["erase-region", "0x240000", "0x2000"],
    );
    assert!(sim.flash()[0x24_0000..0x24_2000].iter().all(|&b| b == 0xFF));
    assert_eq!(sim.flash()[0x24_2000], image[0x2000]);

    if chip == SimChip::Esp32S3 {
        let out = ok(&esptool, &port, stub, &["get-security-info"]);
        assert!(out.contains("Chip ID: 9"), "{out}");
    }

    // Still in download mode, as --after no-reset leaves it.
    assert!(sim.state(|s| s.in_bootloader && s.firmware_boots == 0));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn esp32_rom_loader() {
    suite(SimChip::Esp32, false, 0x31, 4 << 20, "4MB");
}

#[test]
fn esp32_with_stub() {
    suite(SimChip::Esp32, true, 0x32, 4 << 20, "4MB");
}

#[test]
fn esp32s3_rom_loader() {
    suite(SimChip::Esp32S3, false, 0x33, 8 << 20, "8MB");
}

#[test]
fn esp32s3_with_stub() {
    suite(SimChip::Esp32S3, true, 0x34, 16 << 20, "16MB");
}
