//! Miners: the MinerActor that alone owns a miner's serial port, and the pure pieces it uses
//! (line framing, the NerdMiner log parser, boot-config capture), plus the commands it runs
//! with the port (GET_CONFIG, SET_CONFIG, DOCTOR, RESET; their shared plumbing is in `command`).

/// AxeOS miners (Bitaxe, NerdQAxe) read over HTTP instead of a serial port: parsing, the
/// poller a MinerActor starts when its port is a URL, commands, subnet scan.
pub mod axeos;
pub mod backups;
pub mod boot_config;
pub mod command;
pub mod dedupe;
pub mod doctor;
pub mod framing;
pub mod get_config;
pub mod pace;
pub mod parse;
pub mod port;
pub mod reader;
pub mod reset;
pub mod set_config;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix::prelude::*;

use crate::db::commands::{self, CommandKind};
use crate::db::{DbActor, Write};
use reader::{PortJob, ReaderConfig, Sink};

/// One miner: runs its reader thread, hands it commands, and stops it cleanly.
pub struct MinerActor {
    cfg: ReaderConfig,
    sink: Sink,
    stop: Arc<AtomicBool>,
    wake: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    jobs: Option<Sender<PortJob>>,
    /// Commands for an AxeOS miner's thread (its `port` is a URL: `crate::miner::axeos::run`).
    axeos_jobs: Option<Sender<crate::miner::axeos::Job>>,
    /// Commands handed to the reader thread and not yet done, oldest (the running one) first.
    queued: Arc<Mutex<VecDeque<i64>>>,
}

impl MinerActor {
    /// An actor for one miner; reading starts when it is started.
    pub fn new(cfg: ReaderConfig, sink: Sink) -> Self {
        Self {
            cfg,
            sink,
            stop: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(AtomicBool::new(false)),
            thread: None,
            jobs: None,
            axeos_jobs: None,
            queued: Arc::default(),
        }
    }
}

