//! The autopilot inside a running `shepherd run`: two miners on pseudo-terminals speaking the
//! firmware's serial log, one mining on its pool and one whose pool (a stratum stub on
//! loopback that closes every connection) cannot be reached. With failover on and a one-minute
//! wait, the running Shepherd must move the failing miner to its profile's fallback by itself:
//! a `pool_switch` line in its history, the fallback as its active pool, a SET_CONFIG queued
//! through the one write path (the rollout), and a `pool_switched` alert. `[fleet]
//! autopilot_secs = 1` makes it look every second; the test polls with a generous bound and
//! asserts no timing.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Running, OFFLINE_PRICE_CONFIG};
use shepherd::sim::nerdminer::{Board, SimMiner};
use shepherd::sim::pty::Pty;

const ADDR: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";

fn shepherd(args: &[&str]) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A "pool" that accepts the TCP connection and closes it at once: never a stratum answer.
fn refusing_pool() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            drop(s);
        }
    });
    port
}

fn write_lines(master: &mut std::fs::File, lines: &[String]) {
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    let _ = master.write_all(&bytes);
}

/// The boot log of a miner configured for `pool:port`, up to its first connection attempt.
fn boot_until_connect(sim: &SimMiner) -> Vec<String> {
    let mut out = Vec::new();
    for l in sim.boot_lines() {
        let last = l.starts_with("Client not connected");
        out.push(l);
        if last {
            break;
        }
    }
    out
}

fn query_i64(db: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn a_running_shepherd_fails_a_miner_over_to_its_fallback_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shepherd.db");
    let dbs = db.to_str().unwrap();
    let refusing = refusing_pool();
    let good = Pty::open().unwrap();
    let bad = Pty::open().unwrap();
    for (name, pty) in [("good", &good), ("rig", &bad)] {
        shepherd(&[
            "miners",
            "--database",
            dbs,
            "add",
            "--name",
            name,
            "--port",
            pty.path.to_str().unwrap(),
        ]);
    }
    let primary = format!("127.0.0.1:{refusing}");
    shepherd(&[
        "profiles",
        "--database",
        dbs,
        "add",
        "fo",
        "--pool",
        &primary,
        "--pool",
        "localhost:3333",
        "--failover",
        "--down-minutes",
        "1",
        "--back-minutes",
        "1",
        "--no-test",
    ]);
    shepherd(&[
        "profiles",
        "--database",
        dbs,
        "add",
        "public",
        "--pool",
        "public-pool.io:21496",
        "--no-test",
    ]);
    for (name, profile) in [("good", "public"), ("rig", "fo")] {
        shepherd(&[
            "miners",
            "--database",
            dbs,
            "set",
            name,
            "--profile",
            profile,
            "--address",
            ADDR,
        ]);
    }

    let config = format!("{OFFLINE_PRICE_CONFIG}[fleet]\nautopilot_secs = 1\n");
    let run = Running::start_with(dir.path(), &config, &[]);
    run.wait_up();

    // The two boards talk the whole time: "good" mines on public-pool.io; "rig" is set up
    // for the refusing pool and, like the firmware, says each second it cannot connect
    // (mining.cpp prints `Imposible to connect to : <pool>` after a failed connect; the
    // parser's rule for it is in src/miner/parse/rules.rs).
    let stop = Arc::new(AtomicBool::new(false));
    let talker = {
        let stop = stop.clone();
        let mut good_out = good.master.try_clone().unwrap();
        let mut bad_out = bad.master.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut ok = SimMiner::new(1, Board::NoDisplay);
            let mut failing = SimMiner::new(2, Board::NoDisplay);
            failing.pool = "127.0.0.1".into();
            failing.port = refusing;
            write_lines(&mut good_out, &ok.boot_lines());
            write_lines(&mut bad_out, &boot_until_connect(&failing));
            while !stop.load(Ordering::Relaxed) {
                write_lines(&mut good_out, &ok.tick());
                write_lines(
                    &mut bad_out,
                    &[
                        "Client not connected, trying to connect...".to_string(),
                        "Imposible to connect to : 127.0.0.1".to_string(),
                    ],
                );
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    // The dashboard sees one miner mining and one that cannot reach its pool.
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        let verdict = |n: &str| {
            v["miners"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == n)
                .map(|m| m["diagnosis"]["verdict"].clone())
        };
        verdict("good") == Some("mining".into())
            && verdict("rig") == Some("pool_unreachable".into())
    });

    // After the profile's minute, the switch happens by itself (generous bound).
    let start = Instant::now();
    let switched = loop {
        let n = query_i64(
            &db,
            "SELECT count(*) FROM miner_events e JOIN miners m ON m.id = e.miner_id
              WHERE m.name = 'rig' AND e.kind = 'pool_switch'",
        );
        if n > 0 {
            break true;
        }
        if start.elapsed() > Duration::from_secs(240) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(switched, "no automatic switch; log:\n{}", run.log_text());
    assert_eq!(
        query_i64(
            &db,
            "SELECT active_pool FROM miner_desired d JOIN miners m ON m.id = d.miner_id WHERE m.name = 'rig'"
        ),
        1
    );
    // The write goes the one way every write goes: a SET_CONFIG for that miner with the
    // fallback pool, and nothing for the miner that was fine.
    let start = Instant::now();
    while query_i64(
        &db,
        "SELECT count(*) FROM miner_commands c JOIN miners m ON m.id = c.miner_id
          WHERE m.name = 'rig' AND c.command = 'SET_CONFIG' AND c.payload LIKE '%localhost%'",
    ) == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no SET_CONFIG queued; log:\n{}",
            run.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        query_i64(
            &db,
            "SELECT count(*) FROM miner_commands c JOIN miners m ON m.id = c.miner_id
              WHERE m.name = 'good' AND c.command = 'SET_CONFIG'"
        ),
        0
    );
    // And the owner hears of it: an alert, not only a history line.
    let alerts = run.wait_json("/api/alerts", Duration::from_secs(30), |v| {
        v["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|a| a["rule"] == "pool_switched"))
    });
    let a = alerts["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "pool_switched")
        .unwrap()
        .clone();
    assert_eq!(a["miner"], "rig", "{a:#}");
    assert!(
        a["message"].as_str().unwrap().contains("localhost:3333"),
        "{a:#}"
    );
    // The failover memory is in the database for the next start.
    assert!(
        query_i64(
            &db,
            "SELECT count(*) FROM failover_state f JOIN miners m ON m.id = f.miner_id
              WHERE m.name = 'rig' AND f.state_json LIKE '%\"writes\":[1%'"
        ) == 1
    );
    stop.store(true, Ordering::Relaxed);
    talker.join().unwrap();
}
