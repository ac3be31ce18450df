//! The flash link on both chips as real boards have it: the read-only doctor with its trace,
//! manual download mode on a board without the auto-reset circuit, a USB-UART bridge that
//! fails at 921600 baud, and the ESP32-S3 over USB-Serial/JTAG, whose watchdogs would reset it
//! mid-write and whose FORCE_DOWNLOAD_BOOT would keep it in download mode. The whole app runs
//! in this process against simulated chips (`src/sim/esp32/`).

mod common;

use std::time::Duration;

use common::in_process::App;
use serde_json::{json, Value};
use shepherd::flash::chips::RTC_WDT_KEY;
use shepherd::flash::spiffs::{self, SpiffsFile, SpiffsParams};
use shepherd::sim::esp32::link::LinkModel;
use shepherd::sim::esp32::{self, SimChip, SimEsp32, SimEsp32Config};

const ADDR: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
const SECRET: &str = "hunter2";

fn flash_with(pool: &str) -> Vec<u8> {
    let config = format!(
        "{{\"poolString\":\"{pool}\",\"portNumber\":3333,\"poolPassword\":\"{SECRET}\",\"btcString\":\"{ADDR}.w\",\"gmtZone\":2,\"saveStatsToNVS\":false,\"invertColors\":false,\"Brightness\":250}}"
    );
    esp32::huge_app_flash(&[SpiffsFile {
        path: "/config.json".into(),
        data: config.into_bytes(),
    }])
    .unwrap()
}

fn spawn(chip: SimChip, seed: u64, tweak: impl FnOnce(&mut SimEsp32Config)) -> SimEsp32 {
    let mut cfg = SimEsp32Config::for_chip(chip, seed, flash_with("pool.example.org"));
    cfg.line_interval = Duration::from_millis(100);
    tweak(&mut cfg);
    SimEsp32::spawn(cfg).unwrap()
}

fn pool_on(sim: &SimEsp32) -> String {
    let flash = sim.flash();
    let files = spiffs::read_image(&flash[0x31_0000..0x3F_0000], &SpiffsParams::ARDUINO).unwrap();
    let f = files.iter().find(|f| f.path == "/config.json").unwrap();
    let v: Value = serde_json::from_slice(&f.data).unwrap();
    v["poolString"].as_str().unwrap().to_owned()
}

fn steps(row: &Value) -> String {
    row["result"]["steps"].to_string()
}

fn new_config(pool: &str, extra: Value) -> String {
    let mut v = json!({
        "poolString": pool,
        "portNumber": 3333,
        "poolPassword": "s3cret",
        "btcString": format!("{ADDR}.rig2"),
        "gmtZone": -5,
        "saveStatsToNVS": false,
        "invertColors": false,
        "Brightness": 128
    });
    if let (Some(m), Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    v.to_string()
}

#[test]
fn doctor_checks_both_chips_step_by_step_and_keeps_a_trace_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let classic = spawn(SimChip::Esp32, 81, |_| {});
    // Watchdogs that would fire within the check unless the doctor switches them off.
    let s3 = spawn(SimChip::Esp32S3, 82, |c| {
        c.watchdog_timeout = Some(Duration::from_millis(300))
    });
    let mut app = App::start(dir.path(), &[("classic", &classic), ("s3", &s3)], 5);
    for (name, sim, chip, speed) in [
        ("classic", &classic, "ESP32", "stub at 921600"),
        ("s3", &s3, "ESP32-S3", "stub at 115200"),
    ] {
        let id = app.miner_id(name);
        app.wait_lines_after(id, 0);
        let (row, seen) = app.run(&format!("/api/miner/{id}/doctor"), "");
        assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
        let verdicts = row["result"]["verdicts"].as_array().unwrap();
        let by_step = |step: &str| {
            verdicts
                .iter()
                .find(|v| v["step"] == step)
                .unwrap_or_else(|| panic!("no {step} verdict: {verdicts:#?}"))
        };
        for step in [
            "usb wiring",
            "sync",
            "chip",
            "mac",
            "flash",
            "read speed",
            "partition table",
            "spiffs",
            "config",
            "back to firmware",
        ] {
            assert_eq!(by_step(step)["verdict"], "ok", "{step}: {verdicts:#?}");
        }
        assert!(by_step("chip")["detail"]
            .as_str()
            .unwrap()
            .starts_with(chip));
        assert!(by_step("flash")["detail"]
            .as_str()
            .unwrap()
            .contains("4096 KiB"));
        assert!(
            by_step("read speed")["detail"]
                .as_str()
                .unwrap()
                .contains(speed),
            "{verdicts:#?}"
        );
        assert_eq!(row["result"]["config"]["poolPassword"], "***");
        let trace = row["result"]["trace"].as_array().unwrap();
        let ops: Vec<&str> = trace.iter().filter_map(|t| t["op"].as_str()).collect();
        for op in [
            "SYNC",
            "GET_SECURITY_INFO",
            "READ_REG",
            "WRITE_REG",
            "SPI_ATTACH",
        ] {
            assert!(ops.contains(&op), "{op} missing from the trace");
        }
        // No secret anywhere in what an owner attaches to a bug report.
        assert!(!row.to_string().contains(SECRET));
        assert!(sim.state(|s| !s.in_bootloader && s.configured));
    }
    assert_eq!(s3.state(|s| s.watchdog_resets), 0);
    assert!(s3.state(|s| s
        .write_regs
        .iter()
        .any(|&(a, v, _)| a == 0x6000_80B0 && v == RTC_WDT_KEY)));
    // Nothing was written: the partitions are as they were.
    assert_eq!(pool_on(&classic), "pool.example.org");
    assert_eq!(pool_on(&s3), "pool.example.org");
    app.stop();
}