impl Actor for MinerActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        if crate::miner::axeos::is_url(&self.cfg.port) {
            // An AxeOS miner: the same shell, an HTTP poller instead of the serial reader.
            let (id, url, sink) = (self.cfg.miner_id, self.cfg.port.clone(), self.sink.clone());
            let stop = self.stop.clone();
            let (tx, rx) = channel();
            let spawned = std::thread::Builder::new()
                .name(format!("axeos-{id}"))
                .spawn(move || crate::miner::axeos::run(id, url, sink, stop, rx));
            match spawned {
                Ok(handle) => {
                    self.thread = Some(handle);
                    self.axeos_jobs = Some(tx);
                }
                Err(e) => tracing::error!(miner = id, "cannot start the AxeOS poller: {e}"),
            }
            return;
        }
        let (cfg, sink) = (self.cfg.clone(), self.sink.clone());
        let (stop, wake) = (self.stop.clone(), self.wake.clone());
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name(format!("miner-{}", cfg.miner_id))
            .spawn(move || reader::run(cfg, sink, stop, wake, rx));
        match spawned {
            Ok(handle) => {
                self.thread = Some(handle);
                self.jobs = Some(tx);
            }
            Err(e) => tracing::error!(miner = self.cfg.miner_id, "cannot start reader thread: {e}"),
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Stop reading: drain the port, send the last batch, then answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopReading;

impl Handler<StopReading> for MinerActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: StopReading, _: &mut Self::Context) -> Self::Result {
        self.stop.store(true, Ordering::Relaxed);
        self.jobs = None;
        self.axeos_jobs = None;
        let thread = self.thread.take();
        Box::pin(
            async move {
                if let Some(t) = thread {
                    let _ = actix_rt::task::spawn_blocking(move || t.join()).await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}

/// A command was queued for a miner (a `miner_commands` row, status pending). Producers in
/// this process (web, rollout, autopilot, self-healing) send it to the
/// [`Supervisor`](crate::supervisor::Supervisor) right after storing the row, which hands it
/// on to the miner's actor; rows written by other processes (the CLI) are found by the
/// supervisor's poll and handed on the same way.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CommandQueued {
    /// Row id.
    pub id: i64,
    /// The miner it is for.
    pub miner_id: i64,
    /// Its [`CommandKind`] name as stored (a name this version does not know fails the row).
    pub command: String,
    /// Its payload.
    pub payload: Option<String>,
}

impl CommandQueued {
    /// The message for row `id` just stored for `miner_id`.
    pub fn new(id: i64, miner_id: i64, kind: CommandKind, payload: Option<String>) -> Self {
        Self {
            id,
            miner_id,
            command: kind.as_str().to_owned(),
            payload,
        }
    }
}

impl From<commands::CommandRow> for CommandQueued {
    fn from(row: commands::CommandRow) -> Self {
        Self {
            id: row.id,
            miner_id: row.miner_id,
            command: row.command,
            payload: row.payload,
        }
    }
}

impl Handler<CommandQueued> for MinerActor {
    type Result = ();

    fn handle(&mut self, msg: CommandQueued, _: &mut Self::Context) {
        let db = self.sink.db.clone();
        let CommandQueued {
            id,
            command,
            payload,
            ..
        } = msg;
        let Some(kind) = CommandKind::parse(&command) else {
            let detail = format!("{command} is not supported by this version of shepherd");
            db.do_send(Write::new(move |c| {
                commands::finish(c, id, false, &detail, None)
            }));
            return;
        };
        if let Some(tx) = &self.axeos_jobs {
            if tx
                .send(crate::miner::axeos::Job { id, kind, payload })
                .is_err()
            {
                db.do_send(Write::new(move |c| {
                    commands::finish(
                        c,
                        id,
                        false,
                        "the miner's poller has stopped; try again",
                        None,
                    )
                }));
            }
            return;
        }
        // The reader thread runs jobs one at a time, between reads: commands for one miner
        // queue there in the order they arrive; a later one says what it waits for.
        if let Ok(mut queued) = self.queued.lock() {
            if let Some(first) = queued.front().copied() {
                let detail =
                    format!("queued: the miner is busy with command #{first}; this one runs next");
                db.do_send(Write::new(move |c| commands::set_detail(c, id, &detail)));
            }
            queued.push_back(id);
        }
        let run = job(db, kind, id, payload);
        let queued = self.queued.clone();
        let job: PortJob = Box::new(move |session| {
            run(session);
            if let Ok(mut q) = queued.lock() {
                q.retain(|q| *q != id);
            }
        });
        let sent = self.jobs.as_ref().map(|tx| tx.send(job).is_ok());
        if sent != Some(true) {
            if let Ok(mut q) = self.queued.lock() {
                q.retain(|q| *q != id);
            }
            self.sink.db.do_send(Write::new(move |c| {
                commands::finish(
                    c,
                    id,
                    false,
                    "the miner's reader is not running (stopping or failed to start); try again",
                    None,
                )
            }));
        }
    }
}

/// The job that runs command `id` of `kind` on the miner's reader thread.
fn job(db: Addr<DbActor>, kind: CommandKind, id: i64, payload: Option<String>) -> PortJob {
    match kind {
        CommandKind::GetConfig => {
            Box::new(move |session| get_config::execute(&db, id, payload.as_deref(), session))
        }
        CommandKind::SetConfig => {
            Box::new(move |session| set_config::execute(&db, id, payload.as_deref(), session))
        }
        CommandKind::Doctor => {
            Box::new(move |session| doctor::execute(&db, id, payload.as_deref(), session))
        }
        CommandKind::Reset => {
            Box::new(move |session| reset::execute(&db, id, payload.as_deref(), session))
        }
    }
}

/// The miner's device was plugged in again: if the port is closed, try it now rather than
/// after the backoff.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeviceReturned;

impl Handler<DeviceReturned> for MinerActor {
    type Result = ();

    fn handle(&mut self, _: DeviceReturned, _: &mut Self::Context) {
        self.wake.store(true, Ordering::Relaxed);
    }
}
