//! A mock AxeOS miner on 127.0.0.1 for `--demo` and tests: it answers the requests shepherd
//! makes with the shapes of three firmware generations and figures that move, and can be
//! told to fail. Source of every shape: bitaxeorg/ESP-Miner.
//!
//! - [`Version::V2_10`]: `GET /api/system/info` as v2.10.0 `main/http_server/http_server.c:
//!   640-715` builds it, `bestDiff`/`bestSessionDiff` as `_suffix_string` display strings
//!   (`main/system.c:272-324`: `"%.2f %s"`, e.g. `"270.00 M"`); no identify (the 404
//!   handler answers with a 302 to `/`, `http_server.c:1025-1036`).
//! - [`Version::V2_12`]: v2.12.0 `http_server.c:815-911`, difficulties as numbers
//!   (`:832-833`), `hashRate_1m`/`_10m` (`:827-828`), `POST /api/system/identify` (`:704`,
//!   route `:1304`) answering `{"message": …}`.
//! - [`Version::V2_15`]: v2.15.0 `main/http_server/system_api_json.c:155-220`: `pools[]`
//!   with `primaryPoolIndex`/`secondaryPoolIndex` beside the legacy `stratum*` fields;
//!   `PATCH /api/system` takes pools only as the `pools` array (`http_server.c:924-1011`).
//!
//! All: `GET /api/system/asic` (v2.12.0 `axe-os/api/system/asic_settings.c:41-66`),
//! `GET /api/ws` (the live log, see [`log_stream`]),
//! `POST /api/system/restart` answering `{"message":"System will restart shortly."}` before
//! rebooting (`http_server.c:731-760`), `PATCH /api/system` answering an empty 200, and —
//! when [`MockAxeOs::refuse_writes`] is on — the `401 Unauthorized` AxeOS gives a client
//! outside the private ranges (`is_network_allowed`, `http_server.c:310-429` at 5c277131).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// Which firmware generation the mock answers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// AxeOS 2.10: difficulties as display strings, no identify.
    V2_10,
    /// AxeOS 2.12: difficulties as numbers, identify.
    V2_12,
    /// AxeOS 2.15: the `pools[]` array.
    V2_15,
}

impl Version {
    /// All three, in order (the demo cycles through them).
    pub const ALL: [Version; 3] = [Version::V2_10, Version::V2_12, Version::V2_15];

    /// The `version` string the firmware reports.
    pub fn label(self) -> &'static str {
        match self {
            Version::V2_10 => "v2.10.0",
            Version::V2_12 => "v2.12.0",
            Version::V2_15 => "v2.15.0",
        }
    }
}

/// How the mock misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers normally.
    None,
    /// Reads the request and never answers.
    Silent,
    /// Answers every request with HTTP 500.
    ServerError,
    /// Answers 200 with a body that is not JSON.
    Garbage,
}

struct Pool {
    url: String,
    port: u16,
    user: String,
}

struct State {
    version: Version,
    boot: Instant,
    /// Seconds added to the uptime (a demo miner that has been running a while).
    uptime_offset: u64,
    base_ghs: f64,
    hostname: String,
    pools: Vec<Pool>,
    primary: usize,
    fault: Fault,
    /// Off the network ([`MockAxeOs::set_present`]): open log streams end too.
    gone: bool,
    refuse_writes: bool,
    restarts: u32,
    identifies: u32,
    patches: Vec<Value>,
    best_all_time: f64,
}

impl State {
    fn uptime(&self) -> u64 {
        self.boot.elapsed().as_secs() + self.uptime_offset
    }

