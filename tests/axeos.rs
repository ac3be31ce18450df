//! A mixed herd end to end: a simulated NerdMiner on a pseudo-terminal and mock AxeOS miners
//! (Bitaxe-like, on 127.0.0.1) added with `shepherd miners add --url`, shown side by side in
//! `/api/herd_data` and on the dashboard; restart, identify and a pool change reach the mock
//! through the command table; a mock that vanishes shows offline with its reason.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::in_process::App;
use serde_json::Value;
use shepherd::db::commands::{self, CommandKind};
use shepherd::sim::axeos::{MockAxeOs, Version};
use shepherd::sim::esp32;

fn wait_herd(app: &App, what: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let herd = app.json("/api/herd_data");
        let miners = herd["miners"].as_array().cloned().unwrap_or_default();
        if ok(&miners) {
            return miners;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: {miners:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn by_name<'a>(miners: &'a [Value], name: &str) -> Option<&'a Value> {
    miners.iter().find(|m| m["name"] == name)
}

fn queue(app: &App, miner: i64, kind: CommandKind, payload: Option<&str>) -> Value {
    let conn = rusqlite::Connection::open(&app.db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let id = commands::insert(&conn, miner, kind, payload).unwrap();
    app.follow(id).0
}

#[test]
fn a_mock_bitaxe_stands_beside_a_simulated_nerdminer() {
    let dir = tempfile::tempdir().unwrap();
    // A configured NerdMiner, as `--demo` makes them.
    let sim = esp32::demo(3, Duration::from_millis(100)).unwrap();
    let gamma = MockAxeOs::start(Version::V2_12, 1150.0, "gamma").unwrap();
    let nerdqaxe = MockAxeOs::start(Version::V2_15, 4800.0, "nerdqaxe").unwrap();
    let app = App::start(dir.path(), &[("nerd", &sim)], 2);

    // Added from a shell, as an owner would; the running shepherd picks them up.
    for (name, mock) in [("gamma", &gamma), ("nerdqaxe", &nerdqaxe)] {
        let out = Command::new(common::bin())
            .args(["miners", "add", "--name", name, "--url", &mock.url()])
            .args(["--database", app.db.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("AxeOS"));
    }
    let bad = Command::new(common::bin())
        .args([
            "miners",
            "add",
            "--name",
            "x",
            "--url",
            "http://127.0.0.1:1/api/system",
        ])
        .args(["--database", app.db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("path"));

    // A third one by address on /settings (as the page's form posts it).
    let mini = MockAxeOs::start(Version::V2_10, 480.0, "mini").unwrap();
    let form = |port: &str| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let origin = format!("http://127.0.0.1:{}", app.port);
        let r = agent
            .post(format!("{origin}/settings/miners"))
            .header("Origin", &origin)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!(
                "name=mini&port={}",
                port.replace(':', "%3A").replace('/', "%2F")
            ))
            .unwrap();
        r.status().as_u16()
    };
    assert_eq!(
        form(&format!("{}/api/system/info", mini.url())),
        422,
        "path junk"
    );
    assert_eq!(form(&mini.url()), 303);

    let miners = wait_herd(&app, "a mixed herd", |m| {
        let rate = |n: &str| by_name(m, n).and_then(|x| x["hashrate_khs"].as_f64());
        rate("nerd").is_some_and(|h| h > 0.0 && h < 1e4)
            && rate("gamma").is_some_and(|h| h > 1e9)
            && rate("nerdqaxe").is_some_and(|h| h > 4e9)
            && rate("mini").is_some_and(|h| h > 4e8)
    });
    assert_eq!(by_name(&miners, "mini").unwrap()["kind"], "axeos");
    let gamma_row = by_name(&miners, "gamma").unwrap();
    assert_eq!(gamma_row["firmware"], "v2.12.0", "{gamma_row:#}");
    assert_ne!(gamma_row["status"], "offline", "{gamma_row:#}");
    let herd = app.json("/api/herd_data");
    let total = herd["totals"]["hashrate_khs"].as_f64().unwrap_or(0.0);
    assert!(total > 6.0e9, "the herd's sum counts every kind: {total}");

    // One table, each in its own unit.
    let (status, page) = app.get("/");
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("TH/s"), "the Bitaxes read in TH/s");
    assert!(page.contains("KH/s"), "the NerdMiner reads in KH/s");

    // The firmware inventory names each Bitaxe's ASIC, as AxeOS reports it.
    let start = Instant::now();
    loop {
        let (status, inv) = app.get("/firmware");
        assert_eq!(status, 200);
        let inv = String::from_utf8_lossy(&inv).into_owned();
        if inv.contains("BM13") {
            assert!(inv.contains("AxeOS"), "{inv}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no ASIC model on /firmware: {inv}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let (status, manage) = app.get(&format!("/miners/manage/{}", app.miner_id("gamma")));
    assert_eq!(status, 200);
    let manage = String::from_utf8_lossy(&manage);
    assert!(manage.contains("An AxeOS miner") && manage.contains(&gamma.url()));

    // The live log (`/api/ws`) lands in the raw-line store beside the readings.
    let id = app.miner_id("gamma");
    let start = Instant::now();
    loop {
        let conn = rusqlite::Connection::open(&app.db).unwrap();
        let logged: i64 = conn
            .query_row(
                "SELECT count(*) FROM miner_logs WHERE miner_id = ?1 AND line LIKE '%asic_result%'",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        if logged > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no live log lines"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let row = queue(
        &app,
        id,
        CommandKind::Reset,
        Some(r#"{"reason":"identify"}"#),
    );
    assert_eq!(row["status"], "complete", "{row:#}");
    assert_eq!(gamma.identifies(), 1);
    let row = queue(
        &app,
        id,
        CommandKind::SetConfig,
        Some(r#"{"poolString":"pool.example","portNumber":3333}"#),
    );
    assert_eq!(row["status"], "complete", "{row:#}");
    assert_eq!(gamma.primary_pool(), "pool.example:3333");
    assert_eq!(gamma.restarts(), 1, "restarted to use the new pool");
    let row = queue(&app, id, CommandKind::Reset, None);
    assert_eq!(row["status"], "complete", "{row:#}");
    assert_eq!(gamma.restarts(), 2);

    // Gone from the network: offline with a reason, the rest of the herd unharmed.
    nerdqaxe.set_present(false);
    let miners = wait_herd(&app, "the vanished miner offline", |m| {
        by_name(m, "nerdqaxe").is_some_and(|x| x["status"] == "offline")
    });
    let gone = by_name(&miners, "nerdqaxe").unwrap();
    let reason = gone["status_detail"].as_str().unwrap_or_default();
    assert!(reason.contains("refused"), "{gone:#}");
    assert!(by_name(&miners, "nerd").is_some_and(|x| x["status"] != "offline"));
}

#[test]
fn the_subnet_scan_is_bounded_and_says_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let (ok, _, err) = shepherd(&[
        "miners",
        "scan",
        "10.0.0.0/8",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("at most 512"), "{err}");
    // Loopback only: port 80 here is closed or not AxeOS, either way nothing is found.
    let (ok, out, err) = shepherd(&[
        "miners",
        "scan",
        "127.0.0.1/32",
        "--database",
        db.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("asking 1 addresses"), "{out}");
    assert!(out.contains("no AxeOS miner answered"), "{out}");
}

fn shepherd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fleet_profiles_drift_and_reconcile_move_a_demo_bitaxe() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::Running::start(dir.path(), &["--demo", "1", "--demo-axeos", "1"]);
    run.wait_json("/api/herd_data", Duration::from_secs(60), |v| {
        v["totals"]["online"] == 2
    });
    let db = run.db.display().to_string();
    let pool = format!("127.0.0.1:{}", common::stratum_stub());
    let (ok, _, err) = shepherd(&[
        "profiles",
        "--database",
        &db,
        "add",
        "home",
        "--pool",
        &pool,
    ]);
    assert!(ok, "{err}");
    let addr = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
    let (ok, _, err) = shepherd(&[
        "miners",
        "--database",
        &db,
        "set",
        "demo-axe-1",
        "--profile",
        "home",
        "--address",
        addr,
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = shepherd(&["drift", "--database", &db]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains("demo-axe-1"))
        .unwrap_or_default();
    assert!(
        line.contains("poolString"),
        "read from the miner, it differs: {out}"
    );

    let (ok, out, err) = shepherd(&[
        "reconcile",
        "--database",
        &db,
        "demo-axe-1",
        "--timeout",
        "240",
    ]);
    assert!(ok, "{err}\n{}", run.log_text());
    assert!(out.contains("demo-axe-1\twritten"), "{out}\n{err}");
    let (ok, out, _) = shepherd(&["drift", "--database", &db]);
    let line = out
        .lines()
        .find(|l| l.contains("demo-axe-1"))
        .unwrap_or_default();
    assert!(ok && line.contains("in sync"), "{out}");
    let herd = run.wait_json("/api/herd_data", Duration::from_secs(30), |v| {
        v["miners"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["name"] == "demo-axe-1" && m["pool"] == "127.0.0.1")
        })
    });
    assert_eq!(herd["totals"]["miners"], 2);
}

/// POSTs a form to the in-process shepherd as a browser would (`origin`: its Origin header).
fn post_form(app: &App, origin: Option<&str>, path: &str, body: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut req = agent
        .post(format!("http://127.0.0.1:{}{path}", app.port))
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        req = req.header("Origin", origin);
    }
    let mut r = req.send(body.to_owned()).unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `value` of the first input named `name` in a page.
fn input_value(page: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&key)
        .unwrap_or_else(|| panic!("no {name}: {page}"))
        + key.len();
    page[at..].split('"').next().unwrap_or_default().to_owned()
}

#[test]
fn the_settings_page_scans_a_subnet_and_adds_what_answered() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path(), &[], 0);
    let origin = format!("http://127.0.0.1:{}", app.port);
    let mock = MockAxeOs::start(Version::V2_12, 1150.0, "scanme").unwrap();
    let mock_port = mock.url().rsplit(':').next().unwrap().to_owned();

    let (status, settings) = app.get("/settings");
    assert_eq!(status, 200);
    let settings = String::from_utf8_lossy(&settings);
    assert!(settings.contains(r#"action="/settings/miners/scan""#));

    // The hostname is taken (by a miner at a closed port), so the offer is made unique.
    let (status, body) = post_form(
        &app,
        Some(&origin),
        "/settings/miners",
        "name=scanme&port=http%3A%2F%2F127.0.0.1%3A1",
    );
    assert_eq!(status, 303, "{body}");

    let scan = |o: Option<&str>| {
        post_form(
            &app,
            o,
            "/settings/miners/scan",
            &format!("cidr=127.0.0.1%2F32&port={mock_port}"),
        )
    };
    let (status, page) = scan(Some(&origin));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&mock.url()), "{page}");
    assert!(page.contains("v2.12"), "its firmware: {page}");
    assert!(page.contains(">Add<"), "{page}");
    let (name, port) = (input_value(&page, "name"), input_value(&page, "port"));
    assert_eq!(name, "scanme-2");
    assert_eq!(port, mock.url());

    // The Add button posts to the ordinary add endpoint.
    assert!(page.contains(r#"action="/settings/miners""#), "{page}");
    let (status, body) = post_form(
        &app,
        Some(&origin),
        "/settings/miners",
        &format!("name={}&port={}", form_encode(&name), form_encode(&port)),
    );
    assert_eq!(status, 303, "{body}");
    let miners = wait_herd(&app, "the scanned Bitaxe", |m| {
        by_name(m, "scanme-2").is_some_and(|x| x["hashrate_khs"].as_f64().unwrap_or(0.0) > 1e9)
    });
    assert_eq!(by_name(&miners, "scanme-2").unwrap()["kind"], "axeos");

    // Scanned again it is known, with no second Add.
    let (status, page) = scan(Some(&origin));
    assert_eq!(status, 200);
    assert!(page.contains("already watched as"), "{page}");
    assert!(!page.contains(">Add<"), "{page}");

    // Nothing there: said so, with what to check.
    let (status, page) = post_form(
        &app,
        Some(&origin),
        "/settings/miners/scan",
        "cidr=127.0.0.1&port=1",
    );
    assert_eq!(status, 200);
    assert!(page.contains("No AxeOS miner answered"), "{page}");
    assert!(page.contains("port 80"), "{page}");
}

#[test]
fn the_settings_scan_refuses_bad_subnets_and_other_sites() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start(dir.path(), &[], 0);
    let origin = format!("http://127.0.0.1:{}", app.port);
    for (cidr, why) in [
        ("10.0.0.0/8", "at most 512"),
        ("nonsense", "IPv4 subnet"),
        ("10.0.0.0/40", "prefix length"),
    ] {
        let (status, page) = post_form(
            &app,
            Some(&origin),
            "/settings/miners/scan",
            &format!("cidr={}&port=80", form_encode(cidr)),
        );
        assert_eq!(status, 422, "{cidr}: {page}");
        assert!(page.contains(why), "{cidr}: {page}");
        // Beside the field, which keeps what was typed.
        assert_eq!(input_value(&page, "cidr"), cidr);
        let field = &page[page.find(r#"name="cidr""#).unwrap()..];
        assert!(
            field[..field.find("</label>").unwrap()].contains(why),
            "{page}"
        );
    }
    let (status, page) = post_form(
        &app,
        Some(&origin),
        "/settings/miners/scan",
        "cidr=10.0.0.1&port=99999",
    );
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("1 to 65535"), "{page}");

    for o in [Some("http://evil.example"), None] {
        let (status, page) = post_form(&app, o, "/settings/miners/scan", "cidr=127.0.0.1%2F32");
        assert_eq!(status, 403, "{o:?}: {page}");
        assert!(page.contains("refused"), "{page}");
    }
}
