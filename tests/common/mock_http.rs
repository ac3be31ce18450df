//! A tiny scripted HTTP/1.1 server on 127.0.0.1 standing in for CoinCodex, CoinGecko and
//! mempool.space: each path answers what the test set, and every request is recorded.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a path answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers, body.
    Full(u16, Vec<(String, String)>, String),
    /// Accept the connection, read the request, never answer (until the server is dropped).
    Hang,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: &str) -> Self {
        Reply::Full(200, Vec::new(), body.into())
    }

    /// `status` with a short body.
    pub fn status(status: u16) -> Self {
        Reply::Full(status, Vec::new(), format!("status {status}"))
    }

    /// `status` with one header.
    pub fn with_header(status: u16, name: &str, value: &str) -> Self {
        Reply::Full(status, vec![(name.into(), value.into())], String::new())
    }
}

/// A fixture body from tests/fixtures/apis.
pub fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apis")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Shared {
    routes: Mutex<HashMap<String, Reply>>,
    hits: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// The server; stops (and releases hanging connections) when dropped.
pub struct MockServer {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts on a free loopback port with no routes (everything is 404).
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            hits: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        MockServer {
            port,
            shared,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets what `path` (without query) answers from now on.
    pub fn set(&self, path: &str, reply: Reply) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.into(), reply);
    }

    /// Requests for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.requests(path).len()
    }

    /// Full request targets (with query) of requests for `path`.
    pub fn requests(&self, path: &str) -> Vec<String> {
        self.shared
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.split('?').next() == Some(path))
            .cloned()
            .collect()
    }

    /// Serves every fixture at its provider's path.
    pub fn serve_fixtures(&self) {
        self.set(
            "/api/coincodex/get_coin/btc",
            Reply::ok(&fixture("coincodex_get_coin_btc.json")),
        );
        self.set(
            "/api/v3/simple/price",
            Reply::ok(&fixture("coingecko_simple_price.json")),
        );
        self.set("/api/v1/prices", Reply::ok(&fixture("mempool_prices.json")));
        self.set(
            "/api/v1/mining/hashrate/3d",
            Reply::ok(&fixture("mempool_hashrate_3d.json")),
        );
        self.set(
            "/api/v1/difficulty-adjustment",
            Reply::ok(&fixture("mempool_difficulty_adjustment.json")),
        );
        self.set(
            "/api/blocks/tip/height",
            Reply::ok(&fixture("mempool_tip_height.txt")),
        );
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
    shared.hits.lock().unwrap().push(target.clone());
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let reply = shared.routes.lock().unwrap().get(&path).cloned();
    match reply.unwrap_or_else(|| Reply::status(404)) {
        Reply::Hang => {
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Reply::Full(status, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
