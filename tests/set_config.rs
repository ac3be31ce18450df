//! SET_CONFIG (new configurations and backup restores) end to end over HTTP against simulated ESP32s whose firmware
//! reads its configuration from its own SPIFFS at boot: a good write, writes corrupted on the
//! chip (MD5 mismatch → retry, then rollback), a firmware that rejects the written config
//! (setup portal → automatic restore), queued commands, a port that is gone, restoring a
//! backup. The whole app runs in this process so the test owns the sims.

mod common;

use std::time::{Duration, Instant};

use common::in_process::App;
use serde_json::{json, Value};
use shepherd::db::{self};
use shepherd::flash::spiffs::SpiffsFile;
use shepherd::flash::spiffs::{self, SpiffsParams};
use shepherd::sim::esp32::{self, SimEsp32, SimEsp32Config};

const ADDR: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";

fn config_json(pool: &str) -> String {
    format!(
        "{{\"poolString\":\"{pool}\",\"portNumber\":3333,\"poolPassword\":\"hunter2\",\"btcString\":\"{ADDR}.worker\",\"gmtZone\":2,\"saveStatsToNVS\":false,\"invertColors\":false,\"Brightness\":250,\"customKey\":\"kept\"}}"
    )
}

/// The configuration a form would send: every firmware key, no unknown ones.
fn new_config(pool: &str, port: u16) -> String {
    json!({
        "poolString": pool,
        "portNumber": port,
        "poolPassword": "s3cret",
        "btcString": format!("{ADDR}.rig2"),
        "gmtZone": -5,
        "saveStatsToNVS": true,
        "invertColors": false,
        "Brightness": 128
    })
    .to_string()
}

fn sim(seed: u64, flash: Vec<u8>) -> SimEsp32 {
    let mut cfg = SimEsp32Config::new(seed, flash);
    cfg.line_interval = Duration::from_millis(100);
    SimEsp32::spawn(cfg).unwrap()
}

fn files(pool: &str) -> Vec<SpiffsFile> {
    vec![
        SpiffsFile {
            path: "/config.json".into(),
            data: config_json(pool).into_bytes(),
        },
        SpiffsFile {
            path: "/notes.txt".into(),
            data: b"hello".to_vec(),
        },
    ]
}

/// The files of the sim's SPIFFS partition now.
fn sim_files(sim: &SimEsp32) -> Vec<SpiffsFile> {
    let flash = sim.flash();
    spiffs::read_image(&flash[0x31_0000..0x3F_0000], &SpiffsParams::ARDUINO).unwrap()
}

fn sim_config(sim: &SimEsp32) -> Value {
    let files = sim_files(sim);
    let f = files.iter().find(|f| f.path == "/config.json").unwrap();
    serde_json::from_slice(&f.data).unwrap()
}

