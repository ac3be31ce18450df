//! Miners: the MinerActor that alone owns a miner's serial port, and the pure pieces it uses
//! (line framing, the NerdMiner log parser, boot-config capture).

pub mod boot_config;
pub mod dedupe;
pub mod framing;
pub mod parse;
pub mod port;
pub mod reader;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use actix::prelude::*;

use reader::{ReaderConfig, Sink};

/// One miner: runs its reader thread and stops it cleanly.
pub struct MinerActor {
    cfg: ReaderConfig,
    sink: Sink,
    stop: Arc<AtomicBool>,
    wake: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
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
        }
    }
}

impl Actor for MinerActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        let (cfg, sink) = (self.cfg.clone(), self.sink.clone());
        let (stop, wake) = (self.stop.clone(), self.wake.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("miner-{}", cfg.miner_id))
            .spawn(move || reader::run(cfg, sink, stop, wake));
        match spawned {
            Ok(handle) => self.thread = Some(handle),
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
