//! GET_CONFIG end to end over HTTP, both methods, against simulated ESP32s on pseudo-terminals
//! that receive the DTR/RTS calls the MinerActor makes (through the line-control registry, as
//! in `shepherd run --demo`). The whole app runs in this process so the test owns the sims.

mod common;

use std::time::{Duration, Instant};

use common::in_process::App;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shepherd::db::{self};
use shepherd::flash::partitions::{Partition, PartitionTable, SUBTYPE_NVS, TYPE_APP, TYPE_DATA};
use shepherd::flash::spiffs::SpiffsFile;
use shepherd::sim::esp32::{self, ConfigSource, SimEsp32, SimEsp32Config};

/// Queues GET_CONFIG and follows it to the end; returns the final row and every
/// (status, detail) seen on the way.
fn get_config(app: &App, miner: i64, body: &str) -> (Value, Vec<(String, String)>) {
    app.run(&format!("/api/miner/{miner}/get_config"), body)
}

fn config_json(pool: &str) -> String {
    format!(
        "{{\"poolString\":\"{pool}\",\"portNumber\":3333,\"poolPassword\":\"hunter2\",\"btcString\":\"bc1qtest.worker\",\"gmtZone\":2,\"saveStatsToNVS\":false,\"invertColors\":false,\"Brightness\":250,\"customKey\":\"kept\"}}"
    )
}

fn sim(seed: u64, flash: Vec<u8>, tweak: impl FnOnce(&mut SimEsp32Config)) -> SimEsp32 {
    let mut cfg = SimEsp32Config::new(seed, flash);
    cfg.line_interval = Duration::from_millis(100);
    tweak(&mut cfg);
    SimEsp32::spawn(cfg).unwrap()
}

fn files() -> Vec<SpiffsFile> {
    vec![
        SpiffsFile {
            path: "/config.json".into(),
            data: config_json("pool.example.org").into_bytes(),
        },
        SpiffsFile {
            path: "/notes.txt".into(),
            data: b"hello".to_vec(),
        },
    ]
}