fn steps(row: &Value) -> Vec<String> {
    row["result"]["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn backups(app: &App, miner: i64) -> i64 {
    let conn = db::open_reader(&app.db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM config_backups WHERE miner_id = ?1",
        [miner],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn set_config_writes_verifies_and_confirms_the_boot_and_queues_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let flash = esp32::huge_app_flash(&files("pool.example.org")).unwrap();
    let good = sim(31, flash);
    let mut app = App::start(dir.path(), &[("good", &good)], 5);
    let id = app.miner_id("good");
    app.wait_lines_after(id, 0);

    // Checked before queuing: each bad field named, nothing queued, the miner untouched.
    let mut bad: Value = serde_json::from_str(&new_config("solo.ckpool.org", 3333)).unwrap();
    bad["portNumber"] = json!(0);
    bad["btcString"] = json!("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5");
    let (status, v) = app.post(&format!("/api/miner/{id}/set_config"), &bad.to_string());
    assert_eq!(status, 400, "{v}");
    let keys: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["portNumber", "btcString"]);
    // Another site cannot start a write.
    let (status, _) = app.post_from(
        Some("http://evil.example"),
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org", 3333),
    );
    assert_eq!(status, 403);
    assert!(good.state(|s| s.bootloader_entries == 0));

    // Two writes queued back to back run one after the other, in order.
    let (s1, v1) = app.post(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org", 3333),
    );
    let (s2, v2) = app.post(
        &format!("/api/miner/{id}/set_config"),
        &new_config("public-pool.io", 21496),
    );
    assert_eq!((s1, s2), (202, 202));
    let (first, seen) = app.follow(v1["id"].as_i64().unwrap());
    assert_eq!(first["status"], "complete", "{first:#}\n{seen:#?}");
    let (second, seen2) = app.follow(v2["id"].as_i64().unwrap());
    assert_eq!(second["status"], "complete", "{second:#}\n{seen2:#?}");
    assert!(
        second["started_at"].as_i64().unwrap() >= first["finished_at"].as_i64().unwrap(),
        "the second write started before the first ended"
    );
    // Progress was visible while it ran, and every protocol step was recorded.
    assert!(seen.iter().any(|(s, _)| s == "running"), "{seen:#?}");
    let st = steps(&first);
    for step in [
        "entering the ROM bootloader",
        "SPIFFS partition",
        "backup",
        "building the new SPIFFS image",
        "writing the new image",
        "MD5",
        "printed the configuration written",
    ] {
        assert!(
            st.iter().any(|d| d.contains(step)),
            "no step {step:?}: {st:#?}"
        );
    }
    assert!(first["detail"]
        .as_str()
        .unwrap()
        .contains("connected to its pool"));
    assert_eq!(first["result"]["config"]["poolPassword"], "***");

    // On the chip: the second configuration, unknown keys kept in place, other files kept.
    let c = sim_config(&good);
    assert_eq!(c["poolString"], "public-pool.io");
    assert_eq!(c["portNumber"], 21496);
    assert_eq!(c["poolPassword"], "s3cret");
    assert_eq!(c["customKey"], "kept");
    let keys: Vec<&String> = c.as_object().unwrap().keys().collect();
    assert_eq!(keys[8], "customKey");
    let files = sim_files(&good);
    assert!(files
        .iter()
        .any(|f| f.path == "/notes.txt" && f.data == b"hello"));
    assert!(good.state(|s| s.configured && !s.in_bootloader));
    // One backup per write, the first holding the original configuration.
    assert_eq!(backups(&app, id), 2);
    // The stored configuration is the new one (the page masks it).
    let conn = db::open_reader(&app.db).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT last_config_json FROM miners WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.contains("public-pool.io"), "{stored}");

    // The manage page offers the form prefilled from the stored configuration, never the
    // password, and a restore button per backup.
    let (status, page) = app.get(&format!("/miners/manage/{id}"));
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, 200);
    assert!(page.contains("Change its configuration"), "{page}");
    assert!(page.contains("value=\"public-pool.io\""), "{page}");
    assert!(page.contains("data-restore="), "{page}");
    assert!(
        !page.contains("s3cret"),
        "the password leaked into the page"
    );

    // Restore the first backup: the miner goes back to its original pool.
    let first_backup = first["result"]["backup_id"].as_i64().unwrap();
    let (row, seen) = app.run(&format!("/api/backups/{first_backup}/restore"), "");
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert!(row["detail"].as_str().unwrap().contains("restored"));
    assert_eq!(sim_config(&good)["poolString"], "pool.example.org");
    assert_eq!(sim_config(&good)["poolPassword"], "hunter2");
    app.stop();
}

