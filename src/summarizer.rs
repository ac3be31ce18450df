//! SummarizerActor: every few seconds folds new `miner_events` rows into per-miner state
//! (see [`crate::summary`]) and hands the result to the DbActor to store; then builds the
//! herd document once and publishes it ([`crate::herd::Publisher`]) for pages, SSE, alerts,
//! MQTT and metrics.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::clock::now_ms;
use crate::db::summaries::{self, SummaryUpdate};
use crate::db::{DbActor, ReadPool, Write};
use crate::herd::Publisher;
use crate::price::PricesStored;
use crate::summary::MinerState;

/// Events read per query; a backlog is worked through in several.
const CHUNK: usize = 20_000;

/// The herd is built again at least this often although no summary changed: statuses and
/// uptimes move with the clock (a silent miner becomes stalled), ingest counters with the
/// writer, and the web writes a few things (a test celebration) without telling anyone.
const REFRESH: Duration = Duration::from_secs(5);

/// Keeps `miner_summary` and `miner_minutes` current.
pub struct SummarizerActor {
    pool: ReadPool,
    db: Addr<DbActor>,
    interval: Duration,
    states: HashMap<i64, MinerState>,
    watermark: i64,
    loaded: bool,
    herd: Publisher,
    /// When the herd was last built.
    built: Option<Instant>,
    /// Something the herd shows changed outside the summaries (new price figures).
    inputs_changed: bool,
}

/// Summarize now (tests, shutdown); answers when the update is stored.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SummarizeNow;

impl SummarizerActor {
    /// A summarizer reading through `pool`, writing through `db` and publishing the herd
    /// through `herd`.
    pub fn new(pool: ReadPool, db: Addr<DbActor>, interval: Duration, herd: Publisher) -> Self {
        Self {
            pool,
            db,
            interval,
            states: HashMap::new(),
            watermark: 0,
            loaded: false,
            herd,
            built: None,
            inputs_changed: false,
        }
    }

    /// Builds and publishes the herd when the summaries just changed (`stored`), when
    /// something else it shows changed, or when the last one is [`REFRESH`] old.
    fn publish_herd(&mut self, stored: bool) {
        let due = self.built.is_none_or(|t| t.elapsed() >= REFRESH);
        if !(stored || self.inputs_changed || due) {
            return;
        }
        self.inputs_changed = false;
        self.built = Some(Instant::now());
        if let Err(e) = self.herd.publish(now_ms()) {
            tracing::warn!("cannot build the herd document: {e}");
        }
    }

    /// One tick: summarize, store, then publish the herd (after the store, so the document
    /// shows what was just summarized).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        match self.run() {
            Some(req) => {
                ctx.spawn(
                    async move {
                        if let Ok(Err(e)) = req.await {
                            tracing::warn!("storing summaries failed: {e}");
                        }
                    }
                    .into_actor(self)
                    .map(|_, act, _| act.publish_herd(true)),
                );
            }
            None => self.publish_herd(false),
        }
    }

    /// Reads what is new and folds it in; returns the update to store, if any.
    fn collect(&mut self) -> Result<Option<SummaryUpdate>, String> {
        if !self.loaded {
            let (states, watermark) = self
                .pool
                .with(summaries::load_states)
                .map_err(|e| e.to_string())?;
            self.states = states;
            self.watermark = watermark;
            self.loaded = true;
        }
        let mut update = SummaryUpdate::default();
        loop {
            let after = self.watermark;
            let (events, last) = self
                .pool
                .with(|c| summaries::events_after(c, after, CHUNK))
                .map_err(|e| e.to_string())?;
            let done = last == after;
            for e in &events {
                let state = self.states.entry(e.miner_id).or_default();
                state.apply(
                    e.ts,
                    &e.event,
                    update.minutes.entry(e.miner_id).or_default(),
                );
                if !state.new_reboots.is_empty() {
                    update
                        .reboots
                        .entry(e.miner_id)
                        .or_default()
                        .append(&mut state.new_reboots);
                }
                if !state.new_lottery.is_empty() {
                    update
                        .lottery
                        .entry(e.miner_id)
                        .or_default()
                        .append(&mut state.new_lottery);
                }
                update.states.insert(e.miner_id, state.clone());
            }
            self.watermark = last;
            if done || events.len() < CHUNK / 2 {
                break;
            }
        }
        update.watermark = self.watermark;
        Ok((!update.states.is_empty()).then_some(update))
    }

    fn run(&mut self) -> Option<Request<DbActor, Write<()>>> {
        match self.collect() {
            Ok(Some(update)) => Some(
                self.db
                    .send(Write::new(move |c| summaries::save(c, &update))),
            ),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("summarizer: {e}");
                None
            }
        }
    }
}

impl Actor for SummarizerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The first herd at once, so pages seldom need to build their own.
        self.publish_herd(false);
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
    }
}

impl Handler<SummarizeNow> for SummarizerActor {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, _: SummarizeNow, _: &mut Self::Context) -> Self::Result {
        let req = self.run();
        Box::pin(
            async move {
                match req {
                    Some(r) => r
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.publish_herd(true);
                result
            }),
        )
    }
}

impl Handler<PricesStored> for SummarizerActor {
    type Result = ();

    fn handle(&mut self, _: PricesStored, _: &mut Self::Context) {
        // Built at the next tick, with whatever else changed by then.
        self.inputs_changed = true;
    }
}
