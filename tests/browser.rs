//! The pages in a real browser: headless Chromium driven through chromedriver's WebDriver
//! HTTP API on loopback (plain ureq, no WebDriver crate). A mixed demo herd — seven simulated
//! NerdMiners, two mock Bitaxes (AxeOS over HTTP) — plus one dead miner (a serial port that
//! does not exist) is opened at 800×480, 390×844 (a phone) and 1920×1080; the Bitaxes must be
//! on every page that lists miners and read well beside the NerdMiners; every page must load
//! without console errors and never scroll sideways, kiosk
//! pages not at all, the dead miner must be the first and a red tile/badge, stream columns
//! must not line up on one row, the clock must fill an 800×480 screen, and live values must
//! change without a reload. Each page is saved as <page>-<w>x<h>.png under
//! target/screenshots/, or under docs/screenshots/ (the README's pictures) when
//! `SHEPHERD_SCREENSHOTS=docs` is set, so a plain test run leaves the work tree clean. Skips
//! (and passes) where Chromium or chromedriver is not installed; CI installs both.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Running};
use serde_json::{json, Value};

/// Pages and their screenshot names.
const PAGES: &[(&str, &str)] = &[
    ("/", "dashboard"),
    ("/miners/{id}", "miner"),
    ("/miners/{axe}", "miner-bitaxe"),
    ("/miners/manage/{axe}", "manage-bitaxe"),
    ("/settings", "settings"),
    ("/onboarding", "onboarding"),
    ("/kiosk", "kiosk"),
    ("/kiosk/clock", "kiosk-clock"),
    ("/kiosk/health", "kiosk-health"),
    ("/kiosk/homage", "kiosk-homage"),
    ("/kiosk/stream", "kiosk-stream"),
    ("/kiosk/records", "kiosk-records"),
    ("/login", "login"),
    ("/incidents", "incidents"),
    ("/ports", "ports"),
    ("/firmware", "firmware"),
    ("/fleet", "fleet"),
];

const SIZES: &[(u32, u32)] = &[(800, 480), (390, 844), (1920, 1080)];

/// Where screenshots go: the README's folder only when asked, else under target/.
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = if std::env::var("SHEPHERD_SCREENSHOTS").as_deref() == Ok("docs") {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Red enough to read as "broken": a CSS rgb()/rgba() colour with red well above green/blue.
fn is_red(css: &str) -> bool {
    let n: Vec<f64> = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    n.len() >= 3 && n[0] > 150.0 && n[0] > n[1] + 60.0 && n[0] > n[2] + 60.0
}

fn find(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        let p = Path::new(name);
        if p.is_absolute() && p.exists() {
            return Some(p.to_path_buf());
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let c = dir.join(name);
                if c.exists() {
                    return Some(c);
                }
            }
        }
    }
    None
}

/// chromedriver, killed when the test ends.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Driver {
    fn start(bin: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(v) = d.call("GET", "/status", None) {
                if v["value"]["ready"] == true {
                    return d;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("chromedriver did not become ready");
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let a = agent();
        let resp = match (method, body) {
            ("GET", _) => a.get(&url).call(),
            ("DELETE", _) => a.delete(&url).call(),
            (_, b) => a
                .post(&url)
                .header("Content-Type", "application/json")
                .send(b.unwrap_or(json!({})).to_string()),
        };
        let mut resp = resp.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if status >= 400 {
            return Err(format!("{method} {path}: {status} {v}"));
        }
        Ok(v)
    }
}

struct Session<'a> {
    d: &'a Driver,
    id: String,
}

impl Session<'_> {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.id);
        self.d
            .call(method, &p, body)
            .unwrap_or_else(|e| panic!("{e}"))["value"]
            .clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Browser console entries since the last call (chromedriver's log endpoint).
    fn console(&self) -> Vec<Value> {
        self.cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn screenshot(&self, path: &Path) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        std::fs::write(path, png).unwrap();
    }

    /// Waits until `script` (returning text) gives something other than `before`.
    fn changes(&self, script: &str, timeout: Duration) -> Option<(String, String)> {
        let before = self.js(script).as_str().unwrap_or_default().to_owned();
        let start = Instant::now();
        while start.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(500));
            let now = self.js(script).as_str().unwrap_or_default().to_owned();
            if now != before {
                return Some((before, now));
            }
        }
        None
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self
            .d
            .call("DELETE", &format!("/session/{}", self.id), None);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = A.iter().position(|&x| x == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn open_session<'a>(d: &'a Driver, chromium: &Path, profile: &Path, w: u32, h: u32) -> Session<'a> {
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={w},{h}"),
    ];
    let caps = json!({ "capabilities": { "alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
        "goog:loggingPrefs": { "browser": "ALL" },
    } } });
    let v = d
        .call("POST", "/session", Some(caps))
        .unwrap_or_else(|e| panic!("{e}"));
    let id = v["value"]["sessionId"]
        .as_str()
        .expect("session id")
        .to_owned();
    let s = Session { d, id };
    // Headless windows may add nothing or a little around the page: size the viewport itself.
    let inner = s.js("return [innerWidth, innerHeight]");
    let (iw, ih) = (
        inner[0].as_u64().unwrap_or(0),
        inner[1].as_u64().unwrap_or(0),
    );
    if (iw, ih) != (u64::from(w), u64::from(h)) {
        let rect = s.cmd("GET", "/window/rect", None);
        let ow = rect["width"].as_u64().unwrap_or(0) + u64::from(w) - iw;
        let oh = rect["height"].as_u64().unwrap_or(0) + u64::from(h) - ih;
        s.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": ow, "height": oh })),
        );
    }
    s
}

