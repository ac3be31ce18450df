//! The blocking reader a MinerActor runs on its own thread: open the port, frame and parse
//! lines, hand batches to the DbActor, and reopen with backoff when the port goes away.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;

use super::dedupe::EventFilter;
use super::framing::{LineFramer, MAX_LINE_BYTES};
use super::pace::{Pace, COALESCE};
use super::parse::{mask_secrets, parse_line_into};
use super::port;
use crate::clock::now_ms;
use crate::db::{DbActor, IngestStats, LinesRead, LinkChanged, LinkState};
use crate::flash::lines::{self, Forwarding, LineControl, ResetKind, SerialLines};
use crate::flash::port::SessionPort;
use crate::model::event::MinerEvent;
use crate::model::lines::LineBatch;
use serialport::TTYPort;

/// What a reader needs to know.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Miner row id.
    pub miner_id: i64,
    /// Device path.
    pub port: String,
    /// Serial speed.
    pub baud: u32,
    /// Send a batch at this many lines...
    pub batch_lines: usize,
    /// ...or when its oldest line is this old.
    pub batch_interval: Duration,
    /// Queue bound: a reader stops reading its port rather than hold more (lines are dropped,
    /// and counted, only while a command reads the port itself).
    pub max_pending_lines: usize,
    /// Longest backoff between reopen attempts.
    pub max_retry: Duration,
    /// Where this miner's configuration backups go.
    pub backups_dir: PathBuf,
    /// Backups kept.
    pub backups_keep: usize,
    /// Demo and tests: the simulated chip behind this pseudo-terminal, which receives the
    /// DTR/RTS calls a real port would get (a pty has no modem lines). `None` for hardware.
    pub sim_lines: Option<Forwarding>,
}

