//! DbActor: the only writer. It buffers ingested lines and writes them in one transaction per
//! batch (by count or age, whichever first), so a hundred miners cost a few commits a second.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::clock::now_ms;
use crate::model::event::MinerEvent;
use crate::model::lines::LineBatch;
use crate::summary::event_value;

use super::logs;

/// A miner's reader read some lines.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LinesRead {
    /// Which miner.
    pub miner_id: i64,
    /// The lines, oldest first: cleaned, secrets masked, already parsed.
    pub lines: LineBatch,
    /// Lines the reader had to drop since its last batch because the queue was full.
    pub dropped: u64,
}

/// Whether a miner's port is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Port open and being read.
    Connected,
    /// No port (unplugged, or not found yet).
    Offline,
    /// The port exists but cannot be used (permission, busy); detail says how to fix it.
    Error,
}

impl LinkState {
    /// Name stored in `miner_summary.link_state`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connected => "connected",
            LinkState::Offline => "offline",
            LinkState::Error => "error",
        }
    }
}

/// A miner's port opened, closed or failed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LinkChanged {
    /// Which miner.
    pub miner_id: i64,
    /// New state.
    pub state: LinkState,
    /// Human-readable reason and hint.
    pub detail: Option<String>,
}

/// Write the buffered lines now (shutdown, tests). Answers with the number written.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Flush;

type WriteFn<R> = Box<dyn FnOnce(&mut Connection) -> rusqlite::Result<R> + Send>;

/// Any other write (settings, commands, summaries), run on the writer connection.
pub struct Write<R>(pub WriteFn<R>);

impl<R: Send + 'static> Message for Write<R> {
    type Result = rusqlite::Result<R>;
}

impl<R> Write<R> {
    /// Wraps a closure.
    pub fn new(f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static) -> Self {
        Write(Box::new(f))
    }
}

/// Start pruning old rows on an interval (see [`super::retention`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StartPruning(pub super::retention::RetentionConfig);

/// Caps the database file at its current size (`Some(true)`) or lifts the cap, with SQLite's
/// own `max_page_count`: every write that needs a new page then fails with SQLITE_FULL, exactly
/// as on a full disk. For fire drills and the full-disk tests.
#[derive(Debug, Message)]
#[rtype(result = "rusqlite::Result<()>")]
pub struct CapSize(pub bool);

/// Batches one pruning tick may run before yielding back to ingest.
const PRUNE_STEPS_PER_TICK: usize = 4;

/// Ingest counters shared with the readers (back-pressure) and the web (visibility).
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Lines received by the DbActor but not yet committed.
    pub queued_lines: AtomicUsize,
    /// Lines committed since start.
    pub written_lines: AtomicU64,
    /// Transactions committed since start.
    pub batches: AtomicU64,
    /// Failed batch writes (kept and retried).
    pub write_errors: AtomicU64,
    /// Lines dropped by readers because the queue was full.
    pub dropped_lines: AtomicU64,
    /// Bytes the serial drivers of real UARTs lost before shepherd could read them (their
    /// `TIOCGICOUNT` overrun counters): the machine did not read the port in time.
    pub overrun_bytes: AtomicU64,
    /// Set while batch writes fail (a full disk): since when and why.
    pub write_failure: std::sync::Mutex<Option<WriteFailure>>,
}

/// Writes are failing: what `/healthz`, the dashboard banner and the alert say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteFailure {
    /// When the first write of this run of failures failed (Unix ms).
    pub since: i64,
    /// The last error, as SQLite put it.
    pub error: String,
    /// Failed attempts in this run.
    #[serde(skip)]
    pub attempts: u64,
    /// When it was last logged (at most once a minute).
    #[serde(skip)]
    pub logged_at: Option<std::time::Instant>,
}

