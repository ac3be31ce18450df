//! The fault matrix of configuration writes, against simulated ESP32s over pseudo-terminals:
//! the cable pulled during the erase (FLASH_BEGIN), the write (FLASH_DATA), the MD5 check and
//! the boot confirmation; shepherd killed mid-write and started again; a firmware that opens
//! its setup portal; another chip on the port at restore time; a backup truncated on disk; a
//! restore that keeps being cut off. Every case ends with the old configuration running on the
//! miner, or — only while the chip is unreachable — a message naming the backup restored at the
//! next replug; never an unmountable image flashed back, never a loop.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::in_process::App;
use serde_json::{json, Value};
use shepherd::db;
use shepherd::flash::spiffs::{self, SpiffsFile, SpiffsParams};
use shepherd::sim::esp32::{self, SimChip, SimEsp32, SimEsp32Config};

const ADDR: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
const SPIFFS: std::ops::Range<usize> = 0x31_0000..0x3F_0000;
/// First seed of an ESP32-S3 board (see [`sim`]).
const S3: u64 = 200;
/// SLIP frame ops as the ROM receives them (byte 1 of a request): esptool's
/// `ESP_FLASH_BEGIN`, `ESP_FLASH_DATA`, `ESP_SPI_FLASH_MD5`.
const FLASH_BEGIN: u8 = 0x02;
const FLASH_DATA: u8 = 0x03;
const SPI_FLASH_MD5: u8 = 0x13;

fn files(pool: &str) -> Vec<SpiffsFile> {
    let config = json!({
        "poolString": pool, "portNumber": 3333, "poolPassword": "hunter2",
        "btcString": format!("{ADDR}.worker"), "gmtZone": 2, "saveStatsToNVS": false,
        "invertColors": false, "Brightness": 250
    });
    vec![SpiffsFile {
        path: "/config.json".into(),
        data: config.to_string().into_bytes(),
    }]
}

fn new_config(pool: &str) -> String {
    json!({
        "poolString": pool, "portNumber": 21496, "poolPassword": "s3cret",
        "btcString": format!("{ADDR}.rig2"), "gmtZone": -5, "saveStatsToNVS": true,
        "invertColors": false, "Brightness": 128
    })
    .to_string()
}

/// The fault matrix runs on both chips: seeds from [`S3`] on are ESP32-S3 boards on their
/// USB-Serial/JTAG (stub at the USB's own speed, watchdogs to switch off, 5-word FLASH_BEGIN),
/// lower ones classic ESP32s behind a USB-UART bridge. A replug with the same seed is the same
/// board (same chip, same MAC).
fn sim(seed: u64, flash: Vec<u8>) -> SimEsp32 {
    let chip = if seed >= S3 {
        SimChip::Esp32S3
    } else {
        SimChip::Esp32
    };
    let mut cfg = SimEsp32Config::for_chip(chip, seed, flash);
    cfg.line_interval = Duration::from_millis(100);
    SimEsp32::spawn(cfg).unwrap()
}

fn good_sim(seed: u64, pool: &str) -> SimEsp32 {
    sim(seed, esp32::huge_app_flash(&files(pool)).unwrap())
}

/// A good board on pool.example.org as the one miner "m" of a running app that has read its
/// first lines: (the app's folder, the board, the app, the miner's id).
fn one_miner(seed: u64) -> (tempfile::TempDir, SimEsp32, App, i64) {
    let dir = tempfile::tempdir().unwrap();
    let chip = good_sim(seed, "pool.example.org");
    let app = App::start(dir.path(), &[("m", &chip)], 5);
    let id = app.miner_id("m");
    app.wait_lines_after(id, 0);
    (dir, chip, app, id)
}

/// The pool in the sim's `/config.json`, or why there is none.
fn sim_pool(flash: &[u8]) -> Result<String, String> {
    let files =
        spiffs::read_image(&flash[SPIFFS], &SpiffsParams::ARDUINO).map_err(|e| e.to_string())?;
    let f = files
        .iter()
        .find(|f| f.path == "/config.json")
        .ok_or("no /config.json")?;
    let v: Value = serde_json::from_slice(&f.data).map_err(|e| e.to_string())?;
    Ok(v["poolString"].as_str().unwrap_or_default().to_owned())
}