/// Work that needs the port, run on the reader thread between reads so that one owner ever
/// touches it. Gets the session, or why the port is not open.
pub type PortJob = Box<dyn FnOnce(Result<&mut PortSession<'_>, String>) + Send>;

/// Where a reader sends what it reads.
#[derive(Clone)]
pub struct Sink {
    /// The writer.
    pub db: Addr<DbActor>,
    /// Shared queue counters (back-pressure).
    pub stats: Arc<IngestStats>,
}

/// Collects lines into batches and applies the queue bound.
struct Batcher {
    miner_id: i64,
    filter: EventFilter,
    lines: LineBatch,
    /// The parser's output for the line at hand, reused for every line.
    events: Vec<MinerEvent>,
    first_at: Option<Instant>,
    dropped: u64,
    batch_lines: usize,
    interval: Duration,
    max_pending: usize,
    sink: Sink,
}

impl Batcher {
    fn add(&mut self, text: &str, truncated: bool) {
        self.add_at(text, truncated, now_ms());
    }

    /// Adds a line read at `ts` (Unix ms): the lines of one read share one clock reading.
    fn add_at(&mut self, text: &str, truncated: bool, ts: i64) {
        if self.lines.len() >= self.max_pending + READ_BUF {
            // The database is far behind while a command reads the port (the main loop stops
            // reading long before this): keep memory bounded, count what is lost.
            self.dropped += 1;
            return;
        }
        parse_line_into(text, &mut self.events);
        let filter = &mut self.filter;
        self.events.retain(|e| filter.keep(e));
        self.first_at.get_or_insert_with(Instant::now);
        self.lines
            .push(ts, &mask_secrets(text), truncated, &mut self.events);
    }

    /// A whole batch waits for the writer: read no more until it is handed over (the bytes
    /// wait in the kernel, and a pseudo-terminal's writer blocks) rather than drop lines.
    /// Also full when one more read could pass the queue bound (a read of `READ_BUF` bytes
    /// holds at most that many lines), so the main loop never drops.
    fn full(&self) -> bool {
        !self.lines.is_empty()
            && (self.lines.len() >= self.hand_over_at()
                || self.lines.len() + READ_BUF > self.max_pending)
    }

    /// Lines a reader gathers before handing them over: the writer commits `batch_lines` at a
    /// time whatever the size of the messages, so a flooding reader sends smaller ones and
    /// holds less (ten flooding readers would otherwise hold a whole batch each).
    fn hand_over_at(&self) -> usize {
        self.batch_lines.min(HAND_OVER_MAX)
    }

    fn due(&self) -> bool {
        self.lines.len() >= self.hand_over_at()
            || self.first_at.is_some_and(|t| t.elapsed() >= self.interval)
    }

    /// Hands the batch over unless the database queue is full (then it waits here, bounded
    /// by `add`). `force` sends regardless, for the final batch.
    fn send(&mut self, force: bool) {
        if self.lines.is_empty() && self.dropped == 0 {
            return;
        }
        let queued = self.sink.stats.queued_lines.load(Ordering::Relaxed);
        // An empty queue always takes the batch (one read can hold more than the bound).
        if !force && queued > 0 && queued + self.lines.len() > self.max_pending {
            return;
        }
        // The next batch will likely be as big as this one: allocate it once, not by doubling.
        let next = LineBatch::with_capacity(self.lines.len(), self.lines.text_bytes());
        let lines = std::mem::replace(&mut self.lines, next);
        self.sink
            .stats
            .queued_lines
            .fetch_add(lines.len(), Ordering::Relaxed);
        self.sink.db.do_send(LinesRead {
            miner_id: self.miner_id,
            lines,
            dropped: std::mem::take(&mut self.dropped),
        });
        self.first_at = None;
    }
}

/// Runs until `stop` is set; then drains what the port still holds and sends it. Jobs from
/// `jobs` run between reads, in order. Setting `wake` while the port is missing retries at
/// once instead of waiting out the backoff (discovery saw the device come back).
pub fn run(
    cfg: ReaderConfig,
    sink: Sink,
    stop: Arc<AtomicBool>,
    wake: Arc<AtomicBool>,
    jobs: Receiver<PortJob>,
) {
    let mut batcher = Batcher {
        miner_id: cfg.miner_id,
        filter: EventFilter::default(),
        lines: LineBatch::default(),
        events: Vec::new(),
        first_at: None,
        dropped: 0,
        batch_lines: cfg.batch_lines,
        interval: cfg.batch_interval,
        max_pending: cfg.max_pending_lines,
        sink: sink.clone(),
    };
    let link = |state: LinkState, detail: Option<String>| {
        sink.db.do_send(LinkChanged {
            miner_id: cfg.miner_id,
            state,
            detail,
        });
    };
    let mut backoff = Duration::from_secs(1);
    let mut last_failure: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut port = match port::open(&cfg.port, cfg.baud) {
            Ok(p) => p,
            Err(failure) => {
                // Nothing can use a port that is not open: say so now rather than queue.
                while let Ok(job) = jobs.try_recv() {
                    job(Err(failure.message.clone()));
                }
                if last_failure.as_deref() != Some(failure.message.as_str()) {
                    tracing::warn!(miner = cfg.miner_id, "{}", failure.message);
                    link(failure.state, Some(failure.message.clone()));
                    last_failure = Some(failure.message);
                }
                backoff = if sleep_unless_stopped(backoff, &stop, &wake) {
                    Duration::from_secs(1)
                } else {
                    (backoff * 2).min(cfg.max_retry)
                };
                continue;
            }
        };
        wake.store(false, Ordering::Relaxed);
        tracing::info!(miner = cfg.miner_id, port = %cfg.port, "reading");
        link(LinkState::Connected, None);
        // A write cut off by the cable (or a silent chip) left its backup to put back: now
        // that the port is here again, queue that restore (the supervisor dispatches it).
        let miner_id = cfg.miner_id;
        sink.db.do_send(crate::db::Write::new(move |c| {
            match crate::db::commands::queue_restore_after_replug(c, miner_id) {
                Ok(Some(id)) => tracing::warn!(
                    miner = miner_id,
                    "port back after an interrupted write: restore queued as command #{id}"
                ),
                Ok(None) => {}
                Err(e) => tracing::error!(miner = miner_id, "cannot queue the restore: {e}"),
            }
            Ok(())
        }));
        backoff = Duration::from_secs(1);
        last_failure = None;
        let ended = read_until_gone(&mut port, &mut batcher, &stop, &jobs, &cfg);
        batcher.send(true);
        match ended {
            Ended::Stopped => break,
            Ended::Gone(why) => {
                tracing::warn!(
                    miner = cfg.miner_id,
                    "{} went away: {why}; will reopen",
                    cfg.port
                );
                link(
                    LinkState::Offline,
                    Some(format!(
                        "{} disconnected ({why}); waiting for it to return",
                        cfg.port
                    )),
                );
            }
        }
    }
    batcher.send(true);
    while let Ok(job) = jobs.try_recv() {
        job(Err("shepherd is stopping".into()));
    }
    link(LinkState::Offline, Some("shepherd stopped reading".into()));
}

enum Ended {
    Stopped,
    Gone(String),
}