/// A failing write is logged at most this often (it is retried 4 times a second).
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Counters as plain numbers, for JSON.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSnapshot {
    /// See [`IngestStats::queued_lines`].
    pub queued_lines: usize,
    /// See [`IngestStats::written_lines`].
    pub written_lines: u64,
    /// See [`IngestStats::batches`].
    pub batches: u64,
    /// See [`IngestStats::write_errors`].
    pub write_errors: u64,
    /// See [`IngestStats::dropped_lines`].
    pub dropped_lines: u64,
    /// See [`IngestStats::overrun_bytes`].
    pub overrun_bytes: u64,
    /// Null while writes succeed; `{since, error}` while they fail.
    pub write_failure: Option<WriteFailure>,
}

impl IngestStats {
    /// Current values.
    pub fn snapshot(&self) -> IngestSnapshot {
        IngestSnapshot {
            queued_lines: self.queued_lines.load(Ordering::Relaxed),
            written_lines: self.written_lines.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            dropped_lines: self.dropped_lines.load(Ordering::Relaxed),
            overrun_bytes: self.overrun_bytes.load(Ordering::Relaxed),
            write_failure: self.write_failure(),
        }
    }

    /// The current write failure, if writes are failing.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.write_failure.lock().ok().and_then(|f| f.clone())
    }

    /// Records a failed write; true when it should be logged (first, then once a minute).
    pub fn write_failed(&self, error: &str, now: std::time::Instant) -> bool {
        let Ok(mut slot) = self.write_failure.lock() else {
            return true;
        };
        let f = slot.get_or_insert_with(|| WriteFailure {
            since: now_ms(),
            error: String::new(),
            attempts: 0,
            logged_at: None,
        });
        f.error = error.to_owned();
        f.attempts += 1;
        let log = f
            .logged_at
            .is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_EVERY);
        if log {
            f.logged_at = Some(now);
        }
        log
    }

    /// A write succeeded: ends a run of failures; returns it (to log the recovery).
    pub fn write_succeeded(&self) -> Option<WriteFailure> {
        self.write_failure.lock().ok().and_then(|mut f| f.take())
    }
}

/// Lines of one miner waiting in the buffer.
struct Pending {
    miner_id: i64,
    lines: LineBatch,
    dropped: u64,
}

/// The one writer connection and the ingest buffer.
pub struct DbActor {
    conn: Connection,
    pending: Vec<Pending>,
    pending_lines: usize,
    batch_lines: usize,
    batch_interval: Duration,
    stats: Arc<IngestStats>,
}

impl DbActor {
    /// Takes the writer connection (already migrated).
    pub fn new(
        conn: Connection,
        batch_lines: usize,
        batch_interval: Duration,
        stats: Arc<IngestStats>,
    ) -> Self {
        Self {
            conn,
            pending: Vec::new(),
            pending_lines: 0,
            batch_lines,
            batch_interval,
            stats,
        }
    }

