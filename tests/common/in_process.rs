//! The whole app started in the test process (not the binary), with simulated ESP32s whose
//! DTR/RTS lines are reached through the line-control registry, as in `shepherd run --demo`.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use shepherd::app::Options;
use shepherd::config::Config;
use shepherd::db::{self, miners};
use shepherd::discovery::Feed;
use shepherd::sim::esp32::SimEsp32;
use shepherd::sim::LineRegistry;

/// The whole app in this process, so a test owns its simulated ESP32s.
pub struct App {
    pub port: u16,
    pub db: PathBuf,
    pub registry: LineRegistry,
    /// Device discovery, where a test sends plug and unplug events.
    pub discovery: Option<actix::Addr<shepherd::discovery::DiscoveryActor>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl App {
    /// Starts the app with `sims` registered as miners named by the first element.
    pub fn start(dir: &Path, sims: &[(&str, &SimEsp32)], keep: usize) -> App {
        Self::start_with(dir, sims, keep, |_| {})
    }

    /// Like [`App::start`], with `tweak` applied to the configuration last.
    pub fn start_with(
        dir: &Path,
        sims: &[(&str, &SimEsp32)],
        keep: usize,
        tweak: impl FnOnce(&mut Config),
    ) -> App {
        let port = super::free_port();
        let db_path = dir.join("shepherd.db");
        let mut config = Config::default();
        config.server.bind = format!("127.0.0.1:{port}").parse().unwrap();
        config.database.path = db_path.clone();
        config.ingest.batch_millis = 100;
        config.summarizer.interval_secs = 1;
        config.backups.keep = keep;
        let registry = LineRegistry::default();
        {
            let (conn, _) = db::open_writer(&db_path).unwrap();
            for (name, sim) in sims {
                // A database from an earlier run (a restart) keeps its miners: re-point them.
                let moved = conn
                    .execute(
                        "UPDATE miners SET port = ?1 WHERE name = ?2",
                        rusqlite::params![sim.path, name],
                    )
                    .unwrap();
                if moved == 0 {
                    miners::add(&conn, name, &sim.path, "serial").unwrap();
                }
                registry.register(&sim.path, sim.line_control());
            }
        }
        // Hermetic: no price or network fetches, and device events only from the test (none).
        config.price.enabled = false;
        config.network.enabled = false;
        tweak(&mut config);
        let registry2 = registry.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (dtx, drx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let options = Options {
                    demo: 0,
                    devices: Feed::Injected,
                    sims: registry2,
                };
                let app = shepherd::app::App::start(config, options).await.unwrap();
                let _ = dtx.send(app.discovery());
                let _ = rx.await;
                app.stop().await;
            });
        });
        let discovery = drx.recv_timeout(Duration::from_secs(60)).unwrap();
        let app = App {
            port,
            registry,
            discovery,
            db: db_path,
            stop: Some(tx),
            thread: Some(thread),
        };
        let start = Instant::now();
        while app.get("/healthz").0 != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "app did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        app
    }

    pub fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into()
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        match Self::agent().get(&url).call() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut()
                    .with_config()
                    .limit(16 << 20)
                    .read_to_vec()
                    .unwrap(),
            ),
            Err(_) => (0, Vec::new()),
        }
    }

    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// POSTs as the manage page does (its `Origin` is this server).
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.post_from(Some(&format!("http://127.0.0.1:{}", self.port)), path, body)
    }

    pub fn post_from(&self, origin: Option<&str>, path: &str, body: &str) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut req = Self::agent()
            .post(&url)
            .header("Content-Type", "application/json");
        if let Some(origin) = origin {
            req = req.header("Origin", origin);
        }
        let mut r = req.send(body).unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn miner_id(&self, name: &str) -> i64 {
        let conn = db::open_reader(&self.db).unwrap();
        conn.query_row("SELECT id FROM miners WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap()
    }

    /// POSTs a command and follows it to the end; returns the final row and every
    /// (status, detail) seen on the way.
    pub fn run(&self, path: &str, body: &str) -> (Value, Vec<(String, String)>) {
        let (status, v) = self.post(path, body);
        assert_eq!(status, 202, "{v}");
        self.follow(v["id"].as_i64().unwrap())
    }

    /// Follows command `id` to its end.
    pub fn follow(&self, id: i64) -> (Value, Vec<(String, String)>) {
        let mut seen: Vec<(String, String)> = Vec::new();
        let start = Instant::now();
        loop {
            let row = self.json(&format!("/api/commands/{id}"));
            let step = (
                row["status"].as_str().unwrap_or("").to_owned(),
                row["detail"].as_str().unwrap_or("").to_owned(),
            );
            if seen.last() != Some(&step) {
                seen.push(step);
            }
            if row["status"] == "complete" || row["status"] == "error" {
                return (row, seen);
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "command {id} did not finish: {seen:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn lines_after(&self, miner: i64, ts: i64) -> i64 {
        let conn = db::open_reader(&self.db).unwrap();
        conn.query_row(
            "SELECT count(*) FROM miner_logs WHERE miner_id = ?1 AND ts > ?2",
            [miner, ts],
            |r| r.get(0),
        )
        .unwrap()
    }

    pub fn stored_lines(&self, miner: i64) -> i64 {
        let conn = db::open_reader(&self.db).unwrap();
        conn.query_row(
            "SELECT count(*) FROM miner_logs WHERE miner_id = ?1",
            [miner],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Waits until the miner prints new lines after `ts`.
    pub fn wait_lines_after(&self, miner: i64, ts: i64) {
        let start = Instant::now();
        while self.lines_after(miner, ts) < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the miner's log did not resume"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop();
    }
}