fn read_until_gone(
    port: &mut TTYPort,
    batcher: &mut Batcher,
    stop: &AtomicBool,
    jobs: &Receiver<PortJob>,
    cfg: &ReaderConfig,
) -> Ended {
    let mut framer = LineFramer::new(MAX_LINE_BYTES);
    let mut buf = vec![0u8; READ_BUF];
    let mut overruns = Overruns::of(port);
    let mut pace = Pace::new(Instant::now());
    let ended = loop {
        let mut pause = false;
        if batcher.full() {
            batcher.send(false);
            if batcher.full() {
                // The writer's queue is full: leave the port unread for a moment. A stop
                // request or a job is still honoured (both hand the batch over by force).
                if stop.load(Ordering::Relaxed) {
                    break Ended::Stopped;
                }
                if let Ok(job) = jobs.try_recv() {
                    if let Some(gone) = run_job(job, port, &mut framer, batcher, cfg, stop) {
                        break Ended::Gone(gone);
                    }
                    continue;
                }
                std::thread::sleep(BACKPRESSURE_WAIT);
                continue;
            }
        }
        match port.read(&mut buf) {
            Ok(0) => break Ended::Gone("end of file".into()),
            Ok(n) => {
                let ts = now_ms();
                framer.push_each(&buf[..n], |text, truncated| {
                    batcher.add_at(text, truncated, ts)
                });
                pause = pace.after_read(n, Instant::now());
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                // Idle port. A stop request is honoured only now, so nothing already in the
                // kernel's buffer is left behind.
                pace.after_read(0, Instant::now());
                if stop.load(Ordering::Relaxed) {
                    break Ended::Stopped;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Ended::Gone(e.to_string()),
        }
        if batcher.due() {
            overruns.count(port, cfg, &batcher.sink.stats);
            batcher.send(false);
        }
        if let Ok(job) = jobs.try_recv() {
            if let Some(gone) = run_job(job, port, &mut framer, batcher, cfg, stop) {
                break Ended::Gone(gone);
            }
            // The job read the port itself; go straight back to reading.
            continue;
        }
        if pause && !stop.load(Ordering::Relaxed) {
            // USB-serial adapters hand over a few bytes at a time; letting them collect for a
            // moment turns hundreds of wake-ups a second per miner into a few dozen (only
            // while the port trickles: see `pace`). Done after the job check, so a queued
            // command never waits for this pause.
            std::thread::sleep(COALESCE);
        }
    };
    framer.finish_each(|text, truncated| batcher.add(text, truncated));
    ended
}

/// Runs a job with the port lent to it; returns why the port failed, if it did.
fn run_job(
    job: PortJob,
    port: &mut TTYPort,
    framer: &mut LineFramer,
    batcher: &mut Batcher,
    cfg: &ReaderConfig,
    stop: &AtomicBool,
) -> Option<String> {
    // Every line read so far goes to the database before the job may reset the chip.
    batcher.send(true);
    let mut session = PortSession {
        port,
        framer,
        batcher,
        cfg,
        stop,
        gone: None,
    };
    job(Ok(&mut session));
    let gone = session.gone.take();
    batcher.send(true);
    gone
}

/// Most lines one `LinesRead` carries (see `Batcher::hand_over_at`).
const HAND_OVER_MAX: usize = 1024;

/// Bytes asked for per read of the port.
const READ_BUF: usize = 8192;

/// How long a reader waits before offering a full batch again when the writer's queue is full:
/// short, since the writer drains a batch in milliseconds (5 ms left the flood pipeline idle).
const BACKPRESSURE_WAIT: Duration = Duration::from_millis(1);

/// What the kernel itself lost on a real UART: the driver's overrun counters
/// (`TIOCGICOUNT`, `struct serial_icounter_struct` in linux/serial.h: `overrun` when the
/// UART's FIFO overflowed, `buf_overrun` when the tty buffer did). Pseudo-terminals and
/// drivers without counters answer with an error: then nothing is counted (a pty loses
/// nothing: its writer blocks).
struct Overruns {
    last: Option<u64>,
}

/// `struct serial_icounter_struct` (linux/serial.h).
#[repr(C)]
#[derive(Default)]
struct IcounterStruct {
    cts: i32,
    dsr: i32,
    rng: i32,
    dcd: i32,
    rx: i32,
    tx: i32,
    frame: i32,
    overrun: i32,
    parity: i32,
    brk: i32,
    buf_overrun: i32,
    reserved: [i32; 9],
}

// `TIOCGICOUNT` is 0x545D on every Linux architecture shepherd runs on (asm-generic/ioctls.h).
mod ioctl {
    nix::ioctl_read_bad!(tiocgicount, 0x545D, super::IcounterStruct);
}

fn icount(port: &TTYPort) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut c = IcounterStruct::default();
    // SAFETY: the fd is the open port's; the kernel writes one `serial_icounter_struct`.
    unsafe { ioctl::tiocgicount(port.as_raw_fd(), &mut c) }.ok()?;
    Some(u64::from(c.overrun.max(0) as u32) + u64::from(c.buf_overrun.max(0) as u32))
}

impl Overruns {
    fn of(port: &TTYPort) -> Self {
        Self { last: icount(port) }
    }

    /// Adds what the kernel lost since the last look to the ingest counters, and says so.
    fn count(&mut self, port: &TTYPort, cfg: &ReaderConfig, stats: &IngestStats) {
        let (Some(last), Some(now)) = (self.last, icount(port)) else {
            return;
        };
        self.last = Some(now);
        let lost = now.saturating_sub(last);
        if lost > 0 {
            stats.overrun_bytes.fetch_add(lost, Ordering::Relaxed);
            tracing::warn!(
                miner = cfg.miner_id,
                "{}: the serial driver lost {lost} byte(s) (UART overrun): the machine is too \
                 busy to read the port in time",
                cfg.port
            );
        }
    }
}

/// The port lent to a job: raw access for the loader, DTR/RTS resets, and reading lines into
/// the normal ingest (so a boot log captured for its configuration is stored like any other).
pub struct PortSession<'a> {
    port: &'a mut TTYPort,
    framer: &'a mut LineFramer,
    batcher: &'a mut Batcher,
    cfg: &'a ReaderConfig,
    stop: &'a AtomicBool,
    gone: Option<String>,
}

