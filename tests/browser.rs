//! The pages in a real browser: headless Chromium driven through chromedriver's WebDriver
//! HTTP API on loopback (plain ureq, no WebDriver crate). A demo herd of three is opened at
//! 800×480 and 1920×1080; every page must load without console errors, kiosk pages must not
//! scroll sideways, live values must change without a reload, and each page is saved as
//! docs/screenshots/<page>-<w>x<h>.png. Skips (and passes) where Chromium or chromedriver is
//! not installed; CI installs both.

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
    ("/settings", "settings"),
    ("/onboarding", "onboarding"),
    ("/kiosk", "kiosk"),
    ("/kiosk/clock", "kiosk-clock"),
    ("/kiosk/health", "kiosk-health"),
    ("/kiosk/homage", "kiosk-homage"),
    ("/kiosk/stream", "kiosk-stream"),
    ("/login", "login"),
];

const SIZES: &[(u32, u32)] = &[(800, 480), (1920, 1080)];

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

#[test]
fn every_page_in_headless_chromium() {
    let Some((chromium, driver_bin)) = browser("every_page_in_headless_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path(), &["--demo", "3"]);
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 3
    });
    let miner_id = herd["miners"][0]["id"].as_i64().unwrap();
    let driver = Driver::start(&driver_bin);
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut problems = Vec::new();

    for &(w, h) in SIZES {
        let profile = dir.path().join(format!("profile-{w}"));
        let s = open_session(&driver, &chromium, &profile, w, h);
        let size = s.js("return [innerWidth, innerHeight]");
        assert_eq!(size, json!([w, h]), "viewport");
        for (path, name) in PAGES {
            let path = path.replace("{id}", &miner_id.to_string());
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
            if path.starts_with("/kiosk/") {
                let m = s.js("return [document.documentElement.scrollWidth, innerWidth, document.documentElement.scrollHeight, innerHeight]");
                if m[0].as_u64() > m[1].as_u64() || m[2].as_u64() > m[3].as_u64() {
                    problems.push(format!("{path} at {w}x{h} scrolls: {m}"));
                }
            }
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

/// A stratum stub on loopback that answers `mining.subscribe`, for the profile test.
fn stratum_stub() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let _ = (&s).write_all(
                b"{\"id\":1,\"result\":[[[\"mining.notify\",\"1\"]],\"08000002\",4],\"error\":null}\n",
            );
        }
    });
    port
}

/// `/fleet` with two profiles (one tested from the Pi against a loopback pool) and a herd in
/// every drift state; saved as fleet-profiles and fleet-drift screenshots under target/ (or
/// docs/screenshots/ with SHEPHERD_REFRESH_SCREENSHOTS=1).
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

    let shots = match std::env::var_os("SHEPHERD_REFRESH_SCREENSHOTS") {
        Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
    };
    std::fs::create_dir_all(&shots).unwrap();
    let driver = Driver::start(&driver_bin);
    let s = open_session(&driver, &chromium, &dir.path().join("profile"), 1920, 1080);
    s.go(&run.url("/fleet"));
    // Fill the form with a loopback pool and press "Test from the Pi".
    let port = stratum_stub();
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
}