    fn flush(&mut self) -> Result<usize, String> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        match write_batch(&mut self.conn, &self.pending) {
            Ok(Written { stored, discarded }) => {
                if discarded > 0 {
                    tracing::info!("{discarded} log lines of deleted miners were not stored");
                }
                let n = stored + discarded;
                self.pending.clear();
                self.pending_lines = 0;
                self.stats.queued_lines.fetch_sub(
                    n.min(self.stats.queued_lines.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                self.stats
                    .written_lines
                    .fetch_add(stored as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = self.stats.write_succeeded() {
                    tracing::warn!(
                        "database writes work again after {} failed attempts since {}; nothing \
                         was lost",
                        f.attempts,
                        crate::clock::utc_time(Some(f.since))
                    );
                }
                Ok(stored)
            }
            Err(e) => {
                // Keep the lines and try again on the next tick: a full disk or a locked file
                // must not lose data. Readers see the queue grow and drop (counted) beyond
                // their limit, so memory stays bounded.
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                if self
                    .stats
                    .write_failed(&e.to_string(), std::time::Instant::now())
                {
                    tracing::error!(
                        "writing {} log lines failed, will retry (said at most once a minute \
                         while it lasts): {e}. Free some disk space, or lower [retention] \
                         logs_max_mb",
                        self.pending_lines
                    );
                }
                Err(e.to_string())
            }
        }
    }
}

/// What one batch write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    /// Lines stored.
    stored: usize,
    /// Lines of miners deleted while their lines waited (there is nothing to store them for).
    discarded: usize,
}

/// Inserts lines, their events and the per-miner counters in one transaction.
///
/// Each miner's lines go in together, in their order, so they get consecutive ids and one
/// span (see [`super::logs`]). Lines of a miner deleted meanwhile are discarded: storing them
/// would fail the whole batch, and every other miner's lines with it, on every retry.
fn write_batch(conn: &mut Connection, pending: &[Pending]) -> rusqlite::Result<Written> {
    let tx = conn.transaction()?;
    let miners: std::collections::HashSet<i64> = tx
        .prepare_cached("SELECT id FROM miners")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let (live, gone): (Vec<&Pending>, Vec<&Pending>) =
        pending.iter().partition(|p| miners.contains(&p.miner_id));
    let mut groups: Vec<(i64, Vec<logs::NewLine>)> = Vec::new();
    for p in &live {
        let lines = p.lines.iter().map(|l| logs::NewLine {
            ts: l.ts,
            text: l.text,
            truncated: l.truncated,
        });
        match groups.iter_mut().find(|(m, _)| *m == p.miner_id) {
            Some((_, g)) => g.extend(lines),
            None => groups.push((p.miner_id, lines.collect())),
        }
    }
    let stored = logs::append(&tx, &groups)?;
    {
        let mut event_stmt = tx.prepare_cached(
            "INSERT INTO miner_events (miner_id, ts, kind, value, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut counter_stmt = tx.prepare_cached(
            "INSERT INTO miner_summary (miner_id, last_seen, lines_total, lines_dropped, lines_truncated, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (miner_id) DO UPDATE SET
               last_seen = max(coalesce(last_seen, 0), coalesce(excluded.last_seen, 0)),
               lines_total = lines_total + excluded.lines_total,
               lines_dropped = lines_dropped + excluded.lines_dropped,
               lines_truncated = lines_truncated + excluded.lines_truncated,
               updated_at = excluded.updated_at",
        )?;
        for p in &live {
            let mut truncated = 0i64;
            let mut last_seen = None;
            for line in p.lines.iter() {
                truncated += i64::from(line.truncated);
                last_seen = Some(line.ts);
                for event in line.events {
                    let (detail, kind) = encode_event(event);
                    event_stmt.execute(params![
                        p.miner_id,
                        line.ts,
                        event_kind(&detail, kind),
                        event_value(event),
                        detail
                    ])?;
                }
            }
            counter_stmt.execute(params![
                p.miner_id,
                last_seen,
                p.lines.len() as i64,
                p.dropped as i64,
                truncated,
                now_ms()
            ])?;
        }
    }
    tx.commit()?;
    Ok(Written {
        stored,
        discarded: gone.iter().map(|p| p.lines.len()).sum(),
    })
}

/// The event's JSON (the summarizer decodes it back) and where its kind tag sits in it.
///
/// Serialized once, straight to text (the same text as going through `serde_json::Value`):
/// an internally tagged enum writes its tag first, so the kind is read off the front.
fn encode_event(event: &MinerEvent) -> (String, std::ops::Range<usize>) {
    const TAG: &str = "{\"kind\":\"";
    let json = serde_json::to_string(event).unwrap_or_else(|_| "null".to_owned());
    let kind = json
        .strip_prefix(TAG)
        .and_then(|r| r.find('"'))
        .map_or(0..0, |len| TAG.len()..TAG.len() + len);
    (json, kind)
}

/// The kind tag [`encode_event`] located (`unknown` if it found none).
fn event_kind(json: &str, kind: std::ops::Range<usize>) -> &str {
    match json.get(kind) {
        Some(k) if !k.is_empty() => k,
        _ => "unknown",
    }
}

impl Actor for DbActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(self.batch_interval, |act, _| {
            let _ = act.flush();
        });
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        let _ = self.flush();
        Running::Stop
    }
}