#[test]
fn corrupted_writes_are_retried_then_rolled_back_and_a_rejected_config_is_restored() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let flash = esp32::huge_app_flash(&files("pool.example.org")).unwrap();
    let chip = sim(32, flash);
    let mut app = App::start(dir.path(), &[("chip", &chip)], 10);
    let id = app.miner_id("chip");
    app.wait_lines_after(id, 0);
    let path = format!("/api/miner/{id}/set_config");

    // The first pass over the partition's first block is damaged on the chip: the MD5 check
    // catches it and the second attempt goes through.
    let starts = Arc::new(AtomicU32::new(0));
    let n = starts.clone();
    chip.set_write_hook(Some(Box::new(move |addr, block: &mut [u8]| {
        if addr == 0x31_0000 && n.fetch_add(1, Ordering::SeqCst) < 1 {
            block[100] ^= 0xFF;
        }
    })));
    let (row, seen) = app.run(&path, &new_config("solo.ckpool.org", 3333));
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert!(
        steps(&row)
            .iter()
            .any(|s| s.contains("MD5 mismatch") && s.contains("attempt 1")),
        "{:#?}",
        steps(&row)
    );
    assert_eq!(sim_config(&chip)["poolString"], "solo.ckpool.org");

    // Damaged on the wire instead (one FLASH_DATA frame, op 0x03, loses a bit): the ROM's
    // checksum refuses the block, the attempt fails and the second one goes through.
    chip.set_write_hook(None);
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    chip.set_transit_hook(Some(Box::new(move |f: &mut Vec<u8>| {
        if f.get(1) == Some(&0x03) && h.fetch_add(1, Ordering::SeqCst) == 5 {
            if let Some(last) = f.last_mut() {
                *last ^= 0x01;
            }
        }
    })));
    let (row, seen) = app.run(&path, &new_config("solo.ckpool.org", 4444));
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert!(
        steps(&row)
            .iter()
            .any(|s| s.contains("the write failed") && s.contains("attempt 1")),
        "{:#?}",
        steps(&row)
    );
    assert_eq!(sim_config(&chip)["portNumber"], 4444);
    chip.set_transit_hook(None);

    // Both attempts damaged: the backup goes back, verified, the miner keeps its config.
    starts.store(0, Ordering::SeqCst);
    let n = starts.clone();
    chip.set_write_hook(Some(Box::new(move |addr, block: &mut [u8]| {
        if addr == 0x31_0000 && n.fetch_add(1, Ordering::SeqCst) < 2 {
            block[100] ^= 0xFF;
        }
    })));
    let (row, seen) = app.run(&path, &new_config("public-pool.io", 21496));
    assert_eq!(row["status"], "error", "{row:#}\n{seen:#?}");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("MD5 mismatch"), "{detail}");
    assert!(detail.contains("flashed back"), "{detail}");
    assert!(
        detail.contains("previous configuration and mining"),
        "{detail}"
    );
    assert_eq!(row["result"]["rolled_back"], true);
    assert_eq!(sim_config(&chip)["poolString"], "solo.ckpool.org");
    assert!(chip.state(|s| s.configured));
    // A mismatch the writer found itself is not the loader's error: none is stored.
    assert!(row["result"].get("loader_error").is_none(), "{row:#}");
    chip.set_write_hook(None);

    // The image is fine but this firmware will not take the configuration: it opens its setup
    // portal; the backup goes back and the miner returns to its old pool.
    chip.set_boot_hook(Some(Box::new(|text: &str| {
        !text.contains("rejected-pool.example")
    })));
    let (row, seen) = app.run(&path, &new_config("rejected-pool.example", 3333));
    assert_eq!(row["status"], "error", "{row:#}\n{seen:#?}");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("could not parse"), "{detail}");
    assert!(
        detail.contains("previous configuration and mining"),
        "{detail}"
    );
    assert_eq!(sim_config(&chip)["poolString"], "solo.ckpool.org");
    assert!(chip.state(|s| s.configured && !s.in_bootloader));
    app.stop();
}

#[test]
fn a_write_to_a_miner_whose_port_is_gone_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flash = esp32::huge_app_flash(&files("pool.example.org")).unwrap();
    let mut chip = sim(33, flash);
    let mut app = App::start(dir.path(), &[("gone", &chip)], 5);
    let id = app.miner_id("gone");
    app.wait_lines_after(id, 0);
    chip.stop();
    let (row, _) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org", 3333),
    );
    assert_eq!(row["status"], "error");
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.to_lowercase().contains("nothing was written"),
        "{detail}"
    );
    app.stop();
}

