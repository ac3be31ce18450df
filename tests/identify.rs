//! Identify end to end: `POST /api/miner/{id}/identify` queues RESET, the miner's own reader
//! resets the simulated ESP32 through its serial lines, the firmware boots again (visible on a
//! real board's screen), and the reset appears in the command list with its reason.

mod common;

use std::time::Duration;

use common::in_process::App;
use shepherd::flash::spiffs::SpiffsFile;
use shepherd::sim::esp32::{self, SimEsp32, SimEsp32Config};

#[test]
fn identify_reboots_the_simulated_miner_through_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimEsp32Config::new(
        7,
        esp32::huge_app_flash(&[SpiffsFile {
            path: "/config.json".into(),
            data: br#"{"poolString":"pool.example.org","portNumber":3333,"btcString":"bc1qtest"}"#
                .to_vec(),
        }])
        .unwrap(),
    );
    cfg.line_interval = Duration::from_millis(100);
    let sim = SimEsp32::spawn(cfg).unwrap();
    let mut app = App::start(dir.path(), &[("demo-7", &sim)], 2);
    let id = app.miner_id("demo-7");
    app.wait_lines_after(id, 0);
    let boots = sim.state(|s| s.firmware_boots);

    // A cross-site page cannot reset a miner.
    let (status, _) = app.post_from(
        Some("http://evil.example"),
        &format!("/api/miner/{id}/identify"),
        "",
    );
    assert_eq!(status, 403);
    assert_eq!(sim.state(|s| s.firmware_boots), boots);

    let (row, seen) = app.run(&format!("/api/miner/{id}/identify"), "");
    assert_eq!(row["status"], "complete", "{row:#}\n{seen:#?}");
    assert_eq!(row["command"], "RESET");
    assert_eq!(row["result"]["reason"], "identify");
    assert!(
        seen.iter()
            .any(|(_, d)| d.starts_with("identify: resetting")),
        "{seen:#?}"
    );
    // The command ends on the boot banner; the simulated chip counts the boot as it starts
    // the firmware, just after printing it.
    let start = std::time::Instant::now();
    while sim.state(|s| s.firmware_boots) <= boots && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        sim.state(|s| s.firmware_boots) > boots,
        "the board did not reboot"
    );
    assert!(!sim.state(|s| s.in_bootloader), "left in the ROM loader");
    // The reader keeps reading after the reset.
    let after = shepherd::clock::now_ms();
    app.wait_lines_after(id, after);

    let (status, _) = app.post("/api/miner/9999/identify", "");
    assert_eq!(status, 404);

    // The operations pages answer for this herd.
    let inc = app.json("/api/incidents?miner=demo-7");
    assert_eq!(inc["availability"][0]["miner"], "demo-7", "{inc:#}");
    assert!(inc["incidents"].is_array());
    assert_eq!(app.get("/api/incidents?kind=bored").0, 400);
    assert_eq!(app.get("/api/incidents?miner=nobody").0, 404);
    for page in [
        "/incidents",
        "/ports",
        "/firmware",
        &format!("/miners/{id}"),
    ] {
        let (status, body) = app.get(page);
        assert_eq!(status, 200, "{page}");
        assert!(String::from_utf8_lossy(&body).contains("</html>"), "{page}");
    }
    let fw = app.json("/api/firmware");
    assert!(
        fw["groups"].as_array().unwrap().iter().any(|g| g["miners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["miner"] == "demo-7")),
        "{fw:#}"
    );
    assert!(app.json("/api/ports")["buses"].is_array());
    assert!(app.json("/api/identifying")["miners"].is_array());
    app.stop();
}
