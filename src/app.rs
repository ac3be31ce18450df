//! `shepherd run`: starts every actor, serves the dashboard, and shuts down in an order that
//! loses no line (simulators stop, readers drain their ports, the writer flushes).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use anyhow::Context as _;

use crate::alerts::notify::NotifyStats;
use crate::alerts::{AlertActor, Stopping};
use crate::config::Config;
use crate::db::actor::StartPruning;
use crate::db::{self, commands, miners, DbActor, IngestStats, ReadPool};
use crate::discovery::{DiscoveryActor, Feed, ShuttingDown};
use crate::miner::reader::Sink;
use crate::price::PriceActor;
use crate::sim::esp32::{self, SimEsp32};
use crate::sim::LineRegistry;
use crate::summarizer::{SummarizeNow, SummarizerActor};
use crate::supervisor::{MinerSettings, StopAll, Supervisor};
use crate::web::{self, AppState};

/// What to start besides what the configuration says.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated ESP32 miners to start first.
    pub demo: usize,
    /// Where device events come from: the system (udev, or scanning) or only what is sent
    /// to [`App::discovery`] (tests).
    pub devices: Feed,
    /// Simulated chips already running behind pseudo-terminals (tests), whose DTR/RTS calls
    /// the MinerActors then deliver to them. The demo miners are added to it.
    pub sims: LineRegistry,
}

/// Runs until SIGINT or SIGTERM. `demo` simulated miners are started first.
pub fn run(config: Config, demo: usize) -> anyhow::Result<()> {
    let system = actix_rt::System::new();
    system.block_on(async move {
        let options = Options {
            demo,
            devices: Feed::System,
            sims: LineRegistry::default(),
        };
        let app = App::start(config, options).await?;
        announce(&app.config);
        wait_for_signal().await;
        app.stop().await;
        Ok(())
    })
}