impl Handler<LinesRead> for DbActor {
    type Result = ();

    fn handle(&mut self, msg: LinesRead, _: &mut Self::Context) {
        self.pending_lines += msg.lines.len();
        if msg.dropped > 0 {
            self.stats
                .dropped_lines
                .fetch_add(msg.dropped, Ordering::Relaxed);
        }
        self.pending.push(Pending {
            miner_id: msg.miner_id,
            lines: msg.lines,
            dropped: msg.dropped,
        });
        if self.pending_lines >= self.batch_lines {
            let _ = self.flush();
        }
    }
}

impl Handler<LinkChanged> for DbActor {
    type Result = ();

    fn handle(&mut self, msg: LinkChanged, _: &mut Self::Context) {
        let result = self.conn.execute(
            "INSERT INTO miner_summary (miner_id, link_state, link_detail, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (miner_id) DO UPDATE SET link_state = excluded.link_state,
               link_detail = excluded.link_detail, updated_at = excluded.updated_at",
            params![msg.miner_id, msg.state.as_str(), msg.detail, now_ms()],
        );
        if let Err(e) = result {
            tracing::warn!("recording link state of miner {}: {e}", msg.miner_id);
        }
    }
}

impl Handler<StartPruning> for DbActor {
    type Result = ();

    fn handle(&mut self, msg: StartPruning, ctx: &mut Self::Context) {
        let cfg = msg.0;
        let interval = Duration::from_secs(cfg.interval_secs.max(1));
        ctx.run_interval(interval, move |act, _| {
            // A few small batches per tick: each is a short transaction, and queued log
            // batches are handled between ticks, so a large backlog never stalls ingest.
            let mut total = super::retention::Pruned::default();
            for _ in 0..PRUNE_STEPS_PER_TICK {
                match super::retention::prune_step(&mut act.conn, &cfg, now_ms()) {
                    Ok(p) if p.is_empty() => break,
                    Ok(p) => {
                        total.logs += p.logs;
                        total.events += p.events;
                        total.minutes += p.minutes;
                    }
                    Err(e) => {
                        tracing::warn!("pruning old rows failed (will retry): {e}");
                        break;
                    }
                }
            }
            if !total.is_empty() {
                tracing::debug!(
                    logs = total.logs,
                    events = total.events,
                    minutes = total.minutes,
                    "pruned"
                );
            }
        });
    }
}

impl Handler<CapSize> for DbActor {
    type Result = rusqlite::Result<()>;

    fn handle(&mut self, msg: CapSize, _: &mut Self::Context) -> Self::Result {
        // Setting it below the file's size sets it to the size; the default is 2^32 - 2.
        let pages: i64 = if msg.0 { 1 } else { 4_294_967_294 };
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
    }
}

impl Handler<Flush> for DbActor {
    type Result = Result<usize, String>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        self.flush()
    }
}

