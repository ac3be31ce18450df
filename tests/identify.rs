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

/// `shepherd identify NAME`, the real binary, against `shepherd run --demo 1`: the miner shows
/// as identifying while its reset is on, the command says which board rebooted and exits 0,
/// the board's reboot is counted, and it mines again. An unknown name fails with a message.
#[test]
fn identify_cli_against_a_running_shepherd() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let run = common::Running::start(dir.path(), &["--demo", "1"]);
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 1
    });
    let miner = &herd["miners"][0];
    assert_eq!(miner["name"], "demo-1");
    let id = miner["id"].as_i64().unwrap();
    let restarts = miner["restarts"].as_i64().unwrap();

    let child = Command::new(common::bin())
        .args(["identify", "demo-1", "--timeout", "60", "--database"])
        .arg(&run.db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // From the moment it is queued until the board mines again, the herd says "identifying".
    let start = std::time::Instant::now();
    loop {
        let (_, body) = run.get("/api/identifying").unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["miners"]
            .as_array()
            .is_some_and(|m| m.contains(&serde_json::json!(id)))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never shown as identifying: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("queued RESET #"), "{stderr}");
    assert!(
        stdout.contains("demo-1 is the board whose screen or LED just rebooted"),
        "{stdout}"
    );
    // The reboot is counted, the identifying mark goes once it mines again.
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["miners"][0]["restarts"].as_i64() > Some(restarts) && v["miners"][0]["status"] == "online"
    });
    run.wait_json("/api/identifying", Duration::from_secs(60), |v| {
        v["miners"].as_array().is_some_and(|m| m.is_empty())
    });

    let out = Command::new(common::bin())
        .args(["identify", "nobody", "--database"])
        .arg(&run.db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nobody"), "{stderr}");
}

/// A plug and an unplug reach a client subscribed to the port map's event stream.
#[test]
fn plug_and_unplug_reach_an_open_ports_page() {
    use shepherd::discovery::DeviceEvent;
    use shepherd::model::device::DeviceInfo;
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let mut app = App::start(dir.path(), &[], 2);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    // A guard against a hang, not a timing assertion.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /api/ports/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\n\r\n",
        app.port
    )
    .unwrap();
    let mut seen = String::new();
    let read_until = |s: &mut std::net::TcpStream, what: &str, seen: &mut String| {
        let mut buf = [0u8; 4096];
        while seen.matches(what).count() == 0 {
            let n = s.read(&mut buf).expect("the stream went quiet");
            assert!(n > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen.clear();
    };
    read_until(&mut s, "retry: 3000", &mut seen);
    assert!(seen.is_empty());
    let device = DeviceInfo {
        tty: "/dev/ttyUSB7".into(),
        by_id: None,
        vid: Some(0x1a86),
        pid: Some(0x7523),
        serial: None,
        manufacturer: None,
        product: Some("USB Serial".into()),
    };
    let discovery = app.discovery.clone().expect("discovery is on");
    discovery.do_send(DeviceEvent::Added(device.clone()));
    read_until(&mut s, "event: ports\ndata: 1\n", &mut seen);
    discovery.do_send(DeviceEvent::Removed(device));
    read_until(&mut s, "event: ports\ndata: 2\n", &mut seen);
    app.stop();
}
