//! End to end: `shepherd run --demo 3` shows a live herd, and SIGTERM loses no line.

mod common;

use std::time::Duration;

use common::Running;

#[test]
fn demo_herd_goes_live_and_shutdown_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(dir.path(), &["--demo", "3"]);

    let herd = run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        let miners = v["miners"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        v["totals"]["online"] == 3
            && miners.len() == 3
            && miners
                .iter()
                .all(|m| m["hashrate_khs"].as_f64().is_some_and(|h| h > 0.0))
    });
    assert_eq!(herd["version"], env!("CARGO_PKG_VERSION"));
    assert!(herd["server_time"].as_i64().unwrap() > 0);

    let (status, page) = run.get("/").unwrap();
    assert_eq!(status, 200);
    for name in ["demo-1", "demo-2", "demo-3"] {
        assert!(page.contains(name), "dashboard lacks {name}");
    }
    let (status, css) = run.get("/assets/app.css").unwrap();
    assert_eq!(status, 200);
    assert!(css.contains("--accent"));

    // Let the herd write for a while longer, then stop it mid-stream.
    std::thread::sleep(Duration::from_millis(1500));
    run.terminate();

    let log = run.log_text();
    let conn = rusqlite::Connection::open(&run.db).unwrap();
    let mut checked = 0;
    for line in log.lines() {
        let Some(rest) = line.split("demo miner ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let name = words.next().unwrap();
        assert_eq!(words.next(), Some("wrote"));
        let written: i64 = words.next().unwrap().parse().unwrap();
        let stored: i64 = conn
            .query_row(
                "SELECT count(*) FROM miner_logs l JOIN miners m ON m.id = l.miner_id WHERE m.name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap();
        assert!(written > 50, "{name} wrote only {written} lines");
        assert_eq!(
            stored, written,
            "{name}: simulator wrote {written} lines, database holds {stored}"
        );
        checked += 1;
    }
    assert_eq!(
        checked, 3,
        "expected a line count per simulator in the log:\n{log}"
    );
}
