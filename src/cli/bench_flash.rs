//! `shepherd bench flash`: how long a configuration read and write take on a classic ESP32
//! behind a USB-UART bridge, measured against the simulated chip with its link paced like a
//! real one (`sim::esp32::link`: every byte takes 10 bits at the UART's current rate, the flash
//! erases and programs at the W25Q32JV datasheet's typical times). The loader code is the one
//! the miners' readers run (`flash::session`, `flash::loader`); what a simulator cannot time
//! (the USB bridge's latency per round trip, the firmware's Wi-Fi and pool connection at boot)
//! is added from stated assumptions and printed apart.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use md5::{Digest, Md5};

use crate::flash::lines::Wiring;
use crate::flash::loader::Loader;
use crate::flash::partitions::{PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET};
use crate::flash::port::SessionPort;
use crate::flash::session::{self, Options, ROM_BAUD};
use crate::flash::spiffs::{self, SpiffsFile, SpiffsParams};
use crate::flash::transport::WireStats;
use crate::sim::esp32::link::LinkModel;
use crate::sim::esp32::{self, SimChip, SimEsp32, SimEsp32Config};

/// Latency a USB-UART bridge adds to each command/answer round trip (CP210x and CH340 hand
/// data over in 1 ms USB frames, about one each way): an assumption, not measured here.
pub const USB_ROUND_TRIP: Duration = Duration::from_millis(2);
/// From reset to the firmware printing its configuration and contacting its pool (ROM boot,
/// SPIFFS mount, Wi-Fi association, stratum subscribe): an assumption; the writer allows 45 s.
pub const FIRMWARE_BOOT_TO_POOL: Duration = Duration::from_secs(8);

/// One phase's figures.
struct Phase {
    name: &'static str,
    elapsed: Duration,
    wire: WireStats,
}

impl Phase {
    fn estimate(&self) -> Duration {
        self.elapsed + USB_ROUND_TRIP * self.wire.round_trips as u32
    }
}

/// Runs a read and a write of the SPIFFS partition of a 4 MiB huge_app flash and prints what
/// each phase took, with the bytes and round trips behind it.
pub fn run(max_baud: Option<u32>, rom: bool) -> anyhow::Result<()> {
    let config = esp32::default_config_json(1);
    let flash = esp32::huge_app_flash(&[SpiffsFile {
        path: "/config.json".into(),
        data: config.clone().into_bytes(),
    }])?;
    let mut cfg = SimEsp32Config::for_chip(SimChip::Esp32, 1, flash);
    cfg.link = LinkModel {
        max_baud,
        pace: true,
    };
    let sim = SimEsp32::spawn(cfg)?;
    let mut tty = serialport::new(&sim.path, ROM_BAUD)
        .timeout(Duration::from_millis(100))
        .open_native()
        .context("cannot open the simulated chip's pseudo-terminal")?;
    wait_for(&mut tty, "Initiating tasks", Duration::from_secs(10))?;

    let port = SessionPort::new(&mut tty, Some(sim.line_control()), Wiring::Classic);
    let mut loader = Loader::new(port);
    // `rom`: no stub and no faster rate, as a manual-mode session (or the writer before it
    // used the stub) does it.
    let opts = Options {
        reset: true,
        fast: !rom,
    };
    let mut phases = Vec::new();

    // 1. Connect, start the stub, read the table and the partition, check its MD5.
    let t = Instant::now();
    let info = session::open(&mut loader, opts, &mut |_| {})?;
    let table = PartitionTable::parse(&loader.read_flash(
        TABLE_OFFSET,
        TABLE_MAX_LEN as u32,
        &mut |_, _| {},
    )?)?;
    let part = table.spiffs()?.clone();
    let image = loader.read_flash(part.offset, part.size, &mut |_, _| {})?;
    let md5 = loader.flash_md5(part.offset, part.size)?;
    if md5[..] != Md5::digest(&image)[..] {
        bail!("the read does not match the chip's MD5");
    }
    phases.push(Phase {
        name: "connect + read 896 KiB + MD5",
        elapsed: t.elapsed(),
        wire: loader.wire_stats(),
    });

    // 2. Build the new image, write it, check the chip's MD5.
    let before = loader.wire_stats();
    let t = Instant::now();
    let new_config = config.replace("public-pool.io", "solo.ckpool.org");
    let new_image = spiffs::build_image(
        &[SpiffsFile {
            path: "/config.json".into(),
            data: new_config.into_bytes(),
        }],
        part.size as usize,
        &SpiffsParams::ARDUINO,
    )?;
    loader.write_flash(part.offset, &new_image, &mut |_, _| {})?;
    let md5 = loader.flash_md5(part.offset, part.size)?;
    if md5[..] != Md5::digest(&new_image)[..] {
        bail!("the write does not match the chip's MD5");
    }
    phases.push(Phase {
        name: "write 896 KiB + MD5",
        elapsed: t.elapsed(),
        wire: since(loader.wire_stats(), before),
    });

    // 3. Leave for the firmware and wait for it to print the new configuration.
    let before = loader.wire_stats();
    let t = Instant::now();
    session::leave(&mut loader, opts, ROM_BAUD)?;
    let after = loader.wire_stats();
    drop(loader);
    wait_for(&mut tty, "solo.ckpool.org", Duration::from_secs(20))?;
    phases.push(Phase {
        name: "reset + boot log (simulated firmware)",
        elapsed: t.elapsed(),
        wire: since(after, before),
    });

    println!(
        "link: {} via the {} at {} baud (bridge limit: {})",
        info.chip.name,
        if info.stub {
            "flasher stub"
        } else {
            "ROM loader"
        },
        info.baud,
        max_baud.map_or("none".into(), |b| b.to_string())
    );
    println!(
        "{:<40} {:>9} {:>11} {:>11} {:>8} {:>10}",
        "phase", "measured", "bytes out", "bytes in", "round", "estimate"
    );
    let mut total = Duration::ZERO;
    for p in &phases {
        println!(
            "{:<40} {:>8.1}s {:>11} {:>11} {:>8} {:>9.1}s",
            p.name,
            p.elapsed.as_secs_f64(),
            p.wire.bytes_out,
            p.wire.bytes_in,
            p.wire.round_trips,
            p.estimate().as_secs_f64()
        );
        total += p.estimate();
    }
    let read = phases[0].estimate();
    let set_config = total + FIRMWARE_BOOT_TO_POOL;
    println!(
        "full partition read: {:.1} s (target < 20 s); whole SET_CONFIG (read + backup, write, \
         verify, boot confirmation incl. {} s firmware boot to pool): {:.1} s (target < 60 s)",
        read.as_secs_f64(),
        FIRMWARE_BOOT_TO_POOL.as_secs(),
        set_config.as_secs_f64()
    );
    println!(
        "estimate = measured + {} ms USB latency per round trip; measured includes 10 bits a \
         byte at the UART rate and W25Q32JV typical erase/program times",
        USB_ROUND_TRIP.as_millis()
    );
    Ok(())
}

fn since(now: WireStats, then: WireStats) -> WireStats {
    WireStats {
        bytes_out: now.bytes_out - then.bytes_out,
        bytes_in: now.bytes_in - then.bytes_in,
        round_trips: now.round_trips - then.round_trips,
    }
}

/// Reads the port until `text` shows up.
fn wait_for(port: &mut impl Read, text: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = port.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains(text) {
                return Ok(());
            }
            if seen.len() > 1 << 20 {
                seen.drain(..seen.len() / 2);
            }
        }
    }
    bail!("the simulated chip did not print {text:?} within {within:?}")
}
