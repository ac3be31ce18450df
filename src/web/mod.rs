//! The web server: pages (maud), the JSON API and embedded assets. Every route is registered
//! in [`configure_routes`], so the whole HTTP surface is on one screen.

pub mod api;
pub mod assets;
pub mod auth;
pub mod charts;
pub mod csrf;
/// `ApiError`: what a handler answers when the server side fails.
pub mod error;
pub mod events;
pub mod firmware;
pub mod fleet;
pub mod format;
pub mod frame;
pub mod hub;
pub mod incidents;
pub mod integrations;
pub mod kiosk;
pub mod manage;
pub mod miner_page;
pub mod onboarding;
pub mod pages;
pub mod ports;
pub mod records;
/// Where a request comes from: client address and HTTPS behind trusted proxies, kiosk paths.
pub mod request;
pub mod security;
pub mod settings;
pub mod tokens;

use std::sync::Arc;

use actix::Addr;
use actix_web::{web, App, HttpServer};

use crate::alerts::notify::NotifyStats;
use crate::config::Config;
use crate::db::{DbActor, IngestStats, ReadPool};
use crate::discovery::DiscoveryActor;
use crate::supervisor::Supervisor;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Read-only connections.
    pub pool: ReadPool,
    /// The writer.
    pub db: Addr<DbActor>,
    /// Starts/stops miners after changes.
    pub supervisor: Addr<Supervisor>,
    /// Ingest counters.
    pub stats: Arc<IngestStats>,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Device discovery, when enabled (onboarding frees a probed port through it).
    pub discovery: Option<Addr<DiscoveryActor>>,
    /// Alert delivery counters (for `/metrics`).
    pub notify_stats: Arc<NotifyStats>,
    /// The login password's hash (none: no login).
    pub password: auth::Password,
    /// Logged-in sessions (used only when `[web] password` is set).
    pub sessions: auth::Sessions,
    /// Failed logins per client.
    pub throttle: auth::Throttle,
    /// Live read-only tokens (kiosks, Prometheus).
    pub read_tokens: auth::ReadTokens,
    /// Names this server answers to (DNS-rebinding check).
    pub allowed_hosts: security::AllowedHosts,
    /// The live-update streams' shared producer.
    pub events: Arc<events::Hub>,
    /// Canary rollouts started in this process.
    pub rollouts: crate::rollout::Rollouts,
    /// Plug and unplug news for the `/ports` pages' live updates.
    pub port_news: crate::discovery::portmap::PortNews,
    /// Self-healing's report (hubs that switch port power, miners it waits on).
    pub self_heal: crate::selfheal::Status,
    /// The herd document as the summarizer last published it.
    pub herd: crate::herd::Feed,
}

