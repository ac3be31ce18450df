//! DbActor: the only writer. It buffers ingested lines and writes them in one transaction per
//! batch (by count or age, whichever first), so a hundred miners cost a few commits a second.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::clock::now_ms;
use crate::miner::parse::MinerEvent;
use crate::summary::event_value;

/// One line as ingest hands it over: cleaned, secrets masked, already parsed.
#[derive(Debug, Clone)]
pub struct IngestLine {
    /// When it was read (Unix ms).
    pub ts: i64,
    /// The text, without its line terminator.
    pub text: String,
    /// It was longer than the framing limit and was cut.
    pub truncated: bool,
    /// What the parser found in it.
    pub events: Vec<MinerEvent>,
}

/// A miner's reader read some lines.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LinesRead {
    /// Which miner.
    pub miner_id: i64,
    /// The lines, oldest first.
    pub lines: Vec<IngestLine>,
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
}

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
        }
    }
}

/// Lines of one miner waiting in the buffer.
struct Pending {
    miner_id: i64,
    lines: Vec<IngestLine>,
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
            Ok(n) => {
                self.pending.clear();
                self.pending_lines = 0;
                self.stats.queued_lines.fetch_sub(
                    n.min(self.stats.queued_lines.load(Ordering::Relaxed)),
                    Ordering::Relaxed,
                );
                self.stats
                    .written_lines
                    .fetch_add(n as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                // Keep the lines and try again on the next tick: a full disk or a locked file
                // must not lose data. Readers see the queue grow and drop (counted) beyond
                // their limit, so memory stays bounded.
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "writing {} log lines failed, will retry: {e}",
                    self.pending_lines
                );
                Err(e.to_string())
            }
        }
    }
}

/// Log rows per multi-row INSERT: one statement step for this many lines instead of one
/// each (4 parameters a row, far below SQLite's parameter limit).
const LINES_PER_INSERT: usize = 64;

/// `INSERT ... VALUES (?,?,?,?), ...` for [`LINES_PER_INSERT`] rows; the statement is cached.
static MULTI_LINE_INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut sql = String::from("INSERT INTO miner_logs (miner_id, ts, line, truncated) VALUES ");
    for i in 0..LINES_PER_INSERT {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?)");
    }
    sql
});

/// Inserts lines, their events and the per-miner counters in one transaction.
///
/// Lines go in [`LINES_PER_INSERT`] at a time, in the same order (so the same ids) as one
/// INSERT per line; the tail of the batch that does not fill a statement goes row by row.
fn write_batch(conn: &mut Connection, pending: &[Pending]) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut written = 0;
    {
        let mut multi_stmt = tx.prepare_cached(MULTI_LINE_INSERT.as_str())?;
        let mut line_stmt = tx.prepare_cached(
            "INSERT INTO miner_logs (miner_id, ts, line, truncated) VALUES (?1, ?2, ?3, ?4)",
        )?;
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

        // Every line of the batch, in order, across miners.
        let total: usize = pending.iter().map(|p| p.lines.len()).sum();
        let mut rows = pending
            .iter()
            .flat_map(|p| p.lines.iter().map(move |l| (p.miner_id, l)));
        for _ in 0..total / LINES_PER_INSERT {
            let mut idx = 1;
            for (miner_id, line) in rows.by_ref().take(LINES_PER_INSERT) {
                multi_stmt.raw_bind_parameter(idx, miner_id)?;
                multi_stmt.raw_bind_parameter(idx + 1, line.ts)?;
                multi_stmt.raw_bind_parameter(idx + 2, line.text.as_str())?;
                multi_stmt.raw_bind_parameter(idx + 3, line.truncated)?;
                idx += 4;
            }
            multi_stmt.raw_execute()?;
        }
        for (miner_id, line) in rows {
            line_stmt.execute(params![miner_id, line.ts, line.text, line.truncated])?;
        }

        for p in pending {
            let mut truncated = 0i64;
            let mut last_seen = None;
            for line in &p.lines {
                truncated += i64::from(line.truncated);
                last_seen = Some(line.ts);
                for event in &line.events {
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
            written += p.lines.len();
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
    Ok(written)
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

    fn line(ts: i64, text: &str) -> IngestLine {
        IngestLine {
            ts,
            text: text.to_owned(),
            truncated: ts % 7 == 0,
            events: Vec::new(),
        }
    }

    #[test]
    fn multi_row_inserts_keep_the_order_of_single_ones() {
        let mut conn = crate::db::memory_db();
        for id in 1..=3 {
            conn.execute(
                "INSERT INTO miners (id, name, port) VALUES (?1, ?2, ?3)",
                params![id, format!("m{id}"), format!("/dev/ttyUSB{id}")],
            )
            .unwrap();
        }
        // 3 miners, 150 lines: two full statements and a row-by-row tail.
        let pending: Vec<Pending> = (1..=3)
            .map(|m| Pending {
                miner_id: m,
                lines: (0..50).map(|i| line(i, &format!("m{m} l{i}"))).collect(),
                dropped: 0,
            })
            .collect();
        assert_eq!(write_batch(&mut conn, &pending).unwrap(), 150);
        let rows: Vec<(i64, i64, String, bool)> = conn
            .prepare("SELECT miner_id, ts, line, truncated FROM miner_logs ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(i64, i64, String, bool)> = pending
            .iter()
            .flat_map(|p| {
                p.lines
                    .iter()
                    .map(|l| (p.miner_id, l.ts, l.text.clone(), l.truncated))
            })
            .collect();
        assert_eq!(rows, want);
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
