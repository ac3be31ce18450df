//! Simulated miners for `--demo` and tests. They print NerdMiner output into pseudo-terminals
//! that the real MinerActors read through the real serial code: demo mode exercises ingest, it
//! does not bypass it.

/// A mock AxeOS miner (Bitaxe, NerdQAxe) answering HTTP on loopback.
pub mod axeos;
pub mod esp32;
pub mod nerdminer;
pub mod pty;

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nerdminer::{Board, SimMiner};

use std::collections::HashMap;
use std::sync::Mutex;

use crate::flash::lines::Forwarding;

/// Which pseudo-terminals have a simulated chip behind them, and its line-control handle, so
/// the MinerActor on that path drives the simulator's DTR/RTS as it would a real port's.
/// Filled only in demo mode and tests; real hardware is never in it.
#[derive(Debug, Clone, Default)]
pub struct LineRegistry(Arc<Mutex<HashMap<String, Forwarding>>>);

impl LineRegistry {
    /// Registers the simulator behind `path`.
    pub fn register(&self, path: &str, lines: Forwarding) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(path.to_owned(), lines);
        }
    }

    /// The simulator behind `path`, if any.
    pub fn get(&self, path: &str) -> Option<Forwarding> {
        self.0.lock().ok().and_then(|m| m.get(path).cloned())
    }
}

/// One simulated miner writing on its own thread.
pub struct SimHandle {
    /// Slave path the reader opens.
    pub path: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(u64, File)>>,
    /// The master end after writing stopped: kept open until the handle is dropped, because
    /// closing it would discard what the reader has not read yet.
    master: Option<File>,
}

impl SimHandle {
    /// Stops writing and returns how many non-empty lines were written in all.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok((written, master))) => {
                self.master = Some(master);
                written
            }
            _ => 0,
        }
    }
}

/// Starts simulated miner number `index` printing a line block every `interval`.
pub fn spawn(index: u64, interval: Duration) -> std::io::Result<SimHandle> {
    let pty::Pty {
        master,
        path,
        slave,
    } = pty::Pty::open()?;
    let path = path.display().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let board = if index % 3 == 2 {
        Board::Display
    } else {
        Board::NoDisplay
    };
    let mut sim = SimMiner::new(index, board);
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("sim-{index}"))
        .spawn(move || {
            let mut master = master;
            let _slave = slave;
            let mut written = 0u64;
            let mut write_block = |lines: Vec<String>, master: &mut std::fs::File| {
                let mut text = String::new();
                for l in &lines {
                    // println ends lines in CRLF, printf("…\n") in LF: mix both like the firmware.
                    text.push_str(l);
                    text.push_str(if l.starts_with(">>>") { "\n" } else { "\r\n" });
                }
                if master.write_all(text.as_bytes()).is_ok() {
                    written += lines.iter().filter(|l| !l.trim().is_empty()).count() as u64;
                }
            };
            write_block(sim.boot_lines(), &mut master);
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                write_block(sim.tick(), &mut master);
            }
            let _ = master.flush();
            (written, master)
        })?;
    Ok(SimHandle {
        path,
        stop,
        thread: Some(thread),
        master: None,
    })
}
