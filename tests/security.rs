//! Issue 16, "trustworthy on a shared network", end to end with the app in this process (and
//! the binary where the exit code matters): DNS rebinding refused by Host, no secret in any
//! response without the login, protect = "all" with read-only tokens, login throttling and
//! cookie flags, CSP and frame headers on every page, one instance per database, a full disk
//! seen everywhere, foreign databases refused, invisible names refused, and the cap on
//! live-update streams.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Addr;
use shepherd::alerts::{AlertActor, EvaluateNow};
use shepherd::app::Options;
use shepherd::config::Config;
use shepherd::db::{self, commands, miners, DbActor};
use shepherd::discovery::Feed;
use shepherd::sim::LineRegistry;

/// The pool password planted everywhere it could leak from.
const SECRET: &str = "hunter2-pool-secret";
const PASSWORD: &str = "correct horse battery";

/// The app in this process, with a config the test shapes.
struct Shepherd {
    port: u16,
    db_path: PathBuf,
    db: Addr<DbActor>,
    alerts: Addr<AlertActor>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn config_in(dir: &Path, change: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    config.server.bind = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    config.database.path = dir.join("shepherd.db");
    config.ingest.batch_millis = 100;
    config.summarizer.interval_secs = 1;
    config.demo.line_interval_millis = 100;
    config.demo.axeos_miners = 0;
    config.price.enabled = false;
    config.network.enabled = false;
    config.discovery.enabled = false;
    change(&mut config);
    config
}

impl Shepherd {
    fn start(config: Config, demo: usize) -> Shepherd {
        Self::try_start(config, demo).unwrap()
    }

