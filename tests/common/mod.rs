//! Helpers shared by the integration tests: run the real binary, talk HTTP on loopback.
#![allow(dead_code)]

pub mod in_process;

pub mod mock_http;

pub mod mosquitto;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shepherd")
}

/// A port on 127.0.0.1 free now, for a server the test starts a moment later. Taken below
/// the kernel's ephemeral range (`ip_local_port_range`, 32768–60999 by default): whatever
/// binds port 0 meanwhile (a mock miner, a stratum stub, an outgoing connection) is handed
/// ephemeral ports only, so it can never take this one first. (A port from `bind(":0")`
/// could be handed out again the moment it was released: a CI run lost a test to that.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (first, span) = (10_000u32, low.saturating_sub(10_000).max(1000));
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = first + seed.wrapping_add(n.wrapping_mul(7_919)) % span;
        if let Ok(port) = u16::try_from(port) {
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    panic!("no free loopback port between {first} and {}", first + span)
}

/// A pool on loopback that answers `mining.subscribe` (a profile's pools are tested from the
/// Pi before anything is written): the shared stratum stub of the fleet tests.
pub fn stratum_stub() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
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

/// Price and network fetching off, and pointed at a closed loopback port besides, so no test
/// ever reaches the internet.
pub const OFFLINE_PRICE_CONFIG: &str = "[price]\nenabled = false\ncoincodex_url = \"http://127.0.0.1:9\"\nfallback_url = \"\"\n[network]\nenabled = false\nmempool_url = \"http://127.0.0.1:9\"\n";

/// A running `shepherd run`, killed if the test fails before stopping it.
pub struct Running {
    pub child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    pub db: PathBuf,
}

impl Running {
    /// Starts `shepherd run` with a fast config in `dir` and extra args; no price fetching.
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_with(dir, OFFLINE_PRICE_CONFIG, extra)
    }

    /// Like [`Running::start`] with `price_config` (the `[price]` and `[network]` sections).
    pub fn start_with(dir: &Path, price_config: &str, extra: &[&str]) -> Self {
        Self::start_on(dir, free_port(), price_config, extra)
    }

    /// Like [`Running::start_with`] on a given port (a restart that pages must find again).
    pub fn start_on(dir: &Path, port: u16, price_config: &str, extra: &[&str]) -> Self {
        Self::start_on_env(dir, port, price_config, extra, &[])
    }

    /// Like [`Running::start_on`] with extra environment variables for the server.
    pub fn start_on_env(
        dir: &Path,
        port: u16,
        price_config: &str,
        extra: &[&str],
        envs: &[(&str, &Path)],
    ) -> Self {
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!("[summarizer]\ninterval_secs = 1\nstall_secs = 10\n[demo]\nline_interval_millis = 200\naxeos_miners = 0\n[ingest]\nbatch_millis = 100\nmax_retry_secs = 2\n{price_config}"),
        )
        .unwrap();
        let db = dir.join("shepherd.db");
        let log = dir.join("shepherd.log");
        let bind = format!("127.0.0.1:{port}");
        let mut args = vec![
            "run",
            "--config",
            config.to_str().unwrap(),
            "--database",
            db.to_str().unwrap(),
            "--bind",
            &bind,
        ];
        args.extend_from_slice(extra);
        let child = Command::new(bin())
            .args(&args)
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Running {
            child: Some(child),
            port,
            log,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET returning (status, body); None while the server is not up.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let mut resp = agent.get(&self.url(path)).call().ok()?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().ok()?;
        Some((status, body))
    }

    /// Polls `path` until `pred` holds on its JSON, or panics after `timeout` with the log.
    pub fn wait_json(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            if let Some((200, body)) = self.get(path) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    if pred(&v) {
                        return v;
                    }
                    last = Some(v);
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "timed out waiting on {path}; last: {last:#?}\nlog:\n{}",
            self.log_text()
        );
    }

    /// Waits until the server answers /healthz.
    pub fn wait_up(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if matches!(self.get("/healthz"), Some((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server did not come up; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "exit status {status}; log:\n{}",
                    self.log_text()
                );
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!(
                    "did not stop within 30 s of SIGTERM; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