/// The miner's restore intent: (backup id, automatic restores queued).
fn intent(app: &App, miner: i64) -> Option<(i64, i64)> {
    let conn = db::open_reader(&app.db).unwrap();
    conn.query_row(
        "SELECT backup_id, attempts FROM restore_intents WHERE miner_id = ?1",
        [miner],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

fn backup_path(app: &App, id: i64) -> String {
    let conn = db::open_reader(&app.db).unwrap();
    conn.query_row("SELECT path FROM config_backups WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Plugs a board with `flash` in as miner `miner` (a new device node, as after a real replug).
fn replug(app: &App, miner: i64, seed: u64, flash: Vec<u8>) -> SimEsp32 {
    replug_board(app, miner, sim(seed, flash))
}

/// Plugs `back` in as miner `miner`.
fn replug_board(app: &App, miner: i64, back: SimEsp32) -> SimEsp32 {
    app.registry.register(&back.path, back.line_control());
    let (conn, _) = db::open_writer(&app.db).unwrap();
    conn.execute(
        "UPDATE miners SET port = ?1 WHERE id = ?2",
        rusqlite::params![back.path, miner],
    )
    .unwrap();
    back
}

/// The first command queued for `miner` after command `after`.
fn next_command(app: &App, miner: i64, after: i64) -> i64 {
    let start = Instant::now();
    loop {
        let conn = db::open_reader(&app.db).unwrap();
        let next: Option<i64> = conn
            .query_row(
                "SELECT min(id) FROM miner_commands WHERE miner_id = ?1 AND id > ?2",
                rusqlite::params![miner, after],
                |r| r.get(0),
            )
            .unwrap();
        if let Some(next) = next {
            return next;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no command was queued after #{after}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Follows the restore queued after command `after`. A restore that ran on the old port
/// before the supervisor switched to the new one (its pseudo-terminal's number reused by
/// another test's board) finds no chip to reset and fails without writing: the next one is
/// followed then, as the next replug would.
fn follow_restore(app: &App, miner: i64, mut after: i64) -> (Value, Vec<(String, String)>) {
    loop {
        let id = next_command(app, miner, after);
        let (row, seen) = app.follow(id);
        if !detail(&row).starts_with("could not reset the miner into its bootloader") {
            return (row, seen);
        }
        after = id;
    }
}

fn detail(row: &Value) -> String {
    row["detail"].as_str().unwrap_or_default().to_owned()
}

/// Asserts the write ended in error naming its backup for the next replug, with the intent
/// recorded; returns the backup id.
fn assert_left_for_replug(app: &App, miner: i64, row: &Value) -> i64 {
    assert_eq!(row["status"], "error", "{row:#}");
    let d = detail(row);
    let backup = row["result"]["restore_on_replug"]
        .as_i64()
        .unwrap_or_else(|| panic!("no restore_on_replug: {row:#}"));
    assert!(
        d.contains(&format!("Backup #{backup} ({})", backup_path(app, backup))),
        "{d}"
    );
    assert!(d.contains("will be written back automatically"), "{d}");
    assert_eq!(intent(app, miner).map(|i| i.0), Some(backup));
    backup
}

/// Replugs `flash` and follows the restore queued by itself: the old configuration runs.
fn assert_restored_on_replug(app: &App, miner: i64, seed: u64, flash: Vec<u8>, after: i64) {
    let back = replug(app, miner, seed, flash);
    let (row, seen) = follow_restore(app, miner, after);
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert!(detail(&row).contains("restored"), "{row:#}");
    assert_eq!(sim_pool(&back.flash()).unwrap(), "pool.example.org");
    assert!(back.state(|s| s.configured && !s.in_bootloader));
    assert_eq!(
        intent(app, miner),
        None,
        "the intent is cleared once confirmed"
    );
}

/// A write whose chip loses power when `frame_op` reaches it (after the write began): the
/// write ends naming the backup, and the replugged board gets its old configuration back.
fn cable_pulled_at(seed: u64, frame_op: u8) {
    let (_dir, chip, mut app, id) = one_miner(seed);
    let power = chip.power_switch();
    let began = Arc::new(AtomicBool::new(false));
    chip.set_transit_hook(Some(Box::new(move |f: &mut Vec<u8>| {
        let op = f.get(1).copied();
        if op == Some(FLASH_BEGIN) {
            began.store(true, Ordering::SeqCst);
        }
        // The partition read also asks for an MD5: only the write's counts.
        if op == Some(frame_op) && began.load(Ordering::SeqCst) {
            power.store(true, Ordering::SeqCst);
        }
    })));
    let (row, seen) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org"),
    );
    assert!(detail(&row).contains("cut off"), "{row:#}\n{seen:#?}");
    // The chip went silent: the kind of the loader's error is stored beside the sentence.
    assert_eq!(row["result"]["loader_error"], "timeout", "{row:#}");
    let backup = assert_left_for_replug(&app, id, &row);
    assert_eq!(row["result"]["backup_id"], backup);
    assert_restored_on_replug(&app, id, seed, chip.flash(), row["id"].as_i64().unwrap());
    app.stop();
}

#[test]
fn cable_pulled_during_the_erase() {
    cable_pulled_at(61, FLASH_BEGIN);
}

#[test]
fn cable_pulled_during_the_write() {
    cable_pulled_at(62, FLASH_DATA);
}

#[test]
fn cable_pulled_during_the_md5_check() {
    cable_pulled_at(63, SPI_FLASH_MD5);
}

#[test]
fn esp32s3_cable_pulled_during_the_erase() {
    cable_pulled_at(S3 + 61, FLASH_BEGIN);
}

#[test]
fn esp32s3_cable_pulled_during_the_write() {
    cable_pulled_at(S3 + 62, FLASH_DATA);
}

#[test]
fn esp32s3_cable_pulled_during_the_md5_check() {
    cable_pulled_at(S3 + 63, SPI_FLASH_MD5);
}

#[test]
fn cable_pulled_during_the_boot_confirmation() {
    cable_pulled_during_the_boot_confirmation_on(64);
}

#[test]
fn esp32s3_cable_pulled_during_the_boot_confirmation() {
    cable_pulled_during_the_boot_confirmation_on(S3 + 64);
}

fn cable_pulled_during_the_boot_confirmation_on(seed: u64) {
    let (_dir, mut chip, mut app, id) = one_miner(seed);
    // The board dies as it boots the new image: nothing printed, then the USB device goes.
    let power = chip.power_switch();
    let (tx, rx) = channel();
    chip.set_boot_hook(Some(Box::new(move |text: &str| {
        if text.contains("solo.ckpool.org") {
            power.store(true, Ordering::SeqCst);
            let _ = tx.send(());
        }
        true
    })));
    let (post, v) = app.post(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org"),
    );
    assert_eq!(post, 202, "{v}");
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the new image never booted");
    let flash = chip.flash();
    assert_eq!(
        sim_pool(&flash).unwrap(),
        "solo.ckpool.org",
        "fully written"
    );
    // Plugged back in at once (on a new device node, so the two never share a path), then
    // the old node disappears: the port fails under the boot watch.
    let back = replug(&app, id, seed, flash);
    chip.stop();
    drop(chip);
    let (row, seen) = app.follow(v["id"].as_i64().unwrap());
    assert!(
        detail(&row).contains("went away before it confirmed"),
        "{row:#}\n{seen:#?}"
    );
    assert_left_for_replug(&app, id, &row);
    // Written and verified but never confirmed: the old configuration goes back.
    let (r, seen) = follow_restore(&app, id, row["id"].as_i64().unwrap());
    assert_eq!(r["status"], "complete", "{r:#}\n{seen:#?}");
    assert_eq!(sim_pool(&back.flash()).unwrap(), "pool.example.org");
    assert!(back.state(|s| s.configured && !s.in_bootloader));
    assert_eq!(intent(&app, id), None);
    app.stop();
}

#[test]
fn a_firmware_that_opens_its_setup_portal_gets_the_old_configuration_back() {
    a_firmware_that_opens_its_setup_portal_gets_the_old_configuration_back_on(65);
}

#[test]
fn esp32s3_a_firmware_that_opens_its_setup_portal_gets_the_old_configuration_back() {
    a_firmware_that_opens_its_setup_portal_gets_the_old_configuration_back_on(S3 + 65);
}

fn a_firmware_that_opens_its_setup_portal_gets_the_old_configuration_back_on(seed: u64) {
    let (_dir, chip, mut app, id) = one_miner(seed);
    chip.set_boot_hook(Some(Box::new(|t: &str| !t.contains("solo.ckpool.org"))));
    let (row, seen) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org"),
    );
    assert_eq!(row["status"], "error", "{row:#}\n{seen:#?}");
    let d = detail(&row);
    assert!(d.contains("setup portal"), "{d}");
    assert!(d.contains("previous configuration and mining"), "{d}");
    assert_eq!(row["result"]["rolled_back"], true);
    assert_eq!(sim_pool(&chip.flash()).unwrap(), "pool.example.org");
    assert!(chip.state(|s| s.configured && !s.in_bootloader));
    assert_eq!(intent(&app, id), None, "back on a good configuration");
    app.stop();
}

#[test]
fn shepherd_killed_mid_write_restores_when_it_starts_again() {
    shepherd_killed_mid_write_restores_when_it_starts_again_on(66);
}

#[test]
fn esp32s3_shepherd_killed_mid_write_restores_when_it_starts_again() {
    shepherd_killed_mid_write_restores_when_it_starts_again_on(S3 + 66);
}

fn shepherd_killed_mid_write_restores_when_it_starts_again_on(seed: u64) {
    let (_dir, chip, mut app, id) = one_miner(seed);
    // A quarter of the way through the partition the process "dies": the chip stops there
    // and the database is copied as it is at that instant (what a power loss leaves).
    let power = chip.power_switch();
    let (tx, rx) = channel();
    chip.set_write_hook(Some(Box::new(move |addr, _: &mut [u8]| {
        if addr >= 0x31_0000 + 0x4_0000 && !power.swap(true, Ordering::SeqCst) {
            let _ = tx.send(());
        }
    })));
    let before = chip.flash();
    let (post, v) = app.post(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org"),
    );
    assert_eq!(post, 202, "{v}");
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the write never reached the middle of the partition");
    let half = chip.flash();
    // Half written. The flasher stub erases as it writes (esptool `flash_defl_begin`: the
    // stub "manages erasing internally"), so past the cut the old image is still there and
    // the mix may even mount: only a confirmed boot says which configuration is good.
    assert_ne!(
        half[SPIFFS], before[SPIFFS],
        "the partition is half written"
    );
    let dir2 = tempfile::tempdir().unwrap();
    let crashed = dir2.path().join("shepherd.db");
    {
        let conn = db::open_reader(&app.db).unwrap();
        conn.execute("VACUUM INTO ?1", [crashed.display().to_string()])
            .unwrap();
    }
    app.stop();

    // Started again on what the crash left: the write is marked interrupted with the backup
    // it recorded before erasing, and the restore runs as soon as the port opens.
    let back = sim(seed, half);
    let mut app = App::start(dir2.path(), &[("m", &back)], 5);
    let write = v["id"].as_i64().unwrap();
    let row = app.json(&format!("/api/commands/{write}"));
    assert_eq!(row["status"], "error", "{row:#}");
    let backup = intent(&app, id).map(|i| i.0);
    let backup = backup.or_else(|| {
        // The restore may already have finished: the backup is in its payload.
        let conn = db::open_reader(&app.db).unwrap();
        conn.query_row(
            "SELECT json_extract(payload, '$.restore_backup.backup_id') FROM miner_commands
             WHERE id > ?1 ORDER BY id LIMIT 1",
            [write],
            |r| r.get(0),
        )
        .ok()
    });
    let backup = backup.expect("no intent survived the crash");
    assert!(
        detail(&row).contains(&format!("backup #{backup} will be written back")),
        "{row:#}"
    );
    let restore = next_command(&app, id, write);
    let (r, seen) = app.follow(restore);
    assert_eq!(r["status"], "complete", "{r:#}\n{seen:#?}");
    assert!(
        detail(&r).contains(&format!("backup #{backup} restored")),
        "{r:#}"
    );
    assert_eq!(sim_pool(&back.flash()).unwrap(), "pool.example.org");
    assert!(back.state(|s| s.configured));
    assert_eq!(intent(&app, id), None);
    app.stop();
}

/// Pulls the cable a quarter of the way into the next write to `chip`.
fn pull_mid_write(chip: &SimEsp32) {
    let power = chip.power_switch();
    chip.set_write_hook(Some(Box::new(move |addr, _: &mut [u8]| {
        if addr >= 0x31_0000 + 0x4_0000 {
            power.store(true, Ordering::SeqCst);
        }
    })));
}

#[test]
fn another_chip_on_the_port_is_refused_and_the_right_one_is_restored_later() {
    let (_dir, chip, mut app, id) = one_miner(67);
    pull_mid_write(&chip);
    let (row, _) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org"),
    );
    let backup = assert_left_for_replug(&app, id, &row);
    let half = chip.flash();

    // Someone else's miner (another MAC, its own wallet) lands on that port.
    let theirs = esp32::huge_app_flash(&files("theirs.example.org")).unwrap();
    let other = replug(&app, id, 99, theirs);
    let refused = next_command(&app, id, row["id"].as_i64().unwrap());
    let (r, seen) = app.follow(refused);
    assert_eq!(r["status"], "error", "{r:#}\n{seen:#?}");
    let d = detail(&r);
    assert!(d.contains("different miner"), "{d}");
    assert!(
        d.contains("24:d7:eb:10:20:43") && d.contains("24:d7:eb:10:20:63"),
        "{d}"
    );
    assert!(d.contains("Nothing was written"), "{d}");
    assert_eq!(sim_pool(&other.flash()).unwrap(), "theirs.example.org");
    assert!(other.state(|s| s.configured && !s.in_bootloader));
    assert_eq!(intent(&app, id).map(|i| i.0), Some(backup), "still pending");

    // The right miner comes back: its own backup goes on it.
    assert_restored_on_replug(&app, id, 67, half, refused);
    app.stop();
}

#[test]
fn a_backup_truncated_on_disk_is_refused_by_name_and_the_next_good_one_used() {
    let (_dir, chip, mut app, id) = one_miner(68);
    // An earlier read from flash left a backup of the same configuration.
    let (read, seen) = app.run(
        &format!("/api/miner/{id}/get_config"),
        r#"{"method":"flash"}"#,
    );
    assert_eq!(read["status"], "complete", "{read:#}\n{seen:#?}");
    let older = read["result"]["backup_id"].as_i64().unwrap();

    pull_mid_write(&chip);
    let (row, _) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org"),
    );
    let newest = assert_left_for_replug(&app, id, &row);
    assert_ne!(newest, older);
    let path = backup_path(&app, newest);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    // By hand: refused before the miner is touched, naming the file and the intact one.
    let entries = chip.state(|s| s.bootloader_entries);
    let (r, _) = app.run(&format!("/api/backups/{newest}/restore"), "");
    assert_eq!(r["status"], "error", "{r:#}");
    let d = detail(&r);
    assert!(d.contains(&path) && d.contains("damaged"), "{d}");
    assert!(d.contains(&format!("Backup #{older}")), "{d}");
    assert_eq!(chip.state(|s| s.bootloader_entries), entries);

    // By itself at the replug: the intact older backup is used instead.
    let back = replug(&app, id, 68, chip.flash());
    let restore = next_command(&app, id, r["id"].as_i64().unwrap());
    let (r, seen) = app.follow(restore);
    assert_eq!(r["status"], "complete", "{r:#}\n{seen:#?}");
    let steps = r["result"]["steps"].to_string();
    assert!(
        steps.contains(&format!("restoring backup #{older} instead")),
        "{steps}"
    );
    assert!(
        detail(&r).contains(&format!("backup #{older} restored")),
        "{r:#}"
    );
    assert_eq!(sim_pool(&back.flash()).unwrap(), "pool.example.org");
    assert_eq!(intent(&app, id), None);
    app.stop();
}

#[test]
fn a_restore_cut_off_again_keeps_the_good_backup_and_stops_after_three_tries() {
    let dir = tempfile::tempdir().unwrap();
    let chip = good_sim(69, "pool.example.org");
    let mut app = App::start(dir.path(), &[("m", &chip)], 2);
    let id = app.miner_id("m");
    app.wait_lines_after(id, 0);
    pull_mid_write(&chip);
    let (row, _) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org"),
    );
    let good = assert_left_for_replug(&app, id, &row);
    let mut flash = chip.flash();
    let mut last = row["id"].as_i64().unwrap();
    let mut boards = Vec::new();
    for attempt in 1..=3 {
        // Plugged back in, it boots into its setup portal (the firmware formats the half
        // written partition), and the cable comes out again during the restore.
        let back = sim(69, flash.clone());
        pull_mid_write(&back);
        app.registry.register(&back.path, back.line_control());
        {
            let (conn, _) = db::open_writer(&app.db).unwrap();
            conn.execute(
                "UPDATE miners SET port = ?1 WHERE id = ?2",
                rusqlite::params![back.path, id],
            )
            .unwrap();
        }
        let restore = next_command(&app, id, last);
        let (r, seen) = app.follow(restore);
        assert_eq!(r["status"], "error", "{r:#}\n{seen:#?}");
        // Still the good backup, never the one just taken of the broken partition.
        assert_eq!(r["result"]["restore_on_replug"], good, "{r:#}");
        assert_ne!(r["result"]["backup_id"], good);
        assert_eq!(intent(&app, id), Some((good, attempt)));
        let d = detail(&r);
        assert_eq!(
            d.contains("Automatic restores stop here"),
            attempt == 3,
            "{d}"
        );
        // The good backup survives pruning (keep = 2) through every broken backup.
        assert!(std::path::Path::new(&backup_path(&app, good)).exists());
        flash = back.flash();
        last = restore;
        boards.push(back);
    }
    // A fourth replug queues nothing (once its lines arrive, the port-open check has run).
    let before = shepherd::clock::now_ms();
    let last_board = replug(&app, id, 69, flash);
    app.wait_lines_after(id, before);
    let conn = db::open_reader(&app.db).unwrap();
    let newer: i64 = conn
        .query_row(
            "SELECT count(*) FROM miner_commands WHERE miner_id = ?1 AND id > ?2",
            rusqlite::params![id, last],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        newer, 0,
        "a restore that keeps failing is not queued forever"
    );
    assert_eq!(
        last_board.state(|s| s.bootloader_entries),
        0,
        "nothing entered the loader at the fourth replug"
    );
    // The manage page says the restore is still owed, and that it is now up to the user.
    let (_, page) = app.get(&format!("/miners/manage/{id}"));
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(&format!("Backup #{good} still has to be written back")),
        "{page}"
    );

    // Restored by hand, it is back on its configuration and the incident is closed.
    let (r, seen) = app.run(&format!("/api/backups/{good}/restore"), "");
    assert_eq!(r["status"], "complete", "{r:#}\n{seen:#?}");
    assert_eq!(sim_pool(&last_board.flash()).unwrap(), "pool.example.org");
    assert_eq!(intent(&app, id), None);
    app.stop();
}

#[test]
fn a_restore_the_firmware_rejects_falls_back_on_an_older_good_backup_never_the_empty_partition() {
    let (_dir, chip, mut app, id) = one_miner(70);
    let path = format!("/api/miner/{id}/set_config");
    let (first, seen) = app.run(&path, &new_config("solo.ckpool.org"));
    assert_eq!(first["status"], "complete", "{first:#}\n{seen:#?}");
    let original = first["result"]["backup_id"].as_i64().unwrap();
    pull_mid_write(&chip);
    let (row, _) = app.run(&path, &new_config("public-pool.io"));
    let good = assert_left_for_replug(&app, id, &row);

    // Back on the port, its partition formatted to an empty filesystem, and this firmware
    // no longer takes the configuration being restored.
    let back = sim(70, chip.flash());
    back.set_boot_hook(Some(Box::new(|t: &str| !t.contains("solo.ckpool.org"))));
    let back = replug_board(&app, id, back);
    let (r, seen) = follow_restore(&app, id, row["id"].as_i64().unwrap());
    assert_eq!(r["status"], "error", "{r:#}\n{seen:#?}");
    let broken = r["result"]["backup_id"].as_i64().unwrap();
    assert!(broken != good && broken != original);
    let d = detail(&r);
    assert!(d.contains("setup portal"), "{d}");
    assert!(
        d.contains(&format!(
            "Backup #{original} (the previous configuration) was flashed back"
        )),
        "{d}"
    );
    assert!(d.contains("previous configuration and mining"), "{d}");
    let steps = r["result"]["steps"].to_string();
    assert!(!steps.contains(&format!("backup #{broken} at")), "{steps}");
    assert_eq!(sim_pool(&back.flash()).unwrap(), "pool.example.org");
    assert!(back.state(|s| s.configured && !s.in_bootloader));
    assert_eq!(intent(&app, id), None);
    app.stop();
}