impl<R: Send + 'static> Handler<Write<R>> for DbActor {
    type Result = rusqlite::Result<R>;

    fn handle(&mut self, msg: Write<R>, _: &mut Self::Context) -> Self::Result {
        (msg.0)(&mut self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_failed_writes_is_logged_once_a_minute_and_ends_with_a_success() {
        let stats = IngestStats::default();
        let t0 = std::time::Instant::now();
        assert!(stats.write_failed("database or disk is full", t0));
        let since = stats.write_failure().unwrap().since;
        // Retried four times a second: quiet until a minute has passed.
        for i in 1..240u64 {
            assert!(!stats.write_failed(
                "database or disk is full",
                t0 + Duration::from_millis(250 * i)
            ));
        }
        assert!(stats.write_failed("disk I/O error", t0 + FAILURE_LOG_EVERY));
        let f = stats.write_failure().unwrap();
        assert_eq!(
            (f.since, f.error.as_str(), f.attempts),
            (since, "disk I/O error", 241)
        );
        assert_eq!(stats.snapshot().write_failure.map(|f| f.since), Some(since));
        assert_eq!(stats.write_succeeded().map(|f| f.attempts), Some(241));
        assert_eq!(stats.write_failure(), None);
        assert_eq!(stats.write_succeeded(), None);
    }

    #[test]
    fn each_miner_keeps_its_order_and_a_deleted_miner_blocks_nobody() {
        let mut conn = crate::db::memory_db();
        for id in 1..=3 {
            conn.execute(
                "INSERT INTO miners (id, name, port) VALUES (?1, ?2, ?3)",
                params![id, format!("m{id}"), format!("/dev/ttyUSB{id}")],
            )
            .unwrap();
        }
        // Two batches from each of three miners, interleaved as readers send them; miner 9
        // was deleted while its lines waited.
        let batch = |m: i64, from: i64| {
            let mut lines = LineBatch::default();
            for i in from..from + 50 {
                // Every tenth line carries an event, stored beside it.
                let mut events = Vec::new();
                if i % 10 == 0 {
                    events.push(MinerEvent::ValidBlocks(i as u64));
                }
                lines.push(i, &format!("m{m} l{i}"), i % 7 == 0, &mut events);
            }
            Pending {
                miner_id: m,
                lines,
                dropped: 0,
            }
        };
        let pending: Vec<Pending> = [1, 2, 9, 3]
            .into_iter()
            .map(|m| batch(m, 0))
            .chain([3, 1, 2].into_iter().map(|m| batch(m, 50)))
            .collect();
        assert_eq!(
            write_batch(&mut conn, &pending).unwrap(),
            Written {
                stored: 300,
                discarded: 50
            }
        );
        for m in 1..=3 {
            let got: Vec<(i64, String, bool)> = crate::db::logs::newest(&conn, m, None, 1000)
                .unwrap()
                .into_iter()
                .rev()
                .map(|l| (l.ts, l.line, l.truncated))
                .collect();
            let want: Vec<(i64, String, bool)> = (0..100)
                .map(|i| (i, format!("m{m} l{i}"), i % 7 == 0))
                .collect();
            assert_eq!(got, want);
        }
        let counted: i64 = conn
            .query_row("SELECT sum(lines_total) FROM miner_summary", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(counted, 300);
        let events: Vec<(i64, i64, String)> = conn
            .prepare("SELECT miner_id, ts, kind FROM miner_events ORDER BY miner_id, ts")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(i64, i64, String)> = (1..=3)
            .flat_map(|m| {
                (0..100)
                    .step_by(10)
                    .map(move |ts| (m, ts, "valid_blocks".into()))
            })
            .collect();
        assert_eq!(events, want);
    }

    #[test]
    fn event_encoding_matches_the_json_value_route() {
        let events = [
            MinerEvent::Progress {
                shares: 1,
                khashes: 2,
                hashrate_khs: 3.5,
            },
            MinerEvent::ValidBlocks(3),
            MinerEvent::Temperature(f64::NAN),
            MinerEvent::BestDifficulty(1.25e9),
            MinerEvent::PoolConnecting,
            MinerEvent::PoolUnreachable {
                pool: "pool \"x\"".into(),
            },
            MinerEvent::Subscribe { firmware: None },
        ];
        for event in &events {
            let value = serde_json::to_value(event).unwrap();
            let (json, kind) = encode_event(event);
            assert_eq!(json, value.to_string());
            assert_eq!(event_kind(&json, kind), value["kind"].as_str().unwrap());
        }
    }
}