/// Everything `shepherd run` starts, running inside the current actix system.
pub struct App {
    config: Arc<Config>,
    sims: Vec<SimEsp32>,
    db: Addr<DbActor>,
    db_arbiter: Arbiter,
    supervisor: Addr<Supervisor>,
    summarizer: Addr<SummarizerActor>,
    summarizer_arbiter: Arbiter,
    discovery: Option<Addr<DiscoveryActor>>,
    price: Option<(Arbiter, Addr<PriceActor>)>,
    alerts: (Arbiter, Addr<AlertActor>),
    server: ServerHandle,
    server_task: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

impl App {
    /// Opens the database, starts the actors and binds the web server.
    pub async fn start(config: Config, options: Options) -> anyhow::Result<App> {
        let db_path = config.database.path.clone();
        let (mut conn, migration) = db::open_writer(&db_path)?;
        tracing::info!(database = %db_path.display(), ?migration, "database ready");
        let interrupted = commands::fail_interrupted(&conn)?;
        if interrupted > 0 {
            tracing::warn!("{interrupted} command(s) were interrupted by the last shutdown");
        }

        let demo = options.demo;
        let mut sims = Vec::with_capacity(demo);
        for i in 1..=demo {
            let handle = esp32::demo(
                i as u64,
                Duration::from_millis(config.demo.line_interval_millis),
            )
            .context("cannot create a pseudo-terminal for a simulated miner")?;
            options.sims.register(&handle.path, handle.line_control());
            sims.push(handle);
        }
        let ports: Vec<String> = sims.iter().map(|s| s.path.clone()).collect();
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
        db.do_send(StartPruning(config.retention.clone()));
        let pool = ReadPool::new(db_path);
        let sink = Sink {
            db: db.clone(),
            stats: stats.clone(),
        };
        let settings = MinerSettings {
            backups_dir: config.backups_dir(),
            backups_keep: config.backups.keep,
            sims: options.sims,
        };
        let supervisor =
            Supervisor::new(pool.clone(), sink, config.ingest.clone(), settings).start();
        let summarizer_arbiter = Arbiter::new();
        let (sum_pool, sum_db) = (pool.clone(), db.clone());
        let interval = Duration::from_secs(config.summarizer.interval_secs);
        let summarizer =
            SummarizerActor::start_in_arbiter(&summarizer_arbiter.handle(), move |_| {
                SummarizerActor::new(sum_pool, sum_db, interval)
            });
        let discovery = config.discovery.enabled.then(|| {
            DiscoveryActor::new(
                config.discovery.clone(),
                config.ingest.baud,
                options.devices,
                db.clone(),
                supervisor.clone(),
            )
            .start()
        });
        if discovery.is_none() {
            tracing::info!("device discovery is off ([discovery] enabled = false)");
        }
        // Its own thread, so a slow provider can never delay the dashboard or ingest (the
        // HTTP calls themselves run on the blocking pool).
        let price = (config.price.enabled || config.network.enabled).then(|| {
            let arbiter = Arbiter::new();
            let (p, n) = (config.price.clone(), config.network.clone());
            let (price_db, price_pool) = (db.clone(), pool.clone());
            let addr = PriceActor::start_in_arbiter(&arbiter.handle(), move |_| {
                PriceActor::new(&p, &n, price_db, price_pool)
            });
            (arbiter, addr)
        });

        // Its own thread: rule evaluation and MQTT publishing read the herd every few seconds.
        let notify_stats = Arc::new(NotifyStats::default());
        let alerts = {
            let arbiter = Arbiter::new();
            let (c, p, d, s) = (
                config.clone(),
                pool.clone(),
                db.clone(),
                notify_stats.clone(),
            );
            let addr = AlertActor::start_in_arbiter(&arbiter.handle(), move |_| {
                AlertActor::new(&c, p, d, s)
            });
            (arbiter, addr)
        };

        let config = Arc::new(config);
        let server = web::server(AppState {
            pool,
            db: db.clone(),
            supervisor: supervisor.clone(),
            stats,
            config: config.clone(),
            discovery: discovery.clone(),
            notify_stats,
            sessions: web::auth::Sessions::default(),
            rollouts: Default::default(),
        })?;
        let server_handle = server.handle();
        let server_task = actix_rt::spawn(server);
        Ok(App {
            config,
            sims,
            db,
            db_arbiter,
            supervisor,
            summarizer,
            summarizer_arbiter,
            discovery,
            price,
            alerts,
            server: server_handle,
            server_task,
        })
    }

    /// The alert rules' actor (tests evaluate on demand through it).
    pub fn alerts(&self) -> Addr<AlertActor> {
        self.alerts.1.clone()
    }

    /// Device discovery, where device events can be sent (None when it is disabled).
    pub fn discovery(&self) -> Option<Addr<DiscoveryActor>> {
        self.discovery.clone()
    }

    /// Stops in an order that loses no line: web, discovery, simulators, readers (they
    /// drain their ports), then the writer flushes.
    pub async fn stop(mut self) {
        tracing::info!("shutting down: stopping simulators and readers, flushing the database");
        self.server.stop(true).await;
        let _ = self.server_task.await;
        if let Some(d) = self.discovery.take() {
            let _ = d.send(ShuttingDown).await;
        }
        let names: Vec<String> = (1..=self.sims.len()).map(|i| format!("demo-{i}")).collect();
        let written: Vec<u64> = self.sims.iter_mut().map(SimEsp32::stop).collect();
        let _ = self.supervisor.send(StopAll).await;
        flush(&self.db).await;
        let _ = self.summarizer.send(SummarizeNow).await;
        flush(&self.db).await;
        for (name, n) in names.iter().zip(written) {
            tracing::info!("demo miner {name} wrote {n} lines");
        }
        drop(self.sims);
        // Publishes the retained "offline" on MQTT and stops the delivery threads.
        let _ = self.alerts.1.send(Stopping).await;
        self.alerts.0.stop();
        if let Some((arbiter, _addr)) = self.price.take() {
            // A fetch still in progress ends within its timeout; its result is not stored.
            arbiter.stop();
        }
        self.db_arbiter.stop();
        self.summarizer_arbiter.stop();
        tracing::info!("stopped");
    }
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