    fn info(&self) -> Value {
        let up = self.uptime();
        let t = self.boot.elapsed().as_secs_f64() + self.uptime_offset as f64;
        let ghs = self.base_ghs * (1.0 + 0.04 * (t / 7.0).sin());
        // About one share every 3 s, one reject in 60 (a Bitaxe at pool difficulty ~1000).
        let accepted = up / 3;
        let rejected = accepted / 60;
        let session_best = 150_000.0 * (1.0 + accepted as f64).powf(1.3);
        let best = session_best.max(self.best_all_time);
        let diff = |d: f64| match self.version {
            Version::V2_10 => Value::from(suffix_string(d as u64)),
            _ => Value::from(d.floor() as u64),
        };
        let p = &self.pools[self.primary];
        let f = &self.pools[(self.primary + 1) % self.pools.len()];
        let mut o = json!({
            "power": 14.8, "voltage": 5150.0, "current": 2875.0,
            "temp": 51.0 + (t / 30.0).sin() * 2.0, "vrTemp": 47.0,
            "hashRate": ghs, "expectedHashrate": self.base_ghs,
            "bestDiff": diff(best), "bestSessionDiff": diff(session_best),
            "poolDifficulty": 1000, "isUsingFallbackStratum": 0,
            "freeHeap": 153_000, "coreVoltage": 1200, "coreVoltageActual": 1194,
            "frequency": 525, "ssid": "demo", "macAddr": "02:00:00:00:00:01",
            "hostname": self.hostname, "wifiStatus": "Connected!", "wifiRSSI": -52,
            "apEnabled": 0,
        });
        let more = json!({
            "sharesAccepted": accepted, "sharesRejected": rejected,
            "sharesRejectedReasons": [], "uptimeSeconds": up, "smallCoreCount": 2040,
            "ASICModel": if self.base_ghs > 800.0 { "BM1370" } else { "BM1366" },
            "stratumURL": p.url, "stratumPort": p.port, "stratumUser": p.user,
            "fallbackStratumURL": f.url, "fallbackStratumPort": f.port,
            "fallbackStratumUser": f.user, "responseTime": 41.5,
            "version": self.version.label(), "axeOSVersion": self.version.label(),
            "idfVersion": "v5.3.1", "boardVersion": "601", "runningPartition": "ota_0",
            "resetReason": if self.restarts > 0 { "Software reset via esp_restart" }
                           else { "Reset due to power-on event" },
            "blockFound": 0, "autofanspeed": 1, "fanspeed": 58, "fanrpm": 4200,
        });
        if let (Some(o), Value::Object(more)) = (o.as_object_mut(), more) {
            o.extend(more);
        }
        if self.version != Version::V2_10 {
            o["hashRate_1m"] = json!(ghs * 0.99);
            o["hashRate_10m"] = json!(self.base_ghs);
            o["hashRate_1h"] = json!(self.base_ghs);
        }
        if self.version == Version::V2_15 {
            o["primaryPoolIndex"] = json!(self.primary);
            o["secondaryPoolIndex"] = json!((self.primary + 1) % self.pools.len());
            o["pools"] = self
                .pools
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({"id": i, "stratumProtocol": "SV1", "stratumURL": p.url,
                           "stratumPort": p.port, "stratumUser": p.user,
                           "stratumPassword": "*****", "stratumSuggestedDifficulty": 1000,
                           "stratumExtranonceSubscribe": false, "stratumTLS": 0})
                })
                .collect();
        }
        o
    }

    fn asic(&self) -> Value {
        json!({
            "ASICModel": if self.base_ghs > 800.0 { "BM1370" } else { "BM1366" },
            "deviceModel": if self.base_ghs > 800.0 { "Gamma" } else { "Ultra" },
            "swarmColor": "purple", "asicCount": 1, "hashDomains": 4,
            "defaultFrequency": 525, "frequencyOptions": [400, 490, 525, 575],
            "defaultVoltage": 1200, "voltageOptions": [1100, 1150, 1200, 1250],
        })
    }

    /// Applies a PATCH body as `check_settings_and_update` would; `false` is its 400.
    fn patch(&mut self, body: &Value) -> bool {
        let Some(o) = body.as_object() else {
            return false;
        };
        self.patches.push(body.clone());
        let apply = |p: &mut Pool, o: &Map<String, Value>| {
            if let Some(u) = o.get("stratumURL").and_then(Value::as_str) {
                p.url = u.to_owned();
            }
            if let Some(n) = o.get("stratumPort").and_then(Value::as_u64) {
                p.port = u16::try_from(n).unwrap_or(p.port);
            }
            if let Some(u) = o.get("stratumUser").and_then(Value::as_str) {
                p.user = u.to_owned();
            }
        };
        match self.version {
            Version::V2_15 => {
                // The legacy keys are no settings of 2.15 (nvs_config.c:58): ignored.
                if let Some(pools) = o.get("pools").and_then(Value::as_array) {
                    for p in pools {
                        let Some(po) = p.as_object() else {
                            return false;
                        };
                        let Some(id) = po.get("id").and_then(Value::as_u64) else {
                            return false;
                        };
                        let Some(pool) = self.pools.get_mut(id as usize) else {
                            return false;
                        };
                        apply(pool, po);
                    }
                }
            }
            _ => apply(&mut self.pools[self.primary], o),
        }
        true
    }
}

