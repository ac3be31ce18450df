//! Miners added or removed while `shepherd run` is running start and stop without a restart.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Running;

fn miners(db: &std::path::Path, args: &[&str]) {
    let mut all = vec!["miners", "--database", db.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = Command::new(common::bin()).args(&all).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn miner_added_from_the_shell_goes_live_and_removal_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "1"]);
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 1
    });

    // A "real" miner: a simulator the test owns, on its own pseudo-terminal.
    let mut sim = shepherd::sim::spawn(42, Duration::from_millis(200)).unwrap();
    miners(
        &run.db,
        &["add", "--name", "bench-top", "--port", &sim.path],
    );
    run.wait_json("/api/herd_data", Duration::from_secs(30), |v| {
        v["miners"].as_array().unwrap().iter().any(|m| {
            m["name"] == "bench-top"
                && m["status"] == "online"
                && m["hashrate_khs"].as_f64().is_some()
        })
    });

    miners(&run.db, &["remove", "bench-top"]);
    run.wait_json("/api/herd_data", Duration::from_secs(30), |v| {
        v["miners"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["name"] != "bench-top")
    });
    sim.stop();
}

#[test]
fn missing_port_shows_offline_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &[]);
    run.wait_up();
    miners(
        &run.db,
        &[
            "add",
            "--name",
            "ghost",
            "--port",
            "/dev/ttyUSB_DOES_NOT_EXIST",
        ],
    );
    let v = run.wait_json("/api/herd_data", Duration::from_secs(30), |v| {
        v["miners"][0]["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("plugged in"))
    });
    assert_eq!(v["miners"][0]["status"], "offline");
}
