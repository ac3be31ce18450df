//! Firmware stories over pseudo-terminals, end to end through `shepherd run`: a miner that
//! restores its counters from NVS rebooting three times, a LilyGo T3, a board whose screen
//! prints no hashrate, a worker the pool rejects, Wi-Fi lost and back, and a brown-out reboot
//! storm. Each miner's lines are the firmware's (cited in `src/miner/parse/rules.rs`).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Running;
use serde_json::Value;
use shepherd::sim::nerdminer::{Board, SimMiner};
use shepherd::sim::pty::Pty;

const WAIT: Duration = Duration::from_secs(60);

fn add_miner(db: &Path, name: &str, port: &Path) {
    let out = Command::new(common::bin())
        .args([
            "miners",
            "--database",
            db.to_str().unwrap(),
            "add",
            "--name",
            name,
            "--port",
            port.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(pty: &Pty, lines: &[String]) {
    let mut m = pty.master.try_clone().unwrap();
    for l in lines {
        m.write_all(l.as_bytes()).unwrap();
        m.write_all(b"\r\n").unwrap();
    }
    m.flush().unwrap();
}

fn ticks(sim: &mut SimMiner, n: usize) -> Vec<String> {
    (0..n).flat_map(|_| sim.tick()).collect()
}

fn miner<'a>(herd: &'a Value, name: &str) -> Option<&'a Value> {
    herd["miners"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == name)
}

fn verdict(herd: &Value, name: &str) -> String {
    miner(herd, name)
        .and_then(|m| m["diagnosis"]["verdict"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn alerts_for(alerts: &Value, list: &str, name: &str, rule: &str) -> usize {
    alerts[list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["miner"] == name && x["rule"] == rule)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn firmware_stories_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shepherd.db");
    let names = ["nvs", "t3", "silent", "rejected", "wifi", "storm"];
    let ptys: Vec<Pty> = names.iter().map(|_| Pty::open().unwrap()).collect();
    for (name, pty) in names.iter().zip(&ptys) {
        add_miner(&db, name, &pty.path);
    }
    let config = format!(
        "{}[alerts]\ninterval_secs = 1\n",
        common::OFFLINE_PRICE_CONFIG
    );
    let mut run = Running::start_with(dir.path(), &config, &[]);
    run.wait_up();
    // Every reader must own its port before lines are written, or the first ones are lost.
    run.wait_json("/api/herd_data", WAIT, |v| {
        v["miners"]
            .as_array()
            .is_some_and(|a| a.len() == names.len() && a.iter().all(|m| m["status"] != "offline"))
    });

    // 1. The pool refuses the worker (first: its alert also shows the rules are running, so
    // what follows is news to them, not history); the firmware hashes on (stratum.cpp:144, :42), its
    // pool-accepted share counter stays at 0.
    let rejected = SimMiner::new(14, Board::Display);
    let mut lines = rejected.boot_lines();
    lines.push(
        r#"  Receiving: {"id":2,"result":false,"error":[24,"Unauthorized worker",null]}"#.into(),
    );
    lines.push("ERROR: 24 | reason: Unauthorized worker ".into());
    for k in 1..=10 {
        lines.push(format!(
            ">>> Completed 0 share(s), {} Khashes, avg. hashrate 55.00 KH/s",
            k * 55
        ));
    }
    write(&ptys[3], &lines);
    let herd = run.wait_json("/api/herd_data", WAIT, |v| {
        verdict(v, "rejected") == "worker_rejected"
    });
    let m = miner(&herd, "rejected").unwrap();
    let auth = &m["diagnosis"]["links"][3];
    assert_eq!(auth["link"], "authorized");
    assert_eq!(auth["state"], "failed");
    assert!(m["diagnosis"]["summary"]
        .as_str()
        .unwrap()
        .contains("Unauthorized worker"));
    run.wait_json("/api/alerts", WAIT, |a| {
        alerts_for(a, "active", "rejected", "worker_rejected") == 1
    });
    let out = Command::new(common::bin())
        .args(["miners", "--database", db.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("why: worker rejected") && text.contains("Unauthorized worker"),
        "{text}"
    );

    // 2. "saveStatsToNVS": true, a block, then three reboots restoring the last save.
    let mut nvs = SimMiner::new(11, Board::NoDisplay).with_saved_stats();
    let mut lines = nvs.boot_lines();
    lines.extend(ticks(&mut nvs, 60));
    lines.extend(nvs.find_block());
    lines.extend(ticks(&mut nvs, 5));
    lines.extend(nvs.save_stats());
    lines.extend(ticks(&mut nvs, 30));
    for _ in 0..3 {
        lines.extend(nvs.reboot("SW_CPU_RESET"));
        lines.extend(ticks(&mut nvs, 40));
        lines.extend(nvs.save_stats());
        lines.extend(ticks(&mut nvs, 10));
    }
    write(&ptys[0], &lines);
    let herd = run.wait_json("/api/herd_data", WAIT, |v| {
        miner(v, "nvs").is_some_and(|m| m["restarts"] == 3 && m["lines_total"] == lines.len())
    });
    // Totals exact, the one real block counted once, restored counters never new.
    let m = miner(&herd, "nvs").unwrap();
    assert_eq!(m["shares"], nvs.accepted_total(), "{m:#}");
    assert_eq!(m["blocks_found"], 1, "{m:#}");
    assert_eq!(m["stats_restored"], true);
    assert_eq!(m["shares_meaning"], "pool_accepted");
    assert!(m["time_mining_secs"].as_i64().unwrap() > m["uptime_secs"].as_i64().unwrap());
    run.wait_json("/api/alerts", WAIT, |a| {
        alerts_for(a, "history", "nvs", "block_found") >= 1
    });

    // 3. LilyGo T3: its own status line (ssd1306DisplayDriver.cpp:22).
    let mut t3 = SimMiner::new(12, Board::LilyGoT3);
    let mut lines = t3.boot_lines();
    lines.insert(3, "SSD1306 128x64 display driver initialized".into());
    lines.extend(ticks(&mut t3, 20));
    write(&ptys[1], &lines);
    let herd = run.wait_json("/api/herd_data", WAIT, |v| {
        verdict(v, "t3") == "mining"
            && miner(v, "t3").is_some_and(|m| m["display"] == "SSD1306 128x64")
    });
    let m = miner(&herd, "t3").unwrap();
    assert!(m["hashrate_khs"].as_f64().unwrap() > 40.0, "{m:#}");

    // 4. A screen that prints no hashrate: only pool traffic. Online, "mining, hashrate not
    // reported", resting on the pool traffic.
    let mut silent = SimMiner::new(13, Board::SilentScreen);
    let mut lines = silent.boot_lines();
    lines.extend(ticks(&mut silent, 60));
    lines.push("    Parsing Method [MINING NOTIFY]".into());
    write(&ptys[2], &lines);
    let herd = run.wait_json("/api/herd_data", WAIT, |v| {
        verdict(v, "silent") == "mining_unreported"
    });
    let m = miner(&herd, "silent").unwrap();
    assert_eq!(m["status"], "online");
    assert_eq!(m["hashrate_khs"], Value::Null);
    let basis = m["diagnosis"]["basis"].as_str().unwrap();
    assert!(basis.starts_with("pool traffic"), "{basis}");

    // 5. Wi-Fi lost (wManager.cpp:440, status 5), mining stops (mining.cpp:1250); then back.
    let mut wifi = SimMiner::new(15, Board::Display);
    let mut lines = wifi.boot_lines();
    lines.extend(ticks(&mut wifi, 10));
    lines.push("[Error] - current status: 5".into());
    for _ in 0..5 {
        lines.push(">>> [i] Miner: newJob>true / inRun>false) - Client: connected>false / subscribed>false / wificonnected>false".into());
    }
    write(&ptys[4], &lines);
    let herd = run.wait_json("/api/herd_data", WAIT, |v| verdict(v, "wifi") == "no_wifi");
    let link = &miner(&herd, "wifi").unwrap()["diagnosis"]["links"][0];
    assert!(link["reason"].as_str().unwrap().contains("connection lost"));
    let mut back = vec![
        "CONNECTED - Current ip: 192.168.1.60".to_string(),
        "[WORKER] ==> Mining subscribe".into(),
        "  Sending  : {\"id\": 1, \"method\": \"mining.subscribe\", \"params\": [\"NerdMinerV2/V1.8.3\"]}".into(),
        "    Parsing Method [MINING NOTIFY]".into(),
    ];
    back.extend(ticks(&mut wifi, 5));
    write(&ptys[4], &back);
    run.wait_json("/api/herd_data", WAIT, |v| verdict(v, "wifi") == "mining");

    // 6. A brown-out storm: the detector's line, then the ROM banner naming it, three times.
    let mut storm = SimMiner::new(16, Board::NoDisplay);
    let mut lines = storm.boot_lines();
    lines.extend(ticks(&mut storm, 10));
    write(&ptys[5], &lines);
    for i in 0..3 {
        // A real reboot takes the ROM's boot time (well over the millisecond the reader stamps
        // one read with): each one arrives apart, as on a board.
        std::thread::sleep(Duration::from_millis(300));
        let mut lines = vec![
            format!("storm marker {i}"),
            "Brownout detector was triggered".into(),
        ];
        lines.extend(storm.reboot("RTCWDT_BROWN_OUT_RESET"));
        lines.extend(ticks(&mut storm, 3));
        write(&ptys[5], &lines);
    }
    let herd = run.wait_json("/api/herd_data", WAIT, |v| {
        miner(v, "storm").is_some_and(|m| m["restarts"] == 3)
    });
    // Three records with cause and crash context; storm and brown-out alerts.
    let storm_id = miner(&herd, "storm").unwrap()["id"].as_i64().unwrap();
    let reboots = run.wait_json(&format!("/api/miners/{storm_id}/reboots"), WAIT, |r| {
        r["reboots"].as_array().is_some_and(|a| a.len() == 3)
    });
    for (i, r) in reboots["reboots"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .enumerate()
    {
        assert_eq!(r["cause"], "brownout", "{r:#}");
        assert_eq!(r["reset_reason"], "RTCWDT_BROWN_OUT_RESET");
        let ctx = r["context"].as_str().unwrap();
        assert!(
            ctx.contains(&format!("storm marker {i}")) && ctx.contains("Brownout detector"),
            "reboot {i}: {ctx}"
        );
    }
    run.wait_json("/api/alerts", WAIT, |a| {
        alerts_for(a, "active", "storm", "reboot_storm") == 1
            && alerts_for(a, "history", "storm", "brownout") >= 1
    });
    let page = run.get(&format!("/miners/{storm_id}")).unwrap().1;
    assert!(page.contains("Why (not) mining") && page.contains("lines before it"));

    // After all that, the NVS miner's block is still one alert: its reboots restored the
    // block counter, which is never a new block.
    let alerts = run.wait_json("/api/alerts", WAIT, |_| true);
    assert_eq!(
        alerts_for(&alerts, "history", "nvs", "block_found"),
        1,
        "{alerts:#}"
    );
    run.terminate();
}