#[test]
fn manual_download_mode_reads_and_writes_a_board_without_auto_reset() {
    let dir = tempfile::tempdir().unwrap();
    // No IO0 wiring (no auto-reset circuit): the owner held BOOT while plugging it in.
    let manual = |c: &mut SimEsp32Config| {
        c.io0_wired = false;
        c.start_in_download = true;
        // Leaving by "run user code", the firmware's configuration comes in the same read as
        // the ROM's last answer: the boot check must still see it.
        c.exit_in_one_read = true;
    };
    let writer = spawn(SimChip::Esp32, 83, manual);
    let reader = spawn(SimChip::Esp32, 84, manual);
    let mut app = App::start(dir.path(), &[("w", &writer), ("r", &reader)], 5);

    let w = app.miner_id("w");
    let (row, seen) = app.run(
        &format!("/api/miner/{w}/set_config"),
        &new_config("solo.ckpool.org", json!({"no_reset": true})),
    );
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    let s = steps(&row);
    assert!(s.contains("download mode by hand"), "{s}");
    assert!(s.contains("through the ROM loader at 115200 baud"), "{s}");
    assert_eq!(row["result"]["confirmed"], true);
    assert_eq!(pool_on(&writer), "solo.ckpool.org");
    // The key that asked for manual mode is not a firmware key: it is not written.
    assert!(!String::from_utf8_lossy(&writer.flash()[0x31_0000..0x3F_0000]).contains("no_reset"));
    // It left the loader by "run user code" (no reset line was touched) and mines again.
    assert!(writer.state(|s| !s.in_bootloader && s.configured && s.line_events.is_empty()));

    let r = app.miner_id("r");
    let (row, seen) = app.run(
        &format!("/api/miner/{r}/get_config"),
        r#"{"method":"flash","no_reset":true}"#,
    );
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert_eq!(row["result"]["config"]["poolString"], "pool.example.org");
    assert!(reader.state(|s| !s.in_bootloader && s.line_events.is_empty()));
    app.stop();
}

#[test]
fn a_bridge_that_fails_at_speed_gets_the_next_lower_rate() {
    let dir = tempfile::tempdir().unwrap();
    let ch340 = spawn(SimChip::Esp32, 85, |c| {
        c.link = LinkModel {
            max_baud: Some(460_800),
            pace: false,
        }
    });
    let slow = spawn(SimChip::Esp32, 86, |c| {
        c.link = LinkModel {
            max_baud: Some(115_200),
            pace: false,
        }
    });
    let mut app = App::start(dir.path(), &[("ch340", &ch340), ("slow", &slow)], 5);
    for (name, sim, rate) in [("ch340", &ch340, 460_800), ("slow", &slow, 115_200)] {
        let id = app.miner_id(name);
        app.wait_lines_after(id, 0);
        let (row, seen) = app.run(
            &format!("/api/miner/{id}/get_config"),
            r#"{"method":"flash"}"#,
        );
        assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
        let s = steps(&row);
        assert!(s.contains("921600 baud failed"), "{s}");
        assert!(
            s.contains(&format!("through the flasher stub at {rate} baud")),
            "{s}"
        );
        assert!(sim.state(|s| !s.in_bootloader && s.configured));
    }
    app.stop();
}

#[test]
fn esp32s3_over_usb_serial_jtag_writes_with_its_watchdogs_off_and_boots_its_firmware() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = spawn(SimChip::Esp32S3, 87, |c| {
        c.watchdog_timeout = Some(Duration::from_millis(300));
        // Left set by an earlier tool: without clearing it the chip would come back in
        // download mode after the reset (arduino-esp32 issue 6762).
        c.force_download_boot = true;
    });
    let mut app = App::start(dir.path(), &[("s3", &s3)], 5);
    let id = app.miner_id("s3");
    app.wait_lines_after(id, 0);
    let (row, seen) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org", json!({})),
    );
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert!(steps(&row).contains("connected to an ESP32-S3"));
    assert_eq!(pool_on(&s3), "solo.ckpool.org");
    assert_eq!(s3.state(|s| s.watchdog_resets), 0);
    assert!(s3.state(|s| !s.force_download_boot && !s.in_bootloader && s.configured));
    app.stop();
}