#[test]
fn get_config_over_http_by_flash_and_by_boot_log() {
    let dir = tempfile::tempdir().unwrap();
    let flash = esp32::huge_app_flash(&files()).unwrap();
    let mut good = sim(21, flash.clone(), |_| {});
    let mut app = App::start(dir.path(), &[("good", &good)], 2);
    let id = app.miner_id("good");
    app.wait_lines_after(id, 0);

    // Flash read: progress recorded step by step, config masked, files listed.
    let (row, seen) = get_config(&app, id, r#"{"method":"flash"}"#);
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    let statuses: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert!(statuses.contains(&"running"), "{seen:#?}");
    let result = &row["result"];
    let steps: Vec<&str> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for step in [
        "entering the ROM bootloader",
        "syncing",
        "through the flasher stub at 921600 baud",
        "partition table",
        "SPIFFS partition",
        "MD5",
        "back into its firmware",
        "backup",
    ] {
        assert!(
            steps.iter().any(|d| d.contains(step)),
            "no step mentioning {step:?}: {steps:#?}"
        );
    }
    assert_eq!(result["method"], "flash");
    assert_eq!(result["chip"], "ESP32");
    assert_eq!(result["mac"], "24:d7:eb:10:20:15");
    assert_eq!(result["config"]["poolString"], "pool.example.org");
    assert_eq!(result["config"]["poolPassword"], "***");
    assert_eq!(result["config"]["customKey"], "kept");
    assert_eq!(result["firmware_resumed"], true);
    let mut paths: Vec<&str> = result["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    paths.sort();
    assert_eq!(paths, ["/config.json", "/notes.txt"]);

    // The backup is the partition, byte for byte, with the right sha256, and downloadable.
    let partition = &flash[0x31_0000..0x3F_0000];
    let sha = format!("{:x}", Sha256::digest(partition));
    assert_eq!(result["sha256"], sha);
    let backup_id = result["backup_id"].as_i64().unwrap();
    let (status, bytes) = app.get(&format!("/api/backups/{backup_id}"));
    assert_eq!(status, 200);
    assert_eq!(format!("{:x}", Sha256::digest(&bytes)), sha);
    let conn = db::open_reader(&app.db).unwrap();
    let (path, offset, size, stored_sha, mac): (String, i64, i64, String, String) = conn
        .query_row(
            "SELECT path, offset, size, sha256, mac FROM config_backups WHERE id = ?1",
            [backup_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!((offset, size), (0x31_0000, 0xE_0000));
    assert_eq!(stored_sha, sha);
    assert_eq!(mac, "24:d7:eb:10:20:15");
    assert!(path.starts_with(&dir.path().join("backups").display().to_string()));
    assert_eq!(std::fs::read(&path).unwrap(), partition);

    // The stored configuration is the real one (the page masks it).
    let stored: String = conn
        .query_row(
            "SELECT last_config_json FROM miners WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["poolPassword"], "hunter2");

    // Back in the firmware: log lines resume after the command finished.
    let finished = row["finished_at"].as_i64().unwrap();
    app.wait_lines_after(id, finished);
    assert!(good.state(|s| !s.in_bootloader && s.bootloader_entries == 1));

    // Boot capture: a hard reset (not the bootloader), config from the boot log.
    let (row, seen) = get_config(&app, id, r#"{"method":"boot"}"#);
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert_eq!(row["result"]["method"], "boot");
    assert_eq!(row["result"]["config"]["poolString"], "pool.example.org");
    assert_eq!(row["result"]["config"]["poolPassword"], "***");
    assert!(row["result"]["steps"][0]
        .as_str()
        .unwrap()
        .contains("hard reset"));
    assert_eq!(good.state(|s| s.bootloader_entries), 1);
    app.wait_lines_after(id, row["finished_at"].as_i64().unwrap());

    // Commands queue and run one at a time; backups are pruned to `keep` (2).
    let (_, a) = app.post(&format!("/api/miner/{id}/get_config"), "");
    let (b_row, _) = get_config(&app, id, r#"{"method":"flash"}"#);
    let a_row = app.json(&format!("/api/commands/{}", a["id"]));
    assert_eq!(a_row["status"], "complete", "{a_row:#}");
    assert_eq!(b_row["status"], "complete", "{b_row:#}");
    assert!(b_row["started_at"].as_i64() >= a_row["finished_at"].as_i64());
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM config_backups WHERE miner_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 2);
    let files_left = std::fs::read_dir(dir.path().join("backups").join(id.to_string()))
        .unwrap()
        .count();
    assert_eq!(files_left, 2);

    // The manage page shows it all.
    let (status, page) = app.get(&format!("/miners/manage/{id}"));
    let page = String::from_utf8_lossy(&page);
    assert_eq!(status, 200);
    assert!(
        page.contains("pool.example.org") && !page.contains("hunter2"),
        "{page}"
    );
    assert!(page.contains(&format!("/api/backups/{}", b_row["result"]["backup_id"])));

    // No line was lost around the pauses: every line the chip printed is stored.
    std::thread::sleep(Duration::from_millis(300));
    let written = good.stop();
    app.stop();
    assert_eq!(app.stored_lines(id), written as i64);
}

#[test]
fn firmware_without_spiffs_falls_back_and_deaf_bootloader_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A fork that keeps its settings in NVS: no SPIFFS partition at all.
    let table = PartitionTable {
        partitions: vec![
            Partition::new("nvs", TYPE_DATA, SUBTYPE_NVS, 0x9000, 0x6000),
            Partition::new("factory", TYPE_APP, 0x00, 0x10000, 0x10_0000),
        ],
        md5_checked: true,
    };
    let mut nvs_flash = vec![0xFF; esp32::FLASH_SIZE];
    nvs_flash[0x8000..0x8C00].copy_from_slice(&table.to_bytes());
    let nvs = sim(31, nvs_flash, |c| {
        c.config_source = ConfigSource::Nvs(config_json("nvs.example.org"));
    });
    // A board whose IO0 is not driven by DTR: the bootloader sequence only resets it.
    let deaf = sim(32, esp32::huge_app_flash(&files()).unwrap(), |c| {
        c.io0_wired = false;
    });
    let app = App::start(dir.path(), &[("nvs", &nvs), ("deaf", &deaf)], 10);
    let (nvs_id, deaf_id) = (app.miner_id("nvs"), app.miner_id("deaf"));
    app.wait_lines_after(nvs_id, 0);

    let (row, seen) = get_config(&app, nvs_id, "");
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert_eq!(row["result"]["method"], "boot");
    assert_eq!(row["result"]["config"]["poolString"], "nvs.example.org");
    let fallback = row["result"]["fallback"].as_str().unwrap();
    assert!(fallback.contains("no SPIFFS partition") && fallback.contains("NVS"));
    assert!(
        row["result"]["steps"].as_array().unwrap().iter().any(|d| d
            .as_str()
            .unwrap()
            .contains("falling back to the boot capture")),
        "{row:#}"
    );
    assert!(row["detail"].as_str().unwrap().contains("fell back"));

    let (row, seen) = get_config(&app, deaf_id, r#"{"method":"flash"}"#);
    assert_eq!(row["status"], "error", "{row:#}\n{seen:#?}");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.contains("bootloader not entered"), "{detail}");
    assert!(detail.contains("BOOT"), "{detail}");
    // The loader's error stays typed up to the outcome: its kind is stored beside the sentence.
    assert_eq!(row["result"]["loader_error"], "no_sync", "{row:#}");
    assert!(detail.contains("back into its firmware"), "{detail}");
    assert!(deaf.state(|s| !s.in_bootloader && s.firmware_boots >= 3));
    app.wait_lines_after(deaf_id, row["finished_at"].as_i64().unwrap());

    // Bad requests say what is wrong.
    let (status, v) = app.post(
        &format!("/api/miner/{deaf_id}/get_config"),
        r#"{"method":"usb"}"#,
    );
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("boot"));
    let (status, _) = app.post("/api/miner/9999/get_config", "");
    assert_eq!(status, 404);
    // Another web page (or a request naming no page) cannot reset a miner.
    let path = format!("/api/miner/{deaf_id}/get_config");
    for origin in [Some("http://evil.example"), None] {
        let (status, v) = app.post_from(origin, &path, "");
        assert_eq!(status, 403, "{origin:?}: {v}");
        assert!(v["error"].as_str().unwrap().contains("refused"), "{v}");
    }
    assert_eq!(app.get("/api/commands/9999").0, 404);
    assert_eq!(app.get("/api/backups/9999").0, 404);
    let _ = json!(null);
}

#[test]
fn stopping_shepherd_mid_read_puts_the_miner_back_into_its_firmware() {
    let dir = tempfile::tempdir().unwrap();
    // A slow link: the whole partition would take half a minute.
    let slow = sim(41, esp32::huge_app_flash(&files()).unwrap(), |c| {
        c.rom_delay = Duration::from_millis(2);
    });
    let mut app = App::start(dir.path(), &[("slow", &slow)], 10);
    let id = app.miner_id("slow");
    app.wait_lines_after(id, 0);
    let (status, v) = app.post(
        &format!("/api/miner/{id}/get_config"),
        r#"{"method":"flash"}"#,
    );
    assert_eq!(status, 202);
    let cmd = v["id"].as_i64().unwrap();
    let start = Instant::now();
    loop {
        let row = app.json(&format!("/api/commands/{cmd}"));
        if row["detail"]
            .as_str()
            .is_some_and(|d| d.contains("reading SPIFFS partition"))
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{row:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(slow.state(|s| s.in_bootloader));
    let stopping = Instant::now();
    app.stop();
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "shutdown waited for the whole read"
    );
    assert!(
        slow.state(|s| !s.in_bootloader),
        "miner left in its bootloader"
    );
    let conn = db::open_reader(&app.db).unwrap();
    let (status, detail): (String, String) = conn
        .query_row(
            "SELECT status, detail FROM miner_commands WHERE id = ?1",
            [cmd],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "error");
    assert!(detail.contains("abandoned"), "{detail}");
}
