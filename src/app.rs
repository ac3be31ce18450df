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
    _lock: InstanceLock,
    sims: Vec<SimEsp32>,
    /// Mock AxeOS miners of the demo (served until the app stops).
    mock_axeos: Vec<crate::sim::axeos::MockAxeOs>,
    db: Addr<DbActor>,
    db_arbiter: Arbiter,
    supervisor: Addr<Supervisor>,
    summarizer: Addr<SummarizerActor>,
    summarizer_arbiter: Arbiter,
    discovery: Option<Addr<DiscoveryActor>>,
    price: Option<(Arbiter, Addr<PriceActor>)>,
    alerts: (Arbiter, Addr<AlertActor>),
    /// The `--hub` subscriber, when on.
    hub: Option<crate::hub::client::HubClient>,
    server: ServerHandle,
    server_task: actix_rt::task::JoinHandle<std::io::Result<()>>,
}

impl App {
    /// Opens the database, starts the actors and binds the web server.
    pub async fn start(config: Config, options: Options) -> anyhow::Result<App> {
        let config = Arc::new(config);
        let db_path = config.database.path.clone();
        // Before anything touches the database: a second instance must change nothing.
        let lock = InstanceLock::take(&db_path, config.server.bind)?;
        let listener = web::bind(config.server.bind)?;
        let (password, plain) =
            web::auth::Password::from_config(&config.web.password).map_err(anyhow::Error::msg)?;
        if plain {
            tracing::warn!(
                "[web] password is stored in plain text in the config file: run `shepherd passwd \
                 --config <file>` to replace it with its Argon2id hash"
            );
        }
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
        // Beside them, mock AxeOS miners on loopback (one per firmware generation), so the
        // demo herd is a mixed one.
        let axeos_count = if demo > 0 {
            config.demo.axeos_miners
        } else {
            0
        };
        let mocks = crate::sim::axeos::demo(axeos_count)
            .context("cannot start the demo's mock AxeOS miners on 127.0.0.1")?;
        let urls: Vec<(String, String)> = mocks.iter().map(|(n, m)| (n.clone(), m.url())).collect();
        miners::sync_demo_axeos(&mut conn, &urls)
            .context("cannot register the demo AxeOS miners")?;
        if axeos_count > 0 {
            tracing::info!("demo: {axeos_count} mock AxeOS miners on 127.0.0.1");
        }
        let mock_axeos: Vec<_> = mocks.into_iter().map(|(_, m)| m).collect();

        let read_tokens = web::auth::ReadTokens::default();
        read_tokens.replace(db::read_tokens::digests(&conn)?);

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
        // The herd document: built once per change by the summarizer, read by everyone else.
        let (herd_publisher, herd) =
            crate::herd::channel(pool.clone(), config.clone(), stats.clone());
        let summarizer_arbiter = Arbiter::new();
        let (sum_pool, sum_db) = (pool.clone(), db.clone());
        let interval = Duration::from_secs(config.summarizer.interval_secs);
        let summarizer =
            SummarizerActor::start_in_arbiter(&summarizer_arbiter.handle(), move |_| {
                SummarizerActor::new(sum_pool, sum_db, interval, herd_publisher)
            });
        let port_news = crate::discovery::portmap::PortNews::default();
        let discovery = config.discovery.enabled.then(|| {
            DiscoveryActor::new(
                config.discovery.clone(),
                config.ingest.baud,
                options.devices,
                db.clone(),
                supervisor.clone(),
            )
            .with_news(port_news.clone())
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
            let stored = summarizer.clone().recipient();
            let addr = PriceActor::start_in_arbiter(&arbiter.handle(), move |_| {
                PriceActor::new(&p, &n, price_db, price_pool).telling(stored)
            });
            (arbiter, addr)
        });

        // Its own thread: rule evaluation and MQTT publishing read the herd every few seconds.
        let notify_stats = Arc::new(NotifyStats::default());
        let alerts = {
            let arbiter = Arbiter::new();
            let alert_herd = herd.clone();
            let (c, p, d, s) = (
                config.clone(),
                pool.clone(),
                db.clone(),
                notify_stats.clone(),
            );
            let addr = AlertActor::start_in_arbiter(&arbiter.handle(), move |_| {
                AlertActor::new(&c, p, d, alert_herd, s)
            });
            addr.do_send(crate::alerts::WatchWrites(stats.clone()));
            (arbiter, addr)
        };

        // The central view of other sites (`--hub`): threads of its own, writes via the DbActor.
        let hub = if config.hub.enabled {
            Some(crate::hub::start(&config, db.clone()).map_err(anyhow::Error::msg)?)
        } else {
            None
        };

        // Off unless the owner turned it on; stops with the system.
        let self_heal = crate::selfheal::Status::default();
        if config.self_heal.enabled {
            crate::selfheal::SelfHealActor::new(
                config.self_heal.clone(),
                pool.clone(),
                db.clone(),
                supervisor.clone(),
                alerts.1.clone(),
                self_heal.clone(),
            )
            .start();
        }

        let allowed_hosts =
            web::security::AllowedHosts::for_this_machine(config.server.bind, &config.web);
        let state = AppState {
            pool,
            db: db.clone(),
            supervisor: supervisor.clone(),
            stats,
            config: config.clone(),
            discovery: discovery.clone(),
            notify_stats,
            password,
            sessions: web::auth::Sessions::default(),
            throttle: web::auth::Throttle::default(),
            read_tokens,
            allowed_hosts,
            events: Arc::new(web::events::Hub::new(config.web.max_event_streams)),
            port_news,
            self_heal,
            rollouts: Default::default(),
            herd,
        };
        // Failover and schedule windows of pool profiles (see crate::fleet).
        actix_rt::spawn(crate::autopilot::run(
            state.pool.clone(),
            crate::autopilot::Autopilot {
                db: state.db.clone(),
                supervisor: state.supervisor.clone(),
                rollouts: state.rollouts.clone(),
                alerts: alerts.1.clone(),
                herd: state.herd.clone(),
                every: std::time::Duration::from_secs(config.fleet.autopilot_secs.max(1)),
                tz: crate::fleet::zone::resolve(&config.fleet.time_zone),
            },
        ));
        let server = web::server(state, listener)?;
        let server_handle = server.handle();
        let server_task = actix_rt::spawn(server);
        Ok(App {
            config,
            _lock: lock,
            sims,
            mock_axeos,
            db,
            db_arbiter,
            supervisor,
            summarizer,
            summarizer_arbiter,
            discovery,
            price,
            alerts,
            hub,
            server: server_handle,
            server_task,
        })
    }

