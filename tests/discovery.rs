//! Discovery end to end, in-process: synthetic device events go to the DiscoveryActor's
//! address, the same one the udev monitor and the fallback scan send to. A simulated
//! NerdMiner on a pseudo-terminal stands in for the board: plugged in → offered at
//! /onboarding (with what the probe read from it) → added through the HTTP form → online →
//! unplugged → offline at once → plugged in again on another tty → the same miner online.

mod common;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Addr;
use serde_json::Value;
use shepherd::app::{App, Options};
use shepherd::config::Config;
use shepherd::discovery::{DeviceEvent, DiscoveryActor, Feed};
use shepherd::model::device::DeviceInfo;

const SERIAL: &str = "F4:12:FA:5B:C3:10";
const LINK_NAME: &str = "usb-Espressif_USB_JTAG_serial_debug_unit_F4:12:FA:5B:C3:10-if00";

/// `App::start` on its own thread and actix system, as `shepherd run` runs it, with device
/// events only from the test.
struct InProcess {
    port: u16,
    db: PathBuf,
    discovery: Addr<DiscoveryActor>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    fn start(dir: &Path) -> Self {
        // The app's log, shown with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("shepherd=debug")
            .with_test_writer()
            .try_init();
        let port = common::free_port();
        let text = format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[summarizer]\ninterval_secs = 1\nstall_secs = 10\n\
             [ingest]\nbatch_millis = 100\nmax_retry_secs = 2\n[discovery]\nprobe_secs = 3\n"
        );
        let mut config = Config::parse(&text, Path::new("test.toml")).unwrap();
        let db = dir.join("shepherd.db");
        config.database.path = db.clone();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let options = Options {
                    demo: 0,
                    devices: Feed::Injected,
                    sims: Default::default(),
                };
                let app = App::start(config, options).await.unwrap();
                addr_tx.send(app.discovery().unwrap()).unwrap();
                let _ = stop_rx.await;
                app.stop().await;
            });
        });
        let discovery = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let app = InProcess {
            port,
            db,
            discovery,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        app.wait("server up", |a| a.get("/healthz").0 == 200);
        app
    }

    fn send(&self, event: DeviceEvent) {
        self.discovery.do_send(event);
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> (u16, String) {
        match Self::agent().get(&self.url(path)).call() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    /// POSTs a form as the browser would from our own page (`origin`), or bare.
    fn post(&self, path: &str, origin: bool, form: &[(&str, &str)]) -> (u16, String, String) {
        let mut req = Self::agent().post(&self.url(path));
        if origin {
            req = req.header("Origin", format!("http://127.0.0.1:{}", self.port));
        }
        let mut r = req.send_form(form.iter().copied()).unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.body_mut().read_to_string().unwrap_or_default();
        (r.status().as_u16(), body, location)
    }

    fn herd(&self) -> Value {
        serde_json::from_str(&self.get("/api/herd_data").1).unwrap_or(Value::Null)
    }

    fn miner(&self, name: &str) -> Value {
        self.herd()["miners"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["name"] == name).cloned())
            .unwrap_or(Value::Null)
    }

    fn query<T: rusqlite::types::FromSql>(&self, sql: &str) -> Option<T> {
        let conn = rusqlite::Connection::open(&self.db).ok()?;
        conn.query_row(sql, [], |r| r.get(0)).ok()
    }

    /// Waits for `cond`, or fails naming `what`.
    fn wait(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(45) {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out waiting for {what}; herd: {:#}\nonboarding page:\n{}",
            self.herd(),
            self.get("/onboarding").1
        );
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // After a failure the app may be wedged: do not hang the test run on it.
        if let (Some(t), false) = (self.thread.take(), std::thread::panicking()) {
            t.join().unwrap();
        }
    }
}

/// A T-Display S3 as udev describes it, at `tty`.
fn t_display_s3(tty: &str, by_id: Option<&Path>) -> DeviceInfo {
    DeviceInfo {
        tty: tty.into(),
        by_id: by_id.map(|p| p.display().to_string()),
        vid: Some(0x303a),
        pid: Some(0x1001),
        serial: Some(SERIAL.into()),
        manufacturer: Some("Espressif".into()),
        product: Some("USB JTAG/serial debug unit".into()),
    }
}

fn point_link(link: &Path, target: &str) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// The whole flow. With `by_id_link`, the board has a by-id link (a symlink made here) that
/// the miner is read through and that follows it to its new tty; without, the miner's port
/// moves to the new tty.
fn plug_add_unplug_replug(by_id_link: bool) {
    let dir = tempfile::tempdir().unwrap();
    let app = InProcess::start(dir.path());
    let interval = Duration::from_millis(200);

    let mut sim1 = shepherd::sim::spawn(11, interval).unwrap();
    let link = dir.path().join(LINK_NAME);
    if by_id_link {
        point_link(&link, &sim1.path);
    }
    let link_opt = by_id_link.then_some(link.as_path());
    app.send(DeviceEvent::Added(t_display_s3(&sim1.path, link_opt)));

    // Offered for onboarding, with what the probe heard it print at boot.
    app.wait("the new board on /onboarding with its firmware", |a| {
        let page = a.get("/onboarding").1;
        page.contains(SERIAL) && page.contains("V1.8.3")
    });
    let page = app.get("/onboarding").1;
    assert!(page.contains("public-pool.io:21496"), "{page}");
    assert!(!page.contains("bc1q"), "the wallet stays on the miner");
    let (_, dashboard) = app.get("/");
    assert!(
        dashboard.contains("1 new device — add it"),
        "banner missing:\n{dashboard}"
    );
    let id: i64 = app
        .query("SELECT id FROM unconfigured_devices WHERE present = 1")
        .unwrap();
    let id = id.to_string();

    // A form from elsewhere is refused; a bad name comes back with the input and the reason.
    let (status, body, _) = app.post(
        "/onboarding",
        false,
        &[("device_id", &id), ("name", "desk")],
    );
    assert_eq!(status, 403, "{body}");
    let long = "n".repeat(65);
    let (status, body, _) = app.post("/onboarding", true, &[("device_id", &id), ("name", &long)]);
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains(&format!("value=\"{long}\"")),
        "input kept: {body}"
    );
    assert!(body.contains("1 to 64 characters"), "{body}");
    let (status, body, location) =
        app.post("/onboarding", true, &[("device_id", &id), ("name", "desk")]);
    assert_eq!(status, 303, "{body}");
    let (_, added) = app.get(&location);
    assert!(added.contains("Added <strong>desk</strong>"), "{added}");
    assert!(!added.contains(SERIAL), "no longer waiting: {added}");

    // The miner reads the pseudo-terminal through the normal reader.
    app.wait("desk online with a hashrate", |a| {
        let m = a.miner("desk");
        m["status"] == "online" && m["hashrate_khs"].as_f64().is_some_and(|h| h > 0.0)
    });
    let expected_port = if by_id_link {
        link.display().to_string()
    } else {
        sim1.path.clone()
    };
    let desk = app.miner("desk");
    assert_eq!(desk["port"], expected_port.as_str());
    let desk_id = desk["id"].clone();

    // Unplugged: offline at once, saying why.
    app.send(DeviceEvent::Removed(DeviceInfo {
        tty: sim1.path.clone(),
        ..DeviceInfo::default()
    }));
    app.wait("desk offline, unplugged", |a| {
        let m = a.miner("desk");
        m["status"] == "offline"
            && m["status_detail"]
                .as_str()
                .is_some_and(|d| d.contains("unplugged"))
    });
    // The next board is made while the first still exists, so it gets another tty name.
    let sim2 = shepherd::sim::spawn(12, interval).unwrap();
    assert_ne!(sim1.path, sim2.path);
    sim1.stop();
    drop(sim1);
    if by_id_link {
        std::fs::remove_file(&link).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let lines_before = app.miner("desk")["lines_total"].as_i64().unwrap_or(0);

    // Plugged in again: a new tty name, the same serial number.
    if by_id_link {
        point_link(&link, &sim2.path);
    }
    app.send(DeviceEvent::Added(t_display_s3(&sim2.path, link_opt)));
    app.wait("desk online again with new lines", |a| {
        let m = a.miner("desk");
        m["status"] == "online" && m["lines_total"].as_i64().unwrap_or(0) > lines_before + 5
    });
    let desk = app.miner("desk");
    assert_eq!(desk["id"], desk_id, "the same miner");
    let expected_port = if by_id_link {
        link.display().to_string()
    } else {
        sim2.path.clone()
    };
    assert_eq!(desk["port"], expected_port.as_str());
    assert_eq!(app.herd()["miners"].as_array().map(Vec::len), Some(1));
    let waiting: i64 = app
        .query("SELECT count(*) FROM unconfigured_devices")
        .unwrap();
    assert_eq!(waiting, 0, "a known miner is not offered again");
    drop(app);
    drop(sim2);
}

#[test]
fn replugged_miner_follows_its_serial_number_to_a_new_tty() {
    plug_add_unplug_replug(false);
}

#[test]
fn replugged_miner_read_through_its_by_id_link_comes_back() {
    plug_add_unplug_replug(true);
}

#[test]
fn unlisted_chips_and_ignored_boards_stay_off_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let app = InProcess::start(dir.path());
    let ftdi = |tty: &str| DeviceInfo {
        tty: tty.into(),
        vid: Some(0x0403),
        pid: Some(0x6001),
        serial: Some("A50285BI".into()),
        manufacturer: Some("FTDI".into()),
        product: Some("FT232R USB UART".into()),
        ..DeviceInfo::default()
    };
    // USB descriptors are whatever a device says: the page must show them as text.
    let hostile = DeviceInfo {
        tty: "/dev/ttyACM40".into(),
        vid: Some(0x303a),
        pid: Some(0x1001),
        product: Some("<script>alert(1)</script>".into()),
        ..DeviceInfo::default()
    };
    let pl2303 = DeviceInfo {
        tty: "/dev/ttyUSB40".into(),
        vid: Some(0x067b),
        pid: Some(0x2303),
        ..DeviceInfo::default()
    };
    // A board recorded by an earlier run and unplugged while shepherd was stopped.
    rusqlite::Connection::open(&app.db)
        .unwrap()
        .execute(
            "INSERT INTO unconfigured_devices (tty, vid, pid, present) VALUES ('/dev/ttyUSB9', '10c4', 'ea60', 1)",
            [],
        )
        .unwrap();
    app.send(DeviceEvent::Present(vec![
        pl2303,
        ftdi("/dev/ttyUSB41"),
        hostile,
    ]));
    app.wait("the FTDI board offered", |a| {
        a.get("/onboarding").1.contains("A50285BI")
    });
    let stale: bool = app
        .query("SELECT present FROM unconfigured_devices WHERE tty = '/dev/ttyUSB9'")
        .unwrap();
    assert!(!stale, "the first scan marks what is gone as unplugged");
    let page = app.get("/onboarding").1;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "{page}");
    let rows: i64 = app
        .query("SELECT count(*) FROM unconfigured_devices")
        .unwrap();
    assert_eq!(rows, 3, "a PL2303 is not a chip ESP32 boards use");
    let ignore = |tty: &str| {
        let id: i64 = app
            .query(&format!(
                "SELECT id FROM unconfigured_devices WHERE tty = '{tty}'"
            ))
            .unwrap();
        id
    };
    let hostile_id = ignore("/dev/ttyACM40");
    assert_eq!(
        app.post(&format!("/onboarding/{hostile_id}/ignore"), true, &[])
            .0,
        303
    );
    let id = ignore("/dev/ttyUSB41");

    let path = format!("/onboarding/{id}/ignore");
    assert_eq!(app.post(&path, false, &[]).0, 403);
    let (status, _, location) = app.post(&path, true, &[]);
    assert_eq!((status, location.as_str()), (303, "/onboarding"));
    let page = app.get("/onboarding").1;
    assert!(
        page.contains("Ignored (not miners)") && page.contains("Stop ignoring"),
        "{page}"
    );
    assert!(
        !app.get("/").1.contains("new device"),
        "no banner for ignored boards"
    );

    // Replugged on another tty, it stays ignored: the serial number identifies it.
    app.send(DeviceEvent::Removed(ftdi("/dev/ttyUSB41")));
    app.send(DeviceEvent::Added(ftdi("/dev/ttyUSB42")));
    app.wait("the ignored board seen on its new tty", |a| {
        a.query::<String>(
            "SELECT tty FROM unconfigured_devices WHERE present = 1 AND usb_serial = 'A50285BI'",
        )
        .as_deref()
            == Some("/dev/ttyUSB42")
    });
    let ignored: bool = app
        .query("SELECT ignored FROM unconfigured_devices WHERE usb_serial = 'A50285BI'")
        .unwrap();
    assert!(ignored);
    assert!(!app.get("/").1.contains("new device"));

    let (status, _, _) = app.post(&format!("/onboarding/{id}/unignore"), true, &[]);
    assert_eq!(status, 303);
    assert!(app.get("/").1.contains("1 new device"));
}
