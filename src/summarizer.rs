//! SummarizerActor: every few seconds folds new `miner_events` rows into per-miner state
//! (see [`crate::summary`]) and hands the result to the DbActor to store.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::db::summaries::{self, SummaryUpdate};
use crate::db::{DbActor, ReadPool, Write};
use crate::summary::MinerState;

/// Events read per query; a backlog is worked through in several.
const CHUNK: usize = 20_000;

/// Keeps `miner_summary` and `miner_minutes` current.
pub struct SummarizerActor {
    pool: ReadPool,
    db: Addr<DbActor>,
    interval: Duration,
    states: HashMap<i64, MinerState>,
    watermark: i64,
    loaded: bool,
}

/// Summarize now (tests, shutdown); answers when the update is stored.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SummarizeNow;

impl SummarizerActor {
    /// A summarizer reading through `pool` and writing through `db`.
    pub fn new(pool: ReadPool, db: Addr<DbActor>, interval: Duration) -> Self {
        Self {
            pool,
            db,
            interval,
            states: HashMap::new(),
            watermark: 0,
            loaded: false,
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
        ctx.run_interval(self.interval, |act, _| {
            if let Some(req) = act.run() {
                actix::spawn(async move {
                    if let Ok(Err(e)) = req.await {
                        tracing::warn!("storing summaries failed: {e}");
                    }
                });
            }
        });
    }
}

impl Handler<SummarizeNow> for SummarizerActor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, _: SummarizeNow, _: &mut Self::Context) -> Self::Result {
        let req = self.run();
        Box::pin(async move {
            match req {
                Some(r) => r
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            }
        })
    }
}
