//! Supervisor: keeps exactly one MinerActor running per enabled miner in the database, so
//! miners added or removed at runtime (web, `shepherd miners add`) start and stop without a
//! restart.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{BoxFuture, Shared};
use futures_util::FutureExt as _;

use crate::config::IngestConfig;
use crate::db::{miners, ReadPool};
use crate::miner::reader::{ReaderConfig, Sink};
use crate::miner::{DeviceReturned, MinerActor, StopReading};

/// How often the miners table is checked for changes made by other processes.
const POLL: Duration = Duration::from_secs(2);

/// Starts and stops MinerActors.
pub struct Supervisor {
    pool: ReadPool,
    sink: Sink,
    ingest: IngestConfig,
    running: HashMap<i64, (String, Addr<MinerActor>)>,
    /// Readers told to stop and still draining their port. The miner's next reader starts
    /// only after: two readers must never hold one device, and the old one's final "offline"
    /// must not land after the new one's "connected".
    draining: HashMap<i64, Shared<BoxFuture<'static, ()>>>,
    stopping: bool,
}

/// Look at the miners table now (after a change made through the web).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconcile;

/// Discovery saw a miner's device plugged in again at the port it is read from: its reader
/// retries now instead of waiting out its backoff.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MinerReplugged {
    /// Which miner.
    pub miner_id: i64,
}

/// Stop every reader (shutdown); answers once all have drained and sent their last lines.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

impl Supervisor {
    /// A supervisor reading the miners table through `pool`.
    pub fn new(pool: ReadPool, sink: Sink, ingest: IngestConfig) -> Self {
        Self {
            pool,
            sink,
            ingest,
            running: HashMap::new(),
            draining: HashMap::new(),
            stopping: false,
        }
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let wanted = match self.pool.with(miners::list) {
            Ok(all) => all.into_iter().filter(|m| m.enabled).collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!("supervisor cannot read miners: {e}");
                return;
            }
        };
        let keep: HashMap<i64, &str> = wanted.iter().map(|m| (m.id, m.port.as_str())).collect();
        let gone: Vec<i64> = self
            .running
            .iter()
            .filter(|(id, (port, _))| keep.get(id) != Some(&port.as_str()))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some((port, addr)) = self.running.remove(&id) {
                tracing::info!(miner = id, %port, "stopping reader");
                let done = addr.send(StopReading).map(|_| ()).boxed().shared();
                self.draining.insert(id, done.clone());
                ctx.spawn(done.into_actor(self).map(move |_, act, ctx| {
                    act.draining.remove(&id);
                    act.reconcile(ctx);
                }));
            }
        }
        for m in wanted {
            if self.running.contains_key(&m.id) || self.draining.contains_key(&m.id) {
                continue;
            }
            tracing::info!(miner = m.id, name = %m.name, port = %m.port, "starting reader");
            let cfg = ReaderConfig {
                miner_id: m.id,
                port: m.port.clone(),
                baud: self.ingest.baud,
                batch_lines: self.ingest.batch_lines,
                batch_interval: Duration::from_millis(self.ingest.batch_millis),
                max_pending_lines: self.ingest.max_pending_lines,
                max_retry: Duration::from_secs(self.ingest.max_retry_secs),
            };
            let addr = MinerActor::new(cfg, self.sink.clone()).start();
            self.running.insert(m.id, (m.port, addr));
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.reconcile(ctx);
        ctx.run_interval(POLL, |act, ctx| act.reconcile(ctx));
    }
}

impl Handler<Reconcile> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Reconcile, ctx: &mut Self::Context) {
        self.reconcile(ctx);
    }
}

impl Handler<MinerReplugged> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: MinerReplugged, ctx: &mut Self::Context) {
        match self.running.get(&msg.miner_id) {
            Some((_, addr)) => addr.do_send(DeviceReturned),
            None => self.reconcile(ctx),
        }
    }
}

impl Handler<StopAll> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopAll, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let mut stops: Vec<BoxFuture<'static, ()>> = self
            .running
            .drain()
            .map(|(_, (_, addr))| addr.send(StopReading).map(|_| ()).boxed())
            .collect();
        stops.extend(self.draining.drain().map(|(_, done)| done.boxed()));
        Box::pin(async move {
            futures_util::future::join_all(stops).await;
        })
    }
}