/// Chromium and chromedriver, or `None` after saying why the test is skipped.
fn browser(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find(&["chromedriver", "/usr/lib/chromium/chromedriver"]);
    if chromium.is_none() || driver.is_none() {
        eprintln!("SKIPPED {test}: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
    }
    Some((chromium?, driver?))
}

/// Polls `script` (returning a boolean) until it is true.
fn wait_true(s: &Session<'_>, script: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if s.js(script) == json!(true) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    false
}

#[test]
fn kiosk_marks_stale_data_and_heals_after_a_restart() {
    let Some((chromium, driver_bin)) = browser("kiosk_marks_stale_data_and_heals_after_a_restart")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut run = Running::start(dir.path(), &["--demo", "1"]);
    run.wait_up();
    let port = run.port;
    let driver = Driver::start(&driver_bin);
    let s = open_session(&driver, &chromium, &dir.path().join("profile"), 800, 480);
    // The dashboard in a first window, the clock kiosk in a second.
    s.go(&run.url("/"));
    let dashboard = s.cmd("GET", "/window", None);
    let kiosk = s.cmd("POST", "/window/new", Some(json!({ "type": "window" })))["handle"].clone();
    s.cmd("POST", "/window", Some(json!({ "handle": kiosk })));
    s.go(&run.url("/kiosk/clock"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        s.js("return document.getElementById('stale').hidden"),
        json!(true)
    );
    let before = s.js("return document.querySelector('[data-f=\"online\"]').textContent");
    run.terminate();
    assert!(
        wait_true(&s, "return !document.getElementById('stale').hidden && document.body.classList.contains('is-stale')", Duration::from_secs(30)),
        "no stale banner after the server stopped"
    );
    let banner = s.js("return document.getElementById('stale').textContent");
    assert!(
        banner
            .as_str()
            .unwrap_or_default()
            .contains("data is stale since"),
        "{banner}"
    );
    // The last values stay, marked stale, rather than vanishing.
    assert_eq!(
        s.js("return document.querySelector('[data-f=\"online\"]').textContent"),
        before
    );
    // The dashboard greys out everything it can no longer vouch for, badges included.
    s.cmd("POST", "/window", Some(json!({ "handle": dashboard })));
    assert!(
        wait_true(&s, "return document.body.classList.contains('is-stale') && getComputedStyle(document.getElementById('herd')).filter.includes('grayscale') && !document.getElementById('stale').hidden", Duration::from_secs(30)),
        "the dashboard did not grey out while the server was away"
    );
    s.cmd("POST", "/window", Some(json!({ "handle": kiosk })));
    let run = Running::start_on(
        dir.path(),
        port,
        common::OFFLINE_PRICE_CONFIG,
        &["--demo", "1"],
    );
    run.wait_up();
    assert!(
        wait_true(&s, "return document.getElementById('stale').hidden && !document.body.classList.contains('is-stale')", Duration::from_secs(30)),
        "the kiosk did not recover after the server came back"
    );
}

/// A uhubctl that lists the demo's hubs: `1-1` switches each port, `1-1.2` is ganged.
fn fake_uhubctl(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let prog = dir.join("uhubctl");
    std::fs::write(
        &prog,
        "#!/bin/sh\ncat <<'EOF'\n\
         Current status for hub 1-1 [2109:3431 USB2.0 Hub, USB 2.10, 4 ports, ppps]\n  \
         Port 1: 0103 power enable connect [10c4:ea60 Silicon Labs CP2102 USB to UART Bridge Controller 0001]\n  \
         Port 2: 0503 power highspeed enable connect [1a86:8091 USB2.0 HUB, USB 2.00, 7 ports, ganged]\n  \
         Port 3: 0103 power enable connect [1a86:7523 QinHeng Electronics USB Serial]\n  \
         Port 4: 0100 power\n\
         Current status for hub 1-1.2 [1a86:8091 USB2.0 HUB, USB 2.00, 7 ports, ganged]\n  \
         Port 1: 0103 power enable connect [1a86:7523 QinHeng Electronics USB Serial]\n\
         EOF\n",
    )
    .unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    prog
}

/// A fake sysfs tree with the demo's miners on it, as the kernel lays it out: bus 1 holds hub
/// `1-1` (demo-1, a CP2102 with a serial, on port 1; hub `1-1.2` with four serial-less CH340
/// boards on port 2; demo-6 on port 3); bus 3 holds demo-7, an ESP32-S3 on its own USB. Each
/// tty node links to the simulator's pty, so the port map finds the demo's miners.
fn fake_port_map(root: &Path, db: &Path) {
    use std::os::unix::fs::symlink;
    let conn = shepherd::db::open_reader(db).unwrap();
    let port_of = |name: &str| -> String {
        conn.query_row("SELECT port FROM miners WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let write = |path: PathBuf, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{text}\n")).unwrap();
    };
    let usb1 = root.join("sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:01:00.0/usb1");
    let hub = usb1.join("1-1");
    let hub2 = hub.join("1-1.2");
    for (dir, vid, product, ports) in [
        (&hub, "2109", "USB2.0 Hub", "4"),
        (&hub2, "1a86", "USB2.0 HUB", "7"),
    ] {
        write(dir.join("idVendor"), vid);
        write(dir.join("product"), product);
        write(dir.join("maxchild"), ports);
    }
    let usb3 = root.join("sys/devices/platform/scb/fd500000.pcie/pci0000:00/0000:01:00.0/usb3");
    let boards = [
        (
            "demo-1",
            hub.join("1-1.1"),
            "ttyUSB0",
            "10c4",
            "ea60",
            Some("0001"),
        ),
        (
            "demo-2",
            hub2.join("1-1.2.1"),
            "ttyUSB1",
            "1a86",
            "7523",
            None,
        ),
        (
            "demo-3",
            hub2.join("1-1.2.2"),
            "ttyUSB2",
            "1a86",
            "7523",
            None,
        ),
        (
            "demo-4",
            hub2.join("1-1.2.3"),
            "ttyUSB3",
            "1a86",
            "7523",
            None,
        ),
        (
            "demo-5",
            hub2.join("1-1.2.4"),
            "ttyUSB4",
            "1a86",
            "7523",
            None,
        ),
        (
            "demo-6",
            hub.join("1-1.3"),
            "ttyUSB5",
            "1a86",
            "55d4",
            Some("5434012345"),
        ),
        (
            "demo-7",
            usb3.join("3-1"),
            "ttyACM0",
            "303a",
            "1001",
            Some("F4:12:FA:00:11:22"),
        ),
    ];
    for (name, dir, tty, vid, pid, serial) in boards {
        write(dir.join("idVendor"), vid);
        write(dir.join("idProduct"), pid);
        if let Some(s) = serial {
            write(dir.join("serial"), s);
        }
        let base = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let node = dir.join(format!("{base}:1.0")).join(tty);
        std::fs::create_dir_all(&node).unwrap();
        let class = root.join("sys/class/tty").join(tty);
        std::fs::create_dir_all(&class).unwrap();
        symlink(&node, class.join("device")).unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        symlink(port_of(name), root.join("dev").join(tty)).unwrap();
    }
}

/// A week of trouble for the incidents page: stalls, an unplug, a pool outage, a reboot
/// storm, with the resets that self-healing and the owner did.
fn incident_history(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(20)).unwrap();
    let now = shepherd::clock::now_ms();
    let (h, m) = (3_600_000i64, 60_000i64);
    let id = |name: &str| -> i64 {
        conn.query_row("SELECT id FROM miners WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let alerts = [
        (
            "demo-2",
            "offline",
            "demo-2 is stalled",
            now - 150 * h,
            Some(now - 150 * h + 14 * m),
        ),
        (
            "demo-4",
            "offline",
            "demo-4 is offline",
            now - 98 * h,
            Some(now - 97 * h),
        ),
        (
            "demo-1",
            "pool_disconnected",
            "demo-1 cannot reach its pool public-pool.io:21496",
            now - 60 * h,
            Some(now - 59 * h + 20 * m),
        ),
        (
            "demo-3",
            "pool_disconnected",
            "demo-3 cannot reach its pool public-pool.io:21496",
            now - 60 * h,
            Some(now - 59 * h + 20 * m),
        ),
        (
            "demo-5",
            "reboot_storm",
            "demo-5 rebooted 4 times within 30 min",
            now - 30 * h,
            Some(now - 29 * h),
        ),
        (
            "demo-6",
            "offline",
            "demo-6 is stalled",
            now - 5 * h,
            Some(now - 5 * h + 12 * m),
        ),
        (
            "demo-axe-1",
            "offline",
            "demo-axe-1 is offline",
            now - 20 * h,
            Some(now - 20 * h + 6 * m),
        ),
        ("dead-1", "offline", "dead-1 is offline", now - 2 * h, None),
    ];
    for (name, rule, message, first, resolved) in alerts {
        conn.execute(
            "INSERT INTO alerts (miner_id, rule, state, message, first_at, last_sent_at, resolved_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
            rusqlite::params![
                id(name),
                rule,
                if resolved.is_some() { "resolved" } else { "active" },
                message,
                first,
                resolved
            ],
        )
        .unwrap();
    }
    let resets = [
        (
            "demo-2",
            "self-healing: serial reset of a stuck miner",
            "complete",
            "reset through DTR/RTS; booted",
            now - 150 * h + 10 * m,
        ),
        (
            "demo-6",
            "self-healing: serial reset of a stuck miner",
            "complete",
            "reset through DTR/RTS; booted",
            now - 5 * h + 10 * m,
        ),
        (
            "demo-5",
            "identify",
            "complete",
            "reset through DTR/RTS; booted",
            now - 28 * h,
        ),
    ];
    for (name, reason, status, detail, at) in resets {
        conn.execute(
            "INSERT INTO miner_commands (miner_id, command, payload, status, detail, created_at, started_at, finished_at)
             VALUES (?1, 'RESET', ?2, ?3, ?4, ?5, ?5, ?5 + 4000)",
            rusqlite::params![id(name), serde_json::json!({ "reason": reason }).to_string(), status, detail, at],
        )
        .unwrap();
    }
}

#[test]
fn every_page_in_headless_chromium() {
    let Some((chromium, driver_bin)) = browser("every_page_in_headless_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The dead miner: configured on a serial port that is not there.
    let added = Command::new(common::bin())
        .args([
            "miners",
            "add",
            "--name",
            "dead-1",
            "--port",
            "/dev/shepherd-test-no-such-port",
            "--database",
        ])
        .arg(dir.path().join("shepherd.db"))
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    // The ports page reads a fake sysfs tree (filled once the demo's ports exist); self-healing
    // asks a fake uhubctl which hubs switch port power.
    let sys = dir.path().join("sys-root");
    let uhubctl = fake_uhubctl(dir.path());
    let config = format!(
        "{}[self_heal]\nenabled = true\nuhubctl = \"{}\"\n",
        common::OFFLINE_PRICE_CONFIG,
        uhubctl.display()
    );
    let run = Running::start_on_env(
        dir.path(),
        common::free_port(),
        &config,
        &["--demo", "7", "--demo-axeos", "2"],
        &[("SHEPHERD_SYSFS_ROOT", &sys)],
    );
    // Seven simulated NerdMiners, two mock Bitaxes (AxeOS over HTTP) and the dead one.
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 9 && v["totals"]["miners"] == 10
    });
    fake_port_map(&sys, &run.db);
    incident_history(&run.db);
    let ports = run.wait_json("/api/ports", Duration::from_secs(30), |v| {
        v["self_heal"]["hubs"].is_array() && v["buses"].as_array().is_some_and(|b| b.len() == 2)
    });
    assert_eq!(
        ports["buses"][0]["ports"][0]["hub"]["ports"][0]["miner"], "demo-1",
        "{ports:#}"
    );
    let miner_id = herd["miners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["status"] == "online" && m["kind"] != "axeos")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let axe_id = herd["miners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "axeos")
        .unwrap_or_else(|| panic!("no AxeOS miner in the demo herd: {herd:#}"))["id"]
        .as_i64()
        .unwrap();
    let driver = Driver::start(&driver_bin);
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let mut problems = Vec::new();

    for &(w, h) in SIZES {
        let profile = dir.path().join(format!("profile-{w}"));
        let s = open_session(&driver, &chromium, &profile, w, h);
        let size = s.js("return [innerWidth, innerHeight]");
        assert_eq!(size, json!([w, h]), "viewport");
        for (path, name) in PAGES {
            let path = path
                .replace("{id}", &miner_id.to_string())
                .replace("{axe}", &axe_id.to_string());
            s.go(&run.url(&path));
            // Let the first poll land and kiosk canvases draw.
            std::thread::sleep(Duration::from_millis(1800));
            for entry in s.console() {
                if entry["level"] == "SEVERE" {
                    problems.push(format!(
                        "{path} at {w}x{h}: console error {}",
                        entry["message"]
                    ));
                }
            }
            let m = s.js("return [document.documentElement.scrollWidth, innerWidth, document.documentElement.scrollHeight, innerHeight]");
            if m[0].as_u64() > m[1].as_u64()
                || (path.starts_with("/kiosk/") && m[2].as_u64() > m[3].as_u64())
            {
                // Name the elements that stick out, innermost last.
                let wide = s.js("return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > innerWidth + 1).slice(-4).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).join(', ')");
                problems.push(format!("{path} at {w}x{h} scrolls: {m} ({wide})"));
            }
            check_page(&s, &path, w, h, &mut problems);
            s.screenshot(&shots.join(format!("{name}-{w}x{h}.png")));
        }
        // Live values change without a reload.
        s.go(&run.url("/"));
        std::thread::sleep(Duration::from_millis(500));
        s.js("window.__marker = 1; return null");
        let changed = s.changes(
            "return document.querySelector('#herd tbody td[data-k=\"uptime\"]').textContent + '|' + document.querySelector('[data-t=\"shares\"]').textContent",
            Duration::from_secs(20),
        );
        assert!(
            changed.is_some(),
            "dashboard values did not change at {w}x{h}"
        );
        assert_eq!(
            s.js("return window.__marker"),
            json!(1),
            "dashboard reloaded"
        );
        s.go(&run.url("/kiosk/clock"));
        std::thread::sleep(Duration::from_millis(500));
        s.js("window.__marker = 1; return null");
        let changed = s.changes(
            "return document.querySelector('[data-f=\"hashrate\"]').textContent + '|' + document.querySelector('[data-f=\"best\"]').textContent",
            Duration::from_secs(30),
        );
        assert!(
            changed.is_some(),
            "clock kiosk values did not change at {w}x{h}"
        );
        assert_eq!(
            s.js("return window.__marker"),
            json!(1),
            "clock kiosk reloaded"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The per-page checks of issue 19 that a browser can make.
fn check_page(s: &Session<'_>, path: &str, w: u32, h: u32, problems: &mut Vec<String>) {
    let at = format!("{path} at {w}x{h}");
    // The mixed herd: the Bitaxes are on every page that lists miners.
    if [
        "/",
        "/incidents",
        "/firmware",
        "/fleet",
        "/settings",
        "/kiosk/health",
    ]
    .contains(&path)
        && s.js("return document.body.innerText.includes('demo-axe-2')") != json!(true)
    {
        problems.push(format!("{at}: no Bitaxe (demo-axe-2) on the page"));
    }
    match path {
        "/" => {
            // Problems first, in red, with the reason in words beside the badge.
            let first = s.js("const r = document.querySelector('#herd tbody tr'); const b = r.querySelector('.badge'); return [r.querySelector('[data-k=\"name\"]').textContent, getComputedStyle(b).backgroundColor, r.querySelector('.reason') ? r.querySelector('.reason').textContent : '']");
            if first[0] != "dead-1" {
                problems.push(format!(
                    "{at}: the dead miner is not the first row: {first}"
                ));
            }
            if !is_red(first[1].as_str().unwrap_or_default()) {
                problems.push(format!("{at}: the dead miner's badge is not red: {first}"));
            }
            if first[2].as_str().unwrap_or_default().trim().is_empty() {
                problems.push(format!(
                    "{at}: no reason shown beside the dead miner: {first}"
                ));
            }
            // A Bitaxe's TH/s beside a NerdMiner's KH/s, each with its uptime since boot.
            let axe = s.js("return [...document.querySelectorAll('#herd tbody tr')].filter(r => r.querySelector('[data-k=\"name\"]').textContent.startsWith('demo-axe')).map(r => [r.querySelector('[data-k=\"hashrate\"]').textContent, r.querySelector('[data-k=\"status\"]').textContent, r.querySelector('[data-k=\"uptime\"]').textContent])");
            let nerd = s.js("return [...document.querySelectorAll('#herd tbody tr')].find(r => r.querySelector('[data-k=\"name\"]').textContent === 'demo-1').querySelector('[data-k=\"hashrate\"]').textContent");
            let rows = axe.as_array().cloned().unwrap_or_default();
            if rows.len() != 2
                || !rows
                    .iter()
                    .any(|r| r[0].as_str().is_some_and(|t| t.ends_with(" TH/s")))
                || rows.iter().any(|r| {
                    !r[1].as_str().is_some_and(|t| t.contains("online"))
                        || r[2].as_str().is_none_or(|t| t.trim() == "—")
                })
                || !nerd.as_str().is_some_and(|t| t.ends_with(" KH/s"))
            {
                problems.push(format!(
                    "{at}: Bitaxes do not read well beside the NerdMiners: {axe} / demo-1 {nerd}"
                ));
            }
        }
        "/kiosk/health" => {
            let first = s.js("const t = document.querySelector('.k-tile'); return [t.querySelector('.k-name').textContent, getComputedStyle(t).backgroundColor]");
            if first[0] != "dead-1" || !is_red(first[1].as_str().unwrap_or_default()) {
                problems.push(format!(
                    "{at}: the dead miner is not the first, red tile: {first}"
                ));
            }
            if w > h {
                let cols = s.js("return getComputedStyle(document.getElementById('k-grid')).gridTemplateColumns.split(' ').length");
                if cols != json!(5) {
                    problems.push(format!("{at}: 10 tiles in {cols} columns, not 5×2"));
                }
            }
        }
        "/kiosk/clock" if (w, h) == (800, 480) => {
            let r = s.js("const t = document.getElementById('k-time').getBoundingClientRect(); return [t.height, t.width]");
            let (th, tw) = (r[0].as_f64().unwrap_or(0.0), r[1].as_f64().unwrap_or(0.0));
            if th < 0.3 * f64::from(h) || tw < 0.6 * f64::from(w) {
                problems.push(format!("{at}: the time is only {tw}×{th} px"));
            }
        }
        "/kiosk/stream" => {
            // Heads of the columns, in rows: digital rain has them everywhere, not on one row.
            let heads = s.js("return window.KioskRain ? window.KioskRain.heads() : []");
            let rows: std::collections::BTreeSet<i64> = heads
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            let n = heads.as_array().map_or(0, Vec::len);
            if n < 10 || rows.len() * 3 < n {
                problems.push(format!(
                    "{at}: {n} columns with heads on only {} rows",
                    rows.len()
                ));
            }
        }
        "/kiosk/homage" => {
            // Whole-number scaling of the 320×170 screen.
            let r = s.js("const c = document.getElementById('k-screen'); return c.getBoundingClientRect().width / c.width");
            let k = r.as_f64().unwrap_or(0.0);
            if k < 1.0 || (k - k.round()).abs() > 0.01 {
                problems.push(format!(
                    "{at}: the screen is scaled by {k}, not a whole number"
                ));
            }
        }
        _ => {}
    }
}

/// The block celebration, from the "Test celebration" button on /settings: every open
/// dashboard and kiosk goes full screen with it, marked as a test, and it can be dismissed.
#[test]
fn test_celebration_shows_on_dashboard_and_kiosk() {
    let Some((chromium, driver_bin)) = browser("test_celebration_shows_on_dashboard_and_kiosk")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "2"]);
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 2
    });
    let driver = Driver::start(&driver_bin);
    let shots = screenshot_dir();
    let overlay = "return (function(){ const c = document.getElementById('celebration'); \
        return !!c && c.classList.contains('is-test') && c.textContent.includes('BLOCK FOUND') \
        && c.textContent.includes('TEST') && getComputedStyle(c).position === 'fixed' \
        && document.documentElement.clientWidth - c.getBoundingClientRect().width < 1 \
        && document.documentElement.clientHeight - c.getBoundingClientRect().height < 1; })()";
    for &(w, h) in SIZES {
        let s = open_session(&driver, &chromium, &dir.path().join(format!("p-{w}")), w, h);
        s.go(&run.url("/kiosk/records"));
        std::thread::sleep(Duration::from_millis(1500));
        if w == SIZES[0].0 {
            assert_eq!(
                s.js("return !!document.getElementById('celebration')"),
                json!(false),
                "no celebration before the test"
            );
        }
        // The owner presses the button on the settings page (same-origin form post).
        s.go(&run.url("/settings"));
        s.js("document.getElementById('test-celebration').click(); return null");
        assert!(
            wait_true(
                &s,
                "return location.search.includes('saved=celebration')",
                Duration::from_secs(10)
            ),
            "the test celebration form did not come back"
        );
        for (path, name) in [
            ("/kiosk/records", "kiosk-records"),
            ("/", "dashboard"),
            ("/kiosk/homage", "kiosk-homage"),
        ] {
            s.go(&run.url(path));
            assert!(
                wait_true(&s, overlay, Duration::from_secs(15)),
                "no full-screen test celebration on {path} at {w}x{h}"
            );
            std::thread::sleep(Duration::from_millis(400));
            s.screenshot(&shots.join(format!("celebration-test-{name}-{w}x{h}.png")));
        }
        for entry in s.console() {
            assert_ne!(
                entry["level"], "SEVERE",
                "console error: {}",
                entry["message"]
            );
        }
        // Dismissed on this screen, it stays away.
        s.js("document.querySelector('#celebration .celebration-close').click(); return null");
        s.go(&run.url("/kiosk/records"));
        std::thread::sleep(Duration::from_millis(3500));
        assert_eq!(
            s.js("return !!document.getElementById('celebration')"),
            json!(false),
            "dismissed, yet shown again"
        );
    }
    // A real block (as the summarizer records it): shown without the TEST band, naming the miner.
    let db = rusqlite::Connection::open(&run.db).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    db.execute(
        "INSERT INTO found_blocks (miner_key, miner_id, miner_name, at, pool)
         SELECT 'miner:' || id, id, name, ?1, 'public-pool.io' FROM miners ORDER BY id LIMIT 1",
        [now],
    )
    .unwrap();
    let s = open_session(&driver, &chromium, &dir.path().join("p-block"), 800, 480);
    for path in ["/kiosk/clock", "/"] {
        s.go(&run.url(path));
        assert!(
            wait_true(
                &s,
                "return (function(){ const c = document.getElementById('celebration'); \
                 return !!c && !c.classList.contains('is-test') && !c.textContent.includes('TEST') \
                 && c.textContent.includes('BLOCK FOUND') && c.textContent.includes('demo-1') \
                 && c.textContent.includes('public-pool.io'); })()",
                Duration::from_secs(15)
            ),
            "no block celebration on {path}"
        );
    }
    s.screenshot(&shots.join("celebration-block-dashboard-800x480.png"));
    // A new herd record (this screen has seen the older ones): a banner names it.
    db.execute(
        "INSERT INTO share_records (miner_key, miner_id, miner_name, difficulty, at, pool, source,
                                    live, herd_record)
         VALUES ('miner:1', 1, 'demo-1', 1234567.0, ?1, 'public-pool.io', 'share', 1, 1)",
        [now],
    )
    .unwrap();
    assert!(
        wait_true(
            &s,
            "return (function(){ const b = document.getElementById('new-record'); \
             return !!b && !b.hidden && b.textContent.includes('New herd record: 1.23M by demo-1'); })()",
            Duration::from_secs(15)
        ),
        "no new-herd-record banner: {} / {}",
        s.js("return localStorage.getItem('shepherd.record_seen') + ' ' + (document.getElementById('new-record') || {}).outerHTML"),
        s.js("return fetch('/api/herd_data').then(r => r.json()).then(d => JSON.stringify(d.lottery.latest_record))")
    );
}

