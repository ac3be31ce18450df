//! `shepherd run`: starts every actor, serves the dashboard, and shuts down in an order that
//! loses no line (simulators stop, readers drain their ports, the writer flushes).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;

use crate::config::Config;
use crate::db::{self, commands, miners, DbActor, IngestStats, ReadPool};
use crate::miner::reader::Sink;
use crate::sim::esp32::{self, SimEsp32};
use crate::sim::LineRegistry;
use crate::summarizer::{SummarizeNow, SummarizerActor};
use crate::supervisor::{MinerSettings, StopAll, Supervisor};
use crate::web::{self, AppState};

/// Runs until SIGINT or SIGTERM. `demo` simulated miners are started first.
pub fn run(config: Config, demo: usize) -> anyhow::Result<()> {
    let system = actix_rt::System::new();
    system.block_on(serve(
        config,
        demo,
        LineRegistry::default(),
        wait_for_signal(),
    ))
}

/// Runs everything until `shutdown` completes. `demo` simulated ESP32 miners are started
/// first; `sims` names simulated chips already running behind pseudo-terminals (tests), whose
/// DTR/RTS calls the MinerActors then deliver to them.
pub async fn serve(
    config: Config,
    demo: usize,
    sims: LineRegistry,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let db_path = config.database.path.clone();
    let (mut conn, migration) = db::open_writer(&db_path)?;
    tracing::info!(database = %db_path.display(), ?migration, "database ready");
    let interrupted = commands::fail_interrupted(&conn)?;
    if interrupted > 0 {
        tracing::warn!("{interrupted} command(s) were interrupted by the last shutdown");
    }

    let mut demo_sims: Vec<SimEsp32> = Vec::with_capacity(demo);
    for i in 1..=demo {
        let handle = esp32::demo(
            i as u64,
            Duration::from_millis(config.demo.line_interval_millis),
        )
        .context("cannot create a pseudo-terminal for a simulated miner")?;
        sims.register(&handle.path, handle.line_control());
        demo_sims.push(handle);
    }
    let ports: Vec<String> = demo_sims.iter().map(|s| s.path.clone()).collect();
    miners::sync_demo(&mut conn, &ports).context("cannot register the demo miners")?;
    if demo > 0 {
        tracing::info!("demo: {demo} simulated NerdMiners on pseudo-terminals");
    }

    let stats = Arc::new(IngestStats::default());
    let db_arbiter = Arbiter::new();
    let (batch_lines, batch_ms) = (config.ingest.batch_lines, config.ingest.batch_millis);
    let writer_stats = stats.clone();
    let db = DbActor::start_in_arbiter(&db_arbiter.handle(), move |_| {
        DbActor::new(
            conn,
            batch_lines,
            Duration::from_millis(batch_ms),
            writer_stats,
        )
    });
    let pool = ReadPool::new(db_path);
    let sink = Sink {
        db: db.clone(),
        stats: stats.clone(),
    };
    let settings = MinerSettings {
        backups_dir: config.backups_dir(),
        backups_keep: config.backups.keep,
        sims,
    };
    let supervisor = Supervisor::new(pool.clone(), sink, config.ingest.clone(), settings).start();
    let summarizer_arbiter = Arbiter::new();
    let (sum_pool, sum_db) = (pool.clone(), db.clone());
    let interval = Duration::from_secs(config.summarizer.interval_secs);
    let summarizer = SummarizerActor::start_in_arbiter(&summarizer_arbiter.handle(), move |_| {
        SummarizerActor::new(sum_pool, sum_db, interval)
    });

    let config = Arc::new(config);
    let server = web::server(AppState {
        pool,
        db: db.clone(),
        supervisor: supervisor.clone(),
        stats,
        config: config.clone(),
    })?;
    let server_handle = server.handle();
    let server_task = actix_rt::spawn(server);
    announce(&config);

    shutdown.await;
    tracing::info!("shutting down: stopping simulators and readers, flushing the database");
    server_handle.stop(true).await;
    let _ = server_task.await;
    let names: Vec<String> = (1..=demo_sims.len()).map(|i| format!("demo-{i}")).collect();
    let written: Vec<u64> = demo_sims.iter_mut().map(SimEsp32::stop).collect();
    let _ = supervisor.send(StopAll).await;
    flush(&db).await;
    let _ = summarizer.send(SummarizeNow).await;
    flush(&db).await;
    for (name, n) in names.iter().zip(written) {
        tracing::info!("demo miner {name} wrote {n} lines");
    }
    drop(demo_sims);
    db_arbiter.stop();
    summarizer_arbiter.stop();
    tracing::info!("stopped");
    Ok(())
}

async fn flush(db: &Addr<DbActor>) {
    match db.send(db::actor::Flush).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!("final write failed, lines may be lost: {e}"),
        Err(e) => tracing::error!("database writer unavailable at shutdown: {e}"),
    }
}

fn announce(config: &Config) {
    let bind = config.server.bind;
    if bind.ip().is_unspecified() {
        tracing::info!(
            "dashboard at http://127.0.0.1:{0}/ (and http://<this machine's address>:{0}/ on your network)",
            bind.port()
        );
    } else {
        tracing::info!("dashboard at http://{bind}/");
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