    /// The alert rules' actor (tests evaluate on demand through it).
    pub fn alerts(&self) -> Addr<AlertActor> {
        self.alerts.1.clone()
    }

    /// The database writer (tests drill a full disk through it, [`db::actor::CapSize`]).
    pub fn db(&self) -> Addr<DbActor> {
        self.db.clone()
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
        drop(self.mock_axeos);
        if let Some(mut hub) = self.hub.take() {
            hub.stop();
            flush(&self.db).await;
        }
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

/// An exclusive lock on `<database>.lock`, held while `shepherd run` runs, so that a second
/// instance on the same database stops before it changes anything (it would otherwise remove
/// the first one's demo miners and fight over the serial ports). The kernel releases it when
/// the process ends, however it ends; the file itself says who holds it.
pub struct InstanceLock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

impl InstanceLock {
    /// Takes the lock beside `db_path`, or says which process holds it.
    pub fn take(db_path: &std::path::Path, bind: std::net::SocketAddr) -> anyhow::Result<Self> {
        use std::io::{Seek as _, Write as _};
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = lock_path(db_path);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot create the lock file {} (is its folder writable by this user?)",
                    path.display()
                )
            })?;
        let mut file =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    anyhow::bail!(
                        "the database {} is in use by another shepherd ({}): stop that one first, \
                         or give this one another --database",
                        db_path.display(),
                        describe_holder(&holder)
                    );
                }
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()))
                }
            };
        let me = format!("pid {}\nbind {bind}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .with_context(|| format!("cannot write the lock file {}", path.display()))?;
        Ok(InstanceLock { _file: file })
    }
}

/// `<database>.lock`, beside the database.
pub fn lock_path(db_path: &std::path::Path) -> std::path::PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    std::path::PathBuf::from(name)
}

/// "pid 4242, dashboard on 0.0.0.0:8080" from the lock file's text.
fn describe_holder(text: &str) -> String {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).map(str::trim).map(str::to_owned))
    };
    match (field("pid "), field("bind ")) {
        (Some(pid), Some(bind)) => format!("pid {pid}, dashboard on {bind}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "a process that has not written its details yet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_names_its_holder() {
        assert_eq!(
            describe_holder("pid 4242\nbind 0.0.0.0:8080\n"),
            "pid 4242, dashboard on 0.0.0.0:8080"
        );
        assert_eq!(
            describe_holder(""),
            "a process that has not written its details yet"
        );
        assert_eq!(
            lock_path(std::path::Path::new("/var/lib/shepherd/shepherd.db")),
            std::path::PathBuf::from("/var/lib/shepherd/shepherd.db.lock")
        );
    }

    #[test]
    fn a_second_lock_is_refused_with_the_first_ones_details() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let first = InstanceLock::take(&db, "127.0.0.1:8081".parse().unwrap()).unwrap();
        let err = InstanceLock::take(&db, "127.0.0.1:8082".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(
            err.contains("127.0.0.1:8081") && err.contains("s.db"),
            "{err}"
        );
        drop(first);
        InstanceLock::take(&db, "127.0.0.1:8082".parse().unwrap()).unwrap();
    }
}
