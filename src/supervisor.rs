//! Supervisor: keeps exactly one MinerActor running per enabled miner in the database, so
//! miners added or removed at runtime (web, `shepherd miners add`) start and stop without a
//! restart.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{BoxFuture, Shared};
use futures_util::FutureExt as _;

use crate::config::IngestConfig;
use crate::db::{commands, miners, ReadPool, Write};
use crate::miner::reader::{ReaderConfig, Sink};
use crate::miner::{CommandQueued, DeviceReturned, MinerActor, StopReading};
use crate::sim::LineRegistry;

/// What MinerActors need besides ingest tuning.
#[derive(Debug, Clone, Default)]
pub struct MinerSettings {
    /// `<data dir>/backups`.
    pub backups_dir: PathBuf,
    /// Backups kept per miner.
    pub backups_keep: usize,
    /// Simulated chips behind pseudo-terminals (demo and tests).
    pub sims: LineRegistry,
}

/// How often the miners and commands tables are checked for changes made by other processes
/// (the CLI); changes made in this process arrive as messages.
const POLL: Duration = Duration::from_secs(2);

/// Starts and stops MinerActors.
pub struct Supervisor {
    pool: ReadPool,
    sink: Sink,
    ingest: IngestConfig,
    settings: MinerSettings,
    running: HashMap<i64, (String, Addr<MinerActor>)>,
    /// Commands handed to a MinerActor and not yet seen started, so each goes out once
    /// whether it came as a message or was found in the table.
    dispatched: HashMap<i64, i64>,
    /// Readers told to stop and still draining their port. The miner's next reader starts
    /// only after: two readers must never hold one device, and the old one's final "offline"
    /// must not land after the new one's "connected".
    draining: HashMap<i64, Shared<BoxFuture<'static, ()>>>,
    stopping: bool,
}

/// The miners table changed (through the web, onboarding or discovery): the supervisor looks
/// at it now and starts or stops readers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MinersChanged;

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
    pub fn new(pool: ReadPool, sink: Sink, ingest: IngestConfig, settings: MinerSettings) -> Self {
        Self {
            pool,
            sink,
            ingest,
            settings,
            running: HashMap::new(),
            dispatched: HashMap::new(),
            draining: HashMap::new(),
            stopping: false,
        }
    }

    /// Looks in the table for pending commands nobody handed over: those queued by another
    /// process (`shepherd config set`, `shepherd identify`), or by this one while their
    /// miner's old reader was still draining. Commands queued in this process arrive as
    /// [`CommandQueued`] and are handed over at once.
    fn dispatch_from_table(&mut self) {
        if self.stopping {
            return;
        }
        let pending = match self.pool.with(commands::pending) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("supervisor cannot read queued commands: {e}");
                return;
            }
        };
        let still: HashSet<i64> = pending.iter().map(|c| c.id).collect();
        // Forget commands that have started (they are no longer pending): the actor has them.
        self.dispatched.retain(|id, _| still.contains(id));
        for cmd in pending {
            self.hand_over(CommandQueued::from(cmd));
        }
    }

    /// Hands one command to its miner's actor, once. A command for a miner whose old reader
    /// is still draining waits for the new one (the table look finds it then); for a miner
    /// that is not being read it ends in an error that says so.
    fn hand_over(&mut self, cmd: CommandQueued) {
        if self.stopping || self.dispatched.contains_key(&cmd.id) {
            return;
        }
        let Some((_, addr)) = self.running.get(&cmd.miner_id) else {
            if self.draining.contains_key(&cmd.miner_id) {
                return;
            }
            let id = cmd.id;
            self.sink.db.do_send(Write::new(move |c| {
                commands::finish(
                    c,
                    id,
                    false,
                    "the miner is not being read (disabled or removed): enable it and try again",
                    None,
                )
            }));
            return;
        };
        self.dispatched.insert(cmd.id, cmd.miner_id);
        addr.do_send(cmd);
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
                    act.dispatch_from_table();
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
                backups_dir: self.settings.backups_dir.clone(),
                backups_keep: self.settings.backups_keep,
                sim_lines: self.settings.sims.get(&m.port),
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
        self.dispatch_from_table();
        ctx.run_interval(POLL, |act, ctx| {
            act.reconcile(ctx);
            act.dispatch_from_table();
        });
    }
}

impl Handler<MinersChanged> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: MinersChanged, ctx: &mut Self::Context) {
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

impl Handler<CommandQueued> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: CommandQueued, _: &mut Self::Context) {
        // Older pending rows of other producers (a reader's restore after a replug, the CLI)
        // go first: a miner's commands run in the order they were queued.
        self.dispatch_from_table();
        self.hand_over(msg);
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