/// `_suffix_string(val, buf, size, 0)` of v2.10.0 `main/system.c:272-324`.
pub fn suffix_string(val: u64) -> String {
    const UNITS: [(u64, u64, &str); 6] = [
        (1_000_000_000_000_000_000, 1_000_000_000_000_000, "E"),
        (1_000_000_000_000_000, 1_000_000_000_000, "P"),
        (1_000_000_000_000, 1_000_000_000, "T"),
        (1_000_000_000, 1_000_000, "G"),
        (1_000_000, 1_000, "M"),
        (1_000, 1, "k"),
    ];
    for (at, div, suffix) in UNITS {
        if val >= at {
            return format!("{:.2} {suffix}", (val / div) as f64 / 1000.0);
        }
    }
    format!("{val} ")
}

/// One mock miner; stops when dropped.
pub struct MockAxeOs {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    listening: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MockAxeOs {
    /// Starts a mock of `version` hashing about `ghs` GH/s on a free loopback port.
    pub fn start(version: Version, ghs: f64, hostname: &str) -> std::io::Result<MockAxeOs> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            version,
            boot: Instant::now(),
            uptime_offset: 0,
            base_ghs: ghs,
            hostname: hostname.to_owned(),
            pools: vec![
                Pool {
                    url: "public-pool.io".into(),
                    port: 21496,
                    user: "bc1qdemo0000000000000000000000000000000000.axe".into(),
                },
                Pool {
                    url: "solo.ckpool.org".into(),
                    port: 3333,
                    user: "bc1qdemo0000000000000000000000000000000000".into(),
                },
            ],
            primary: 0,
            fault: Fault::None,
            gone: false,
            refuse_writes: false,
            restarts: 0,
            identifies: 0,
            patches: Vec::new(),
            best_all_time: 21_000_000.0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let listening = Arc::new(AtomicBool::new(true));
        let thread = {
            let (state, stop, listening) = (state.clone(), stop.clone(), listening.clone());
            std::thread::Builder::new()
                .name(format!("mock-axeos-{}", addr.port()))
                .spawn(move || serve(Some(listener), addr, &state, &stop, &listening))?
        };
        Ok(MockAxeOs {
            state,
            addr,
            stop,
            listening,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts misbehaving (or stops, with [`Fault::None`]).
    pub fn set_fault(&self, fault: Fault) {
        lock(&self.state).fault = fault;
    }

    /// Answers writes with AxeOS's 401 for clients outside the private ranges.
    pub fn refuse_writes(&self, on: bool) {
        lock(&self.state).refuse_writes = on;
    }

    /// Gone from the network (`false`: connections are refused) or back (`true`).
    pub fn set_present(&self, present: bool) {
        lock(&self.state).gone = !present;
        self.listening.store(present, Ordering::Relaxed);
    }

    /// Pretends the miner has been up this long already.
    pub fn set_uptime_offset(&self, secs: u64) {
        lock(&self.state).uptime_offset = secs;
    }

    /// Restarts taken (`POST /api/system/restart`).
    pub fn restarts(&self) -> u32 {
        lock(&self.state).restarts
    }

    /// Identifies taken (`POST /api/system/identify`).
    pub fn identifies(&self) -> u32 {
        lock(&self.state).identifies
    }

    /// The `PATCH /api/system` bodies received.
    pub fn patches(&self) -> Vec<Value> {
        lock(&self.state).patches.clone()
    }

    /// The primary pool as `host:port`.
    pub fn primary_pool(&self) -> String {
        let s = lock(&self.state);
        let p = &s.pools[s.primary];
        format!("{}:{}", p.url, p.port)
    }
}

impl Drop for MockAxeOs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts until stopped; while not `listening` the socket is closed so connecting fails
/// as it does for a miner that lost power.
fn serve(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    state: &Arc<Mutex<State>>,
    stop: &Arc<AtomicBool>,
    listening: &AtomicBool,
) {
    let mut held: Vec<TcpStream> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let want = listening.load(Ordering::Relaxed);
        match (&listener, want) {
            (Some(_), false) => {
                listener = None;
                held.clear();
            }
            (None, true) => listener = TcpListener::bind(addr).ok(),
            _ => {}
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if l.set_nonblocking(true).is_err() {
            return;
        }
        match l.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                if let Some(keep) = handle(stream, state, stop) {
                    // A silent miner: the connection stays open, unanswered.
                    held.push(keep);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Answers one request (one per connection, as `Connection: close`); returns the stream
/// when it must be left unanswered.
fn handle(
    stream: TcpStream,
    state: &Arc<Mutex<State>>,
    stop: &Arc<AtomicBool>,
) -> Option<TcpStream> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    let mut ws_key: Option<String> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0).min(64 * 1024);
            }
            if k.trim().eq_ignore_ascii_case("sec-websocket-key") {
                ws_key = Some(v.trim().to_owned());
            }
        }
    }
    if request_line.starts_with("GET /api/ws ") {
        if let Some(key) = ws_key {
            let stream = reader.into_inner();
            if lock(state).fault == Fault::None {
                let state = state.clone();
                let stop = stop.clone();
                let _ = std::thread::Builder::new()
                    .name("mock-axeos-ws".into())
                    .spawn(move || log_stream(stream, &key, &state, &stop));
            }
            return None;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut stream = reader.into_inner();
    let (status, content_type, text) = {
        let mut s = lock(state);
        match s.fault {
            Fault::Silent => return Some(stream),
            Fault::ServerError => (
                "500 Internal Server Error",
                "text/plain",
                "Internal Server Error".to_owned(),
            ),
            Fault::Garbage => ("200 OK", "application/json", "{\"hashRate\": 4".to_owned()),
            Fault::None => route(&mut s, &method, &path, &body),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        text.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
    None
}

fn route(
    s: &mut State,
    method: &str,
    path: &str,
    body: &[u8],
) -> (&'static str, &'static str, String) {
    const JSON: &str = "application/json";
    let write = matches!(method, "POST" | "PATCH" | "PUT" | "DELETE");
    if write && s.refuse_writes {
        return ("401 Unauthorized", "text/html", "Unauthorized".into());
    }
    match (method, path) {
        ("GET", "/api/system/info") => ("200 OK", JSON, s.info().to_string()),
        ("GET", "/api/system/asic") => ("200 OK", JSON, s.asic().to_string()),
        ("POST", "/api/system/restart") => {
            s.restarts += 1;
            s.boot = Instant::now();
            s.uptime_offset = 0;
            (
                "200 OK",
                JSON,
                json!({"message": "System will restart shortly."}).to_string(),
            )
        }
        ("POST", "/api/system/identify") if s.version != Version::V2_10 => {
            s.identifies += 1;
            let message = "The device says \"Hi!\" for 30 seconds.";
            ("200 OK", JSON, json!({ "message": message }).to_string())
        }
        ("PATCH", "/api/system") => match serde_json::from_slice::<Value>(body) {
            Ok(v) if s.patch(&v) => ("200 OK", JSON, String::new()),
            Ok(_) => ("400 Bad Request", "text/html", "Wrong API input".into()),
            Err(_) => ("400 Bad Request", "text/html", "Invalid JSON".into()),
        },
        _ => (
            "302 Temporary Redirect",
            "text/html",
            "Redirect to the captive portal".into(),
        ),
    }
}

/// The `/api/ws` log stream: the handshake answered, then an ESP log line as a text frame
/// every 500 ms, colour codes included, as `log_to_queue` forwards them (v2.12.0
/// `main/http_server/websocket.c:25-60`), until the client goes or the mock stops.
fn log_stream(mut stream: TcpStream, key: &str, state: &Mutex<State>, stop: &AtomicBool) {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Server, None);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (ms, user, present) = {
            let s = lock(state);
            let user = s.pools[s.primary].user.clone();
            (
                s.boot.elapsed().as_millis(),
                user,
                s.fault == Fault::None && !s.gone,
            )
        };
        if !present {
            break;
        }
        n += 1;
        let line = if n % 2 == 0 {
            format!(
                "\u{1b}[0;32mI ({ms}) asic_result: ID: {n:08x}, ver: 20000000 Nonce 1A2B{n:04X} diff {}.{} of 1000.\u{1b}[0m\n",
                900 + n % 700,
                n % 10
            )
        } else {
            format!(
                "\u{1b}[0;32mI ({ms}) stratum_task: tx: {{\"id\": {n}, \"method\": \"mining.submit\", \"params\": [\"{user}\", \"{n:x}\"]}}\u{1b}[0m\n"
            )
        };
        if ws.send(tungstenite::Message::text(line)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = ws.close(None);
}

/// Mock miners for `--demo`: one of each version, cycling, at Bitaxe Ultra / Gamma rates.
pub fn demo(count: usize) -> std::io::Result<Vec<(String, MockAxeOs)>> {
    (0..count)
        .map(|i| {
            let version = Version::ALL[i % Version::ALL.len()];
            let ghs = [480.0, 1150.0, 2300.0][i % 3];
            let name = format!("demo-axe-{}", i + 1);
            let m = MockAxeOs::start(version, ghs, &name)?;
            m.set_uptime_offset(3600 * (i as u64 + 1));
            Ok((name, m))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_strings_match_the_firmware() {
        assert_eq!(suffix_string(512), "512 ");
        assert_eq!(suffix_string(1_500), "1.50 k");
        assert_eq!(suffix_string(270_000_000), "270.00 M");
        assert_eq!(suffix_string(4_294_967_296), "4.29 G");
    }
}