impl<'a> PortSession<'a> {
    /// The port itself (for the ROM loader).
    pub fn port(&mut self) -> &mut dyn serialport::SerialPort {
        self.port
    }

    /// Set when shepherd is stopping: a long job should give up, put the miner back into its
    /// firmware and return (a miner left in its bootloader does not mine).
    pub fn stop_flag(&self) -> &'a AtomicBool {
        self.stop
    }

    /// The miner's id.
    pub fn miner_id(&self) -> i64 {
        self.cfg.miner_id
    }

    /// The device path.
    pub fn path(&self) -> &str {
        &self.cfg.port
    }

    /// Where this miner's backups go, and how many to keep.
    pub fn backups(&self) -> (PathBuf, usize) {
        (
            self.cfg.backups_dir.join(self.cfg.miner_id.to_string()),
            self.cfg.backups_keep,
        )
    }

    /// The port as the ROM loader uses it: bytes, baud rate, and the reset lines (the
    /// simulator's in demo/tests, the port's own otherwise).
    pub fn loader_port(&mut self) -> SessionPort<'_> {
        let (sim, wiring) = match &self.cfg.sim_lines {
            Some(sim) => (Some(sim.clone()), sim.wiring()),
            None => (None, lines::wiring_of(&self.cfg.port)),
        };
        SessionPort::new(&mut *self.port, sim, wiring)
    }

    /// The baud rate the reader talks to the firmware at (the port returns to it after a
    /// loader session ran faster).
    pub fn home_baud(&self) -> u32 {
        self.cfg.baud
    }

    /// Runs a reset sequence: through the simulator in demo/tests, else on the port's lines.
    pub fn reset(&mut self, kind: ResetKind) -> Result<(), String> {
        // A reset cuts the line being printed: store what came of it as a line of its own.
        let batcher = &mut *self.batcher;
        self.framer
            .finish_each(|text, truncated| batcher.add(text, truncated));
        let result = match &self.cfg.sim_lines {
            Some(sim) => {
                let mut sim = sim.clone();
                let wiring = sim.wiring();
                lines::run(&mut sim as &mut dyn LineControl, kind, wiring)
            }
            None => {
                let wiring = lines::wiring_of(&self.cfg.port);
                lines::run(&mut SerialLines(&mut *self.port), kind, wiring)
            }
        };
        result.map_err(|e| {
            format!(
                "cannot drive DTR/RTS on {}: {e}. The miner can only be reset through a USB \
                 serial adapter with modem-control lines (CP210x, CH340, native USB); press its \
                 RESET button instead",
                self.cfg.port
            )
        })
    }

    /// Reads lines into the normal ingest until `deadline` or until `on_line` (given each raw,
    /// unmasked line) returns true. Returns whether it did. Port failure ends the session.
    pub fn read_lines(
        &mut self,
        deadline: Instant,
        on_line: &mut dyn FnMut(&str) -> bool,
    ) -> Result<bool, String> {
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            match self.port.read(&mut buf) {
                Ok(0) => return Err(self.lost("end of file".into())),
                Ok(n) => {
                    let mut done = false;
                    let batcher = &mut *self.batcher;
                    self.framer.push_each(&buf[..n], |text, truncated| {
                        if !done && on_line(text) {
                            done = true;
                        }
                        batcher.add(text, truncated);
                    });
                    if self.batcher.due() {
                        self.batcher.send(false);
                    }
                    if done {
                        return Ok(true);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    if self.batcher.due() {
                        self.batcher.send(false);
                    }
                }
                Err(e) => return Err(self.lost(e.to_string())),
            }
        }
        Ok(false)
    }

    /// Ingests bytes read by someone else (the loader's transport: the boot banner the chip
    /// printed around its bootloader) as log lines, and returns their texts: a firmware that
    /// starts the moment the loader lets go can print its first lines into the same read as
    /// the loader's last reply, and whoever waits for them must see them too.
    pub fn ingest_bytes(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut texts = Vec::new();
        let batcher = &mut *self.batcher;
        self.framer.push_each(bytes, |text, truncated| {
            texts.push(text.to_owned());
            batcher.add(text, truncated);
        });
        texts
    }

    /// Records that the port failed during the job; the reader reopens it afterwards.
    pub fn lost(&mut self, why: String) -> String {
        let msg = format!(
            "port gone: {} failed ({why}); is the miner still plugged in? It will be reopened \
             when it returns",
            self.cfg.port
        );
        self.gone = Some(why);
        msg
    }
}

