//! An AxeOS miner's live log: the `/api/ws` websocket, where the firmware sends every ESP log
//! line as a text frame (v2.12.0 `main/http_server/websocket.c:25-60` `log_to_queue`, sent by
//! `websocket_task` `:198-240`; route `http_server.c:1366`). The lines go to the same raw-line
//! store as a serial miner's, framed (colour codes removed) and with secrets masked; the
//! NerdMiner parser is not run on them — AxeOS words nothing the way NerdMiner does, and its
//! figures come from `/api/system/info`.

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::clock::now_ms;
use crate::db::LinesRead;
use crate::miner::framing::{LineFramer, MAX_LINE_BYTES};
use crate::miner::parse::mask_secrets;
use crate::miner::reader::Sink;
use crate::model::lines::LineBatch;

/// How long to wait before reconnecting a closed or refused log stream.
const RETRY: Duration = Duration::from_secs(15);

/// `host:port` of an `http://host[:port]` address (`None` for https: the log stream would
/// need TLS, and AxeOS serves plain HTTP).
pub fn ws_authority(base: &str) -> Option<String> {
    let rest = base.strip_prefix("http://")?;
    let rest = rest.trim_end_matches('/');
    let has_port = match rest.rfind(']') {
        Some(end) => rest[end..].contains(':'),
        None => rest.contains(':'),
    };
    Some(if has_port {
        rest.to_owned()
    } else {
        format!("{rest}:80")
    })
}

/// Turns websocket text into stored lines.
pub struct LogLines {
    framer: LineFramer,
}

impl Default for LogLines {
    fn default() -> Self {
        Self {
            framer: LineFramer::new(MAX_LINE_BYTES),
        }
    }
}

impl LogLines {
    /// The complete lines in one message (a line split across messages waits for its end).
    pub fn push(&mut self, text: &str) -> LineBatch {
        let mut lines = LineBatch::default();
        let ts = now_ms();
        self.framer.push_each(text.as_bytes(), |line, truncated| {
            if !line.trim().is_empty() {
                lines.push(ts, &mask_secrets(line), truncated, &mut Vec::new());
            }
        });
        lines
    }
}

/// Reads the log stream until `stop`, reconnecting after [`RETRY`]; a miner without the
/// websocket (or not answering) just has no live log.
pub fn run(miner_id: i64, base: &str, sink: &Sink, stop: &AtomicBool) {
    let Some(authority) = ws_authority(base) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = follow(miner_id, &authority, sink, stop) {
            tracing::debug!(miner = miner_id, "AxeOS log stream: {e}");
        }
        let until = Instant::now() + RETRY;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn follow(miner_id: i64, authority: &str, sink: &Sink, stop: &AtomicBool) -> Result<(), String> {
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream =
        TcpStream::connect_timeout(&addr, super::http::TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(super::http::TIMEOUT))
        .map_err(|e| e.to_string())?;
    let (mut ws, _) = tungstenite::client(format!("ws://{authority}/api/ws"), stream)
        .map_err(|e| e.to_string())?;
    // Short reads from here on, so `stop` is seen within a second.
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    let mut lines = LogLines::default();
    while !stop.load(Ordering::Relaxed) {
        match ws.read() {
            Ok(Message::Text(t)) => store(miner_id, sink, lines.push(t.as_str())),
            Ok(Message::Binary(b)) => {
                store(miner_id, sink, lines.push(&String::from_utf8_lossy(&b)))
            }
            Ok(Message::Close(_)) => return Err("closed by the miner".into()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let _ = ws.close(None);
    Ok(())
}

fn store(miner_id: i64, sink: &Sink, lines: LineBatch) {
    if lines.is_empty() {
        return;
    }
    sink.stats
        .queued_lines
        .fetch_add(lines.len(), Ordering::Relaxed);
    sink.db.do_send(LinesRead {
        miner_id,
        lines,
        dropped: 0,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_of_plain_http_only() {
        assert_eq!(
            ws_authority("http://bitaxe.local").as_deref(),
            Some("bitaxe.local:80")
        );
        assert_eq!(
            ws_authority("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            ws_authority("http://[fe80::1]").as_deref(),
            Some("[fe80::1]:80")
        );
        assert_eq!(ws_authority("https://x"), None);
    }

    #[test]
    fn log_text_becomes_clean_masked_lines() {
        let mut l = LogLines::default();
        assert!(l.push("\u{1b}[0;32mI (1200) stratum_task: tx: {\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"bc1q.axe\",\"hunter2\"]}").is_empty(), "waits for the line end");
        let out = l.push("\u{1b}[0m\nI (1300) asic_result: Ver: 20000000\n");
        let out: Vec<_> = out.iter().collect();
        assert_eq!(out.len(), 2);
        assert!(
            out[0].text.starts_with("I (1200) stratum_task"),
            "{}",
            out[0].text
        );
        assert!(!out[0].text.contains("hunter2"), "{}", out[0].text);
        assert!(!out[0].text.contains('\u{1b}'));
        assert_eq!(out[1].text, "I (1300) asic_result: Ver: 20000000");
    }
}