    fn try_start(config: Config, demo: usize) -> Result<Shepherd, String> {
        let port = config.server.bind.port();
        let db_path = config.database.path.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let options = Options {
                    demo,
                    devices: Feed::Injected,
                    sims: LineRegistry::default(),
                };
                match shepherd::app::App::start(config, options).await {
                    Ok(app) => {
                        let _ = ready_tx.send(Ok((app.db(), app.alerts())));
                        let _ = rx.await;
                        app.stop().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                    }
                }
            });
        });
        let (db, alerts) = match ready_rx.recv().unwrap() {
            Ok(addrs) => addrs,
            Err(e) => {
                thread.join().unwrap();
                return Err(e);
            }
        };
        let app = Shepherd {
            port,
            db_path,
            db,
            alerts,
            stop: Some(tx),
            thread: Some(thread),
        };
        let start = Instant::now();
        while app.get("/healthz").status != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "app did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(app)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], "")
    }

    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.request("GET", path, headers, "")
    }

    /// A form POST as this server's own page sends it (same Origin).
    fn post_form(&self, path: &str, form: &str, cookie: Option<&str>) -> Reply {
        let origin = format!("http://{}", self.host());
        let mut headers = vec![
            ("Origin", origin.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if let Some(c) = cookie {
            headers.push(("Cookie", c));
        }
        self.request("POST", path, &headers, form)
    }

    /// One HTTP/1.1 request written by hand, so `Host` is whatever the test says.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            text.push_str(&format!("Host: {}\r\n", self.host()));
        }
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(text.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        Reply::parse(&raw)
    }

    fn login(&self) -> String {
        let r = self.post_form("/login", &format!("password={}", enc(PASSWORD)), None);
        assert_eq!(r.status, 303, "{}", r.body);
        let cookie = r.header("set-cookie").unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Shepherd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A parsed response (chunked bodies joined).
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("no header end");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
}

/// A miner (no port behind it), a pool, a finished SET_CONFIG, a configuration read and a
/// backup image, each holding [`SECRET`].
fn plant_secrets(dir: &Path) -> (i64, i64, i64) {
    let (conn, _) = db::open_writer(&dir.join("shepherd.db")).unwrap();
    let miner = miners::add(&conn, "garage", "/dev/shepherd-test-none", "serial").unwrap();
    conn.execute(
        "INSERT INTO pools (name, url, port, password) VALUES ('main', 'pool.example', 3333, ?1)",
        [SECRET],
    )
    .unwrap();
    // A pool profile with a password, desired for the miner (shown on /fleet, /settings).
    conn.execute(
        "INSERT INTO pool_profiles (name, pools_json, created_at) VALUES ('private', ?1, 1)",
        [
            serde_json::json!([{ "host": "pool.example", "port": 3333, "password": SECRET }])
                .to_string(),
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO miner_desired (miner_id, profile_id, board_json)
         SELECT ?1, id, '{}' FROM pool_profiles WHERE name = 'private'",
        [miner],
    )
    .unwrap();
    let config = serde_json::json!({
        "poolString": "pool.example", "portNumber": 3333, "poolPassword": SECRET,
        "btcString": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    });
    let cmd = commands::insert(
        &conn,
        miner,
        commands::CommandKind::SetConfig,
        Some(&config.to_string()),
    )
    .unwrap();
    let result = serde_json::json!({ "config": config, "method": "flash" });
    commands::finish(&conn, cmd, true, "written", Some(&result)).unwrap();
    commands::store_config(&conn, miner, &config.to_string()).unwrap();
    let image = dir.join("backup.bin");
    std::fs::write(&image, format!("spiffs…{SECRET}…")).unwrap();
    let backup = commands::insert_backup(
        &conn,
        &commands::Backup {
            id: 0,
            miner_id: miner,
            path: image.display().to_string(),
            chip: Some("ESP32".into()),
            mac: None,
            offset: 0x310000,
            size: 64,
            sha256: "00".into(),
            created_at: 1,
            config_ok: None,
        },
    )
    .unwrap();
    (miner, cmd, backup)
}

/// Every GET route, with the ids of the planted rows.
fn read_routes(miner: i64, cmd: i64, backup: i64) -> Vec<String> {
    [
        "/",
        "/api/herd_data",
        "/healthz",
        "/healthz.json",
        "/api/alerts",
        "/metrics",
        "/settings",
        "/fleet",
        "/api/fleet",
        "/onboarding",
        "/kiosk",
        "/kiosk/clock",
        "/kiosk/health",
        "/kiosk/homage",
        "/kiosk/stream",
        "/login",
        "/api/sparklines",
        "/api/block_templates",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("/miners/{miner}"),
        format!("/miners/manage/{miner}"),
        format!("/api/miners/{miner}/history"),
        format!("/api/miners/{miner}/logs"),
        format!("/api/commands/{cmd}"),
        format!("/api/backups/{backup}"),
        "/api/rollout/1".into(),
    ])
    .collect()
}

#[test]
fn a_foreign_host_is_refused_and_says_which_setting_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (miner, _, _) = plant_secrets(dir.path());
    let app = Shepherd::start(config_in(dir.path(), |_| {}), 0);
    let evil = format!("evil.example:{}", app.port);
    let body = r#"{"poolString":"pool.evil.example","portNumber":3333,"btcString":"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"}"#;
    let origin = format!("http://{evil}");
    let r = app.request(
        "POST",
        &format!("/api/miner/{miner}/set_config"),
        &[
            ("Host", &evil),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    assert_eq!(r.status, 421, "{}", r.body);
    assert!(r.body.contains("[web] allowed_hosts"), "{}", r.body);
    let conn = db::open_reader(&app.db_path).unwrap();
    let queued: i64 = conn
        .query_row(
            "SELECT count(*) FROM miner_commands WHERE payload LIKE '%evil%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(queued, 0, "nothing was queued");
    // Reading through a foreign name is refused too, and so is a proxy's forwarded name.
    assert_eq!(
        app.get_with("/api/herd_data", &[("Host", &evil)]).status,
        421
    );
    let r = app.get_with("/", &[("X-Forwarded-Host", "evil.example")]);
    assert_eq!(r.status, 421);
    // The liveness check answers whatever name a watchdog uses.
    assert_eq!(
        app.get_with("/healthz", &[("Host", "shepherd-container:8080")])
            .status,
        200
    );
    // Our own names pass.
    for host in [
        app.host(),
        format!("localhost:{}", app.port),
        format!("[::1]:{}", app.port),
    ] {
        assert_eq!(app.get_with("/", &[("Host", &host)]).status, 200, "{host}");
    }
}

#[test]
fn allowed_hosts_adds_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let app = Shepherd::start(
        config_in(dir.path(), |c| {
            c.web.allowed_hosts = vec!["miners.example.com".into()]
        }),
        0,
    );
    assert_eq!(
        app.get_with("/", &[("Host", "miners.example.com")]).status,
        200
    );
    assert_eq!(app.get_with("/", &[("Host", "evil.example")]).status, 421);
}

#[test]
fn no_secret_in_any_response_without_the_login() {
    let dir = tempfile::tempdir().unwrap();
    let (miner, cmd, backup) = plant_secrets(dir.path());
    let app = Shepherd::start(
        config_in(dir.path(), |c| c.web.password = PASSWORD.into()),
        0,
    );
    for path in read_routes(miner, cmd, backup) {
        let r = app.get(&path);
        assert!(
            !r.body.contains(SECRET),
            "{path} leaks the pool password: {}",
            r.body
        );
        assert!(r.status != 500, "{path}: {}", r.body);
    }
    assert_eq!(app.get(&format!("/api/backups/{backup}")).status, 401);
    let row: serde_json::Value =
        serde_json::from_str(&app.get(&format!("/api/commands/{cmd}")).body).unwrap();
    assert!(row["payload"].is_null(), "{row}");
    assert_eq!(row["result"]["config"]["poolPassword"], "***");

    // Logged in: the backup downloads whole; the payload is there, its secret masked.
    let cookie = app.login();
    let r = app.get_with(&format!("/api/backups/{backup}"), &[("Cookie", &cookie)]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains(SECRET), "the backup is the real image");
    let r = app.get_with(&format!("/api/commands/{cmd}"), &[("Cookie", &cookie)]);
    let row: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(row["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["poolPassword"], "***");
    assert_eq!(payload["poolString"], "pool.example");
    let r = app.get_with("/settings", &[("Cookie", &cookie)]);
    assert!(!r.body.contains(SECRET), "the settings form never shows it");

    // Saving the pool with the password field left empty keeps the stored one.
    let pool_id: i64 = db::open_reader(&app.db_path)
        .unwrap()
        .query_row("SELECT id FROM pools", [], |r| r.get(0))
        .unwrap();
    let r = app.post_form(
        &format!("/settings/pools/{pool_id}"),
        "name=main&url=pool2.example&port=3334&password=",
        Some(&cookie),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let (url, pw): (String, String) = db::open_reader(&app.db_path)
        .unwrap()
        .query_row(
            "SELECT url, password FROM pools WHERE id = ?1",
            [pool_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((url.as_str(), pw.as_str()), ("pool2.example", SECRET));
    // The same through the section's one Save.
    let r = app.post_form(
        "/settings/pools/all",
        &format!("name.{pool_id}=main&url.{pool_id}=pool3.example&port.{pool_id}=3335&password.{pool_id}="),
        Some(&cookie),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let (url, pw): (String, String) = db::open_reader(&app.db_path)
        .unwrap()
        .query_row(
            "SELECT url, password FROM pools WHERE id = ?1",
            [pool_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((url.as_str(), pw.as_str()), ("pool3.example", SECRET));
}

#[test]
fn protect_all_needs_the_login_or_a_read_only_token() {
    let dir = tempfile::tempdir().unwrap();
    let (miner, cmd, backup) = plant_secrets(dir.path());
    let app = Shepherd::start(
        config_in(dir.path(), |c| {
            c.web.password = PASSWORD.into();
            c.web.protect = shepherd::config::Protect::All;
        }),
        0,
    );
    for path in read_routes(miner, cmd, backup) {
        let want = if ["/healthz", "/login"].contains(&path.as_str()) {
            200
        } else {
            401
        };
        assert_eq!(app.get(&path).status, want, "{path}");
    }
    assert_eq!(
        app.get("/assets/app.css").status,
        200,
        "the login page needs its CSS"
    );

    let cookie = app.login();
    assert_eq!(app.get_with("/", &[("Cookie", &cookie)]).status, 200);
    let r = app.post_form("/settings/tokens", "label=kitchen+kiosk", Some(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r
        .body
        .split("id=\"new-token\">")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 64);
    let stored: String = db::open_reader(&app.db_path)
        .unwrap()
        .query_row("SELECT token_sha256 FROM read_tokens", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, token, "only a digest is stored");

    let bearer = format!("Bearer {token}");
    assert_eq!(app.get(&format!("/kiosk/clock?token={token}")).status, 200);
    assert_eq!(
        app.get_with("/api/herd_data", &[("Authorization", &bearer)])
            .status,
        200
    );
    let metrics = app.get_with("/metrics", &[("Authorization", &bearer)]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("shepherd_"));
    // A token reads the kiosks' data, nothing else.
    for path in [
        "/settings",
        "/",
        &format!("/api/backups/{backup}"),
        &format!("/api/commands/{cmd}"),
    ] {
        assert_eq!(
            app.get_with(path, &[("Authorization", &bearer)]).status,
            401,
            "{path}"
        );
    }
    assert_eq!(app.get("/kiosk/clock?token=0000").status, 401);

    // Revoked: refused at once.
    let id: i64 = db::open_reader(&app.db_path)
        .unwrap()
        .query_row("SELECT id FROM read_tokens", [], |r| r.get(0))
        .unwrap();
    let r = app.post_form(&format!("/settings/tokens/{id}/revoke"), "", Some(&cookie));
    assert_eq!(r.status, 303);
    assert_eq!(
        app.get_with("/metrics", &[("Authorization", &bearer)])
            .status,
        401
    );
}

#[test]
fn failed_logins_are_throttled_per_client_and_cookies_follow_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let hash = shepherd::web::auth::hash_password(PASSWORD).unwrap();
    let app = Shepherd::start(
        config_in(dir.path(), |c| {
            c.web.password = hash;
            c.web.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            c.web.session_days = 2;
        }),
        0,
    );
    let try_login = |password: &str, client: &str| {
        let origin = format!("http://{}", app.host());
        app.request(
            "POST",
            "/login",
            &[
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Forwarded-For", client),
                ("X-Forwarded-Proto", "https"),
            ],
            &format!("password={}", enc(password)),
        )
    };
    for _ in 0..3 {
        let r = try_login("wrong", "203.0.113.5");
        assert_eq!(r.status, 401);
        assert!(r.body.contains("Wrong password"));
    }
    // Now even the right password must wait; another client need not.
    let r = try_login(PASSWORD, "203.0.113.5");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(r.body.contains("try again in"), "{}", r.body);
    let r = try_login(PASSWORD, "203.0.113.6");
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=172800"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
}

#[test]
fn an_untrusted_forwarded_proto_gets_no_secure_flag() {
    let dir = tempfile::tempdir().unwrap();
    let app = Shepherd::start(
        config_in(dir.path(), |c| c.web.password = PASSWORD.into()),
        0,
    );
    let origin = format!("http://{}", app.host());
    let r = app.request(
        "POST",
        "/login",
        &[
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Forwarded-Proto", "https"),
        ],
        &format!("password={}", enc(PASSWORD)),
    );
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(
        cookie.contains("Max-Age=2592000"),
        "30 days by default: {cookie}"
    );
}

/// Inline scripts, event-handler attributes and style attributes, which the CSP forbids.
fn inline_code(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..html[i..].find('>').map_or(html.len(), |e| i + e)];
        if !tag.contains(" src=") {
            found.push(tag.to_owned());
        }
    }
    for needle in [
        " style=\"",
        " onclick=",
        " onload=",
        " onchange=",
        " onsubmit=",
        " oninput=",
        "javascript:",
    ] {
        if html.contains(needle) {
            found.push(needle.to_owned());
        }
    }
    found
}

#[test]
fn every_page_forbids_frames_and_inline_code() {
    let dir = tempfile::tempdir().unwrap();
    let (miner, cmd, backup) = plant_secrets(dir.path());
    let app = Shepherd::start(config_in(dir.path(), |_| {}), 1);
    for path in read_routes(miner, cmd, backup)
        .into_iter()
        .chain(["/nowhere".to_owned(), "/miners/1?range=1y".to_owned()])
    {
        let r = app.get(&path);
        let csp = r.header("content-security-policy").unwrap_or_default();
        // Kiosk views may be framed by this server itself (the thumbnails on /kiosk), no one else.
        let (ancestors, xfo) = if path.starts_with("/kiosk/") {
            ("frame-ancestors 'self'", "SAMEORIGIN")
        } else {
            ("frame-ancestors 'none'", "DENY")
        };
        assert!(
            csp.contains(ancestors) && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some(xfo), "{path}");
        if r.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
        {
            assert_eq!(inline_code(&r.body), Vec::<String>::new(), "{path}");
        }
    }
    let r = app.post_form("/settings/pools", "name=p&url=a+b&port=1", None);
    assert_eq!(r.status, 422);
    assert!(r.header("content-security-policy").is_some());
    assert_eq!(inline_code(&r.body), Vec::<String>::new());
    // The fleet profile form: refused values come back escaped, with every problem listed.
    let r = app.post_form(
        "/fleet/profiles",
        "action=save&name=%3Cscript%3Ex%3C%2Fscript%3E&host=a+b&port=0&schedule=soon",
        None,
    );
    assert_eq!(r.status, 422);
    assert!(r.body.contains("profile-errors"), "{}", r.body);
    assert!(!r.body.contains("<script>x"), "{}", r.body);
    assert_eq!(inline_code(&r.body), Vec::<String>::new());
    // A refused subnet scan keeps what was typed, escaped.
    let r = app.post_form(
        "/settings/miners/scan",
        "cidr=%3Cscript%3Ex%3C%2Fscript%3E&port=80",
        None,
    );
    assert_eq!(r.status, 422);
    assert!(!r.body.contains("<script>x"), "{}", r.body);
    assert!(r.body.contains("&lt;script&gt;x"), "{}", r.body);
    assert_eq!(inline_code(&r.body), Vec::<String>::new());
    // A refused section of /settings comes back escaped too.
    let r = app.post_form(
        "/settings/profiles/all",
        "name.0=%3Cscript%3Ex%3C%2Fscript%3E&pools.0=a+b%3A1",
        None,
    );
    assert_eq!(r.status, 422);
    assert!(!r.body.contains("<script>x"), "{}", r.body);
    assert_eq!(inline_code(&r.body), Vec::<String>::new());
    // Fleet and section writes only from our own pages.
    for path in [
        "/fleet/profiles",
        "/fleet/reconcile",
        "/fleet/profiles/1/delete",
        "/settings/pools/all",
        "/settings/profiles/all",
        "/settings/desired/all",
        "/settings/miners/scan",
    ] {
        let r = app.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "miner=1",
        );
        assert_eq!(r.status, 403, "{path}");
    }
}

#[test]
fn kiosks_may_be_framed_only_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let ha = "http://homeassistant.local:8123";
    let app = Shepherd::start(
        config_in(dir.path(), |c| c.web.kiosk_frame_ancestors = ha.into()),
        0,
    );
    let r = app.get("/kiosk/clock");
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .ends_with(&format!("frame-ancestors 'self' {ha}")));
    assert_eq!(r.header("x-frame-options"), None);
    let r = app.get("/settings");
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn a_second_instance_on_the_same_database_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = Shepherd::start(config_in(dir.path(), |_| {}), 2);
    let names = || -> Vec<String> {
        let conn = db::open_reader(&first.db_path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM miners ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = names();
    assert_eq!(before, ["demo-1", "demo-2"]);
    // In this process: refused before the database is opened (no demo miners removed).
    let err = Shepherd::try_start(config_in(dir.path(), |_| {}), 0)
        .err()
        .unwrap();
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(err.contains(&first.host()), "{err}");
    assert_eq!(names(), before);

    // The binary: exit status 1, the holder named, no panic.
    let out = std::process::Command::new(common::bin())
        .args(["run", "--database"])
        .arg(&first.db_path)
        .args(["--bind", &format!("127.0.0.1:{}", common::free_port())])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by another shepherd") && stderr.contains(&first.host()),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(names(), before);
    // Another database on the same port: refused before that database is even created.
    let other = dir.path().join("other.db");
    let out = std::process::Command::new(common::bin())
        .args(["run", "--demo", "1", "--database"])
        .arg(&other)
        .args(["--bind", &first.host()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen on") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(!other.exists());
    assert_eq!(first.get("/healthz").status, 200);
}

#[test]
fn a_full_disk_is_seen_on_healthz_the_dashboard_and_as_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let app = Shepherd::start(config_in(dir.path(), |_| {}), 1);
    let herd = |app: &Shepherd| -> serde_json::Value {
        serde_json::from_str(&app.get("/api/herd_data").body).unwrap()
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait("lines written", &|| {
        herd(&app)["ingest"]["written_lines"].as_u64() > Some(0)
    });
    assert!(herd(&app)["ingest"]["write_failure"].is_null());
    assert!(app
        .get("/")
        .body
        .contains("id=\"write-failure\" role=\"alert\" hidden"));

    let rt = actix_rt::System::new();
    rt.block_on(app.db.send(shepherd::db::actor::CapSize(true)))
        .unwrap()
        .unwrap();
    wait("/healthz says 503", &|| app.get("/healthz").status == 503);
    let r = app.get("/healthz");
    assert!(
        r.body.contains("database writes failing since"),
        "{}",
        r.body
    );
    assert!(r.body.contains("full"), "SQLite's own reason: {}", r.body);
    let doc = herd(&app);
    assert!(
        doc["ingest"]["write_failure"]["error"].as_str().is_some(),
        "{doc}"
    );
    assert!(doc["ingest"]["write_errors"].as_u64() > Some(0));
    let page = app.get("/").body;
    assert!(page.contains("The database cannot be written since"));
    assert!(!page.contains("id=\"write-failure\" role=\"alert\" hidden"));
    let notices = rt.block_on(app.alerts.send(EvaluateNow)).unwrap().unwrap();
    assert!(
        notices.iter().any(|n| n.rule.as_str() == "database_writes"
            && n.kind == shepherd::model::alert::NoticeKind::Fired),
        "{notices:?}"
    );
    let written = herd(&app)["ingest"]["written_lines"].as_u64().unwrap();

    // Space again: everything kept meanwhile is written, and every sign clears.
    rt.block_on(app.db.send(shepherd::db::actor::CapSize(false)))
        .unwrap()
        .unwrap();
    wait("/healthz ok again", &|| app.get("/healthz").status == 200);
    assert!(herd(&app)["ingest"]["write_failure"].is_null());
    assert!(herd(&app)["ingest"]["written_lines"].as_u64().unwrap() > written);
    assert_eq!(herd(&app)["ingest"]["dropped_lines"], 0, "nothing lost");
    let notices = rt.block_on(app.alerts.send(EvaluateNow)).unwrap().unwrap();
    assert!(
        notices.iter().any(|n| n.rule.as_str() == "database_writes"
            && n.kind == shepherd::model::alert::NoticeKind::Resolved),
        "{notices:?}"
    );
}

#[test]
fn databases_of_other_programs_are_refused_by_path_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("shepherd.db");
    {
        let c = rusqlite::Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
            .unwrap();
    }
    let before = std::fs::read(&other).unwrap();
    let err = Shepherd::try_start(config_in(dir.path(), |_| {}), 1)
        .err()
        .unwrap();
    assert!(
        err.contains(&other.display().to_string()) && err.contains("not a Shepherd database"),
        "{err}"
    );
    assert_eq!(std::fs::read(&other).unwrap(), before);
    let out = std::process::Command::new(common::bin())
        .args(["miners", "list", "--database"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invoices"));
    assert_eq!(std::fs::read(&other).unwrap(), before);
}

#[test]
fn invisible_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = Shepherd::start(config_in(dir.path(), |_| {}), 0);
    for name in [
        "%E2%80%8B",
        "%E2%80%AE%E2%80%AD",
        "%E2%81%A6%E2%81%A9+%EF%BB%BF",
    ] {
        let r = app.post_form(
            "/settings/miners",
            &format!("name={name}&port=%2Fdev%2FttyUSB0&pool_id=&address_id="),
            None,
        );
        assert_eq!(r.status, 422, "{name}: {}", r.body);
        assert!(r.body.contains("visible character"), "{}", r.body);
        let r = app.post_form(
            "/settings/pools",
            &format!("name={name}&url=p.example&port=1"),
            None,
        );
        assert_eq!(r.status, 422, "{name}");
    }
    let out = std::process::Command::new(common::bin())
        .args([
            "miners",
            "add",
            "--name",
            "\u{200B}\u{200D}",
            "--port",
            "/dev/ttyUSB0",
            "--database",
        ])
        .arg(dir.path().join("cli.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("visible character"));
}

#[test]
fn live_update_streams_are_capped_with_a_clear_503() {
    let dir = tempfile::tempdir().unwrap();
    let app = Shepherd::start(config_in(dir.path(), |c| c.web.max_event_streams = 2), 1);
    let open = || {
        let mut s = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n",
            app.host()
        )
        .unwrap();
        // Read until the first herd frame.
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("event: herd") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "stream closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        (s, String::from_utf8_lossy(&seen).into_owned())
    };
    let (a, first) = open();
    let (_b, second) = open();
    assert!(first.starts_with("HTTP/1.1 200") && second.starts_with("HTTP/1.1 200"));
    let r = app.get("/api/events");
    assert_eq!(r.status, 503);
    assert!(r.body.contains("max_event_streams"), "{}", r.body);
    drop(a);
    // The closed stream's place is given back (once the server notices it is gone).
    let start = Instant::now();
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", app.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n",
            app.host()
        )
        .unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the seat was not given back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn passwd_writes_a_hash_the_login_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        "[web]\npassword = \"plain old\"\nprotect = \"all\"\n",
    )
    .unwrap();
    let run = |input: &str| {
        let mut child = std::process::Command::new(common::bin())
            .args(["passwd", "--config"])
            .arg(&config_path)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run("short\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
    let out = run(&format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        text.contains("password = \"$argon2id$v=19$") && !text.contains(PASSWORD),
        "{text}"
    );
    assert!(
        text.contains("protect = \"all\""),
        "the rest is kept: {text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let mut config = Config::load(Some(&config_path)).unwrap();
    let fast = config_in(dir.path(), |_| {});
    config.server = fast.server;
    config.database = fast.database;
    config.price = fast.price;
    config.network = fast.network;
    config.discovery = fast.discovery;
    let app = Shepherd::start(config, 0);
    assert_eq!(app.get("/").status, 401);
    let cookie = app.login();
    assert_eq!(app.get_with("/", &[("Cookie", &cookie)]).status, 200);
}