/// `/fleet` with two profiles (one tested from the Pi against a loopback pool) and a herd in
/// every drift state; saved as fleet-profiles and fleet-drift screenshots under target/ (or
/// docs/screenshots/ with SHEPHERD_SCREENSHOTS=docs).
#[test]
fn fleet_page_in_headless_chromium() {
    let Some((chromium, driver_bin)) = browser("fleet_page_in_headless_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "3"]);
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 3
    });
    let db = run.db.display().to_string();
    let shepherd = |args: &[&str]| {
        let out = Command::new(common::bin()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "public",
        "--pool",
        "public-pool.io:21496",
        "--pool",
        "solo.ckpool.org:3333",
        "--failover",
        "--no-test",
    ]);
    shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "night-solo",
        "--pool",
        "public-pool.io:21496",
        "--pool",
        "solo.ckpool.org:3333",
        "--window",
        "22:00-06:00=1",
        "--no-test",
    ]);
    let addr = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
    for (m, p) in [
        ("demo-1", "public"),
        ("demo-2", "public"),
        ("demo-3", "night-solo"),
    ] {
        shepherd(&[
            "miners",
            "--database",
            &db,
            "set",
            m,
            "--profile",
            p,
            "--address",
            addr,
            "--board",
            "Brightness=120",
        ]);
    }
    // demo-1 read back as desired, demo-2 changed on its setup portal, demo-3 never read.
    let conn = rusqlite::Connection::open(&run.db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let cfg = |pool: &str, worker: &str| {
        json!({"poolString": pool, "portNumber": 21496, "poolPassword": "x", "btcString": format!("{addr}.{worker}"), "Brightness": 120, "gmtZone": 2}).to_string()
    };
    conn.execute("UPDATE miners SET last_config_json = ?1, last_config_at = 1764500000000 WHERE name = 'demo-1'", [cfg("public-pool.io", "demo-1")]).unwrap();
    conn.execute("UPDATE miners SET last_config_json = ?1, last_config_at = 1764500000000 WHERE name = 'demo-2'", [cfg("pool.example.org", "demo")]).unwrap();
    let api = run.wait_json("/api/fleet", Duration::from_secs(10), |v| {
        v["miners"].as_array().is_some_and(|m| m.len() == 3)
    });
    let states: Vec<&str> = api["miners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["drift"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["in_sync", "drifted", "unknown"], "{api:#}");

    let shots = screenshot_dir();
    let driver = Driver::start(&driver_bin);
    let s = open_session(&driver, &chromium, &dir.path().join("profile"), 1920, 1080);
    s.go(&run.url("/fleet"));
    // Fill the form with a loopback pool and press "Test from the Pi".
    let port = common::stratum_stub();
    s.js(&format!(
        "document.querySelector('[name=name]').value = 'garage';\
         document.querySelector('[name=host]').value = '127.0.0.1';\
         document.querySelector('[name=port]').value = '{port}';\
         document.querySelector('[name=fallbacks]').value = 'solo.ckpool.org:3333';\
         document.querySelector('button[value=test]').click(); return null"
    ));
    assert!(
        wait_true(
            &s,
            "return !!document.querySelector('#profile-tests')",
            Duration::from_secs(20)
        ),
        "no test results shown"
    );
    let first = s.js("return document.querySelector('#profile-tests tbody tr').textContent");
    assert!(first.as_str().unwrap().contains("answers"), "{first}");
    s.screenshot(&shots.join("fleet-profiles-1920x1080.png"));
    s.go(&run.url("/fleet?drift=drifted"));
    let rows = s.js("return document.querySelectorAll('#drift tbody tr').length");
    assert_eq!(rows, json!(1));
    s.js("document.querySelector('#drift').scrollIntoView(); return null");
    s.go(&run.url("/fleet#drift"));
    for entry in s.console() {
        assert_ne!(
            entry["level"], "SEVERE",
            "console error {}",
            entry["message"]
        );
    }
    s.screenshot(&shots.join("fleet-drift-1920x1080.png"));

    // The dashboard's herd table says the same: a Config column, a drift filter, and the
    // pool name linked to the worker's page on public-pool.io.
    s.go(&run.url("/"));
    assert!(
        wait_true(
            &s,
            "return document.querySelectorAll('#herd tbody tr[data-drift]').length === 3",
            Duration::from_secs(20)
        ),
        "no drift on the herd table"
    );
    let config = s.js(
        "return [...document.querySelectorAll('#herd tbody tr')].map(r => r.querySelector('[data-k=name]').textContent + ' ' + r.dataset.drift).sort()",
    );
    assert_eq!(
        config,
        json!(["demo-1 in_sync", "demo-2 drifted", "demo-3 unknown"])
    );
    let link = s.js(
        "const r = [...document.querySelectorAll('#herd tbody tr')].find(r => r.querySelector('[data-k=name]').textContent === 'demo-1'); const a = r.querySelector('[data-k=pool] a.worker-link'); return a ? a.href : null",
    );
    assert_eq!(
        link,
        json!(format!("https://web.public-pool.io/#/app/{addr}/demo-1"))
    );
    s.js("const f = document.getElementById('drift-filter'); f.value = 'drifted'; f.dispatchEvent(new Event('change')); return null");
    let shown = s.js(
        "return [...document.querySelectorAll('#herd tbody tr')].filter(r => r.offsetParent !== null).map(r => r.querySelector('[data-k=name]').textContent)",
    );
    assert_eq!(shown, json!(["demo-2"]));
    s.screenshot(&shots.join("dashboard-drift-1920x1080.png"));

    // /settings edits the same profiles and desired state; a refused section keeps what was
    // typed and puts the error beside its field.
    s.go(&run.url("/settings#profiles"));
    let blocks = s.js("return document.querySelectorAll('#profiles fieldset.profile').length");
    assert_eq!(blocks, json!(3), "two profiles and the empty new one");
    s.js("const t = document.querySelector('#profiles textarea[name^=\"schedule.\"]'); t.value = '22:00-06:00=7'; document.querySelector('#profiles button.save').click(); return null");
    assert!(
        wait_true(
            &s,
            "return !!document.querySelector('#profiles small.field-error')",
            Duration::from_secs(20)
        ),
        "no error beside the schedule"
    );
    let beside = s.js("return document.querySelector('#profiles small.field-error').closest('label').querySelector('textarea').name");
    assert!(
        beside.as_str().unwrap().starts_with("schedule."),
        "{beside}"
    );
    let kept = s.js("return document.querySelector('#profiles small.field-error').closest('label').querySelector('textarea').value");
    assert_eq!(kept, json!("22:00-06:00=7"));
    s.js("document.querySelector('#profiles').scrollIntoView(); return null");
    s.screenshot(&shots.join("settings-profiles-1920x1080.png"));
    s.go(&run.url("/settings#desired"));
    let rows = s.js("return document.querySelectorAll('#desired fieldset.row').length");
    assert_eq!(rows, json!(3));
    s.js("document.querySelector('#desired').scrollIntoView(); return null");
    s.screenshot(&shots.join("settings-desired-1920x1080.png"));
    for entry in s.console() {
        // The refused section's own answer (422) is the one error expected.
        let expected = entry["message"]
            .as_str()
            .is_some_and(|m| m.contains("/settings/profiles/all") && m.contains("422"));
        assert!(
            entry["level"] != "SEVERE" || expected,
            "console error {}",
            entry["message"]
        );
    }
}

/// The hub's central view (`--hub`) as its owner sees it: a site with NerdMiners and a Bitaxe
/// live, one whose Shepherd died shown offline by its last will, and the remote miners with
/// their site. Sites publish straight to one mosquitto on loopback (tests/hub.rs covers the
/// bridges). Saved as hub-dashboard-1920x1080.png; skipped where mosquitto is missing
/// (unless CI=true).
#[test]
fn hub_dashboard_in_headless_chromium() {
    let Some((chromium, driver_bin)) = browser("hub_dashboard_in_headless_chromium") else {
        return;
    };
    let Some(bin) = common::mosquitto::mosquitto() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let broker = common::mosquitto::Broker::start(&bin, dir.path(), "central", None);
    let site = |name: &str, extra: &str| {
        format!(
            "{}[mqtt]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\ninterval_secs = 1\n\
             [site]\nname = \"{name}\"\n{extra}",
            common::OFFLINE_PRICE_CONFIG,
            broker.port
        )
    };
    let (dg, ds, dh) = (
        dir.path().join("garage"),
        dir.path().join("shed"),
        dir.path().join("hub"),
    );
    for d in [&dg, &ds, &dh] {
        std::fs::create_dir_all(d).unwrap();
    }
    let garage_port = common::free_port();
    let garage = Running::start_on(
        &dg,
        garage_port,
        &site(
            "garage",
            &format!("url = \"http://127.0.0.1:{garage_port}\"\n"),
        ),
        &["--demo", "3", "--demo-axeos", "1"],
    );
    let mut shed = Running::start_with(&ds, &site("shed", ""), &["--demo", "2"]);
    // The hub's own shelf: two miners of its own above the other sites.
    let hub = Running::start_with(
        &dh,
        &site("office", "[hub]\nstale_secs = 60\n"),
        &["--hub", "--demo", "2"],
    );
    let live = |v: &Value, name: &str, miners: usize| {
        v["sites"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["site"] == name))
            .is_some_and(|s| s["freshness"] == "live")
            && v["miners"]
                .as_array()
                .is_some_and(|m| m.iter().filter(|m| m["site"] == name).count() == miners)
    };
    hub.wait_json("/api/hub", Duration::from_secs(90), |v| {
        live(v, "garage", 4) && live(v, "shed", 2)
    });
    // The shed's Shepherd dies without a goodbye: the broker publishes its last will.
    let mut child = shed.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    hub.wait_json("/api/hub", Duration::from_secs(60), |v| {
        live(v, "garage", 4)
            && v["sites"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["site"] == "shed"))
                .is_some_and(|s| s["freshness"] == "offline")
    });
    hub.wait_json("/api/herd_data", Duration::from_secs(30), |v| {
        v["totals"]["online"] == 2
    });

    let driver = Driver::start(&driver_bin);
    let s = open_session(&driver, &chromium, &dir.path().join("profile"), 1920, 1080);
    s.go(&hub.url("/"));
    assert!(
        wait_true(
            &s,
            "return !!document.getElementById('hub-sites') && document.querySelectorAll('tr[data-site]').length >= 6",
            Duration::from_secs(20)
        ),
        "no sites section with the remote miners"
    );
    let text = s.js("return document.body.innerText");
    let text = text.as_str().unwrap_or_default();
    for want in ["garage", "shed", "demo-axe-1", "site offline"] {
        assert!(
            text.contains(want),
            "{want} not on the hub's dashboard:\n{text}"
        );
    }
    let m = s.js("return [document.documentElement.scrollWidth, innerWidth]");
    assert!(
        m[0].as_u64() <= m[1].as_u64(),
        "the hub's dashboard scrolls sideways: {m}"
    );
    // The sites and the remote miners, rather than the local herd above them.
    s.js("document.getElementById('hub-sites').scrollIntoView(); return null");
    std::thread::sleep(Duration::from_millis(800));
    for entry in s.console() {
        assert_ne!(
            entry["level"], "SEVERE",
            "console error: {}",
            entry["message"]
        );
    }
    s.screenshot(&screenshot_dir().join("hub-dashboard-1920x1080.png"));
    drop(garage);
}