/// Registers every route.
pub fn configure_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::dashboard))
        .route("/api/herd_data", web::get().to(api::herd_data))
        .route("/api/hub", web::get().to(hub::api))
        .route("/api/hub/history", web::get().to(hub::history))
        .route("/hub/miner", web::get().to(hub::miner_page))
        .route("/api/records", web::get().to(records::api))
        .route("/kiosk/records", web::get().to(kiosk::records))
        .route("/api/events", web::get().to(events::events))
        .route("/healthz", web::get().to(api::healthz))
        .route("/miners/manage/{id}", web::get().to(manage::page))
        .route(
            "/api/miner/{id}/get_config",
            web::post().to(manage::get_config),
        )
        .route("/api/miner/{id}/doctor", web::post().to(manage::doctor))
        .route("/api/miner/{id}/identify", web::post().to(manage::identify))
        .route("/api/commands/{id}", web::get().to(manage::command))
        .route("/api/backups/{id}", web::get().to(manage::backup))
        .route("/healthz.json", web::get().to(integrations::healthz_json))
        .route("/api/alerts", web::get().to(integrations::alerts_data))
        .route("/api/incidents", web::get().to(incidents::api))
        .route("/incidents", web::get().to(incidents::page))
        .route("/api/identifying", web::get().to(incidents::identifying))
        .route("/api/ports", web::get().to(ports::api))
        .route("/api/ports/events", web::get().to(ports::events))
        .route("/ports", web::get().to(ports::page))
        .route("/api/firmware", web::get().to(firmware::api))
        .route("/firmware", web::get().to(firmware::page))
        .route("/metrics", web::get().to(integrations::metrics))
        .route("/api/backups/{id}/restore", web::post().to(manage::restore))
        .route("/api/rollout", web::post().to(manage::start_rollout))
        .route("/api/rollout/{id}", web::get().to(manage::rollout))
        .route("/fleet", web::get().to(fleet::page))
        .route("/api/fleet", web::get().to(fleet::api))
        .route("/fleet/profiles", web::post().to(fleet::save_profile))
        .route(
            "/fleet/profiles/{id}/delete",
            web::post().to(fleet::delete_profile),
        )
        .route("/fleet/reconcile", web::post().to(fleet::reconcile))
        .route(
            "/api/miner/{id}/set_config",
            web::post().to(manage::set_config),
        )
        .route("/onboarding", web::get().to(onboarding::page))
        .route("/onboarding", web::post().to(onboarding::add))
        .route(
            "/onboarding/{id}/ignore",
            web::post().to(onboarding::ignore),
        )
        .route(
            "/onboarding/{id}/unignore",
            web::post().to(onboarding::unignore),
        )
        .route("/miners/{id}", web::get().to(miner_page::page))
        .route(
            "/api/miners/{id}/history",
            web::get().to(miner_page::history_json),
        )
        .route(
            "/api/miners/{id}/logs",
            web::get().to(miner_page::logs_json),
        )
        .route(
            "/api/miners/{id}/reboots",
            web::get().to(miner_page::reboots_json),
        )
        .route(
            "/api/sparklines",
            web::get().to(miner_page::sparklines_json),
        )
        .route(
            "/api/block_templates",
            web::get().to(miner_page::block_templates_json),
        )
        .route("/kiosk", web::get().to(kiosk::index))
        .route("/kiosk/clock", web::get().to(kiosk::clock))
        .route("/kiosk/health", web::get().to(kiosk::health))
        .route("/kiosk/homage", web::get().to(kiosk::homage))
        .route("/kiosk/stream", web::get().to(kiosk::stream))
        .route("/settings", web::get().to(settings::page))
        .route("/settings/alerts", web::post().to(settings::save_alerts))
        .route(
            "/settings/alerts/reset",
            web::post().to(settings::reset_alerts),
        )
        .route(
            "/settings/celebration/test",
            web::post().to(records::test_celebration),
        )
        .route("/settings/tokens", web::post().to(tokens::create))
        .route(
            "/settings/tokens/{id}/revoke",
            web::post().to(tokens::revoke),
        )
        .route("/settings/{kind}", web::post().to(settings::create))
        .route(
            "/settings/miners/scan",
            web::post().to(settings::scan_subnet),
        )
        .route(
            "/settings/profiles/all",
            web::post().to(settings::save_profiles),
        )
        .route(
            "/settings/desired/all",
            web::post().to(settings::save_desired),
        )
        .route(
            "/settings/{kind}/all",
            web::post().to(settings::save_section),
        )
        .route("/settings/{kind}/{id}", web::post().to(settings::update))
        .route(
            "/settings/{kind}/{id}/delete",
            web::post().to(settings::delete),
        )
        .route("/login", web::get().to(auth::login_page))
        .route("/login", web::post().to(auth::login))
        .route("/logout", web::post().to(auth::logout))
        .route("/assets/{path:.*}", web::get().to(assets::serve));
}

/// Takes the dashboard's address first thing, so that a busy port stops a start before
/// anything else has been touched (and says what to do).
pub fn bind(addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr}: {e} (is another shepherd or web server using it? \
             choose another with --bind 0.0.0.0:8081)"
        )
    })
}

/// Starts serving on `listener` (from [`bind`]).
pub fn server(
    state: AppState,
    listener: std::net::TcpListener,
) -> anyhow::Result<actix_web::dev::Server> {
    let bind = state.config.server.bind;
    let data = web::Data::new(state);
    let producer = data.clone().into_inner();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            // Host check, login gate and frame/CSP headers for every request.
            .wrap(actix_web::middleware::from_fn(security::layer))
            // gzip/brotli for clients that ask; the event stream opts out (Content-Encoding:
            // identity) so events are not held back in a compressor's buffer.
            .wrap(actix_web::middleware::Compress::default())
            .configure(configure_routes)
            .default_service(web::to(pages::not_found))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)
    .map_err(|e| anyhow::anyhow!("cannot serve on {bind}: {e}"))?
    .run();
    actix_rt::spawn(events::produce(producer));
    Ok(server)
}