/// Sleeps up to `total`; returns true when cut short by `wake`.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool, wake: &AtomicBool) -> bool {
    let deadline = Instant::now() + total;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if wake.swap(false, Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::Actor;
    use std::io::Write as _;

    /// The writer's queue is full: the reader must leave the bytes in the pseudo-terminal
    /// (whose writer then blocks) and lose nothing; once the queue drains every line arrives.
    #[test]
    fn a_reader_whose_writer_is_full_stops_reading_and_loses_nothing() {
        const LINES: u64 = 20_000;
        let system = actix_rt::System::new();
        system.block_on(async {
            let conn = crate::db::memory_db();
            let miner = crate::db::miners::add(&conn, "m", "/dev/null", "demo").unwrap();
            let stats = Arc::new(IngestStats::default());
            let db = DbActor::new(conn, 100, Duration::from_millis(20), stats.clone()).start();
            let pty = crate::sim::pty::Pty::open().unwrap();
            stats.queued_lines.store(1_000_000, Ordering::Relaxed);
            let cfg = ReaderConfig {
                miner_id: miner,
                port: pty.path.display().to_string(),
                baud: 115_200,
                batch_lines: 100,
                batch_interval: Duration::from_millis(20),
                max_pending_lines: 200,
                max_retry: Duration::from_secs(1),
                backups_dir: PathBuf::new(),
                backups_keep: 1,
                sim_lines: None,
            };
            let sink = Sink {
                db,
                stats: stats.clone(),
            };
            let (stop, wake) = (Arc::new(AtomicBool::new(false)), Arc::default());
            let (_jobs_tx, jobs) = std::sync::mpsc::channel();
            let stop2 = stop.clone();
            let reader = std::thread::spawn(move || run(cfg, sink, stop2, wake, jobs));
            let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let (mut master, count) = (pty.master.try_clone().unwrap(), written.clone());
            let writer = std::thread::spawn(move || {
                for i in 0..LINES {
                    master
                        .write_all(format!("line {i} of a flood\r\n").as_bytes())
                        .unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
            actix_rt::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(stats.dropped_lines.load(Ordering::Relaxed), 0);
            assert_eq!(stats.written_lines.load(Ordering::Relaxed), 0);
            assert!(
                written.load(Ordering::Relaxed) < LINES,
                "the pty's writer is held back while the reader waits"
            );
            // The writer catches up.
            stats.queued_lines.store(0, Ordering::Relaxed);
            for _ in 0..600 {
                if stats.written_lines.load(Ordering::Relaxed) >= LINES {
                    break;
                }
                actix_rt::time::sleep(Duration::from_millis(50)).await;
            }
            stop.store(true, Ordering::Relaxed);
            writer.join().unwrap();
            let _ = actix_rt::task::spawn_blocking(move || reader.join()).await;
            assert_eq!(stats.written_lines.load(Ordering::Relaxed), LINES);
            assert_eq!(stats.dropped_lines.load(Ordering::Relaxed), 0);
        });
    }
}