#[test]
fn rollout_goes_canary_first_and_stops_at_the_first_miner_that_does_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let flash = esp32::huge_app_flash(&files("pool.example.org")).unwrap();
    let (a, b, c) = (
        sim(41, flash.clone()),
        sim(42, flash.clone()),
        sim(43, flash),
    );
    // The second miner's firmware will not take the new pool.
    b.set_boot_hook(Some(Box::new(|t: &str| !t.contains("solo.ckpool.org"))));
    let mut app = App::start(dir.path(), &[("a", &a), ("b", &b), ("c", &c)], 5);
    let ids: Vec<i64> = ["a", "b", "c"].iter().map(|n| app.miner_id(n)).collect();
    for id in &ids {
        app.wait_lines_after(*id, 0);
    }
    // A bad change is refused before anything starts.
    let (status, v) = app.post(
        "/api/rollout",
        &json!({"change": {"portNumber": 0}, "miners": ids}).to_string(),
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = app.post(
        "/api/rollout",
        &json!({"change": {"poolString": "solo.ckpool.org", "portNumber": 3333}, "miners": ids})
            .to_string(),
    );
    assert_eq!(status, 202, "{v}");
    let rid = v["id"].as_i64().unwrap();
    let start = Instant::now();
    let r = loop {
        let r = app.json(&format!("/api/rollout/{rid}"));
        if r["finished"] == true {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "{r:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let states: Vec<&str> = r["miners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["done", "failed", "skipped"], "{r:#}");
    assert!(r["summary"].as_str().unwrap().contains("b failed"), "{r:#}");
    assert_eq!(sim_config(&a)["poolString"], "solo.ckpool.org");
    // b got its backup back; c was never touched.
    assert_eq!(sim_config(&b)["poolString"], "pool.example.org");
    assert!(b.state(|s| s.configured));
    assert_eq!(sim_config(&c)["poolString"], "pool.example.org");
    assert_eq!(c.state(|s| s.bootloader_entries), 0);
    app.stop();
}

#[test]
fn unplugged_mid_flash_is_a_clear_error_and_the_backup_restores_on_replug() {
    let dir = tempfile::tempdir().unwrap();
    let flash = esp32::huge_app_flash(&files("pool.example.org")).unwrap();
    let chip = sim(51, flash.clone());
    let mut app = App::start(dir.path(), &[("pulled", &chip)], 5);
    let id = app.miner_id("pulled");
    app.wait_lines_after(id, 0);
    // The cable comes out a quarter of the way through the partition.
    let power = chip.power_switch();
    chip.set_write_hook(Some(Box::new(move |addr, _: &mut [u8]| {
        if addr >= 0x31_0000 + 0x4_0000 {
            power.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    })));
    let (row, seen) = app.run(
        &format!("/api/miner/{id}/set_config"),
        &new_config("solo.ckpool.org", 3333),
    );
    assert_eq!(row["status"], "error", "{row:#}\n{seen:#?}");
    let detail = row["detail"].as_str().unwrap();
    let backup = row["result"]["backup_id"].as_i64().unwrap();
    assert!(detail.contains("cut off"), "{detail}");
    assert!(
        detail.contains(&format!("Backup #{backup} (")) && detail.contains("will be written back"),
        "{detail}"
    );
    assert_eq!(row["result"]["restore_on_replug"], backup);
    // The loader's error that cut the write off is stored by kind, beside the sentence: the
    // chip went silent mid-write; the rollback could not reach it either.
    assert_eq!(row["result"]["loader_error"], "timeout", "{row:#}");
    assert!(
        row["result"]["rollback_loader_error"].is_string(),
        "{row:#}"
    );
    // The flash really is half written. The flasher stub erases as it writes (esptool
    // `flash_defl_begin`), so past the cut the old image is still there: a mix that may or may
    // not mount, and that no boot confirmed.
    let half = chip.flash();
    assert_ne!(half[0x31_0000..0x3F_0000], flash[0x31_0000..0x3F_0000]);

    // Plugged back in (a new device node, as after a real replug): whatever it boots into,
    // the restore of the backup is queued by itself as soon as the port opens.
    let back = sim(51, half);
    app.registry.register(&back.path, back.line_control());
    {
        let (conn, _) = db::open_writer(&app.db).unwrap();
        conn.execute(
            "UPDATE miners SET port = ?1 WHERE id = ?2",
            rusqlite::params![back.path, id],
        )
        .unwrap();
    }
    let cut_off = row["id"].as_i64().unwrap();
    let start = Instant::now();
    let restore = loop {
        let conn = db::open_reader(&app.db).unwrap();
        let next: Option<i64> = conn
            .query_row(
                "SELECT max(id) FROM miner_commands WHERE miner_id = ?1 AND id > ?2",
                rusqlite::params![id, cut_off],
                |r| r.get(0),
            )
            .unwrap();
        if let Some(next) = next {
            break next;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no restore was queued"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (row, seen) = app.follow(restore);
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert!(row["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("backup #{backup} restored")));
    assert_eq!(sim_config(&back)["poolString"], "pool.example.org");
    assert!(back.state(|s| s.configured));
    app.stop();
}
