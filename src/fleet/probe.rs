//! Testing a pool from the Pi before anyone writes it to a miner: resolve, TCP connect, send
//! stratum `mining.subscribe` and wait for its answer, all within one timeout (5 s by default).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::profile::Endpoint;

/// The timeout the profile test uses.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A pool's answer to the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// `host:port`.
    pub pool: String,
    /// It accepted the connection and answered the subscribe with a result.
    pub ok: bool,
    /// What happened, for people.
    pub detail: String,
    /// Milliseconds from connect to answer (when there was one).
    pub millis: Option<u64>,
}

/// Tests one pool. Never panics; every failure is a result saying what to check.
pub fn probe(pool: &Endpoint, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let result = |ok, detail: String| ProbeResult {
        pool: pool.label(),
        ok,
        detail,
        millis: ok.then(|| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
    };
    let host = pool.host.trim_start_matches("stratum+tcp://");
    let addrs = match (host, pool.port).to_socket_addrs() {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => {
            return result(
                false,
                format!("cannot resolve {host}: {e} (check the name)"),
            )
        }
    };
    let Some(addr) = addrs.first() else {
        return result(false, format!("{host} has no address (check the name)"));
    };
    let mut stream = match TcpStream::connect_timeout(addr, timeout) {
        Ok(s) => s,
        Err(e) => {
            return result(
                false,
                format!(
                    "cannot connect to {}: {e} (check host and port)",
                    pool.label()
                ),
            )
        }
    };
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    if stream.set_read_timeout(Some(left)).is_err() || stream.set_write_timeout(Some(left)).is_err()
    {
        return result(false, "cannot set a timeout on the connection".into());
    }
    let subscribe = "{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"shepherd-probe\"]}\n";
    if let Err(e) = stream.write_all(subscribe.as_bytes()) {
        return result(false, format!("the pool closed the connection: {e}"));
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => {
                return result(
                    false,
                    "the pool closed the connection without answering mining.subscribe (is \
                     this a stratum port?)"
                        .into(),
                )
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return result(
                    false,
                    format!(
                        "no answer to mining.subscribe within {} s",
                        timeout.as_secs()
                    ),
                )
            }
            Err(e) => {
                return result(
                    false,
                    format!("the pool closed the connection without answering: {e}"),
                )
            }
        }
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            return result(
                false,
                "the pool answered something that is not stratum JSON".into(),
            );
        };
        // Notifications (a method, no id) may come first; the answer carries our id.
        if msg.get("id").and_then(serde_json::Value::as_i64) != Some(1) {
            continue;
        }
        let error = msg.get("error").filter(|e| !e.is_null());
        return match (msg.get("result").filter(|r| !r.is_null()), error) {
            (Some(_), None) => result(true, "subscribed".into()),
            (_, Some(e)) => result(false, format!("the pool refused mining.subscribe: {e}")),
            (None, None) => result(
                false,
                "the pool answered mining.subscribe with no result".into(),
            ),
        };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::TcpListener;

    /// How a stub pool answers.
    #[derive(Clone, Copy)]
    pub enum Stub {
        /// Answers mining.subscribe like a pool.
        Accept,
        /// Answers with a stratum error.
        Refuse,
        /// Closes the connection at once.
        Hangup,
    }

    /// A stratum server stub on loopback serving `conns` connections; returns its port.
    pub fn stub(mode: Stub, conns: usize) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(conns) {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                match mode {
                    Stub::Hangup => continue,
                    Stub::Accept => {
                        r.read_line(&mut line).unwrap();
                        let _ = s.write_all(
                            b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1]}\n",
                        );
                        let _ = s.write_all(b"{\"id\":1,\"result\":[[[\"mining.notify\",\"ae6812eb\"]],\"08000002\",4],\"error\":null}\n");
                    }
                    Stub::Refuse => {
                        r.read_line(&mut line).unwrap();
                        let _ = s.write_all(
                            b"{\"id\":1,\"result\":null,\"error\":[20,\"banned\",null]}\n",
                        );
                    }
                }
            }
        });
        port
    }

    fn ep(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
            password: "x".into(),
        }
    }

    #[test]
    fn accepting_pool_passes() {
        let r = probe(&ep(stub(Stub::Accept, 1)), TIMEOUT);
        assert!(r.ok, "{r:?}");
        assert!(r.millis.is_some());
    }

    #[test]
    fn refusing_closed_and_absent_pools_fail_with_a_reason() {
        let r = probe(&ep(stub(Stub::Refuse, 1)), TIMEOUT);
        assert!(!r.ok && r.detail.contains("banned"), "{r:?}");
        let r = probe(&ep(stub(Stub::Hangup, 1)), TIMEOUT);
        assert!(!r.ok && r.detail.contains("closed"), "{r:?}");
        // A port nobody listens on: bind, learn the port, close.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = probe(&ep(port), TIMEOUT);
        assert!(!r.ok && r.detail.contains("cannot connect"), "{r:?}");
    }
}
